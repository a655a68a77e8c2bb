//! The Kubernetes backend against a real control plane: what `apply` creates,
//! what `observe` reads back, that a steady state writes nothing, and how
//! `teardown` keeps or erases the world.

use std::collections::BTreeMap;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, Node, PersistentVolume, PersistentVolumeClaim, Pod, Service};
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use kube::{Resource, ResourceExt};
use mettaton::api::{DesiredState, GameServer, PublishedPort, ReclaimPolicy};
use mettaton::orchestrator::kubernetes::{KubernetesOrchestrator, LABEL_RETAINED};
use mettaton::orchestrator::{BackendError, Logs, Observed, Orchestrator, Owner, Teardown};
use mettaton::plan::{self, ServerPlan};
use serde_json::json;

use crate::fixtures::{game_server, merged, minecraft_with_query};
use crate::support::{TestNamespace, client, counting_client, ensure_crd, eventually};

const WAIT: Duration = Duration::from_secs(60);
/// Storage class of the test's claims. No StorageClass of that name exists:
/// the plane has no provisioner, so claims bind to a volume the test makes.
const STATIC_CLASS: &str = "mettaton-test-static";

/// The Minecraft server with a world on a claim of the static class and a
/// config file; its image only kwok runs (nothing pulls it).
fn minecraft_spec() -> serde_json::Value {
    merged(
        minecraft_with_query(),
        json!({
            "image": "mettaton.test/minecraft:1",
            "storage": { "size": "1Gi", "storageClassName": STATIC_CLASS, "mountPath": "/data" },
            "config": [{ "path": "/data/server.properties", "content": "motd=integration\n" }],
            "health": { "startupTimeoutSeconds": 60, "periodSeconds": 2 },
            "shutdown": { "gracePeriodSeconds": 5 }
        }),
    )
}

async fn create(ns: &TestNamespace, gs: &GameServer) -> GameServer {
    ns.api::<GameServer>().create(&PostParams::default(), gs).await.expect("GameServer created")
}

/// A persistent volume bound in advance to the claim `namespace/claim`, since
/// nothing provisions volumes on the plane. Deleted on drop: volumes are not
/// namespaced, so the test namespace does not take it along.
struct StaticVolume {
    name: String,
}

impl StaticVolume {
    async fn for_claim(namespace: &str, claim: &str) -> Self {
        let name = format!("{namespace}-{claim}");
        let pv: PersistentVolume = serde_json::from_value(json!({
            "apiVersion": "v1",
            "kind": "PersistentVolume",
            "metadata": { "name": name, "labels": { "mettaton.dev/test": "true" } },
            "spec": {
                "capacity": { "storage": "1Gi" },
                "accessModes": ["ReadWriteOnce"],
                "persistentVolumeReclaimPolicy": "Retain",
                "storageClassName": STATIC_CLASS,
                "hostPath": { "path": format!("/tmp/mettaton-test/{name}") },
                "claimRef": { "namespace": namespace, "name": claim }
            }
        }))
        .unwrap();
        Api::<PersistentVolume>::all(client().await).create(&PostParams::default(), &pv).await.expect("volume created");
        StaticVolume { name }
    }
}

impl Drop for StaticVolume {
    fn drop(&mut self) {
        // As in TestNamespace: the test's runtime cannot block on itself.
        let name = self.name.clone();
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                let _ = Api::<PersistentVolume>::all(client().await).delete(&name, &DeleteParams::default()).await;
            })
        })
        .join();
    }
}

fn assert_owned_by(what: &str, meta: &kube::api::ObjectMeta, owner: &GameServer, plan: &ServerPlan) {
    let refs = meta.owner_references.clone().unwrap_or_default();
    assert_eq!(refs.len(), 1, "{what}: one owner reference, got {refs:?}");
    let r = &refs[0];
    assert_eq!((r.kind.as_str(), r.api_version.as_str()), ("GameServer", "mettaton.dev/v1alpha1"), "{what}");
    assert_eq!(Some(&r.uid), owner.meta().uid.as_ref(), "{what}: owned by this GameServer");
    assert_eq!((r.controller, r.block_owner_deletion), (Some(true), Some(true)), "{what}");
    let labels = meta.labels.clone().unwrap_or_default();
    for (k, v) in &plan.labels {
        assert_eq!(labels.get(k), Some(v), "{what}: label {k}");
    }
}

