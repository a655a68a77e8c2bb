//! The Kubernetes backend: a game server is a Deployment (one pod), a Service,
//! a PersistentVolumeClaim for its data and a ConfigMap for its inline config
//! files, all controlled by the GameServer through an owner reference.
//!
//! Every write is a server-side apply under [`api::FIELD_MANAGER`], preceded by
//! a read: when the object already holds everything mettaton would apply, nothing
//! is written. Objects of the same name that belong to something else are never
//! taken over or deleted.
//!
//! Given the controller's watch caches ([`cache`]), reads come from them where a
//! stale answer costs at most one more request: a child the cache shows as
//! already holding the plan is not read again (else it is read from the API
//! server before any write), a ConfigMap the cache does not have is not looked
//! for, and what runs is observed from the cache, except that a Deployment or
//! Service just written is observed as the API server answered the write (the
//! cache may not have it yet). A reconcile of a server in its steady state then
//! sends no request at all. Teardown decides about data on reads from the API
//! server only; the cache just spares it those reads while it shows the
//! server's objects still on their way out.

pub mod builders;
pub mod cache;
mod compare;

use compare::holds;
pub use compare::{holds_applied, is_subset};

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use cache::{Cached, ChildCache, Lookup};
use futures::stream::BoxStream;

use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::api::{AttachParams, DeleteParams, ListParams, LogParams, Patch, PatchParams, Preconditions};
use kube::{Api, Client, Resource};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::api::{self, ReclaimPolicy, ServiceType};
use crate::orchestrator::{
    BackendError, Console, ConsoleSession, Logs, Observed, Orchestrator, Owner, Reports, Teardown, Triggers, Workload,
    error_chain,
};
use crate::plan::{self, ServerPlan};
use crate::supervisor;

/// Label put on a data claim kept after its GameServer was deleted (reclaim
/// policy Retain), so that `kubectl get pvc -l mettaton.dev/retained` lists the
/// worlds nobody runs any more. Removed when a new GameServer adopts the claim.
pub const LABEL_RETAINED: &str = "mettaton.dev/retained";

/// Runs game servers on a Kubernetes cluster.
#[derive(Clone)]
pub struct KubernetesOrchestrator {
    client: Client,
    /// The controller's watch caches, once it gave them.
    cache: Arc<OnceLock<ChildCache>>,
    /// Servers (namespace, name) whose Deployment or Service was written since
    /// they were last observed, with both as the last apply left them: the
    /// cache may not show the write yet.
    written: Arc<Mutex<HashMap<(String, String), Applied>>>,
    /// Nodes read lately, by name, with when they were read.
    nodes: Arc<Mutex<HashMap<String, (Instant, Node)>>>,
    /// The image the supervisor is copied from into supervised servers' pods.
    supervisor_image: Arc<str>,
}

/// A server's Deployment and Service as its last apply left them.
struct Applied {
    deployment: Option<Deployment>,
    service: Option<Service>,
}

/// One child as [`KubernetesOrchestrator::ensure`] found and left it.
struct Ensured<K> {
    /// As it was found, `None` when it did not exist.
    found: Option<K>,
    /// The API server's answer to the apply, when it was written.
    applied: Option<K>,
}

impl<K> Ensured<K> {
    /// As the apply left it.
    fn now(self) -> Option<K> {
        self.applied.or(self.found)
    }
}

/// How long a node read stays good for the addresses it gives.
const NODE_TTL: Duration = Duration::from_secs(60);

impl KubernetesOrchestrator {
    pub fn new(client: Client) -> Self {
        KubernetesOrchestrator {
            client,
            cache: Arc::default(),
            written: Arc::default(),
            nodes: Arc::default(),
            supervisor_image: supervisor::DEFAULT_IMAGE.into(),
        }
    }

    /// The supervisor's image, instead of this release's
    /// ([`supervisor::DEFAULT_IMAGE`]).
    pub fn with_supervisor_image(mut self, image: &str) -> Self {
        self.supervisor_image = image.into();
        self
    }

    /// What the cache knows of child `name` of the server; `Unknown` without one.
    fn cached<K: Cached>(&self, plan: &ServerPlan, name: &str) -> Lookup<K> {
        match self.cache.get() {
            Some(cache) => cache.get::<K>(&plan.namespace, name),
            None => Lookup::Unknown,
        }
    }

