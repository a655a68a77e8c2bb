//! The Docker Swarm backend against a real Docker Engine in swarm mode
//! (tests/swarm/up): a server players reach over TCP and UDP at the address
//! `observe` reports, its logs and config files, a steady state that writes
//! nothing, stop and teardown with either reclaim policy, refusals that leave
//! nothing behind, and a killed server that swarm restarts.
//!
//! Every test works in a namespace of its own (part of every name) and tears
//! its servers down, also when it fails; whatever is left carries the label
//! `mettaton.dev/test=true`, which tests/swarm/down removes.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigPublishModeEnum, EndpointSpec, ServiceSpec, TaskSpec, TaskSpecContainerSpec,
};
use bollard::query_parameters::{KillContainerOptionsBuilder, ListConfigsOptionsBuilder, ListServicesOptionsBuilder};
use futures::StreamExt;
use mettaton::api::{GameServer, Protocol, PublishedPort, ReclaimPolicy};
use mettaton::orchestrator::InstanceEventKind;
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator, builders};
use mettaton::orchestrator::{BackendError, Logs, Observed, Orchestrator, Owner, Standalone, Teardown};
use mettaton::plan::{self, ServerPlan};
use serde_json::json;

use crate::support::eventually;

const WAIT: Duration = Duration::from_secs(60);
const TEST_LABEL: &str = "mettaton.dev/test";

fn image() -> String {
    std::env::var("MTN_TESTGAME_IMAGE").unwrap_or_else(|_| "127.0.0.1:5999/mettaton-testgame:1".into())
}

/// The orchestrator on the local swarm manager. Panics with what to do when
/// there is none.
async fn orchestrator() -> SwarmOrchestrator {
    let daemon = Daemon::from_env().expect("DOCKER_HOST is usable");
    SwarmOrchestrator::connect(&daemon)
        .await
        .unwrap_or_else(|e| panic!("no Docker swarm manager at {daemon} ({e}): start it with tests/swarm/up"))
}

/// A namespace no other test (or earlier run) uses.
fn unique_namespace(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    format!(
        "t-{prefix}-{:x}{:x}{}",
        std::process::id() % 0xfff,
        nanos % 0xffff,
        COUNTER.fetch_add(1, Ordering::Relaxed)
    )
}

fn game_server(name: &str, namespace: &str, spec: serde_json::Value) -> GameServer {
    serde_json::from_value(json!({
        "apiVersion": "mettaton.dev/v1alpha1",
        "kind": "GameServer",
        "metadata": { "name": name, "namespace": namespace, "uid": format!("uid-{namespace}-{name}") },
        "spec": spec
    }))
    .unwrap()
}

/// The plan of a GameServer, labelled as a test's.
fn plan_of(gs: &GameServer) -> ServerPlan {
    let mut plan = plan::plan(gs);
    plan.labels.insert(TEST_LABEL.into(), "true".into());
    plan
}

/// A port free for both TCP and UDP on loopback, away from the ephemeral
/// range where the engine picks the ports it chooses itself.
fn free_port() -> u16 {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let seed = std::process::id() ^ SystemTime::now().duration_since(UNIX_EPOCH).unwrap().subsec_nanos();
    for _ in 0..1000 {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let port = 20000 + (seed.wrapping_add(n.wrapping_mul(7919)) % 9000) as u16;
        let tcp = TcpListener::bind(("0.0.0.0", port)).is_ok();
        let udp = UdpSocket::bind(("0.0.0.0", port)).is_ok();
        if tcp && udp {
            return port;
        }
    }
    panic!("no free port between 20000 and 29000");
}

/// Tears the server down (erasing its volume) when dropped, also when the
/// test failed, so that nothing is left on the swarm.
struct Cleanup {
    plans: Vec<ServerPlan>,
    services: Vec<String>,
}

