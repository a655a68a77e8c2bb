//! The controller's watch caches of a game server's children (Deployments,
//! Services, pods, ConfigMaps, claims), read by the Kubernetes backend instead
//! of the API server where a stale answer costs at most one more read.
//!
//! The controller watches these objects anyway to be woken by their changes;
//! [`reflect`] keeps what those watches see in stores as well, so that a
//! reconcile of a server in its steady state sends no request at all, and one
//! during creation only the reads and writes that matter. How the backend uses
//! them, and where it does not (teardown, which decides about data), is in
//! [`super::KubernetesOrchestrator`].

use std::collections::{BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};

use futures::stream::BoxStream;
use futures::{FutureExt, StreamExt, TryStreamExt};
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, PodSpec, PodStatus, Service};
use kube::runtime::reflector::{self, ObjectRef, Store};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Resource};
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::is_ours;
use crate::api::{self, GameServer};
use crate::orchestrator::ServerKey;
use crate::plan::{self, LABEL_GAMESERVER, ServerPlan};

/// Label selecting the objects mettaton manages.
pub const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=mettaton";

/// Read handles of the children's stores.
#[derive(Clone)]
pub struct ChildCache {
    deployments: Store<Deployment>,
    services: Store<Service>,
    pods: Store<Pod>,
    /// The pods' names by server, kept beside their store by the same watch.
    pod_index: Arc<Mutex<PodIndex>>,
    config_maps: Store<ConfigMap>,
    claims: Store<PersistentVolumeClaim>,
}

/// The names of each server's pods, by (namespace, `mettaton.dev/gameserver`
/// label): finding a server's pods in the store alone means going through
/// every pod, and at 5000 servers that was most of the controller's CPU.
#[derive(Debug, Default)]
struct PodIndex {
    by_server: HashMap<(String, String), BTreeSet<String>>,
    /// Each pod's server, to move a relabelled pod.
    server_of: HashMap<(String, String), String>,
    /// The index being rebuilt by a (re)list, swapped in when it is complete,
    /// as the store does.
    relisting: Option<Box<PodIndex>>,
}

impl PodIndex {
    fn on_event(&mut self, event: &watcher::Event<Pod>) {
        match event {
            watcher::Event::Init => self.relisting = Some(Box::default()),
            watcher::Event::InitApply(pod) => {
                if let Some(next) = self.relisting.as_mut() {
                    next.insert(pod);
                }
            }
            watcher::Event::InitDone => {
                if let Some(next) = self.relisting.take() {
                    *self = *next;
                }
            }
            watcher::Event::Apply(pod) => self.insert(pod),
            watcher::Event::Delete(pod) => self.remove(pod),
        }
    }

    fn insert(&mut self, pod: &Pod) {
        self.remove(pod);
        let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else { return };
        let Some(server) = pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_GAMESERVER)) else { return };
        self.by_server.entry((ns.clone(), server.clone())).or_default().insert(name.clone());
        self.server_of.insert((ns, name), server.clone());
    }

    fn remove(&mut self, pod: &Pod) {
        let (Some(ns), Some(name)) = (pod.metadata.namespace.clone(), pod.metadata.name.clone()) else { return };
        let Some(server) = self.server_of.remove(&(ns.clone(), name.clone())) else { return };
        let key = (ns, server);
        if let Some(names) = self.by_server.get_mut(&key) {
            names.remove(&name);
            if names.is_empty() {
                self.by_server.remove(&key);
            }
        }
    }

    fn names(&self, namespace: &str, gameserver: &str) -> Vec<String> {
        let key = (namespace.to_string(), gameserver.to_string());
        self.by_server.get(&key).map(|names| names.iter().cloned().collect()).unwrap_or_default()
    }
}

/// The watch streams that fill a [`ChildCache`]: they must be polled (the
/// controller does, as the triggers of its reconciles: [`server_keys`]) for
/// the cache to fill.
pub struct ChildStreams {
    pub deployments: BoxStream<'static, Result<Deployment, watcher::Error>>,
    pub services: BoxStream<'static, Result<Service, watcher::Error>>,
    pub pods: BoxStream<'static, Result<Pod, watcher::Error>>,
    pub config_maps: BoxStream<'static, Result<ConfigMap, watcher::Error>>,
    pub claims: BoxStream<'static, Result<PersistentVolumeClaim, watcher::Error>>,
}

