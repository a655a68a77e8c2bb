//! The `Mettaton` library facade and the `mettaton swarm` CLI against a real
//! Docker Engine in swarm mode (tests/swarm/up), with the test game image the
//! project builds (tests/testgame): spawn, reach the server over TCP and UDP,
//! logs, events when a container dies, recovery in a new process, shutdown, and
//! bad input refused with nothing left behind.

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bollard::query_parameters::{
    KillContainerOptionsBuilder, ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListVolumesOptionsBuilder,
};
use mettaton::api::Protocol;
use mettaton::facade::{Error, Mettaton, ServerEvent};
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator};

use crate::dockerd::PrivateDockerd;
use crate::support::{docker, eventually};
use crate::testgame::{self, IMAGE, tcp_exchange, udp_exchange, with_storage};

type Scope = testgame::Scope<SwarmOrchestrator>;

fn game_spec() -> serde_json::Value {
    testgame::game_spec("facade")
}

fn free_port() -> i32 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port().into()
}

fn mettaton_cli(state: &Path, args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_mettaton")).arg("swarm").arg("--state").arg(state).args(args).output().unwrap()
}

/// DAEMON_1_DOCKER_IS_CONNECTED, DAEMON_2_CONNECT, DAEMON_3_DISCONNECT,
/// SPAWN_1_SPAWN, SPAWN_3_NETWORK_INFO, INFO_1_GENERAL_SERVER_INFO,
/// INFO_2_SERVER_LIST, INFO_3_SERVER_IDENTIFIER, INFO_4_GAME_LOGS,
/// IMAGE_2_PORT_CONFIG, RECOVERY_1_STATE_RECOVERY, SHUTDOWN_1_ANY_TIME, and
/// the spec's asynchronous errors: connect, spawn, reach the game where the
/// facade says over TCP and UDP, info, list, logs, a Died event with its
/// restart and reason for a killed container, disconnect, a new facade (and
/// the CLI, another process) picking the server up from the state file, and
/// shutdown.
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
    let (restarts, reason) = died;
    assert_eq!(reason, "the container exited with code 137", "SIGKILL");
    assert_eq!(restarts, 1, "the kill is the server's first restart");
    assert!(killed_at.elapsed() < Duration::from_secs(15));

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

/// SPAWN_2_ERRORS, IMAGE_1_DEPLOYMENT: spawn before connect, an invalid
/// manifest (every problem named), a missing image, a taken port, unknown ids:
/// each a distinct error, and nothing left behind.
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

/// DAEMON_2_CONNECT, DAEMON_1_DOCKER_IS_CONNECTED: no daemon there.
#[tokio::test]
async fn an_unreachable_daemon_is_a_clear_error() {
    let scope = Scope::new("down");
    let mut facade = Mettaton::new(Daemon::LocalSocket(scope.dir.join("no-docker.sock")), scope.state());
    let err = facade.connect().await.expect_err("no daemon there");
    assert!(matches!(err, Error::DaemonUnreachable(_)), "{err:?}");
    assert!(err.to_string().contains("no-docker.sock"), "the error names the daemon: {err}");
    assert!(!facade.is_connected().await);
}

/// DAEMON_2_CONNECT: the daemon must be a swarm manager.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_that_is_not_a_swarm_manager_is_refused_clearly() {
    let scope = Scope::new("lone");
    // A second, real Docker daemon outside any swarm (tests/common/dockerd.rs).
    let lone = PrivateDockerd::start(&scope.dir, "lone").await;
    let mut facade = Mettaton::new(Daemon::LocalSocket(lone.socket()), scope.state());
    let err = facade.connect().await.expect_err("a daemon outside any swarm is refused");
    assert!(matches!(err, Error::DaemonRefused(_)), "{err:?}");
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

// ---------------------------------------------------------------------------
// Data safety, apply, restart, deaths, the CLI as users run it (issue 13).

fn docker_filters(key: &str, value: String) -> std::collections::HashMap<String, Vec<String>> {
    std::collections::HashMap::from([(key.to_string(), vec![value])])
}

impl Scope {
    /// The swarm volume of server `name` (the backend's naming).
    fn volume(&self, name: &str) -> String {
        let spec = serde_json::from_value(game_spec()).unwrap();
        mettaton::orchestrator::swarm::builders::volume_name(&mettaton::plan::plan_spec(name, &self.namespace, &spec))
    }