impl Cleanup {
    fn new(plan: &ServerPlan) -> Self {
        Cleanup { plans: vec![plan.clone()], services: Vec::new() }
    }
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        let plans = std::mem::take(&mut self.plans);
        let services = std::mem::take(&mut self.services);
        // Drop runs inside the test's runtime, which must not block on itself.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let backend = orchestrator().await;
                for service in services {
                    let _ = backend.docker().delete_service(&service).await;
                }
                for plan in plans {
                    for _ in 0..150 {
                        match backend.teardown(&plan, ReclaimPolicy::Delete).await {
                            Ok(Teardown::Done) => break,
                            Ok(Teardown::Pending) => tokio::time::sleep(Duration::from_millis(200)).await,
                            Err(e) => {
                                eprintln!("cleanup of {}: {e}", plan.name);
                                break;
                            }
                        }
                    }
                }
            })
        })
        .join();
    }
}

/// Waits until `observe` sees the server up and ready on its latest spec.
async fn ready(backend: &SwarmOrchestrator, plan: &ServerPlan) -> Observed {
    eventually("a ready instance with an address and ports", WAIT, || async {
        let observed = backend.observe(plan).await.map_err(|e| e.to_string())?;
        let workload_ok = observed.workload.as_ref().is_some_and(|w| w.ready == 1 && w.rolled_out && w.existing == 1);
        let instance_ok = observed.instance.as_ref().is_some_and(|i| i.running && i.ready && !i.terminating);
        let ports_ok = observed.endpoint.ports.len() == plan.container.ports.len();
        if workload_ok && instance_ok && observed.endpoint.address.is_some() && ports_ok {
            Ok(observed)
        } else {
            Err(format!("{observed:?}"))
        }
    })
    .await
}

