//! The supervisor's installer on a swarm: a global service of the supervisor
//! image that copies its binary into the supervisor's volume on every node
//! (`install /.mettaton/bin`, once: restart condition none), and whether it
//! is done on the nodes the swarm has.

use bollard::models::{NodeSpecAvailabilityEnum, NodeState};

use super::*;
use crate::orchestrator::engine::{installer_command, installer_mount, supervisor_labels, supervisor_volume};

/// The installer's service of `image`: named as the volume it fills.
pub fn installer_name(image: &str) -> String {
    supervisor_volume(image)
}

/// The global service that fills the supervisor's volume of `image` on each
/// node: one task per node, which runs `install` and completes. A node that
/// joins later gets its task then.
pub fn installer_spec(image: &str) -> ServiceSpec {
    let labels = supervisor_labels(image);
    ServiceSpec {
        name: Some(installer_name(image)),
        labels: Some(labels.clone()),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image.to_string()),
                labels: Some(labels),
                command: Some(installer_command()),
                mounts: Some(vec![installer_mount(image)]),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::NONE),
                ..Default::default()
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode { global: Some(HashMap::new()), ..Default::default() }),
        ..Default::default()
    }
}

/// Whether a service is the installer of `image` (and not something else
/// that took its name).
pub fn is_installer(spec: Option<&ServiceSpec>, image: &str) -> bool {
    spec.and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(crate::orchestrator::engine::LABEL_SUPERVISOR_IMAGE))
        .is_some_and(|i| i == image)
}

/// How far the installer is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Installation {
    /// Its task completed on every node that is ready and active.
    Done,
    /// Not yet: the nodes still waited for.
    Waiting(Vec<String>),
    /// Its task failed on a node (it is not retried): why, naming the node.
    Failed(String),
}

/// The installer's progress from its tasks and the swarm's nodes. Nodes that
/// are down or drained get no task; they are not waited for (a game task
/// that starts on one before its installer ran fails, and swarm starts it
/// again).
pub fn installation(tasks: &[Task], nodes: &[Node]) -> Installation {
    let mut waiting = Vec::new();
    for node in nodes {
        let ready = node.status.as_ref().and_then(|s| s.state) == Some(NodeState::READY);
        let active = node.spec.as_ref().and_then(|s| s.availability) == Some(NodeSpecAvailabilityEnum::ACTIVE);
        if !ready || !active {
            continue;
        }
        let id = node.id.as_deref().unwrap_or_default();
        let host = node.description.as_ref().and_then(|d| d.hostname.clone()).unwrap_or_else(|| id.to_string());
        let on_node: Vec<&Task> = tasks.iter().filter(|t| t.node_id.as_deref() == Some(id)).collect();
        if on_node.iter().any(|t| state(t) == TaskState::COMPLETE) {
            continue;
        }
        let failed = on_node
            .iter()
            .filter(|t| is_terminal(state(t)) && state(t) != TaskState::COMPLETE)
            .max_by_key(|t| created(t));
        match failed {
            Some(task) if !on_node.iter().any(|t| !is_terminal(state(t))) => {
                let why = task_error(task).unwrap_or_else(|| state(task).to_string());
                return Installation::Failed(format!("on node {host}: {why}"));
            }
            _ => waiting.push(host),
        }
    }
    if waiting.is_empty() { Installation::Done } else { Installation::Waiting(waiting) }
}
