//! The controller end to end on the local control plane: GameServers become
//! Deployments, Services, volumes and config, their status tells players where
//! to connect, and deletion is safe. Each test runs its own controller, limited
//! to the test's namespace, in the test process.

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolumeClaim, Pod, Secret, Service};
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mettaton::api::{GameServer, Phase, conditions};
use mettaton::controller;
use mettaton::orchestrator::kubernetes::KubernetesOrchestrator;
use serde_json::json;
use tokio::sync::oneshot;

use crate::fixtures::game_server;
use crate::support::{
    Proxy, TestNamespace, apiserver_addr, condition_status, counting_client, ensure_crd, eventually, wait_phase,
    wait_ready,
};

const WAIT: Duration = Duration::from_secs(60);
/// Long enough for a retry on a backoff of up to 64 s.
pub const AFTER_BACKOFF: Duration = Duration::from_secs(150);
const SELECTOR: &str = "app.kubernetes.io/managed-by=mettaton";

/// A controller running in this process for one namespace.
pub(crate) struct RunningController {
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
    /// What the controller counts: reconciles, errors by reason.
    pub(crate) metrics: std::sync::Arc<mettaton::metrics::Metrics>,
}

impl RunningController {
    /// Starts a controller for `ns`: `client` watches and writes GameServers,
    /// `backend` is what the Kubernetes orchestrator talks through.
    pub(crate) fn start(ns: &TestNamespace, client: Client, backend: Client) -> Self {
        let (stop, stopped) = oneshot::channel::<()>();
        let reporting = controller::Reporting::default();
        let metrics = reporting.metrics.clone();
        let task = tokio::spawn(controller::run_reporting(
            client,
            KubernetesOrchestrator::new(backend).with_supervisor_image(crate::real_node_common::SUPERVISOR_IMAGE),
            Some(ns.name.clone()),
            async move {
                let _ = stopped.await;
            },
            reporting,
            controller::Tuning::default(),
        ));
        RunningController { stop: Some(stop), task, metrics }
    }

    /// What the controller counted so far as the sample `name` of its metrics.
    pub(crate) fn counted(&self, name: &str) -> u64 {
        crate::support::sample(&self.metrics.encode(), name).map_or(0, |v| v as u64)
    }

    /// Whether the controller's task still runs (it has not panicked or ended).
    pub(crate) fn is_running(&self) -> bool {
        !self.task.is_finished()
    }

    pub(crate) async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(Duration::from_secs(30), &mut self.task).await.expect("controller stops").unwrap();
    }
}

impl Drop for RunningController {
    /// A test that fails before `stop` must not leave its controller running
    /// while its namespace goes: it would put the finalizer back on the
    /// GameServers the namespace's cleanup just released, and with no
    /// controller left to remove it, the namespace would stay Terminating.
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn example(file: &str) -> GameServer {
    let path = format!("{}/examples/{file}", env!("CARGO_MANIFEST_DIR"));
    serde_yaml::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap_or_else(|e| panic!("{path}: {e}"))
}

async fn secret(ns: &TestNamespace, name: &str) {
    let secret: Secret = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Secret", "metadata": { "name": name },
        "stringData": { "password": "test-only-password" }
    }))
    .unwrap();
    ns.api::<Secret>().create(&PostParams::default(), &secret).await.unwrap();
}

async fn ready(api: &Api<GameServer>, name: &str) -> GameServer {
    wait_ready(api, name, WAIT).await
}

async fn phase(api: &Api<GameServer>, name: &str, want: Phase) -> GameServer {
    wait_phase(api, name, want, WAIT).await
}

