//! Data safety (issue 7, item 6): no path deletes a game's world (a
//! PersistentVolumeClaim, a swarm volume) unless the GameServer's reclaim
//! policy is Delete and the GameServer itself is being deleted. Each test
//! writes a file into the volume as it lies on this machine (the plane's
//! host-path provisioner makes directories under /tmp/hostpath_pv; a swarm
//! volume is a directory of the engine) and checks it is still there, or
//! gone, byte for byte.
//!
//! Which policy counts: the one the GameServer has when its teardown decides
//! about the volume, which is only once everything else of the server is
//! gone. So a policy changed while a deletion waits (the controller down,
//! the runtime slow to stop, the daemon unreachable) is honoured either way.
//!
//! Covered elsewhere and not repeated: storage cannot be removed, shrunk or
//! moved to another class (gameserver_schema.rs); the orchestrators' own
//! Retain/Delete teardowns (kubernetes_backend.rs, swarm_backend.rs).

use std::os::unix::fs::MetadataExt;
use std::path::PathBuf;
use std::time::Duration;

use bollard::Docker;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{PersistentVolume, PersistentVolumeClaim};
use kube::ResourceExt;
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use mettaton::api::{GameServer, Phase, conditions};
use mettaton::controller;
use mettaton::facade::Mettaton;
use mettaton::orchestrator::kubernetes::LABEL_RETAINED;
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator, builders as swarm};
use mettaton::plan;
use serde_json::{Value, json};
use tokio::sync::oneshot;

use crate::controller::{AFTER_BACKOFF, RunningController, event_reasons, owned_by};
use crate::fixtures::game_server;
use crate::support::{
    Proxy, TestNamespace, Upstream, docker, docker_socket, ensure_crd, eventually, remove_swarm_leftovers, wait_phase,
    wait_ready,
};

const WAIT: Duration = Duration::from_secs(90);
/// A deletion waits for the runtime (pods, the garbage collector) and is
/// retried on a growing backoff: on a loaded plane it takes a while.
const DELETION: Duration = Duration::from_secs(180);
const WORLD: &str = "world.dat";

/// Waits until the GameServer is gone (its teardown done, its finalizer off).
async fn gone(api: &Api<GameServer>, name: &str) {
    eventually(&format!("{name} deleted"), DELETION, || async {
        match api.get_opt(name).await {
            Ok(None) => Ok(()),
            Ok(Some(gs)) => Err(format!("still there: finalizers {:?}, status {:?}", gs.finalizers(), gs.status)),
            Err(e) => Err(e.to_string()),
        }
    })
    .await
}

fn spec(reclaim: &str) -> Value {
    json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi", "reclaimPolicy": reclaim },
        "shutdown": { "gracePeriodSeconds": 1 }
    })
}

/// The directory on this machine that holds the claim's volume, once bound.
async fn volume_dir(ns: &TestNamespace, claim: &str) -> PathBuf {
    let claims = ns.api::<PersistentVolumeClaim>();
    let volume = eventually(&format!("{claim} bound"), WAIT, || async {
        let c = claims.get(claim).await.map_err(|e| e.to_string())?;
        c.spec.and_then(|s| s.volume_name).filter(|v| !v.is_empty()).ok_or("not bound yet".to_string())
    })
    .await;
    let pv = Api::<PersistentVolume>::all(ns.client.clone()).get(&volume).await.unwrap();
    PathBuf::from(pv.spec.unwrap().host_path.expect("a host-path volume").path)
}

/// Writes a world no other test has into the volume's directory.
fn write_world(dir: &std::path::Path) -> String {
    let content = format!("world of {} at {:?}\n", dir.display(), std::time::SystemTime::now());
    std::fs::write(dir.join(WORLD), &content).expect("the volume's directory is writable here");
    content
}

fn read_world(dir: &std::path::Path) -> Option<String> {
    std::fs::read_to_string(dir.join(WORLD)).ok()
}

/// The claim, checked to be the same one (same uid), not being deleted, and
/// with the world still in it.
async fn assert_kept(
    ns: &TestNamespace,
    claim: &str,
    uid: &str,
    dir: &std::path::Path,
    world: &str,
) -> PersistentVolumeClaim {
    let c = ns.api::<PersistentVolumeClaim>().get(claim).await.unwrap_or_else(|e| panic!("{claim} is gone: {e}"));
    assert_eq!(c.uid().as_deref(), Some(uid), "{claim}: the same claim, not a new one");
    assert!(c.metadata.deletion_timestamp.is_none(), "{claim} is being deleted");
    assert_eq!(read_world(dir).as_deref(), Some(world), "{claim}: the world is intact");
    c
}

