//! A fleet of GameServers a test drives through the API server, and what it
//! expects of them: the model (which exist, with which spec, which volumes must
//! be kept), the operations (create, update image/env/config/state, delete,
//! create again under the same name), run in parallel and retried across API
//! server outages, and the invariants of a converged Kubernetes backend.
//! The swarm test checks its own backend against the same model.

use std::collections::{BTreeMap, BTreeSet};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Client, ResourceExt};
use mettaton::api::{FINALIZER, GameServer, Phase, conditions};
use mettaton::orchestrator::kubernetes::LABEL_RETAINED;
use mettaton::plan;
use serde_json::json;

use crate::setup::Rng;

/// What a server keeps its data in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Storage {
    None,
    Retain,
    Delete,
}

/// One name of the fleet, through all its incarnations.
#[derive(Clone, Debug)]
pub struct Server {
    pub name: String,
    pub storage: Storage,
    /// Has an inline config file (a ConfigMap, a swarm config).
    pub config: bool,
    /// The GameServer exists (was created and not deleted since).
    pub live: bool,
    /// The uid of the current incarnation.
    pub uid: Option<String>,
    pub image: String,
    /// The value of its `REV` environment variable.
    pub rev: u32,
    /// The version of its config file's content.
    pub motd: u32,
    pub stopped: bool,
    /// Whether the last convergence check saw it as the model says (only
    /// settled servers are deleted or created again, so that a Retain volume
    /// was seen before its server goes).
    pub settled: bool,
    /// The identity of its data volume when first seen (a PVC's uid, a
    /// Docker volume's creation time): a Retain volume must keep it forever.
    pub volume: Option<String>,
    pub incarnations: u32,
}

impl Server {
    pub fn config_content(&self) -> String {
        format!("motd {}\n", self.motd)
    }

    /// The GameServer's spec as the model has it.
    pub fn spec(&self) -> serde_json::Value {
        let mut spec = json!({
            "image": self.image,
            "state": if self.stopped { "Stopped" } else { "Running" },
            "env": [{ "name": "REV", "value": self.rev.to_string() }, { "name": "GAME_NAME", "value": self.name }],
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "health": READINESS.clone(),
            "shutdown": { "gracePeriodSeconds": 2 }
        });
        match self.storage {
            Storage::None => {}
            Storage::Retain => spec["storage"] = json!({ "size": "1Gi", "reclaimPolicy": "Retain" }),
            Storage::Delete => spec["storage"] = json!({ "size": "1Gi", "reclaimPolicy": "Delete" }),
        }
        if self.config {
            spec["config"] = json!([{ "path": "/etc/game/motd.txt", "content": self.config_content() }]);
        }
        spec
    }
}

/// The readiness check of the fleet's servers: a command in the container (the
/// test game's `-cat`), which swarm runs as the container's healthcheck. Not
/// the default TCP check: on swarm mettaton runs that itself, from this
/// process, at the address the task publishes, and the private daemons here
/// publish inside a network namespace of their own, which this process does
/// not reach (the tests reach it by entering the namespace).
pub static READINESS: std::sync::LazyLock<serde_json::Value> = std::sync::LazyLock::new(
    || json!({ "probe": { "exec": ["/testgame", "-cat", "/etc/passwd"] }, "periodSeconds": 1 }),
);

/// An operation on one server of the fleet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Op {
    Create(String),
    Image(String),
    Rev(String),
    Motd(String),
    Toggle(String),
    Delete(String),
}

impl Op {
    pub fn name(&self) -> &str {
        match self {
            Op::Create(n) | Op::Image(n) | Op::Rev(n) | Op::Motd(n) | Op::Toggle(n) | Op::Delete(n) => n,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            Op::Create(_) => "create",
            Op::Image(_) => "image",
            Op::Rev(_) => "env",
            Op::Motd(_) => "config",
            Op::Toggle(_) => "state",
            Op::Delete(_) => "delete",
        }
    }
}

