//! Issue 7, item 1 on the swarm backend: `mettaton controller --backend
//! swarm` killed with SIGKILL at random moments while a fleet of GameServers
//! is created, changed (image, environment, config file, state) and deleted,
//! on a private Docker daemon with a one-node swarm (tests/common/dockerd.rs).
//! After each restart everything must converge: one service per live
//! GameServer, labelled with its current uid and running its current spec (one
//! running container, none when stopped); no service, config or volume of a
//! deleted server but the volumes of Retain servers, which must be the very
//! volumes they had; exactly one config per config file (older versions
//! removed); no GameServer left with its finalizer; statuses current.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use base64::Engine;
use bollard::Docker;
use bollard::query_parameters::{
    ListConfigsOptionsBuilder, ListContainersOptionsBuilder, ListServicesOptionsBuilder, ListVolumesOptionsBuilder,
};
use kube::api::ListParams;
use mettaton::orchestrator::swarm::builders::{LABEL_MANAGED, LABEL_NAMESPACE, LABEL_UID};
use mettaton::plan::LABEL_GAMESERVER;

use crate::dockerd::PrivateDockerd;
use crate::fleet::{Fleet, Storage, check_gameservers, converge};
use crate::process::Controller;
use crate::setup::{Profile, Rng, daemon_dir, figure, secs, spread};
use crate::support::{TestNamespace, ensure_crd};

const TEST: &str = "controller kill -9 (swarm)";
const IMAGES: [&str; 2] = ["127.0.0.1:5999/mettaton-testgame:1", "127.0.0.1:5999/mettaton-testgame:2"];