    /// The volume's directory on this machine, if the volume exists.
    async fn volume_dir(&self, name: &str) -> Option<PathBuf> {
        docker().inspect_volume(&self.volume(name)).await.ok().map(|v| PathBuf::from(v.mountpoint))
    }

    /// Runs the CLI against the test swarm with this scope's state and namespace.
    fn cli(&self, args: &[&str]) -> std::process::Output {
        let mut all = vec!["-n", &self.namespace];
        all.extend_from_slice(args);
        mettaton_cli(&self.state(), &all)
    }

    fn write_manifest(&self, file: &str, name: &str, spec: serde_json::Value) -> PathBuf {
        let path = self.dir.join(file);
        let manifest = serde_json::json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": name }, "spec": spec
        });
        std::fs::write(&path, serde_yaml::to_string(&manifest).unwrap()).unwrap();
        path
    }

    /// The id of the one container of server `name` that runs now.
    async fn container(&self, name: &str) -> String {
        let filters = docker_filters("label", format!("mettaton.dev/gameserver={name}"));
        let filters2 = docker_filters("label", format!("mettaton.dev/namespace={}", self.namespace));
        let mut all: Vec<_> = filters.into_iter().chain(filters2).collect::<Vec<_>>();
        let merged: std::collections::HashMap<String, Vec<String>> = std::collections::HashMap::from([(
            "label".to_string(),
            all.drain(..).flat_map(|(_, v)| v).collect::<Vec<_>>(),
        )]);
        let list = docker()
            .list_containers(Some(ListContainersOptionsBuilder::default().filters(&merged).build()))
            .await
            .unwrap();
        list.into_iter().next().and_then(|c| c.id).expect("a running container of the server")
    }
}

/// A child process killed if a test fails before it ends it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// SPAWN_2_ERRORS, data safety: a world kept (Retain) by an earlier server of
/// the same name survives every spawn that fails, whatever the failing
/// manifest's reclaim policy: a missing image, a taken port, a manifest the
/// swarm refuses, a start slower than `health.startupTimeoutSeconds` (which
/// the wait follows: 3 s here, not a fixed minute); and `state: Stopped`
/// spawns at once without a wait and without touching it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kept_world_survives_every_failing_spawn() {
    let scope = Scope::new("keep");
    let mut facade = scope.facade();
    facade.connect().await.unwrap();
    let first = facade.spawn(&scope.manifest("world", with_storage(game_spec(), "Retain"))).await.unwrap();
    let dir = scope.volume_dir("world").await.expect("the volume exists");
    std::fs::write(dir.join("world.dat"), "the kept world").unwrap();
    facade.shutdown(&first.id).await.unwrap();
    let kept = || std::fs::read_to_string(dir.join("world.dat")).ok();
    assert_eq!(kept().as_deref(), Some("the kept world"));

    // Every failing spawn declares Delete: the policy of a server that never
    // ran must not reach a volume it did not make.
    let mut missing = with_storage(game_spec(), "Delete");
    missing["image"] = serde_json::json!("127.0.0.1:5999/mettaton-no-such-image:1");
    let err = facade.spawn(&scope.manifest("world", missing)).await.unwrap_err();
    assert!(matches!(err, Error::ImageMissing { .. }), "{err:?}");
    assert_eq!(kept().as_deref(), Some("the kept world"), "after a missing image");

    let port = free_port();
    let mut holder = game_spec();
    holder["ports"][0]["externalPort"] = serde_json::json!(port);
    let holder = facade.spawn(&scope.manifest("holder", holder)).await.unwrap();
    let mut taker = with_storage(game_spec(), "Delete");
    taker["ports"][0]["externalPort"] = serde_json::json!(port);
    let err = facade.spawn(&scope.manifest("world", taker)).await.unwrap_err();
    assert!(matches!(err, Error::PortTaken { .. }), "{err:?}");
    assert_eq!(kept().as_deref(), Some("the kept world"), "after a taken port");
    facade.shutdown(&holder.id).await.unwrap();

    let mut refused = with_storage(game_spec(), "Delete");
    refused["tolerations"] = serde_json::json!([{ "key": "dedicated", "value": "games" }]);
    let err = facade.spawn(&scope.manifest("world", refused)).await.unwrap_err();
    assert!(matches!(&err, Error::Refused(m) if m.contains("spec.tolerations")), "{err:?}");
    assert_eq!(kept().as_deref(), Some("the kept world"), "after a refused manifest");

    let mut slow = with_storage(game_spec(), "Delete");
    slow["env"] = serde_json::json!([{ "name": "GAME_LISTEN_DELAY_SECONDS", "value": "3600" }]);
    slow["health"] = serde_json::json!({ "startupTimeoutSeconds": 3, "periodSeconds": 1 });
    let started = std::time::Instant::now();
    let err = facade.spawn(&scope.manifest("world", slow)).await.unwrap_err();
    assert!(matches!(err, Error::StartFailed { .. }), "{err:?}");
    assert!(started.elapsed() < Duration::from_secs(30), "the wait follows the manifest: {:?}", started.elapsed());
    assert_eq!(kept().as_deref(), Some("the kept world"), "after a start that timed out");

    let mut stopped = with_storage(game_spec(), "Delete");
    stopped["state"] = serde_json::json!("Stopped");
    let started = std::time::Instant::now();
    let handle = facade.spawn(&scope.manifest("world", stopped)).await.expect("a stopped server spawns");
    assert!(started.elapsed() < Duration::from_secs(20), "no wait for a stopped server");
    assert_eq!(handle.address, None);
    assert_eq!(kept().as_deref(), Some("the kept world"), "spawned stopped");
    assert_eq!(facade.info(&handle.id).await.unwrap().phase, mettaton::api::Phase::Stopped);
    assert!(matches!(
        facade.spawn(&scope.manifest("world", game_spec())).await,
        Err(Error::AlreadyExists(id)) if id == handle.id
    ));
}