/// The fleet: the model of every server, and the API to drive them.
pub struct Fleet {
    pub namespace: String,
    pub api: Api<GameServer>,
    pub client: Client,
    pub servers: BTreeMap<String, Server>,
    images: Vec<String>,
    /// Operations done, by kind, and creations skipped because the previous
    /// incarnation was still being deleted.
    pub done: BTreeMap<&'static str, usize>,
}

impl Fleet {
    /// `size` servers named `<kind>-NNN` (kind: `r` Retain, `d` Delete, `n`
    /// no storage); every fourth has a config file. None exists yet.
    pub fn new(client: Client, namespace: &str, size: usize, images: &[&str]) -> Fleet {
        let servers = (0..size)
            .map(|i| {
                let storage = [Storage::Retain, Storage::Delete, Storage::None][i % 3];
                let kind = match storage {
                    Storage::Retain => "r",
                    Storage::Delete => "d",
                    Storage::None => "n",
                };
                let name = format!("{kind}-{i:03}");
                let server = Server {
                    name: name.clone(),
                    storage,
                    config: i % 4 == 0,
                    live: false,
                    uid: None,
                    image: images[0].to_string(),
                    rev: 0,
                    motd: 0,
                    stopped: false,
                    settled: true,
                    volume: None,
                    incarnations: 0,
                };
                (name, server)
            })
            .collect();
        Fleet {
            namespace: namespace.to_string(),
            api: Api::namespaced(client.clone(), namespace),
            client,
            servers,
            images: images.iter().map(|s| s.to_string()).collect(),
            done: BTreeMap::new(),
        }
    }

    pub fn live(&self) -> impl Iterator<Item = &Server> {
        self.servers.values().filter(|s| s.live)
    }

    /// Creating every server.
    pub fn create_all(&self, rng: &mut Rng) -> Vec<Op> {
        let mut ops: Vec<Op> = self.servers.values().filter(|s| !s.live).map(|s| Op::Create(s.name.clone())).collect();
        rng.shuffle(&mut ops);
        ops
    }

    /// Deleting every server.
    pub fn delete_all(&self, rng: &mut Rng) -> Vec<Op> {
        let mut ops: Vec<Op> = self.live().map(|s| Op::Delete(s.name.clone())).collect();
        rng.shuffle(&mut ops);
        ops
    }

    /// A random mix over the settled servers: about 40 % of the live ones
    /// get a spec change (image, environment, config file if they have one,
    /// state), 15 % are deleted, and 45 % of the deleted ones are created
    /// again. Every kind that some settled server allows is in the mix at
    /// least once (given to a server the dice left alone), so a run's
    /// coverage does not depend on the seed.
    pub fn mixed(&self, rng: &mut Rng) -> Vec<Op> {
        let mut ops = Vec::new();
        for s in self.servers.values().filter(|s| s.settled) {
            let name = s.name.clone();
            let roll = rng.below(100);
            let op = if s.live && s.config {
                match roll {
                    0..10 => Some(Op::Image(name)),
                    10..18 => Some(Op::Rev(name)),
                    18..30 => Some(Op::Motd(name)),
                    30..40 => Some(Op::Toggle(name)),
                    40..55 => Some(Op::Delete(name)),
                    _ => None,
                }
            } else if s.live {
                match roll {
                    0..12 => Some(Op::Image(name)),
                    12..30 => Some(Op::Rev(name)),
                    30..40 => Some(Op::Toggle(name)),
                    40..55 => Some(Op::Delete(name)),
                    _ => None,
                }
            } else {
                (roll < 45).then_some(Op::Create(name))
            };
            ops.extend(op);
        }
        self.cover_every_kind(&mut ops);
        rng.shuffle(&mut ops);
        ops
    }