async fn teardown_until_done(backend: &SwarmOrchestrator, plan: &ServerPlan, reclaim: ReclaimPolicy) {
    eventually("teardown to finish", WAIT, || async {
        match backend.teardown(plan, reclaim).await {
            Ok(Teardown::Done) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

/// The greeting and the echo of a line, over a real TCP connection.
fn talk_tcp(port: i32) -> Result<(String, String), String> {
    let addr = format!("127.0.0.1:{port}");
    let stream =
        TcpStream::connect_timeout(&addr.parse().unwrap(), Duration::from_secs(2)).map_err(|e| e.to_string())?;
    stream.set_read_timeout(Some(Duration::from_secs(3))).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut greeting = String::new();
    reader.read_line(&mut greeting).map_err(|e| e.to_string())?;
    (&stream).write_all(b"where am i\n").map_err(|e| e.to_string())?;
    let mut echo = String::new();
    reader.read_line(&mut echo).map_err(|e| e.to_string())?;
    Ok((greeting.trim_end().to_string(), echo.trim_end().to_string()))
}

/// The answer to one UDP datagram.
fn talk_udp(port: i32) -> Result<String, String> {
    let socket = UdpSocket::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    socket.set_read_timeout(Some(Duration::from_secs(1))).unwrap();
    socket.send_to(b"ping", format!("127.0.0.1:{port}")).map_err(|e| e.to_string())?;
    let mut buf = [0u8; 512];
    let (n, _) = socket.recv_from(&mut buf).map_err(|e| e.to_string())?;
    Ok(String::from_utf8_lossy(&buf[..n]).trim_end().to_string())
}

fn game_spec(tcp: u16, udp: u16, motd: &str) -> serde_json::Value {
    json!({
        "image": image(),
        "env": [
            { "name": "GAME_NAME", "value": "integration" },
            { "name": "GAME_CONFIG", "value": "/data/config/motd.txt" }
        ],
        "ports": [
            { "name": "game", "containerPort": 7777, "externalPort": tcp },
            { "name": "query", "containerPort": 7778, "protocol": "UDP", "externalPort": udp }
        ],
        "resources": { "limits": { "cpu": "500m", "memory": "64Mi" } },
        "storage": { "size": "1Gi", "mountPath": "/data", "reclaimPolicy": "Retain" },
        "config": [{ "path": "/data/config/motd.txt", "content": motd }],
        "health": { "startupTimeoutSeconds": 60, "periodSeconds": 2 },
        "shutdown": { "gracePeriodSeconds": 5 }
    })
}

/// Names of the swarm configs labelled as the server's.
async fn config_names(backend: &SwarmOrchestrator, plan: &ServerPlan) -> Vec<String> {
    let filters = HashMap::from([("label", vec![format!("{}={}", plan::LABEL_GAMESERVER, plan.name)])]);
    let configs = backend
        .docker()
        .list_configs(Some(ListConfigsOptionsBuilder::default().filters(&filters).build()))
        .await
        .unwrap();
    let mut names: Vec<String> = configs
        .into_iter()
        .filter(|c| builders::is_ours(c.spec.as_ref().and_then(|s| s.labels.as_ref()), plan))
        .filter_map(|c| c.spec?.name)
        .collect();
    names.sort();
    names
}

async fn volume_exists(backend: &SwarmOrchestrator, plan: &ServerPlan) -> bool {
    backend.docker().inspect_volume(&builders::volume_name(plan)).await.is_ok()
}

async fn service_version(backend: &SwarmOrchestrator, plan: &ServerPlan) -> u64 {
    let service = backend.docker().inspect_service(&builders::service_name(plan), None).await.unwrap();
    service.version.unwrap().index.unwrap()
}

/// Requests sent through an orchestrator, by method and path.
#[derive(Clone, Default)]
struct Requests(Arc<Mutex<Vec<(String, String)>>>);

impl Requests {
    fn writes(&self) -> Vec<(String, String)> {
        self.0.lock().unwrap().iter().filter(|(m, _)| m != "GET" && m != "HEAD").cloned().collect()
    }
}

async fn counting_orchestrator() -> (SwarmOrchestrator, Requests) {
    let requests = Requests::default();
    let seen = requests.clone();
    let backend = orchestrator().await.map_client(move |docker| {
        docker.with_request_modifier(move |req| {
            seen.0.lock().unwrap().push((req.method().to_string(), req.uri().path().to_string()));
            req
        })
    });
    (backend, requests)
}

#[tokio::test]
async fn players_reach_the_server_at_the_observed_address() {
    let backend = orchestrator().await;
    let ns = unique_namespace("play");
    let (tcp, udp) = (free_port(), free_port());
    let owner = game_server("arena", &ns, game_spec(tcp, udp, "motd=integration\n"));
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);

    backend.apply(&Owner::of(&owner), &plan).await.expect("first apply");

    // observe: running and ready, at the node's address on the fixed ports.
    let observed = ready(&backend, &plan).await;
    assert_eq!(observed.endpoint.address.as_deref(), Some("127.0.0.1"));
    assert_eq!(
        observed.endpoint.ports,
        vec![
            PublishedPort { name: "game".into(), port: i32::from(tcp), protocol: Protocol::TCP },
            PublishedPort { name: "query".into(), port: i32::from(udp), protocol: Protocol::UDP },
        ]
    );
    let service = backend.docker().inspect_service(&builders::service_name(&plan), None).await.unwrap();
    assert_eq!(observed.backend_ref, service.id);
    assert_eq!(observed.instance.as_ref().unwrap().restarts, 0);

    // Players: a TCP greeting and echo, a UDP pong, at what observe reported.
    let (greeting, echo) =
        eventually("a TCP answer", WAIT, || async { talk_tcp(observed.endpoint.ports[0].port) }).await;
    assert_eq!(greeting, "hello from integration");
    assert_eq!(echo, "echo: where am i");
    let pong = eventually("a UDP answer", WAIT, || async { talk_udp(observed.endpoint.ports[1].port) }).await;
    assert_eq!(pong, "pong: ping");

    // logs: what the game printed, the config file's content among it.
    let logs = eventually("the logs to show the player", WAIT, || async {
        let logs = backend.logs(&plan, None).await.map_err(|e| e.to_string())?;
        if logs.contains("player disconnected") { Ok(logs) } else { Err(logs) }
    })
    .await;
    assert!(logs.contains("config /data/config/motd.txt:\n  motd=integration\n"), "{logs}");
    assert!(logs.contains("game server listening tcp=7777 udp=7778 name=integration"), "{logs}");
    // The tail is the end of the log, read while the log does not grow (a
    // late datagram of the UDP retries above may still be logged).
    eventually("the tail to be the end of a quiet log", WAIT, || async {
        let before = backend.logs(&plan, None).await.map_err(|e| e.to_string())?;
        let last = backend.logs(&plan, Some(1)).await.map_err(|e| e.to_string())?;
        let after = backend.logs(&plan, None).await.map_err(|e| e.to_string())?;
        assert_eq!(last.lines().count(), 1, "{last}");
        match (before == after, after.ends_with(&last)) {
            (true, true) => Ok(()),
            (true, false) => panic!("the tail is not the end of the log: {last:?}"),
            (false, _) => Err("the log grew meanwhile".to_string()),
        }
    })
    .await;

    // The server is listed as a managed one.
    let managed = backend.list_managed().await.unwrap();
    let listed = managed.iter().find(|m| m.namespace == ns).expect("listed");
    assert_eq!((listed.name.as_str(), listed.service_id.as_str()), ("arena", service.id.as_deref().unwrap()));
    assert_eq!(listed.labels.get(builders::LABEL_UID).map(String::as_str), Some(format!("uid-{ns}-arena").as_str()));
}

#[tokio::test]
async fn a_steady_state_writes_nothing_and_a_changed_file_rolls_out() {
    let (backend, requests) = counting_orchestrator().await;
    let ns = unique_namespace("steady");
    let (tcp, udp) = (free_port(), free_port());
    let owner = game_server("steady", &ns, game_spec(tcp, udp, "motd=first\n"));
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);

    backend.apply(&Owner::of(&owner), &plan).await.expect("first apply");
    ready(&backend, &plan).await;
    let version = service_version(&backend, &plan).await;
    let configs = config_names(&backend, &plan).await;
    assert_eq!(configs.len(), 1);

    // Given the server in its steady state, when the same plan is applied
    // again, then nothing is written: no request but reads, the same version.
    let before = requests.writes().len();
    backend.apply(&Owner::of(&owner), &plan).await.expect("second apply");
    assert_eq!(requests.writes()[before..], [], "a steady state writes nothing");
    assert_eq!(service_version(&backend, &plan).await, version);
    assert_eq!(config_names(&backend, &plan).await, configs);

    // When a config file changes, then a new config replaces the old one,
    // the server restarts with it, and the old config is removed.
    let changed = game_server("steady", &ns, game_spec(tcp, udp, "motd=second\n"));
    let changed_plan = plan_of(&changed);
    backend.apply(&Owner::of(&changed), &changed_plan).await.expect("apply the changed file");
    assert!(service_version(&backend, &changed_plan).await > version);
    let rolling = backend.observe(&changed_plan).await.unwrap();
    assert!(!rolling.workload.unwrap().rolled_out, "the update is under way right after it was made");
    ready(&backend, &changed_plan).await;
    let new_configs = config_names(&backend, &changed_plan).await;
    assert_eq!(new_configs.len(), 1);
    assert_ne!(new_configs, configs);
    eventually("the new file in the log", WAIT, || async {
        let logs = backend.logs(&changed_plan, None).await.map_err(|e| e.to_string())?;
        if logs.contains("  motd=second") { Ok(()) } else { Err(logs) }
    })
    .await;
}

#[tokio::test]
async fn stop_then_teardown_keeps_or_erases_the_world() {
    let backend = orchestrator().await;
    let ns = unique_namespace("stop");
    let (tcp, udp) = (free_port(), free_port());
    let owner = game_server("world", &ns, game_spec(tcp, udp, "motd=stop\n"));
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);
    backend.apply(&Owner::of(&owner), &plan).await.expect("apply");
    ready(&backend, &plan).await;

    // Given a running server, when it is stopped, then no task runs and the
    // workload wants none.
    let mut stopped_spec = game_spec(tcp, udp, "motd=stop\n");
    stopped_spec["state"] = json!("Stopped");
    let stopped = game_server("world", &ns, stopped_spec);
    let stopped_plan = plan_of(&stopped);
    backend.apply(&Owner::of(&stopped), &stopped_plan).await.expect("apply Stopped");
    let observed = eventually("the server to stop", WAIT, || async {
        let observed = backend.observe(&stopped_plan).await.map_err(|e| e.to_string())?;
        let gone = observed.workload.as_ref().is_some_and(|w| w.desired == 0 && w.existing == 0 && w.rolled_out);
        if gone && observed.instance.is_none() { Ok(observed) } else { Err(format!("{observed:?}")) }
    })
    .await;
    assert!(observed.backend_ref.is_some(), "the service stays, scaled to zero");
    assert!(talk_tcp(i32::from(tcp)).is_err(), "nothing answers any more");

    // Teardown with Retain: service and configs go, the volume stays.
    teardown_until_done(&backend, &stopped_plan, ReclaimPolicy::Retain).await;
    assert_eq!(backend.observe(&stopped_plan).await.unwrap(), Observed::default());
    assert!(config_names(&backend, &plan).await.is_empty());
    let volume = backend.docker().inspect_volume(&builders::volume_name(&plan)).await.expect("volume retained");
    assert_eq!(volume.labels.get(plan::LABEL_GAMESERVER).map(String::as_str), Some("world"));
    assert_eq!(volume.labels.get(builders::LABEL_NAMESPACE), Some(&ns));
    assert_eq!(backend.teardown(&stopped_plan, ReclaimPolicy::Retain).await.unwrap(), Teardown::Done, "idempotent");

    // A new server of the same name takes the retained volume up again, and
    // a teardown with Delete erases it.
    backend.apply(&Owner::of(&owner), &plan).await.expect("apply again over the retained volume");
    ready(&backend, &plan).await;
    teardown_until_done(&backend, &plan, ReclaimPolicy::Delete).await;
    assert!(!volume_exists(&backend, &plan).await, "volume deleted");
    assert_eq!(backend.teardown(&plan, ReclaimPolicy::Delete).await.unwrap(), Teardown::Done, "idempotent");
}

/// What of the server exists on the swarm: its service, configs, volume.
async fn leftovers(backend: &SwarmOrchestrator, plan: &ServerPlan) -> (bool, Vec<String>, bool) {
    let service = backend.docker().inspect_service(&builders::service_name(plan), None).await.is_ok();
    (service, config_names(backend, plan).await, volume_exists(backend, plan).await)
}

#[tokio::test]
async fn a_missing_image_is_refused_and_leaves_nothing() {
    let backend = orchestrator().await;
    let ns = unique_namespace("noimage");
    let mut spec = game_spec(free_port(), free_port(), "motd=none\n");
    let missing = "127.0.0.1:5999/mettaton-no-such-game:1";
    spec["image"] = json!(missing);
    let owner = game_server("ghost", &ns, spec);
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);

    match backend.apply(&Owner::of(&owner), &plan).await {
        Err(BackendError::ImageMissing { image, reason }) => {
            assert_eq!(image, missing);
            assert!(!reason.is_empty());
        }
        other => panic!("expected ImageMissing, got {other:?}"),
    }
    assert_eq!(leftovers(&backend, &plan).await, (false, vec![], false), "nothing left behind");
}

