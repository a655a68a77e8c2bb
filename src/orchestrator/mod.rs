//! The runtime behind a GameServer, abstracted: apply a [`ServerPlan`], observe
//! what runs, tear it down, read its logs. The controller and the status logic
//! know nothing of the backend; the backends know nothing of reconciliation.

use std::future::Future;

use crate::api::{GameServer, ReclaimPolicy};
use crate::plan::ServerPlan;

pub mod error;
pub mod kubernetes;
pub mod observed;
pub mod swarm;

pub use error::BackendError;
pub(crate) use error::error_chain;
pub use observed::{Endpoint, Instance, Observed, Teardown, Workload};

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
