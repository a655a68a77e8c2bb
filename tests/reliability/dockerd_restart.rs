//! Issue 7, item 3: the Docker daemon restarted under game servers, run by
//! the facade (`mettaton::facade::Mettaton`) and by `mettaton controller
//! --backend swarm`, on a private daemon with a one-node swarm in a network
//! namespace of its own (tests/common/dockerd.rs). The daemon gets SIGTERM
//! (it stops every container; the swarm keeps its services) and is started
//! again on the same data root. Afterwards: every server runs again in a new
//! container that answers players; the facade's `info`/`list` and its state
//! file agree with what the swarm shows (same services, the ports the new
//! tasks publish); the controller (same pid) reports every GameServer Running
//! at its new port; the facade's event stream said DaemonLost, DaemonBack and
//! Restarted for each server, in that order; a new facade process picks every
//! server up; and shutting everything down leaves only the Retain volumes.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use bollard::Docker;
use bollard::query_parameters::{InspectContainerOptions, ListTasksOptionsBuilder};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use mettaton::api::{GameServer, Phase, Protocol, PublishedPort};
use mettaton::facade::{Mettaton, ServerEvent, ServerInfo};
use mettaton::orchestrator::swarm::Daemon;
use tokio::sync::broadcast::error::TryRecvError;

use crate::dockerd::PrivateDockerd;
use crate::fleet::converge;
use crate::process::Controller;
use crate::setup::{Profile, Rng, daemon_dir, figure, secs, spread};
use crate::support::{TestNamespace, condition_status, ensure_crd};

const TEST: &str = "Docker daemon restart";
const IMAGE: &str = "127.0.0.1:5999/mettaton-testgame:1";
/// The facade's servers live in this (swarm-side) namespace.
const FACADE_NS: &str = "facade";

/// Server `i`: a game on TCP 7777 (the test game greets there); the first has
/// a Retain volume, the second a config file, the third a fixed host port.
fn spec(i: usize, name: &str) -> serde_json::Value {
    let mut spec = serde_json::json!({
        "image": IMAGE,
        "env": [{ "name": "GAME_NAME", "value": name }],
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "health": crate::fleet::READINESS.clone(),
        "shutdown": { "gracePeriodSeconds": 2 }
    });
    match i % 3 {
        0 => spec["storage"] = serde_json::json!({ "size": "1Gi", "reclaimPolicy": "Retain" }),
        1 => {
            spec["config"] = serde_json::json!([{ "path": "/etc/game/motd.txt", "content": format!("hello {name}\n") }])
        }
        _ => spec["ports"][0]["externalPort"] = serde_json::json!(27000 + i),
    }
    spec
}

fn manifest(name: &str, namespace: Option<&str>, spec: serde_json::Value) -> GameServer {
    let mut metadata = serde_json::json!({ "name": name });
    if let Some(ns) = namespace {
        metadata["namespace"] = serde_json::json!(ns);
    }
    serde_json::from_value(serde_json::json!({
        "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer", "metadata": metadata, "spec": spec
    }))
    .unwrap()
}

/// What the swarm itself shows of a server: its service, the task meant to
/// run, whether that task's container really runs (right after a restart
/// the engine still shows the old task as running for a moment, while its
/// container is gone), the ports it publishes, and the game's greeting there.
#[derive(Clone, Debug, PartialEq)]
struct Truth {
    service_id: String,
    container: String,
    ports: Vec<PublishedPort>,
}

async fn truth(docker: &Docker, dockerd: &PrivateDockerd, service: &str, game: &str) -> Result<Truth, String> {
    let service = docker.inspect_service(service, None).await.map_err(|e| format!("service {service}: {e}"))?;
    let service_id = service.id.unwrap_or_default();
    let filters =
        HashMap::from([("service", vec![service_id.clone()]), ("desired-state", vec!["running".to_string()])]);
    let tasks = docker
        .list_tasks(Some(ListTasksOptionsBuilder::default().filters(&filters).build()))
        .await
        .map_err(|e| e.to_string())?;
    let [task] = tasks.as_slice() else { return Err(format!("{} tasks meant to run", tasks.len())) };
    let status = task.status.clone().unwrap_or_default();
    let container = status.container_status.and_then(|c| c.container_id).unwrap_or_default();
    if container.is_empty() {
        return Err(format!("task in state {:?} has no container yet", status.state));
    }
    let inspected = docker
        .inspect_container(&container, None::<InspectContainerOptions>)
        .await
        .map_err(|e| format!("container {container}: {e}"))?;
    if !inspected.state.and_then(|s| s.running).unwrap_or(false) {
        return Err(format!("container {container} does not run"));
    }
    let ports: Vec<PublishedPort> = status
        .port_status
        .and_then(|p| p.ports)
        .unwrap_or_default()
        .into_iter()
        .filter_map(|p| {
            Some(PublishedPort {
                name: "game".into(),
                port: i32::try_from(p.published_port?).ok()?,
                protocol: Protocol::TCP,
            })
        })
        .collect();
    let [port] = ports.as_slice() else { return Err(format!("published ports {ports:?}")) };
    let greeting = dockerd.tcp_greeting(port.port)?;
    if greeting != format!("hello from {game}") {
        return Err(format!("port {} greets {greeting:?}", port.port));
    }
    Ok(Truth { service_id, container, ports })
}