async fn assert_erased(ns: &TestNamespace, claim: &str, dir: &std::path::Path) {
    let claims = ns.api::<PersistentVolumeClaim>();
    eventually(&format!("{claim} and its directory erased"), DELETION, || async {
        let left = claims.get_opt(claim).await.map_err(|e| e.to_string())?.map(|c| c.uid());
        if left.is_none() && !dir.exists() { Ok(()) } else { Err(format!("claim {left:?}, dir {}", dir.exists())) }
    })
    .await;
}

async fn set_reclaim(api: &Api<GameServer>, name: &str, reclaim: &str) {
    let patch = Patch::Merge(json!({ "spec": { "storage": { "reclaimPolicy": reclaim } } }));
    api.patch(name, &PatchParams::default(), &patch).await.expect("the policy can change, also during deletion");
}

/// Holds a Deployment with a finalizer of the test's, so that deleting it
/// waits: a runtime that is slow to stop the server. Released on drop.
struct Hold {
    api: Api<Deployment>,
    name: String,
}

const HOLD: &str = "test.mettaton.dev/hold";

impl Hold {
    async fn on(api: Api<Deployment>, name: &str) -> Hold {
        let patch = Patch::Merge(json!({ "metadata": { "finalizers": [HOLD] } }));
        api.patch(name, &PatchParams::default(), &patch).await.unwrap();
        Hold { api, name: name.to_string() }
    }

    async fn release(&self) {
        let api = self.api.clone();
        let name = self.name.clone();
        eventually("the hold released", WAIT, || async {
            let Some(d) = api.get_opt(&name).await.map_err(|e| e.to_string())? else { return Ok(()) };
            let kept: Vec<String> = d.finalizers().iter().filter(|f| *f != HOLD).cloned().collect();
            let patch = json!({ "metadata": { "finalizers": kept, "resourceVersion": d.resource_version() } });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await.map(|_| ()).map_err(|e| e.to_string())
        })
        .await;
    }
}

impl Drop for Hold {
    fn drop(&mut self) {
        // A failed test must not leave its namespace stuck in Terminating.
        let (api, name) = (self.api.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            rt.block_on(async {
                if let Ok(Some(d)) = api.get_opt(&name).await {
                    let kept: Vec<String> = d.finalizers().iter().filter(|f| *f != HOLD).cloned().collect();
                    let patch = json!({ "metadata": { "finalizers": kept } });
                    let _ = api.patch(&name, &PatchParams::default(), &Patch::Merge(patch)).await;
                }
            })
        })
        .join();
    }
}

/// Retain: the world outlives its GameServer (same claim, released from it,
/// labelled retained), a new GameServer of the same name takes it up again
/// with its data, and deleting that one with Retain keeps it again.
/// (controller.rs checks the first deletion and the adoption by uid; this adds
/// the data itself, the labels and the second deletion.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retained_world_survives_deletion_adoption_and_a_second_deletion() {
    ensure_crd().await;
    let ns = TestNamespace::new("safe-retain").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &game_server("world", spec("Retain"))).await.unwrap();
    wait_ready(&api, "world", WAIT).await;
    let claims = ns.api::<PersistentVolumeClaim>();
    let uid = claims.get("world-data").await.unwrap().uid().unwrap();
    let dir = volume_dir(&ns, "world-data").await;
    let world = write_world(&dir);

    for round in 1..=2 {
        api.delete("world", &DeleteParams::default()).await.unwrap();
        gone(&api, "world").await;
        let kept = assert_kept(&ns, "world-data", &uid, &dir, &world).await;
        assert!(kept.owner_references().is_empty(), "round {round}: released, nothing left to garbage-collect it");
        assert_eq!(kept.labels().get(LABEL_RETAINED).map(String::as_str), Some("true"), "round {round}");
        assert!(event_reasons(&ns, "world").await.iter().any(|r| r == "Deleted"));

        api.create(&PostParams::default(), &game_server("world", spec("Retain"))).await.unwrap();
        let again = wait_ready(&api, "world", WAIT).await;
        let adopted = assert_kept(&ns, "world-data", &uid, &dir, &world).await;
        assert!(owned_by(&adopted, &again), "round {round}: adopted by the new GameServer");
        assert_eq!(adopted.labels().get(LABEL_RETAINED), None, "round {round}: no longer marked retained");
        assert_eq!(volume_dir(&ns, "world-data").await, dir, "round {round}: the same volume");
    }
    api.delete("world", &DeleteParams::default()).await.unwrap();
    gone(&api, "world").await;
    assert_kept(&ns, "world-data", &uid, &dir, &world).await;
    ctl.stop().await;
}