#[tokio::test]
async fn a_create_the_engine_refuses_removes_what_it_created() {
    let backend = orchestrator().await;
    let ns = unique_namespace("clash");
    let mut spec = game_spec(free_port(), free_port(), "motd=first\n");
    // Two files at one path: past the builders (a plan made outside
    // Kubernetes is not validated by a schema), refused by the engine only
    // when the service that mounts both is created.
    spec["config"] = json!([
        { "path": "/data/config/motd.txt", "content": "motd=first\n" },
        { "path": "/data/config/motd.txt", "content": "motd=second\n" }
    ]);
    let owner = game_server("clash", &ns, spec);
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);

    match backend.apply(&Owner::of(&owner), &plan).await {
        Err(BackendError::Refused { what, reason }) => {
            assert_eq!(what, format!("create service {}", builders::service_name(&plan)));
            assert!(reason.contains("conflicting target"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
    assert_eq!(leftovers(&backend, &plan).await, (false, vec![], false), "volume and configs removed again");
}

#[tokio::test]
async fn a_port_published_by_another_service_is_refused_and_leaves_nothing() {
    let backend = orchestrator().await;
    let ns = unique_namespace("taken");
    let port = free_port();
    // Another service (not a GameServer) publishes the port first.
    let other_name = format!("other-{ns}");
    let other = ServiceSpec {
        name: Some(other_name.clone()),
        labels: Some(HashMap::from([(TEST_LABEL.to_string(), "true".to_string())])),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec { image: Some(image()), ..Default::default() }),
            ..Default::default()
        }),
        endpoint_spec: Some(EndpointSpec {
            ports: Some(vec![EndpointPortConfig {
                target_port: Some(7777),
                published_port: Some(i64::from(port)),
                publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
                ..Default::default()
            }]),
            ..Default::default()
        }),
        ..Default::default()
    };
    backend.docker().create_service(other, None).await.expect("the other service");
    let owner = game_server("late", &ns, game_spec(port, free_port(), "motd=late\n"));
    let plan = plan_of(&owner);
    let mut cleanup = Cleanup::new(&plan);
    cleanup.services.push(other_name.clone());

    match backend.apply(&Owner::of(&owner), &plan).await {
        Err(e @ BackendError::PortTaken { .. }) => {
            assert_eq!(e.to_string(), format!("port {port}/tcp is already published by service {other_name}"));
        }
        other => panic!("expected PortTaken, got {other:?}"),
    }
    assert_eq!(leftovers(&backend, &plan).await, (false, vec![], false), "nothing left behind");
    // The other service is untouched.
    let filters = HashMap::from([("name", vec![other_name.clone()])]);
    let services =
        backend.docker().list_services(Some(ListServicesOptionsBuilder::default().filters(&filters).build())).await;
    assert_eq!(services.unwrap().len(), 1);
}