    /// Adds, for each kind missing from `ops`, one operation of that kind on
    /// a settled server that allows it: one that has none yet, else one
    /// whose operation is of a kind that `ops` holds more than once.
    fn cover_every_kind(&self, ops: &mut Vec<Op>) {
        type Make = fn(String) -> Op;
        type Allows = fn(&Server) -> bool;
        let kinds: [(Make, Allows); 6] = [
            (Op::Image, |s| s.live),
            (Op::Rev, |s| s.live),
            (Op::Motd, |s| s.live && s.config),
            (Op::Toggle, |s| s.live),
            (Op::Delete, |s| s.live),
            (Op::Create, |s| !s.live),
        ];
        for (make, allows) in kinds {
            let kind = make(String::new()).kind();
            if ops.iter().any(|op| op.kind() == kind) {
                continue;
            }
            let allowed = |s: &&Server| s.settled && allows(s);
            if let Some(s) = self.servers.values().filter(allowed).find(|s| !ops.iter().any(|op| op.name() == s.name)) {
                ops.push(make(s.name.clone()));
                continue;
            }
            let count = |kind: &str| ops.iter().filter(|op| op.kind() == kind).count();
            let spare = ops
                .iter()
                .position(|op| count(op.kind()) > 1 && self.servers.get(op.name()).is_some_and(|s| allowed(&s)));
            if let Some(i) = spare {
                ops[i] = make(ops[i].name().to_string());
            }
        }
    }

    /// Changes the model as `op` says and returns the server as it should be.
    fn intend(&mut self, op: &Op) -> Server {
        let images = self.images.clone();
        let s = self.servers.get_mut(op.name()).unwrap();
        s.settled = false;
        match op {
            Op::Create(_) => {
                // A new incarnation starts from the base spec.
                s.image = images[0].clone();
                s.rev = 0;
                s.motd = 0;
                s.stopped = false;
            }
            Op::Image(_) => {
                let next = images.iter().position(|i| *i == s.image).map_or(0, |p| (p + 1) % images.len());
                s.image = images[next].clone();
            }
            Op::Rev(_) => s.rev += 1,
            Op::Motd(_) => s.motd += 1,
            Op::Toggle(_) => s.stopped = !s.stopped,
            Op::Delete(_) => {}
        }
        s.clone()
    }

    /// Runs `ops` with `parallelism` requests at a time, each retried while
    /// the API server does not answer (up to `patience`), and keeps the model
    /// in step. Returns how many were done.
    pub async fn run(&mut self, ops: Vec<Op>, parallelism: usize, patience: Duration) -> usize {
        self.run_paced(ops, parallelism, Duration::ZERO, patience).await
    }

    /// [`run`](Self::run), starting one operation every `pace` at most: a
    /// load spread over time rather than a burst.
    pub async fn run_paced(&mut self, ops: Vec<Op>, parallelism: usize, pace: Duration, patience: Duration) -> usize {
        let planned: Vec<(Op, Server)> = ops.into_iter().map(|op| (op.clone(), self.intend(&op))).collect();
        let api = self.api.clone();
        let results: Vec<(Op, Outcome)> = futures::stream::iter(planned)
            .then(|planned| async move {
                tokio::time::sleep(pace).await;
                planned
            })
            .map(|(op, server)| {
                let api = api.clone();
                async move {
                    let outcome = execute(&api, &op, &server, patience).await;
                    (op, outcome)
                }
            })
            .buffer_unordered(parallelism)
            .collect()
            .await;
        let mut count = 0;
        for (op, outcome) in results {
            let s = self.servers.get_mut(op.name()).unwrap();
            match outcome {
                Outcome::Created(uid) => {
                    s.live = true;
                    s.uid = Some(uid);
                    s.incarnations += 1;
                }
                Outcome::Deleted => s.live = false,
                Outcome::Updated => {}
                Outcome::StillTerminating => {
                    *self.done.entry("create skipped (old one still terminating)").or_default() += 1;
                    continue;
                }
            }
            *self.done.entry(op.kind()).or_default() += 1;
            count += 1;
        }
        count
    }

