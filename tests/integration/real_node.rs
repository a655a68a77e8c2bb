//! Game servers on the one real node of the local cluster (tests/controlplane/node):
//! a kubelet on containerd runs the test game's container for real, so probes
//! are executed, players connect over TCP and UDP through kube-proxy's node
//! ports, `kubectl logs`/`exec` reach the container, a stop saves the world on
//! a real volume, and the Helm chart's controller runs as pods on that node.
//!
//! Every GameServer here selects the node (`nodeSelector: {type: real}`) and
//! tolerates its taint; the kwok nodes keep everything else.

use std::net::UdpSocket;
use std::time::Duration;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Namespace, Pod};
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use mettaton::api::{GameServer, Phase, conditions};
use serde_json::{Value, json};

use crate::controller::{RunningController, gone};
use crate::real_node_common::{
    IMAGE_2, NODE, NODE_IP, POD_PREFIX, TAINT, kill_container, live_pod, on_real_node, play_when_up, published,
    volume_dir, world,
};
use crate::support::{Release, TestNamespace, ensure_crd, eventually, kubectl, root, succeed, wait_phase, wait_ready};

const WAIT: Duration = Duration::from_secs(120);

async fn start(prefix: &str) -> (TestNamespace, RunningController, Api<GameServer>) {
    ensure_crd().await;
    let ns = TestNamespace::new(prefix).await;
    let controller = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    (ns, controller, api)
}

fn pod_name(pod: &Pod) -> String {
    pod.metadata.name.clone().unwrap()
}

/// The game's container status in the pod.
fn game_status(pod: &Pod) -> k8s_openapi::api::core::v1::ContainerStatus {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    statuses.into_iter().find(|c| c.name == "game").expect("the game container has a status")
}

async fn patch_spec(api: &Api<GameServer>, name: &str, spec: Value) {
    api.patch(name, &PatchParams::default(), &Patch::Merge(&json!({ "spec": spec }))).await.unwrap();
}

fn reason(gs: &GameServer, type_: &str) -> (String, String) {
    let c = gs.status.as_ref().unwrap().conditions.iter().find(|c| c.type_ == type_).unwrap().clone();
    (c.reason, c.message)
}

/// What the kubelet said of the namespace's pods (core Events), as "reason: message".
async fn kubelet_events(ns: &TestNamespace) -> Vec<String> {
    let events = ns.api::<k8s_openapi::api::core::v1::Event>().list(&ListParams::default()).await.unwrap();
    events
        .items
        .into_iter()
        .filter(|e| e.source.as_ref().and_then(|s| s.component.as_deref()) == Some("kubelet"))
        .map(|e| format!("{}: {}", e.reason.unwrap_or_default(), e.message.unwrap_or_default()))
        .collect()
}

