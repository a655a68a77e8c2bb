//! `mettaton-bench`: convergence, write cost, memory and deletion of the
//! controller on the local control plane, against what a bare client achieves
//! on the same plane, and the swarm facade against the Docker CLI (issue 6).
//!
//! Not a test: it takes minutes and its figures depend on the machine. Run it
//! with `cargo run --release --bin mettaton-bench -- --n 100`; BENCHMARKS.md
//! records what it measured and how to read it.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Parser;
use futures::{StreamExt, TryStreamExt, stream};
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Namespace, Pod, Service};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{DeleteParams, ListParams, ObjectMeta, Patch, PatchParams, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use kube::{Api, Client, Config, CustomResourceExt, ResourceExt};
use mettaton::api::{self, GameServer, GameServerSpec, GameServerStatus, Phase, PublishedPort};
use mettaton::facade::Mettaton;
use mettaton::orchestrator::kubernetes::builders;
use mettaton::orchestrator::swarm::Daemon;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::{Notify, Semaphore};

const SWARM_IMAGE: &str = "127.0.0.1:5999/mettaton-testgame:1";
const MANAGED_SELECTOR: &str = "app.kubernetes.io/managed-by=mettaton";

#[derive(Parser, Debug)]
#[command(about = "Benchmarks the mettaton controller and swarm facade (issue 6)")]
struct Args {
    /// GameServers for the Kubernetes parts.
    #[arg(long, default_value_t = 100)]
    n: usize,
    /// Reconciles or requests at once: the controller's `--concurrency`, the
    /// baseline's requests in flight, and the bench's own creates and deletes
    /// of GameServers.
    #[arg(long, default_value_t = mettaton::controller::CONCURRENCY as usize)]
    parallelism: usize,
    /// Swarm servers to spawn and remove each way (0 skips the swarm part).
    #[arg(long, default_value_t = 20)]
    swarm_k: usize,
    /// Length of the steady period with no changes, in which writes are counted.
    #[arg(long, default_value_t = 30)]
    steady_seconds: u64,
    /// Where to write the results as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    #[arg(long, default_value = "target/controlplane/kubeconfig")]
    kubeconfig: PathBuf,
    #[arg(long, default_value = "target/controlplane/bin/kubectl")]
    kubectl: PathBuf,
    /// The controller binary to run (build it with `cargo build --release`).
    #[arg(long, default_value = "target/release/mettaton")]
    controller_bin: PathBuf,
    /// Give up on a phase after this long.
    #[arg(long, default_value_t = 900)]
    timeout_seconds: u64,
    /// Skip the Kubernetes parts (swarm only).
    #[arg(long)]
    skip_kubernetes: bool,
    /// Every GameServer tracks players and an output event (issue 15): its
    /// game runs under mettaton's supervisor, and the controller reads the
    /// supervisor's report through the pod proxy every 30 s. The API server
    /// refuses to proxy to kwok pods (no such address): the figures are the
    /// requests the controller makes, each a failed read. Give it a steady
    /// period of a minute or more.
    #[arg(long)]
    players: bool,
}

/// One line of the table; `ratio` is to the figure it is compared with.
struct Row {
    key: String,
    value: f64,
    unit: &'static str,
    ratio: Option<(f64, &'static str)>,
}

#[derive(Default)]
struct Report {
    rows: Vec<Row>,
    extra: serde_json::Map<String, Value>,
    notes: Vec<String>,
}

impl Report {
    fn add(&mut self, key: &str, value: f64, unit: &'static str) {
        self.rows.push(Row { key: key.to_string(), value, unit, ratio: None });
    }
    fn add_ratio(&mut self, key: &str, value: f64, unit: &'static str, to: f64, to_name: &'static str) {
        let ratio = if to > 0.0 { Some((value / to, to_name)) } else { None };
        self.rows.push(Row { key: key.to_string(), value, unit, ratio });
    }
    fn note(&mut self, s: impl Into<String>) {
        let s = s.into();
        eprintln!("note: {s}");
        self.notes.push(s);
    }
}

type Failure = Box<dyn std::error::Error + Send + Sync>;

#[tokio::main(flavor = "multi_thread")]
async fn main() {
    let args = Args::parse();
    let mut report = Report::default();
    let started = Instant::now();
    if let Err(e) = run(&args, &mut report).await {
        report.note(format!("stopped early: {e}"));
    }
    print_table(&report);
    let doc = json!({
        "n": args.n,
        "parallelism": parallelism(&args),
        "swarm_k": args.swarm_k,
        "steady_seconds": args.steady_seconds,
        "machine": machine(),
        "wall_seconds": started.elapsed().as_secs_f64(),
        "figures": report.rows.iter().map(|r| json!({
            "key": r.key, "value": r.value, "unit": r.unit,
            "ratio": r.ratio.map(|(v, _)| v), "ratio_to": r.ratio.map(|(_, n)| n),
        })).collect::<Vec<_>>(),
        "details": Value::Object(report.extra.clone()),
        "notes": report.notes,
    });
    if let Some(path) = &args.json {
        if let Err(e) = std::fs::write(path, serde_json::to_string_pretty(&doc).unwrap()) {
            eprintln!("writing {}: {e}", path.display());
            std::process::exit(1);
        }
        eprintln!("results written to {}", path.display());
    }
}

async fn run(args: &Args, report: &mut Report) -> Result<(), Failure> {
    if !args.skip_kubernetes {
        let client = client(&args.kubeconfig).await?;
        ensure_crd(&client).await?;
        let baseline = baseline(args, &client, report).await?;
        controller_run(args, &client, report, baseline).await?;
    }
    if args.swarm_k > 0 {
        swarm(args, report).await?;
    }
    Ok(())
}

async fn client(path: &Path) -> Result<Client, Failure> {
    let kc = Kubeconfig::read_from(path)
        .map_err(|e| format!("kubeconfig {} ({e}): start the plane with tests/controlplane/up", path.display()))?;
    let config = Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default()).await?;
    Ok(Client::try_from(config)?)
}

async fn ensure_crd(client: &Client) -> Result<(), Failure> {
    let crd = GameServer::crd();
    let name = crd.metadata.name.clone().unwrap_or_default();
    Api::<CustomResourceDefinition>::all(client.clone())
        .patch(&name, &PatchParams::apply("mettaton-bench").force(), &Patch::Apply(&crd))
        .await?;
    let served = Api::<GameServer>::all(client.clone());
    for _ in 0..60 {
        if served.list(&ListParams::default().limit(1)).await.is_ok() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    Err("the GameServer CRD is not served after 30s".into())
}

fn spec(players: bool) -> GameServerSpec {
    // No storage: a PVC would wait on a provisioner the plane does not have,
    // and the issue's figures are about the controller, not about volumes.
    let mut spec = json!({
        "image": "mettaton.test/game:1",
        "ports": [{ "name": "game", "containerPort": 7777 }]
    });
    if players {
        spec["command"] = json!(["/game"]);
        spec["players"] = json!({
            "joinLine": [r"regex:(?P<player>\S+) joined the game"],
            "leaveLine": [r"regex:(?P<player>\S+) left the game"]
        });
        spec["outputEvents"] = json!([{ "line": r"regex:<\S+> ", "reason": "Chat" }]);
    }
    serde_json::from_value(spec).expect("a valid spec")
}

fn gameserver(name: &str, players: bool) -> GameServer {
    GameServer {
        metadata: ObjectMeta { name: Some(name.to_string()), ..Default::default() },
        spec: spec(players),
        status: None,
    }
}

async fn create_namespace(client: &Client, prefix: &str) -> Result<String, Failure> {
    let suffix = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH)?.as_millis() % 0xffffff;
    let name = format!("mtn-bench-{prefix}-{suffix:x}");
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.clone()),
            labels: Some([("mettaton.dev/bench".to_string(), "true".to_string())].into()),
            ..Default::default()
        },
        ..Default::default()
    };
    Api::<Namespace>::all(client.clone()).create(&PostParams::default(), &ns).await?;
    Ok(name)
}

