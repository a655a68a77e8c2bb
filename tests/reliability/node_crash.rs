//! Issue 12: the real node crashes and is brought back. Every process of the
//! node itself (its supervisor, containerd, the kubelet, kube-proxy, the
//! containerd shims) is SIGKILLed while a game server's container keeps
//! running, orphaned. `tests/controlplane/node down` (what `up` runs first)
//! must then leave nothing of it: no process (the orphaned game included),
//! no cgroup, no network namespace or veth, nothing mounted below its
//! directory, no route to its pods. `node network` and `node up` bring it
//! back, and the GameServer (its pod still bound to the node) runs again with
//! its world from the volume, reached by players as before.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{ListParams, Patch, PatchParams, PostParams};
use mettaton::api::{GameServer, Phase};
use serde_json::json;

use crate::process::Controller;
use crate::real_node_common::{NODE_CGROUP, container_pids, kill9, on_real_node, play_when_up};
use crate::setup::{figure, secs};
use crate::support::{TestNamespace, ensure_crd, eventually, root, wait_phase, wait_ready};

const TEST: &str = "real node crash";
const WAIT: Duration = Duration::from_secs(180);

fn node(args: &[&str]) {
    let status = Command::new(root().join("tests/controlplane/node")).args(args).status().unwrap();
    assert!(status.success(), "tests/controlplane/node {args:?} failed");
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| s.contains(") Z "))
}

/// What is left of the node on this machine, in words; empty when nothing is.
fn leftovers() -> Vec<String> {
    let mut left = Vec::new();
    if Path::new(NODE_CGROUP).exists() {
        left.push(format!("cgroup {NODE_CGROUP}"));
    }
    if Path::new("/run/netns/mtn-node").exists() {
        left.push("network namespace mtn-node".into());
    }
    let links = Command::new("ip").args(["-o", "link", "show"]).output().unwrap();
    if String::from_utf8_lossy(&links.stdout).contains("mtn-host") {
        left.push("veth mtn-host".into());
    }
    let routes = Command::new("ip").args(["route", "show"]).output().unwrap();
    if String::from_utf8_lossy(&routes.stdout).contains("10.245.0.0/24") {
        left.push("route to the pod range".into());
    }
    let node_dir = root().join("target/controlplane/node");
    let mounts = std::fs::read_to_string("/proc/self/mounts").unwrap();
    let node_dir = node_dir.to_string_lossy();
    left.extend(mounts.lines().filter(|m| m.contains(node_dir.as_ref())).map(|m| format!("mount {m}")));
    left
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "crashes the real node: run alone (./run-tests does)"]
async fn a_crashed_real_node_is_cleaned_up_and_its_game_server_comes_back_with_its_world() {
    ensure_crd().await;
    let ns = TestNamespace::new("node-crash").await;
    let mut controller = Controller::start(&ns.name, &[]);
    let api = ns.api::<GameServer>();
    let spec = json!({
        "env": [{ "name": "GAME_SAVE_FILE", "value": "/data/world.sav" }],
        "storage": { "size": "1Gi" }
    });
    api.create(&PostParams::default(), &on_real_node("survivor", spec)).await.unwrap();
    let gs = wait_ready(&api, "survivor", WAIT).await;
    assert_eq!(play_when_up(&gs, &["set saved"]).await[1], "set: saved");
    // Saved by a stop, then running again.
    let patch = |state: &str| json!({ "spec": { "state": state } });
    api.patch("survivor", &PatchParams::default(), &Patch::Merge(&patch("Stopped"))).await.unwrap();
    wait_phase(&api, "survivor", Phase::Stopped, WAIT).await;
    api.patch("survivor", &PatchParams::default(), &Patch::Merge(&patch("Running"))).await.unwrap();
    let gs = wait_ready(&api, "survivor", WAIT).await;
    assert_eq!(play_when_up(&gs, &["get", "set unsaved"]).await[1], "world: starts=2 data=saved");

    let selector = "mettaton.dev/gameserver=survivor";
    let pod = eventually("the running pod", WAIT, || async {
        let pods = ns.api::<Pod>().list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
        pods.items.into_iter().find(|p| p.metadata.deletion_timestamp.is_none()).ok_or("no pod".to_string())
    })
    .await;
    let game = container_pids(&pod, "game");
    assert!(!game.is_empty());

    // The crash: every process of the node itself (they sit in the node's top
    // cgroup; the containers in cgroups below it), not the game.
    let top = std::fs::read_to_string(format!("{NODE_CGROUP}/cgroup.procs")).unwrap();
    let node_pids: Vec<u32> = top.split_whitespace().map(|p| p.parse().unwrap()).collect();
    assert!(node_pids.len() >= 4, "supervisor, containerd, kubelet, kube-proxy (and shims): {node_pids:?}");
    // The shims last: containerd, seeing a shim die, would clean up (kill)
    // its container, and the point is a container left orphaned.
    let is_shim = |pid: &u32| {
        std::fs::read_to_string(format!("/proc/{pid}/comm")).is_ok_and(|c| c.starts_with("containerd-shim"))
    };
    let (shims, others): (Vec<u32>, Vec<u32>) = node_pids.iter().copied().partition(is_shim);
    for pids in [others, shims] {
        kill9(&pids);
        eventually("the node's processes dead", Duration::from_secs(10), || async {
            let alive: Vec<u32> = pids.iter().copied().filter(|p| alive(*p)).collect();
            if alive.is_empty() { Ok(()) } else { Err(format!("{alive:?}")) }
        })
        .await;
    }
    assert!(game.iter().all(|p| alive(*p)), "the game's container outlives the node's processes");

    // What `up` runs first cleans all of it.
    let start = Instant::now();
    node(&["down"]);
    let cleaned = start.elapsed();
    let still: Vec<u32> = game.iter().copied().filter(|p| alive(*p)).collect();
    assert!(still.is_empty(), "the orphaned game is killed: {still:?}");
    let left = leftovers();
    assert!(left.is_empty(), "down left: {left:#?}");

    // Back up: the node re-registers, and the pod bound to it runs again with
    // the world it last saved (what was not saved is lost, as in any crash).
    let start = Instant::now();
    node(&["network"]);
    node(&["up"]);
    let node_back = start.elapsed();
    let gs = eventually("the GameServer Ready again on a new container", WAIT, || async {
        let gs = wait_ready(&api, "survivor", WAIT).await;
        let pods = ns.api::<Pod>().list(&ListParams::default().labels(selector)).await.map_err(|e| e.to_string())?;
        let fresh = pods.items.iter().any(|p| {
            let statuses = p.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
            statuses.iter().any(|c| c.ready && c.name == "game")
        });
        if fresh { Ok(gs) } else { Err("no ready game container yet".to_string()) }
    })
    .await;
    // The save of the stop (starts=1) is loaded again: the second run's
    // "unsaved" change and its start count died with it.
    let answers = play_when_up(&gs, &["get"]).await;
    assert_eq!(answers[1], "world: starts=2 data=saved");
    let server_back = start.elapsed();
    controller.assert_running();
    figure(
        TEST,
        &format!(
            "node down after the crash {}, node up again {}, game server Ready and answering {}",
            secs(cleaned),
            secs(node_back),
            secs(server_back)
        ),
    );
    controller.stop();
}