/// What a cache knows of one object.
#[derive(Debug)]
pub enum Lookup<K> {
    /// The store has not had its first full list yet: ask the API server.
    Unknown,
    Absent,
    Present(Arc<K>),
}

/// A kind of child kept in a [`ChildCache`].
pub trait Cached: Resource<Scope = NamespaceResourceScope, DynamicType = ()> + Clone + Debug + 'static {
    fn store(cache: &ChildCache) -> &Store<Self>;

    /// Drops what the backend never reads, before the object is stored: by
    /// default the field records of other managers (only mettaton's own,
    /// which tells what its last apply set, is of use), and mettaton's own is
    /// kept as its JSON text.
    fn slim(&mut self) {
        keep_own_managed_fields(self);
    }
}

macro_rules! cached {
    ($kind:ty, $field:ident) => {
        impl Cached for $kind {
            fn store(cache: &ChildCache) -> &Store<Self> {
                &cache.$field
            }
        }
    };
}
cached!(Deployment, deployments);
cached!(Service, services);
cached!(ConfigMap, config_maps);
cached!(PersistentVolumeClaim, claims);

impl Cached for Pod {
    fn store(cache: &ChildCache) -> &Store<Self> {
        &cache.pods
    }

    /// Pods are only observed, never applied: of them the backend reads the
    /// identity, labels, times, node, conditions, container statuses and
    /// the install container's status (see `builders::instance` and
    /// `builders::current_pod`). The rest (the whole container spec, volumes,
    /// the other init containers, field records) is most of a pod.
    fn slim(&mut self) {
        let meta = &mut self.metadata;
        meta.managed_fields = None;
        meta.annotations = None;
        if let Some(spec) = self.spec.as_mut() {
            *spec = PodSpec { node_name: spec.node_name.take(), ..PodSpec::default() };
        }
        if let Some(status) = self.status.as_mut() {
            *status = PodStatus {
                conditions: status.conditions.take(),
                container_statuses: status.container_statuses.take(),
                init_container_statuses: status.init_container_statuses.take().and_then(|mut statuses| {
                    statuses.retain(|c| c.name == super::builders::INSTALL_CONTAINER);
                    (!statuses.is_empty()).then_some(statuses)
                }),
                phase: status.phase.take(),
                ..PodStatus::default()
            };
        }
    }
}

impl ChildCache {
    /// The object `name` in `namespace`, as the cache has it.
    pub fn get<K: Cached>(&self, namespace: &str, name: &str) -> Lookup<K> {
        let store = K::store(self);
        if !is_ready(store) {
            return Lookup::Unknown;
        }
        match store.get(&ObjectRef::new(name).within(namespace)) {
            Some(object) => Lookup::Present(object),
            None => Lookup::Absent,
        }
    }

    /// The pods of GameServer `gameserver` in `namespace` (by their
    /// `mettaton.dev/gameserver` label), or `None` when the pod store has not
    /// had its first full list yet.
    pub fn pods(&self, namespace: &str, gameserver: &str) -> Option<Vec<Pod>> {
        if !is_ready(&self.pods) {
            return None;
        }
        let names = self.pod_index.lock().unwrap().names(namespace, gameserver);
        let pods = names.into_iter().filter_map(|name| self.pods.get(&ObjectRef::new(&name).within(namespace)));
        // The index moves a moment before the store: what it has just
        // dropped is not returned, what the store has not taken yet neither.
        let labelled = |pod: &Arc<Pod>| {
            pod.metadata.labels.as_ref().and_then(|l| l.get(LABEL_GAMESERVER)).map(String::as_str) == Some(gameserver)
        };
        Some(pods.filter(labelled).map(|p| Pod::clone(&p)).collect())
    }