/// SPAWN_2_ERRORS, IMAGE_1_DEPLOYMENT: the fields swarm honours or refuses
/// by name: `imagePullPolicy` (Never with an image the node lacks is refused
/// naming the policy, Never with one it has runs, Always pulls first), a
/// LoadBalancer service and service annotations are refused naming the field;
/// a TCP readiness probe is run by mettaton on the published port (a server
/// that listens only after 4 s is not ready before, and one that stops
/// answering turns not ready after its failure threshold); `storage.size`,
/// which no driver enforces, comes back as a warning naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_honours_each_field_or_refuses_it_by_name() {
    let scope = Scope::new("fields");
    let mut facade = scope.facade();
    facade.connect().await.unwrap();

    let mut never = game_spec();
    never["image"] = serde_json::json!("127.0.0.1:5999/mettaton-not-here:1");
    never["imagePullPolicy"] = serde_json::json!("Never");
    match facade.spawn(&scope.manifest("never", never)).await {
        Err(Error::ImageMissing { reason, .. }) => assert!(reason.contains("imagePullPolicy is Never"), "{reason}"),
        other => panic!("expected ImageMissing, got {other:?}"),
    }
    // Always: pulled before the service is created, even though the node has
    // the image (its registry, on loopback, refuses: the pull fails).
    let mut always = game_spec();
    always["imagePullPolicy"] = serde_json::json!("Always");
    match facade.spawn(&scope.manifest("always", always)).await {
        Err(Error::ImageMissing { image, .. }) => assert_eq!(image, IMAGE),
        other => panic!("expected ImageMissing from the pull, got {other:?}"),
    }
    let mut present = game_spec();
    present["imagePullPolicy"] = serde_json::json!("Never");
    let handle = facade.spawn(&scope.manifest("present", present)).await.expect("Never with the image on the node");
    facade.shutdown(&handle.id).await.unwrap();
    for (field, value, named) in [
        ("service", serde_json::json!({ "type": "LoadBalancer" }), "spec.service.type"),
        ("service", serde_json::json!({ "annotations": { "a": "b" } }), "spec.service.annotations"),
    ] {
        let mut spec = game_spec();
        spec[field] = value;
        let err = facade.spawn(&scope.manifest("refused", spec)).await.unwrap_err();
        assert!(matches!(&err, Error::Refused(m) if m.contains(named)), "{named}: {err:?}");
    }

    // The TCP probe: ready only once the game listens.
    let mut late = with_storage(game_spec(), "Delete");
    late["env"] = serde_json::json!([
        { "name": "GAME_LISTEN_DELAY_SECONDS", "value": "4" },
        { "name": "GAME_HANG_AFTER_SECONDS", "value": "8" }
    ]);
    late["health"] = serde_json::json!({ "probe": { "tcpPort": "game" }, "periodSeconds": 1, "failureThreshold": 2 });
    let started = std::time::Instant::now();
    let handle = facade.spawn(&scope.manifest("late", late)).await.expect("ready once it listens");
    assert!(started.elapsed() >= Duration::from_secs(4), "not ready before it listens: {:?}", started.elapsed());
    assert!(
        handle.warnings.iter().any(|w| w.starts_with("spec.storage.size 1Gi is not enforced")),
        "{:?}",
        handle.warnings
    );
    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.healthy, "{info:?}");
    // It stops answering at 8 s: not ready after two failed probes.
    let info = eventually("the hung server not ready", Duration::from_secs(20), || async {
        let info = facade.info(&handle.id).await.map_err(|e| e.to_string())?;
        if !info.healthy && info.running { Ok(info) } else { Err(format!("{info:?}")) }
    })
    .await;
    assert!(info.problem.as_deref().is_some_and(|p| p.contains("TCP readiness probe")), "{info:?}");
    facade.shutdown(&handle.id).await.unwrap();
}

