//! What a backend reports of one game server: its workload, its instance,
//! where players reach it, and how far a teardown got. Plain data, filled by
//! each backend's builders and read by `status` and the facade.

use crate::api::PublishedPort;

/// Progress of a teardown.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Teardown {
    Done,
    Pending,
}

/// What a backend observed of one game server.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Observed {
    /// The workload (Deployment, swarm service), if it exists.
    pub workload: Option<Workload>,
    /// The instance (pod, task) running the server, if there is one.
    pub instance: Option<Instance>,
    /// Where players reach the server, as far as known.
    pub endpoint: Endpoint,
    /// The backend's identifier of the workload (`deployment/NAME`, a service id).
    pub backend_ref: Option<String>,
}

/// The workload's rollout state.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Workload {
    /// Instances wanted (0 or 1).
    pub desired: i32,
    /// Instances that are ready.
    pub ready: i32,
    /// Whether the workload runs the latest template (no rollout under way).
    pub rolled_out: bool,
    /// Instances that exist, whatever their state (pods still terminating count).
    pub existing: i32,
}

/// The instance running the server.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Instance {
    /// Name of the pod or task.
    pub name: String,
    /// The container runs (it may not be ready yet).
    pub running: bool,
    /// The server passes its readiness check.
    pub ready: bool,
    /// Restarts of the game's container.
    pub restarts: i32,
    /// Why the container is waiting or was last terminated, when it is not
    /// running well (`CrashLoopBackOff`, `ImagePullBackOff`, `Error`...).
    pub problem: Option<String>,
    /// What the backend says of `problem`, when it says more than a reason
    /// (Kubernetes' container state message, such as `Back-off pulling image
    /// "..."`). Swarm's `problem` is its message already.
    pub problem_message: Option<String>,
    /// The instance is being shut down.
    pub terminating: bool,
}

/// Where players connect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Option<String>,
    pub ports: Vec<PublishedPort>,
}