    fn api<K>(&self, plan: &ServerPlan) -> Api<K>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()>,
    {
        Api::namespaced(self.client.clone(), &plan.namespace)
    }

    /// Reads one child of the server by name; absent is `None`.
    async fn read<K>(&self, plan: &ServerPlan, name: &str) -> Result<Option<K>, BackendError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
    {
        self.api::<K>(plan).get_opt(name).await.map_err(|e| backend_error(format!("read {}", describe::<K>(name)), e))
    }

    /// Brings one child to its desired form. `for_existing` narrows what is
    /// applied to an object that already exists.
    async fn ensure<K>(
        &self,
        plan: &ServerPlan,
        desired: K,
        for_existing: fn(K, &K) -> K,
    ) -> Result<Ensured<K>, BackendError>
    where
        K: Cached + Serialize + DeserializeOwned,
    {
        let api = self.api::<K>(plan);
        let name = desired.meta().name.clone().unwrap_or_default();
        let what = describe::<K>(&name);
        if let Lookup::Present(cached) = self.cached::<K>(plan, &name)
            && is_ours(cached.meta(), &plan.name)
            && holds(&*cached, &for_existing(desired.clone(), &cached))
        {
            return Ok(Ensured { found: Some(K::clone(&cached)), applied: None });
        }
        let current = self.read::<K>(plan, &name).await?;
        let desired = match &current {
            Some(current) => {
                if !is_ours(current.meta(), &plan.name) {
                    return Err(BackendError::Refused {
                        what: format!("apply {what}"),
                        reason: format!("{what} already exists and does not belong to GameServer {}", plan.name),
                    });
                }
                let desired = for_existing(desired, current);
                (!holds(current, &desired)).then_some(desired)
            }
            None => Some(desired),
        };
        let Some(desired) = desired else { return Ok(Ensured { found: current, applied: None }) };
        let applied = api
            .patch(&name, &PatchParams::apply(api::FIELD_MANAGER).force(), &Patch::Apply(&desired))
            .await
            .map_err(|e| backend_error(format!("apply {what}"), e))?;
        Ok(Ensured { found: current, applied: Some(applied) })
    }

    /// One child of the server for observing it: as the last apply left it
    /// when `applied` has it, else from the cache (or the API server when
    /// there is no cache yet).
    async fn look<K>(&self, plan: &ServerPlan, name: &str, applied: Option<K>) -> Result<Option<K>, BackendError>
    where
        K: Cached + DeserializeOwned,
    {
        if applied.is_some() {
            return Ok(applied);
        }
        match self.cached::<K>(plan, name) {
            Lookup::Present(object) => Ok(Some(K::clone(&object))),
            Lookup::Absent => Ok(None),
            Lookup::Unknown => self.read::<K>(plan, name).await,
        }
    }

    /// Gives the backend the controller's watch caches of the children.
    pub fn use_cache(&self, cache: ChildCache) {
        // Only the first one counts: one controller feeds one orchestrator.
        let _ = self.cache.set(cache);
    }

    /// Starts deleting one child of the server. Returns whether it is still
    /// there (being deleted). Objects of that name that are not the server's
    /// count as gone: they are not ours to delete.
    async fn remove<K>(&self, plan: &ServerPlan, name: &str, params: DeleteParams) -> Result<bool, BackendError>
    where
        K: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + DeserializeOwned,
    {
        let api = self.api::<K>(plan);
        let what = describe::<K>(name);
        let Some(current) = self.read::<K>(plan, name).await? else {
            return Ok(false);
        };
        let meta = current.meta();
        if !is_ours(meta, &plan.name) {
            return Ok(false);
        }
        if meta.deletion_timestamp.is_some() {
            return Ok(true);
        }
        // The uid precondition makes sure it is this object that goes, not one
        // created in its place since it was read.
        let params = params.preconditions(Preconditions { uid: meta.uid.clone(), resource_version: None });
        match api.delete(name, &params).await {
            Ok(deleted) => Ok(deleted.is_left()),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(true),
            Err(e) => Err(backend_error(format!("delete {what}"), e)),
        }
    }