/// SPAWN_1_SPAWN, SPAWN_2_ERRORS, SHUTDOWN_1_ANY_TIME, INFO_4_GAME_LOGS, and
/// unknown fields: `mettaton swarm apply` as a user runs it. A misspelt field
/// is refused by its path and nothing is created; apply creates, says
/// "unchanged" for the same manifest, and updates in place for a changed one,
/// listing what changed field by field, with the world in the volume kept;
/// `describe`, `logs`, `logs -f`, `restart`, `events` and `delete` print what
/// they should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_applies_updates_describes_logs_restarts_and_deletes() {
    let scope = Scope::new("cli");
    let mut spec = with_storage(game_spec(), "Retain");
    spec["env"][0]["value"] = serde_json::json!("first");

    let mut typo = spec.clone();
    typo["stroage"] = typo["storage"].take();
    typo.as_object_mut().unwrap().remove("storage");
    let file = scope.write_manifest("typo.yaml", "cli", typo);
    let out = scope.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert!(!out.status.success(), "{}", stdout(&out));
    assert!(stderr(&out).contains("spec.stroage: unknown field"), "{}", stderr(&out));
    assert!(scope.volume_dir("cli").await.is_none(), "nothing created");

    // `events` from the start, as a user would leave it running.
    let mut events = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["swarm", "-n", &scope.namespace, "--state"])
            .arg(scope.state())
            .arg("events")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap(),
    ));

    let file = scope.write_manifest("cli.yaml", "cli", spec.clone());
    let out = scope.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = format!("{}/cli", scope.namespace);
    assert!(stdout(&out).starts_with(&format!("gameserver {id} spawned at 127.0.0.1 (game=")), "{}", stdout(&out));
    assert!(stderr(&out).contains("warning: ") && stderr(&out).contains("spec.storage.size"), "{}", stderr(&out));
    let dir = scope.volume_dir("cli").await.expect("the volume");
    std::fs::write(dir.join("world.dat"), "built by players").unwrap();

    let out = scope.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert_eq!(stdout(&out), format!("gameserver {id} unchanged\n"), "{}", stderr(&out));

    spec["env"][0]["value"] = serde_json::json!("second");
    let file = scope.write_manifest("cli.yaml", "cli", spec.clone());
    let out = scope.cli(&["apply", "-f", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", stderr(&out));
    let text = stdout(&out);
    assert!(text.starts_with(&format!("gameserver {id} configured, running at 127.0.0.1")), "{text}");
    assert!(text.contains("\n  spec.env[0].value: \"first\" -> \"second\"\n"), "{text}");
    assert_eq!(text.lines().count(), 2, "one change: {text}");
    assert_eq!(std::fs::read_to_string(dir.join("world.dat")).unwrap(), "built by players", "the world is kept");

    let out = scope.cli(&["describe", "cli"]);
    let text = stdout(&out);
    for want in ["Name:        cli\n", "Phase:       Running\n", "Healthy:     true\n", "Address:     127.0.0.1\n"] {
        assert!(text.contains(want), "{want:?} in {text}");
    }
    assert!(text.contains("Warning:") && text.contains("spec.storage.size"), "{text}");
    let json: serde_json::Value = serde_json::from_slice(&scope.cli(&["-o", "json", "get", "cli"]).stdout).unwrap();
    let port = json[0]["ports"][0]["port"].as_i64().unwrap() as i32;
    assert_eq!(tcp_exchange("127.0.0.1", port).0, "hello from second", "the update runs");

    let logs = eventually("the log", Duration::from_secs(20), || async {
        let text = stdout(&scope.cli(&["logs", "cli"]));
        if text.contains("player connected") { Ok(text) } else { Err(text) }
    })
    .await;
    assert!(logs.contains("game server listening tcp=7777 udp=7778 name=second"), "{logs}");
    let tail = stdout(&scope.cli(&["logs", "cli", "--tail", "1"]));
    assert_eq!(tail.lines().count(), 1, "{tail}");

    // logs -f prints lines as they come.
    let mut follow = KillOnDrop(Some(
        Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["swarm", "-n", &scope.namespace, "--state"])
            .arg(scope.state())
            .args(["logs", "cli", "-f", "--tail", "0"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap(),
    ));
    let mut lines = BufReader::new(follow.0.as_mut().unwrap().stdout.take().unwrap()).lines();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let _ = tcp_exchange("127.0.0.1", port);
    let seen = tokio::task::spawn_blocking(move || {
        for line in lines.by_ref() {
            let line = line.unwrap();
            if line.contains("player connected") {
                return line;
            }
        }
        panic!("logs -f ended without the new line");
    });
    let line = tokio::time::timeout(Duration::from_secs(20), seen).await.expect("followed within 20 s").unwrap();
    assert!(line.contains("player connected from"), "{line}");
    let follow = follow.0.take().unwrap();
    let _ = Command::new("kill").args(["-INT", &follow.id().to_string()]).status();
    let ended = follow.wait_with_output().unwrap();
    assert!(ended.status.success(), "logs -f ends on an interrupt: {:?} {}", ended.status, stderr(&ended));

    // restart: a new container, the same world.
    let before = scope.container("cli").await;
    let out = scope.cli(&["restart", "cli"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).starts_with(&format!("gameserver {id} restarted at 127.0.0.1")), "{}", stdout(&out));
    assert_ne!(scope.container("cli").await, before, "a new container");
    assert_eq!(std::fs::read_to_string(dir.join("world.dat")).unwrap(), "built by players");

    // A kill is a death `events` prints.
    docker()
        .kill_container(
            &scope.container("cli").await,
            Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build()),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;

    let out = scope.cli(&["delete", "cli"]);
    assert_eq!(stdout(&out), format!("gameserver {id} deleted\n"), "{}", stderr(&out));
    assert!(dir.join("world.dat").exists(), "Retain keeps the world");
    let out = scope.cli(&["describe", "cli"]);
    assert!(!out.status.success() && stderr(&out).contains("no server with id"), "{}", stderr(&out));

    let events = events.0.take().unwrap();
    let _ = Command::new("kill").args(["-INT", &events.id().to_string()]).status();
    let out = events.wait_with_output().unwrap();
    let printed = stdout(&out);
    let died: Vec<&str> = printed.lines().filter(|l| l.contains(" Died ")).collect();
    assert_eq!(died.len(), 1, "one death, the kill (not the restart, not the delete): {printed}");
    assert!(died[0].contains(&id) && died[0].contains("reason=the container exited with code 137"), "{printed}");
}

/// SPAWN_1_SPAWN, INFO_1_GENERAL_SERVER_INFO: `Mettaton::apply` creates,
/// finds nothing to do, updates in place field by field (the volume and its
/// world kept), and refuses what a GameServer may not change; `restart` makes
/// a new container with no death reported and no restart counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_library_applies_in_place_and_restarts() {
    use mettaton::facade::Applied;
    let scope = Scope::new("apply");
    let mut facade = scope.facade();
    let mut events = facade.events();
    facade.connect().await.unwrap();
    let spec = with_storage(game_spec(), "Retain");
    let created = match facade.apply(&scope.manifest("lib", spec.clone())).await.unwrap() {
        Applied::Created(h) => h,
        other => panic!("expected Created, got {other:?}"),
    };
    let dir = scope.volume_dir("lib").await.unwrap();
    std::fs::write(dir.join("world.dat"), "kept").unwrap();
    assert_eq!(
        facade.apply(&scope.manifest("lib", spec.clone())).await.unwrap(),
        Applied::Unchanged { id: created.id.clone() }
    );
    let mut changed = spec.clone();
    changed["env"][0]["value"] = serde_json::json!("changed");
    changed["storage"]["size"] = serde_json::json!("2Gi");
    match facade.apply(&scope.manifest("lib", changed.clone())).await.unwrap() {
        Applied::Updated { handle, changes } => {
            let fields: Vec<String> = changes.iter().map(|c| c.to_string()).collect();
            assert_eq!(
                fields,
                vec!["spec.env[0].value: \"facade-test\" -> \"changed\"", "spec.storage.size: \"1Gi\" -> \"2Gi\""]
            );
            let port = handle.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
            assert_eq!(tcp_exchange("127.0.0.1", port).0, "hello from changed");
        }
        other => panic!("expected Updated, got {other:?}"),
    }
    assert_eq!(std::fs::read_to_string(dir.join("world.dat")).unwrap(), "kept");
    let mut shrunk = changed.clone();
    shrunk["storage"]["size"] = serde_json::json!("1Gi");
    let err = facade.apply(&scope.manifest("lib", shrunk)).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(p) if p[0].starts_with("spec.storage.size: may grow")), "{err:?}");
    let mut removed = changed.clone();
    removed.as_object_mut().unwrap().remove("storage");
    let err = facade.apply(&scope.manifest("lib", removed)).await.unwrap_err();
    assert!(matches!(&err, Error::Invalid(p) if p[0].starts_with("spec.storage: cannot be removed")), "{err:?}");

    let before = scope.container("lib").await;
    let restarted = facade.restart(&created.id).await.unwrap();
    assert!(restarted.address.is_some());
    assert_ne!(scope.container("lib").await, before);
    let info = facade.info(&created.id).await.unwrap();
    assert!(info.healthy && info.restarts == 0, "{info:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(e) = events.try_recv() {
        assert!(!matches!(e, ServerEvent::Died { .. }), "a restart asked for is no death: {e:?}");
    }
    assert_eq!(std::fs::read_to_string(dir.join("world.dat")).unwrap(), "kept");
    facade.shutdown(&created.id).await.unwrap();
    assert!(matches!(facade.restart(&created.id).await, Err(Error::UnknownServer(_))));
}

