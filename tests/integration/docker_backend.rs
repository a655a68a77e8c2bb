//! The plain Docker backend (`DockerOrchestrator`: one container per server
//! on one engine, no swarm) through the library facade,
//! `Mettaton<DockerOrchestrator>`, against the real engine of tests/swarm/up
//! (plain containers run on a swarm node too) with the test game image:
//! spawn, reach, info, logs (and follow), update in place, stop and start,
//! restart, shutdown (Retain keeps the world, Delete erases it), recovery in a
//! new facade (a server removed behind its back is Vanished), deaths (a crash
//! is Died with its exit code, then Restarted), and what plain Docker cannot
//! do refused by name with nothing left behind.

use std::collections::HashMap;
use std::path::PathBuf;
use std::time::Duration;

use bollard::query_parameters::{
    ListContainersOptionsBuilder, ListVolumesOptionsBuilder, RemoveContainerOptionsBuilder,
};
use mettaton::api::{Phase, Protocol};
use mettaton::facade::{Applied, Error, ServerEvent};
use mettaton::orchestrator::docker::DockerOrchestrator;

use crate::support::{docker, eventually};
use crate::testgame::{self, tcp_exchange, udp_exchange, with_storage};

type Scope = testgame::Scope<DockerOrchestrator>;

impl Scope {
    fn container_name(&self, name: &str) -> String {
        format!("mettaton-{}-{name}", self.namespace)
    }

    fn volume(&self, name: &str) -> String {
        format!("{}-data", self.container_name(name))
    }

    /// This namespace's containers (all, running or not) and volumes.
    async fn left(&self) -> (Vec<String>, Vec<String>) {
        let filters = HashMap::from([("label", vec![format!("mettaton.dev/namespace={}", self.namespace)])]);
        let docker = docker();
        let containers = docker
            .list_containers(Some(ListContainersOptionsBuilder::default().all(true).filters(&filters).build()))
            .await
            .unwrap()
            .into_iter()
            .flat_map(|c| c.names.unwrap_or_default())
            .collect();
        let volumes = docker
            .list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&filters).build()))
            .await
            .unwrap()
            .volumes
            .unwrap_or_default()
            .into_iter()
            .map(|v| v.name)
            .collect();
        (containers, volumes)
    }
}

fn game_spec() -> serde_json::Value {
    testgame::game_spec("docker")
}

async fn inspect(name: &str) -> Option<bollard::models::ContainerInspectResponse> {
    docker().inspect_container(name, None).await.ok()
}

async fn volume_dir(name: &str) -> Option<PathBuf> {
    docker().inspect_volume(name).await.ok().map(|v| PathBuf::from(v.mountpoint))
}