pub(crate) async fn gone(api: &Api<GameServer>, name: &str) {
    eventually(&format!("{name} deleted"), WAIT, || async {
        match api.get_opt(name).await {
            Ok(None) => Ok(()),
            Ok(Some(gs)) => Err(format!("still there: finalizers {:?}, status {:?}", gs.finalizers(), gs.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

/// The reasons of the Events about a GameServer.
pub(crate) async fn event_reasons(ns: &TestNamespace, name: &str) -> Vec<String> {
    ns.api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.regarding.as_ref().and_then(|r| r.name.as_deref()) == Some(name))
        .filter_map(|e| e.reason)
        .collect()
}

/// How many times each reason was published about a GameServer: a repeated
/// Event is one object with a series count, each repeat a write.
pub(crate) async fn event_counts(ns: &TestNamespace, name: &str) -> std::collections::BTreeMap<String, i32> {
    let mut counts = std::collections::BTreeMap::new();
    for e in ns.api::<Event>().list(&ListParams::default()).await.unwrap().items {
        let regarding = e.regarding.as_ref();
        if regarding.and_then(|r| r.kind.as_deref()) != Some("GameServer")
            || regarding.and_then(|r| r.name.as_deref()) != Some(name)
        {
            continue;
        }
        let times = e.series.as_ref().map_or(1, |s| s.count);
        *counts.entry(e.reason.unwrap_or_default()).or_insert(0) += times;
    }
    counts
}

/// Waits until the Events about `name` include `reason`, then until they
/// have stood still for 3 s, and returns them.
async fn settled_events(ns: &TestNamespace, name: &str, reason: &str) -> std::collections::BTreeMap<String, i32> {
    eventually(&format!("a {reason} event about {name}"), WAIT, || async {
        let counts = event_counts(ns, name).await;
        if counts.contains_key(reason) { Ok(()) } else { Err(counts) }
    })
    .await;
    eventually(&format!("the events about {name} to stand still"), WAIT, || async {
        let before = event_counts(ns, name).await;
        tokio::time::sleep(Duration::from_secs(3)).await;
        let after = event_counts(ns, name).await;
        if after == before { Ok(after) } else { Err((before, after)) }
    })
    .await
}

pub(crate) fn owned_by(obj: &impl ResourceExt, gs: &GameServer) -> bool {
    obj.owner_references().iter().any(|o| o.controller == Some(true) && o.uid == gs.uid().unwrap())
}

/// Checks that the status's address and ports are where players really reach
/// the server: the node the pod runs on, at the Service's node ports.
async fn assert_reachable_as_reported(ns: &TestNamespace, gs: &GameServer) {
    let name = gs.name_any();
    let status = gs.status.as_ref().unwrap();
    let svc = ns.api::<Service>().get(&name).await.unwrap();
    let pods = ns.api::<Pod>().list(&ListParams::default().labels(&format!("mettaton.dev/gameserver={name}"))).await;
    let pod = pods.unwrap().items.into_iter().find(|p| p.metadata.deletion_timestamp.is_none()).expect("a pod");
    let node_name = pod.spec.unwrap().node_name.expect("pod is scheduled");
    let node = Api::<Node>::all(ns.client.clone()).get(&node_name).await.unwrap();
    let internal_ip = node.status.unwrap().addresses.unwrap().into_iter().find(|a| a.type_ == "InternalIP").unwrap();
    assert_eq!(status.address.as_deref(), Some(internal_ip.address.as_str()), "{name}: address of the pod's node");
    let svc_ports = svc.spec.unwrap().ports.unwrap();
    assert_eq!(status.ports.len(), svc_ports.len(), "{name}: one published port per game port");
    for published in &status.ports {
        let sp = svc_ports.iter().find(|p| p.name.as_deref() == Some(published.name.as_str())).unwrap();
        assert_eq!(Some(published.port), sp.node_port, "{name}: port {} is the node port", published.name);
        assert_eq!(published.protocol.as_str(), sp.protocol.as_deref().unwrap());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn examples_become_ready_with_owned_children_and_their_real_address() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-examples").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    secret(&ns, "minecraft-rcon").await;
    secret(&ns, "valheim-password").await;
    let api = ns.api::<GameServer>();
    for file in ["minecraft.yaml", "valheim.yaml", "factorio.yaml"] {
        api.create(&PostParams::default(), &example(file)).await.unwrap();
    }
    for name in ["minecraft", "valheim", "factorio"] {
        let gs = ready(&api, name).await;
        assert_eq!(gs.status.as_ref().unwrap().phase, Some(Phase::Running));
        assert!(gs.finalizers().iter().any(|f| f == mettaton::api::FINALIZER));
        let deployment = ns.api::<Deployment>().get(name).await.unwrap();
        assert!(owned_by(&deployment, &gs), "{name}: Deployment owned");
        assert_eq!(deployment.spec.as_ref().unwrap().replicas, Some(1));
        assert!(owned_by(&ns.api::<Service>().get(name).await.unwrap(), &gs), "{name}: Service owned");
        let pvc = ns.api::<PersistentVolumeClaim>().get(&format!("{name}-data")).await.unwrap();
        assert!(owned_by(&pvc, &gs), "{name}: PVC owned");
        let config = ns.api::<ConfigMap>().get_opt(&format!("{name}-config")).await.unwrap();
        assert_eq!(config.is_some(), !gs.spec.config.is_empty(), "{name}: ConfigMap exactly when config is asked");
        if let Some(cm) = config {
            assert!(owned_by(&cm, &gs), "{name}: ConfigMap owned");
        }
        assert_reachable_as_reported(&ns, &gs).await;
        assert!(event_reasons(&ns, name).await.contains(&"Started".to_string()), "{name}: a Started event");
    }
    // The fixed external port of the Factorio example is the node port.
    let factorio = api.get("factorio").await.unwrap();
    let game = factorio.status.unwrap().ports.into_iter().find(|p| p.name == "game").unwrap();
    assert_eq!(game.port, 30197);

    for name in ["minecraft", "valheim", "factorio"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["minecraft", "valheim", "factorio"] {
        gone(&api, name).await;
    }
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn image_change_rolls_out_and_stop_then_start_keeps_the_data() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-lifecycle").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi" }
    });
    api.create(&PostParams::default(), &game_server("life", spec)).await.unwrap();
    ready(&api, "life").await;
    let pvc_uid = ns.api::<PersistentVolumeClaim>().get("life-data").await.unwrap().uid();

    // A new image: the Deployment rolls, the status follows the generation.
    let patch = Patch::Merge(json!({ "spec": { "image": "mettaton.test/game:2" } }));
    api.patch("life", &PatchParams::default(), &patch).await.unwrap();
    let second = ready(&api, "life").await;
    assert_eq!(second.metadata.generation, Some(2));
    assert_eq!(second.status.as_ref().unwrap().observed_generation, Some(2));
    let deployment = ns.api::<Deployment>().get("life").await.unwrap();
    let image = deployment.spec.unwrap().template.spec.unwrap().containers[0].image.clone();
    assert_eq!(image.as_deref(), Some("mettaton.test/game:2"));

    // Stopped: no pod, the data and the address record stay.
    let stop = Patch::Merge(json!({ "spec": { "state": "Stopped" } }));
    api.patch("life", &PatchParams::default(), &stop).await.unwrap();
    let stopped = phase(&api, "life", Phase::Stopped).await;
    assert_eq!(condition_status(&stopped, conditions::READY).as_deref(), Some("False"));
    assert_eq!(ns.api::<Deployment>().get("life").await.unwrap().spec.unwrap().replicas, Some(0));
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("mettaton.dev/gameserver=life")).await.unwrap();
    assert!(pods.items.is_empty(), "no pod while stopped");
    assert_eq!(ns.api::<PersistentVolumeClaim>().get("life-data").await.unwrap().uid(), pvc_uid, "same volume");
    let last_address = &second.status.as_ref().unwrap().address;
    assert_eq!(&stopped.status.as_ref().unwrap().address, last_address, "a stopped server keeps its address record");

    // Running again: back to Ready on the same volume.
    let start = Patch::Merge(json!({ "spec": { "state": "Running" } }));
    api.patch("life", &PatchParams::default(), &start).await.unwrap();
    ready(&api, "life").await;
    assert_eq!(ns.api::<PersistentVolumeClaim>().get("life-data").await.unwrap().uid(), pvc_uid);
    let reasons = event_reasons(&ns, "life").await;
    for reason in ["Created", "Started", "Stopped"] {
        assert!(reasons.iter().any(|r| r == reason), "a {reason} event in {reasons:?}");
    }

    api.delete("life", &DeleteParams::default()).await.unwrap();
    gone(&api, "life").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_gets_ready_fails_after_its_startup_timeout() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-neverready").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/never-ready",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "health": { "startupTimeoutSeconds": 6 }
    });
    let created = std::time::Instant::now();
    api.create(&PostParams::default(), &game_server("slow", spec)).await.unwrap();
    phase(&api, "slow", Phase::Starting).await;
    let failed = phase(&api, "slow", Phase::Failed).await;
    assert!(created.elapsed() >= Duration::from_secs(6), "not Failed before the timeout");
    let ready = failed.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == conditions::READY).unwrap();
    assert_eq!((ready.status.as_str(), ready.reason.as_str()), ("False", "StartupTimeout"));
    eventually("a Failed warning event", WAIT, || async {
        let reasons = event_reasons(&ns, "slow").await;
        if reasons.iter().any(|r| r == "Failed") { Ok(()) } else { Err(reasons) }
    })
    .await;
    api.delete("slow", &DeleteParams::default()).await.unwrap();
    gone(&api, "slow").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_looping_server_is_degraded_with_its_restart_count() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-crash").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({ "image": "mettaton.test/crash-loop", "ports": [{ "name": "game", "containerPort": 7777 }] });
    api.create(&PostParams::default(), &game_server("crashy", spec)).await.unwrap();
    let gs = eventually("crashy Degraded with 3+ restarts", WAIT, || async {
        let gs = api.get("crashy").await.map_err(|e| e.to_string())?;
        let restarts = gs.status.as_ref().map_or(0, |s| s.restarts);
        if condition_status(&gs, conditions::DEGRADED).as_deref() == Some("True") && restarts >= 3 {
            Ok(gs)
        } else {
            Err(format!("{:?}", gs.status))
        }
    })
    .await;
    let status = gs.status.unwrap();
    let degraded = status.conditions.iter().find(|c| c.type_ == conditions::DEGRADED).unwrap();
    assert_eq!(degraded.reason, "CrashLoop");
    assert!(degraded.message.contains("restarted"), "{}", degraded.message);
    assert_eq!(condition_status(&api.get("crashy").await.unwrap(), conditions::READY).as_deref(), Some("False"));
    api.delete("crashy", &DeleteParams::default()).await.unwrap();
    gone(&api, "crashy").await;
    ctl.stop().await;
}