/// The spec's asynchronous errors ("any unexpected termination of a game
/// server container"): the Died event of a killed container carries the
/// restart it caused and the exit code; an out-of-memory kill (players' sessions past a 8 MiB
/// limit) and a failed health check reach the event stream and `info`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deaths_by_kill_out_of_memory_and_failed_health_check_are_reported_with_their_reason() {
    let scope = Scope::new("death");
    let mut facade = scope.facade();
    let mut events = facade.events();
    facade.connect().await.unwrap();
    let next_death = |events: &mut tokio::sync::broadcast::Receiver<ServerEvent>, id: String| {
        let mut events = events.resubscribe();
        async move {
            tokio::time::timeout(Duration::from_secs(40), async {
                let mut unhealthy = false;
                loop {
                    let event = events.recv().await.unwrap();
                    eprintln!("event: {event:?}");
                    match event {
                        ServerEvent::Unhealthy { id: i, .. } if i == id => unhealthy = true,
                        ServerEvent::Died { id: i, restarts, reason } if i == id => {
                            break (restarts, reason, unhealthy);
                        }
                        _ => {}
                    }
                }
            })
            .await
            .expect("a Died event")
        }
    };

    // A kill.
    let mut oom_spec = game_spec();
    oom_spec["resources"] = serde_json::json!({ "limits": { "memory": "8Mi" } });
    let handle = facade.spawn(&scope.manifest("oom", oom_spec)).await.unwrap();
    let died = next_death(&mut events, handle.id.clone());
    docker()
        .kill_container(
            &scope.container("oom").await,
            Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build()),
        )
        .await
        .unwrap();
    let (restarts, reason, _) = died.await;
    assert_eq!(reason, "the container exited with code 137");
    assert_eq!(restarts, 1, "the kill is the first restart");

    // Out of memory: players' sessions hold more than the limit.
    // Running again in a new container, on a new port.
    let old_ports = handle.ports.clone();
    let info = eventually("running again", Duration::from_secs(30), || async {
        let info = facade.info(&handle.id).await.map_err(|e| e.to_string())?;
        if info.healthy && info.ports != old_ports { Ok(info) } else { Err(format!("{info:?}")) }
    })
    .await;
    let port = info.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
    let died = next_death(&mut events, handle.id.clone());
    let flood = std::thread::spawn(move || {
        let mut held = Vec::new();
        for _ in 0..400 {
            match TcpStream::connect(("127.0.0.1", port as u16)) {
                Ok(mut s) => {
                    let _ = s.write_all(&[b'x'; 60000]);
                    held.push(s);
                }
                Err(_) => break,
            }
        }
        eprintln!("flood: {} sessions on port {port}", held.len());
        std::thread::sleep(Duration::from_secs(3));
    });
    let (restarts, reason, _) = died.await;
    let _ = flood.join();
    assert!(reason.starts_with("out of memory"), "{reason}");
    assert_eq!(restarts, 2);
    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.last_failure.as_deref().is_some_and(|f| f.starts_with("out of memory")), "{info:?}");

    // A failed health check: it passes while /data/healthy exists.
    let volume = scope.volume("sick");
    let labels = std::collections::HashMap::from([
        ("mettaton.dev/managed".to_string(), "true".to_string()),
        ("mettaton.dev/gameserver".to_string(), "sick".to_string()),
        ("mettaton.dev/namespace".to_string(), scope.namespace.clone()),
        ("mettaton.dev/test".to_string(), "true".to_string()),
    ]);
    docker()
        .create_volume(bollard::models::VolumeCreateRequest {
            name: Some(volume.clone()),
            labels: Some(labels),
            ..Default::default()
        })
        .await
        .unwrap();
    let dir = scope.volume_dir("sick").await.unwrap();
    std::fs::write(dir.join("healthy"), "yes").unwrap();
    let mut sick = with_storage(game_spec(), "Delete");
    sick["health"] = serde_json::json!({
        "probe": { "exec": ["/testgame", "-cat", "/data/healthy"] },
        "startupTimeoutSeconds": 30, "periodSeconds": 1, "failureThreshold": 2
    });
    let handle = facade.spawn(&scope.manifest("sick", sick)).await.unwrap();
    let died = next_death(&mut events, handle.id.clone());
    std::fs::remove_file(dir.join("healthy")).unwrap();
    let (_, reason, unhealthy) = died.await;
    assert!(unhealthy, "an Unhealthy event came first");
    assert!(reason.starts_with("unhealthy: its health check failed"), "{reason}");
    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.last_failure.as_deref().is_some_and(|f| f.starts_with("unhealthy")), "{info:?}");
}