#[tokio::test]
async fn a_killed_server_is_restarted_and_the_restart_counted() {
    let backend = orchestrator().await;
    let ns = unique_namespace("kill");
    let mut spec = game_spec(free_port(), free_port(), "motd=kill\n");
    // No fixed ports: the engine picks them.
    for port in spec["ports"].as_array_mut().unwrap() {
        port.as_object_mut().unwrap().remove("externalPort");
    }
    let owner = game_server("fragile", &ns, spec);
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);
    backend.apply(&Owner::of(&owner), &plan).await.expect("apply");
    let observed = ready(&backend, &plan).await;
    let first_ports = observed.endpoint.ports.clone();
    assert!(first_ports.iter().all(|p| p.port > 0), "{first_ports:?}");
    eventually("a TCP answer on the port the engine chose", WAIT, || async { talk_tcp(first_ports[0].port) }).await;

    // The container's name is the task's, as observe reports it.
    let events = Box::pin(backend.instance_events(Some(SystemTime::now() - Duration::from_secs(1))));
    let container = observed.instance.unwrap().name;
    backend
        .docker()
        .kill_container(&container, Some(KillContainerOptionsBuilder::default().signal("SIGKILL").build()))
        .await
        .expect("kill the server's container");

    // The engine reports the death of the server's container.
    let died = tokio::time::timeout(
        WAIT,
        events
            .filter_map(|e| futures::future::ready(e.ok()))
            // Other tests' servers are managed ones too.
            .filter(|e| {
                futures::future::ready(e.server.namespace == ns && matches!(e.kind, InstanceEventKind::Exited { .. }))
            })
            .next(),
    )
    .await
    .expect("a die event in time")
    .expect("the event stream goes on");
    assert_eq!((died.server.name.as_str(), died.server.namespace.as_str()), ("fragile", ns.as_str()));
    assert_eq!(died.kind, InstanceEventKind::Exited { exit_code: Some(137) });
    assert!(container.ends_with(died.task_id.as_deref().unwrap()), "{container} / {died:?}");

    // Swarm starts a new task; observe counts the restart and is ready again.
    let observed = eventually("the restarted server", WAIT, || async {
        let observed = backend.observe(&plan).await.map_err(|e| e.to_string())?;
        match &observed.instance {
            Some(i) if i.ready && i.restarts >= 1 && i.name != container => Ok(observed),
            _ => Err(format!("{observed:?}")),
        }
    })
    .await;
    let ports = &observed.endpoint.ports;
    eventually("a TCP answer after the restart", WAIT, || async { talk_tcp(ports[0].port) }).await;
}