/// Deletes each of `names`, `par` requests at a time, without waiting for
/// them to be gone; a failed delete is left to the phase's own checks.
async fn delete_each<K>(api: &Api<K>, names: impl IntoIterator<Item = String>, par: usize)
where
    K: Clone + serde::de::DeserializeOwned + std::fmt::Debug,
{
    let _: Vec<_> = stream::iter(names)
        .map(|name| async move { api.delete(&name, &DeleteParams::default()).await })
        .buffer_unordered(par)
        .collect()
        .await;
}

/// Deletes the namespace and waits until it is gone, so that the garbage
/// collection of one phase does not load the plane during the next.
async fn delete_namespace(client: &Client, name: &str, timeout: Duration) {
    let api = Api::<Namespace>::all(client.clone());
    let _ = api.delete(name, &DeleteParams::default()).await;
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        match api.get_opt(name).await {
            Ok(None) => return,
            _ => tokio::time::sleep(Duration::from_millis(500)).await,
        }
    }
    eprintln!("namespace {name} still there after {}s; left to the plane", timeout.as_secs());
}

fn parallelism(args: &Args) -> usize {
    args.parallelism.max(1)
}

/// What the controller writes as the status of a Running server, so that the
/// baseline's status patch is of the same size.
fn running_status(gs: &GameServer, address: &str, port: i32) -> GameServerStatus {
    let now = Time(k8s_openapi::jiff::Timestamp::now());
    let condition = |type_: &str, status: &str, reason: &str| Condition {
        type_: type_.to_string(),
        status: status.to_string(),
        reason: reason.to_string(),
        message: String::new(),
        last_transition_time: now.clone(),
        observed_generation: gs.metadata.generation,
    };
    GameServerStatus {
        phase: Some(Phase::Running),
        address: Some(address.to_string()),
        ports: vec![PublishedPort { name: "game".into(), port, protocol: api::Protocol::TCP }],
        conditions: vec![
            condition(api::conditions::READY, "True", "Running"),
            condition(api::conditions::PROGRESSING, "False", "Running"),
            condition(api::conditions::DEGRADED, "False", "Running"),
        ],
        observed_generation: gs.metadata.generation,
        restarts: 0,
        starting_since: Some(now.clone()),
        backend_ref: Some(format!("Deployment/{}", gs.name_any())),
        players: None,
    }
}