/// Resource versions of every child of the server, by kind.
async fn versions(ns: &TestNamespace, plan: &ServerPlan) -> BTreeMap<&'static str, String> {
    let rv = |meta: &kube::api::ObjectMeta| meta.resource_version.clone().unwrap();
    BTreeMap::from([
        ("deployment", rv(&ns.api::<Deployment>().get(&plan.name).await.unwrap().metadata)),
        ("service", rv(&ns.api::<Service>().get(&plan.name).await.unwrap().metadata)),
        ("claim", rv(&ns.api::<PersistentVolumeClaim>().get(&plan::volume_name(&plan.name)).await.unwrap().metadata)),
        ("configmap", rv(&ns.api::<ConfigMap>().get(&plan::config_name(&plan.name)).await.unwrap().metadata)),
    ])
}

/// Waits until the server is up as `observe` sees it, and returns that view.
async fn ready(backend: &KubernetesOrchestrator, plan: &ServerPlan) -> Observed {
    eventually("a ready instance with an address", WAIT, || async {
        let observed = backend.observe(plan).await.map_err(|e| e.to_string())?;
        let workload_ok = observed.workload.as_ref().is_some_and(|w| w.ready == 1 && w.rolled_out && w.existing == 1);
        let instance_ok = observed.instance.as_ref().is_some_and(|i| i.running && i.ready && !i.terminating);
        if workload_ok && instance_ok && observed.endpoint.address.is_some() {
            Ok(observed)
        } else {
            Err(format!("{observed:?}"))
        }
    })
    .await
}