/// Stopping, even with the Delete policy, never touches the world.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_never_touches_the_world_even_with_the_delete_policy() {
    ensure_crd().await;
    let ns = TestNamespace::new("safe-stop").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    let api = ns.api::<GameServer>();
    api.create(&PostParams::default(), &game_server("paused", spec("Delete"))).await.unwrap();
    wait_ready(&api, "paused", WAIT).await;
    let uid = ns.api::<PersistentVolumeClaim>().get("paused-data").await.unwrap().uid().unwrap();
    let dir = volume_dir(&ns, "paused-data").await;
    let world = write_world(&dir);

    for _ in 0..2 {
        api.patch("paused", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "state": "Stopped" } })))
            .await
            .unwrap();
        wait_phase(&api, "paused", Phase::Stopped, WAIT).await;
        assert_eq!(ns.api::<Deployment>().get("paused").await.unwrap().spec.unwrap().replicas, Some(0));
        assert_kept(&ns, "paused-data", &uid, &dir, &world).await;
        api.patch("paused", &PatchParams::default(), &Patch::Merge(json!({ "spec": { "state": "Running" } })))
            .await
            .unwrap();
        wait_ready(&api, "paused", WAIT).await;
        assert_kept(&ns, "paused-data", &uid, &dir, &world).await;
    }
    // And Delete means delete, once the GameServer goes.
    api.delete("paused", &DeleteParams::default()).await.unwrap();
    gone(&api, "paused").await;
    assert_erased(&ns, "paused-data", &dir).await;
    ctl.stop().await;
}

