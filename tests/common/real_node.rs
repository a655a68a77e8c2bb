//! The real node of the local cluster (tests/controlplane/node), as the
//! integration and reliability tests use it: its names, a GameServer of the
//! test game placed on it, a player's session, and its containers' processes.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use k8s_openapi::api::core::v1::Pod;
use mettaton::api::GameServer;
use serde_json::{Value, json};

use crate::fixtures::{game_server, merged};
use crate::support::eventually;

/// The real node, as tests/controlplane/env.sh names and addresses it.
pub const NODE: &str = "mettaton-node";
pub const NODE_IP: &str = "10.213.0.2";
pub const POD_PREFIX: &str = "10.245.0.";
pub const TAINT: &str = "mettaton.dev/real-node";
/// The test game, imported into the node's containerd under both tags.
pub const IMAGE: &str = "127.0.0.1:5999/mettaton-testgame:1";
pub const IMAGE_2: &str = "127.0.0.1:5999/mettaton-testgame:2";

/// A GameServer of the test game that must run on the real node: a TCP game
/// port probed every second and a UDP query port.
pub fn on_real_node(name: &str, spec: Value) -> GameServer {
    let base = json!({
        "image": IMAGE,
        "ports": [
            { "name": "game", "containerPort": 7777 },
            { "name": "query", "containerPort": 7778, "protocol": "UDP" }
        ],
        "nodeSelector": { "type": "real" },
        "tolerations": [{ "operator": "Exists", "effect": "NoSchedule" }],
        "health": { "probe": { "tcpPort": "game" }, "periodSeconds": 1, "failureThreshold": 2, "startupTimeoutSeconds": 60 },
        "shutdown": { "gracePeriodSeconds": 15 }
    });
    game_server(name, merged(base, spec))
}

/// The port players use for `name`, from the status.
pub fn published(gs: &GameServer, name: &str) -> u16 {
    let status = gs.status.as_ref().unwrap();
    let port = status.ports.iter().find(|p| p.name == name).unwrap_or_else(|| panic!("{name} in {status:?}"));
    u16::try_from(port.port).unwrap()
}

/// A player's session over TCP at the status' address: the greeting, then
/// the answer to each line; the first thing that failed, as text.
pub fn play(gs: &GameServer, lines: &[&str]) -> Result<Vec<String>, String> {
    let address = gs.status.as_ref().and_then(|s| s.address.clone()).ok_or("no address")?;
    let at = format!("{address}:{}", published(gs, "game"));
    let stream = TcpStream::connect_timeout(&at.parse().map_err(|e| format!("{at}: {e}"))?, Duration::from_secs(5))
        .map_err(|e| format!("connect to {at}: {e}"))?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).map_err(|e| e.to_string())?;
    let mut writer = stream.try_clone().map_err(|e| e.to_string())?;
    let mut reader = BufReader::new(stream);
    let mut answers = Vec::new();
    let mut read = |answers: &mut Vec<String>| -> Result<(), String> {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) => Err(format!("{at} closed the connection")),
            Ok(_) => {
                answers.push(line.trim_end().to_string());
                Ok(())
            }
            Err(e) => Err(format!("read from {at}: {e}")),
        }
    };
    read(&mut answers)?;
    for line in lines {
        writeln!(writer, "{line}").map_err(|e| format!("write to {at}: {e}"))?;
        read(&mut answers)?;
    }
    Ok(answers)
}

/// A player's session, tried until the game answers (kube-proxy's rules may
/// follow readiness by a moment; a restarting server answers again later).
pub async fn play_when_up(gs: &GameServer, lines: &[&str]) -> Vec<String> {
    let (gs, lines) = (gs.clone(), lines.iter().map(|l| l.to_string()).collect::<Vec<_>>());
    eventually("the game answers over TCP", Duration::from_secs(30), || {
        let (gs, lines) = (gs.clone(), lines.clone());
        async move {
            tokio::task::spawn_blocking(move || {
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                play(&gs, &refs)
            })
            .await
            .unwrap()
        }
    })
    .await
}

/// The processes of the pod's container `name` on this machine, found through
/// the node's cgroups (the container id names its cgroup).
pub fn container_pids(pod: &Pod, name: &str) -> Vec<u32> {
    let statuses = pod.status.as_ref().and_then(|s| s.container_statuses.clone()).unwrap_or_default();
    let id = statuses.iter().find(|c| c.name == name).and_then(|c| c.container_id.clone()).expect("a container id");
    let id = id.rsplit("//").next().unwrap().to_string();
    fn find(dir: &Path, id: &str) -> Option<PathBuf> {
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
            let path = entry.path();
            if path.is_dir() {
                if entry.file_name().to_str() == Some(id) {
                    return Some(path);
                }
                if let Some(found) = find(&path, id) {
                    return Some(found);
                }
            }
        }
        None
    }
    let cgroup =
        find(Path::new(NODE_CGROUP), &id).unwrap_or_else(|| panic!("no cgroup of container {id} under the node's"));
    let procs = std::fs::read_to_string(cgroup.join("cgroup.procs")).unwrap();
    procs.split_whitespace().map(|p| p.parse().unwrap()).collect()
}