/// Phase 1: the plane's own limit. A bare client makes, per GameServer, the
/// Deployment and Service the controller would make (same builders, same
/// server-side apply) and, once the Deployment is available, one status patch.
/// All N servers go at once; at most `parallelism` requests are in flight,
/// as with the controller (waiting for a Deployment holds no request).
/// Returns (writes-only seconds, to-ready seconds).
async fn baseline(args: &Args, client: &Client, report: &mut Report) -> Result<(f64, f64), Failure> {
    let n = args.n;
    let par = parallelism(args);
    let ns = create_namespace(client, "base").await?;
    eprintln!("baseline: {n} owners in {ns}");
    let gs_api: Api<GameServer> = Api::namespaced(client.clone(), &ns);
    // The owners must exist for the owner references to be valid; no
    // controller watches this namespace, so they stay untouched. Untimed.
    let owners: Vec<GameServer> = stream::iter(0..n)
        .map(|i| {
            let api = gs_api.clone();
            async move { api.create(&PostParams::default(), &gameserver(&format!("gs-{i}"), args.players)).await }
        })
        .buffer_unordered(par)
        .try_collect()
        .await?;

    let available: Arc<HashMap<String, Arc<Notify>>> =
        Arc::new(owners.iter().map(|o| (o.name_any(), Arc::new(Notify::new()))).collect());
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let watch = {
        let available = available.clone();
        let deployments = deployments.clone();
        tokio::spawn(async move {
            let mut events = watcher(deployments, watcher::Config::default()).applied_objects().boxed();
            while let Some(Ok(d)) = events.next().await {
                let ready = d.status.as_ref().and_then(|s| s.available_replicas).unwrap_or(0) >= 1;
                if ready && let Some(notify) = available.get(&d.name_any()) {
                    // notify_one keeps a permit when nobody waits yet.
                    notify.notify_one();
                }
            }
        })
    };
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let apply = PatchParams::apply(api::FIELD_MANAGER).force();
    let writes_done: Arc<Mutex<Vec<Instant>>> = Arc::default();
    let in_flight = Arc::new(Semaphore::new(par));
    let t0 = Instant::now();
    let results: Vec<Result<(), kube::Error>> = stream::iter(owners)
        .map(|owner| {
            let (deployments, services, gs_api, apply) =
                (deployments.clone(), services.clone(), gs_api.clone(), apply.clone());
            let (available, writes_done, in_flight) = (available.clone(), writes_done.clone(), in_flight.clone());
            async move {
                let plan = mettaton::plan::plan(&owner);
                let identity = mettaton::orchestrator::Owner::of(&owner);
                let d = builders::deployment(&plan, &identity, mettaton::supervisor::DEFAULT_IMAGE);
                let s = builders::service(&plan, &identity);
                let s = {
                    let _permit = in_flight.acquire().await.expect("never closed");
                    deployments.patch(&d.name_any(), &apply, &Patch::Apply(&d)).await?;
                    services.patch(&s.name_any(), &apply, &Patch::Apply(&s)).await?
                };
                writes_done.lock().unwrap().push(Instant::now());
                available[&owner.name_any()].notified().await;
                let port = s.spec.and_then(|s| s.ports).and_then(|p| p.first().and_then(|p| p.node_port)).unwrap_or(0);
                let status = json!({ "status": running_status(&owner, "127.0.0.1", port) });
                let _permit = in_flight.acquire().await.expect("never closed");
                gs_api.patch_status(&owner.name_any(), &PatchParams::default(), &Patch::Merge(&status)).await?;
                Ok(())
            }
        })
        .buffer_unordered(n.max(1))
        .collect()
        .await;
    let ready_s = t0.elapsed().as_secs_f64();
    watch.abort();
    let failed = results.iter().filter(|r| r.is_err()).count();
    if let Some(Err(e)) = results.iter().find(|r| r.is_err()) {
        report.note(format!("baseline: {failed} of {n} owners failed, first: {e}"));
    }
    let writes_s = writes_done.lock().unwrap().iter().max().map_or(0.0, |t| (*t - t0).as_secs_f64());
    report.add("baseline: Deployment+Service applied for all (s)", writes_s, "s");
    report.add("baseline: all Deployments available + status patched (s)", ready_s, "s");
    eprintln!("baseline: writes {writes_s:.2}s, ready {ready_s:.2}s; deleting {ns}");
    // One by one first: Services deleted with their namespace keep their node
    // ports until the API server's repair loop finds them leaked (minutes
    // later), and the controller's run needs N more of the 2768.
    let names: Vec<String> = services.list(&ListParams::default()).await?.items.iter().map(|s| s.name_any()).collect();
    delete_each(&services, names, par).await;
    delete_namespace(client, &ns, Duration::from_secs(args.timeout_seconds)).await;
    Ok((writes_s, ready_s))
}

