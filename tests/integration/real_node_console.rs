//! Inside the server, on the real node (issue 15): mettaton's supervisor runs
//! the test game in its container (copied in from its own image by an init
//! container), makes it Ready only once it printed its "Done" line, passes
//! what `mettaton send` types to its console, and stops it by typing its stop
//! command, whoever stops the pod: the controller (`state: Stopped`, deletion)
//! or Kubernetes itself (an eviction).

use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use kube::api::{DeleteParams, EvictParams, Patch, PatchParams, PostParams};
use mettaton::api::{GameServer, Phase, conditions};
use serde_json::{Value, json};

use crate::controller::{RunningController, gone};
use crate::real_node_common::{ensure_supervisor_image, live_pod, on_real_node, play_when_up, volume_dir, world};
use crate::support::{
    TestNamespace, condition_status, ensure_crd, eventually, kubectl, root, succeed, wait_phase, wait_ready,
};

const WAIT: Duration = Duration::from_secs(120);

pub(crate) async fn start(prefix: &str) -> (TestNamespace, RunningController, kube::Api<GameServer>) {
    ensure_crd().await;
    ensure_supervisor_image().await;
    let ns = TestNamespace::new(prefix).await;
    let controller = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    (ns, controller, api)
}

/// The test game started by mettaton's supervisor (`command` given), with
/// its console on, and `spec` (its `env` added to the console's).
pub(crate) fn supervised(name: &str, mut spec: Value) -> GameServer {
    let mut env = vec![json!({ "name": "GAME_CONSOLE", "value": "1" })];
    env.extend(spec["env"].as_array().cloned().unwrap_or_default());
    spec["env"] = Value::Array(env);
    spec["command"] = json!(["/testgame"]);
    on_real_node(name, spec)
}

async fn game_log(ns: &TestNamespace, pod: &str) -> String {
    let params = kube::api::LogParams { container: Some("game".into()), ..Default::default() };
    ns.api::<Pod>().logs(pod, &params).await.unwrap_or_default()
}

fn plane_kubeconfig() -> String {
    std::env::var("KUBECONFIG").unwrap_or_else(|_| root().join("target/controlplane/kubeconfig").display().to_string())
}

/// `mettaton send` as a user runs it, with `kubeconfig`.
fn send_as(kubeconfig: &str, ns: &TestNamespace, name: &str, line: &str) -> std::process::Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["send", "-n", &ns.name, name, "--wait", "3", line])
        .env("KUBECONFIG", kubeconfig)
        .output()
        .unwrap()
}

/// `mettaton send` with the plane's (admin) kubeconfig: what it printed.
pub(crate) fn mettaton_send(ns: &TestNamespace, name: &str, line: &str) -> String {
    let out = send_as(&plane_kubeconfig(), ns, name, line);
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "mettaton send failed: {}{stdout}", String::from_utf8_lossy(&out.stderr));
    stdout
}

