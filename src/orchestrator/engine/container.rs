//! What the plan's container is in an engine's terms, on swarm as on plain
//! Docker: literal environment, cpu and memory amounts, the `exec` readiness
//! check as a healthcheck.

use std::collections::BTreeMap;

use bollard::models::HealthConfig;

use crate::orchestrator::BackendError;
use crate::plan::{Check, EnvPlan, EnvValue, ServerPlan};
use crate::quantity::Quantity;
use crate::supervisor;

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

/// The readiness check the engine runs in the container, as a command: the
/// supervisor's probe when the spec awaits a ready line (the ready file, and
/// the TCP or exec check asked for with it, run in the container), else the
/// spec's `exec` check. `None` for a TCP check alone, which mettaton runs
/// itself (see [`super::tcp_probed`]), and for none.
pub fn exec_check(plan: &ServerPlan) -> Option<Vec<String>> {
    let container = &plan.container;
    if let Some(probe) = container.supervisor.as_ref().and_then(|s| supervisor::probe(container, s)) {
        return Some(probe);
    }
    match &container.readiness {
        Some(Check::Exec { command }) if !command.is_empty() => Some(command.clone()),
        _ => None,
    }
}

/// The container's healthcheck: [`exec_check`] in exec form (no shell: game
/// images seldom have one). A TCP check alone gets none: mettaton probes the
/// published port itself (game images seldom carry `nc` for a healthcheck to
/// run; see [`super::TcpProbe`]).
pub fn health_check(plan: &ServerPlan) -> Option<HealthConfig> {
    let command = exec_check(plan)?;
    let period = i64::from(plan.container.period_seconds.max(1)) * NANOS_PER_SECOND;
    let mut test = vec!["CMD".to_string()];
    test.extend(command);
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

/// Why the plan's supervisor cannot run on `runtime` ("Docker Swarm",
/// "plain Docker"), naming the fields: a bad pattern or stop
/// ([`supervisor::problems`]), or a supervised server without `spec.command`
/// (the CRD requires it; a plan made without the CRD's rules may lack it, and
/// the engine would start the supervisor with no game). Players and output
/// events are read by exec ([`super::read_report`]).
pub fn supervisor_problem(plan: &ServerPlan, runtime: &str) -> Option<String> {
    let supervisor = plan.container.supervisor.as_ref()?;
    let mut problems = supervisor::problems(supervisor);
    if plan.container.command.is_empty() {
        problems.push(format!(
            "{} needs spec.command on {runtime}: mettaton's supervisor starts the game, and the image's own \
             entrypoint is not known to it",
            super::supervisor_fields(supervisor)
        ));
    }
    (!problems.is_empty()).then(|| problems.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fixtures;

    fn plan_of(spec: serde_json::Value) -> ServerPlan {
        crate::plan::plan(&fixtures::game_server("mc", spec))
    }

    #[test]
    fn a_supervised_plan_runs_and_what_its_supervisor_cannot_do_is_named() {
        let mut spec = fixtures::minecraft_spec_json();
        assert_eq!(supervisor_problem(&plan_of(spec.clone()), "X"), None, "no supervisor, nothing to say");
        spec["command"] = serde_json::json!(["/start"]);
        spec["shutdown"] = serde_json::json!({ "stop": "stop" });
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done"] });
        assert_eq!(supervisor_problem(&plan_of(spec.clone()), "Docker Swarm"), None);
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done", "regex:("] });
        spec["shutdown"] = serde_json::json!({ "stop": "SIGWINCH" });
        let problem = supervisor_problem(&plan_of(spec.clone()), "Docker Swarm").unwrap();
        assert!(problem.starts_with("spec.health.readyLogLine[1]: `regex:(` is not a valid regular expression"));
        assert!(problem.contains("; spec.shutdown.stop: `SIGWINCH` is not a signal"), "{problem}");
        spec["shutdown"] = serde_json::json!({ "stop": "stop" });
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done"] });
        // Players and output events run (their report is read by exec); a
        // bad pattern of theirs is named.
        let mut reporting = spec.clone();
        reporting["players"] =
            serde_json::json!({ "joinLine": ["regex:^(\\S+) joined"], "leaveLine": ["regex:^(\\S+) left"] });
        reporting["outputEvents"] = serde_json::json!([{ "line": "saved", "reason": "WorldSaved" }]);
        assert_eq!(supervisor_problem(&plan_of(reporting.clone()), "Docker Swarm"), None);
        reporting["outputEvents"] = serde_json::json!([{ "line": "regex:(", "reason": "WorldSaved" }]);
        let problem = supervisor_problem(&plan_of(reporting), "plain Docker").unwrap();
        assert!(problem.starts_with("spec.outputEvents[0].line: `regex:(` is not a valid"), "{problem}");
        // Without the CRD's rules (a plan made in code), no command is named.
        spec.as_object_mut().unwrap().remove("command");
        let problem = supervisor_problem(&plan_of(spec), "plain Docker").unwrap();
        assert!(
            problem.starts_with("spec.health.readyLogLine and spec.shutdown.stop needs spec.command on plain Docker"),
            "{problem}"
        );
    }

    #[test]
    fn the_healthcheck_is_the_supervisors_probe_combined_with_the_check_asked_for() {
        let binary = supervisor::BINARY;
        let test = |spec: serde_json::Value| health_check(&plan_of(spec)).and_then(|h| h.test);
        let mut spec = fixtures::minecraft_spec_json();
        spec["command"] = serde_json::json!(["/start"]);
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done"] });
        let state = ["--state-dir", supervisor::STATE_DIR];
        let probe = |rest: &[&str]| -> Option<Vec<String>> {
            Some(["CMD", binary, "probe"].iter().chain(&state).chain(rest).map(|s| s.to_string()).collect())
        };
        assert_eq!(test(spec.clone()), probe(&[]), "the ready line alone");
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done"], "probe": { "tcpPort": "game" } });
        assert_eq!(test(spec.clone()), probe(&["--tcp", "25565"]), "and the TCP check, in the container");
        assert!(!super::super::tcp_probed(&plan_of(spec.clone())), "mettaton does not probe it again");
        spec["health"] = serde_json::json!({ "readyLogLine": ["Done"], "probe": { "exec": ["mc-health"] } });
        assert_eq!(test(spec.clone()), probe(&["--", "mc-health"]));
        // A stop alone: the plan's own check, as without a supervisor.
        spec["health"] = serde_json::json!({ "probe": { "exec": ["mc-health"] } });
        spec["shutdown"] = serde_json::json!({ "stop": "stop" });
        assert_eq!(test(spec.clone()), Some(vec!["CMD".to_string(), "mc-health".to_string()]));
        spec["health"] = serde_json::json!({ "probe": { "tcpPort": "game" } });
        assert_eq!(test(spec.clone()), None);
        assert!(super::super::tcp_probed(&plan_of(spec)), "a TCP check alone is mettaton's");
    }
}