/// The kwok stage `pod-pull-fails` reports the container of this image waiting
/// in ImagePullBackOff with the kubelet's message: the server is Failed at
/// once, naming the image, not after its startup timeout.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_that_cannot_be_pulled_fails_the_server_at_once_naming_the_image() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-pull").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let image = "mettaton.test/pull-fails";
    let timeout = Duration::from_secs(600);
    let spec = json!({
        "image": image,
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "health": { "startupTimeoutSeconds": timeout.as_secs() }
    });
    let created = std::time::Instant::now();
    api.create(&PostParams::default(), &game_server("nopull", spec)).await.unwrap();
    let failed = phase(&api, "nopull", Phase::Failed).await;
    assert!(created.elapsed() < timeout / 10, "Failed after {:?}: well before the startup timeout", created.elapsed());
    let status = failed.status.unwrap();
    let message = format!("image \"{image}\" cannot be pulled (ImagePullBackOff): Back-off pulling image \"{image}\"");
    for type_ in [conditions::DEGRADED, conditions::READY] {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        let want = if type_ == conditions::DEGRADED { "True" } else { "False" };
        assert_eq!((c.status.as_str(), c.reason.as_str()), (want, "ImagePullFailed"), "{type_}");
        assert_eq!(c.message, message, "{type_}");
    }
    eventually("a Failed warning event", WAIT, || async {
        let reasons = event_reasons(&ns, "nopull").await;
        if reasons.iter().any(|r| r == "Failed") { Ok(()) } else { Err(reasons) }
    })
    .await;
    api.delete("nopull", &DeleteParams::default()).await.unwrap();
    gone(&api, "nopull").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_pod_is_refused_by_pod_security_is_failed_at_once_with_the_refusal() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-psa").await;
    // Game images run as whatever user they need: a namespace enforcing
    // `restricted` refuses their pods.
    let patch = json!({ "metadata": { "labels": { "pod-security.kubernetes.io/enforce": "restricted" } } });
    Api::<k8s_openapi::api::core::v1::Namespace>::all(ns.client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "health": { "startupTimeoutSeconds": 600 }
    });
    let created = std::time::Instant::now();
    api.create(&PostParams::default(), &game_server("refused", spec)).await.unwrap();
    let failed = phase(&api, "refused", Phase::Failed).await;
    assert!(created.elapsed() < Duration::from_secs(60), "Failed after {:?}", created.elapsed());
    let status = failed.status.unwrap();
    for type_ in [conditions::DEGRADED, conditions::READY] {
        let c = status.conditions.iter().find(|c| c.type_ == type_).unwrap();
        assert_eq!(c.reason, "PodsRefused", "{type_}: {}", c.message);
        assert!(
            c.message.starts_with("the server's pod cannot be created: ")
                && c.message.contains("violates PodSecurity \"restricted:latest\""),
            "{type_}: {}",
            c.message
        );
    }
    api.delete("refused", &DeleteParams::default()).await.unwrap();
    gone(&api, "refused").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retain_keeps_the_volume_and_a_new_server_of_the_same_name_adopts_it() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-retain").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi", "reclaimPolicy": "Retain" }
    });
    api.create(&PostParams::default(), &game_server("world", spec.clone())).await.unwrap();
    ready(&api, "world").await;
    let pvcs = ns.api::<PersistentVolumeClaim>();
    let volume_uid = pvcs.get("world-data").await.unwrap().uid();

    api.delete("world", &DeleteParams::default()).await.unwrap();
    gone(&api, "world").await;
    let kept = pvcs.get("world-data").await.expect("the volume survives its GameServer");
    assert_eq!(kept.uid(), volume_uid);
    assert!(kept.owner_references().is_empty(), "released: no owner left to garbage-collect it");
    assert!(ns.api::<Deployment>().get_opt("world").await.unwrap().is_none());
    assert!(ns.api::<Service>().get_opt("world").await.unwrap().is_none());

    api.create(&PostParams::default(), &game_server("world", spec)).await.unwrap();
    let again = ready(&api, "world").await;
    let adopted = pvcs.get("world-data").await.unwrap();
    assert_eq!(adopted.uid(), volume_uid, "the same volume, not a new one");
    assert!(owned_by(&adopted, &again), "adopted by the new GameServer");

    api.delete("world", &DeleteParams::default()).await.unwrap();
    gone(&api, "world").await;
    ctl.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_policy_leaves_nothing_behind() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-delete").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi", "reclaimPolicy": "Delete" },
        "config": [{ "path": "/data/game.cfg", "content": "x=1" }]
    });
    api.create(&PostParams::default(), &game_server("temp", spec)).await.unwrap();
    ready(&api, "temp").await;
    api.delete("temp", &DeleteParams::default()).await.unwrap();
    gone(&api, "temp").await;
    let lp = ListParams::default().labels(SELECTOR);
    eventually("no child left", WAIT, || async {
        let left = (
            ns.api::<Deployment>().list(&lp).await.unwrap().items.len(),
            ns.api::<Service>().list(&lp).await.unwrap().items.len(),
            ns.api::<PersistentVolumeClaim>().list(&lp).await.unwrap().items.len(),
            ns.api::<ConfigMap>().list(&lp).await.unwrap().items.len(),
            ns.api::<Pod>().list(&lp).await.unwrap().items.len(),
        );
        if left == (0, 0, 0, 0, 0) { Ok(()) } else { Err(left) }
    })
    .await;
    ctl.stop().await;
}

