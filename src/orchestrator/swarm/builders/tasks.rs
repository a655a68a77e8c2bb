//! What the engine reports turned back into the backend-neutral view: tasks
//! as the instance and workload, the endpoint players use, logs, events.

use super::*;
use crate::orchestrator::observed::{Problem, ProblemKind};

/// A task has ended (or never will run): its container is gone or going.
pub(super) fn is_terminal(state: TaskState) -> bool {
    state > TaskState::RUNNING
}

pub(super) fn state(task: &Task) -> TaskState {
    task.status.as_ref().and_then(|s| s.state).unwrap_or_default()
}

pub(super) fn wants_running(task: &Task) -> bool {
    // Swarm sets `ready` as the desired state of a task created ahead of its
    // start (stop-first updates), `running` once it should run.
    matches!(task.desired_state, Some(TaskState::RUNNING | TaskState::READY))
}

/// Newest first: by creation time, then by id so that the order is total.
pub(super) fn created(task: &Task) -> (Option<Timestamp>, Option<&str>) {
    (task.created_at.as_deref().and_then(|t| t.parse().ok()), task.id.as_deref())
}

/// The task that is the server now: the newest one meant to run, else the
/// newest one still on its way out (a stopping server), else none.
pub fn current_task(tasks: &[Task]) -> Option<&Task> {
    tasks
        .iter()
        .filter(|t| wants_running(t))
        .max_by_key(|t| created(t))
        .or_else(|| tasks.iter().filter(|t| !is_terminal(state(t))).max_by_key(|t| created(t)))
}

/// The ids of the tasks that ended on their own: the container exited
/// (failed, or completed while it should run), or could not be started
/// (rejected). Each was followed by a restart. Tasks that swarm shut down (an
/// update, a scale to zero) do not count.
pub fn failed_tasks(tasks: &[Task]) -> BTreeSet<String> {
    tasks
        .iter()
        .filter(|t| matches!(state(t), TaskState::FAILED | TaskState::COMPLETE | TaskState::REJECTED))
        .filter_map(|t| t.id.clone())
        .collect()
}

/// The engine's name of a task (and of its container): `service.slot.id`.
pub(super) fn task_name(service_name: &str, task: &Task) -> String {
    let slot = task.slot.map(|s| s.to_string()).unwrap_or_else(|| task.node_id.clone().unwrap_or_default());
    format!("{service_name}.{slot}.{}", task.id.as_deref().unwrap_or_default())
}

pub(super) fn task_error(task: &Task) -> Option<String> {
    task.status.as_ref().and_then(|s| s.err.clone()).filter(|e| !e.is_empty())
}

/// A problem in swarm's words: a task's error message, or its state. Swarm
/// has no reason codes, so its message is the reason, and what it begins with
/// the kind.
fn task_problem(text: String) -> Problem {
    let kind = if text.starts_with("task: non-zero exit") {
        ProblemKind::Exited
    } else if text.starts_with("no suitable node") {
        ProblemKind::Unschedulable
    } else {
        ProblemKind::Other
    };
    Problem::new(kind, text, None)
}

/// What the current task says of the server. `restarts` comes from
/// [`failed_tasks`] (and what was seen of them before, since swarm keeps only a
/// few tasks per slot). Swarm reports a task with a healthcheck as running
/// only once the check passed, and replaces one that turns unhealthy: a
/// running task is a ready server.
pub fn instance(service_name: &str, task: &Task, tasks: &[Task], restarts: usize) -> Instance {
    let state = state(task);
    // A task with a healthcheck stays `starting` (with its container up, and
    // no pid reported) until the check first passes.
    let container =
        task.status.as_ref().and_then(|s| s.container_status.as_ref()).and_then(|c| c.container_id.as_ref());
    let running =
        state == TaskState::RUNNING || (state == TaskState::STARTING && container.is_some_and(|c| !c.is_empty()));
    let ready = state == TaskState::RUNNING;
    let problem = if ready {
        None
    } else {
        task_error(task)
            .or_else(|| {
                matches!(state, TaskState::FAILED | TaskState::REJECTED | TaskState::ORPHANED)
                    .then(|| state.to_string())
            })
            .or_else(|| {
                // While the replacement of a failed task starts, the failure is
                // the problem to report, as a container's last state would be.
                let failed = failed_tasks(tasks);
                tasks
                    .iter()
                    .filter(|t| t.id.as_ref().is_some_and(|id| failed.contains(id)))
                    .max_by_key(|t| created(t))
                    .and_then(task_error)
                    .filter(|_| restarts > 0)
            })
            .map(task_problem)
    };
    Instance {
        name: task_name(service_name, task),
        running,
        ready,
        restarts: i32::try_from(restarts).unwrap_or(i32::MAX),
        problem,
        terminating: !wants_running(task),
    }
}