async fn teardown_until_done(backend: &KubernetesOrchestrator, plan: &ServerPlan, reclaim: ReclaimPolicy) {
    eventually("teardown to finish", WAIT, || async {
        match backend.teardown(plan, reclaim).await {
            Ok(Teardown::Done) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
}

#[tokio::test]
async fn apply_observe_stop_retain_adopt_and_delete() {
    ensure_crd().await;
    let ns = TestNamespace::new("k8s-backend").await;
    let backend = KubernetesOrchestrator::new(ns.client.clone());
    let name = "survival";
    let _volume = StaticVolume::for_claim(&ns.name, &plan::volume_name(name)).await;

    // Given a GameServer, when its plan is applied, then every child exists,
    // controlled by the GameServer and labelled as the server's.
    let owner = create(&ns, &game_server(name, minecraft_spec())).await;
    let plan = plan::plan(&owner);
    backend.apply(&Owner::of(&owner), &plan).await.expect("first apply");
    let deployment = ns.api::<Deployment>().get(name).await.unwrap();
    let service = ns.api::<Service>().get(name).await.unwrap();
    let claim = ns.api::<PersistentVolumeClaim>().get(&plan::volume_name(name)).await.unwrap();
    let config = ns.api::<ConfigMap>().get(&plan::config_name(name)).await.unwrap();
    assert_owned_by("deployment", &deployment.metadata, &owner, &plan);
    assert_owned_by("service", &service.metadata, &owner, &plan);
    assert_owned_by("claim", &claim.metadata, &owner, &plan);
    assert_owned_by("configmap", &config.metadata, &owner, &plan);
    assert_eq!(config.data.unwrap().values().collect::<Vec<_>>(), vec!["motd=integration\n"]);

    // The Deployment becomes available: the claim binds, kwok runs the pod.
    eventually("the Deployment to be available", WAIT, || async {
        let d = ns.api::<Deployment>().get(name).await.map_err(|e| e.to_string())?;
        let available = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0);
        if available == 1 { Ok(()) } else { Err(format!("{:?}", d.status)) }
    })
    .await;

    // observe: the ready pod, reachable at its node's address on the node ports.
    let observed = ready(&backend, &plan).await;
    assert_eq!(observed.backend_ref.as_deref(), Some("deployment/survival"));
    let pods = ns.api::<Pod>().list(&ListParams::default().labels("mettaton.dev/gameserver=survival")).await.unwrap();
    assert_eq!(pods.items.len(), 1);
    let pod = &pods.items[0];
    assert_eq!(observed.instance.as_ref().unwrap().name, pod.name_any());
    let node_name = pod.spec.as_ref().unwrap().node_name.clone().unwrap();
    let node = Api::<Node>::all(ns.client.clone()).get(&node_name).await.unwrap();
    let internal_ip =
        node.status.unwrap().addresses.unwrap().into_iter().find(|a| a.type_ == "InternalIP").unwrap().address;
    assert!(internal_ip.starts_with("127.0.0."), "{internal_ip}");
    assert_eq!(observed.endpoint.address.as_deref(), Some(internal_ip.as_str()));
    let service = ns.api::<Service>().get(name).await.unwrap();
    let node_ports: Vec<PublishedPort> = service
        .spec
        .unwrap()
        .ports
        .unwrap()
        .into_iter()
        .map(|p| PublishedPort {
            port: p.node_port.expect("node port allocated"),
            protocol: serde_json::from_value(json!(p.protocol.unwrap())).unwrap(),
            name: p.name.unwrap(),
        })
        .collect();
    assert_eq!(observed.endpoint.ports, node_ports);

    // kwok runs no containers, so the API server cannot fetch a log from the
    // node; the failure shows that the game container of this pod was asked
    // for. (What a log holds is tested on the real node, below.)
    match backend.logs(&plan, Some(20)).await {
        Err(BackendError::Other { reason, .. }) => {
            let asked = format!("/containerLogs/{}/{}/game", ns.name, pod.name_any());
            assert!(reason.contains(&asked), "{reason}");
        }
        other => panic!("a log from a kwok node, where no container runs: {other:?}"),
    }

    // A second apply of the same plan writes nothing.
    let (counting, requests) = counting_client().await;
    let before = versions(&ns, &plan).await;
    KubernetesOrchestrator::new(counting).apply(&Owner::of(&owner), &plan).await.expect("steady-state apply");
    assert_eq!(requests.writes(), vec![], "a steady-state apply only reads");
    assert_eq!(versions(&ns, &plan).await, before, "no child changed");

    // Stopped, and without its config file: no replica, no pod, no ConfigMap;
    // the Service and the claim stay.
    let mut stopped = owner.clone();
    stopped.spec.state = DesiredState::Stopped;
    stopped.spec.config.clear();
    let stopped_plan = plan::plan(&stopped);
    backend.apply(&Owner::of(&owner), &stopped_plan).await.expect("apply stopped");
    let replicas = ns.api::<Deployment>().get(name).await.unwrap().spec.unwrap().replicas;
    assert_eq!(replicas, Some(0));
    assert!(ns.api::<ConfigMap>().get_opt(&plan::config_name(name)).await.unwrap().is_none());
    assert!(ns.api::<Service>().get_opt(name).await.unwrap().is_some());
    eventually("the pod to be gone", WAIT, || async {
        let observed = backend.observe(&stopped_plan).await.map_err(|e| e.to_string())?;
        match (&observed.workload, &observed.instance) {
            (Some(w), None) if w.desired == 0 && w.existing == 0 && w.rolled_out => Ok(()),
            _ => Err(format!("{observed:?}")),
        }
    })
    .await;

    // Teardown with Retain: everything goes but the claim, which is released
    // (so that deleting the GameServer does not take it) and marked retained.
    teardown_until_done(&backend, &stopped_plan, ReclaimPolicy::Retain).await;
    assert!(ns.api::<Deployment>().get_opt(name).await.unwrap().is_none());
    assert!(ns.api::<Service>().get_opt(name).await.unwrap().is_none());
    assert!(ns.api::<ConfigMap>().get_opt(&plan::config_name(name)).await.unwrap().is_none());
    let kept = ns.api::<PersistentVolumeClaim>().get(&plan::volume_name(name)).await.unwrap();
    assert_eq!(kept.metadata.owner_references.clone().unwrap_or_default(), vec![], "released");
    assert_eq!(kept.labels().get(LABEL_RETAINED).map(String::as_str), Some("true"));
    assert!(kept.metadata.deletion_timestamp.is_none());
    assert_eq!(backend.teardown(&stopped_plan, ReclaimPolicy::Retain).await.unwrap(), Teardown::Done, "idempotent");

    // A new GameServer of the same name takes the world over.
    ns.api::<GameServer>().delete(name, &DeleteParams::default()).await.unwrap();
    eventually("the old GameServer to be gone", WAIT, || async {
        match ns.api::<GameServer>().get_opt(name).await {
            Ok(None) => Ok(()),
            other => Err(format!("{other:?}")),
        }
    })
    .await;
    let successor = create(&ns, &game_server(name, minecraft_spec())).await;
    assert_ne!(successor.meta().uid, owner.meta().uid);
    let plan = plan::plan(&successor);
    backend.apply(&Owner::of(&successor), &plan).await.expect("apply of the successor");
    let adopted = ns.api::<PersistentVolumeClaim>().get(&plan::volume_name(name)).await.unwrap();
    assert_owned_by("adopted claim", &adopted.metadata, &successor, &plan);
    assert_eq!(adopted.labels().get(LABEL_RETAINED), None, "no longer retained");
    assert_eq!(adopted.metadata.uid, kept.metadata.uid, "the same claim, with the same world");
    ready(&backend, &plan).await;

    // Teardown with Delete erases everything, the claim too.
    teardown_until_done(&backend, &plan, ReclaimPolicy::Delete).await;
    assert!(ns.api::<PersistentVolumeClaim>().get_opt(&plan::volume_name(name)).await.unwrap().is_none());
    assert!(ns.api::<Deployment>().get_opt(name).await.unwrap().is_none());
    assert!(ns.api::<Pod>().list(&ListParams::default()).await.unwrap().items.is_empty());
    assert_eq!(backend.observe(&plan).await.unwrap(), Observed::default());
    assert_eq!(backend.teardown(&plan, ReclaimPolicy::Delete).await.unwrap(), Teardown::Done, "idempotent");
}

#[tokio::test]
async fn objects_of_the_same_name_that_are_not_the_servers_are_left_alone() {
    ensure_crd().await;
    let ns = TestNamespace::new("k8s-clash").await;
    let backend = KubernetesOrchestrator::new(ns.client.clone());
    let theirs: Service = serde_json::from_value(json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": { "name": "lobby", "labels": { "app": "someone-else" } },
        "spec": { "selector": { "app": "someone-else" }, "ports": [{ "name": "http", "port": 80 }] }
    }))
    .unwrap();
    ns.api::<Service>().create(&PostParams::default(), &theirs).await.unwrap();
    let owner = create(
        &ns,
        &game_server(
            "lobby",
            json!({ "image": "mettaton.test/lobby:1", "ports": [{ "name": "game", "containerPort": 7777 }] }),
        ),
    )
    .await;
    let plan = plan::plan(&owner);

    let err = backend.apply(&Owner::of(&owner), &plan).await.expect_err("the Service name is taken");
    match &err {
        BackendError::Refused { what, reason } => {
            assert_eq!(what, "apply service/lobby");
            assert!(reason.contains("does not belong to GameServer lobby"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    let service = ns.api::<Service>().get("lobby").await.unwrap();
    assert_eq!(service.spec.unwrap().ports.unwrap()[0].port, 80, "their Service is untouched");

    teardown_until_done(&backend, &plan, ReclaimPolicy::Delete).await;
    assert!(ns.api::<Service>().get_opt("lobby").await.unwrap().is_some(), "and not deleted");
    assert!(ns.api::<Deployment>().get_opt("lobby").await.unwrap().is_none(), "ours is");
}

#[tokio::test]
async fn logs_of_a_server_without_a_pod_are_an_error() {
    let ns = TestNamespace::new("k8s-logs").await;
    let backend = KubernetesOrchestrator::new(ns.client.clone());
    let spec =
        serde_json::from_value(json!({ "image": "x", "ports": [{ "name": "game", "containerPort": 1 }] })).unwrap();
    let plan = plan::plan_spec("nobody", &ns.name, &spec);
    match backend.logs(&plan, Some(10)).await {
        Err(BackendError::Other { reason, .. }) => assert!(reason.contains("no pod"), "{reason}"),
        other => panic!("{other:?}"),
    }
}

/// `logs` gives what the game container printed, in order, and with a `tail`
/// exactly its last lines, and `follow_logs` goes on with each new line: on
/// the real node, where the test game runs and prints its config file line by
/// line, then that it listens, then a line per datagram it gets.
#[tokio::test]
async fn logs_are_the_game_containers_output_tail_its_last_lines_and_follow_new_ones() {
    ensure_crd().await;
    let ns = TestNamespace::new("k8s-logs-real").await;
    let backend = KubernetesOrchestrator::new(ns.client.clone());
    let name = "chatty";
    let spec = json!({
        "image": "127.0.0.1:5999/mettaton-testgame:1",
        "env": [{ "name": "GAME_CONFIG", "value": "/etc/game/motd.cfg" }, { "name": "GAME_NAME", "value": name }],
        // UDP only: no TCP probe connecting (and being logged) every second.
        "ports": [{ "name": "query", "containerPort": 7778, "protocol": "UDP" }],
        "config": [{ "path": "/etc/game/motd.cfg", "content": "first line\nsecond line\nthird line\n" }],
        "nodeSelector": { "type": "real" },
        "tolerations": [{ "operator": "Exists", "effect": "NoSchedule" }],
        "shutdown": { "gracePeriodSeconds": 5 }
    });
    let owner = create(&ns, &game_server(name, spec)).await;
    let plan = plan::plan(&owner);
    backend.apply(&Owner::of(&owner), &plan).await.expect("apply");
    let observed = ready(&backend, &plan).await;

    let printed = [
        "config /etc/game/motd.cfg:",
        "  first line",
        "  second line",
        "  third line",
        "game server listening tcp=7777 udp=7778 name=chatty",
    ];
    let all = eventually("the game's whole output in its log", WAIT, || async {
        let log = backend.logs(&plan, None).await.map_err(|e| e.to_string())?;
        if log.lines().collect::<Vec<_>>() == printed { Ok(log) } else { Err(log) }
    })
    .await;
    assert!(all.ends_with('\n'), "whole lines: {all:?}");
    for tail in [1, 2, 4] {
        let log = backend.logs(&plan, Some(tail)).await.expect("a tail of the log");
        let want = printed[printed.len() - tail as usize..].to_vec();
        assert_eq!(log.lines().collect::<Vec<_>>(), want, "the last {tail} lines");
    }

    // `follow_logs` starts with the last line asked for, then gives each new
    // line as the game prints it: here the line of a datagram sent to the
    // game's UDP port (a node port on the real node; resent until one lands,
    // as kube-proxy's rules may follow readiness by a moment).
    let mut follow = backend.follow_logs(&plan, Some(1));
    let first = tokio::time::timeout(WAIT, follow.next()).await.expect("a first line in time");
    assert_eq!(first.expect("a line").expect("no error"), format!("{}\n", printed[4]));
    let address = observed.endpoint.address.clone().expect("an address");
    let port = observed.endpoint.ports.iter().find(|p| p.name == "query").expect("the query port").port;
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").unwrap();
    let next = tokio::time::timeout(WAIT, async {
        loop {
            socket.send_to(b"ping", (address.as_str(), port as u16)).unwrap();
            if let Ok(line) = tokio::time::timeout(Duration::from_secs(2), follow.next()).await {
                break line;
            }
        }
    })
    .await
    .expect("a new line while following");
    let next = next.expect("the stream goes on").expect("no error");
    assert!(next.starts_with("udp datagram from ") && next.ends_with('\n'), "{next:?}");
    drop(follow);
    teardown_until_done(&backend, &plan, ReclaimPolicy::Delete).await;
}