    /// Marks every server as seen converged, and notes the identity of its
    /// volume (from `volumes`: name → identity) the first time.
    pub fn settle(&mut self, volumes: &BTreeMap<String, String>) {
        for s in self.servers.values_mut() {
            s.settled = true;
            if s.live && s.storage != Storage::None {
                match s.storage {
                    // A new incarnation of a Delete server has a new volume.
                    Storage::Delete => s.volume = volumes.get(&s.name).cloned(),
                    _ => {
                        if s.volume.is_none() {
                            s.volume = volumes.get(&s.name).cloned();
                        }
                    }
                }
            }
        }
    }

    pub fn summary(&self) -> String {
        let live = self.live().count();
        let stopped = self.live().filter(|s| s.stopped).count();
        let kept = self.servers.values().filter(|s| !s.live && s.storage == Storage::Retain && s.volume.is_some());
        format!("{live} live ({stopped} stopped), {} deleted with a kept volume, ops {:?}", kept.count(), self.done)
    }
}

enum Outcome {
    Created(String),
    Updated,
    Deleted,
    /// The previous incarnation still holds the name (its teardown is not done).
    StillTerminating,
}

/// Whether an error may go away by itself (the API server restarting, etcd
/// away, a timeout), so that the request is worth sending again.
pub fn transient(e: &kube::Error) -> bool {
    match e {
        kube::Error::Api(s) => s.code >= 500 || s.code == 429 || s.code == 0,
        _ => true,
    }
}

fn code(e: &kube::Error) -> Option<u16> {
    match e {
        kube::Error::Api(s) => Some(s.code),
        _ => None,
    }
}

async fn execute(api: &Api<GameServer>, op: &Op, server: &Server, patience: Duration) -> Outcome {
    let deadline = Instant::now() + patience;
    let name = op.name();
    let mut attempts = 0;
    loop {
        attempts += 1;
        let result: Result<Outcome, kube::Error> = match op {
            Op::Create(_) => {
                let gs: GameServer = serde_json::from_value(json!({
                    "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
                    "metadata": { "name": name }, "spec": server.spec()
                }))
                .unwrap();
                match api.create(&PostParams::default(), &gs).await {
                    Ok(created) => Ok(Outcome::Created(created.uid().unwrap())),
                    Err(e) if code(&e) == Some(409) => match api.get_opt(name).await {
                        // An earlier attempt (whose answer was lost) made it:
                        // the old incarnation, deleted, would be terminating.
                        Ok(Some(existing)) if attempts > 1 && existing.metadata.deletion_timestamp.is_none() => {
                            Ok(Outcome::Created(existing.uid().unwrap()))
                        }
                        Ok(Some(_)) => Ok(Outcome::StillTerminating),
                        // Gone in between: try again.
                        Ok(None) => Err(e),
                        Err(e) => Err(e),
                    },
                    Err(e) => Err(e),
                }
            }
            Op::Delete(_) => match api.delete(name, &DeleteParams::default()).await {
                Ok(_) => Ok(Outcome::Deleted),
                Err(e) if code(&e) == Some(404) && attempts > 1 => Ok(Outcome::Deleted),
                Err(e) => Err(e),
            },
            _ => {
                let patch = json!({ "spec": server.spec() });
                api.patch(name, &PatchParams::default(), &Patch::Merge(&patch)).await.map(|_| Outcome::Updated)
            }
        };
        match result {
            Ok(outcome) => return outcome,
            Err(e) if transient(&e) && Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(e) => panic!("{} of {name} failed after {attempts} attempts: {e}", op.kind()),
        }
    }
}