#[tokio::test]
async fn an_exec_readiness_check_gates_ready() {
    let backend = orchestrator().await;
    let ns = unique_namespace("exec");
    let mut spec = game_spec(free_port(), free_port(), "motd=exec\n");
    // `-h` makes the game print its usage and exit 0: a check that passes.
    spec["health"] =
        json!({ "startupTimeoutSeconds": 60, "periodSeconds": 1, "probe": { "exec": ["/testgame", "-h"] } });
    let owner = game_server("checked", &ns, spec);
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);
    backend.apply(&Owner::of(&owner), &plan).await.expect("apply");
    let observed = ready(&backend, &plan).await;
    let container = backend.docker().inspect_container(&observed.instance.unwrap().name, None).await.unwrap();
    let health = container.config.unwrap().healthcheck.unwrap();
    assert_eq!(health.test.unwrap(), ["CMD", "/testgame", "-h"]);
    assert_eq!(health.retries, Some(3));
    let status = container.state.unwrap().health.unwrap().status.unwrap();
    assert_eq!(status.to_string(), "healthy");

    // A steady state writes nothing, though the engine's answer holds the
    // healthcheck where bollard does not read it.
    let version = service_version(&backend, &plan).await;
    backend.apply(&Owner::of(&owner), &plan).await.expect("second apply");
    assert_eq!(service_version(&backend, &plan).await, version);
}