/// The orchestrator reaches the API server through a proxy the test cuts:
/// deletion cannot complete, the finalizer stays, the user is told why, and it
/// completes once the backend is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_cleanup_keeps_the_finalizer_reports_it_and_completes_later() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-shutdown").await;
    let proxy = Proxy::start(apiserver_addr().await).await;
    let ctl = RunningController::start(&ns, ns.client.clone(), proxy.client().await);
    let api = ns.api::<GameServer>();
    let spec = json!({ "image": "mettaton.test/game:1", "ports": [{ "name": "game", "containerPort": 7777 }] });
    api.create(&PostParams::default(), &game_server("stuck", spec)).await.unwrap();
    ready(&api, "stuck").await;

    proxy.set_up(false);
    api.delete("stuck", &DeleteParams::default()).await.unwrap();
    let reported = eventually("ShutdownFailed reported", WAIT, || async {
        let gs = api.get("stuck").await.map_err(|e| e.to_string())?;
        let cond =
            gs.status.as_ref().and_then(|s| s.conditions.iter().find(|c| c.type_ == conditions::SHUTDOWN_FAILED));
        match cond {
            Some(c) if c.status == "True" => Ok(gs),
            _ => Err(format!("{:?}", gs.status)),
        }
    })
    .await;
    assert!(reported.finalizers().iter().any(|f| f == mettaton::api::FINALIZER), "finalizer kept");
    assert_eq!(reported.status.as_ref().unwrap().phase, Some(Phase::Terminating));
    let cond =
        reported.status.unwrap().conditions.into_iter().find(|c| c.type_ == conditions::SHUTDOWN_FAILED).unwrap();
    assert_eq!(cond.reason, "BackendUnreachable", "{}", cond.message);
    assert!(!cond.message.is_empty());
    eventually("a ShutdownFailed warning event", WAIT, || async {
        let reasons = event_reasons(&ns, "stuck").await;
        if reasons.iter().any(|r| r == "ShutdownFailed") { Ok(()) } else { Err(reasons) }
    })
    .await;
    // Nothing was torn down behind the user's back.
    assert!(ns.api::<Deployment>().get_opt("stuck").await.unwrap().is_some());

    proxy.set_up(true);
    // The retry after the fault comes on the per-object backoff, which has
    // doubled with every failure while the backend was away.
    eventually("stuck deleted once the backend is back", AFTER_BACKOFF, || async {
        match api.get_opt("stuck").await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    assert!(ns.api::<Deployment>().get_opt("stuck").await.unwrap().is_none());
    ctl.stop().await;
}

/// Once a server is converged, reconciles (here caused by touching the
/// GameServer's metadata and an owned Service) write nothing, and read nothing
/// either: what they look at comes from the controller's watch caches.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steady_state_reconcile_makes_no_write() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-steady").await;
    let (client, requests) = counting_client().await;
    let ctl = RunningController::start(&ns, client.clone(), client);
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }, { "name": "voice", "containerPort": 9987, "protocol": "UDP" }],
        "storage": { "size": "1Gi" },
        "config": [{ "path": "/data/game.cfg", "content": "x=1" }]
    });
    api.create(&PostParams::default(), &game_server("calm", spec)).await.unwrap();
    ready(&api, "calm").await;
    // Settled: no write for 3 s in a row.
    let settled = eventually("the controller to stop writing", WAIT, || {
        let before = requests.writes().len();
        let requests = requests.clone();
        async move {
            tokio::time::sleep(Duration::from_secs(3)).await;
            let after = requests.writes().len();
            if after == before { Ok(after) } else { Err(after - before) }
        }
    })
    .await;
    let reconciles = || ctl.counted("mettaton_reconciles_total");
    let requests_before = requests.calls();
    let reconciles_before = reconciles();
    let status_before = api.get("calm").await.unwrap().status;

    let touch = Patch::Merge(json!({ "metadata": { "annotations": { "test/touched": "1" } } }));
    api.patch("calm", &PatchParams::default(), &touch).await.unwrap();
    ns.api::<Service>().patch("calm", &PatchParams::default(), &touch).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;

    let writes = requests.writes();
    let status_after = api.get("calm").await.unwrap().status;
    assert_eq!(
        writes.len(),
        settled,
        "steady-state reconciles wrote: {:?}\nstatus before: {status_before:#?}\nstatus after: {status_after:#?}",
        &writes[settled..]
    );
    assert!(reconciles() >= reconciles_before + 2, "the touches did cause reconciles");
    assert_eq!(requests.calls(), requests_before, "steady-state reconciles sent requests");
    api.delete("calm", &DeleteParams::default()).await.unwrap();
    gone(&api, "calm").await;
    ctl.stop().await;
}

