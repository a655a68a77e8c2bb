//! The controller: watches GameServers (and what runs them), and for each one
//! plans, applies through the [`Orchestrator`], observes, and writes the status
//! back. Thin wiring: the decisions are in `plan` and `status`.
//!
//! Writes happen only when something changes: the orchestrator skips children
//! that already match, the status is written only when it differs, and Events
//! are published only on transitions of what the status reports: one for each
//! phase it enters (Pending and Terminating included) and one `Created` when it
//! first names the runtime object; `StopCommand` when it stops the game of a
//! server with `shutdown.stop` (which its supervisor types or sends). A
//! steady-state reconcile only reads, and for a running server with
//! `spec.players` or `spec.outputEvents` reads its supervisor's report once per
//! 30 s ([`reading`]): new matched lines become Events, and the players go into
//! the status when they changed.
//!
//! A GameServer made from a game template (`spec.template`) is planned from
//! the controller's caches of GameTemplates and ClusterGameTemplates
//! ([`lookup::plan`]), which a template's change also wakes; one that does
//! not resolve has nothing applied and its status says why
//! ([`status::unresolved`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::{Future, StreamExt};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{self, Action, Controller};
use kube::runtime::events::{EventType, Reporter};
use kube::runtime::finalizer::{Event as Finalized, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::{WatchStreamExt, reflector, watcher};
use kube::{Client, Resource, ResourceExt};
use serde_json::json;
use tracing::{Instrument, debug, info, info_span, warn};

use crate::admin::Readiness;
use crate::api::{
    self, ClusterGameTemplate, GameServer, GameServerStatus, GameTemplate, GameTemplateSpec, Phase, ReclaimPolicy,
    TemplateKind,
};
use crate::events::{Published, Recorder};
use crate::metrics::Metrics;
use crate::orchestrator::{BackendError, Observed, Orchestrator, Owner, Teardown};
use crate::plan::{self, ServerPlan};
use crate::reading::{self, Cursor};
use crate::status;
use crate::supervisor::PlayersReport;
use crate::template::lookup::{self, Planned, Unresolved, Wanted};

/// Longest wait between two looks while a teardown waits for the runtime to
/// finish removing things. The waits grow from 1 s: where the backend's
/// triggers report the removals (Kubernetes' watches of the children), they
/// wake the controller, so the looks are a safety net, and a thousand servers being deleted at once must
/// not poll the API server every second.
const TEARDOWN_POLL_MAX: Duration = Duration::from_secs(30);
/// Look again now and then even without events: drift a backend's triggers
/// did not report is caught at this pace (a backend's own poll may be faster).
const RESYNC: Duration = Duration::from_secs(300);
/// Bounds of the per-object exponential backoff after a failed reconcile.
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(300);
/// How long a passing phase (Pending, Starting, Stopping) may stand before it
/// is written; see [`status::may_settle`].
pub const STATUS_SETTLE: Duration = Duration::from_secs(5);

/// How many GameServers are reconciled at once by default. Each reconcile in
/// flight holds a connection to the API server (HTTP/1.1: one request per
/// connection; two while its Deployment and Service go side by side):
/// unbounded, a thousand new servers opened a thousand TLS connections at
/// once, which cost the controller most of its memory and the API server, on
/// the same cores, CPU the children's rollouts needed.
pub const CONCURRENCY: u16 = 64;

/// How long a reconcile of a server made from a template waits for the
/// template caches' first lists before it looks again later (without
/// writing anything: a template not listed yet is not a template missing).
const TEMPLATES_SYNC_WAIT: Duration = Duration::from_secs(5);

/// How long a read of a supervisor's report may take before it counts as
/// failed. A supervisor answers in milliseconds; a reconcile waits for the
/// read and holds one of the `--concurrency` slots meanwhile, so a pod that
/// does not answer must not hold it long.
const REPORT_TIMEOUT: Duration = Duration::from_secs(5);

/// Why a reconcile did not complete.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The backend failed while applying, observing or tearing down.
    #[error("{0}")]
    Backend(#[from] BackendError),
    /// The Kubernetes API refused or failed a write of the GameServer itself.
    #[error("writing GameServer {what}: {source}")]
    Kube {
        what: &'static str,
        #[source]
        source: kube::Error,
    },
    /// The teardown is under way; the finalizer stays until it is done.
    #[error("teardown in progress")]
    TeardownPending,
    /// Adding or removing the finalizer failed.
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

impl Error {
    /// Every [`reason`](Error::reason), so that the error counters start at
    /// zero and the first failure of a kind shows as an increase.
    pub const REASONS: [&'static str; BackendError::REASONS.len() + 3] = {
        let mut all = [""; BackendError::REASONS.len() + 3];
        let mut i = 0;
        while i < BackendError::REASONS.len() {
            all[i] = BackendError::REASONS[i];
            i += 1;
        }
        all[i] = "KubeApiError";
        all[i + 1] = "TeardownPending";
        all[i + 2] = "FinalizerError";
        all
    };

    /// A short reason, for logs and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Backend(e) => e.reason(),
            Error::Kube { .. } => "KubeApiError",
            Error::TeardownPending => "TeardownPending",
            Error::Finalizer(_) => "FinalizerError",
        }
    }
}

/// What every reconcile shares.
pub struct Context<O> {
    pub client: Client,
    pub orchestrator: O,
    recorder: Recorder,
    /// Consecutive failures per GameServer, for the exponential backoff.
    failures: Mutex<HashMap<ObjectRef<GameServer>, u32>>,
    /// Observe every server at least this often (the backend's
    /// [`Triggers::poll`](crate::orchestrator::Triggers)).
    poll: Option<Duration>,
    metrics: Arc<Metrics>,
    /// Statuses computed but not written yet, while a passing phase settles.
    settling: Mutex<HashMap<ObjectRef<GameServer>, Settling>>,
    status_settle: Duration,
    /// What the last status this controller wrote reported, per server: the
    /// "before" of its Events, since the GameServer a reconcile is handed may
    /// not show that write yet (and must not announce it twice).
    reported: Mutex<HashMap<ObjectRef<GameServer>, Reported>>,
    /// The incarnations (uids) whose teardown was announced as done, and
    /// when: a reconcile handed the deleted GameServer again (a cache that
    /// does not show the finalizer gone yet, a retried finalizer removal) finds
    /// the teardown done again, and must not say `Deleted` twice.
    deleted: Mutex<HashMap<String, Instant>>,
    /// Per server with a report to read: when it was read, the events taken
    /// from it, the players computed last.
    reading: Mutex<HashMap<ObjectRef<GameServer>, Cursor>>,
    /// When this controller started, in unix milliseconds: the events of a
    /// report read for the first time are published from then on.
    started_ms: u64,
    /// The game templates GameServers name, from the controller's watches;
    /// `None` when it watches none (every templated server then waits).
    templates: Option<Templates>,
}