/// SPAWN_2_ERRORS, SHUTDOWN_2_ERROR: spawn's `StartFailed` (a server that
/// crashes at start) and shutdown's `ShutdownFailed` when the daemon stops
/// answering (through a proxy cut in front of its socket); the server stays
/// known, and a later shutdown succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn start_and_shutdown_failures_are_errors_the_caller_gets() {
    use crate::support::{Proxy, Upstream, docker_socket};
    let scope = Scope::new("fail");
    let proxy = Proxy::start_to(Upstream::Unix(docker_socket())).await;
    let daemon = Daemon::Tcp { url: format!("tcp://127.0.0.1:{}", proxy.port), tls: None };
    let mut facade = Mettaton::new(daemon, scope.state());
    facade.connect().await.unwrap();

    let mut crash = game_spec();
    crash["command"] = serde_json::json!(["/no-such-binary"]);
    crash["health"] = serde_json::json!({ "startupTimeoutSeconds": 60 });
    match facade.spawn(&scope.manifest("crash", crash)).await {
        Err(Error::StartFailed { id, reason }) => {
            assert_eq!(id, format!("{}/crash", scope.namespace));
            assert!(reason.contains("no-such-binary"), "{reason}");
        }
        other => panic!("expected StartFailed, got {other:?}"),
    }
    assert!(matches!(facade.info(&format!("{}/crash", scope.namespace)).await, Err(Error::UnknownServer(_))));

    let handle = facade.spawn(&scope.manifest("up", game_spec())).await.unwrap();
    proxy.set_up(false);
    match facade.shutdown(&handle.id).await {
        Err(Error::ShutdownFailed { id, reason }) => {
            assert_eq!(id, handle.id);
            assert!(reason.contains("does not answer"), "{reason}");
        }
        other => panic!("expected ShutdownFailed, got {other:?}"),
    }
    proxy.set_up(true);
    assert!(facade.info(&handle.id).await.is_ok(), "still known");
    facade.shutdown(&handle.id).await.expect("shuts down once the daemon answers");
}