    /// Lets a retained data claim outlive its GameServer: drops the server's
    /// owner reference (else garbage collection would delete the claim with the
    /// GameServer) and labels the claim as retained. Returns whether it must be
    /// tried again.
    async fn release_claim(&self, plan: &ServerPlan) -> Result<bool, BackendError> {
        let api = self.api::<PersistentVolumeClaim>(plan);
        let name = plan::volume_name(&plan.name);
        let what = describe::<PersistentVolumeClaim>(&name);
        let Some(claim) = self.read::<PersistentVolumeClaim>(plan, &name).await? else {
            return Ok(false);
        };
        let Some(patch) = release_patch(&claim.metadata, &plan.name) else { return Ok(false) };
        // A merge patch, not an apply: an apply by mettaton's own field manager
        // that left the reference out would also drop the labels and spec fields
        // it owns. The resourceVersion in the patch makes it fail, rather than
        // overwrite, when the claim changed since it was read.
        match api.patch(&name, &merge_params(), &Patch::Merge(&patch)).await {
            Ok(_) => Ok(false),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 404 => Ok(false),
            Err(e) => Err(backend_error(format!("release {what}"), e)),
        }
    }

    /// Node `name`, read at most once a minute: its addresses are what the
    /// status needs, and they change rarely (nodes are not watched either way).
    async fn node(&self, name: &str) -> Result<Option<Node>, BackendError> {
        if let Some((read_at, node)) = self.nodes.lock().unwrap().get(name)
            && read_at.elapsed() < NODE_TTL
        {
            return Ok(Some(node.clone()));
        }
        let node = Api::<Node>::all(self.client.clone())
            .get_opt(name)
            .await
            .map_err(|e| backend_error(format!("read node/{name}"), e))?;
        let mut nodes = self.nodes.lock().unwrap();
        match &node {
            Some(n) => nodes.insert(name.to_string(), (Instant::now(), n.clone())),
            None => nodes.remove(name),
        };
        Ok(node)
    }

    async fn pods(&self, plan: &ServerPlan) -> Result<Vec<Pod>, BackendError> {
        let selector = plan.selector.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(",");
        self.api::<Pod>(plan)
            .list(&ListParams::default().labels(&selector))
            .await
            .map(|list| list.items)
            .map_err(|e| backend_error(format!("list pods of {}", plan.name), e))
    }
}

impl Orchestrator for KubernetesOrchestrator {
    /// The children's watches: they wake the GameServers whose children
    /// changed, and fill the caches this backend reads instead of the API
    /// server. A watch relists after it breaks, so nothing needs polling.
    fn triggers(&self, namespace: Option<&str>) -> Triggers {
        let (cache, streams) = cache::reflect(&self.client, namespace);
        self.use_cache(cache);
        Triggers { changes: cache::server_keys(streams), poll: None }
    }

    fn reports(&self) -> Option<&impl Reports> {
        Some(self)
    }

    async fn apply(&self, owner: &Owner, plan: &ServerPlan) -> Result<(), BackendError> {
        if builders::controller_ref(owner).is_none() {
            // Children without an owner would outlive the GameServer unseen.
            return Err(BackendError::Other {
                what: format!("apply GameServer {}", plan.name),
                reason: "the GameServer has no uid (it was not read from the API server)".into(),
            });
        }
        // What the API server's schema cannot check of the supervisor's work
        // (a regular expression that does not compile, an unknown signal).
        let problems = supervisor::server_problems(plan);
        if !problems.is_empty() {
            return Err(BackendError::Refused {
                what: format!("run GameServer {}", plan.name),
                reason: problems.join("; "),
            });
        }

        // The ConfigMap and the claim come first: the pod mounts them.
        match builders::config_map(plan, owner) {
            Some(config_map) => {
                self.ensure(plan, config_map, keep).await?;
            }
            // Not looked for when the cache has none.
            None if matches!(self.cached::<ConfigMap>(plan, &plan::config_name(&plan.name)), Lookup::Absent) => {}
            None => {
                self.remove::<ConfigMap>(plan, &plan::config_name(&plan.name), DeleteParams::background()).await?;
            }
        }
        if let Some(claim) = builders::persistent_volume_claim(plan, owner) {
            let claim = self.ensure(plan, claim, claim_for_existing).await?;
            if claim.found.is_some_and(|c| has_retained_label(&c.metadata)) {
                let name = plan::volume_name(&plan.name);
                let patch = json!({ "metadata": { "labels": { LABEL_RETAINED: null } } });
                self.api::<PersistentVolumeClaim>(plan)
                    .patch(&name, &merge_params(), &Patch::Merge(&patch))
                    .await
                    .map_err(|e| backend_error(format!("adopt {}", describe::<PersistentVolumeClaim>(&name)), e))?;
            }
        }
        // Independent of each other: read and written side by side, the
        // reconcile waits for one round trip instead of two.
        let (deployment, service) = futures::try_join!(
            self.ensure(plan, builders::deployment(plan, owner, &self.supervisor_image), keep),
            self.ensure(plan, builders::service(plan, owner), keep)
        )?;
        let key = (plan.namespace.clone(), plan.name.clone());
        if deployment.applied.is_some() || service.applied.is_some() {
            let applied = Applied { deployment: deployment.now(), service: service.now() };
            self.written.lock().unwrap().insert(key, applied);
        } else {
            self.written.lock().unwrap().remove(&key);
        }
        Ok(())
    }