/// The caches of the game templates: the GameTemplates of the namespace the
/// controller watches (or of all), and every ClusterGameTemplate.
#[derive(Clone)]
struct Templates {
    namespaced: reflector::Store<GameTemplate>,
    cluster: reflector::Store<ClusterGameTemplate>,
}

impl Templates {
    /// The spec of the template `wanted` names: `Ok(None)` when the caches
    /// say it does not exist, `Err(())` while they have not had their first
    /// full list (after [`TEMPLATES_SYNC_WAIT`]).
    async fn get(&self, wanted: &Wanted) -> Result<Option<GameTemplateSpec>, ()> {
        let synced = async {
            match &wanted.namespace {
                Some(_) => self.namespaced.wait_until_ready().await,
                None => self.cluster.wait_until_ready().await,
            }
        };
        match tokio::time::timeout(TEMPLATES_SYNC_WAIT, synced).await {
            Ok(Ok(())) => {}
            _ => return Err(()),
        }
        Ok(match &wanted.namespace {
            Some(ns) => self.namespaced.get(&ObjectRef::new(&wanted.name).within(ns)).map(|t| t.spec.clone()),
            None => self.cluster.get(&ObjectRef::new(&wanted.name)).map(|t| t.spec.0.clone()),
        })
    }
}

/// The GameServers in `servers` that name the template of `kind` called
/// `name` (in `namespace`, for a GameTemplate): what a change of that
/// template makes the controller reconcile.
fn naming(
    servers: &reflector::Store<GameServer>,
    kind: TemplateKind,
    namespace: Option<String>,
    name: String,
) -> Vec<ObjectRef<GameServer>> {
    let template = Wanted { kind, namespace, name };
    servers
        .state()
        .iter()
        .filter(|gs| lookup::wanted(gs).as_ref() == Some(&template))
        .map(|gs| ObjectRef::from_obj(&**gs))
        .collect()
}

/// How long a teardown announced as done is remembered: far longer than a
/// stale cache or a retried finalizer removal lasts.
const DELETED_REMEMBERED: Duration = Duration::from_secs(600);

/// Whether the teardown of incarnation `uid`, done at `now`, is announced for
/// the first time; remembers it, and forgets what is older than
/// [`DELETED_REMEMBERED`] (so the memory is bounded by the deletion rate).
fn first_deleted(deleted: &mut HashMap<String, Instant>, uid: &str, now: Instant) -> bool {
    deleted.retain(|_, at| now.saturating_duration_since(*at) < DELETED_REMEMBERED);
    deleted.insert(uid.to_string(), now).is_none()
}

/// What a written status reports, as far as Events tell it.
#[derive(Clone, Debug, PartialEq)]
struct Reported {
    /// The incarnation of the GameServer it was written to.
    uid: Option<String>,
    phase: Option<Phase>,
    /// It names the runtime object (`backendRef`): the server was created.
    created: bool,
    /// The generation it describes.
    generation: Option<i64>,
    /// The restart asked for last when it was written ([`plan::restart_token`]).
    restart: Option<String>,
    /// A new template rolls out (Progressing, `RollingOut`).
    rolling_out: bool,
}

impl Reported {
    fn of(gs: &GameServer, status: Option<&GameServerStatus>) -> Self {
        let rolling_out = status
            .and_then(|s| status::condition(&s.conditions, api::conditions::PROGRESSING))
            .is_some_and(|c| c.status == "True" && c.reason == status::reason::ROLLING_OUT);
        Reported {
            uid: gs.uid(),
            phase: status.and_then(|s| s.phase),
            created: status.is_some_and(|s| s.backend_ref.is_some()),
            generation: status.and_then(|s| s.observed_generation),
            restart: plan::restart_token(gs.metadata.annotations.as_ref()),
            rolling_out,
        }
    }
}

/// A status held back while it settles.
#[derive(Clone)]
struct Settling {
    /// The status as computed, not written yet.
    status: GameServerStatus,
    /// The status the object had when this one was computed: when the object
    /// has another one now, someone wrote it since and this one is stale.
    over: Option<GameServerStatus>,
    /// When the server first had a status waiting to be written.
    since: Instant,
}

impl<O: Orchestrator> Context<O> {
    pub fn new(client: Client, orchestrator: O) -> Self {
        let reporter = Reporter { controller: "mettaton".into(), instance: std::env::var("POD_NAME").ok() };
        Context {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            orchestrator,
            failures: Mutex::new(HashMap::new()),
            poll: None,
            metrics: Arc::new(Metrics::new(&Error::REASONS)),
            settling: Mutex::new(HashMap::new()),
            status_settle: STATUS_SETTLE,
            reported: Mutex::new(HashMap::new()),
            deleted: Mutex::new(HashMap::new()),
            reading: Mutex::new(HashMap::new()),
            started_ms: reading::now_ms(),
            templates: None,
        }
    }

    async fn publish(&self, gs: &GameServer, type_: EventType, reason: &str, action: &str, note: String) {
        let event = Published { type_, reason, action, note: &note };
        if let Err(e) = self.recorder.publish(&event, &gs.object_ref(&())).await {
            // An Event is a courtesy to the user; failing to send one must not
            // fail the reconcile.
            warn!(error = %e, reason, "could not publish event");
        }
    }
}

/// Settings of the controller's behaviour.
#[derive(Clone, Copy, Debug)]
pub struct Tuning {
    /// How long a passing phase may stand before it is written (zero writes
    /// every phase as soon as it is seen).
    pub status_settle: Duration,
    /// How many GameServers are reconciled at once (0: no limit). One
    /// GameServer is never reconciled twice at once either way.
    pub concurrency: u16,
}

impl Default for Tuning {
    fn default() -> Self {
        Tuning { status_settle: STATUS_SETTLE, concurrency: CONCURRENCY }
    }
}

