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
    /// Why the instance is not running well, when it is not (waiting, last
    /// terminated, not scheduled, not created).
    pub problem: Option<Problem>,
    /// The instance is being shut down.
    pub terminating: bool,
}

/// What keeps an instance from running well: its kind, which is what
/// `status` decides on, and the backend's own words, which are what users see.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub kind: ProblemKind,
    /// The backend's word for it, shown as it is: a Kubernetes reason
    /// (`CrashLoopBackOff`, `ErrImagePull`, `FailedCreate`, `OOMKilled`...), a
    /// swarm task's message (`task: non-zero exit (1)`).
    pub reason: String,
    /// What the backend says beyond the reason, when it does (Kubernetes'
    /// container state message, such as `Back-off pulling image "..."`; never
    /// empty). Swarm's reason is its message already.
    pub message: Option<String>,
}

impl Problem {
    pub fn new(kind: ProblemKind, reason: impl Into<String>, message: Option<String>) -> Self {
        Problem { kind, reason: reason.into(), message: message.filter(|m| !m.is_empty()) }
    }
}

/// The kinds of problem, each backend mapping its own words onto them.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ProblemKind {
    /// The container keeps crashing and is restarted with back-off.
    CrashLoop,
    /// The image cannot be pulled (or is missing, or its name is invalid).
    ImagePull,
    /// The instance could not even be created: refused by admission (Pod
    /// Security, a quota, a webhook).
    Refused,
    /// No node can take the instance.
    Unschedulable,
    /// The container was killed for running out of memory.
    OutOfMemory,
    /// The container exited (an error, or finished while it should run).
    Exited,
    /// The template's install script failed (exited non-zero): the message
    /// holds its last lines.
    InstallFailed,
    /// Anything else the backend reports.
    Other,
}

/// Where players connect.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Endpoint {
    pub address: Option<String>,
    pub ports: Vec<PublishedPort>,
}
