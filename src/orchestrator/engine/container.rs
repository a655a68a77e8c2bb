//! What the plan's container is in an engine's terms, on swarm as on plain
//! Docker: literal environment, cpu and memory amounts, the `exec` readiness
//! check as a healthcheck.

use std::collections::BTreeMap;

use bollard::models::HealthConfig;

use crate::orchestrator::BackendError;
use crate::plan::{Check, EnvPlan, EnvValue, ServerPlan};
use crate::quantity::Quantity;

pub const NANOS_PER_SECOND: i64 = 1_000_000_000;
/// Config files are only read by the game.
pub const CONFIG_FILE_MODE: u32 = 0o444;

/// The environment as `NAME=value`. A variable from `valueFrom` is refused
/// with `refuse` (its index and the variable): an engine has nothing to
/// resolve it from.
pub fn env(plan: &ServerPlan, refuse: impl Fn(usize, &EnvPlan) -> BackendError) -> Result<Vec<String>, BackendError> {
    plan.container
        .env
        .iter()
        .enumerate()
        .map(|(i, var)| match &var.value {
            EnvValue::Literal(value) => Ok(format!("{}={value}", var.name)),
            _ => Err(refuse(i, var)),
        })
        .collect()
}

/// cpu (nano-CPUs) and memory (bytes) of `spec.resources`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Amounts {
    pub limit_cpu: Option<i64>,
    pub limit_memory: Option<i64>,
    pub request_cpu: Option<i64>,
    pub request_memory: Option<i64>,
}

/// The plan's cpu and memory limits and requests; resource claims and any
/// other resource are refused with `refuse`, naming the field and `runtime`.
pub fn amounts(
    plan: &ServerPlan,
    runtime: &str,
    refuse: impl Fn(String) -> BackendError,
) -> Result<Option<Amounts>, BackendError> {
    let Some(requirements) = &plan.container.resources else { return Ok(None) };
    if let Some(claim) = requirements.claims.first() {
        return Err(refuse(format!("spec.resources.claims ({}) cannot be used on {runtime}", claim.name)));
    }
    let amounts = |field: &str, map: &BTreeMap<String, String>| -> Result<(Option<i64>, Option<i64>), BackendError> {
        let mut cpu = None;
        let mut memory = None;
        for (resource, quantity) in map {
            let (slot, scale) = match resource.as_str() {
                "cpu" => (&mut cpu, 9),
                "memory" => (&mut memory, 0),
                other => {
                    return Err(refuse(format!(
                        "spec.resources.{field}.{other} cannot be set on {runtime} (only cpu and memory)"
                    )));
                }
            };
            let value = Quantity::parse(quantity.trim()).and_then(|q| q.scaled(scale)).ok_or_else(|| {
                refuse(format!("spec.resources.{field}.{resource}: {quantity:?} is not a quantity {runtime} can use"))
            })?;
            *slot = Some(value);
        }
        Ok((cpu, memory))
    };
    let (limit_cpu, limit_memory) = amounts("limits", &requirements.limits)?;
    let (request_cpu, request_memory) = amounts("requests", &requirements.requests)?;
    Ok(Some(Amounts { limit_cpu, limit_memory, request_cpu, request_memory }))
}

/// The `exec` readiness check as the container's healthcheck. A TCP check
/// gets none: mettaton probes the published port itself (game images seldom
/// carry a shell or `nc` for a healthcheck to run; see [`super::TcpProbe`]).
pub fn health_check(plan: &ServerPlan) -> Option<HealthConfig> {
    let Some(Check::Exec { command }) = &plan.container.readiness else { return None };
    if command.is_empty() {
        return None;
    }
    let period = i64::from(plan.container.period_seconds.max(1)) * NANOS_PER_SECOND;
    let mut test = vec!["CMD".to_string()];
    test.extend(command.iter().cloned());
    Some(HealthConfig {
        test: Some(test),
        interval: Some(period),
        // A check still running after a period has failed: the next one is due.
        timeout: Some(period),
        retries: Some(i64::from(plan.container.failure_threshold.max(1))),
        // Failures in the startup window do not count, and the first success
        // ends it: the startup timeout is exactly that window.
        start_period: Some(i64::from(plan.startup_timeout_seconds.max(0)) * NANOS_PER_SECOND),
        ..Default::default()
    })
}

/// `None` for an empty list: the engine's default.
pub fn non_empty<T>(v: Vec<T>) -> Option<Vec<T>> {
    (!v.is_empty()).then_some(v)
}

/// Why the plan cannot run on `runtime` ("Docker Swarm", "plain Docker"),
/// when it asks for mettaton's supervisor, which these backends do not put
/// into containers yet: the fields that ask for it, named.
pub fn supervisor_problem(plan: &ServerPlan, runtime: &str) -> Option<String> {
    let supervisor = plan.container.supervisor.as_ref()?;
    let fields: Vec<&str> = [
        (!supervisor.ready.is_empty()).then_some("spec.health.readyLogLine"),
        supervisor.stop.is_some().then_some("spec.shutdown.stop"),
    ]
    .into_iter()
    .flatten()
    .collect();
    Some(format!(
        "{} cannot be used on {runtime} yet: they need mettaton's supervisor in the server's container, which only \
         the Kubernetes backend puts there so far; remove them (spec.shutdown.stopCommand runs a command before the \
         stop signal instead)",
        fields.join(" and ")
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    #[test]
    fn the_fields_that_need_the_supervisor_are_named() {
        let mut spec = fixtures::minecraft_spec_json();
        assert_eq!(supervisor_problem(&crate::plan::plan(&fixtures::game_server("mc", spec.clone())), "X"), None);
        spec["command"] = serde_json::json!(["/start"]);
        spec["shutdown"] = serde_json::json!({ "stop": "stop" });
        let plan = crate::plan::plan(&fixtures::game_server("mc", spec.clone()));
        let problem = supervisor_problem(&plan, "Docker Swarm").unwrap();
        assert!(problem.starts_with("spec.shutdown.stop cannot be used on Docker Swarm yet"), "{problem}");
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done"] });
        let plan = crate::plan::plan(&fixtures::game_server("mc", spec));
        let problem = supervisor_problem(&plan, "plain Docker").unwrap();
        assert!(problem.starts_with("spec.health.readyLogLine and spec.shutdown.stop cannot be used on plain Docker"));
    }
}