/// Where the controller reports on itself, for the admin server.
#[derive(Clone, Debug)]
pub struct Reporting {
    pub metrics: Arc<Metrics>,
    pub health: Arc<Readiness>,
}

impl Default for Reporting {
    fn default() -> Self {
        Reporting { metrics: Arc::new(Metrics::new(&Error::REASONS)), health: Arc::default() }
    }
}

/// Runs the controller until `shutdown` completes. `namespace` limits it to one
/// namespace; `None` watches all. Beside the GameServers' changes, what the
/// backend's [`Orchestrator::triggers`] name wakes it.
pub async fn run<O: Orchestrator>(
    client: Client,
    orchestrator: O,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) {
    run_reporting(client, orchestrator, namespace, shutdown, Reporting::default(), Tuning::default()).await
}

/// [`run`], recording metrics and marking `health` synced once the GameServer
/// cache has its first full list.
pub async fn run_reporting<O: Orchestrator>(
    client: Client,
    orchestrator: O,
    namespace: Option<String>,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
    reporting: Reporting,
    tuning: Tuning,
) {
    fn api<K>(client: &Client, namespace: &Option<String>) -> Api<K>
    where
        K: Resource<Scope = k8s_openapi::NamespaceResourceScope, DynamicType = ()>,
    {
        match namespace {
            Some(ns) => Api::namespaced(client.clone(), ns),
            None => Api::all(client.clone()),
        }
    }

    let mut ctx = Context::new(client.clone(), orchestrator);
    let triggers = ctx.orchestrator.triggers(namespace.as_deref());
    ctx.poll = triggers.poll;
    ctx.metrics = reporting.metrics.clone();
    ctx.status_settle = tuning.status_settle;
    // The templates GameServers name, GameTemplates where the GameServers are
    // watched and ClusterGameTemplates cluster-wide: read from these caches,
    // and a change of one reconciles every server naming it.
    let (namespaced, writer) = reflector::store();
    let game_templates = watcher(api::<GameTemplate>(&client, &namespace), watcher::Config::default())
        .default_backoff()
        .modify(|t| t.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects();
    let (cluster, writer) = reflector::store();
    let cluster_templates = watcher(Api::<ClusterGameTemplate>::all(client.clone()), watcher::Config::default())
        .default_backoff()
        .modify(|t| t.metadata.managed_fields = None)
        .reflect(writer)
        .touched_objects();
    ctx.templates = Some(Templates { namespaced, cluster });
    let ctx = Arc::new(ctx);
    // The GameServers' cache keeps no field records: nothing here reads them,
    // and at a thousand servers they are megabytes.
    let (store, writer) = reflector::store();
    let gameservers = watcher(api::<GameServer>(&client, &namespace), watcher::Config::default())
        .default_backoff()
        .modify(|gs| gs.metadata.managed_fields = None)
        .reflect(writer)
        .applied_objects();
    let controller = Controller::for_stream(gameservers, store)
        .with_config(controller::Config::default().concurrency(tuning.concurrency))
        .trigger_backoff(NoSharedPause)
        .graceful_shutdown_on(shutdown);
    // What the backend says changed (on Kubernetes, the children's watches,
    // which also fill the caches it reads).
    let changes = triggers.changes.map(|key| ObjectRef::<GameServer>::new(&key.name).within(&key.namespace));
    let controller = controller.reconcile_on(changes);
    let store = controller.store();
    let servers = store.clone();
    let controller = controller.watches_stream(game_templates, move |t: GameTemplate| {
        naming(&servers, TemplateKind::GameTemplate, t.namespace(), t.name_any())
    });
    let servers = store.clone();
    let controller = controller.watches_stream(cluster_templates, move |t: ClusterGameTemplate| {
        naming(&servers, TemplateKind::ClusterGameTemplate, None, t.name_any())
    });
    reporting.metrics.watch_gameservers(store.clone());
    let synced = async move {
        // Fails only when the controller stopped before its first list.
        if store.wait_until_ready().await.is_ok() {
            info!("GameServer cache synced");
            reporting.health.set_synced();
        }
    };
    let reconciling = controller.run(reconcile, error_policy, ctx).for_each(|result| async move {
        match result {
            // Logged by error_policy already.
            Ok(_) | Err(controller::Error::ReconcilerFailed(..)) => {}
            // A GameServer deleted while a reconcile of it was queued.
            Err(e @ controller::Error::ObjectNotFound(_)) => debug!(error = %e, "controller"),
            // The controller's own: watch failures and the like.
            Err(e) => warn!(error = %e, "controller"),
        }
    });
    futures::join!(reconciling, synced);
}

/// The backoff of the controller's merged trigger stream: none. Every watch
/// backs off on its own errors (`default_backoff` on each stream); a shared
/// pause would stop all of them for the error of one. After an API server
/// restart, the six watches failing in turn grew that shared pause to 30 s per
/// error, and no reconcile ran for minutes (the reliability test caught it).
struct NoSharedPause;

impl Iterator for NoSharedPause {
    type Item = Duration;

    fn next(&mut self) -> Option<Duration> {
        Some(Duration::ZERO)
    }
}

impl kube::runtime::utils::Backoff for NoSharedPause {
    fn reset(&mut self) {}
}

async fn reconcile<O: Orchestrator>(gs: Arc<GameServer>, ctx: Arc<Context<O>>) -> Result<Action, Error> {
    let ns = gs.namespace().unwrap_or_default();
    let span =
        info_span!("reconcile", gameserver = %gs.name_any(), namespace = %ns, generation = gs.metadata.generation);
    let started = Instant::now();
    let result = async {
        let api = Api::<GameServer>::namespaced(ctx.client.clone(), &ns);
        let action = match finalizer(&api, api::FINALIZER, gs.clone(), |event| async {
            match event {
                Finalized::Apply(gs) => apply(&gs, &ctx).await,
                Finalized::Cleanup(gs) => cleanup(&gs, &ctx).await,
            }
        })
        .await
        {
            Ok(action) => action,
            // A cleanup that ran again on a cached copy of a GameServer whose
            // finalizer was already removed: it is gone, which is the goal.
            Err(kube::runtime::finalizer::Error::RemoveFinalizer(kube::Error::Api(s))) if s.code == 404 => {
                Action::await_change()
            }
            Err(
                kube::runtime::finalizer::Error::ApplyFailed(e) | kube::runtime::finalizer::Error::CleanupFailed(e),
            ) => {
                return Err(e);
            }
            Err(other) => return Err(Error::Finalizer(Box::new(other))),
        };
        ctx.failures.lock().unwrap().remove(&ObjectRef::from_obj(&*gs));
        Ok(action)
    }
    .instrument(span)
    .await;
    ctx.metrics.reconciled(started.elapsed(), result.as_ref().err().map(Error::reason));
    result
}

fn now() -> Time {
    Time(Timestamp::now())
}

/// What `gs` runs ([`lookup::plan`]), its template read from the caches:
/// `None` while they have not listed the templates yet.
async fn planned<O>(gs: &GameServer, ctx: &Context<O>) -> Option<Result<Planned, Unresolved>> {
    let template = match (lookup::wanted(gs), &ctx.templates) {
        (None, _) => None,
        (Some(wanted), Some(templates)) => templates.get(&wanted).await.ok()?,
        (Some(_), None) => return None,
    };
    Some(lookup::plan(gs, template.as_ref()))
}

/// `gs` with the spec that runs: for a server made from a template, its
/// resolved spec (the stop, the ready lines, the startup timeout the
/// template gives), which its status and Events are computed from.
fn running<'a>(gs: &'a GameServer, planned: &Planned) -> Cow<'a, GameServer> {
    if gs.spec.template.is_none() {
        return Cow::Borrowed(gs);
    }
    Cow::Owned(GameServer { spec: planned.spec.clone(), ..gs.clone() })
}

