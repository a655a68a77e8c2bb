//! The `Mettaton` library facade and the `mettaton swarm` CLI against a real
//! Docker Engine in swarm mode (tests/swarm/up), with the test game image the
//! project builds (tests/testgame): spawn, reach the server over TCP and UDP,
//! logs, events when a container dies, recovery in a new process, shutdown, and
//! bad input refused with nothing left behind.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListVolumesOptionsBuilder,
};
use mettaton::api::{GameServer, Protocol};
use mettaton::facade::{Error, Mettaton, ServerEvent};
use mettaton::orchestrator::swarm::Daemon;

use crate::dockerd::PrivateDockerd;
use crate::support::{daemon, docker, eventually, remove_swarm_leftovers};

const IMAGE: &str = "127.0.0.1:5999/mettaton-testgame:1";

/// A namespace of its own for each test, so that tests in parallel never
/// see each other's servers, and a state file in a fresh directory.
struct Scope {
    namespace: String,
    dir: PathBuf,
}

impl Scope {
    fn new(prefix: &str) -> Scope {
        let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
        let namespace = format!("{prefix}-{:x}", (nanos ^ std::process::id()) % 0xffffff);
        let dir = std::env::temp_dir().join(format!("mettaton-facade-{namespace}"));
        std::fs::create_dir_all(&dir).unwrap();
        Scope { namespace, dir }
    }

    fn state(&self) -> PathBuf {
        self.dir.join("state.json")
    }

    fn facade(&self) -> Mettaton {
        Mettaton::new(daemon(), self.state())
    }

    fn manifest(&self, name: &str, spec: serde_json::Value) -> GameServer {
        serde_json::from_value(serde_json::json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": name, "namespace": self.namespace },
            "spec": spec
        }))
        .unwrap()
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        // Whatever a failed test left on the swarm goes with its namespace.
        remove_swarm_leftovers(&self.namespace);
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn game_spec() -> serde_json::Value {
    serde_json::json!({
        "image": IMAGE,
        "env": [{ "name": "GAME_NAME", "value": "facade-test" }, { "name": "GAME_CONFIG", "value": "/etc/game/motd.txt" }],
        "ports": [
            { "name": "game", "containerPort": 7777 },
            { "name": "query", "containerPort": 7778, "protocol": "UDP" }
        ],
        "config": [{ "path": "/etc/game/motd.txt", "content": "welcome to the facade test" }],
        "shutdown": { "gracePeriodSeconds": 5 }
    })
}

fn free_port() -> i32 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().into()
}

/// Talks to the test game over TCP: the greeting, then an echo.
fn tcp_exchange(address: &str, port: i32) -> (String, String) {
    let stream = TcpStream::connect((address, port as u16)).expect("TCP connection to the game server");
    stream.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).unwrap();
    (&stream).write_all(b"ping\n").unwrap();
    let mut echo = String::new();
    reader.read_line(&mut echo).unwrap();
    (greeting.trim().to_string(), echo.trim().to_string())
}

fn udp_exchange(address: &str, port: i32) -> String {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let mut buf = [0u8; 512];
    // UDP may be dropped while the server starts: ask a few times.
    for _ in 0..10 {
        socket.send_to(b"hello", (address, port as u16)).unwrap();
        if let Ok((n, _)) = socket.recv_from(&mut buf) {
            return String::from_utf8_lossy(&buf[..n]).trim().to_string();
        }
    }
    panic!("no UDP answer from {address}:{port}");
}

