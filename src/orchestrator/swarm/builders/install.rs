//! A template's install script on a swarm: a one-shot job (a service in
//! `ReplicatedJob` mode, one completion, never restarted) run before the
//! game's service is created or changed, with the game's placement
//! constraints, and how far it got from its task.

use bollard::models::ServiceSpecModeReplicatedJob;

use super::*;
use crate::orchestrator::engine::{InstallRun, LABEL_INSTALL};

/// The install job's service: `<service name>-install`, shortened as swarm
/// needs it.
pub fn install_job_name(plan: &ServerPlan) -> String {
    fit(&format!("{}-install", service_name(plan)), SERVICE_NAME_MAX)
}

/// The job that runs `run` once, on a node the game may run on (its
/// placement constraints `constraints`, [`constraints`]): one task, not
/// restarted when it fails (a failed install is reported, and run again
/// only when asked, see the backend).
pub fn install_job_spec(plan: &ServerPlan, run: &InstallRun, constraints: Vec<String>) -> ServiceSpec {
    let labels: HashMap<String, String> = run.labels.clone().into_iter().collect();
    ServiceSpec {
        name: Some(install_job_name(plan)),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(run.image.clone()),
                labels: Some(labels),
                command: Some(run.command.clone()),
                env: non_empty(run.env.clone()),
                mounts: non_empty(run.mounts.clone()),
                ..Default::default()
            }),
            placement: (!constraints.is_empty())
                .then(|| TaskSpecPlacement { constraints: Some(constraints), ..Default::default() }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated_job: Some(ServiceSpecModeReplicatedJob { max_concurrent: Some(1), total_completions: Some(1) }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The install hash a service's task carries ([`LABEL_INSTALL`] on its
/// container): which install ran before it. `None` for a service without
/// one.
pub fn installed_hash(spec: &ServiceSpec) -> Option<&str> {
    spec.task_template.as_ref()?.container_spec.as_ref()?.labels.as_ref()?.get(LABEL_INSTALL).map(String::as_str)
}

/// The install hash of a job (its [`LABEL_INSTALL`] label).
pub fn job_hash(spec: Option<&ServiceSpec>) -> Option<&str> {
    spec?.labels.as_ref()?.get(LABEL_INSTALL).map(String::as_str)
}

/// `spec` with the install that runs before it recorded on its task: the
/// [`LABEL_INSTALL`] label on the container, so that another install is a
/// new task (the game is stopped while it runs).
pub fn with_install(mut spec: ServiceSpec, hash: &str) -> ServiceSpec {
    if let Some(container) = spec.task_template.as_mut().and_then(|t| t.container_spec.as_mut()) {
        container.labels.get_or_insert_with(Default::default).insert(LABEL_INSTALL.to_string(), hash.to_string());
    }
    spec
}

/// How far an install job is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum JobProgress {
    /// Not done yet (no task yet, or its task is on its way or runs): the
    /// task's name when it has one.
    Running(Option<String>),
    /// Its task completed: the install ran (or was found done).
    Done,
    /// Its task failed or was rejected: swarm's words for how.
    Failed(String),
}

/// The job's progress from its tasks: the newest one decides.
pub fn job_progress(job_name: &str, tasks: &[Task]) -> JobProgress {
    let Some(task) = tasks.iter().max_by_key(|t| created(t)) else { return JobProgress::Running(None) };
    match state(task) {
        TaskState::COMPLETE => JobProgress::Done,
        s if is_terminal(s) => JobProgress::Failed(task_error(task).unwrap_or_else(|| format!("task {s}"))),
        _ => JobProgress::Running(Some(format!("{job_name}.{}", task.slot.unwrap_or(1)))),
    }
}

/// What runs the plan's install script on a swarm (see
/// [`crate::orchestrator::engine::install_run`]): the game's environment,
/// its volume, the supervisor of `supervisor_image`. `None` without an
/// install; refused, naming the field, for what swarm cannot give it.
pub fn install_run(
    plan: &ServerPlan,
    owner_uid: Option<&str>,
    supervisor_image: &str,
) -> Result<Option<InstallRun>, BackendError> {
    if plan.install.is_none() {
        return Ok(None);
    }
    let env = shared::env(plan, |_, var| {
        refused(plan, format!("env {} uses valueFrom, which Docker Swarm cannot resolve: give it a value", var.name))
    })?;
    let env = env.iter().map(|e| swarm_literal(e)).collect();
    shared::install_run(plan, &volume_name(plan), supervisor_image, env, owner_uid).map_err(|r| refused(plan, r))
}

/// The replicas a service's spec asks for (`None` for another mode).
pub fn replicas(spec: Option<&ServiceSpec>) -> Option<i64> {
    spec?.mode.as_ref()?.replicated.as_ref()?.replicas
}

/// `spec` scaled to zero replicas, the rest kept: the game stopped while its
/// install runs (the apply after it sets what the plan asks).
pub fn scaled_to_zero(mut spec: ServiceSpec) -> ServiceSpec {
    spec.mode = Some(ServiceSpecMode {
        replicated: Some(ServiceSpecModeReplicated { replicas: Some(0) }),
        ..Default::default()
    });
    spec
}