#[tokio::test]
async fn an_absent_daemon_is_unreachable_and_named() {
    let daemon = Daemon::LocalSocket("/nonexistent/docker.sock".into());
    match SwarmOrchestrator::connect(&daemon).await {
        Err(BackendError::Unreachable(message)) => {
            assert!(message.contains("unix:///nonexistent/docker.sock"), "{message}")
        }
        other => panic!("expected Unreachable, got {:?}", other.map(|_| ())),
    }
    let daemon = Daemon::Tcp { url: "tcp://127.0.0.1:1".into(), tls: None };
    match SwarmOrchestrator::connect(&daemon).await {
        Err(BackendError::Unreachable(message)) => assert!(message.contains("tcp://127.0.0.1:1"), "{message}"),
        other => panic!("expected Unreachable, got {:?}", other.map(|_| ())),
    }
}

#[tokio::test]
async fn a_failing_exec_readiness_check_keeps_the_server_not_ready() {
    let backend = orchestrator().await;
    let ns = unique_namespace("unready");
    let mut spec = game_spec(free_port(), free_port(), "motd=unready\n");
    // An unknown flag makes the game exit 2: a check that never passes.
    spec["health"] =
        json!({ "startupTimeoutSeconds": 60, "periodSeconds": 1, "probe": { "exec": ["/testgame", "-no-such-flag"] } });
    let owner = game_server("unready", &ns, spec);
    let plan = plan_of(&owner);
    let _cleanup = Cleanup::new(&plan);
    backend.apply(&Owner::of(&owner), &plan).await.expect("apply");

    // Given a server whose container runs but whose check fails, then it is
    // running, not ready, and stays so while its checks keep failing.
    eventually("a running instance", WAIT, || async {
        let observed = backend.observe(&plan).await.map_err(|e| e.to_string())?;
        if observed.instance.as_ref().is_some_and(|i| i.running) { Ok(()) } else { Err(format!("{observed:?}")) }
    })
    .await;
    tokio::time::sleep(Duration::from_secs(4)).await;
    let observed = backend.observe(&plan).await.unwrap();
    let instance = observed.instance.unwrap();
    assert!(instance.running && !instance.ready, "{instance:?}");
    assert_eq!(instance.problem, None, "failures in the startup window are no problem yet");
    assert_eq!(observed.workload.unwrap().ready, 0);
}