/// DAEMON_1_DOCKER_IS_CONNECTED, DAEMON_2_CONNECT, DAEMON_3_DISCONNECT,
/// SPAWN_1_SPAWN, SPAWN_3_NETWORK_INFO, INFO_1_GENERAL_SERVER_INFO,
/// INFO_2_SERVER_LIST, INFO_3_SERVER_IDENTIFIER, INFO_4_GAME_LOGS,
/// IMAGE_2_PORT_CONFIG, RECOVERY_1_STATE_RECOVERY, SHUTDOWN_1_ANY_TIME on
/// plain Docker: a server is one labelled container `mettaton-NS-NAME`
/// (restart policy unless-stopped) with its config file written in and a
/// named volume; players reach it over TCP and UDP where the facade says;
/// info, list, logs and follow_logs; a new facade on the same state file
/// picks it up, and reports one removed behind its back as Vanished; the stop
/// command runs before the stop; shutdown with Retain keeps the world, with
/// Delete erases it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_docker_spawns_reaches_logs_recovers_and_shuts_down() {
    use futures::StreamExt;
    let scope = Scope::new("life");
    let mut facade = scope.facade();
    assert!(!facade.is_connected().await);
    facade.connect().await.expect("connects to the Docker engine");
    assert!(facade.is_connected().await);

    let mut spec = with_storage(game_spec(), "Retain");
    spec["shutdown"]["stopCommand"] = serde_json::json!(["/testgame", "-touch", "/data/stop-command-ran"]);
    let handle = facade.spawn(&scope.manifest("arena", spec)).await.expect("spawns");
    assert_eq!(handle.id, format!("{}/arena", scope.namespace));
    assert!(handle.warnings.iter().any(|w| w.starts_with("spec.storage.size 1Gi is not enforced")), "{handle:?}");
    let address = handle.address.clone().expect("an address");
    let tcp = handle.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
    let udp = handle.ports.iter().find(|p| p.protocol == Protocol::UDP).unwrap().port;
    assert_ne!(tcp, 7777, "no externalPort: a port the engine picks");
    assert_eq!(tcp_exchange(&address, tcp), ("hello from docker-test".into(), "echo: ping".into()));
    assert_eq!(udp_exchange(&address, udp), "pong: hello");

    // One plain container, labelled, restarted by the engine when it exits.
    let container = inspect(&scope.container_name("arena")).await.expect("the server's container");
    let labels = container.config.as_ref().unwrap().labels.clone().unwrap();
    assert_eq!(labels["mettaton.dev/managed"], "true");
    assert_eq!(labels["mettaton.dev/backend"], "docker");
    assert_eq!(labels["mettaton.dev/gameserver"], "arena");
    assert_eq!(labels["mettaton.dev/namespace"], scope.namespace);
    assert!(!labels.contains_key("com.docker.swarm.task.id"), "no swarm task");
    let policy = container.host_config.as_ref().unwrap().restart_policy.as_ref().unwrap().name;
    assert_eq!(policy, Some(bollard::models::RestartPolicyNameEnum::UNLESS_STOPPED));
    let volume = docker().inspect_volume(&scope.volume("arena")).await.expect("a named volume");
    assert_eq!(volume.labels["mettaton.dev/reclaim"], "Retain");

    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.running && info.healthy && info.phase == Phase::Running, "{info:?}");
    assert_eq!(info.service_id, container.id, "the backend's id is the container's");
    assert_eq!(facade.list().await.unwrap().len(), 1);
    let logs = eventually("the server's log", Duration::from_secs(20), || async {
        let logs = facade.logs(&handle.id, None).await.map_err(|e| e.to_string())?;
        if logs.contains("player connected") { Ok(logs) } else { Err(logs) }
    })
    .await;
    assert!(logs.contains("welcome to the docker test"), "the config file was written in: {logs}");
    assert_eq!(facade.logs(&handle.id, Some(1)).await.unwrap().lines().count(), 1, "tail");

    // follow_logs: the last lines, then new ones as they come.
    let mut stream = Box::pin(facade.follow_logs(&handle.id, Some(2)).unwrap());
    let mut text = String::new();
    tokio::time::timeout(Duration::from_secs(10), async {
        while !text.contains("player") {
            text.push_str(&stream.next().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("the last lines: {text}"));
    let before = text.matches("udp datagram").count();
    assert_eq!(udp_exchange(&address, udp), "pong: hello");
    tokio::time::timeout(Duration::from_secs(10), async {
        while text.matches("udp datagram").count() == before {
            text.push_str(&stream.next().await.unwrap().unwrap());
        }
    })
    .await
    .unwrap_or_else(|_| panic!("no new line followed: {text}"));
    drop(stream);

    // A second server, removed behind the facade's back while it is away.
    let gone = facade.spawn(&scope.manifest("gone", game_spec())).await.unwrap();
    facade.disconnect().await;
    assert!(!facade.is_connected().await);
    let force = RemoveContainerOptionsBuilder::default().force(true).build();
    docker().remove_container(&scope.container_name("gone"), Some(force)).await.unwrap();
    let mut again = scope.facade();
    let mut events = again.events();
    let recovery = again.connect().await.unwrap();
    assert_eq!(recovery.picked_up, vec![handle.id.clone()]);
    assert_eq!(recovery.vanished, vec![gone.id.clone()]);
    assert!(recovery.unknown.iter().all(|id| !id.starts_with(&scope.namespace)), "{recovery:?}");
    assert_eq!(events.try_recv().unwrap(), ServerEvent::Recovered { id: handle.id.clone() });
    assert_eq!(events.try_recv().unwrap(), ServerEvent::Vanished { id: gone.id.clone() });
    assert!(matches!(again.info(&gone.id).await, Err(Error::UnknownServer(_))));
    assert!(again.info(&handle.id).await.unwrap().healthy);

    // Shutdown with Retain: the stop command ran, the container is gone, the
    // world is kept.
    let dir = volume_dir(&scope.volume("arena")).await.unwrap();
    again.shutdown(&handle.id).await.expect("shuts down");
    assert!(matches!(again.info(&handle.id).await, Err(Error::UnknownServer(_))));
    assert!(inspect(&scope.container_name("arena")).await.is_none(), "the container is removed");
    assert!(dir.join("stop-command-ran").exists(), "the stop command ran in the container before the stop");
    assert_eq!(scope.left().await, (vec![], vec![scope.volume("arena")]), "Retain keeps the volume");

    // Shutdown with Delete erases the world.
    let erase = again.spawn(&scope.manifest("erase", with_storage(game_spec(), "Delete"))).await.unwrap();
    assert!(volume_dir(&scope.volume("erase")).await.is_some());
    again.shutdown(&erase.id).await.unwrap();
    assert_eq!(scope.left().await, (vec![], vec![scope.volume("arena")]), "Delete removes the volume");
}

/// The spec's asynchronous errors on plain Docker: a server that crashes
/// (exit 1) is `Died` with its exit code and counted as a restart, then
/// `Restarted` once the engine starts it again (restart policy
/// unless-stopped, same container); a server stopped on purpose (an update,
/// `state: Stopped`) is no death.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crash_is_died_with_its_exit_code_then_restarted() {
    let scope = Scope::new("crash");
    let mut facade = scope.facade();
    let mut events = facade.events();
    facade.connect().await.unwrap();
    let mut spec = game_spec();
    spec["env"] = serde_json::json!([{ "name": "GAME_CRASH_AFTER_SECONDS", "value": "4" }]);
    let handle = facade.spawn(&scope.manifest("crashy", spec)).await.expect("ready before it crashes");
    let container = inspect(&scope.container_name("crashy")).await.unwrap().id;
    let (died, restarted) = tokio::time::timeout(Duration::from_secs(30), async {
        let mut died = None;
        loop {
            let event = events.recv().await.unwrap();
            eprintln!("event: {event:?}");
            match event {
                ServerEvent::Died { id, restarts, reason } if id == handle.id && died.is_none() => {
                    died = Some((restarts, reason));
                }
                ServerEvent::Restarted { id, restarts } if id == handle.id && died.is_some() => {
                    break (died.unwrap(), restarts);
                }
                _ => {}
            }
        }
    })
    .await
    .expect("Died then Restarted within 30 s");
    assert_eq!(died, (1, "the container exited with code 1".to_string()));
    assert_eq!(restarted, 1);
    assert_eq!(inspect(&scope.container_name("crashy")).await.unwrap().id, container, "the same container");
    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.restarts >= 1, "{info:?}");
    assert_eq!(info.last_failure.as_deref(), Some("the container exited with code 1"));

    // Stopped on purpose: no death.
    let mut stopped = game_spec();
    stopped["state"] = serde_json::json!("Stopped");
    let mut events = facade.events();
    let steady = facade.spawn(&scope.manifest("steady", game_spec())).await.unwrap();
    assert!(matches!(facade.apply(&scope.manifest("steady", stopped)).await, Ok(Applied::Updated { .. })));
    let stopped_info = facade.info(&steady.id).await.unwrap();
    assert_eq!(stopped_info.phase, Phase::Stopped, "{stopped_info:?}");
    tokio::time::sleep(Duration::from_secs(2)).await;
    while let Ok(event) = events.try_recv() {
        assert!(!matches!(&event, ServerEvent::Died { id, .. } if *id == steady.id), "{event:?}");
    }
    facade.shutdown(&handle.id).await.unwrap();
    facade.shutdown(&steady.id).await.unwrap();
    assert_eq!(scope.left().await, (vec![], vec![]));
}