/// The facade's view agrees with the swarm: `list` has exactly `ids`, each
/// Running and healthy at the ports its task publishes, in its service; the
/// state file knows exactly `ids`.
async fn facade_agrees(
    facade: &Mettaton,
    docker: &Docker,
    dockerd: &PrivateDockerd,
    ids: &[String],
) -> Result<BTreeMap<String, Truth>, Vec<String>> {
    let mut problems = Vec::new();
    let infos: Vec<ServerInfo> = match facade.list().await {
        Ok(infos) => infos,
        Err(e) => return Err(vec![format!("list: {e}")]),
    };
    let listed: BTreeSet<String> = infos.iter().map(|i| i.id.clone()).collect();
    if listed != ids.iter().cloned().collect() {
        problems.push(format!("list has {listed:?}"));
    }
    let state = mettaton::facade::state::load(facade.state_path()).map_err(|e| vec![e.to_string()])?;
    if state.servers.keys().cloned().collect::<Vec<_>>() != ids {
        problems.push(format!("the state file has {:?}", state.servers.keys()));
    }
    let mut truths = BTreeMap::new();
    for info in &infos {
        let service = format!("mettaton-{}-{}", info.namespace, info.name);
        match truth(docker, dockerd, &service, &info.name).await {
            Err(e) => problems.push(format!("{}: {e}", info.id)),
            Ok(t) => {
                if !(info.phase == Phase::Running && info.running && info.healthy) {
                    problems.push(format!(
                        "{}: info says {:?} running={} healthy={}",
                        info.id, info.phase, info.running, info.healthy
                    ));
                }
                if info.ports != t.ports || info.address.as_deref() != Some("127.0.0.1") {
                    problems.push(format!(
                        "{}: info says {:?}:{:?}, the task publishes {:?}",
                        info.id, info.address, info.ports, t.ports
                    ));
                }
                if info.service_id.as_deref() != Some(&t.service_id) {
                    problems
                        .push(format!("{}: info names service {:?}, it is {}", info.id, info.service_id, t.service_id));
                }
                truths.insert(info.id.clone(), t);
            }
        }
    }
    if problems.is_empty() { Ok(truths) } else { Err(problems) }
}

/// The controller's GameServers are Running, Ready, current, at the address
/// and ports the swarm shows, with the service id as backendRef.
async fn controller_agrees(
    api: &Api<GameServer>,
    namespace: &str,
    names: &[String],
    docker: &Docker,
    dockerd: &PrivateDockerd,
) -> Result<BTreeMap<String, Truth>, Vec<String>> {
    let mut problems = Vec::new();
    let list = api.list(&ListParams::default()).await.map_err(|e| vec![e.to_string()])?;
    let mut truths = BTreeMap::new();
    for name in names {
        let Some(gs) = list.items.iter().find(|g| g.name_any() == *name) else {
            problems.push(format!("gameserver {name} is missing"));
            continue;
        };
        let status = gs.status.clone().unwrap_or_default();
        let ready = condition_status(gs, mettaton::api::conditions::READY);
        if status.phase != Some(Phase::Running)
            || ready.as_deref() != Some("True")
            || status.observed_generation != gs.metadata.generation
        {
            problems.push(format!("gameserver {name}: phase {:?} Ready {ready:?}", status.phase));
        }
        match truth(docker, dockerd, &format!("mettaton-{namespace}-{name}"), name).await {
            Err(e) => problems.push(format!("gameserver {name}: {e}")),
            Ok(t) => {
                if status.ports != t.ports || status.address.as_deref() != Some("127.0.0.1") {
                    problems.push(format!(
                        "gameserver {name}: status says {:?}:{:?}, the task publishes {:?}",
                        status.address, status.ports, t.ports
                    ));
                }
                if status.backend_ref.as_deref() != Some(&t.service_id) {
                    problems.push(format!(
                        "gameserver {name}: backendRef {:?}, service {}",
                        status.backend_ref, t.service_id
                    ));
                }
                truths.insert(name.clone(), t);
            }
        }
    }
    if problems.is_empty() { Ok(truths) } else { Err(problems) }
}