fn mettaton_cli(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mettaton")).arg("swarm").arg("--state").arg(state).args(args).output().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spawn_reach_logs_events_recover_and_shut_down() {
    let scope = Scope::new("life");
    let mut facade = scope.facade();
    assert!(!facade.is_connected().await);
    let mut events = facade.events();
    facade.connect().await.expect("connects to the swarm manager");
    assert!(facade.is_connected().await);

    let handle = facade.spawn(&scope.manifest("arena", game_spec())).await.expect("spawns");
    assert_eq!(handle.id, format!("{}/arena", scope.namespace));
    let address = handle.address.clone().expect("an address");
    let tcp = handle.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
    let udp = handle.ports.iter().find(|p| p.protocol == Protocol::UDP).unwrap().port;

    // Players reach it where the facade says.
    let (greeting, echo) = tcp_exchange(&address, tcp);
    assert_eq!(greeting, "hello from facade-test");
    assert_eq!(echo, "echo: ping");
    assert_eq!(udp_exchange(&address, udp), "pong: hello");

    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.running && info.healthy, "{info:?}");
    assert_eq!(facade.list().await.unwrap().len(), 1);
    let logs = eventually("the server's log", Duration::from_secs(20), || async {
        let logs = facade.logs(&handle.id, None).await.map_err(|e| e.to_string())?;
        if logs.contains("player connected") { Ok(logs) } else { Err(logs) }
    })
    .await;
    assert!(logs.contains("welcome to the facade test"), "the config file reached the container: {logs}");

    // A new process finds the server through the state file and the swarm.
    let out = mettaton_cli(&scope.state(), &["-n", &scope.namespace, "get", "-o", "json"]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(listed[0]["name"], "arena");
    assert_eq!(listed[0]["phase"], "Running");
    let table = String::from_utf8(mettaton_cli(&scope.state(), &["-n", &scope.namespace, "get"]).stdout).unwrap();
    assert!(table.starts_with("NAME "), "{table}");
    assert!(table.lines().nth(1).unwrap().starts_with("arena "), "{table}");

    // Killing the container is reported on the event stream within seconds.
    let docker = docker();
    let service = info.service_id.clone().unwrap();
    let filters = std::collections::HashMap::from([("label", vec![format!("com.docker.swarm.service.id={service}")])]);
    let containers =
        docker.list_containers(Some(ListContainersOptionsBuilder::default().filters(&filters).build())).await;
    let container = containers.unwrap().into_iter().next().expect("the server's container").id.unwrap();
    let killed_at = std::time::Instant::now();
    docker
        .kill_container(&container, Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build()))
        .await
        .unwrap();
    let died = tokio::time::timeout(Duration::from_secs(15), async {
        loop {
            match events.recv().await.unwrap() {
                ServerEvent::Died { id, restarts, reason } if id == handle.id => break (restarts, reason),
                _ => {}
            }
        }
    })
    .await
    .expect("a Died event within 15 s");
    eprintln!("Died event {:?} after {:?}", died, killed_at.elapsed());

    // A second facade (another process would do the same) picks it up again.
    facade.disconnect().await;
    assert!(!facade.is_connected().await);
    let mut again = scope.facade();
    let recovery = again.connect().await.unwrap();
    assert_eq!(recovery.picked_up, vec![handle.id.clone()]);
    assert!(recovery.vanished.is_empty() && recovery.unknown.iter().all(|id| !id.starts_with(&scope.namespace)));

    again.shutdown(&handle.id).await.expect("shuts down");
    assert!(matches!(again.info(&handle.id).await, Err(Error::UnknownServer(_))));
    let filters =
        std::collections::HashMap::from([("label", vec![format!("mettaton.dev/namespace={}", scope.namespace)])]);
    let left = docker.list_services(Some(ListServicesOptionsBuilder::default().filters(&filters).build())).await;
    assert!(left.unwrap().is_empty(), "the service is removed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_leaves_nothing_behind() {
    let scope = Scope::new("bad");
    let mut facade = scope.facade();
    assert!(matches!(facade.spawn(&scope.manifest("early", game_spec())).await, Err(Error::NotConnected)));
    facade.connect().await.unwrap();
    let docker = docker();
    let nothing_left = || async {
        let filters =
            std::collections::HashMap::from([("label", vec![format!("mettaton.dev/namespace={}", scope.namespace)])]);
        let services =
            docker.list_services(Some(ListServicesOptionsBuilder::default().filters(&filters).build())).await.unwrap();
        let volumes = docker.list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build())).await;
        let volumes = volumes.unwrap().volumes.unwrap_or_default();
        let state = std::fs::read_to_string(scope.state()).unwrap_or_default();
        assert!(services.is_empty(), "services left: {services:?}");
        assert!(volumes.is_empty(), "volumes left: {volumes:?}");
        assert!(!state.contains(&scope.namespace), "state still knows a server: {state}");
    };

    // An invalid manifest: every problem named.
    let mut bad = game_spec();
    bad["ports"][0]["containerPort"] = serde_json::json!(70000);
    bad["image"] = serde_json::json!("");
    match facade.spawn(&scope.manifest("bad", bad)).await {
        Err(Error::Invalid(problems)) => {
            assert!(problems.iter().any(|p| p.contains("spec.image")), "{problems:?}");
            assert!(problems.iter().any(|p| p.contains("spec.ports[0].containerPort")), "{problems:?}");
        }
        other => panic!("expected Invalid, got {other:?}"),
    }
    nothing_left().await;

    // An image that exists neither on the node nor in a registry.
    let mut missing = game_spec();
    missing["image"] = serde_json::json!("127.0.0.1:5999/mettaton-no-such-image:1");
    missing["storage"] = serde_json::json!({ "size": "1Gi", "reclaimPolicy": "Retain" });
    match facade.spawn(&scope.manifest("ghost", missing)).await {
        Err(Error::ImageMissing { image, .. }) => assert_eq!(image, "127.0.0.1:5999/mettaton-no-such-image:1"),
        other => panic!("expected ImageMissing, got {other:?}"),
    }
    nothing_left().await;

    // A port another server already publishes.
    let port = free_port();
    let mut first = game_spec();
    first["ports"][0]["externalPort"] = serde_json::json!(port);
    let holder = facade.spawn(&scope.manifest("holder", first.clone())).await.unwrap();
    match facade.spawn(&scope.manifest("taker", first)).await {
        Err(Error::PortTaken { port: taken, protocol, holder }) => {
            assert_eq!((taken, protocol.as_str()), (i64::from(port), "tcp"));
            assert!(holder.contains("holder"), "names what holds it: {holder}");
        }
        other => panic!("expected PortTaken, got {other:?}"),
    }
    facade.shutdown(&holder.id).await.unwrap();
    nothing_left().await;

    // Unknown ids.
    assert!(matches!(facade.info("nowhere/none").await, Err(Error::UnknownServer(_))));
    assert!(matches!(facade.shutdown("nowhere/none").await, Err(Error::UnknownServer(_))));
    assert!(matches!(facade.logs("nowhere/none", None).await, Err(Error::UnknownServer(_))));
}