/// SPAWN_2_ERRORS, IMAGE_1_DEPLOYMENT on plain Docker: what it cannot do is
/// refused naming the field (nodeSelector, tolerations, a ConfigMap file, an
/// env valueFrom nothing resolves, a LoadBalancer), a missing image and a
/// taken fixed port are their own errors, and nothing is left behind;
/// `secretKeyRef` is resolved from the facade's secrets directory.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn what_plain_docker_cannot_do_is_refused_by_name_and_leaves_nothing() {
    let scope = Scope::new("refuse");
    let secrets = scope.dir.join("secrets");
    std::fs::create_dir_all(secrets.join(&scope.namespace).join("game")).unwrap();
    std::fs::write(secrets.join(&scope.namespace).join("game").join("name"), "from-a-secret").unwrap();
    let mut facade = scope.facade().with_secrets_dir(&secrets);
    facade.connect().await.unwrap();
    let cases = [
        ("nodeSelector", serde_json::json!({ "nodeSelector": { "disk": "ssd" } }), "spec.nodeSelector"),
        ("tolerations", serde_json::json!({ "tolerations": [{ "operator": "Exists" }] }), "spec.tolerations"),
        (
            "ConfigMap file",
            serde_json::json!({ "config": [{ "path": "/etc/x", "configMapKeyRef": { "name": "c", "key": "k" } }] }),
            "spec.config file /etc/x",
        ),
        (
            "fieldRef",
            serde_json::json!({ "env": [{ "name": "IP", "valueFrom": { "fieldRef": { "fieldPath": "status.podIP" } } }] }),
            "spec.env[0].valueFrom.fieldRef (IP)",
        ),
        ("LoadBalancer", serde_json::json!({ "service": { "type": "LoadBalancer" } }), "spec.service.type"),
    ];
    for (what, extra, field) in cases {
        let mut spec = with_storage(game_spec(), "Delete");
        for (k, v) in extra.as_object().unwrap() {
            spec[k] = v.clone();
        }
        match facade.spawn(&scope.manifest("refused", spec)).await {
            Err(Error::Refused(m)) => assert!(m.contains(field), "{what}: {m}"),
            other => panic!("{what}: expected Refused, got {other:?}"),
        }
        assert_eq!(scope.left().await, (vec![], vec![]), "{what}: nothing left");
    }

    let mut missing = with_storage(game_spec(), "Delete");
    missing["image"] = serde_json::json!("127.0.0.1:5999/mettaton-no-such-image:1");
    let err = facade.spawn(&scope.manifest("ghost", missing)).await.unwrap_err();
    assert!(matches!(&err, Error::ImageMissing { image, .. } if image.ends_with("no-such-image:1")), "{err:?}");
    assert_eq!(scope.left().await, (vec![], vec![]), "nothing left after a missing image");

    // A fixed port, and a secret from the secrets directory.
    let mut fixed = game_spec();
    fixed["ports"][0]["externalPort"] = serde_json::json!(26501);
    fixed["env"] = serde_json::json!([
        { "name": "GAME_NAME", "valueFrom": { "secretKeyRef": { "name": "game", "key": "name" } } }
    ]);
    let holder = facade.spawn(&scope.manifest("holder", fixed.clone())).await.unwrap();
    assert!(holder.ports.iter().any(|p| p.port == 26501 && p.protocol == Protocol::TCP), "{holder:?}");
    assert_eq!(tcp_exchange("127.0.0.1", 26501).0, "hello from from-a-secret");
    match facade.spawn(&scope.manifest("taker", fixed)).await {
        Err(Error::PortTaken { port, protocol, holder }) => {
            assert_eq!((port, protocol.as_str()), (26501, "tcp"));
            assert!(holder.contains(&scope.container_name("holder")), "{holder}");
        }
        other => panic!("expected PortTaken, got {other:?}"),
    }
    facade.shutdown(&holder.id).await.unwrap();
    assert_eq!(scope.left().await, (vec![], vec![]));
}