/// How the Deployment differs from what the model asks of server `s`
/// (replicas, image, `REV`), `None` when it holds it.
fn deployment_drift(d: &Deployment, s: &Server) -> Option<String> {
    let spec = d.spec.clone().unwrap_or_default();
    let container = spec.template.spec.as_ref().and_then(|p| p.containers.first()).cloned().unwrap_or_default();
    let rev = container.env.iter().flatten().find(|e| e.name == "REV").and_then(|e| e.value.clone());
    let holds = spec.replicas == Some(if s.stopped { 0 } else { 1 })
        && container.image.as_deref() == Some(&s.image)
        && rev == Some(s.rev.to_string());
    (!holds).then(|| {
        format!(
            "deployment {}: replicas {:?} image {:?} REV {rev:?}, want stopped={} {} REV {}",
            s.name, spec.replicas, container.image, s.stopped, s.image, s.rev
        )
    })
}

/// Whether the ConfigMap holds server `s`'s config file as the model has it.
fn holds_config(cm: &ConfigMap, s: &Server) -> bool {
    cm.data.iter().flatten().any(|(_, v)| *v == s.config_content())
}

/// Whether the controller has written what the model asks: every live
/// server's Deployment, controlled by its current uid, with its image, `REV`
/// and replicas, and its ConfigMap with its content. Not whether the plane
/// has acted on it (pods, readiness, deletions): the controller's share of
/// a recovery, measured beside [`check_kubernetes`].
pub async fn check_applied(fleet: &Fleet) -> Result<(), Vec<String>> {
    let lp = ListParams::default();
    let deployments: Api<Deployment> = Api::namespaced(fleet.client.clone(), &fleet.namespace);
    let config_maps: Api<ConfigMap> = Api::namespaced(fleet.client.clone(), &fleet.namespace);
    let (deployments, config_maps) = futures::join!(deployments.list(&lp), config_maps.list(&lp));
    let (deployments, config_maps) = match (deployments, config_maps) {
        (Ok(d), Ok(c)) => (d.items, c.items),
        (Err(e), _) | (_, Err(e)) => return Err(vec![format!("listing: {e}")]),
    };
    let mut problems = Vec::new();
    for s in fleet.live() {
        let Some(d) = deployments.iter().find(|d| d.name_any() == s.name) else {
            problems.push(format!("deployment {} is missing", s.name));
            continue;
        };
        if owner_uid(&d.metadata) != s.uid {
            problems.push(format!("deployment {} is not owned by the current GameServer yet", s.name));
        }
        problems.extend(deployment_drift(d, s));
        if s.config {
            let name = plan::config_name(&s.name);
            if !config_maps.iter().find(|c| c.name_any() == name).is_some_and(|c| holds_config(c, s)) {
                problems.push(format!("configmap {name} does not hold the current content yet"));
            }
        }
    }
    if problems.is_empty() { Ok(()) } else { Err(problems) }
}