/// What the swarm holds, checked against the model; returns the volumes seen
/// (server name → creation time, which identifies a Docker volume).
async fn check_swarm(fleet: &Fleet, docker: &Docker) -> Result<BTreeMap<String, String>, Vec<String>> {
    let mut problems = Vec::new();
    let gameservers = fleet.api.list(&ListParams::default()).await.map_err(|e| vec![e.to_string()])?.items;
    check_gameservers(fleet, &gameservers, &mut problems);

    let ours = HashMap::from([("label", vec![format!("{LABEL_NAMESPACE}={}", fleet.namespace)])]);
    let read = async {
        let services = docker.list_services(Some(ListServicesOptionsBuilder::default().filters(&ours).build())).await?;
        let configs = docker.list_configs(Some(ListConfigsOptionsBuilder::default().filters(&ours).build())).await?;
        let volumes = docker.list_volumes(Some(ListVolumesOptionsBuilder::default().filters(&ours).build())).await?;
        let running = HashMap::from([
            ("label", vec![format!("{LABEL_NAMESPACE}={}", fleet.namespace), format!("{LABEL_MANAGED}=true")]),
            ("status", vec!["running".to_string()]),
        ]);
        let containers =
            docker.list_containers(Some(ListContainersOptionsBuilder::default().filters(&running).build())).await?;
        Ok::<_, bollard::errors::Error>((services, configs, volumes.volumes.unwrap_or_default(), containers))
    };
    let (services, configs, volumes, containers) = read.await.map_err(|e| vec![format!("reading the swarm: {e}")])?;
    let live = |name: &str| fleet.servers.get(name).filter(|s| s.live);
    let label = |labels: Option<&HashMap<String, String>>, key: &str| labels.and_then(|l| l.get(key)).cloned();

    let mut services_of: BTreeMap<String, usize> = BTreeMap::new();
    for service in &services {
        let spec = service.spec.clone().unwrap_or_default();
        let name = label(spec.labels.as_ref(), LABEL_GAMESERVER).unwrap_or_default();
        *services_of.entry(name.clone()).or_default() += 1;
        let Some(s) = live(&name) else {
            problems.push(format!("service {:?} of deleted gameserver {name} (orphan)", spec.name));
            continue;
        };
        if label(spec.labels.as_ref(), LABEL_UID) != s.uid {
            problems.push(format!(
                "service of {name} is labelled uid {:?}, the GameServer is {:?}",
                label(spec.labels.as_ref(), LABEL_UID),
                s.uid
            ));
        }
        let replicas = spec.mode.and_then(|m| m.replicated).and_then(|r| r.replicas);
        let container = spec.task_template.and_then(|t| t.container_spec).unwrap_or_default();
        let rev = format!("REV={}", s.rev);
        let has_rev = container.env.iter().flatten().any(|e| *e == rev);
        if replicas != Some(if s.stopped { 0 } else { 1 }) || container.image.as_deref() != Some(&s.image) || !has_rev {
            problems.push(format!(
                "service of {name}: replicas {replicas:?} image {:?} env {:?}, want stopped={} {} {rev}",
                container.image, container.env, s.stopped, s.image
            ));
        }
    }
    let mut running_of: BTreeMap<String, usize> = BTreeMap::new();
    for c in &containers {
        let name = label(c.labels.as_ref(), LABEL_GAMESERVER).unwrap_or_default();
        *running_of.entry(name).or_default() += 1;
    }
    for (name, n) in &running_of {
        match live(name) {
            None => problems.push(format!("{n} running container(s) of deleted gameserver {name}")),
            Some(s) if s.stopped => problems.push(format!("{n} running container(s) of stopped gameserver {name}")),
            Some(_) if *n != 1 => problems.push(format!("{n} running containers of gameserver {name}")),
            Some(_) => {}
        }
    }
    for s in fleet.live() {
        if services_of.get(&s.name) != Some(&1) {
            problems.push(format!("gameserver {} has {:?} services", s.name, services_of.get(&s.name)));
        }
        if !s.stopped && !running_of.contains_key(&s.name) {
            problems.push(format!("running gameserver {} has no running container", s.name));
        }
    }

    // Config files: one config per live server with a file, holding its
    // current content; none of earlier versions or of deleted servers.
    let mut configs_of: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for config in &configs {
        let spec = config.spec.clone().unwrap_or_default();
        let name = label(spec.labels.as_ref(), LABEL_GAMESERVER).unwrap_or_default();
        let data = spec.data.as_deref().and_then(|d| base64::engine::general_purpose::STANDARD.decode(d).ok());
        configs_of.entry(name).or_default().push(String::from_utf8_lossy(&data.unwrap_or_default()).into_owned());
    }
    for (name, contents) in &configs_of {
        match live(name) {
            Some(s) if s.config && *contents == vec![s.config_content()] => {}
            Some(s) if s.config => {
                problems.push(format!("configs of {name}: {contents:?}, want [{:?}]", s.config_content()))
            }
            _ => problems.push(format!("{} config(s) of {name}, which has no config file now", contents.len())),
        }
    }
    for s in fleet.live().filter(|s| s.config) {
        if !configs_of.contains_key(&s.name) {
            problems.push(format!("the config of {} is missing", s.name));
        }
    }

    // Volumes, as for PVCs: a Retain server's is kept (the same volume) after
    // its deletion; a Delete server's goes with it.
    let mut seen = BTreeMap::new();
    let mut volume_of: BTreeMap<String, String> = BTreeMap::new();
    for v in &volumes {
        let name = v.labels.get(LABEL_GAMESERVER).cloned().unwrap_or_default();
        if volume_of.insert(name.clone(), v.created_at.clone().unwrap_or_default()).is_some() {
            problems.push(format!("two volumes of {name}"));
        }
    }
    for (name, created) in &volume_of {
        let Some(s) = fleet.servers.get(name) else {
            problems.push(format!("volume of {name}, which is no server of the fleet"));
            continue;
        };
        seen.insert(name.clone(), created.clone());
        match (s.live, s.storage) {
            (_, Storage::None) => problems.push(format!("volume of {name}, which has no storage")),
            (false, Storage::Delete) => {
                problems.push(format!("volume of deleted {name} (reclaim Delete) is still there"))
            }
            _ => {}
        }
        if s.storage == Storage::Retain && s.volume.as_ref().is_some_and(|was| was != created) {
            problems.push(format!("the volume of {name} was replaced: created {created}, first {:?}", s.volume));
        }
    }
    for s in fleet.servers.values().filter(|s| !volume_of.contains_key(&s.name)) {
        if s.live && s.storage != Storage::None {
            problems.push(format!("the volume of live {} is missing", s.name));
        }
        if !s.live && s.storage == Storage::Retain && s.volume.is_some() {
            problems.push(format!("the volume of deleted {} (reclaim Retain) is LOST", s.name));
        }
    }
    if problems.is_empty() { Ok(seen) } else { Err(problems) }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
#[ignore = "disrupts shared infrastructure: run by ./run-tests on its own (see main.rs)"]
async fn a_swarm_controller_killed_mid_flight_leaves_no_duplicate_or_orphan() {
    let profile = Profile::get();
    let mut rng = Rng::seeded(TEST);
    ensure_crd().await;
    let ns = TestNamespace::new("rel-swarm").await;
    let dir = daemon_dir(&ns.name);
    let dockerd = PrivateDockerd::start_swarm(&dir, "engine").await;
    let docker = dockerd.docker();
    // A second tag of the test image, so that image changes roll the service.
    let tagged = dockerd.cli().args(["tag", IMAGES[0], IMAGES[1]]).status().unwrap();
    assert!(tagged.success());
    let mut fleet = Fleet::new(ns.client.clone(), &ns.name, profile.swarm_servers, &IMAGES);
    let mut controller = Controller::start(&ns.name, &["--backend", "swarm", "--docker-host", &dockerd.host()]);
    let bound = profile.bound(Duration::from_secs(240));

    let mut rounds = vec!["create all"];
    rounds.extend((0..profile.swarm_mixed_rounds).map(|_| "mixed"));
    rounds.push("delete all");
    let mut recoveries = Vec::new();
    for (i, label) in rounds.iter().enumerate() {
        let ops = match *label {
            "create all" => fleet.create_all(&mut rng),
            "mixed" => fleet.mixed(&mut rng),
            _ => fleet.delete_all(&mut rng),
        };
        let planned = ops.len();
        // The swarm converges in seconds: kill while it does.
        let kill_at = rng.duration(Duration::from_millis(200), Duration::from_secs(4));
        let down_for = rng.duration(Duration::ZERO, Duration::from_secs(3));
        let began = Instant::now();
        let sending = async {
            let done = fleet.run(ops, 4, Duration::from_secs(60)).await;
            (done, began.elapsed())
        };
        let killing = async {
            controller.kill_and_restart(kill_at, down_for).await;
            Instant::now()
        };
        let ((done, sent_in), restarted) = futures::join!(sending, killing);
        let (recovery, volumes) = converge(
            &format!("round {i} ({label})"),
            restarted,
            bound,
            || format!("{}\n{}", controller.tail(), fleet.summary()),
            || check_swarm(&fleet, &docker),
        )
        .await;
        controller.assert_running();
        fleet.settle(&volumes);
        recoveries.push(recovery);
        figure(
            TEST,
            &format!(
                "round {i} ({label}): {done}/{planned} operations sent in {}; SIGKILL at {} (down {}); \
                 converged {} after the restart",
                secs(sent_in),
                secs(kill_at),
                secs(down_for),
                secs(recovery)
            ),
        );
    }
    assert!(!controller.log().contains("panicked"), "the controller panicked:\n{}", controller.tail());
    for kind in ["create", "image", "env", "state", "delete"] {
        assert!(fleet.done.get(kind).is_some_and(|n| *n > 0), "no {kind} operation ran: {:?}", fleet.done);
    }
    figure(
        TEST,
        &format!(
            "{} servers, {} rounds, {} kills; restart to converged: {}; {}",
            profile.swarm_servers,
            rounds.len(),
            controller.kills,
            spread(&recoveries),
            fleet.summary()
        ),
    );
    controller.stop();
    drop(dockerd);
    let _ = std::fs::remove_dir_all(&dir);
}