/// SPAWN_1_SPAWN on plain Docker: `apply` updates in place, replacing the
/// container (new id) when the container part changed and keeping the world;
/// `Unchanged` writes nothing; `state: Stopped` stops the same container
/// (kept, restart policy no) and Running starts it again; a container killed
/// by hand (which Docker does not restart) is started again by the next
/// apply; `restart` makes a new container of the same making.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn apply_replaces_the_container_keeps_the_world_stops_and_restarts() {
    let scope = Scope::new("apply");
    let mut facade = scope.facade();
    facade.connect().await.unwrap();
    let spec = with_storage(game_spec(), "Delete");
    let handle = facade.spawn(&scope.manifest("world", spec.clone())).await.unwrap();
    let dir = volume_dir(&scope.volume("world")).await.unwrap();
    std::fs::write(dir.join("world.dat"), "kept").unwrap();
    let first = inspect(&scope.container_name("world")).await.unwrap().id;

    let unchanged = facade.apply(&scope.manifest("world", spec.clone())).await.unwrap();
    assert_eq!(unchanged, Applied::Unchanged { id: handle.id.clone() });
    assert_eq!(inspect(&scope.container_name("world")).await.unwrap().id, first, "nothing written");

    let mut changed = spec.clone();
    changed["env"][0]["value"] = serde_json::json!("updated");
    let Applied::Updated { handle: updated, changes } =
        facade.apply(&scope.manifest("world", changed.clone())).await.unwrap()
    else {
        panic!("expected Updated")
    };
    assert_eq!(changes.iter().map(|c| c.field.as_str()).collect::<Vec<_>>(), vec!["spec.env[0].value"]);
    let second = inspect(&scope.container_name("world")).await.unwrap().id;
    assert_ne!(second, first, "a new container");
    let port = updated.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
    assert_eq!(tcp_exchange("127.0.0.1", port).0, "hello from updated");
    assert_eq!(std::fs::read_to_string(dir.join("world.dat")).unwrap(), "kept", "the same volume");

    let mut stopped = changed.clone();
    stopped["state"] = serde_json::json!("Stopped");
    facade.apply(&scope.manifest("world", stopped)).await.unwrap();
    let c = inspect(&scope.container_name("world")).await.unwrap();
    assert_eq!(c.id, second, "stopped in place");
    assert_eq!(c.state.unwrap().running, Some(false));
    let policy = c.host_config.unwrap().restart_policy.unwrap().name;
    assert_eq!(policy, Some(bollard::models::RestartPolicyNameEnum::NO), "the engine never starts it");
    assert_eq!(facade.info(&handle.id).await.unwrap().phase, Phase::Stopped);
    facade.apply(&scope.manifest("world", changed.clone())).await.unwrap();
    assert_eq!(inspect(&scope.container_name("world")).await.unwrap().id, second, "started in place");
    assert!(facade.info(&handle.id).await.unwrap().healthy);

    // Killed by hand: the engine takes it for a stop and leaves it; the
    // next apply starts it again.
    let kill = bollard::query_parameters::KillContainerOptionsBuilder::default().signal("SIGKILL").build();
    docker().kill_container(second.as_deref().unwrap(), Some(kill)).await.unwrap();
    let down = eventually("the killed server reported down", Duration::from_secs(10), || async {
        let info = facade.info(&handle.id).await.map_err(|e| e.to_string())?;
        if !info.running { Ok(info) } else { Err(format!("{info:?}")) }
    })
    .await;
    assert!(down.problem.as_deref().is_some_and(|p| p.contains("137")), "{down:?}");
    assert!(matches!(facade.apply(&scope.manifest("world", changed.clone())).await, Ok(Applied::Unchanged { .. })));
    let up = eventually("started again by apply", Duration::from_secs(20), || async {
        let info = facade.info(&handle.id).await.map_err(|e| e.to_string())?;
        if info.healthy { Ok(info) } else { Err(format!("{info:?}")) }
    })
    .await;
    assert_eq!(inspect(&scope.container_name("world")).await.unwrap().id, second, "the same container");
    assert_eq!(up.restarts, 0);

    facade.restart(&handle.id).await.expect("restarts");
    let third = inspect(&scope.container_name("world")).await.unwrap().id;
    assert_ne!(third, second, "a restart is a new container");
    let info = facade.info(&handle.id).await.unwrap();
    assert!(info.healthy && info.restarts == 0, "a restart is no failure: {info:?}");
    let port = info.ports.iter().find(|p| p.protocol == Protocol::TCP).unwrap().port;
    assert_eq!(tcp_exchange("127.0.0.1", port).0, "hello from updated", "the same making");
    assert_eq!(std::fs::read_to_string(dir.join("world.dat")).unwrap(), "kept");
    facade.shutdown(&handle.id).await.unwrap();
    assert_eq!(scope.left().await, (vec![], vec![]));
}