/// Events tell the story the status tells, once: a new server is `Created`
/// once (not on every reconcile until its first status), each phase it enters
/// is announced once (`Pending` while its backend cannot be reached,
/// `Started`), and its deletion is `Terminating`, then `Deleted`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_transition_has_one_event_and_created_comes_once() {
    use std::collections::BTreeMap;
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-events").await;
    let proxy = Proxy::start(apiserver_addr().await).await;
    let ctl = RunningController::start(&ns, ns.client.clone(), proxy.client().await);
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi", "reclaimPolicy": "Delete" }
    });
    let counts =
        |pairs: &[(&str, i32)]| -> BTreeMap<String, i32> { pairs.iter().map(|(r, n)| (r.to_string(), *n)).collect() };
    // Starting is announced only when the start outlasts the settle time.
    let without_starting = |mut events: BTreeMap<String, i32>| {
        let starting = events.remove("Starting").unwrap_or(0);
        assert!(starting <= 1, "Starting announced {starting} times");
        events
    };

    // A quick start: one status write, Running; two Events.
    api.create(&PostParams::default(), &game_server("quick", spec.clone())).await.unwrap();
    ready(&api, "quick").await;
    let events = settled_events(&ns, "quick", "Started").await;
    assert_eq!(without_starting(events), counts(&[("Created", 1), ("Started", 1)]));

    // The backend unreachable at first: Pending (with the failed apply's
    // warning), then created and started once it is back.
    proxy.set_up(false);
    api.create(&PostParams::default(), &game_server("late", spec)).await.unwrap();
    let pending = phase(&api, "late", Phase::Pending).await;
    assert!(condition_status(&pending, conditions::DEGRADED).as_deref() == Some("True"));
    settled_events(&ns, "late", "Pending").await;
    proxy.set_up(true);
    // Its retries backed off while the backend was away (up to 64 s).
    wait_ready(&api, "late", AFTER_BACKOFF).await;
    let mut events = without_starting(settled_events(&ns, "late", "Started").await);
    let warnings = events.remove("ApplyFailed").unwrap_or(0);
    assert!(warnings >= 1, "the failed apply is told");
    assert_eq!(events, counts(&[("Created", 1), ("Pending", 1), ("Started", 1)]));

    // Deletion: Terminating while the teardown waits, Deleted once done.
    api.delete("quick", &DeleteParams::default()).await.unwrap();
    gone(&api, "quick").await;
    let events = without_starting(settled_events(&ns, "quick", "Deleted").await);
    assert_eq!(events, counts(&[("Created", 1), ("Started", 1), ("Terminating", 1), ("Deleted", 1)]));
    let notes: Vec<String> = ns
        .api::<Event>()
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter(|e| e.reason.as_deref() == Some("Terminating"))
        .filter_map(|e| e.note)
        .collect();
    assert_eq!(notes, vec!["deleting the game server; volume quick-data goes too".to_string()]);

    api.delete("late", &DeleteParams::default()).await.unwrap();
    gone(&api, "late").await;
    ctl.stop().await;
}