    async fn observe(&self, plan: &ServerPlan) -> Result<Observed, BackendError> {
        let applied = self.written.lock().unwrap().remove(&(plan.namespace.clone(), plan.name.clone()));
        let (deployment, service) = applied.map_or((None, None), |a| (a.deployment, a.service));
        let deployment =
            self.look::<Deployment>(plan, &plan.name, deployment).await?.filter(|d| is_ours(&d.metadata, &plan.name));
        // Pods are never written here: the cache is as current for them right
        // after an apply as at any other time (a new Deployment has none yet).
        let pods = match self.cache.get().and_then(|cache| cache.pods(&plan.namespace, &plan.name)) {
            Some(pods) => pods,
            None => self.pods(plan).await?,
        };
        let service =
            self.look::<Service>(plan, &plan.name, service).await?.filter(|s| is_ours(&s.metadata, &plan.name));

        let pod = builders::current_pod(&pods);
        let node_name = pod.and_then(|p| p.spec.as_ref()).and_then(|s| s.node_name.clone());
        let node = match (plan.service.type_, node_name, &service) {
            (ServiceType::NodePort, Some(node_name), Some(_)) => self.node(&node_name).await?,
            _ => None,
        };

        Ok(Observed {
            workload: deployment.as_ref().map(|d| workload(d, pods.len())),
            // No pod at all may be the Deployment's pods being refused.
            instance: pod.map(builders::instance).or_else(|| deployment.as_ref().and_then(builders::refused_instance)),
            endpoint: builders::endpoint(plan, service.as_ref(), node.as_ref()),
            backend_ref: deployment.map(|_| format!("deployment/{}", plan.name)),
        })
    }

    async fn teardown(&self, plan: &ServerPlan, reclaim: ReclaimPolicy) -> Result<Teardown, BackendError> {
        self.written.lock().unwrap().remove(&(plan.namespace.clone(), plan.name.clone()));
        // Their watch events wake the teardown again as they go; every delete
        // and the claim's fate are decided below, on fresh reads.
        if self.cache.get().is_some_and(|cache| cache.shows_going(plan)) {
            return Ok(Teardown::Pending);
        }
        // Foreground: the Deployment stays visible until its pods are gone, so
        // `kubectl get deployment` tells the same story as the teardown.
        let mut pending = self.remove::<Deployment>(plan, &plan.name, DeleteParams::foreground()).await?;
        pending |= self.remove::<Service>(plan, &plan.name, DeleteParams::background()).await?;
        pending |= self.remove::<ConfigMap>(plan, &plan::config_name(&plan.name), DeleteParams::background()).await?;
        // A game saving its world in its grace period is still running: the
        // teardown is not done until the last pod is gone.
        pending |= !self.pods(plan).await?.is_empty();
        // The world is decided on last, once nothing of the server runs or is
        // being removed: a game still saving is never cut off from its volume,
        // and the policy that counts is the one the GameServer has then (one
        // changed while the deletion waited is honoured either way).
        if pending {
            return Ok(Teardown::Pending);
        }
        let pending = match reclaim {
            ReclaimPolicy::Delete => {
                self.remove::<PersistentVolumeClaim>(plan, &plan::volume_name(&plan.name), DeleteParams::background())
                    .await?
            }
            ReclaimPolicy::Retain => self.release_claim(plan).await?,
        };
        Ok(if pending { Teardown::Pending } else { Teardown::Done })
    }
}