/// The controller binary as a child process, killed when dropped.
struct Controller {
    child: std::process::Child,
    admin: String,
}

impl Drop for Controller {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Controller {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    async fn scrape(&self) -> Result<String, Failure> {
        let mut conn = tokio::net::TcpStream::connect(&self.admin).await?;
        conn.write_all(format!("GET /metrics HTTP/1.0\r\nHost: {}\r\n\r\n", self.admin).as_bytes()).await?;
        let mut body = String::new();
        conn.read_to_string(&mut body).await?;
        Ok(body)
    }
}

fn free_port() -> Result<u16, Failure> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

/// (peak RSS in MiB, user+system CPU seconds) of a live process.
fn process_usage(pid: u32) -> Result<(f64, f64), Failure> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let hwm_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.split_whitespace().next())
        .ok_or("no VmHWM")?
        .parse()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest: Vec<&str> = stat.rsplit_once(')').ok_or("odd /proc stat")?.1.split_whitespace().collect();
    let ticks: f64 = rest[11].parse::<f64>()? + rest[12].parse::<f64>()?;
    Ok((hwm_kib / 1024.0, ticks / clock_ticks()))
}

fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// `apiserver_request_total` summed over codes, by (verb, group, resource, subresource).
type Requests = BTreeMap<(String, String, String, String), f64>;