/// Every event sent so far.
fn drain(events: &mut tokio::sync::broadcast::Receiver<ServerEvent>) -> Vec<ServerEvent> {
    let mut seen = Vec::new();
    loop {
        match events.try_recv() {
            Ok(e) => seen.push(e),
            Err(TryRecvError::Empty | TryRecvError::Closed) => return seen,
            Err(TryRecvError::Lagged(n)) => panic!("{n} events were missed"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disrupts shared infrastructure: run by ./run-tests on its own (see main.rs)"]
async fn servers_come_back_and_everyone_agrees_after_a_docker_daemon_restart() {
    let profile = Profile::get();
    let mut rng = Rng::seeded(TEST);
    ensure_crd().await;
    let ns = TestNamespace::new("rel-dockerd").await;
    let dir = daemon_dir(&ns.name);
    let mut dockerd = PrivateDockerd::start_swarm(&dir, "engine").await;
    let docker = dockerd.docker();

    // Servers spawned through the facade.
    let mut facade = Mettaton::new(Daemon::LocalSocket(dockerd.socket()), dir.join("state.json"));
    let mut events = facade.events();
    facade.connect().await.expect("the facade connects to the private swarm");
    let mut ids = Vec::new();
    for i in 0..profile.dockerd_servers {
        let name = format!("f-{i}");
        let handle = facade.spawn(&manifest(&name, Some(FACADE_NS), spec(i, &name))).await.expect("spawns");
        ids.push(handle.id);
    }
    // GameServers run by the controller on the same swarm.
    let mut controller = Controller::start(&ns.name, &["--backend", "swarm", "--docker-host", &dockerd.host()]);
    let pid = controller.pid();
    let api: Api<GameServer> = Api::namespaced(ns.client.clone(), &ns.name);
    let mut names = Vec::new();
    for i in 0..profile.dockerd_servers {
        let name = format!("c-{i}");
        // Fixed ports differ from the facade's.
        let mut spec = spec(i, &name);
        if let Some(port) = spec["ports"][0].get_mut("externalPort") {
            *port = serde_json::json!(28000 + i);
        }
        api.create(&PostParams::default(), &manifest(&name, None, spec)).await.unwrap();
        names.push(name);
    }
    let bound = profile.bound(Duration::from_secs(120));
    let began = Instant::now();
    let (_, mut facade_truth) =
        converge("facade servers", began, bound, || dockerd.log(), || facade_agrees(&facade, &docker, &dockerd, &ids))
            .await;
    let (_, mut controller_truth) = converge(
        "controller servers",
        began,
        bound,
        || controller.tail(),
        || controller_agrees(&api, &ns.name, &names, &docker, &dockerd),
    )
    .await;
    drain(&mut events);

    let mut facade_times = Vec::new();
    let mut controller_times = Vec::new();
    for restart in 0..profile.dockerd_restarts {
        let down_for = rng.duration(Duration::ZERO, Duration::from_secs(3));
        let stopped_in = tokio::task::block_in_place(|| dockerd.stop());
        tokio::time::sleep(down_for).await;
        let answered_in = dockerd.start_again().await;
        let back = Instant::now();
        let (facade_in, facade_now) = converge(
            "facade servers back",
            back,
            bound,
            || dockerd.log(),
            || facade_agrees(&facade, &docker, &dockerd, &ids),
        )
        .await;
        let (controller_in, controller_now) = converge(
            "controller servers back",
            back,
            bound,
            || controller.tail(),
            || controller_agrees(&api, &ns.name, &names, &docker, &dockerd),
        )
        .await;
        controller.assert_running();
        assert_eq!(controller.pid(), pid, "the controller was restarted");
        // Every server in a new container of the same service.
        for (before, after) in [(&facade_truth, &facade_now), (&controller_truth, &controller_now)] {
            for (id, was) in before.iter() {
                let now = &after[id];
                assert_eq!(now.service_id, was.service_id, "{id}: the service was replaced");
                assert_ne!(now.container, was.container, "{id}: the same container runs after a daemon restart?");
            }
        }
        facade_truth = facade_now;
        controller_truth = controller_now;

        // What the event stream said: the daemon lost, back, then each
        // server restarted, once, in that order.
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut said = drain(&mut events);
        while said.iter().filter(|e| matches!(e, ServerEvent::Restarted { .. })).count() < ids.len()
            && Instant::now() < deadline
        {
            tokio::time::sleep(Duration::from_millis(200)).await;
            said.extend(drain(&mut events));
        }
        let position = |f: &dyn Fn(&ServerEvent) -> bool| said.iter().position(f);
        let lost = position(&|e| matches!(e, ServerEvent::DaemonLost { .. }));
        let back_at = position(&|e| matches!(e, ServerEvent::DaemonBack { .. }));
        let count = |f: &dyn Fn(&ServerEvent) -> bool| said.iter().filter(|e| f(e)).count();
        assert_eq!(count(&|e| matches!(e, ServerEvent::DaemonLost { .. })), 1, "{said:?}");
        assert_eq!(count(&|e| matches!(e, ServerEvent::DaemonBack { .. })), 1, "{said:?}");
        assert!(lost < back_at, "DaemonLost before DaemonBack: {said:?}");
        // Deaths are those of the containers the stopping daemon stopped.
        let last_death = said.iter().rposition(|e| matches!(e, ServerEvent::Died { .. }));
        assert!(last_death.is_none_or(|d| Some(d) < back_at), "a server died after the daemon was back: {said:?}");
        for id in &ids {
            let restarted = position(&|e| matches!(e, ServerEvent::Restarted { id: i, .. } if i == id));
            assert!(restarted.is_some_and(|r| Some(r) > back_at), "{id} Restarted after DaemonBack: {said:?}");
            assert_eq!(count(&|e| matches!(e, ServerEvent::Restarted { id: i, .. } if i == id)), 1, "{said:?}");
        }
        assert!(
            !said.iter().any(|e| matches!(e, ServerEvent::Vanished { .. } | ServerEvent::Unknown { .. })),
            "{said:?}"
        );
        facade_times.push(facade_in);
        controller_times.push(controller_in);
        let died = count(&|e| matches!(e, ServerEvent::Died { .. }));
        let away = said.iter().find_map(|e| match e {
            ServerEvent::DaemonBack { after } => Some(*after),
            _ => None,
        });
        figure(
            TEST,
            &format!(
                "restart {restart}: dockerd stopped in {} (SIGTERM), down {}, answering {} after its start; \
                 from then, facade servers running and answering in {}, controller GameServers Running at their \
                 new ports in {}; events: DaemonLost, {died} Died, DaemonBack (after {}), {} Restarted",
                secs(stopped_in),
                secs(down_for),
                secs(answered_in),
                secs(facade_in),
                secs(controller_in),
                away.map_or("?".into(), secs),
                ids.len()
            ),
        );
    }

    // A new facade process finds every server again.
    facade.disconnect().await;
    let mut again = Mettaton::new(Daemon::LocalSocket(dockerd.socket()), dir.join("state.json"));
    let recovery = again.connect().await.unwrap();
    assert_eq!(recovery.picked_up, ids);
    assert!(recovery.vanished.is_empty(), "{recovery:?}");
    assert_eq!(recovery.unknown.len(), names.len(), "only the controller's servers are unknown to it: {recovery:?}");

    // Everything goes; only the Retain volumes stay.
    for id in &ids {
        again.shutdown(id).await.unwrap_or_else(|e| panic!("shutting {id} down: {e}"));
    }
    for name in &names {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    let gone = Instant::now();
    converge(
        "everything removed",
        gone,
        bound,
        || controller.tail(),
        || async {
            let mut left = Vec::new();
            if let Ok(list) = api.list(&ListParams::default()).await {
                left.extend(list.items.iter().map(|g| format!("gameserver {}", g.name_any())));
            }
            let services = docker.list_services(None::<bollard::query_parameters::ListServicesOptions>).await;
            left.extend(
                services.unwrap_or_default().into_iter().map(|s| format!("service {:?}", s.spec.and_then(|s| s.name))),
            );
            let configs = docker.list_configs(None::<bollard::query_parameters::ListConfigsOptions>).await;
            left.extend(
                configs.unwrap_or_default().into_iter().map(|c| format!("config {:?}", c.spec.and_then(|s| s.name))),
            );
            if left.is_empty() { Ok(()) } else { Err(left) }
        },
    )
    .await;
    let volumes = docker.list_volumes(None::<bollard::query_parameters::ListVolumesOptions>).await.unwrap();
    let mut kept: Vec<String> = volumes.volumes.unwrap_or_default().into_iter().map(|v| v.name).collect();
    kept.sort();
    let mut want: Vec<String> = (0..profile.dockerd_servers)
        .filter(|i| i % 3 == 0)
        .flat_map(|i| [format!("mettaton-{FACADE_NS}-f-{i}-data"), format!("mettaton-{}-c-{i}-data", ns.name)])
        .collect();
    want.sort();
    assert_eq!(kept, want, "the Retain volumes, and only they, are kept");
    figure(
        TEST,
        &format!(
            "{} restart(s), {} facade + {} controller servers: daemon answering to facade servers running: {}; \
             to controller GameServers Running: {}; nothing lost",
            profile.dockerd_restarts,
            ids.len(),
            names.len(),
            spread(&facade_times),
            spread(&controller_times)
        ),
    );
    controller.stop();
    drop(again);
    drop(dockerd);
    let _ = std::fs::remove_dir_all(&dir);
}
