//! What the engine answers beside the objects: whether the daemon is a
//! usable swarm manager. (Image references to pull are
//! [`crate::orchestrator::engine::pull_reference`].)

use super::*;

/// Why the engine cannot run mettaton's services, when it cannot.
pub fn manager_problem(swarm: Option<&SwarmInfo>, daemon: &str) -> Option<String> {
    use bollard::models::LocalNodeState;
    let state = swarm.and_then(|s| s.local_node_state).unwrap_or(LocalNodeState::INACTIVE);
    let manager = swarm.and_then(|s| s.control_available).unwrap_or(false);
    match state {
        LocalNodeState::ACTIVE if manager => None,
        LocalNodeState::ACTIVE => Some(format!(
            "the Docker daemon at {daemon} is a swarm worker, not a manager: connect to a manager of the swarm"
        )),
        LocalNodeState::LOCKED => {
            Some(format!("the swarm of the Docker daemon at {daemon} is locked: run `docker swarm unlock`"))
        }
        LocalNodeState::PENDING => {
            Some(format!("the Docker daemon at {daemon} is still joining its swarm: try again in a moment"))
        }
        LocalNodeState::ERROR => Some(format!(
            "the swarm of the Docker daemon at {daemon} is in error ({}): see `docker info`",
            swarm.and_then(|s| s.error.clone()).unwrap_or_default()
        )),
        _ => Some(format!("the Docker daemon at {daemon} is not a swarm manager: run `docker swarm init`")),
    }
}