/// The GameServer exists: make the runtime match it and report what runs.
/// A server made from a template that does not resolve has nothing applied
/// ([`unresolved`]).
async fn apply<O: Orchestrator>(gs: &GameServer, ctx: &Context<O>) -> Result<Action, Error> {
    let planned = match planned(gs, ctx).await {
        Some(Ok(planned)) => planned,
        Some(Err(why)) => return unresolved(gs, why, ctx).await,
        None => {
            warn!(gameserver = %gs.name_any(), namespace = ?gs.namespace(), retry_in = ?TEMPLATES_SYNC_WAIT, "the game template caches have not listed the templates yet (may the controller list gametemplates and clustergametemplates?)");
            return Ok(Action::requeue(TEMPLATES_SYNC_WAIT));
        }
    };
    let gs = &*running(gs, &planned);
    let plan = planned.plan;
    if let Err(e) = ctx.orchestrator.apply(&Owner::of(gs), &plan).await {
        ctx.publish(gs, EventType::Warning, "ApplyFailed", "Apply", e.to_string()).await;
        // The status says so too: `kubectl get` shows a server that cannot
        // run, and its conditions why (an Event alone is gone within the hour).
        ctx.settling.lock().unwrap().remove(&ObjectRef::from_obj(gs));
        let status = status::apply_failed(gs, e.reason(), &e.to_string(), e.is_permanent(), &now());
        if let Err(write) = report(gs, &status, ctx).await {
            // The apply's error is the one retried and reported.
            debug!(error = %write, "writing the status of a failed apply");
        }
        return Err(e.into());
    }
    let observed = ctx.orchestrator.observe(&plan).await?;
    let (read, read_wait) = read_report(gs, &plan, &observed, ctx).await;
    let now = now();
    let key = ObjectRef::from_obj(gs);
    // A status held back is where this server's story stands: the startup
    // clock runs from when Starting was first seen, written or not.
    let held = ctx.settling.lock().unwrap().get(&key).filter(|h| h.over == gs.status).cloned();
    let mut prev = held.as_ref().map_or(gs.status.clone(), |h| Some(h.status.clone()));
    // The players this controller computed last are newer than a cache that
    // does not show its write yet.
    let remembered =
        ctx.reading.lock().unwrap().get(&key).filter(|c| c.uid == gs.uid()).and_then(|c| c.players.clone());
    if let (Some(prev), Some(players)) = (prev.as_mut(), remembered) {
        prev.players = Some(players);
    }
    let mut status = status::compute_for(&gs.spec, gs.metadata.generation, prev.as_ref(), &observed, &now);
    if gs.spec.players.is_some()
        && let Some(players) = read
    {
        status.players = Some(status::players::read(status.players.as_ref(), players.count, &players.names, &now));
    }
    if gs.spec.players.is_some() {
        ctx.reading.lock().unwrap().entry(key.clone()).or_default().of(gs.uid()).players = status.players.clone();
    }
    ctx.metrics.set_players(&plan.namespace, &plan.name, status.players.as_ref().map(|p| p.count));
    let mut wait = status::needs_requeue_for(&status, &gs.spec, &now).map_or(RESYNC, |d| d.min(RESYNC));
    if let Some(read_wait) = read_wait {
        wait = wait.min(read_wait);
    }
    let since = held.map_or_else(Instant::now, |h| h.since);
    match settle_until(gs.status.as_ref(), &status, since, ctx.status_settle) {
        Some(until) => {
            let over = gs.status.clone();
            ctx.settling.lock().unwrap().insert(key, Settling { status, over, since });
            wait = wait.min(until.saturating_duration_since(Instant::now()));
        }
        None => {
            ctx.settling.lock().unwrap().remove(&key);
            report(gs, &status, ctx).await?;
        }
    }
    let wait = ctx.poll.map_or(wait, |poll| wait.min(poll));
    Ok(Action::requeue(wait))
}

/// A server made from a template that does not resolve (`why`): nothing is
/// applied, whatever runs is left running, and the status says why
/// ([`status::unresolved`]), with a Warning Event of the same reason the
/// first time it says it. The template's watch and the server's own bring
/// the next reconcile: no requeue but the resync.
async fn unresolved<O: Orchestrator>(gs: &GameServer, why: Unresolved, ctx: &Context<O>) -> Result<Action, Error> {
    ctx.settling.lock().unwrap().remove(&ObjectRef::from_obj(gs));
    let said = gs
        .status
        .as_ref()
        .and_then(|s| status::condition(&s.conditions, api::conditions::DEGRADED))
        .is_some_and(|c| c.status == "True" && c.reason == why.reason && c.message == why.message);
    let status = status::unresolved(gs, why.reason, &why.message, &now());
    report(gs, &status, ctx).await?;
    if !said {
        ctx.publish(gs, EventType::Warning, why.reason, "Resolve", why.message).await;
    }
    let wait = ctx.poll.map_or(RESYNC, |poll| RESYNC.min(poll));
    Ok(Action::requeue(wait))
}