/// `mettaton restart NAME -n NAMESPACE`, run as a user runs it, replaces the
/// server's pod with a new one on the same volume, without a change to the
/// spec; the same restart asked again makes no new pod.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mettaton_restart_makes_a_new_pod_on_the_same_volume() {
    ensure_crd().await;
    let ns = TestNamespace::new("ctl-restart").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi" },
        "config": [{ "path": "/data/game.cfg", "content": "x=1" }]
    });
    api.create(&PostParams::default(), &game_server("again", spec)).await.unwrap();
    let before = ready(&api, "again").await;
    let claim_uid = ns.api::<PersistentVolumeClaim>().get("again-data").await.unwrap().uid();
    let pods = ns.api::<Pod>();
    let selector = ListParams::default().labels("mettaton.dev/gameserver=again");
    let live_pods = || async {
        let list = pods.list(&selector).await.map_err(|e| e.to_string())?;
        Ok::<_, String>(list.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect::<Vec<_>>())
    };
    let first = live_pods().await.unwrap();
    assert_eq!(first.len(), 1);
    let first_uid = first[0].uid();

    let restart = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .arg("restart")
            .args(args)
            .arg("--kubeconfig")
            .arg(crate::support::kubeconfig_path())
            .output()
            .unwrap()
    };
    let out = restart(&["again", "-n", &ns.name]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let said = String::from_utf8(out.stdout).unwrap();
    assert!(
        said.starts_with(&format!("gameserver {}/again restart asked (mettaton.dev/restartedAt=", ns.name)),
        "{said}"
    );

    // A new pod, ready, in place of the old one; the same claim mounted.
    let second = eventually("a new pod, and the old one gone", WAIT, || async {
        let all = pods.list(&selector).await.map(|l| l.items).unwrap_or_default();
        let ready = |p: &Pod| {
            p.status
                .as_ref()
                .and_then(|s| s.conditions.as_ref())
                .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
        };
        match &all[..] {
            [only] if only.uid() != first_uid && ready(only) => Ok(only.clone()),
            _ => Err(all.iter().map(|p| (p.name_any(), p.metadata.deletion_timestamp.is_some())).collect::<Vec<_>>()),
        }
    })
    .await;
    let claims: Vec<String> = second
        .spec
        .unwrap()
        .volumes
        .unwrap_or_default()
        .into_iter()
        .filter_map(|v| v.persistent_volume_claim.map(|c| c.claim_name))
        .collect();
    assert_eq!(claims, vec!["again-data".to_string()]);
    assert_eq!(ns.api::<PersistentVolumeClaim>().get("again-data").await.unwrap().uid(), claim_uid, "same volume");
    let after = ready(&api, "again").await;
    assert_eq!(after.metadata.generation, before.metadata.generation, "the spec did not change");
    assert_eq!(after.spec, before.spec);
    let token = after.annotations()["mettaton.dev/restartedAt"].clone();
    let template = ns.api::<Deployment>().get("again").await.unwrap().spec.unwrap().template.metadata.unwrap();
    assert_eq!(template.annotations.unwrap()["mettaton.dev/restartedAt"], token, "carried to the pod template");

    // The same token once more (as a GitOps tool re-applying it would): no new pod.
    let same = Patch::Merge(
        json!({ "metadata": { "annotations": { "mettaton.dev/restartedAt": token, "test/touched": "1" } } }),
    );
    api.patch("again", &PatchParams::default(), &same).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let still: Vec<String> = live_pods().await.unwrap().iter().map(|p| p.uid().unwrap()).collect();
    assert_eq!(still, vec![second.metadata.uid.clone().unwrap()], "no restart without a new token");

    // A namespace or a name that is not there: a message and a failure.
    let out = restart(&["nobody", "-n", &ns.name]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains(&format!("gameserver {}/nobody not found", ns.name)), "{err}");

    api.delete("again", &DeleteParams::default()).await.unwrap();
    gone(&api, "again").await;
    ctl.stop().await;
}