impl Logs for KubernetesOrchestrator {
    async fn logs(&self, plan: &ServerPlan, tail: Option<i64>) -> Result<String, BackendError> {
        let (name, what) = self.log_pod(plan).await?;
        let params = LogParams { container: Some(builders::CONTAINER.into()), tail_lines: tail, ..Default::default() };
        self.api::<Pod>(plan).logs(&name, &params).await.map_err(|e| backend_error(format!("{what} (pod/{name})"), e))
    }

    fn follow_logs(&self, plan: &ServerPlan, tail: Option<i64>) -> BoxStream<'static, Result<String, BackendError>> {
        use futures::{AsyncBufReadExt, StreamExt, TryStreamExt};
        let (this, plan) = (self.clone(), plan.clone());
        futures::stream::once(async move {
            let (name, what) = this.log_pod(&plan).await?;
            let params = LogParams {
                container: Some(builders::CONTAINER.into()),
                tail_lines: tail,
                follow: true,
                ..Default::default()
            };
            let lines = this
                .api::<Pod>(&plan)
                .log_stream(&name, &params)
                .await
                .map_err(|e| backend_error(format!("{what} (pod/{name})"), e))?
                .lines()
                .map_ok(|line| line + "\n")
                .map_err(move |e| BackendError::Other { what: what.clone(), reason: e.to_string() });
            Ok::<_, BackendError>(lines)
        })
        .try_flatten()
        .boxed()
    }
}

impl Reports for KubernetesOrchestrator {
    /// Through the API server's pod proxy
    /// (`GET /api/v1/namespaces/NS/pods/POD:9396/proxy/status?since=N`, RBAC
    /// `get` on `pods/proxy`): the game's pod has no credentials, and the
    /// controller may not reach pod addresses. The pod is found in the
    /// controller's cache: one request per read.
    async fn report(&self, plan: &ServerPlan, since: u64) -> Result<Option<supervisor::Report>, BackendError> {
        let pods = match self.cache.get().and_then(|cache| cache.pods(&plan.namespace, &plan.name)) {
            Some(pods) => pods,
            None => self.pods(plan).await?,
        };
        let Some(pod) = builders::current_pod(&pods).filter(|p| builders::instance(p).running) else {
            return Ok(None);
        };
        let name = pod.metadata.name.clone().unwrap_or_default();
        let what = format!("read the supervisor's report of GameServer {} (pod/{name})", plan.name);
        let request = http::Request::get(report_path(&plan.namespace, &name, since))
            .body(Vec::new())
            .map_err(|e| BackendError::Other { what: what.clone(), reason: e.to_string() })?;
        let text = self.client.request_text(request).await.map_err(|e| backend_error(what.clone(), e))?;
        serde_json::from_str(&text).map(Some).map_err(|e| BackendError::Other {
            what,
            reason: format!(
                "the answer is not a supervisor's report ({e}): {}",
                text.chars().take(200).collect::<String>()
            ),
        })
    }
}

/// The pod proxy's path to the report of the supervisor in pod `pod`.
pub fn report_path(namespace: &str, pod: &str, since: u64) -> String {
    format!("/api/v1/namespaces/{namespace}/pods/{pod}:{}/proxy/status?since={since}", supervisor::STATUS_PORT)
}

/// How long a console session may take to close once its input ended.
const CONSOLE_CLOSE: Duration = Duration::from_secs(5);