/// What a converged Kubernetes backend holds, checked against the model: the
/// problems found (empty when converged), and the volumes seen (name of the
/// server → uid of its PVC).
pub async fn check_kubernetes(fleet: &Fleet) -> Result<BTreeMap<String, String>, Vec<String>> {
    let ns = &fleet.namespace;
    let client = &fleet.client;
    let lp = ListParams::default();
    let read = async {
        let gameservers = fleet.api.list(&lp).await?.items;
        let deployments = Api::<Deployment>::namespaced(client.clone(), ns).list(&lp).await?.items;
        let services = Api::<Service>::namespaced(client.clone(), ns).list(&lp).await?.items;
        let config_maps = Api::<ConfigMap>::namespaced(client.clone(), ns).list(&lp).await?.items;
        let claims = Api::<PersistentVolumeClaim>::namespaced(client.clone(), ns).list(&lp).await?.items;
        let pods = Api::<Pod>::namespaced(client.clone(), ns).list(&lp.clone().labels(plan::LABEL_GAMESERVER)).await?;
        Ok::<_, kube::Error>((gameservers, deployments, services, config_maps, claims, pods.items))
    };
    let (gameservers, deployments, services, config_maps, claims, pods) =
        read.await.map_err(|e| vec![format!("listing: {e}")])?;
    let mut problems = Vec::new();
    let managed = |m: &ObjectMeta| {
        m.labels.as_ref().and_then(|l| l.get("app.kubernetes.io/managed-by")).is_some_and(|v| v == "mettaton")
    };

    check_gameservers(fleet, &gameservers, &mut problems);

    // The children: each live server's, owned by its current uid; nothing else.
    let live = |name: &str| fleet.servers.get(name).filter(|s| s.live);
    let mut seen: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for d in &deployments {
        let name = d.name_any();
        let server = live(&name);
        expect_child(&mut problems, "deployment", &name, &d.metadata, server);
        if !managed(&d.metadata) {
            problems.push(format!("deployment {name} is not labelled as mettaton's"));
        }
        if let Some(s) = server {
            problems.extend(deployment_drift(d, s));
        }
        seen.entry("deployment").or_default().insert(name);
    }
    for svc in &services {
        let name = svc.name_any();
        expect_child(&mut problems, "service", &name, &svc.metadata, live(&name));
        seen.entry("service").or_default().insert(name);
    }
    for cm in config_maps.iter().filter(|c| managed(&c.metadata)) {
        let name = cm.name_any();
        let server = fleet.live().find(|s| s.config && plan::config_name(&s.name) == name);
        expect_child(&mut problems, "configmap", &name, &cm.metadata, server);
        if let Some(s) = server
            && !holds_config(cm, s)
        {
            problems.push(format!("configmap {name} does not hold {:?}: {:?}", s.config_content(), cm.data));
        }
        seen.entry("configmap").or_default().insert(name);
    }
    for s in fleet.live() {
        for kind in ["deployment", "service"] {
            if !seen.get(kind).is_some_and(|n| n.contains(&s.name)) {
                problems.push(format!("{kind} of {} is missing", s.name));
            }
        }
        if s.config && !seen.get("configmap").is_some_and(|n| n.contains(&plan::config_name(&s.name))) {
            problems.push(format!("configmap of {} is missing", s.name));
        }
    }

    // Volumes: each live server's own; a Retain server's kept (the same PVC)
    // after deletion, released; a Delete server's gone with it.
    let mut volumes = BTreeMap::new();
    let claims: BTreeMap<String, &PersistentVolumeClaim> = claims.iter().map(|c| (c.name_any(), c)).collect();
    for s in fleet.servers.values() {
        let claim_name = plan::volume_name(&s.name);
        let claim = claims.get(&claim_name);
        if let Some(c) = claim {
            volumes.insert(s.name.clone(), c.uid().unwrap_or_default());
        }
        let retained_label = claim.and_then(|c| c.labels().get(LABEL_RETAINED).cloned());
        match (s.live, s.storage, claim) {
            (_, Storage::None, Some(_)) => problems.push(format!("pvc {claim_name}: {} has no storage", s.name)),
            (_, Storage::None, None) => {}
            (true, _, None) => problems.push(format!("pvc {claim_name} of live {} is missing", s.name)),
            (true, _, Some(c)) => {
                expect_child(&mut problems, "pvc", &claim_name, &c.metadata, Some(s));
                if retained_label.is_some() {
                    problems.push(format!("pvc {claim_name} of live {} is still labelled retained", s.name));
                }
            }
            (false, Storage::Delete, Some(c)) => problems.push(format!(
                "pvc {claim_name} of deleted {} (reclaim Delete) is still there (deleting: {})",
                s.name,
                c.metadata.deletion_timestamp.is_some()
            )),
            (false, Storage::Delete, None) => {}
            (false, Storage::Retain, None) if s.volume.is_some() => {
                problems.push(format!("pvc {claim_name} of deleted {} (reclaim Retain) is LOST", s.name))
            }
            (false, Storage::Retain, None) => {}
            (false, Storage::Retain, Some(c)) => {
                if c.owner_references().iter().any(|r| r.kind == "GameServer") {
                    problems.push(format!("retained pvc {claim_name} still has an owner: {:?}", c.owner_references()));
                }
                if retained_label.as_deref() != Some("true") {
                    problems.push(format!("retained pvc {claim_name} is not labelled {LABEL_RETAINED}=true"));
                }
                if c.metadata.deletion_timestamp.is_some() {
                    problems.push(format!("retained pvc {claim_name} is being deleted"));
                }
            }
        }
        if s.storage == Storage::Retain
            && let (Some(was), Some(c)) = (&s.volume, claim)
            && c.uid().as_ref() != Some(was)
        {
            problems.push(format!("pvc {claim_name} of {} was replaced: uid {:?}, first {was}", s.name, c.uid()));
        }
    }
    for name in claims.keys() {
        if !fleet.servers.values().any(|s| plan::volume_name(&s.name) == *name) {
            problems.push(format!("pvc {name} belongs to no server of the fleet"));
        }
    }

    // Pods: one ready pod per running server, none for stopped or deleted ones.
    let mut pods_of: BTreeMap<String, Vec<&Pod>> = BTreeMap::new();
    for p in &pods {
        let name = p.labels().get(plan::LABEL_GAMESERVER).cloned().unwrap_or_default();
        pods_of.entry(name).or_default().push(p);
    }
    for (name, pods) in &pods_of {
        match live(name) {
            None => problems.push(format!("{} pod(s) of deleted gameserver {name}", pods.len())),
            Some(s) if s.stopped => problems.push(format!("{} pod(s) of stopped gameserver {name}", pods.len())),
            Some(_) => {
                if pods.len() != 1 || pods[0].metadata.deletion_timestamp.is_some() {
                    problems.push(format!("gameserver {name} has {} pods (one terminating?)", pods.len()));
                }
            }
        }
    }
    for s in fleet.live().filter(|s| !s.stopped) {
        if !pods_of.contains_key(&s.name) {
            problems.push(format!("running gameserver {} has no pod", s.name));
        }
    }
    if problems.is_empty() { Ok(volumes) } else { Err(problems) }
}