/// Reads the supervisor's report of a running server that asks for one, when
/// it is due ([`reading::read`]), and publishes the output events it has anew.
/// Returns the players read (`None` when nothing was read or the report
/// counts none) and how long until the next read is due (`None` when none is:
/// the server asks for no report, or nothing runs it). A failed read is
/// logged and counted, and changes nothing else: the reconcile goes on, the
/// server's readiness is the probes'.
async fn read_report<O: Orchestrator>(
    gs: &GameServer,
    plan: &ServerPlan,
    observed: &Observed,
    ctx: &Context<O>,
) -> (Option<PlayersReport>, Option<Duration>) {
    let Some(reader) = reading::reader(&ctx.orchestrator, plan, observed) else { return (None, None) };
    let key = ObjectRef::from_obj(gs);
    let mut cursor = ctx.reading.lock().unwrap().entry(key.clone()).or_default().of(gs.uid()).clone();
    let (players, events) =
        match reading::read(reader, plan, &mut cursor, (reading::INTERVAL, REPORT_TIMEOUT, ctx.started_ms)).await {
            reading::Read::NotDue(wait) => return (None, Some(wait)),
            reading::Read::Done { players, events, answers } => {
                answers.into_iter().for_each(|ok| ctx.metrics.report_read(ok));
                (players, events)
            }
        };
    for event in events {
        let warning = plan.container.supervisor.as_ref().is_some_and(|s| s.warns(&event.reason));
        let type_ = if warning { EventType::Warning } else { EventType::Normal };
        ctx.publish(gs, type_, &event.reason, "Output", event.line).await;
    }
    let mut reading = ctx.reading.lock().unwrap();
    let kept = reading.entry(key).or_default();
    // The players stay the ones the status computation keeps.
    cursor.players = kept.players.take();
    *kept = cursor;
    (players, Some(reading::INTERVAL))
}

/// Until when a newly computed status waits before it is written, or `None`
/// to write it now (or leave it, when it equals the one written). `since` is
/// when the server's unwritten status started to wait.
fn settle_until(
    written: Option<&GameServerStatus>,
    next: &GameServerStatus,
    since: Instant,
    settle: Duration,
) -> Option<Instant> {
    if written == Some(next) || !status::may_settle(written, next) {
        return None;
    }
    let until = since + settle;
    (Instant::now() < until).then_some(until)
}

/// The GameServer is being deleted: tear the runtime down, honouring the
/// reclaim policy, and keep the finalizer until that is done.
///
/// The runtime objects are named after the GameServer, and its volume is its
/// own (`spec.storage`): a server made from a template is torn down the same
/// way when its template is gone. When the template still resolves, its
/// resolved spec is the one the Events speak of (the stop the template gives).
async fn cleanup<O: Orchestrator>(gs: &GameServer, ctx: &Context<O>) -> Result<Action, Error> {
    let key = ObjectRef::from_obj(gs);
    ctx.settling.lock().unwrap().remove(&key);
    let plan = plan::plan(gs);
    let resolved = match planned(gs, ctx).await {
        Some(Ok(planned)) => Some(planned),
        _ => None,
    };
    let gs = &*resolved.as_ref().map_or(Cow::Borrowed(gs), |p| running(gs, p));
    // Read from the object as it is now: a policy changed during deletion
    // counts, and anything but an explicit Delete keeps the data.
    let reclaim = gs.spec.storage.as_ref().map_or(ReclaimPolicy::Retain, |s| s.reclaim_policy);
    match ctx.orchestrator.teardown(&plan, reclaim).await {
        Ok(Teardown::Done) => {
            let note = match (plan.volume.is_some(), reclaim) {
                (true, ReclaimPolicy::Retain) => format!("removed; volume {} kept", plan::volume_name(&plan.name)),
                (true, ReclaimPolicy::Delete) => "removed with its volume".to_string(),
                (false, _) => "removed".to_string(),
            };
            let uid = gs.uid().unwrap_or_default();
            if first_deleted(&mut ctx.deleted.lock().unwrap(), &uid, Instant::now()) {
                ctx.publish(gs, EventType::Normal, "Deleted", "Teardown", note).await;
            }
            ctx.reported.lock().unwrap().remove(&key);
            ctx.reading.lock().unwrap().remove(&key);
            ctx.metrics.set_players(&plan.namespace, &plan.name, None);
            Ok(Action::await_change())
        }
        Ok(Teardown::Pending) => {
            let status = status::terminating(gs, None, &now());
            report(gs, &status, ctx).await?;
            Err(Error::TeardownPending)
        }
        Err(e) => {
            let message = e.to_string();
            let status = status::terminating(gs, Some((e.reason(), &message)), &now());
            let first = !status::is_true(
                gs.status.as_ref().map(|s| s.conditions.as_slice()).unwrap_or_default(),
                api::conditions::SHUTDOWN_FAILED,
            );
            // The status write may fail for the same reason; the Event and the
            // error still say why.
            let _ = report(gs, &status, ctx).await;
            if first {
                ctx.publish(gs, EventType::Warning, "ShutdownFailed", "Teardown", message).await;
            }
            Err(e.into())
        }
    }
}

/// Writes the status when it differs from what the object has.
async fn write_status<O>(gs: &GameServer, status: &GameServerStatus, ctx: &Context<O>) -> Result<(), Error> {
    if gs.status.as_ref() == Some(status) {
        return Ok(());
    }
    let api = Api::<GameServer>::namespaced(ctx.client.clone(), &gs.namespace().unwrap_or_default());
    let patch = json!({
        "apiVersion": GameServer::api_version(&()),
        "kind": GameServer::kind(&()),
        "status": status,
    });
    api.patch_status(&gs.name_any(), &PatchParams::apply(api::FIELD_MANAGER).force(), &Patch::Apply(&patch))
        .await
        .map_err(|source| Error::Kube { what: "status", source })?;
    Ok(())
}