    /// Whether the server's runtime is shown still going away with nothing
    /// left to ask of the API server: every Deployment, Service and ConfigMap
    /// of the server held here is being deleted already, and one of them or a
    /// pod is still there. `false` when the cache cannot tell.
    pub fn shows_going(&self, plan: &ServerPlan) -> bool {
        /// `Some(true)`: being deleted; `Some(false)`: gone (or not the
        /// server's); `None`: not known, or still to be deleted.
        fn going<K: Cached>(lookup: Lookup<K>, gameserver: &str) -> Option<bool> {
            match lookup {
                Lookup::Unknown => None,
                Lookup::Absent => Some(false),
                Lookup::Present(object) if !is_ours(object.meta(), gameserver) => Some(false),
                Lookup::Present(object) => object.meta().deletion_timestamp.is_some().then_some(true),
            }
        }
        let (ns, name) = (plan.namespace.as_str(), plan.name.as_str());
        let children = [
            going(self.get::<Deployment>(ns, name), name),
            going(self.get::<Service>(ns, name), name),
            going(self.get::<ConfigMap>(ns, &plan::config_name(name)), name),
        ];
        let Some(pods) = self.pods(ns, name) else { return false };
        children.iter().all(Option::is_some) && (children.contains(&Some(true)) || !pods.is_empty())
    }
}

/// Whether the store has had its first full list.
fn is_ready<K: Resource + Clone>(store: &Store<K>) -> bool
where
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

/// Watches the managed children in `namespace` (all when `None`), keeping them
/// in the returned cache as the returned streams are polled.
pub fn reflect(client: &Client, namespace: Option<&str>) -> (ChildCache, ChildStreams) {
    let (deployments, deployment_stream) = reflected::<Deployment>(client, namespace, |_| {});
    let (services, service_stream) = reflected::<Service>(client, namespace, |_| {});
    let pod_index = Arc::new(Mutex::new(PodIndex::default()));
    let index = pod_index.clone();
    let (pods, pod_stream) = reflected::<Pod>(client, namespace, move |event| index.lock().unwrap().on_event(event));
    let (config_maps, config_map_stream) = reflected::<ConfigMap>(client, namespace, |_| {});
    let (claims, claim_stream) = reflected::<PersistentVolumeClaim>(client, namespace, |_| {});
    (
        ChildCache { deployments, services, pods, pod_index, config_maps, claims },
        ChildStreams {
            deployments: deployment_stream,
            services: service_stream,
            pods: pod_stream,
            config_maps: config_map_stream,
            claims: claim_stream,
        },
    )
}

/// The servers the children's changes are about, as the watches see them:
/// a Deployment, Service, claim or ConfigMap wakes the GameServer that
/// controls it, a pod the one its `mettaton.dev/gameserver` label names (a
/// ReplicaSet is its owner). A watch's errors are logged here; the watch
/// backs off and retries on its own.
pub fn server_keys(streams: ChildStreams) -> BoxStream<'static, ServerKey> {
    fn owned<K: Resource + Send + 'static>(
        stream: BoxStream<'static, Result<K, watcher::Error>>,
    ) -> BoxStream<'static, ServerKey> {
        keys(stream, |object| {
            let namespace = object.meta().namespace.clone()?;
            let owner = object.meta().owner_references.iter().flatten().find(|r| {
                r.controller == Some(true)
                    && r.kind == GameServer::kind(&())
                    && r.api_version == GameServer::api_version(&())
            })?;
            Some(ServerKey { namespace, name: owner.name.clone() })
        })
    }
    fn keys<K>(
        stream: BoxStream<'static, Result<K, watcher::Error>>,
        key: fn(&K) -> Option<ServerKey>,
    ) -> BoxStream<'static, ServerKey>
    where
        K: Send + 'static,
    {
        stream
            .filter_map(move |item| {
                futures::future::ready(match item {
                    Ok(object) => key(&object),
                    Err(e) => {
                        tracing::warn!(error = %e, "watch of the game servers' children");
                        None
                    }
                })
            })
            .boxed()
    }
    let pods = keys(streams.pods, |pod| {
        let namespace = pod.metadata.namespace.clone()?;
        let name = pod.metadata.labels.as_ref()?.get(LABEL_GAMESERVER)?.clone();
        Some(ServerKey { namespace, name })
    });
    futures::stream::select_all([
        owned(streams.deployments),
        owned(streams.services),
        owned(streams.claims),
        owned(streams.config_maps),
        pods,
    ])
    .boxed()
}