/// The GameServers are exactly the live ones of the model, none stuck with
/// its finalizer, each with its current uid and a current status that says
/// what the model asked (Running and Ready, or Stopped).
pub fn check_gameservers(fleet: &Fleet, gameservers: &[GameServer], problems: &mut Vec<String>) {
    let by_name: BTreeMap<String, &GameServer> = gameservers.iter().map(|g| (g.name_any(), g)).collect();
    for (name, gs) in &by_name {
        let Some(s) = fleet.servers.get(name).filter(|s| s.live) else {
            let finalizers = gs.finalizers().join(",");
            problems.push(format!(
                "gameserver {name} should be gone (deleting: {:?}, finalizers [{finalizers}])",
                gs.metadata.deletion_timestamp.is_some()
            ));
            continue;
        };
        if gs.uid() != s.uid {
            problems.push(format!("gameserver {name} has uid {:?}, created as {:?}", gs.uid(), s.uid));
        }
        if gs.metadata.deletion_timestamp.is_some() {
            problems.push(format!("gameserver {name} is being deleted"));
        }
        if !gs.finalizers().iter().any(|f| f == FINALIZER) {
            problems.push(format!("gameserver {name} has no finalizer"));
        }
        let status = gs.status.clone().unwrap_or_default();
        if status.observed_generation != gs.metadata.generation {
            problems.push(format!(
                "gameserver {name}: status of generation {:?}, object at {:?}",
                status.observed_generation, gs.metadata.generation
            ));
        }
        let want = if s.stopped { Phase::Stopped } else { Phase::Running };
        if status.phase != Some(want) {
            problems.push(format!("gameserver {name}: phase {:?}, want {want:?}", status.phase));
        }
        let ready = crate::support::condition_status(gs, conditions::READY);
        let want_ready = if s.stopped { "False" } else { "True" };
        if ready.as_deref() != Some(want_ready) {
            problems.push(format!("gameserver {name}: Ready {ready:?}, want {want_ready}"));
        }
    }
    for s in fleet.live() {
        if !by_name.contains_key(&s.name) {
            problems.push(format!("gameserver {} is missing", s.name));
        }
    }
}

