//! The runtime behind a GameServer, abstracted: apply a [`ServerPlan`], observe
//! what runs, tear it down, read its logs. The controller and the status logic
//! know nothing of the backend; the backends know nothing of reconciliation.

use std::future::Future;

use crate::api::{GameServer, PublishedPort, ReclaimPolicy};
use crate::plan::ServerPlan;

pub mod kubernetes;
pub mod swarm;

/// A backend that runs game servers.
pub trait Orchestrator: Send + Sync + 'static {
    /// Makes the runtime match the plan. Writes nothing when it already does.
    /// `owner` is the GameServer the plan came from (its uid ties the runtime
    /// objects to it).
    fn apply(&self, owner: &GameServer, plan: &ServerPlan) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// What the runtime holds for the server now.
    fn observe(&self, plan: &ServerPlan) -> impl Future<Output = Result<Observed, BackendError>> + Send;

    /// Removes the server's runtime objects. The data volume goes too only with
    /// `ReclaimPolicy::Delete`; with `Retain` it is kept (and released, so that a
    /// new server of the same name can take it over). Idempotent: what is
    /// already gone counts as removed. Returns `Done` once nothing that should
    /// go is left, `Pending` while removal is still under way.
    fn teardown(
        &self,
        plan: &ServerPlan,
        reclaim: ReclaimPolicy,
    ) -> impl Future<Output = Result<Teardown, BackendError>> + Send;

    /// The server's log: the last `tail` lines (all when `None`).
    fn logs(&self, plan: &ServerPlan, tail: Option<i64>) -> impl Future<Output = Result<String, BackendError>> + Send;

    /// Called once by a controller that watches the Kubernetes children
    /// ([`crate::controller::Watch::KubernetesChildren`]): a backend that reads
    /// those objects may read them from these caches. Others ignore it.
    fn use_child_cache(&self, cache: kubernetes::cache::ChildCache) {
        let _ = cache;
    }
}

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

/// A failure of a backend, with what the user should know of it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached (network, daemon down).
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    /// The image is neither on the node nor in its registry.
    #[error("image {image} not found locally or in its registry: {reason}")]
    ImageMissing { image: String, reason: String },
    /// A port the server must publish is already published by something else.
    #[error("port {port}/{protocol} is already published by {holder}")]
    PortTaken { port: i64, protocol: String, holder: String },
    /// The backend refused a request (invalid object, quota, permission...).
    #[error("backend refused {what}: {reason}")]
    Refused { what: String, reason: String },
    /// Any other failure of the backend's API.
    #[error("backend error during {what}: {reason}")]
    Other { what: String, reason: String },
}

impl BackendError {
    /// A short machine-readable reason, for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BackendError::Unreachable(_) => "BackendUnreachable",
            BackendError::ImageMissing { .. } => "ImageMissing",
            BackendError::PortTaken { .. } => "PortTaken",
            BackendError::Refused { .. } => "BackendRefused",
            BackendError::Other { .. } => "BackendError",
        }
    }
}

/// An error with its causes: transport errors keep the useful part
/// (connection refused, no such file, certificate expired) deep in the chain.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}