impl Console for KubernetesOrchestrator {
    /// Through the API server (`pods/attach`): governed by the caller's RBAC,
    /// and in the cluster's audit log.
    async fn attach(&self, plan: &ServerPlan) -> Result<ConsoleSession, BackendError> {
        use futures::StreamExt;
        let pods = self.pods(plan).await?;
        let Some(name) = builders::current_pod(&pods).and_then(|p| p.metadata.name.clone()) else {
            return Err(BackendError::Other {
                what: format!("open the console of GameServer {}", plan.name),
                reason: "no pod runs the server".into(),
            });
        };
        let what = format!("the console of GameServer {} (pod/{name})", plan.name);
        let params = AttachParams::default().container(builders::CONTAINER).stdin(true).stdout(true).stderr(true);
        let mut attached =
            self.api::<Pod>(plan).attach(&name, &params).await.map_err(|e| backend_error(format!("open {what}"), e))?;
        let input = attached.stdin().expect("attached with stdin");
        let chunks = |reader: Option<_>| {
            tokio_util::io::ReaderStream::new(reader.expect("attached with the stream")).map(|r| r.map(|b| b.to_vec()))
        };
        let (out, err) = (chunks(attached.stdout()), chunks(attached.stderr()));
        let failed = what.clone();
        let output = futures::stream::select(out, err)
            .map(move |r| r.map_err(|e| BackendError::Other { what: format!("read {failed}"), reason: e.to_string() }))
            .boxed();
        let closing = what.clone();
        // The session's end status is read, or the session fails to hand it
        // over as it closes.
        let status = attached.take_status();
        // The end of input is sent after what was typed: once the session
        // closes, all of it was delivered.
        let closer = Box::pin(async move {
            let closed = async {
                let joined = attached.join().await;
                if let Some(status) = status {
                    status.await;
                }
                joined
            };
            match tokio::time::timeout(CONSOLE_CLOSE, closed).await {
                Ok(Ok(())) => Ok(()),
                Ok(Err(e)) => Err(BackendError::Other { what: format!("close {closing}"), reason: e.to_string() }),
                Err(_) => Err(BackendError::Other {
                    what: format!("close {closing}"),
                    reason: format!(
                        "the session did not close within {} s of the end of its input",
                        CONSOLE_CLOSE.as_secs()
                    ),
                }),
            }
        });
        Ok(ConsoleSession { input: Box::pin(input), output, closer, what })
    }
}

impl KubernetesOrchestrator {
    /// The pod whose log is the server's, and what reading it is called.
    async fn log_pod(&self, plan: &ServerPlan) -> Result<(String, String), BackendError> {
        let pods = self.pods(plan).await?;
        let what = format!("read the log of GameServer {}", plan.name);
        match builders::current_pod(&pods).and_then(|p| p.metadata.name.clone()) {
            Some(name) => Ok((name, what)),
            None => Err(BackendError::Other { what, reason: "no pod runs the server".into() }),
        }
    }
}

fn keep<K>(desired: K, _current: &K) -> K {
    desired
}

/// What to apply to a claim that already exists. A claim's spec is immutable
/// but for its requested size, so the immutable fields are applied as the claim
/// has them: leaving them out would make the apply remove the ones mettaton
/// owns from creating the claim, which the API server refuses; applying the
/// plan's values would fail for a retained claim made with other ones.
pub fn claim_for_existing(
    mut desired: PersistentVolumeClaim,
    current: &PersistentVolumeClaim,
) -> PersistentVolumeClaim {
    if let Some(spec) = desired.spec.as_mut() {
        let current = current.spec.as_ref();
        spec.access_modes = current.and_then(|s| s.access_modes.clone());
        spec.storage_class_name = current.and_then(|s| s.storage_class_name.clone());
    }
    desired
}

fn workload(deployment: &Deployment, existing: usize) -> Workload {
    let desired = deployment.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    let status = deployment.status.as_ref();
    let generation = deployment.metadata.generation.unwrap_or(0);
    let observed = status.and_then(|s| s.observed_generation).unwrap_or(0);
    let updated = status.and_then(|s| s.updated_replicas).unwrap_or(0);
    Workload {
        desired,
        ready: status.and_then(|s| s.ready_replicas).unwrap_or(0),
        rolled_out: observed >= generation && updated == desired,
        existing: i32::try_from(existing).unwrap_or(i32::MAX),
    }
}

/// Whether an object is the server's own: controlled by the GameServer of that
/// name, or, with no controller at all, labelled as the server's (a claim
/// retained from an earlier GameServer of the same name).
pub fn is_ours(meta: &ObjectMeta, gameserver: &str) -> bool {
    match meta.owner_references.iter().flatten().find(|r| r.controller == Some(true)) {
        Some(controller) => is_gameserver_ref(controller, gameserver),
        None => meta.labels.as_ref().and_then(|l| l.get(plan::LABEL_GAMESERVER)).is_some_and(|n| n == gameserver),
    }
}