#[tokio::test]
async fn an_unreachable_daemon_is_a_clear_error() {
    let scope = Scope::new("down");
    let mut facade = Mettaton::new(Daemon::LocalSocket(scope.dir.join("no-docker.sock")), scope.state());
    let err = facade.connect().await.expect_err("no daemon there");
    assert!(matches!(err, Error::DaemonUnreachable(_)), "{err:?}");
    assert!(err.to_string().contains("no-docker.sock"), "the error names the daemon: {err}");
    assert!(!facade.is_connected().await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_not_a_swarm_manager_is_refused_clearly() {
    let scope = Scope::new("lone");
    // A second, real Docker daemon outside any swarm (tests/common/dockerd.rs).
    let lone = PrivateDockerd::start(&scope.dir, "lone").await;
    let mut facade = Mettaton::new(Daemon::LocalSocket(lone.socket()), scope.state());
    let err = facade.connect().await.expect_err("a daemon outside any swarm is refused");
    assert!(matches!(err, Error::NotSwarmManager(_)), "{err:?}");
    assert!(err.to_string().contains("not a swarm manager"), "{err}");
    assert!(!facade.is_connected().await);

    // The CLI says the same and fails.
    let host = format!("unix://{}", lone.socket().display());
    let out = mettaton_cli(&scope.state(), &["-H", &host, "get"]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not a swarm manager") && stderr.contains("docker swarm init"), "{stderr}");
    assert!(!scope.state().exists(), "nothing written");
}
