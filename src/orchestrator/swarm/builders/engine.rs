//! What the engine is told and answers beside the objects: image references
//! to pull, whether the daemon is a usable swarm manager.

use super::*;

/// What to pull for an image reference: the reference and its tag. An image
/// without a tag or digest means `latest` (the API would pull every tag).
pub fn pull_reference(image: &str) -> (String, String) {
    if image.contains('@') {
        return (image.to_string(), String::new());
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(colon) => {
            let colon = last_slash + colon;
            (image[..colon].to_string(), image[colon + 1..].to_string())
        }
        None => (image.to_string(), "latest".to_string()),
    }
}

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