/// The one controller owner reference of a child, if it is a GameServer.
fn owner_uid(meta: &ObjectMeta) -> Option<String> {
    let refs: Vec<_> = meta.owner_references.iter().flatten().filter(|r| r.controller == Some(true)).collect();
    (refs.len() == 1 && refs[0].kind == "GameServer").then(|| refs[0].uid.clone())
}

/// A child must belong to a live server, be controlled by its current
/// incarnation, and not be on its way out.
fn expect_child(problems: &mut Vec<String>, kind: &str, name: &str, meta: &ObjectMeta, server: Option<&Server>) {
    match server {
        None => problems.push(format!("{kind} {name} has no live GameServer (orphan)")),
        Some(s) => {
            if owner_uid(meta) != s.uid {
                problems.push(format!(
                    "{kind} {name} is controlled by {:?}, the GameServer is {:?}",
                    meta.owner_references, s.uid
                ));
            }
            if meta.deletion_timestamp.is_some() {
                problems.push(format!("{kind} {name} is being deleted"));
            }
        }
    }
}

/// Polls `check` every 500 ms until it passes, and returns how long that took
/// from `since` and what it returned. Panics with the problems still seen
/// (and `context`) once `bound` has passed: a failure bound, not a speed
/// requirement.
pub async fn converge<T, F, Fut>(
    what: &str,
    since: Instant,
    bound: Duration,
    context: impl Fn() -> String,
    mut check: F,
) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Vec<String>>>,
{
    let mut failed = 0;
    let mut first = String::new();
    let mut last = String::new();
    loop {
        match check().await {
            Ok(v) => {
                if failed > 0 {
                    let first: String = first.chars().take(160).collect();
                    let last: String = last.chars().take(240).collect();
                    eprintln!(
                        "  {what}: {failed} check(s) failed before it converged; the first with: {first}; the last with: {last}"
                    );
                }
                return (since.elapsed(), v);
            }
            Err(problems) if since.elapsed() > bound => {
                let shown = problems.iter().take(25).cloned().collect::<Vec<_>>().join("\n  ");
                panic!(
                    "{what}: not converged after {:.0} s; {} problem(s), first ones:\n  {shown}\n{}",
                    since.elapsed().as_secs_f64(),
                    problems.len(),
                    context()
                );
            }
            Err(problems) => {
                last = format!("{} problem(s): {}", problems.len(), problems.join("; "));
                if failed == 0 {
                    first = last.clone();
                }
                failed += 1;
                tokio::time::sleep(Duration::from_millis(500)).await
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn offline_client() -> Client {
        let config = kube::Config::new("http://127.0.0.1:9".parse().unwrap());
        Client::try_from(config).unwrap()
    }

    /// Whatever the seed, a mixed round over a fleet with live and deleted
    /// servers has every kind of operation, each server at most once.
    #[tokio::test]
    async fn every_mixed_round_has_every_kind_whatever_the_seed() {
        let mut fleet = Fleet::new(offline_client(), "ns", 24, &["a", "b"]);
        for (i, s) in fleet.servers.values_mut().enumerate() {
            s.live = i % 5 != 0;
        }
        for seed in 0..2000 {
            let ops = fleet.mixed(&mut Rng::from_seed(seed));
            let kinds: std::collections::BTreeSet<_> = ops.iter().map(Op::kind).collect();
            assert_eq!(kinds.len(), 6, "seed {seed}: kinds {kinds:?}");
            let names: std::collections::BTreeSet<_> = ops.iter().map(Op::name).collect();
            assert_eq!(names.len(), ops.len(), "seed {seed}: a server got two operations");
        }
    }
}