/// SIGKILL to every process of the pod's container `name`.
pub fn kill_container(pod: &Pod, name: &str) {
    let pids = container_pids(pod, name);
    assert!(!pids.is_empty(), "the container has processes");
    kill9(&pids);
}

/// SIGKILL to each of `pids` (one already gone is no error).
pub fn kill9(pids: &[u32]) {
    for pid in pids {
        let _ = std::process::Command::new("kill").args(["-KILL", &pid.to_string()]).status();
    }
}

/// The node's cgroup in the pids hierarchy: every process of the node and its pods is below it.
pub const NODE_CGROUP: &str = "/sys/fs/cgroup/pids/mettaton-node";

/// mettaton's supervisor (scripts/build-supervisor) as an image on the real
/// node, for the controllers the tests run ([`ensure_supervisor_image`]).
pub const SUPERVISOR_IMAGE: &str = "127.0.0.1:5999/mettaton-supervisor:test";

/// Builds the supervisor's static binary and imports its image into the real
/// node's containerd: once per test process.
pub async fn ensure_supervisor_image() {
    static DONE: tokio::sync::OnceCell<()> = tokio::sync::OnceCell::const_new();
    DONE.get_or_init(|| async {
        tokio::task::spawn_blocking(|| {
            let root = Path::new(env!("CARGO_MANIFEST_DIR"));
            let run = |cmd: &mut std::process::Command| {
                let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
                assert!(out.status.success(), "{cmd:?}: {}", String::from_utf8_lossy(&out.stderr));
                String::from_utf8_lossy(&out.stdout).trim().to_string()
            };
            let binary = run(&mut std::process::Command::new(root.join("scripts/build-supervisor")));
            let work = root.join("target/supervisor/image");
            let rootfs = work.join("rootfs");
            let _ = std::fs::remove_dir_all(&work);
            std::fs::create_dir_all(&rootfs).unwrap();
            std::fs::copy(&binary, rootfs.join("mettaton-supervisor")).unwrap();
            let tar = work.join("rootfs.tar");
            run(std::process::Command::new("tar")
                .args(["--owner=0", "--group=0", "-C"])
                .arg(&rootfs)
                .arg("-cf")
                .arg(&tar)
                .arg("."));
            let image = work.join("image.tar");
            let plane =
                std::env::var("MTN_PLANE_DIR").map(PathBuf::from).unwrap_or_else(|_| root.join("target/controlplane"));
            run(std::process::Command::new(plane.join("bin/mkimage"))
                .arg("-o")
                .arg(&image)
                .args(["-tag", SUPERVISOR_IMAGE, "-entrypoint", r#"["/mettaton-supervisor"]"#])
                .arg(&tar));
            run(std::process::Command::new(root.join("tests/controlplane/node")).arg("import").arg(&image));
        })
        .await
        .unwrap()
    })
    .await;
}

/// The directory on this machine behind the server's volume (the plane's
/// host-path provisioner makes one per claim).
pub async fn volume_dir(ns: &crate::support::TestNamespace, claim: &str) -> PathBuf {
    use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
    let pvc = ns.api::<PersistentVolumeClaim>().get(claim).await.unwrap();
    let pv_name = pvc.spec.and_then(|s| s.volume_name).expect("the claim is bound");
    let pv = kube::Api::<PersistentVolume>::all(ns.client.clone()).get(&pv_name).await.unwrap();
    PathBuf::from(pv.spec.and_then(|s| s.host_path).expect("a host-path volume").path)
}

/// The world on the volume, as the test game saves it.
pub fn world(dir: &Path) -> String {
    std::fs::read_to_string(dir.join("world.sav")).unwrap_or_else(|e| format!("no world.sav: {e}"))
}

/// The one pod of server `name` that is not being deleted (waiting up to two
/// minutes for there to be exactly one).
pub async fn live_pod(ns: &crate::support::TestNamespace, name: &str) -> Pod {
    let selector = format!("mettaton.dev/gameserver={name}");
    eventually(&format!("one live pod of {name}"), Duration::from_secs(120), || async {
        let params = kube::api::ListParams::default().labels(&selector);
        let pods = ns.api::<Pod>().list(&params).await.map_err(|e| e.to_string())?;
        let live: Vec<Pod> = pods.items.into_iter().filter(|p| p.metadata.deletion_timestamp.is_none()).collect();
        match live.as_slice() {
            [pod] => Ok(pod.clone()),
            other => Err(format!("{} live pods", other.len())),
        }
    })
    .await
}