fn is_gameserver_ref(r: &OwnerReference, gameserver: &str) -> bool {
    r.kind == "GameServer" && r.api_version.split('/').next() == Some(api::GROUP) && r.name == gameserver
}

fn has_retained_label(meta: &ObjectMeta) -> bool {
    meta.labels.as_ref().is_some_and(|l| l.contains_key(LABEL_RETAINED))
}

/// The merge patch that releases a claim from GameServer `gameserver`, or
/// `None` when there is nothing to do (already released, or not the server's).
pub fn release_patch(meta: &ObjectMeta, gameserver: &str) -> Option<Value> {
    if !is_ours(meta, gameserver) {
        return None;
    }
    let refs = meta.owner_references.clone().unwrap_or_default();
    let remaining: Vec<OwnerReference> = refs.iter().filter(|r| !is_gameserver_ref(r, gameserver)).cloned().collect();
    let labelled = meta.labels.as_ref().and_then(|l| l.get(LABEL_RETAINED)).is_some_and(|v| v == "true");
    if remaining.len() == refs.len() && labelled {
        return None;
    }
    Some(json!({
        "metadata": {
            "resourceVersion": meta.resource_version,
            "ownerReferences": remaining,
            "labels": { LABEL_RETAINED: "true" }
        }
    }))
}

fn merge_params() -> PatchParams {
    PatchParams { field_manager: Some(api::FIELD_MANAGER.into()), ..Default::default() }
}

/// `kind/name` as kubectl spells it, for error messages.
fn describe<K: Resource<DynamicType = ()>>(name: &str) -> String {
    format!("{}/{name}", K::kind(&()).to_lowercase())
}