/// Delete → Retain while the deletion waits keeps the world: whether the
/// controller is down when the GameServer is deleted, or the runtime is slow
/// to stop the server (its Deployment held by a finalizer), the volume is
/// decided on only at the end, with the policy as it is then.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_changed_to_retain_while_a_deletion_waits_keeps_the_world() {
    ensure_crd().await;
    let ns = TestNamespace::new("safe-to-retain").await;
    let api = ns.api::<GameServer>();
    let claims = ns.api::<PersistentVolumeClaim>();
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    for name in ["down", "slow"] {
        api.create(&PostParams::default(), &game_server(name, spec("Delete"))).await.unwrap();
    }
    let mut worlds = Vec::new();
    for name in ["down", "slow"] {
        wait_ready(&api, name, WAIT).await;
        let claim = plan::volume_name(name);
        let uid = claims.get(&claim).await.unwrap().uid().unwrap();
        let dir = volume_dir(&ns, &claim).await;
        let world = write_world(&dir);
        worlds.push((name, claim, uid, dir, world));
    }

    // The slow one: its Deployment cannot go until the hold is released.
    let hold = Hold::on(ns.api::<Deployment>(), "slow").await;
    api.delete("slow", &DeleteParams::default()).await.unwrap();
    let deployments = ns.api::<Deployment>();
    eventually("the teardown waiting on the held Deployment", WAIT, || async {
        let d = deployments.get("slow").await.map_err(|e| e.to_string())?;
        let gs = api.get("slow").await.map_err(|e| e.to_string())?;
        let terminating = gs.status.as_ref().and_then(|s| s.phase) == Some(Phase::Terminating);
        if d.metadata.deletion_timestamp.is_some() && terminating { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;
    // The server's pods are gone already; the Deployment is not. Whatever
    // the policy, the claim is not touched while the teardown waits.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (_, claim, uid, dir, world) = &worlds[1];
    assert_kept(&ns, claim, uid, dir, world).await;
    set_reclaim(&api, "slow", "Retain").await;
    hold.release().await;
    gone(&api, "slow").await;
    assert_kept(&ns, claim, uid, dir, world).await;

    // The down one: deleted while no controller runs.
    ctl.stop().await;
    api.delete("down", &DeleteParams::default()).await.unwrap();
    set_reclaim(&api, "down", "Retain").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    gone(&api, "down").await;
    let (_, claim, uid, dir, world) = &worlds[0];
    let kept = assert_kept(&ns, claim, uid, dir, world).await;
    assert!(kept.owner_references().is_empty(), "released");
    ctl.stop().await;
}

/// Retain → Delete during deletion: the GameServer is being deleted and its
/// policy is Delete by the time its teardown decides, so the world goes. This
/// is the documented rule (the policy as it is then), not an accident.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_policy_changed_to_delete_during_deletion_erases_the_world() {
    ensure_crd().await;
    let ns = TestNamespace::new("safe-to-delete").await;
    let api = ns.api::<GameServer>();
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    api.create(&PostParams::default(), &game_server("doomed", spec("Retain"))).await.unwrap();
    wait_ready(&api, "doomed", WAIT).await;
    let dir = volume_dir(&ns, "doomed-data").await;
    write_world(&dir);
    ctl.stop().await;

    api.delete("doomed", &DeleteParams::default()).await.unwrap();
    set_reclaim(&api, "doomed", "Delete").await;
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    gone(&api, "doomed").await;
    assert_erased(&ns, "doomed-data", &dir).await;
    ctl.stop().await;
}

/// A GameServer of another name cannot take or delete a claim that is not its
/// own: not another server's retained world, not a claim of its volume's name
/// that belongs to someone else, whatever its policy.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_gameserver_cannot_take_or_delete_a_claim_that_is_not_its_own() {
    ensure_crd().await;
    let ns = TestNamespace::new("safe-other").await;
    let api = ns.api::<GameServer>();
    let claims = ns.api::<PersistentVolumeClaim>();
    let ctl = RunningController::start(&ns, ns.client.clone(), ns.client.clone());
    api.create(&PostParams::default(), &game_server("world", spec("Retain"))).await.unwrap();
    wait_ready(&api, "world", WAIT).await;
    let uid = claims.get("world-data").await.unwrap().uid().unwrap();
    let dir = volume_dir(&ns, "world-data").await;
    let world = write_world(&dir);
    api.delete("world", &DeleteParams::default()).await.unwrap();
    gone(&api, "world").await;

    // A claim named as "rogue"'s volume would be, but world's (its labels say
    // so), as an operator's copy of a world might be.
    let copy: PersistentVolumeClaim = serde_json::from_value(json!({
        "metadata": { "name": "rogue-data", "labels": { plan::LABEL_GAMESERVER: "world", "app.kubernetes.io/managed-by": "mettaton" } },
        "spec": { "accessModes": ["ReadWriteOnce"], "resources": { "requests": { "storage": "1Gi" } } }
    }))
    .unwrap();
    let copy_uid = claims.create(&PostParams::default(), &copy).await.unwrap().uid().unwrap();
    let copy_dir = volume_dir(&ns, "rogue-data").await;
    let copy_world = write_world(&copy_dir);

    for name in ["rogue", "other"] {
        api.create(&PostParams::default(), &game_server(name, spec("Delete"))).await.unwrap();
    }
    // "other" runs on a volume of its own; "rogue" is refused the claim.
    wait_ready(&api, "other", WAIT).await;
    eventually("rogue refused the claim that is not its own", WAIT, || async {
        let reasons = event_reasons(&ns, "rogue").await;
        if reasons.iter().any(|r| r == "ApplyFailed") { Ok(()) } else { Err(reasons) }
    })
    .await;
    // Its status says so: Failed, Degraded with the backend's refusal.
    eventually("rogue's status tells why it cannot run", WAIT, || async {
        let status = api.get("rogue").await.map_err(|e| e.to_string())?.status.unwrap_or_default();
        let degraded = status.conditions.iter().find(|c| c.type_ == conditions::DEGRADED);
        match degraded {
            Some(c)
                if status.phase == Some(Phase::Failed)
                    && c.status == "True"
                    && c.reason == "BackendRefused"
                    && c.message.contains("rogue-data") =>
            {
                Ok(())
            }
            _ => Err(format!("{status:?}")),
        }
    })
    .await;
    let rogue_copy = assert_kept(&ns, "rogue-data", &copy_uid, &copy_dir, &copy_world).await;
    assert!(rogue_copy.owner_references().is_empty(), "not taken over");
    assert_eq!(rogue_copy.labels().get(plan::LABEL_GAMESERVER).map(String::as_str), Some("world"));

    for name in ["rogue", "other"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["rogue", "other"] {
        gone(&api, name).await;
    }
    assert!(claims.get_opt("other-data").await.unwrap().is_none_or(|c| c.metadata.deletion_timestamp.is_some()));
    assert_kept(&ns, "rogue-data", &copy_uid, &copy_dir, &copy_world).await;
    assert_kept(&ns, "world-data", &uid, &dir, &world).await;
    ctl.stop().await;
}

// ---------------------------------------------------------------------------
// Docker Swarm.

fn game_spec(reclaim: &str) -> Value {
    json!({
        "image": "127.0.0.1:5999/mettaton-testgame:1",
        "env": [{ "name": "GAME_NAME", "value": "safe" }],
        "ports": [{ "name": "game", "containerPort": 7777 }],
        "storage": { "size": "1Gi", "reclaimPolicy": reclaim },
        "shutdown": { "gracePeriodSeconds": 2 }
    })
}

fn swarm_volume(namespace: &str, name: &str, spec: &Value) -> String {
    swarm::volume_name(&plan::plan_spec(name, namespace, &serde_json::from_value(spec.clone()).unwrap()))
}

/// The directory of a swarm volume on this machine, if the volume exists.
async fn swarm_volume_dir(docker: &Docker, volume: &str) -> Option<PathBuf> {
    docker.inspect_volume(volume).await.ok().map(|v| PathBuf::from(v.mountpoint))
}

/// Removes, on drop, whatever a swarm test left in its namespace: services
/// and the volumes it retained on purpose.
struct SwarmLeftovers(String);

impl Drop for SwarmLeftovers {
    fn drop(&mut self) {
        remove_swarm_leftovers(&self.0);
    }
}

/// The facade: shutdown keeps a retained volume with its data, a server of
/// the same name spawned again takes it up, and shutdown with Delete erases
/// it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn facade_shutdown_keeps_a_retained_volume_and_erases_a_deleted_one() {
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().subsec_nanos();
    let namespace = format!("safe-{:x}", (nanos ^ std::process::id()) % 0xffffff);
    let _leftovers = SwarmLeftovers(namespace.clone());
    let state = std::env::temp_dir().join(format!("mettaton-safe-{namespace}.json"));
    let mut facade = Mettaton::new(Daemon::from_env().unwrap(), &state);
    facade.connect().await.expect("connects to the swarm manager");
    let docker = docker();
    let manifest = |reclaim: &str| -> GameServer {
        serde_json::from_value(json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": "keep", "namespace": namespace }, "spec": game_spec(reclaim)
        }))
        .unwrap()
    };
    let volume = swarm_volume(&namespace, "keep", &game_spec("Retain"));

    let server = facade.spawn(&manifest("Retain")).await.expect("spawns");
    let dir = swarm_volume_dir(&docker, &volume).await.expect("the volume exists");
    let inode = std::fs::metadata(&dir).unwrap().ino();
    let world = write_world(&dir);
    facade.shutdown(&server.id).await.expect("shuts down");
    assert_eq!(read_world(&dir).as_deref(), Some(world.as_str()), "Retain: the volume and its world are kept");

    // Spawned again: the same volume, the same world; Delete now erases it.
    let server = facade.spawn(&manifest("Delete")).await.expect("spawns again");
    assert_eq!(std::fs::metadata(&dir).map(|m| m.ino()).ok(), Some(inode), "the same volume");
    assert_eq!(read_world(&dir).as_deref(), Some(world.as_str()));
    facade.shutdown(&server.id).await.expect("shuts down");
    assert!(swarm_volume_dir(&docker, &volume).await.is_none(), "Delete: the volume is removed");
    assert!(!dir.exists(), "and its world with it");
    let _ = std::fs::remove_file(&state);
}