fn apiserver_requests(args: &Args) -> Result<Requests, Failure> {
    let out = Command::new(&args.kubectl)
        .args([
            "--kubeconfig".as_ref(),
            args.kubeconfig.as_os_str(),
            "get".as_ref(),
            "--raw".as_ref(),
            "/metrics".as_ref(),
        ])
        .output()?;
    if !out.status.success() {
        return Err(format!("kubectl get --raw /metrics: {}", String::from_utf8_lossy(&out.stderr)).into());
    }
    let mut total = Requests::new();
    for line in String::from_utf8(out.stdout)?.lines() {
        let Some(rest) = line.strip_prefix("apiserver_request_total{") else { continue };
        let Some((labels, value)) = rest.rsplit_once("} ") else { continue };
        let labels = labels_of(labels);
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let key = (get("verb"), get("group"), get("resource"), get("subresource"));
        *total.entry(key).or_default() += value.trim().parse::<f64>().unwrap_or(0.0);
    }
    Ok(total)
}

fn labels_of(s: &str) -> HashMap<String, String> {
    let mut labels = HashMap::new();
    let mut rest = s;
    while let Some((key, after)) = rest.split_once("=\"") {
        let Some(end) = after.find('"') else { break };
        labels.insert(key.trim_start_matches(',').to_string(), after[..end].to_string());
        rest = &after[end + 1..];
    }
    labels
}

fn diff(before: &Requests, after: &Requests) -> Requests {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0.0)))
        .filter(|(_, v)| *v > 0.0)
        .collect()
}

fn is_write(verb: &str) -> bool {
    !matches!(verb, "GET" | "LIST" | "WATCH" | "CONNECT")
}

/// The writes only the controller makes: to GameServers (but the bench's own
/// creates and deletes), and server-side applies of Deployments and Services
/// (kube-controller-manager writes Deployments with UPDATE, never APPLY).
fn controller_writes(d: &Requests) -> BTreeMap<String, f64> {
    d.iter()
        .filter(|((verb, group, resource, _), _)| {
            is_write(verb)
                && ((group == api::GROUP
                    && resource == "gameservers"
                    && verb != "POST"
                    && verb != "CREATE"
                    && verb != "DELETE")
                    || ((resource == "deployments" || resource == "services") && verb == "APPLY"))
        })
        .map(|((verb, group, resource, sub), v)| (request_name(verb, group, resource, sub), *v))
        .collect()
}

/// Reads by name of the children and of nodes, and lists of pods: the other
/// components of the plane read these through their watch caches, so these are
/// the controller's (the bench's own reads are of GameServers, namespaces and
/// lists of children with `limit=1` during deletion only).
fn controller_reads(d: &Requests) -> f64 {
    d.iter()
        .filter(|((verb, _, resource, sub), _)| {
            sub.is_empty()
                && ((verb == "GET"
                    && matches!(
                        resource.as_str(),
                        "deployments" | "services" | "configmaps" | "persistentvolumeclaims" | "nodes"
                    ))
                    || (verb == "LIST" && resource == "pods"))
        })
        .map(|(_, v)| v)
        .sum()
}

fn request_name(verb: &str, group: &str, resource: &str, sub: &str) -> String {
    let group = if group.is_empty() { "core" } else { group };
    if sub.is_empty() { format!("{verb} {group}/{resource}") } else { format!("{verb} {group}/{resource}/{sub}") }
}

fn requests_json(d: &Requests) -> Value {
    Value::Object(d.iter().map(|((v, g, r, s), n)| (request_name(v, g, r, s), json!(n))).collect())
}

fn metric(text: &str, name: &str) -> Option<f64> {
    text.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
}

fn is_ready(gs: &GameServer) -> bool {
    let Some(status) = &gs.status else { return false };
    let ready = status.conditions.iter().any(|c| c.type_ == api::conditions::READY && c.status == "True");
    ready && status.address.is_some() && status.observed_generation == gs.metadata.generation
}