/// A kube error as the backend error the user sees: the API server's own
/// message when it refused the request.
pub fn backend_error(what: impl Into<String>, err: kube::Error) -> BackendError {
    let what = what.into();
    match err {
        // 408 and 429 say "not now", not "no": worth a retry like a 5xx.
        kube::Error::Api(status) if (400..500).contains(&status.code) && !matches!(status.code, 408 | 429) => {
            let reason =
                if status.message.is_empty() { format!("HTTP {}", status.code) } else { status.message.clone() };
            BackendError::Refused { what, reason }
        }
        kube::Error::Api(status) => {
            BackendError::Other { what, reason: format!("{} (HTTP {})", status.message, status.code) }
        }
        kube::Error::HyperError(_) | kube::Error::Service(_) => {
            BackendError::Unreachable(format!("{what}: {}", error_chain(&err)))
        }
        other => BackendError::Other { what, reason: error_chain(&other) },
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn meta(value: Value) -> ObjectMeta {
        serde_json::from_value(value).unwrap()
    }

    fn gs_ref(name: &str, uid: &str) -> Value {
        json!({ "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer", "name": name, "uid": uid,
                "controller": true, "blockOwnerDeletion": true })
    }

    #[test]
    fn objects_are_ours_when_the_game_server_controls_them_or_only_our_label_claims_them() {
        assert!(is_ours(&meta(json!({ "ownerReferences": [gs_ref("mc", "u1")] })), "mc"));
        assert!(!is_ours(&meta(json!({ "ownerReferences": [gs_ref("other", "u1")] })), "mc"));
        let rs_ref =
            json!({ "apiVersion": "apps/v1", "kind": "ReplicaSet", "name": "mc", "uid": "u", "controller": true });
        let labelled = json!({ plan::LABEL_GAMESERVER: "mc" });
        assert!(
            !is_ours(&meta(json!({ "ownerReferences": [rs_ref], "labels": labelled })), "mc"),
            "controlled by another"
        );
        assert!(is_ours(&meta(json!({ "labels": labelled })), "mc"), "released by an earlier GameServer");
        assert!(!is_ours(&meta(json!({ "labels": { "app": "mc" } })), "mc"), "someone else's");
    }

    #[test]
    fn releasing_a_claim_drops_only_the_game_servers_reference_and_labels_it() {
        let other = json!({ "apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "k" });
        let claim = meta(json!({
            "resourceVersion": "42",
            "labels": { plan::LABEL_GAMESERVER: "mc" },
            "ownerReferences": [other, gs_ref("mc", "u1")]
        }));
        let patch = release_patch(&claim, "mc").unwrap();
        assert_eq!(
            patch,
            json!({ "metadata": {
                "resourceVersion": "42",
                "ownerReferences": [{ "apiVersion": "v1", "kind": "ConfigMap", "name": "keep", "uid": "k" }],
                "labels": { LABEL_RETAINED: "true" }
            } })
        );
        let released = meta(json!({ "labels": { plan::LABEL_GAMESERVER: "mc", LABEL_RETAINED: "true" } }));
        assert_eq!(release_patch(&released, "mc"), None, "already released");
        let foreign = meta(json!({ "labels": { "app": "mc" } }));
        assert_eq!(release_patch(&foreign, "mc"), None, "not the server's");
    }

    #[test]
    fn an_existing_claim_keeps_its_immutable_fields() {
        let desired: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": "mc-data" },
            "spec": { "accessModes": ["ReadWriteOnce"], "storageClassName": "fast",
                      "resources": { "requests": { "storage": "20Gi" } } }
        }))
        .unwrap();
        let current: PersistentVolumeClaim = serde_json::from_value(json!({
            "metadata": { "name": "mc-data" },
            "spec": { "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "storageClassName": "slow", "volumeName": "pv-1",
                      "resources": { "requests": { "storage": "10Gi" } } }
        }))
        .unwrap();
        let applied = serde_json::to_value(claim_for_existing(desired, &current)).unwrap();
        assert_eq!(
            applied["spec"],
            json!({ "accessModes": ["ReadWriteOnce", "ReadOnlyMany"], "storageClassName": "slow",
                    "resources": { "requests": { "storage": "20Gi" } } })
        );
    }

    #[test]
    fn the_report_is_read_through_the_pod_proxy_on_the_supervisors_port() {
        assert_eq!(
            report_path("games", "mc-7d9f-abcde", 12),
            "/api/v1/namespaces/games/pods/mc-7d9f-abcde:9396/proxy/status?since=12"
        );
    }

    #[test]
    fn refusals_carry_the_api_servers_message() {
        let status = |code: u16, message: &str| {
            kube::Error::Api(Box::new(
                serde_json::from_value(json!({ "code": code, "message": message, "status": "Failure" })).unwrap(),
            ))
        };
        match backend_error("apply service/mc", status(422, "spec.ports[0].nodePort: Invalid value: 80")) {
            BackendError::Refused { what, reason } => {
                assert_eq!(what, "apply service/mc");
                assert_eq!(reason, "spec.ports[0].nodePort: Invalid value: 80");
            }
            other => panic!("{other:?}"),
        }
        assert!(matches!(backend_error("x", status(403, "forbidden")), BackendError::Refused { .. }));
        assert!(matches!(backend_error("x", status(429, "slow down")), BackendError::Other { .. }));
        assert!(matches!(backend_error("x", status(500, "etcd")), BackendError::Other { .. }));
        let transport =
            kube::Error::Service(Box::new(std::io::Error::new(std::io::ErrorKind::ConnectionRefused, "refused")));
        assert!(matches!(backend_error("x", transport), BackendError::Unreachable(_)));
    }

    #[test]
    fn workload_is_rolled_out_when_the_latest_generation_runs_everywhere() {
        let d = |generation: i64, observed: i64, replicas: i32, updated: i32, ready: i32| -> Deployment {
            serde_json::from_value(json!({
                "metadata": { "name": "mc", "generation": generation },
                "spec": { "replicas": replicas, "selector": {}, "template": {} },
                "status": { "observedGeneration": observed, "updatedReplicas": updated, "readyReplicas": ready }
            }))
            .unwrap()
        };
        assert_eq!(workload(&d(3, 3, 1, 1, 1), 1), Workload { desired: 1, ready: 1, rolled_out: true, existing: 1 });
        assert!(!workload(&d(4, 3, 1, 1, 1), 1).rolled_out, "new generation not seen yet");
        assert!(!workload(&d(3, 3, 1, 0, 0), 2).rolled_out, "new pod not created yet");
        assert_eq!(workload(&d(5, 5, 0, 0, 0), 1), Workload { desired: 0, ready: 0, rolled_out: true, existing: 1 });
    }
}