/// The controller on the swarm backend: deleting a GameServer keeps its
/// retained volume and erases a deleted one; and Delete → Retain while the
/// daemon is unreachable (the deletion waits, ShutdownFailed) keeps it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_controller_deletion_honours_the_policy_also_one_changed_while_the_daemon_is_away() {
    ensure_crd().await;
    let ns = TestNamespace::new("safe-swarm").await;
    let _leftovers = SwarmLeftovers(ns.name.clone());
    let proxy = Proxy::start_to(Upstream::Unix(docker_socket())).await;
    let daemon = Daemon::Tcp { url: format!("tcp://127.0.0.1:{}", proxy.port), tls: None };
    let orchestrator = SwarmOrchestrator::connect(&daemon)
        .await
        .expect("the swarm through the proxy")
        .with_poll(Duration::from_secs(1));
    let (stop, stopped) = oneshot::channel::<()>();
    let mut ctl = AbortOnDrop(Some(tokio::spawn(controller::run(
        ns.client.clone(),
        orchestrator,
        Some(ns.name.clone()),
        async move {
            let _ = stopped.await;
        },
    ))));
    let api = ns.api::<GameServer>();
    let docker = docker();
    let mut worlds = Vec::new();
    for (name, reclaim) in [("kept", "Retain"), ("erased", "Delete"), ("switched", "Delete")] {
        api.create(&PostParams::default(), &game_server(name, game_spec(reclaim))).await.unwrap();
    }
    for name in ["kept", "erased", "switched"] {
        eventually(&format!("{name} running on the swarm"), WAIT, || async {
            let gs = api.get(name).await.map_err(|e| e.to_string())?;
            let ready = gs
                .status
                .as_ref()
                .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == conditions::READY && c.status == "True"));
            if ready { Ok(()) } else { Err(format!("{:?}", gs.status)) }
        })
        .await;
        let volume = swarm_volume(&ns.name, name, &game_spec("Retain"));
        let dir = swarm_volume_dir(&docker, &volume).await.expect("the volume exists");
        let world = write_world(&dir);
        worlds.push((volume, dir, world));
    }

    for name in ["kept", "erased"] {
        api.delete(name, &DeleteParams::default()).await.unwrap();
    }
    for name in ["kept", "erased"] {
        gone(&api, name).await;
    }
    let (volume, dir, world) = &worlds[0];
    assert!(swarm_volume_dir(&docker, volume).await.is_some(), "Retain: {volume} kept");
    assert_eq!(read_world(dir).as_deref(), Some(world.as_str()));
    let (volume, dir, _) = &worlds[1];
    eventually("the Delete volume removed", WAIT, || async {
        if swarm_volume_dir(&docker, volume).await.is_none() && !dir.exists() { Ok(()) } else { Err(volume.clone()) }
    })
    .await;

    // The daemon becomes unreachable; the deletion waits; the policy changes.
    proxy.set_up(false);
    api.delete("switched", &DeleteParams::default()).await.unwrap();
    eventually("ShutdownFailed while the daemon is unreachable", WAIT, || async {
        let gs = api.get("switched").await.map_err(|e| e.to_string())?;
        let failed = gs
            .status
            .as_ref()
            .is_some_and(|s| s.conditions.iter().any(|c| c.type_ == conditions::SHUTDOWN_FAILED && c.status == "True"));
        if failed { Ok(()) } else { Err(format!("{:?}", gs.status)) }
    })
    .await;
    set_reclaim(&api, "switched", "Retain").await;
    proxy.set_up(true);
    eventually("switched deleted once the daemon is back", AFTER_BACKOFF, || async {
        match api.get_opt("switched").await {
            Ok(None) => Ok(()),
            other => Err(format!("{:?}", other.map(|g| g.map(|g| g.status)))),
        }
    })
    .await;
    let (volume, dir, world) = &worlds[2];
    assert!(swarm_volume_dir(&docker, volume).await.is_some(), "Delete → Retain: {volume} kept");
    assert_eq!(read_world(dir).as_deref(), Some(world.as_str()));

    let _ = stop.send(());
    tokio::time::timeout(Duration::from_secs(30), ctl.0.take().unwrap()).await.unwrap().unwrap();
}

/// A controller task that ends with the test, also a failed one (see
/// RunningController's Drop).
struct AbortOnDrop(Option<tokio::task::JoinHandle<()>>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        if let Some(task) = &self.0 {
            task.abort();
        }
    }
}