/// Phases 2 to 4: the real controller binary on N GameServers.
async fn controller_run(
    args: &Args,
    client: &Client,
    report: &mut Report,
    baseline: (f64, f64),
) -> Result<(), Failure> {
    let n = args.n;
    let par = parallelism(args);
    let timeout = Duration::from_secs(args.timeout_seconds);
    let ns = create_namespace(client, "ctl").await?;
    let admin = format!("127.0.0.1:{}", free_port()?);
    let log_path = PathBuf::from("target/mettaton-bench-controller.log");
    let log = std::fs::File::create(&log_path)?;
    let child = Command::new(&args.controller_bin)
        .args(["controller", "--namespace", &ns, "--admin-address", &admin, "--kubeconfig"])
        .arg(&args.kubeconfig)
        .arg(format!("--concurrency={par}"))
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("starting {} ({e}): cargo build --release first", args.controller_bin.display()))?;
    let ctl = Controller { child, admin };
    eprintln!("controller: pid {} in {ns}, admin {}, log {}", ctl.pid(), ctl.admin, log_path.display());
    // Ready once its cache synced: from then on, what we time is reconciling.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(text) = ctl.scrape().await
            && text.contains("mettaton_reconciles_total")
        {
            break;
        }
        if Instant::now() > deadline {
            return Err(format!("the controller's admin server did not answer; see {}", log_path.display()).into());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_secs(1)).await;

    let gs_api: Api<GameServer> = Api::namespaced(client.clone(), &ns);
    let ready_at: Arc<Mutex<HashMap<String, Instant>>> = Arc::default();
    let all_ready = Arc::new(Notify::new());
    let watch = {
        let (ready_at, all_ready, gs_api) = (ready_at.clone(), all_ready.clone(), gs_api.clone());
        tokio::spawn(async move {
            let mut events = watcher(gs_api, watcher::Config::default()).applied_objects().boxed();
            while let Some(event) = events.next().await {
                let Ok(gs) = event else { continue };
                if is_ready(&gs) {
                    let mut seen = ready_at.lock().unwrap();
                    seen.entry(gs.name_any()).or_insert_with(Instant::now);
                    if seen.len() >= n {
                        all_ready.notify_one();
                    }
                }
            }
        })
    };
    let before = apiserver_requests(args)?;
    let ctl_before = metric(&ctl.scrape().await?, "mettaton_reconciles_total").unwrap_or(0.0);
    let t0 = Instant::now();
    let created: Vec<Result<GameServer, kube::Error>> = stream::iter(0..n)
        .map(|i| {
            let api = gs_api.clone();
            async move { api.create(&PostParams::default(), &gameserver(&format!("gs-{i}"), args.players)).await }
        })
        .buffer_unordered(par)
        .collect()
        .await;
    let created_s = t0.elapsed().as_secs_f64();
    if let Some(Err(e)) = created.iter().find(|r| r.is_err()) {
        return Err(format!("creating GameServers: {e}").into());
    }
    let converged = tokio::time::timeout(timeout, all_ready.notified()).await.is_ok();
    let total_s = t0.elapsed().as_secs_f64();
    let mut times: Vec<f64> = ready_at.lock().unwrap().values().map(|t| (*t - t0).as_secs_f64()).collect();
    times.sort_by(f64::total_cmp);
    watch.abort();
    if !converged {
        report.note(format!("controller: only {} of {n} Ready after {}s", times.len(), timeout.as_secs()));
    }
    // Settle briefly so that writes made right after Ready (a last status
    // write, Events) land in the creation window, not in the steady one.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let after_create = apiserver_requests(args)?;
    let ctl_after_create = metric(&ctl.scrape().await?, "mettaton_reconciles_total").unwrap_or(0.0);
    let (rss_create, cpu_create) = process_usage(ctl.pid())?;

    report.add("controller: N GameServers created (s)", created_s, "s");
    if let Some(first) = times.first() {
        report.add("controller: first Ready (s)", *first, "s");
        report.add("controller: median Ready (s)", times[times.len() / 2], "s");
    }
    if converged {
        let last = times.last().copied().unwrap_or(total_s);
        report.add_ratio("controller: all Ready (s)", last, "s", baseline.1, "baseline to-ready");
        report.add_ratio("controller: all Ready vs writes-only baseline", last, "s", baseline.0, "baseline writes");
    }
    report.add("controller: CPU time through creation (s)", cpu_create, "s");

    let create = diff(&before, &after_create);
    let ours = controller_writes(&create);
    let per_gs: f64 = ours.values().sum::<f64>() / n as f64;
    report.add("create: controller writes per GameServer", per_gs, "req");
    report.add("create: reconciles per GameServer", (ctl_after_create - ctl_before) / n as f64, "count");
    report.add("create: controller reads per GameServer", controller_reads(&create) / n as f64, "req");
    for (what, count) in &ours {
        report.add(&format!("create: {what} per GameServer"), count / n as f64, "req");
    }
    report.extra.insert("create_all_requests".into(), requests_json(&create));
    report.extra.insert("ready_seconds_sorted".into(), json!(times));

    eprintln!("steady: {}s with no changes", args.steady_seconds);
    let steady_before = apiserver_requests(args)?;
    tokio::time::sleep(Duration::from_secs(args.steady_seconds)).await;
    let steady_after = apiserver_requests(args)?;
    let ctl_after_steady = metric(&ctl.scrape().await?, "mettaton_reconciles_total").unwrap_or(0.0);
    let steady = diff(&steady_before, &steady_after);
    let steady_ours = controller_writes(&steady);
    // Starting from +0.0: an empty f64 sum is -0.0, which would print as such.
    report.add("steady: controller writes (all GameServers)", steady_ours.values().fold(0.0, |a, b| a + b), "req");
    report.add("steady: reconciles (all GameServers)", ctl_after_steady - ctl_after_create, "count");
    let steady_plane_writes: f64 = steady.iter().filter(|((v, ..), _)| is_write(v)).map(|(_, c)| c).sum();
    report.add("steady: all writes on the plane (any client)", steady_plane_writes, "req");
    report.extra.insert("steady_all_requests".into(), requests_json(&steady));
    // Only the controller reads through the pod proxy (the supervisor's
    // report, issue 15); everything else on the plane is counted beside it.
    let per_minute = |count: f64| count / n as f64 / (args.steady_seconds as f64 / 60.0);
    let proxied: f64 = steady.iter().filter(|((_, _, r, sub), _)| r == "pods" && sub == "proxy").map(|(_, c)| c).sum();
    report.add("steady: pod proxy reads per GameServer per minute", per_minute(proxied), "req");
    report.add(
        "steady: all requests on the plane per GameServer per minute (any client)",
        per_minute(steady.values().sum()),
        "req",
    );
    let (_, cpu_steady) = process_usage(ctl.pid())?;
    report.add("steady: controller CPU time in the period (s)", cpu_steady - cpu_create, "s");

    // Phase 4: deletion, one request per GameServer as a user would.
    let t0 = Instant::now();
    delete_each(&gs_api, (0..n).map(|i| format!("gs-{i}")), par).await;
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), &ns);
    let services: Api<Service> = Api::namespaced(client.clone(), &ns);
    let pods: Api<Pod> = Api::namespaced(client.clone(), &ns);
    let one = ListParams::default().limit(1);
    let managed = ListParams::default().labels(MANAGED_SELECTOR).limit(1);
    let (mut gs_gone, mut all_gone) = (None, None);
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline && all_gone.is_none() {
        if gs_gone.is_none() && gs_api.list(&one).await?.items.is_empty() {
            gs_gone = Some(t0.elapsed().as_secs_f64());
        }
        if gs_gone.is_some()
            && deployments.list(&managed).await?.items.is_empty()
            && services.list(&managed).await?.items.is_empty()
            && pods.list(&managed).await?.items.is_empty()
        {
            all_gone = Some(t0.elapsed().as_secs_f64());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    match (gs_gone, all_gone) {
        (Some(g), Some(a)) => {
            report.add("delete: all GameServers gone (s)", g, "s");
            report.add("delete: Deployments, Services and pods gone too (s)", a, "s");
        }
        _ => report.note(format!("delete: not complete after {}s", timeout.as_secs())),
    }
    let (rss, cpu) = process_usage(ctl.pid())?;
    report.add("controller: peak RSS through creation (MiB)", rss_create, "MiB");
    report.add("controller: peak RSS over the whole run (MiB)", rss, "MiB");
    report.add("controller: CPU time over the whole run (s)", cpu, "s");
    drop(ctl);
    delete_namespace(client, &ns, timeout).await;
    Ok(())
}

fn docker(args: &[&str]) -> Result<String, Failure> {
    let out = Command::new("docker").args(args).output()?;
    if !out.status.success() {
        return Err(format!("docker {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()).into());
    }
    Ok(String::from_utf8(out.stdout)?)
}

/// Waits until no container of the swarm service is left, which is what the
/// facade's shutdown waits for before it returns.
async fn wait_containers_gone(service: &str) -> Result<(), Failure> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if docker(&["ps", "-aq", "--filter", &filter])?.trim().is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("containers of {service} still there after 120s").into())
}

/// Waits until the service's container runs (its host port is then bound),
/// which is what the facade's spawn waits for before it returns.
async fn wait_container_running(service: &str) -> Result<(), Failure> {
    let filter = format!("label=com.docker.swarm.service.name={service}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline {
        if !docker(&["ps", "-q", "--filter", &filter, "--filter", "status=running"])?.trim().is_empty() {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(format!("no running container of {service} after 120s").into())
}

/// Phase 5: K servers spawned and removed one after the other, through the
/// facade and through the Docker CLI with the options the facade uses.
async fn swarm(args: &Args, report: &mut Report) -> Result<(), Failure> {
    let k = args.swarm_k;
    if let Err(e) = docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]) {
        report.note(format!("swarm: skipped, no Docker Engine ({e}); start it with tests/swarm/up"));
        return Ok(());
    }
    let state_dir = std::env::temp_dir().join(format!("mettaton-bench-{}", std::process::id()));
    std::fs::create_dir_all(&state_dir)?;
    let mut facade = Mettaton::new(Daemon::from_env()?, state_dir.join("state.json"));
    facade.connect().await?;
    let spec: GameServerSpec = serde_json::from_value(json!({
        "image": SWARM_IMAGE,
        "ports": [{ "name": "game", "containerPort": 7777 }]
    }))?;

    // The image is local and --no-resolve-image (the facade does not resolve
    // either), so neither side pulls and the order does not favour one.
    let names: Vec<String> = (0..k).map(|i| format!("mtnbench-hand-{i}")).collect();
    let t0 = Instant::now();
    for name in &names {
        // Detached, then waiting for the running container ourselves: without
        // --detach the CLI also watches the task for 5 s after it started
        // (its "verify" period), which the facade does not do.
        docker(&[
            "service",
            "create",
            "--quiet",
            "--detach",
            "--no-resolve-image",
            "--name",
            name,
            "--publish",
            "mode=host,target=7777,protocol=tcp",
            SWARM_IMAGE,
        ])?;
        wait_container_running(name).await?;
    }
    let hand_spawn = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for name in &names {
        docker(&["service", "rm", name])?;
        wait_containers_gone(name).await?;
    }
    let hand_remove = t0.elapsed().as_secs_f64();

    let t0 = Instant::now();
    let mut ids = Vec::new();
    for i in 0..k {
        let manifest = mettaton::facade::manifest(&format!("s{i}"), Some("bench"), spec.clone());
        ids.push(facade.spawn(&manifest).await?.id);
    }
    let facade_spawn = t0.elapsed().as_secs_f64();
    let t0 = Instant::now();
    for id in &ids {
        facade.shutdown(id).await?;
    }
    let facade_remove = t0.elapsed().as_secs_f64();
    facade.disconnect().await;
    let _ = std::fs::remove_dir_all(&state_dir);

    report.add("swarm: K docker service create, by hand (s)", hand_spawn, "s");
    report.add_ratio("swarm: K spawns through the facade (s)", facade_spawn, "s", hand_spawn, "docker CLI");
    report.add("swarm: K docker service rm + containers gone, by hand (s)", hand_remove, "s");
    report.add_ratio("swarm: K shutdowns through the facade (s)", facade_remove, "s", hand_remove, "docker CLI");
    Ok(())
}

fn machine() -> Value {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0);
    let mem_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines().find_map(|l| l.strip_prefix("MemTotal:")?.split_whitespace().next()?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines().find_map(|l| l.strip_prefix("model name")?.split_once(':').map(|x| x.1.trim().to_string()))
        })
        .unwrap_or_default();
    json!({ "cpus": cpus, "mem_gib": mem_kib as f64 / 1048576.0, "cpu_model": model })
}

fn print_table(report: &Report) {
    let width = report.rows.iter().map(|r| r.key.len()).max().unwrap_or(10);
    println!("{:width$}  {:>10}  {:>5}  ratio", "figure", "value", "unit");
    for r in &report.rows {
        let ratio = r.ratio.map(|(v, to)| format!("{v:.2}x {to}")).unwrap_or_default();
        println!("{:width$}  {:>10.3}  {:>5}  {ratio}", r.key, r.value, r.unit);
    }
    for n in &report.notes {
        println!("note: {n}");
    }
}