/// The service's rollout. `up_to_date` holds the ids of the tasks that run the
/// service's current spec (the engine's own test, as `docker service update`
/// uses it): right after an update the engine has not yet marked the update
/// as under way, and the old task is still the one running.
pub fn workload(service: &Service, tasks: &[Task], current: Option<&Task>, up_to_date: &BTreeSet<String>) -> Workload {
    let desired = service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .unwrap_or(1);
    let updating = service.update_status.as_ref().and_then(|u| u.state).is_some_and(|s| {
        matches!(
            s,
            ServiceUpdateStatusStateEnum::UPDATING
                | ServiceUpdateStatusStateEnum::PAUSED
                | ServiceUpdateStatusStateEnum::ROLLBACK_STARTED
                | ServiceUpdateStatusStateEnum::ROLLBACK_PAUSED
        )
    });
    let current_is_latest = match current.filter(|t| wants_running(t)) {
        Some(task) => task.id.as_ref().is_some_and(|id| up_to_date.contains(id)),
        None => desired == 0,
    };
    let ready = current.is_some_and(|t| wants_running(t) && state(t) == TaskState::RUNNING);
    Workload {
        desired: i32::try_from(desired).unwrap_or(1),
        ready: i32::from(ready),
        rolled_out: !updating && current_is_latest,
        existing: i32::try_from(tasks.iter().filter(|t| !is_terminal(state(t))).count()).unwrap_or(i32::MAX),
    }
}

/// The address players reach a node at: its own address, or, for a manager
/// that reports `0.0.0.0` (listening on every interface), the address it is
/// reached at by the other managers.
pub fn node_address(node: &Node) -> Option<String> {
    let own = node.status.as_ref().and_then(|s| s.addr.clone()).filter(|a| !a.is_empty() && a != "0.0.0.0");
    own.or_else(|| {
        let addr = node.manager_status.as_ref()?.addr.as_deref()?;
        let host = match addr.rsplit_once(':') {
            Some((host, port)) if port.bytes().all(|b| b.is_ascii_digit()) => host,
            _ => addr,
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        (!host.is_empty() && host != "0.0.0.0").then(|| host.to_string())
    })
}

/// Where players connect: the node the task runs on, and the ports the engine
/// published there for it (host mode: on that node only). Before the task has
/// its ports, the fixed external ports of the plan are the ones it will get.
pub fn endpoint(plan: &ServerPlan, task: Option<&Task>, node: Option<&Node>) -> Endpoint {
    let Some(task) = task else { return Endpoint::default() };
    let published =
        task.status.as_ref().and_then(|s| s.port_status.as_ref()).and_then(|p| p.ports.as_deref()).unwrap_or_default();
    let ports = plan
        .container
        .ports
        .iter()
        .filter_map(|p| {
            let from_task = published
                .iter()
                .map(port_key)
                .find(|(_, proto, target, _, _)| {
                    *target == Some(i64::from(p.container_port)) && *proto == protocol(p.protocol)
                })
                .and_then(|(_, _, _, published, _)| published)
                .and_then(|port| i32::try_from(port).ok());
            let port = from_task.or(p.external_port)?;
            Some(PublishedPort { name: p.name.clone(), port, protocol: p.protocol })
        })
        .collect();
    Endpoint { address: node.and_then(node_address), ports }
}

/// Log lines of several tasks (each with the engine's timestamp in front), in
/// the order they were written, timestamps removed, the last `tail` of them.
pub fn merge_log_lines(text: &str, tail: Option<i64>) -> String {
    let mut lines: Vec<(Option<Timestamp>, usize, &str)> = text
        .lines()
        .enumerate()
        .map(|(i, line)| match line.split_once(' ') {
            Some((stamp, rest)) => match stamp.parse::<Timestamp>() {
                Ok(t) => (Some(t), i, rest),
                Err(_) => (None, i, line),
            },
            None => match line.parse::<Timestamp>() {
                Ok(t) => (Some(t), i, ""),
                Err(_) => (None, i, line),
            },
        })
        .collect();
    lines.sort_by_key(|(t, i, _)| (*t, *i));
    let skip = match tail {
        Some(n) => lines.len().saturating_sub(usize::try_from(n.max(0)).unwrap_or(usize::MAX)),
        None => 0,
    };
    let mut out = String::new();
    for (_, _, line) in lines.into_iter().skip(skip) {
        out.push_str(line);
        out.push('\n');
    }
    out
}

/// What an engine event says of a server's container, for containers that
/// carry the identity labels; `None` for any other event.
pub fn server_event(message: &EventMessage) -> Option<InstanceEvent> {
    let actor = message.actor.as_ref()?;
    let attributes = actor.attributes.as_ref()?;
    if attributes.get(LABEL_MANAGED).map(String::as_str) != Some("true") {
        return None;
    }
    let kind = shared::event_kind(message)?;
    Some(InstanceEvent {
        server: shared::server_key(attributes)?,
        kind,
        container_id: actor.id.clone().unwrap_or_default(),
        task_id: attributes.get(LABEL_SWARM_TASK_ID).cloned(),
        time_nanos: message.time_nano,
    })
}