/// A directory of the test's own, under target/.
pub(crate) fn scratch(ns: &TestNamespace) -> std::path::PathBuf {
    let dir = root().join("target/test-tmp").join(&ns.name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// The plane's kubeconfig acting as user `user` (impersonation), written in
/// the test's directory.
fn kubeconfig_as(ns: &TestNamespace, user: &str) -> String {
    let text = std::fs::read_to_string(plane_kubeconfig()).unwrap();
    let mut config: serde_yaml::Value = serde_yaml::from_str(&text).unwrap();
    for u in config["users"].as_sequence_mut().unwrap() {
        u["user"]["as"] = serde_yaml::Value::String(user.into());
    }
    let path = scratch(ns).join(format!("kubeconfig-{user}"));
    std::fs::write(&path, serde_yaml::to_string(&config).unwrap()).unwrap();
    path.display().to_string()
}

/// A Role of `rules` and its binding to user `user`, applied in the namespace.
fn grant(ns: &TestNamespace, role: &str, user: &str, rules: Value) {
    let objects = json!({ "apiVersion": "v1", "kind": "List", "items": [
        { "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role", "metadata": { "name": role }, "rules": rules },
        { "apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding", "metadata": { "name": role },
          "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": role },
          "subjects": [{ "apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user }] }
    ]});
    let file = scratch(ns).join(format!("{role}.json"));
    std::fs::write(&file, objects.to_string()).unwrap();
    succeed(kubectl().args(["apply", "-n", &ns.name, "-f"]).arg(&file));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_supervised_server_is_ready_only_after_its_done_line_and_mettaton_send_reaches_its_console() {
    let (ns, _controller, api) = start("real-done").await;
    let gs = supervised(
        "done",
        json!({
            "env": [
                { "name": "GAME_DONE_AFTER_SECONDS", "value": "8" },
                { "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }
            ],
            "storage": { "size": "1Gi", "reclaimPolicy": "Delete" },
            // The done line and the TCP probe, both.
            "health": { "readyLogLine": ["regex:^Done \\(", "never printed"], "probe": { "tcpPort": "game" }, "periodSeconds": 1 }
        }),
    );
    api.create(&PostParams::default(), &gs).await.unwrap();

    // The game listens (a TCP probe alone would pass) well before its done
    // line: all that time the server is not Ready; once it is, the line is in
    // the log.
    let pod = live_pod(&ns, "done").await;
    let pod_name = pod.metadata.name.clone().unwrap();
    let spec = pod.spec.clone().unwrap();
    assert_eq!(spec.init_containers.as_ref().map(|c| c[0].name.as_str()), Some("mettaton-supervisor"));
    assert_eq!(spec.containers[0].command.as_ref().unwrap()[0], "/.mettaton/bin/mettaton-supervisor");
    let listening_unready = std::sync::atomic::AtomicUsize::new(0);
    let ready = eventually("Ready", WAIT, || async {
        let gs = api.get("done").await.map_err(|e| e.to_string())?;
        let ready = condition_status(&gs, conditions::READY).as_deref() == Some("True");
        let log = game_log(&ns, &pod_name).await;
        if ready {
            assert!(log.contains("Done (8.000s)!"), "Ready before the done line:\n{log}");
            return Ok(gs);
        }
        if log.contains("game server listening") {
            listening_unready.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Err(format!("not ready; log:\n{log}"))
    })
    .await;
    assert!(listening_unready.into_inner() > 0, "never seen listening and not Ready");
    // A player reaches it as before: the supervisor changes nothing of the game.
    assert_eq!(play_when_up(&ready, &["hi"]).await[1], "echo: hi");

    // `mettaton send`: the game gets the line, does what it says, and what it
    // answers is printed.
    let answer = mettaton_send(&ns, "done", "say hello from the test");
    assert!(answer.contains("console: say hello from the test"), "{answer}");
    assert!(answer.contains("[Server] hello from the test"), "{answer}");
    let dir = volume_dir(&ns, "done-data").await;
    assert!(!dir.join("world.sav").exists(), "no save before it is asked");
    let answer = mettaton_send(&ns, "done", "save");
    assert!(answer.contains("saved world"), "{answer}");
    assert_eq!(world(&dir), "starts=1\ndata=\n", "the console's save is on the volume");

    // `mettaton console`: the output as it comes, each typed line sent;
    // Ctrl-D (end of input) leaves, and the server goes on.
    let console = std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
        .args(["console", "-n", &ns.name, "done"])
        .env("KUBECONFIG", plane_kubeconfig())
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    crate::testgame::say_through_console(console, "typed in the console").await;
    assert_eq!(condition_status(&api.get("done").await.unwrap(), conditions::READY).as_deref(), Some("True"));

    // Who may type is RBAC's: a user who may read the GameServer and its pods
    // but not attach is refused, the permission named; given it, they type.
    let reads = json!([
        { "apiGroups": ["mettaton.dev"], "resources": ["gameservers"], "verbs": ["get"] },
        { "apiGroups": [""], "resources": ["pods"], "verbs": ["get", "list"] }
    ]);
    grant(&ns, "console-reader", "alice", reads);
    let alice = kubeconfig_as(&ns, "alice");
    let refused = send_as(&alice, &ns, "done", "say from alice");
    let said = String::from_utf8_lossy(&refused.stderr).into_owned();
    assert!(!refused.status.success(), "{said}");
    assert!(said.contains("forbidden") && said.contains("pods/attach"), "{said}");
    grant(
        &ns,
        "console-typer",
        "alice",
        json!([{ "apiGroups": [""], "resources": ["pods/attach"], "verbs": ["get", "create"] }]),
    );
    let typed = eventually("alice may type", WAIT, || async {
        let out = send_as(&alice, &ns, "done", "say from alice");
        let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
        if stdout.contains("[Server] from alice") {
            Ok(stdout)
        } else {
            Err(String::from_utf8_lossy(&out.stderr).into_owned())
        }
    })
    .await;
    assert!(typed.contains("console: say from alice"), "{typed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_deleted_and_evicted_servers_save_through_their_console_stop_command() {
    let (ns, _controller, api) = start("real-stop").await;
    // A game that ignores SIGTERM: only its console's `stop` saves it; killed
    // at the end of its grace period it would save nothing.
    let spec = json!({
        "env": [
            { "name": "GAME_STOP_ON", "value": "console" },
            { "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }
        ],
        "storage": { "size": "1Gi", "reclaimPolicy": "Retain" },
        "shutdown": { "stop": "stop", "gracePeriodSeconds": 30 }
    });
    api.create(&PostParams::default(), &supervised("stop", spec)).await.unwrap();
    let gs = wait_ready(&api, "stop", WAIT).await;
    let dir = volume_dir(&ns, "stop-data").await;
    assert_eq!(play_when_up(&gs, &["set alpha"]).await[1], "set: alpha");

    // state: Stopped.
    let stopping = std::time::Instant::now();
    api.patch("stop", &PatchParams::default(), &Patch::Merge(&json!({ "spec": { "state": "Stopped" } })))
        .await
        .unwrap();
    wait_phase(&api, "stop", Phase::Stopped, WAIT).await;
    assert_eq!(world(&dir), "starts=1\ndata=alpha\n");
    assert!(stopping.elapsed() < Duration::from_secs(30), "stopped by its command, not killed after the grace period");

    // An eviction (as a node drain does): Kubernetes stops the pod itself.
    api.patch("stop", &PatchParams::default(), &Patch::Merge(&json!({ "spec": { "state": "Running" } })))
        .await
        .unwrap();
    let gs = wait_ready(&api, "stop", WAIT).await;
    assert_eq!(play_when_up(&gs, &["set beta"]).await[1], "set: beta");
    let pod = live_pod(&ns, "stop").await;
    ns.api::<Pod>().evict(pod.metadata.name.as_deref().unwrap(), &EvictParams::default()).await.unwrap();
    eventually("the evicted game's save", WAIT, || async {
        let w = world(&dir);
        if w == "starts=2\ndata=beta\n" { Ok(()) } else { Err(w) }
    })
    .await;
    // The Deployment replaces the pod; the world comes back.
    let gs = wait_ready(&api, "stop", WAIT).await;
    assert_eq!(play_when_up(&gs, &["get"]).await[1], "world: starts=3 data=beta");

    // Deletion.
    api.delete("stop", &DeleteParams::default()).await.unwrap();
    gone(&api, "stop").await;
    assert_eq!(world(&dir), "starts=3\ndata=beta\n");
}