/// The CLI with `--backend docker`, as users run it: apply spawns a plain
/// container (no swarm service), get shows it Running, delete removes it;
/// the state is its own file, `docker-state.json`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cli_runs_plain_containers_with_backend_docker() {
    let scope = Scope::new("cli");
    let manifest = scope.dir.join("cli.yaml");
    let gs = serde_json::json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
        "metadata": { "name": "cli" }, "spec": game_spec()
    });
    std::fs::write(&manifest, serde_yaml::to_string(&gs).unwrap()).unwrap();
    let cli = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_mettaton"))
            .args(["swarm", "--backend", "docker", "-n", &scope.namespace])
            .args(args)
            .env("XDG_STATE_HOME", &scope.dir)
            .output()
            .unwrap()
    };
    let text = |out: &std::process::Output| {
        format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
    };
    let out = cli(&["apply", "-f", manifest.to_str().unwrap()]);
    assert!(out.status.success(), "{}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(stdout.starts_with(&format!("gameserver {}/cli spawned at 127.0.0.1 (game=", scope.namespace)), "{stdout}");
    let c = inspect(&scope.container_name("cli")).await.expect("a plain container");
    assert_eq!(c.config.unwrap().labels.unwrap()["mettaton.dev/backend"], "docker");
    let services = docker().list_services(None).await.unwrap();
    assert!(
        services.iter().all(|s| !s
            .spec
            .as_ref()
            .and_then(|s| s.name.as_deref())
            .unwrap_or("")
            .contains(&scope.namespace))
    );
    assert!(scope.dir.join("mettaton/docker-state.json").exists(), "its own state file");
    assert!(!scope.dir.join("mettaton/swarm-state.json").exists());

    let out = cli(&["get", "-o", "json"]);
    assert!(out.status.success(), "{}", text(&out));
    let listed: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!((listed[0]["name"].as_str(), listed[0]["phase"].as_str()), (Some("cli"), Some("Running")), "{listed}");
    let out = cli(&["delete", "cli"]);
    assert!(out.status.success(), "{}", text(&out));
    assert_eq!(scope.left().await, (vec![], vec![]));
}