/// Waits for a kubelet event that `matches`: the kubelet sends its events
/// in batches, so one can reach the API server after the change it reports.
async fn kubelet_event(ns: &TestNamespace, matches: impl Fn(&str) -> bool) {
    eventually("the kubelet's event", Duration::from_secs(30), || async {
        let events = kubelet_events(ns).await;
        if events.iter().any(|e| matches(e)) { Ok(()) } else { Err(format!("{events:#?}")) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_on_the_real_node_is_ready_by_its_probe_and_players_reach_it_over_tcp_and_udp() {
    let (ns, _controller, api) = start("real-play").await;
    let gs = on_real_node("play", json!({ "env": [{ "name": "GAME_NAME", "value": "real-play" }] }));
    api.create(&PostParams::default(), &gs).await.unwrap();

    let gs = wait_ready(&api, "play", WAIT).await;
    let pod = live_pod(&ns, "play").await;
    assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    let pod_ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone()).unwrap_or_default();
    assert!(pod_ip.starts_with(POD_PREFIX), "a pod IP of the node's bridge: {pod_ip}");
    let game = game_status(&pod);
    assert!(game.ready && game.state.as_ref().unwrap().running.is_some(), "{game:?}");
    assert_eq!(gs.status.as_ref().unwrap().address.as_deref(), Some(NODE_IP));

    // A player over TCP at status.address:status.ports[game] (kube-proxy's
    // node port, to the pod; its rules may follow readiness by a moment) ...
    assert_eq!(play_when_up(&gs, &["hi"]).await, vec!["hello from real-play".to_string(), "echo: hi".to_string()]);
    // ... and over UDP at the query port.
    let socket = UdpSocket::bind("0.0.0.0:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    socket.send_to(b"ping", (NODE_IP, published(&gs, "query"))).unwrap();
    let mut buf = [0u8; 64];
    let (n, _) = socket.recv_from(&mut buf).expect("the game answers over UDP");
    assert_eq!(&buf[..n], b"pong: ping\n");

    // `kubectl logs` shows the game's own output, `kubectl exec` runs in its container.
    let name = pod_name(&pod);
    let logs = succeed(kubectl().args(["logs", "-n", &ns.name, &name, "-c", "game"]));
    assert!(logs.contains("game server listening tcp=7777 udp=7778 name=real-play"), "{logs}");
    assert!(logs.contains("player connected from") && logs.contains("udp datagram from"), "{logs}");
    let hostname = succeed(kubectl().args([
        "exec",
        "-n",
        &ns.name,
        &name,
        "-c",
        "game",
        "--",
        "/testgame",
        "-cat",
        "/etc/hostname",
    ]));
    assert_eq!(hostname.trim(), name, "exec ran in the pod's container");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_never_listens_really_fails_its_startup_deadline() {
    let (ns, _controller, api) = start("real-slow").await;
    let gs = on_real_node(
        "slow",
        json!({
            "env": [{ "name": "GAME_LISTEN_DELAY_SECONDS", "value": "3600" }],
            "health": { "startupTimeoutSeconds": 12 }
        }),
    );
    api.create(&PostParams::default(), &gs).await.unwrap();

    let gs = wait_phase(&api, "slow", Phase::Failed, WAIT).await;
    assert_eq!(reason(&gs, conditions::DEGRADED).0, "StartupTimeout");
    // The game runs, but the kubelet's probe never reached it.
    let pod = live_pod(&ns, "slow").await;
    assert!(!game_status(&pod).ready);
    let logs = succeed(kubectl().args(["logs", "-n", &ns.name, &pod_name(&pod), "-c", "game"]));
    assert!(logs.contains("loading world for 3600 s"), "{logs}");
    kubelet_event(&ns, |e| e.starts_with("Unhealthy: Startup probe failed")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_that_crashes_really_crash_loops_and_is_failed_with_its_restarts() {
    let (ns, _controller, api) = start("real-crash").await;
    let gs = on_real_node("crash", json!({ "env": [{ "name": "GAME_CRASH_AFTER_SECONDS", "value": "1" }] }));
    api.create(&PostParams::default(), &gs).await.unwrap();

    let gs = wait_phase(&api, "crash", Phase::Failed, Duration::from_secs(240)).await;
    let (why, message) = reason(&gs, conditions::DEGRADED);
    assert_eq!(why, "CrashLoop", "{message}");
    assert!(gs.status.as_ref().unwrap().restarts >= 3, "{:?}", gs.status);
    let pod = live_pod(&ns, "crash").await;
    let game = game_status(&pod);
    let last = game.last_state.and_then(|s| s.terminated).expect("the last run ended");
    assert_eq!(last.exit_code, 1, "the game's own exit code");
    let logs = succeed(kubectl().args(["logs", "-n", &ns.name, &pod_name(&pod), "-c", "game", "--previous"]));
    assert!(logs.contains("crashing after 1 s as asked"), "{logs}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_server_is_restarted_by_its_liveness_probe() {
    let (ns, _controller, api) = start("real-hang").await;
    let gs = on_real_node("hang", json!({ "env": [{ "name": "GAME_HANG_AFTER_SECONDS", "value": "5" }] }));
    api.create(&PostParams::default(), &gs).await.unwrap();
    wait_ready(&api, "hang", WAIT).await;

    // The listener closes after 5 s; liveness (3 failed checks a second
    // apart) restarts the container, which the status counts.
    let gs = eventually("a restart counted", WAIT, || async {
        let gs = api.get("hang").await.map_err(|e| e.to_string())?;
        if gs.status.as_ref().is_some_and(|s| s.restarts >= 1) { Ok(gs) } else { Err(format!("{:?}", gs.status)) }
    })
    .await;
    kubelet_event(&ns, |e| e.contains("failed liveness probe, will be restarted")).await;
    let pod = live_pod(&ns, "hang").await;
    let logs = succeed(kubectl().args(["logs", "-n", &ns.name, &pod_name(&pod), "-c", "game", "--previous"]));
    assert!(logs.contains("hanging after 5 s as asked") && logs.contains("saving world"), "{logs}");
    assert!(gs.status.unwrap().restarts >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_world_is_saved_on_stop_and_deletion_and_survives_restart_image_change_and_recreation() {
    let (ns, _controller, api) = start("real-world").await;
    let spec = json!({
        "env": [{ "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }],
        "storage": { "size": "1Gi", "reclaimPolicy": "Retain" },
        "shutdown": { "stopCommand": ["/testgame", "-touch", "/data/stop-command-ran"] }
    });
    api.create(&PostParams::default(), &on_real_node("world", spec.clone())).await.unwrap();
    let gs = wait_ready(&api, "world", WAIT).await;
    let dir = volume_dir(&ns, "world-data").await;
    assert_eq!(play_when_up(&gs, &["set alpha"]).await[1], "set: alpha");

    // Stopped: the stop command runs, then the stop signal, and the game saves
    // before it dies; the bytes are on the volume.
    patch_spec(&api, "world", json!({ "state": "Stopped" })).await;
    wait_phase(&api, "world", Phase::Stopped, WAIT).await;
    assert_eq!(world(&dir), "starts=1\ndata=alpha\n");
    assert!(dir.join("stop-command-ran").exists(), "the stop command ran in the container");

    // Running again: the same world is loaded.
    patch_spec(&api, "world", json!({ "state": "Running" })).await;
    let gs = wait_ready(&api, "world", WAIT).await;
    assert_eq!(play_when_up(&gs, &["get"]).await[1], "world: starts=2 data=alpha");

    // A new image: the world is still there.
    patch_spec(&api, "world", json!({ "image": IMAGE_2 })).await;
    let gs = eventually("the new image running", WAIT, || async {
        let gs = wait_ready(&api, "world", WAIT).await;
        let pod = live_pod(&ns, "world").await;
        let image = pod.spec.as_ref().unwrap().containers[0].image.clone().unwrap_or_default();
        if image == IMAGE_2 && game_status(&pod).ready { Ok(gs) } else { Err(image) }
    })
    .await;
    let answers = play_when_up(&gs, &["get", "set beta"]).await;
    assert_eq!(answers[1..], ["world: starts=3 data=alpha".to_string(), "set: beta".to_string()]);

    // Deletion stops the game the same way (it saves), and Retain keeps the volume.
    api.delete("world", &DeleteParams::default()).await.unwrap();
    gone(&api, "world").await;
    assert_eq!(world(&dir), "starts=3\ndata=beta\n");

    // A new GameServer of the same name gets the same world back.
    api.create(&PostParams::default(), &on_real_node("world", spec)).await.unwrap();
    let gs = wait_ready(&api, "world", WAIT).await;
    assert_eq!(volume_dir(&ns, "world-data").await, dir, "the same volume");
    assert_eq!(play_when_up(&gs, &["get"]).await[1], "world: starts=4 data=beta");

    // With Delete, deleting the GameServer erases the world.
    patch_spec(&api, "world", json!({ "storage": { "reclaimPolicy": "Delete" } })).await;
    eventually("the Delete policy observed", WAIT, || async {
        let gs = api.get("world").await.map_err(|e| e.to_string())?;
        let status = gs.status.clone().unwrap_or_default();
        if status.observed_generation == gs.metadata.generation { Ok(()) } else { Err(format!("{status:?}")) }
    })
    .await;
    api.delete("world", &DeleteParams::default()).await.unwrap();
    gone(&api, "world").await;
    eventually("the volume's directory erased", WAIT, || async {
        if dir.exists() { Err(format!("{} still holds {}", dir.display(), world(&dir))) } else { Ok(()) }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_image_the_node_cannot_pull_is_named_in_the_status_at_once() {
    let (_ns, _controller, api) = start("real-pull").await;
    let absent = "127.0.0.1:5999/mettaton-absent:1";
    let gs = on_real_node("absent", json!({ "image": absent, "health": { "startupTimeoutSeconds": 600 } }));
    api.create(&PostParams::default(), &gs).await.unwrap();

    // Failed long before the 600 s startup timeout, with the image named.
    let gs = wait_phase(&api, "absent", Phase::Failed, WAIT).await;
    let (why, message) = reason(&gs, conditions::DEGRADED);
    assert_eq!(why, "ImagePullFailed", "{message}");
    assert!(message.contains(absent), "{message}");
    assert_eq!(reason(&gs, conditions::READY).0, "ImagePullFailed");
}

// --- the controller as pods from the Helm chart -----------------------------------------

/// Pods of the release that run and are Ready, on the real node.
async fn ready_controller_pods(ns: &TestNamespace, release: &str, want: usize) -> Vec<Pod> {
    let selector = format!("app.kubernetes.io/instance={release}");
    eventually(&format!("{want} Ready controller pods on the real node"), WAIT, || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels(&selector)).await.map_err(|e| e.to_string())?;
        let ready: Vec<Pod> = pods
            .items
            .into_iter()
            .filter(|p| p.metadata.deletion_timestamp.is_none())
            .filter(|p| {
                let conditions = p.status.as_ref().and_then(|s| s.conditions.clone()).unwrap_or_default();
                conditions.iter().any(|c| c.type_ == "Ready" && c.status == "True")
            })
            .collect();
        if ready.len() == want {
            Ok(ready)
        } else {
            Err(format!("{} ready: {:?}", ready.len(), kubelet_events(ns).await))
        }
    })
    .await
}

async fn lease_holder(ns: &TestNamespace, lease: &str) -> String {
    eventually("a Lease holder", WAIT, || async {
        let lease = ns.api::<Lease>().get(lease).await.map_err(|e| e.to_string())?;
        lease.spec.and_then(|s| s.holder_identity).filter(|h| !h.is_empty()).ok_or_else(|| "no holder".to_string())
    })
    .await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_helm_installed_controller_runs_as_restricted_pods_and_its_standby_takes_over_a_killed_leader() {
    ensure_crd().await;
    let ns = TestNamespace::new("real-chart").await;
    // The controller's namespace is `restricted`; the game servers it runs are
    // in a namespace of their own (game images run as what they need).
    let games = TestNamespace::new("real-games").await;
    let patch = json!({ "metadata": { "labels": {
        "pod-security.kubernetes.io/enforce": "restricted",
        "pod-security.kubernetes.io/enforce-version": "latest",
    } } });
    Api::<Namespace>::all(ns.client.clone())
        .patch(&ns.name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();

    // The image: this very binary, made into an image here and imported into the node.
    let image = "mettaton.local/mettaton:test";
    succeed(
        std::process::Command::new(root().join("tests/controlplane/controller-image"))
            .arg(env!("CARGO_BIN_EXE_mettaton"))
            .arg(image),
    );
    let release = format!("real-{}", ns.name.rsplit('-').next().unwrap());
    let tolerations = format!(r#"tolerations=[{{"key":"{TAINT}","operator":"Exists","effect":"NoSchedule"}}]"#);
    let watch = format!("watchNamespaces={{{}}}", games.name);
    let (uninstall, install) = Release::install(
        &release,
        &ns.name,
        "180s",
        &[
            "--set",
            "image.repository=mettaton.local/mettaton",
            "--set",
            "image.tag=test",
            "--set",
            "image.pullPolicy=Never",
            "--set",
            "nodeSelector.type=real",
            "--set-json",
            &tolerations,
            "--set",
            &watch,
        ],
    );
    assert!(
        install.status.success(),
        "helm install: {}\n{:#?}",
        String::from_utf8_lossy(&install.stderr),
        kubelet_events(&ns).await
    );

    // Both replicas run on the real node, admitted under `restricted`, with the
    // chart's service account (in-cluster configuration, through the
    // kubernetes Service and kube-proxy to the API server).
    let pods = ready_controller_pods(&ns, &release, 2).await;
    for pod in &pods {
        assert_eq!(pod.spec.as_ref().unwrap().node_name.as_deref(), Some(NODE));
    }
    let lease = format!("{release}-mettaton-controller");
    let leader = lease_holder(&ns, &lease).await;
    assert!(pods.iter().any(|p| pod_name(p) == leader), "the leader {leader} is one of the pods");

    // The leader reconciles a GameServer on the same node to Ready.
    let api = games.api::<GameServer>();
    api.create(&PostParams::default(), &on_real_node("hosted", json!({}))).await.unwrap();
    let gs = wait_ready(&api, "hosted", WAIT).await;
    let greeting = format!("hello from {}", pod_name(&live_pod(&games, "hosted").await));
    assert_eq!(play_when_up(&gs, &[]).await[0], greeting);

    // The leader's process is killed (SIGKILL: no chance to release the
    // Lease) and its pod deleted. Its replacement cannot be scheduled while the
    // node carries a taint the controller pods do not tolerate (the game
    // servers tolerate it), so it is the standby that takes over once the
    // Lease expires, and reconciles the next change.
    let _taint = Taint::add(HOLD_TAINT);
    let leader_pod = pods.iter().find(|p| pod_name(p) == leader).unwrap();
    kill_container(leader_pod, "controller");
    ns.api::<Pod>()
        .delete(&leader, &DeleteParams { grace_period_seconds: Some(0), ..Default::default() })
        .await
        .unwrap();
    let next = eventually("another leader", WAIT, || async {
        let holder = lease_holder(&ns, &lease).await;
        if holder != leader { Ok(holder) } else { Err(holder) }
    })
    .await;
    assert!(pods.iter().any(|p| pod_name(p) == next), "the standby {next} leads");
    patch_spec(&api, "hosted", json!({ "state": "Stopped" })).await;
    wait_phase(&api, "hosted", Phase::Stopped, WAIT).await;
    let logs = succeed(kubectl().args(["logs", "-n", &ns.name, &next]));
    assert!(!logs.contains("forbidden"), "no RBAC refusal in the new leader's log:\n{logs}");
    drop(uninstall);
}

/// A taint only the game servers here tolerate (they tolerate every NoSchedule
/// taint; the chart's pods only the node's own).
const HOLD_TAINT: &str = "mettaton.dev/hold-controllers";

/// A NoSchedule taint on the real node, removed when dropped.
struct Taint(&'static str);

impl Taint {
    fn add(key: &'static str) -> Taint {
        succeed(kubectl().args(["taint", "node", NODE, &format!("{key}=true:NoSchedule"), "--overwrite"]));
        Taint(key)
    }
}

impl Drop for Taint {
    fn drop(&mut self) {
        let _ = kubectl().args(["taint", "node", NODE, &format!("{}-", self.0)]).output();
    }
}