/// Writes the status (when it differs) and publishes the Events of what it
/// reports anew, compared with the last status written: `Created` once it
/// names the runtime object, and one Event for the phase it enters.
async fn report<O: Orchestrator>(gs: &GameServer, status: &GameServerStatus, ctx: &Context<O>) -> Result<(), Error> {
    let key = ObjectRef::from_obj(gs);
    let remembered = ctx.reported.lock().unwrap().get(&key).filter(|r| r.uid == gs.uid()).cloned();
    let before = remembered.unwrap_or_else(|| Reported::of(gs, gs.status.as_ref()));
    write_status(gs, status, ctx).await?;
    let after = Reported::of(gs, Some(status));
    ctx.reported.lock().unwrap().insert(key, after.clone());
    for (type_, reason, note) in announcements(gs, &before, &after, status) {
        ctx.publish(gs, type_, reason, "Reconcile", note).await;
    }
    Ok(())
}

/// The Events of a status that reports `after` where the last one reported
/// `before`.
fn announcements(
    gs: &GameServer,
    before: &Reported,
    after: &Reported,
    status: &GameServerStatus,
) -> Vec<(EventType, &'static str, String)> {
    let mut events = Vec::new();
    let name = gs.name_any();
    if after.created && !before.created {
        let what = status.backend_ref.as_deref().unwrap_or_default();
        events.push((EventType::Normal, "Created", format!("created the runtime objects of {name} ({what})")));
    }
    if let Some(event) = stop_command(gs, before, after) {
        events.push(event);
    }
    let Some(phase) = after.phase.filter(|p| before.phase != Some(*p)) else { return events };
    info!(from = ?before.phase, to = ?phase, "phase changed");
    let ready_message = status::condition(&status.conditions, api::conditions::READY)
        .map(|c| c.message.clone())
        .filter(|m| !m.is_empty());
    events.push(match phase {
        Phase::Pending => (
            EventType::Normal,
            "Pending",
            ready_message.unwrap_or_else(|| "waiting for the runtime to create the server".to_string()),
        ),
        Phase::Running => (
            EventType::Normal,
            "Started",
            match (&status.address, status.ports.first()) {
                (Some(a), Some(p)) => format!("ready for players at {a}:{} ({})", p.port, p.name),
                (Some(a), None) => format!("ready for players at {a}"),
                _ => "ready for players".to_string(),
            },
        ),
        Phase::Starting => (EventType::Normal, "Starting", "starting the game server".to_string()),
        Phase::Stopping => (EventType::Normal, "Stopping", "stopping the game server; data is kept".to_string()),
        Phase::Stopped => (EventType::Normal, "Stopped", "the game server is stopped; data is kept".to_string()),
        Phase::Failed => (EventType::Warning, "Failed", failure_note(status)),
        Phase::Terminating => {
            let volume = match gs.spec.storage.as_ref().map(|s| s.reclaim_policy) {
                Some(ReclaimPolicy::Retain) => format!("; volume {} is kept", plan::volume_name(&name)),
                Some(ReclaimPolicy::Delete) => format!("; volume {} goes too", plan::volume_name(&name)),
                None => String::new(),
            };
            (EventType::Normal, "Terminating", format!("deleting the game server{volume}"))
        }
    });
    events
}

/// The `StopCommand` Event when the status reports that mettaton stops the
/// game of a server with `shutdown.stop`, which its supervisor then types
/// into the console or sends as a signal: the server that ran (or was
/// starting) enters Stopping or Stopped (`state: Stopped`) or Terminating
/// (deletion), or a new template rolls out over it because mettaton changed
/// it (a new generation, a restart asked). A pod Kubernetes replaces by
/// itself (an eviction) is not mettaton's doing, and a rollout that goes on
/// is announced once.
fn stop_command(gs: &GameServer, before: &Reported, after: &Reported) -> Option<(EventType, &'static str, String)> {
    let shutdown = gs.spec.shutdown.as_ref()?;
    let stop = shutdown.stop.as_deref()?;
    if !matches!(before.phase, Some(Phase::Starting | Phase::Running | Phase::Failed)) {
        return None;
    }
    let why = match after.phase {
        Some(Phase::Stopping | Phase::Stopped) => "state: Stopped",
        Some(Phase::Terminating) => "the GameServer is deleted",
        _ if after.rolling_out && after.restart != before.restart => "a restart was asked",
        _ if after.rolling_out && after.generation != before.generation => "its spec changed",
        _ => return None,
    };
    let how = match mettaton_supervisor::Stop::parse(stop) {
        Ok(mettaton_supervisor::Stop::Line(line)) => format!("typing `{line}` into the game's console"),
        Ok(_) => format!("sending {stop} to the game"),
        // Refused at apply, named there.
        Err(_) => return None,
    };
    let grace = shutdown.grace_period_seconds;
    Some((
        EventType::Normal,
        "StopCommand",
        format!(
            "stopping the game ({why}) by {how} (shutdown.stop); it has {grace} s (shutdown.gracePeriodSeconds) to exit before it is killed"
        ),
    ))
}

/// Why the server failed, from its Degraded or Ready condition.
fn failure_note(status: &GameServerStatus) -> String {
    [api::conditions::DEGRADED, api::conditions::READY]
        .iter()
        .filter_map(|t| status::condition(&status.conditions, t))
        .map(|c| c.message.clone())
        .find(|m| !m.is_empty())
        .unwrap_or_else(|| "the game server failed".to_string())
}

/// After a failed reconcile: log, and retry with a per-object exponential
/// backoff (1 s, 2 s, 4 s... up to 5 min), reset by the next success.
fn error_policy<O: Orchestrator>(gs: Arc<GameServer>, error: &Error, ctx: Arc<Context<O>>) -> Action {
    let mut failures = ctx.failures.lock().unwrap();
    let count = failures.entry(ObjectRef::from_obj(&*gs)).or_insert(0);
    *count = count.saturating_add(1);
    if matches!(error, Error::TeardownPending) {
        let wait = backoff(*count).min(TEARDOWN_POLL_MAX);
        debug!(gameserver = %gs.name_any(), namespace = ?gs.namespace(), retry_in = ?wait, "teardown in progress");
        return Action::requeue(ctx.poll.map_or(wait, |poll| wait.min(poll)));
    }
    let delay = backoff(*count);
    warn!(gameserver = %gs.name_any(), namespace = ?gs.namespace(), reason = error.reason(), error = %error, failures = *count, retry_in = ?delay, "reconcile failed");
    Action::requeue(delay)
}