/// INFO_4_GAME_LOGS: `follow_logs` gives the last lines, then each new line.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn follow_logs_gives_new_lines_as_they_come() {
    use futures::StreamExt;
    let scope = Scope::new("follow");
    let mut facade = scope.facade();
    facade.connect().await.unwrap();
    let handle = facade.spawn(&scope.manifest("tail", game_spec())).await.unwrap();
    let mut stream = Box::pin(facade.follow_logs(&handle.id, Some(10)).unwrap());
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text.contains("game server listening") {
            text.push_str(&stream.next().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the last lines: {text}"));
    let port = handle.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
    let _ = tcp_exchange("127.0.0.1", port);
    tokio::time::timeout(Duration::from_secs(20), async {
        while !text.contains("player connected") {
            text.push_str(&stream.next().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no new line followed: {text}"));
    drop(stream);
    facade.shutdown(&handle.id).await.unwrap();
}

/// IMAGE_1_DEPLOYMENT, IMAGE_2_PORT_CONFIG: the three examples of
/// examples/ run on swarm as they are, with only the test image put in (and
/// told which of the example's ports to listen on): read strictly, their
/// `secretKeyRef` variables from the facade's secrets directory, their probes,
/// resources, fixed ports and volumes honoured, spawned ready and shut down.
/// A stop command runs in the container before swarm stops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_examples_run_on_swarm_with_the_test_image() {
    let scope = Scope::new("examples");
    let secrets = scope.dir.join("secrets");
    for (name, key, value) in
        [("minecraft-rcon", "password", "rcon-secret"), ("valheim-password", "password", "vikings")]
    {
        let dir = secrets.join(&scope.namespace).join(name);
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(key), value).unwrap();
    }
    let mut facade = scope.facade().with_secrets_dir(&secrets);
    facade.connect().await.unwrap();
    for example in ["minecraft", "valheim", "factorio"] {
        let path = crate::support::root().join(format!("examples/{example}.yaml"));
        let text = std::fs::read_to_string(&path).unwrap();
        let mut gs = mettaton::facade::manifests_from_str(&text, &scope.namespace).unwrap().remove(0);
        gs.metadata.namespace = Some(scope.namespace.clone());
        gs.spec.image = IMAGE.to_string();
        let port = |protocol: Protocol| gs.spec.ports.iter().find(|p| p.protocol == protocol).map(|p| p.container_port);
        let mut listen = Vec::new();
        if let Some(tcp) = port(Protocol::TCP) {
            listen.push(("GAME_TCP_PORT", tcp));
        }
        if let Some(udp) = port(Protocol::UDP) {
            listen.push(("GAME_UDP_PORT", udp));
        }
        for (name, value) in listen {
            gs.spec.env.push(k8s_openapi::api::core::v1::EnvVar {
                name: name.into(),
                value: Some(value.to_string()),
                value_from: None,
            });
        }
        let handle = facade.spawn(&gs).await.unwrap_or_else(|e| panic!("{example}: {e}"));
        let info = facade.info(&handle.id).await.unwrap();
        assert!(info.running && info.healthy, "{example}: {info:?}");
        assert_eq!(info.ports.len(), gs.spec.ports.len(), "{example}: every port published");
        for fixed in gs.spec.ports.iter().filter_map(|p| p.external_port) {
            assert!(info.ports.iter().any(|p| p.port == fixed), "{example}: fixed port {fixed}: {info:?}");
        }
        if let Some(udp) = handle.ports.iter().find(|p| p.protocol == Protocol::UDP) {
            assert_eq!(udp_exchange("127.0.0.1", udp.port), "pong: hello", "{example}");
        }
        facade.shutdown(&handle.id).await.unwrap_or_else(|e| panic!("{example}: {e}"));
    }

    // A stop command that leaves a mark in the world: it ran before the stop.
    let mut spec = with_storage(game_spec(), "Retain");
    spec["shutdown"] = serde_json::json!({ "gracePeriodSeconds": 5, "stopCommand": ["/testgame", "-touch", "/data/stop-command-ran"] });
    let handle = facade.spawn(&scope.manifest("stopper", spec)).await.unwrap();
    facade.shutdown(&handle.id).await.unwrap();
    let dir = scope.volume_dir("stopper").await.unwrap();
    assert!(dir.join("stop-command-ran").exists(), "the stop command ran in the container");
}