type Reflected<K> = (Store<K>, BoxStream<'static, Result<K, watcher::Error>>);

/// A watch of the managed objects of kind `K`, kept in a store; `seen` sees
/// every event first.
fn reflected<K>(
    client: &Client,
    namespace: Option<&str>,
    seen: impl Fn(&watcher::Event<K>) + Send + 'static,
) -> Reflected<K>
where
    K: Cached + DeserializeOwned + Send + Sync,
{
    let api: Api<K> = match namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    let (store, writer) = reflector::store();
    let stream = watcher(api, watcher::Config::default().labels(MANAGED_SELECTOR))
        .default_backoff()
        .modify(K::slim)
        .inspect_ok(seen)
        .reflect(writer)
        .touched_objects()
        .boxed();
    (store, stream)
}

/// Drops the field records of other managers: only mettaton's own (which
/// tells what its last apply set) is of use, and pods and Deployments carry
/// several of the plane's controllers. Mettaton's own is kept as its compact
/// JSON text, which the backend parses when it compares: parsed, a
/// Deployment's record is some 60 nested one-key maps, ~15 KiB of tree nodes
/// against 1.2 KiB of text, per server.
fn keep_own_managed_fields<K: Resource>(object: &mut K) {
    if let Some(fields) = object.meta_mut().managed_fields.as_mut() {
        fields.retain(|m| m.manager.as_deref() == Some(api::FIELD_MANAGER));
        for record in fields.iter_mut() {
            if let Some(fields_v1) = record.fields_v1.as_mut()
                && !fields_v1.0.is_string()
            {
                fields_v1.0 = Value::String(fields_v1.0.to_string());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::observed::ProblemKind;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
    use kube::runtime::watcher::Event;

    fn pod(ns: &str, name: &str, labels: &[(&str, &str)]) -> Pod {
        let mut pod = Pod::default();
        pod.metadata.name = Some(name.into());
        pod.metadata.namespace = Some(ns.into());
        pod.metadata.labels = Some(labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect());
        pod
    }

    /// A cache whose pod store and index have seen `events`, as the watch
    /// feeds them; more can be fed with [`feed`].
    fn cache_with_pod_events(events: &[Event<Pod>]) -> (ChildCache, reflector::store::Writer<Pod>) {
        let mut cache = empty_cache();
        let (store, mut writer) = reflector::store::<Pod>();
        cache.pods = store;
        for event in events {
            feed(&cache, &mut writer, event);
        }
        (cache, writer)
    }

    fn feed(cache: &ChildCache, writer: &mut reflector::store::Writer<Pod>, event: &Event<Pod>) {
        cache.pod_index.lock().unwrap().on_event(event);
        writer.apply_watcher_event(event);
    }

    fn listing(pods: &[Pod]) -> Vec<Event<Pod>> {
        let mut events = vec![Event::Init];
        events.extend(pods.iter().cloned().map(Event::InitApply));
        events.push(Event::InitDone);
        events
    }

    fn cache_with_pods(pods: &[Pod]) -> (ChildCache, reflector::store::Writer<Pod>) {
        cache_with_pod_events(&listing(pods))
    }

    fn names(pods: Option<Vec<Pod>>) -> Vec<String> {
        pods.unwrap().into_iter().filter_map(|p| p.metadata.name).collect()
    }

    /// A cache whose stores have not listed anything yet.
    fn empty_cache() -> ChildCache {
        ChildCache {
            deployments: reflector::store().0,
            services: reflector::store().0,
            pods: reflector::store().0,
            pod_index: Arc::default(),
            config_maps: reflector::store().0,
            claims: reflector::store().0,
        }
    }

    #[test]
    fn an_unlisted_store_knows_nothing_and_a_listed_one_knows_absence() {
        let cache = empty_cache();
        assert!(matches!(cache.get::<Pod>("ns", "a"), Lookup::Unknown));
        assert!(cache.pods("ns", "mc").is_none());
        let (cache, _writer) = cache_with_pods(&[pod("ns", "a", &[])]);
        assert!(matches!(cache.get::<Pod>("ns", "a"), Lookup::Present(_)));
        assert!(matches!(cache.get::<Pod>("ns", "b"), Lookup::Absent));
        assert!(matches!(cache.get::<Pod>("other", "a"), Lookup::Absent));
    }

    #[test]
    fn pods_are_found_by_namespace_and_server_label() {
        let (cache, _writer) = cache_with_pods(&[
            pod("ns", "mc-1", &[(LABEL_GAMESERVER, "mc"), ("x", "1")]),
            pod("ns", "other", &[(LABEL_GAMESERVER, "other")]),
            pod("ns", "unlabelled", &[]),
            pod("elsewhere", "mc-2", &[(LABEL_GAMESERVER, "mc")]),
        ]);
        assert_eq!(names(cache.pods("ns", "mc")), vec!["mc-1"]);
        assert_eq!(names(cache.pods("elsewhere", "mc")), vec!["mc-2"]);
        assert_eq!(names(cache.pods("ns", "nobody")), Vec::<String>::new());
    }

    #[test]
    fn the_pod_index_follows_the_watch() {
        let mc = |name: &str| pod("ns", name, &[(LABEL_GAMESERVER, "mc")]);
        let (cache, mut writer) = cache_with_pods(&[mc("mc-1")]);
        feed(&cache, &mut writer, &Event::Apply(mc("mc-2")));
        assert_eq!(names(cache.pods("ns", "mc")), vec!["mc-1", "mc-2"]);
        feed(&cache, &mut writer, &Event::Delete(mc("mc-1")));
        assert_eq!(names(cache.pods("ns", "mc")), vec!["mc-2"]);
        // Relabelled by hand: it moves to the other server.
        feed(&cache, &mut writer, &Event::Apply(pod("ns", "mc-2", &[(LABEL_GAMESERVER, "other")])));
        assert_eq!(names(cache.pods("ns", "mc")), Vec::<String>::new());
        assert_eq!(names(cache.pods("ns", "other")), vec!["mc-2"]);
        // A relist replaces it all once complete; until then the old holds.
        feed(&cache, &mut writer, &Event::Init);
        feed(&cache, &mut writer, &Event::InitApply(mc("mc-3")));
        assert_eq!(names(cache.pods("ns", "other")), vec!["mc-2"]);
        feed(&cache, &mut writer, &Event::InitDone);
        assert_eq!(names(cache.pods("ns", "other")), Vec::<String>::new());
        assert_eq!(names(cache.pods("ns", "mc")), vec!["mc-3"]);
    }

    #[test]
    fn a_cached_pod_keeps_what_the_backend_reads() {
        let full: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "mc-1", "namespace": "ns", "labels": { "gs": "mc" },
                          "creationTimestamp": "2026-01-01T00:00:00Z", "annotations": { "a": "b" },
                          "managedFields": [{ "manager": "kube-scheduler" }] },
            "spec": { "nodeName": "node-1", "containers": [{ "name": "game", "image": "x" }] },
            "status": { "phase": "Running", "podIP": "10.0.0.1",
                        "conditions": [{ "type": "Ready", "status": "True" }],
                        "containerStatuses": [{ "name": "game", "image": "x", "imageID": "", "ready": true,
                                                "restartCount": 2, "state": { "running": {} } }] }
        }))
        .unwrap();
        let mut slim = full.clone();
        slim.slim();
        assert_eq!(
            crate::orchestrator::kubernetes::builders::instance(&slim),
            crate::orchestrator::kubernetes::builders::instance(&full)
        );
        assert_eq!(slim.status.as_ref().unwrap().init_container_statuses, None);
        assert_eq!(slim.spec.as_ref().unwrap().node_name.as_deref(), Some("node-1"));
        assert!(slim.spec.as_ref().unwrap().containers.is_empty());
        assert_eq!(slim.metadata.labels, full.metadata.labels);
        assert_eq!(slim.metadata.creation_timestamp, full.metadata.creation_timestamp);
        assert_eq!(slim.status.as_ref().unwrap().pod_ip, None);
        assert_eq!(slim.metadata.managed_fields, None);
    }

    /// A failed install is read from the install container's status, which
    /// the cache keeps, alone of the init containers'.
    #[test]
    fn a_cached_pod_keeps_its_install_containers_status() {
        let full: Pod = serde_json::from_value(serde_json::json!({
            "metadata": { "name": "mc-1", "namespace": "ns" },
            "status": { "phase": "Pending",
                        "initContainerStatuses": [
                            { "name": "mettaton-supervisor", "image": "s", "imageID": "", "ready": true,
                              "restartCount": 0, "state": { "terminated": { "exitCode": 0 } } },
                            { "name": "install", "image": "i", "imageID": "", "ready": false, "restartCount": 1,
                              "state": { "waiting": { "reason": "CrashLoopBackOff" } },
                              "lastState": { "terminated": { "exitCode": 2, "message": "no such file" } } }],
                        "containerStatuses": [{ "name": "game", "image": "x", "imageID": "", "ready": false,
                                                "restartCount": 0, "state": { "waiting": { "reason": "PodInitializing" } } }] }
        }))
        .unwrap();
        let mut slim = full.clone();
        slim.slim();
        let instance = crate::orchestrator::kubernetes::builders::instance(&slim);
        assert_eq!(instance, crate::orchestrator::kubernetes::builders::instance(&full));
        assert_eq!(
            instance.problem.map(|p| (p.kind, p.message)),
            Some((ProblemKind::InstallFailed, Some("no such file".into())))
        );
        let kept = slim.status.unwrap().init_container_statuses.unwrap();
        assert_eq!(kept.iter().map(|c| c.name.as_str()).collect::<Vec<_>>(), ["install"]);
    }

    /// A store that has listed `objects`, and its writer (the store says
    /// nothing once its writer is gone).
    fn listed<K: Cached>(objects: Vec<K>) -> (Store<K>, reflector::store::Writer<K>) {
        let (store, mut writer) = reflector::store::<K>();
        writer.apply_watcher_event(&Event::Init);
        for object in objects {
            writer.apply_watcher_event(&Event::InitApply(object));
        }
        writer.apply_watcher_event(&Event::InitDone);
        (store, writer)
    }

    fn child<K: Cached + Default>(name: &str, gameserver: &str, deleting: bool) -> K {
        let mut object = K::default();
        let meta = object.meta_mut();
        meta.name = Some(name.into());
        meta.namespace = Some("games".into());
        meta.labels = Some([(crate::plan::LABEL_GAMESERVER.to_string(), gameserver.to_string())].into());
        if deleting {
            meta.deletion_timestamp =
                Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH));
        }
        object
    }

    #[test]
    fn a_teardown_waits_on_the_cache_only_while_all_it_shows_is_going_away() {
        let gs: crate::api::GameServer = serde_json::from_value(serde_json::json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": "mc", "namespace": "games", "uid": "u1" },
            "spec": { "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }] }
        }))
        .unwrap();
        let plan = plan::plan(&gs);
        let labels: Vec<(&str, &str)> = plan.selector.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let game_pod = pod("games", "mc-1", &labels);
        let shows_going = |deployments: Vec<Deployment>, services: Vec<Service>, pods: Vec<Pod>| {
            let (deployments, _d) = listed(deployments);
            let (services, _s) = listed(services);
            let (config_maps, _c) = listed(vec![]);
            let (pods, _p) = cache_with_pods(&pods);
            let cache = ChildCache { deployments, services, config_maps, ..pods };
            cache.shows_going(&plan)
        };
        // Nothing left: the teardown confirms that on fresh reads.
        assert!(!shows_going(vec![], vec![], vec![]));
        // Deleted, on its way out, or its pods still there: wait.
        assert!(shows_going(vec![child("mc", "mc", true)], vec![], vec![]));
        assert!(shows_going(vec![], vec![], vec![game_pod.clone()]));
        assert!(shows_going(vec![child("mc", "mc", true)], vec![child("mc", "mc", true)], vec![game_pod.clone()]));
        // Something still to delete: ask the API server.
        assert!(!shows_going(vec![child("mc", "mc", false)], vec![], vec![game_pod.clone()]));
        assert!(!shows_going(vec![child("mc", "mc", true)], vec![child("mc", "mc", false)], vec![]));
        // Another server's object of that name is not this one's to wait on.
        assert!(!shows_going(vec![child("mc", "other", false)], vec![], vec![]));
        assert!(shows_going(vec![child("mc", "other", false)], vec![], vec![game_pod.clone()]));
        // A store that has not listed yet cannot tell.
        let (deployments, _d) = listed(vec![child::<Deployment>("mc", "mc", true)]);
        let cache = ChildCache { deployments, ..empty_cache() };
        assert!(!cache.shows_going(&plan));
    }

    #[test]
    fn only_mettatons_field_record_is_kept() {
        let entry = |manager: &str| ManagedFieldsEntry { manager: Some(manager.into()), ..Default::default() };
        let mut p = pod("ns", "a", &[]);
        p.metadata.managed_fields = Some(vec![entry("kube-scheduler"), entry(api::FIELD_MANAGER), entry("kwok")]);
        keep_own_managed_fields(&mut p);
        let managers: Vec<_> = p.metadata.managed_fields.unwrap().into_iter().filter_map(|m| m.manager).collect();
        assert_eq!(managers, vec![api::FIELD_MANAGER.to_string()]);
    }
}