/// The wait after `failures` consecutive failures.
fn backoff(failures: u32) -> Duration {
    let exp = failures.saturating_sub(1).min(16);
    BACKOFF_MIN.saturating_mul(1 << exp).min(BACKOFF_MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn a_teardown_is_announced_done_once_per_incarnation_and_forgotten_later() {
        let mut deleted = HashMap::new();
        let t0 = Instant::now();
        assert!(first_deleted(&mut deleted, "uid-1", t0));
        assert!(!first_deleted(&mut deleted, "uid-1", t0 + Duration::from_secs(1)), "the same one again");
        assert!(first_deleted(&mut deleted, "uid-2", t0 + Duration::from_secs(2)), "another incarnation");
        // Long after, both are forgotten: the memory does not grow with every deletion ever made.
        let later = t0 + DELETED_REMEMBERED + Duration::from_secs(3);
        assert!(first_deleted(&mut deleted, "uid-3", later));
        assert_eq!(deleted.len(), 1);
    }

    #[test]
    fn every_reason_is_listed() {
        let text = || String::new();
        let backend = |e: BackendError| match e {
            // Exhaustive: a new backend error must be added here and to REASONS.
            BackendError::Unreachable(_)
            | BackendError::ImageMissing { .. }
            | BackendError::PortTaken { .. }
            | BackendError::Refused { .. }
            | BackendError::Other { .. } => Error::Backend(e),
        };
        let errors = [
            backend(BackendError::Unreachable(text())),
            backend(BackendError::ImageMissing { image: text(), reason: text() }),
            backend(BackendError::PortTaken { port: 1, protocol: text(), holder: text() }),
            backend(BackendError::Refused { what: text(), reason: text() }),
            backend(BackendError::Other { what: text(), reason: text() }),
            Error::Kube { what: "status", source: kube::Error::Api(kube::core::Status::failure("", "").boxed()) },
            Error::TeardownPending,
            Error::Finalizer(Box::new(kube::runtime::finalizer::Error::UnnamedObject)),
        ];
        let reasons: Vec<&str> = errors.iter().map(Error::reason).collect();
        assert_eq!(reasons, Error::REASONS);
    }

    #[test]
    fn a_passing_phase_waits_until_it_has_stood_for_the_settle_time() {
        let status = |phase: Phase| GameServerStatus { phase: Some(phase), ..Default::default() };
        let settle = Duration::from_secs(5);
        let now = Instant::now();
        // A first Pending waits until settle after it was first seen
        let until = settle_until(None, &status(Phase::Pending), now, settle).expect("waits");
        assert_eq!(until, now + settle);
        // Starting after it keeps the first one's clock
        let earlier = now - Duration::from_secs(3);
        assert_eq!(settle_until(None, &status(Phase::Starting), earlier, settle), Some(earlier + settle));
        // Once it has stood for the settle time, it is written
        let long_ago = now - Duration::from_secs(6);
        assert_eq!(settle_until(None, &status(Phase::Starting), long_ago, settle), None);
        // Running is never held back, nor a status equal to the one written
        assert_eq!(settle_until(None, &status(Phase::Running), now, settle), None);
        let pending = status(Phase::Pending);
        assert_eq!(settle_until(Some(&pending), &pending, now, settle), None);
        // A zero settle time writes everything at once
        assert_eq!(settle_until(None, &status(Phase::Pending), now, Duration::ZERO), None);
    }

    fn reasons(events: Vec<(EventType, &'static str, String)>) -> Vec<&'static str> {
        events.into_iter().map(|(_, reason, _)| reason).collect()
    }

    /// One Event per phase the status enters, Pending and Terminating
    /// included, and `Created` once: when the status first names the runtime
    /// object, not on every reconcile before that.
    #[test]
    fn events_announce_what_the_status_reports_anew() {
        let gs: GameServer = serde_json::from_value(json!({
            "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
            "metadata": { "name": "mc", "namespace": "games", "uid": "u1" },
            "spec": { "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }],
                      "storage": { "size": "1Gi" } }
        }))
        .unwrap();
        let status = |phase: Phase, created: bool| GameServerStatus {
            phase: Some(phase),
            backend_ref: created.then(|| "deployment/mc".to_string()),
            ..Default::default()
        };
        let events = |before: Option<&GameServerStatus>, after: &GameServerStatus| {
            reasons(announcements(&gs, &Reported::of(&gs, before), &Reported::of(&gs, Some(after)), after))
        };
        // A quick start: the first status written is Running.
        assert_eq!(events(None, &status(Phase::Running, true)), ["Created", "Started"]);
        // A start that waited: each phase written is announced once; the
        // runtime object's creation once, when it first shows.
        let pending = status(Phase::Pending, false);
        assert_eq!(events(None, &pending), ["Pending"]);
        assert_eq!(events(Some(&pending), &status(Phase::Starting, true)), ["Created", "Starting"]);
        assert_eq!(events(Some(&status(Phase::Starting, true)), &status(Phase::Running, true)), ["Started"]);
        // Nothing new, nothing announced.
        assert_eq!(events(Some(&status(Phase::Running, true)), &status(Phase::Running, true)), Vec::<&str>::new());
        // Deletion.
        let terminating = announcements(
            &gs,
            &Reported::of(&gs, Some(&status(Phase::Running, true))),
            &Reported::of(&gs, Some(&status(Phase::Terminating, true))),
            &status(Phase::Terminating, true),
        );
        assert_eq!(terminating.len(), 1);
        assert_eq!(
            (terminating[0].1, terminating[0].2.as_str()),
            ("Terminating", "deleting the game server; volume mc-data is kept")
        );
    }

    /// `StopCommand` once for each stop mettaton causes of a server whose
    /// game stops by `shutdown.stop`: `state: Stopped`, deletion, a restart
    /// or a spec change rolling out; not for a pod Kubernetes replaced, nor
    /// again while the stop goes on.
    #[test]
    fn the_stop_command_is_announced_when_mettaton_stops_the_game() {
        let server = |stop: Option<&str>, restarted: Option<&str>| -> GameServer {
            let mut gs: GameServer = serde_json::from_value(json!({
                "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
                "metadata": { "name": "mc", "namespace": "games", "uid": "u1" },
                "spec": { "image": "game:1", "command": ["/game"], "ports": [{ "name": "game", "containerPort": 7777 }],
                          "shutdown": { "gracePeriodSeconds": 30 } }
            }))
            .unwrap();
            gs.spec.shutdown.as_mut().unwrap().stop = stop.map(str::to_string);
            if let Some(at) = restarted {
                gs.metadata.annotations = Some([(plan::ANNOTATION_RESTARTED_AT.to_string(), at.to_string())].into());
            }
            gs
        };
        let status = |phase: Phase, generation: i64, rolling_out: bool| {
            let mut s =
                GameServerStatus { phase: Some(phase), observed_generation: Some(generation), ..Default::default() };
            let (reason, progressing) =
                if rolling_out { (status::reason::ROLLING_OUT, true) } else { (status::reason::STABLE, false) };
            status::set_condition(
                &mut s.conditions,
                api::conditions::PROGRESSING,
                progressing,
                reason,
                "",
                Some(generation),
                &now(),
            );
            s
        };
        // `before` as the status written last over the object then; `after`
        // over the object now.
        let stops = |then: &GameServer, before: &GameServerStatus, now: &GameServer, after: &GameServerStatus| {
            let events = announcements(now, &Reported::of(then, Some(before)), &Reported::of(now, Some(after)), after);
            events
                .into_iter()
                .filter(|(_, reason, _)| *reason == "StopCommand")
                .map(|(_, _, note)| note)
                .collect::<Vec<_>>()
        };
        let gs = server(Some("stop"), None);
        let running = status(Phase::Running, 1, false);

        let stopped = stops(&gs, &running, &gs, &status(Phase::Stopping, 2, false));
        assert_eq!(
            stopped,
            [
                "stopping the game (state: Stopped) by typing `stop` into the game's console (shutdown.stop); it has 30 s (shutdown.gracePeriodSeconds) to exit before it is killed"
            ]
        );
        assert_eq!(stops(&gs, &running, &gs, &status(Phase::Stopped, 2, false)).len(), 1, "stopped at once");
        assert!(
            stops(&gs, &status(Phase::Stopping, 2, false), &gs, &status(Phase::Stopped, 2, false)).is_empty(),
            "once"
        );
        let deleted = stops(&gs, &running, &gs, &status(Phase::Terminating, 2, false));
        assert!(
            deleted[0].starts_with("stopping the game (the GameServer is deleted) by typing `stop`"),
            "{deleted:?}"
        );
        assert!(stops(&gs, &status(Phase::Stopped, 2, false), &gs, &status(Phase::Terminating, 3, false)).is_empty());

        // A restart asked: the new pod's rollout stops the game.
        let restarted = server(Some("stop"), Some("2026-01-01T00:00:00Z"));
        let rolling = status(Phase::Starting, 1, true);
        let notes = stops(&gs, &running, &restarted, &rolling);
        assert!(notes[0].starts_with("stopping the game (a restart was asked)"), "{notes:?}");
        assert!(stops(&restarted, &rolling, &restarted, &rolling).is_empty(), "once");
        // A spec change rolling out.
        let notes = stops(&gs, &running, &gs, &status(Phase::Starting, 2, true));
        assert!(notes[0].starts_with("stopping the game (its spec changed)"), "{notes:?}");
        // A pod Kubernetes replaced (an eviction): the same generation and restart.
        assert!(stops(&gs, &running, &gs, &rolling).is_empty());
        // A server that was not running has no game to stop.
        assert!(stops(&gs, &status(Phase::Stopped, 1, false), &gs, &status(Phase::Terminating, 2, false)).is_empty());
        // A signal is sent, not typed; without shutdown.stop, nothing is announced.
        let signalled = server(Some("^C"), None);
        let notes = stops(&signalled, &running, &signalled, &status(Phase::Stopping, 2, false));
        assert!(
            notes[0].starts_with("stopping the game (state: Stopped) by sending ^C to the game (shutdown.stop)"),
            "{notes:?}"
        );
        let plain = server(None, None);
        assert!(stops(&plain, &running, &plain, &status(Phase::Stopping, 2, false)).is_empty());
    }

    /// A template's change wakes exactly the servers naming it: the kind,
    /// the namespace (a GameTemplate's is the server's own) and the name.
    #[test]
    fn a_template_change_maps_to_the_servers_naming_it() {
        let server = |ns: &str, name: &str, template: Option<(&str, &str)>| -> GameServer {
            let mut spec = json!({ "image": "game:1", "ports": [{ "name": "game", "containerPort": 7777 }] });
            if let Some((kind, t)) = template {
                spec = json!({ "template": { "kind": kind, "name": t } });
            }
            serde_json::from_value(json!({
                "apiVersion": "mettaton.dev/v1alpha1", "kind": "GameServer",
                "metadata": { "name": name, "namespace": ns }, "spec": spec
            }))
            .unwrap()
        };
        let (store, mut writer) = reflector::store();
        for gs in [
            server("a", "one", Some(("GameTemplate", "paper"))),
            server("b", "two", Some(("GameTemplate", "paper"))),
            server("a", "three", Some(("ClusterGameTemplate", "paper"))),
            server("a", "four", Some(("GameTemplate", "vanilla"))),
            server("a", "five", None),
        ] {
            writer.apply_watcher_event(&watcher::Event::Apply(gs));
        }
        let names = |kind, ns: Option<&str>, name: &str| {
            let mut refs: Vec<String> = naming(&store, kind, ns.map(str::to_string), name.to_string())
                .into_iter()
                .map(|r| format!("{}/{}", r.namespace.unwrap_or_default(), r.name))
                .collect();
            refs.sort();
            refs
        };
        assert_eq!(names(TemplateKind::GameTemplate, Some("a"), "paper"), ["a/one"]);
        assert_eq!(names(TemplateKind::GameTemplate, Some("b"), "paper"), ["b/two"]);
        assert_eq!(names(TemplateKind::ClusterGameTemplate, None, "paper"), ["a/three"]);
        assert_eq!(names(TemplateKind::GameTemplate, Some("a"), "vanilla"), ["a/four"]);
        assert!(names(TemplateKind::ClusterGameTemplate, None, "vanilla").is_empty());
    }

    #[test]
    fn backoff_doubles_from_one_second_up_to_five_minutes() {
        let waits: Vec<u64> = (1..=11).map(|n| backoff(n).as_secs()).collect();
        assert_eq!(waits, vec![1, 2, 4, 8, 16, 32, 64, 128, 256, 300, 300]);
        assert_eq!(backoff(u32::MAX), BACKOFF_MAX);
    }
}