/// What `kubectl explain` says of `spec.config` is what happens: a change of
/// the list restarts the server (the config hash in the pod template), an
/// edit inside a referenced ConfigMap restarts nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_edit_of_a_referenced_config_map_restarts_nothing_as_explained() {
    ensure_crd().await;
    // The API server publishes a CRD's schema a moment after it changes.
    eventually("kubectl explain to tell what restarts the server", WAIT, || async {
        let explained = crate::support::succeed(crate::support::kubectl().args(["explain", "gameservers.spec.config"]));
        let explained = explained.split_whitespace().collect::<Vec<_>>().join(" ");
        let says = ["A change to this list", "An edit inside a referenced ConfigMap does not restart it"];
        if says.iter().all(|s| explained.contains(s)) { Ok(()) } else { Err(explained) }
    })
    .await;

    let ns = TestNamespace::new("ctl-cmref").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let config_maps = ns.api::<ConfigMap>();
    let ops: ConfigMap = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "ConfigMap", "metadata": { "name": "ops" }, "data": { "ops.json": "[]" }
    }))
    .unwrap();
    config_maps.create(&PostParams::default(), &ops).await.unwrap();
    let api = ns.api::<GameServer>();
    let spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "config": [{ "path": "/etc/game/ops.json", "configMapKeyRef": { "name": "ops", "key": "ops.json" } }]
    });
    api.create(&PostParams::default(), &game_server("refs", spec)).await.unwrap();
    ready(&api, "refs").await;
    let template = || async {
        let d = ns.api::<Deployment>().get("refs").await.unwrap();
        (d.metadata.generation, d.spec.unwrap().template)
    };
    let pod_uids = || async {
        let lp = ListParams::default().labels("mettaton.dev/gameserver=refs");
        ns.api::<Pod>().list(&lp).await.unwrap().items.iter().map(|p| p.uid().unwrap()).collect::<Vec<_>>()
    };
    let (before, pods_before) = (template().await, pod_uids().await);

    let edit = Patch::Merge(json!({ "data": { "ops.json": "[\"alice\"]" } }));
    config_maps.patch("ops", &PatchParams::default(), &edit).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(template().await, before, "the Deployment did not change");
    assert_eq!(pod_uids().await, pods_before, "the same pod runs");

    // A change of the list itself does restart it.
    let moved = Patch::Merge(json!({ "spec": { "config": [
        { "path": "/etc/game/admins.json", "configMapKeyRef": { "name": "ops", "key": "ops.json" } }
    ] } }));
    api.patch("refs", &PatchParams::default(), &moved).await.unwrap();
    eventually("a new pod for the moved file", WAIT, || async {
        let uids = pod_uids().await;
        if !uids.is_empty() && uids.iter().all(|u| !pods_before.contains(u)) { Ok(()) } else { Err(uids) }
    })
    .await;

    api.delete("refs", &DeleteParams::default()).await.unwrap();
    gone(&api, "refs").await;
    ctl.stop().await;
}
