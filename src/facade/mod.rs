//! `Mettaton`: game servers from Rust, without Kubernetes, on any
//! [`Standalone`] backend: Docker Swarm ([`SwarmOrchestrator`], the default)
//! or a plain Docker Engine.
//!
//! Connect to the backend, spawn servers from the same `GameServer`
//! manifests the Kubernetes controller takes, list and inspect them, read
//! their logs, type into their consoles (`send`, `console`), see who plays
//! (`spec.players`, in `info`/`list`), shut them down, and be told when one
//! dies or prints a line of `spec.outputEvents`. What was spawned is
//! saved to a state file, so that a new process picks the servers up again and
//! reports what vanished or appeared on the backend meanwhile.

pub mod parse;
mod phase;
mod reports;
pub mod state;
pub mod templates;
pub mod validate;
mod watcher;

pub use parse::{manifest_from_value, manifests_from_str, templates_from_str};
pub use state::Template;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::ObjectMeta;
use tokio::sync::broadcast;
use tokio::task::JoinHandle;

use crate::api::{GameServer, GameServerSpec, OutputEventType, Phase, PlayersStatus, PublishedPort, ReclaimPolicy};
use crate::orchestrator::swarm::{Daemon, SwarmOrchestrator};
use crate::orchestrator::{BackendError, Console, ConsoleSession, Observed, Orchestrator, Owner, Standalone, Teardown};
use crate::plan::{ANNOTATION_REINSTALL, ServerPlan, plan_spec};
use crate::supervisor::PlayersReport;
use state::{Recovery, SavedServer, State, server_id};

/// How often the watcher looks for servers removed behind its back.
const WATCH_PERIOD: Duration = Duration::from_millis(1000);
/// How long `spawn` waits for a server's first task to run: the manifest's
/// `health.startupTimeoutSeconds` (600 when absent).
fn startup_timeout(plan: &ServerPlan) -> Duration {
    Duration::from_secs(u64::try_from(plan.startup_timeout_seconds.max(1)).unwrap_or(1))
}
/// How long `shutdown` waits for a server's tasks to be gone.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(90);

/// What can go wrong, for the caller to act on.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Not connected: call `connect` first.
    #[error("not connected to a Docker daemon: call connect first")]
    NotConnected,
    /// The Docker daemon could not be reached.
    #[error("{0}")]
    DaemonUnreachable(String),
    /// `spec.template` names a template the facade was not given
    /// (`ClusterGameTemplate/paper`).
    #[error(
        "spec.template: {0} is not known here: give it with Mettaton::with_template (`mettaton swarm apply \
         --template FILE`)"
    )]
    TemplateNotFound(String),
    /// The server does not resolve with its template: every problem, each
    /// naming its variable and rule, or its field.
    #[error("the GameServer does not resolve with template {template}: {}", problems.join("; "))]
    Unresolved { template: String, problems: Vec<String> },
    /// The daemon answers but cannot run servers (for Docker Swarm: it is
    /// not a swarm manager); says what to do.
    #[error("{0}")]
    DaemonRefused(String),
    /// The manifest is invalid; every problem names its field.
    #[error("invalid GameServer: {}", .0.join("; "))]
    Invalid(Vec<String>),
    /// A server of that name already exists.
    #[error("a server with id {0} already exists")]
    AlreadyExists(String),
    /// No server with that id is known.
    #[error("no server with id {0}")]
    UnknownServer(String),
    /// The image is neither on the swarm's node nor in its registry.
    #[error("image {image} not found locally or in its registry: {reason}")]
    ImageMissing { image: String, reason: String },
    /// A port the server must publish is taken.
    #[error("port {port}/{protocol} is already published by {holder}")]
    PortTaken { port: i64, protocol: String, holder: String },
    /// The swarm refused the server for another reason.
    #[error("{0}")]
    Refused(String),
    /// The server did not start: its task failed or it took too long.
    #[error("server {id} did not start: {reason}")]
    StartFailed { id: String, reason: String },
    /// The server could not be shut down completely.
    #[error("server {id} was not shut down: {reason}")]
    ShutdownFailed { id: String, reason: String },
    /// The state file could not be read or written.
    #[error("{0}")]
    State(#[from] state::StateError),
    /// Any other failure of the swarm.
    #[error("{0}")]
    Backend(String),
}

impl From<BackendError> for Error {
    fn from(e: BackendError) -> Self {
        match e {
            BackendError::Unreachable(m) => Error::DaemonUnreachable(m),
            BackendError::ImageMissing { image, reason } => Error::ImageMissing { image, reason },
            BackendError::PortTaken { port, protocol, holder } => Error::PortTaken { port, protocol, holder },
            BackendError::Refused { what, reason } => Error::Refused(format!("{what}: {reason}")),
            other => Error::Backend(other.to_string()),
        }
    }
}

/// A server just spawned: its id and where players connect.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerHandle {
    pub id: String,
    /// None for a server spawned with `state: Stopped`.
    pub address: Option<String>,
    pub ports: Vec<PublishedPort>,
    /// What of the manifest Docker Swarm runs differently than asked (for
    /// instance a volume size no driver enforces), each naming its field.
    pub warnings: Vec<String>,
}

/// What is known of a server now.
#[derive(Clone, Debug, PartialEq)]
pub struct ServerInfo {
    pub id: String,
    pub name: String,
    pub namespace: String,
    /// The image that runs (the template's, for a server made from one that
    /// sets none).
    pub image: String,
    /// The template the server is made from (`ClusterGameTemplate/paper`).
    pub template: Option<String>,
    /// The phase of the one model the controller reports too
    /// (`status::compute_for`, over what this facade computed last); `Failed`
    /// when the server is gone from the backend.
    pub phase: Phase,
    /// The server's task runs.
    pub running: bool,
    /// Ready: the server runs its latest manifest and passes its health check
    /// (or runs, when it has none).
    pub healthy: bool,
    pub address: Option<String>,
    pub ports: Vec<PublishedPort>,
    pub restarts: i32,
    /// What is wrong, when something is: the failing condition's message
    /// (crash loop, startup timeout, image pull), with the backend's word for
    /// it, or the backend's word alone while nothing has failed yet.
    pub problem: Option<String>,
    /// The swarm service's id.
    pub service_id: Option<String>,
    pub spawned_at: String,
    /// The last unexpected end of the server's container this facade saw
    /// (out of memory, a failed health check, an exit code), if any.
    pub last_failure: Option<String>,
    /// What of the manifest Docker Swarm runs differently than asked.
    pub warnings: Vec<String>,
    /// Who plays, for a server with `spec.players` (`None` without, or
    /// while its game runs and was not read yet; nobody while it does not
    /// run): as the controller puts them into `status.players`, read from
    /// the server's supervisor at most once per report interval (30 s,
    /// [`Mettaton::with_report_interval`]), so up to that far behind.
    pub players: Option<PlayersStatus>,
}

/// Something that happened to a server without the caller asking.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// The server's container stopped or failed unexpectedly (the swarm
    /// restarts it). `reason` says how: out of memory, a failed health check,
    /// an exit code.
    Died { id: String, restarts: i32, reason: String },
    /// The server's health check failed (`health.failureThreshold` times in a
    /// row); swarm replaces its container, which follows as `Died`.
    Unhealthy { id: String, restarts: i32 },
    /// The server's service disappeared from the swarm without `shutdown`.
    Vanished { id: String },
    /// On connect: a saved server found again on the swarm.
    Recovered { id: String },
    /// On connect: a managed server on the swarm that the state does not know.
    Unknown { id: String },
    /// The Docker daemon stopped answering (it stopped or restarted, or the
    /// connection to it broke). Sent once, until it answers again.
    DaemonLost { reason: String },
    /// The daemon answers again, `after` it was first found lost (as the
    /// watcher saw it: to within its period of a second). Servers whose
    /// containers the daemon stopped follow as `Restarted` once swarm started
    /// new ones.
    DaemonBack { after: Duration },
    /// The server's container runs again after it died or went with the
    /// daemon (readiness may follow). `restarts` as in `info`.
    Restarted { id: String, restarts: i32 },
    /// The game printed a line matching one of its `spec.outputEvents`
    /// (what the controller publishes as an Event on the GameServer): the
    /// entry's `reason` and `type`, and the line (its first 1024 bytes).
    /// Read from the server's supervisor at most once per report interval
    /// (30 s, [`Mettaton::with_report_interval`]); each line once, and only
    /// lines printed since this facade connected.
    Output { id: String, reason: String, type_: OutputEventType, line: String },
}

/// The facade over backend `B`. Create with [`Mettaton::new`] (Docker Swarm)
/// or [`Mettaton::on`] (any backend), then [`Mettaton::connect`].
pub struct Mettaton<B: Standalone = SwarmOrchestrator> {
    target: B::Target,
    state_path: PathBuf,
    secrets_dir: Option<PathBuf>,
    supervisor_image: Option<String>,
    report_interval: Duration,
    templates: templates::Templates,
    events: broadcast::Sender<ServerEvent>,
    connection: Option<Connection<B>>,
}

struct Connection<B> {
    backend: Arc<B>,
    state: Arc<Mutex<State>>,
    shared: Arc<Shared>,
    watcher: JoinHandle<()>,
}

/// What the facade and its watcher share besides the state.
pub(crate) struct Shared {
    /// Servers restarted on purpose (`restart`), until when: the exit of
    /// their old container is no death.
    pub(crate) restarting: Mutex<HashMap<String, Instant>>,
    /// The last unexpected end of each server's container.
    pub(crate) last_failure: Mutex<HashMap<String, String>>,
    /// The status computed last for each server, which the next one is
    /// computed over.
    pub(crate) statuses: Mutex<phase::Statuses>,
    /// Where the reading of each server's supervisor report stands.
    pub(crate) readings: reports::Readings,
    /// How often a server's report is read at most.
    pub(crate) report_interval: Duration,
    /// When this connection was made (unix ms): the first read of a server
    /// takes only the lines its supervisor saw since.
    pub(crate) started_ms: u64,
    /// The event stream, for the output events of a read.
    pub(crate) events: broadcast::Sender<ServerEvent>,
}

impl Shared {
    fn new(events: broadcast::Sender<ServerEvent>, report_interval: Duration) -> Self {
        let started_ms = crate::reading::now_ms();
        Shared {
            restarting: Mutex::default(),
            last_failure: Mutex::default(),
            statuses: Mutex::default(),
            readings: reports::Readings::default(),
            report_interval,
            started_ms,
            events,
        }
    }

    /// The status of `saved` from `observed` (and the players just `read`
    /// from its supervisor, if any), computed now and remembered.
    pub(crate) fn status_of(
        &self,
        saved: &SavedServer,
        observed: &Observed,
        read: Option<&PlayersReport>,
    ) -> crate::api::GameServerStatus {
        let spec = templates::running_spec(saved);
        self.statuses.lock().unwrap().observe(&saved.id(), &spec, observed, read, &Time(Timestamp::now()))
    }

    /// A look at server `saved`: what the backend shows, its supervisor's
    /// report read when `read` asks for it and it is due (its output events
    /// sent), and the status computed from both.
    pub(crate) async fn look<B: Orchestrator>(
        &self,
        backend: &B,
        saved: &SavedServer,
        read: bool,
    ) -> Result<(ServerPlan, Observed, crate::api::GameServerStatus), BackendError> {
        let plan = plan_of(saved);
        let observed = backend.observe(&plan).await?;
        if !read {
            let status = self.status_of(saved, &observed, None);
            return Ok((plan, observed, status));
        }
        let id = saved.id();
        let mut cursor = self.readings.lock(&id).await;
        let send = |e| {
            let _ = self.events.send(e);
        };
        let timing = (self.report_interval, self.started_ms);
        let players = reports::read_due(backend, &mut cursor, timing, (&id, &plan, &observed), send).await;
        let status = self.status_of(saved, &observed, players.as_ref());
        drop(cursor);
        Ok((plan, observed, status))
    }
}

/// What `apply` did.
#[derive(Clone, Debug, PartialEq)]
pub enum Applied {
    /// No server of that name: it was spawned.
    Created(ServerHandle),
    /// The server was updated in place to the manifest (same volume), and
    /// runs it (when it should run).
    Updated { handle: ServerHandle, changes: Vec<Change> },
    /// The server already runs this manifest: nothing was written.
    Unchanged { id: String },
}

/// One field that differs between the server's manifest and a new one.
#[derive(Clone, Debug, PartialEq)]
pub struct Change {
    /// `spec.image`, `spec.env[0].value`.
    pub field: String,
    /// Absent when the field is new.
    pub from: Option<serde_json::Value>,
    /// Absent when the field is removed.
    pub to: Option<serde_json::Value>,
}

impl std::fmt::Display for Change {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let show = |v: &Option<serde_json::Value>| v.as_ref().map_or_else(|| "<none>".to_string(), |v| v.to_string());
        write!(f, "{}: {} -> {}", self.field, show(&self.from), show(&self.to))
    }
}

impl Mettaton<SwarmOrchestrator> {
    /// A facade for the swarm manager `daemon`, keeping its state in
    /// `state_path`. Nothing is contacted until `connect`.
    pub fn new(daemon: Daemon, state_path: impl Into<PathBuf>) -> Self {
        Mettaton::on(daemon, state_path)
    }
}

impl<B: Standalone> Mettaton<B> {
    /// A facade for backend `B` at `target`, keeping its state in
    /// `state_path`. Nothing is contacted until `connect`.
    pub fn on(target: B::Target, state_path: impl Into<PathBuf>) -> Self {
        Mettaton {
            target,
            state_path: state_path.into(),
            secrets_dir: None,
            supervisor_image: None,
            report_interval: crate::reading::INTERVAL,
            templates: templates::Templates::new(),
            events: broadcast::channel(1024).0,
            connection: None,
        }
    }

    /// Where the values of `env[].valueFrom.secretKeyRef` are read from, as a
    /// Kubernetes Secret volume lays them out: the file `DIR/NAMESPACE/NAME/KEY`
    /// holds the value (its exact bytes, as in a Secret). Docker Swarm cannot
    /// put a secret in an environment variable, so the value goes into the
    /// service's environment, which whoever can use the Docker API can read.
    /// Without a directory, such variables are refused.
    pub fn with_secrets_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.secrets_dir = Some(dir.into());
        self
    }

    /// The image mettaton's supervisor is taken from, for the servers whose
    /// spec needs it (`health.readyLogLine`, `shutdown.stop`): an image on the
    /// swarm's nodes (or the engine) or in a registry they pull from, as the
    /// games' images are (default [`crate::supervisor::DEFAULT_IMAGE`]).
    /// Taken at the next `connect`.
    pub fn with_supervisor_image(mut self, image: impl Into<String>) -> Self {
        self.supervisor_image = Some(image.into());
        self
    }

    /// How often at most the report of mettaton's supervisor is read from a
    /// server with `spec.players` or `spec.outputEvents` (by exec in its
    /// container): 30 s by default, as the controller does; the players in
    /// `info` and the output events are up to that far behind the game.
    /// Shorter costs one exec per such server per interval. Taken at the
    /// next `connect`.
    pub fn with_report_interval(mut self, interval: Duration) -> Self {
        self.report_interval = interval;
        self
    }

    /// The facade with a game template that manifests may name in
    /// `spec.template` (by its kind and name; a `GameTemplate` serves every
    /// namespace here). A template given again under the same kind and name
    /// replaces the one before. A server keeps the template it was last
    /// applied with (in the state file): a new process plans it with that
    /// one, and `apply` takes that one when it is given none of the name.
    pub fn with_template(mut self, template: Template) -> Self {
        self.add_template(template);
        self
    }

    /// [`Mettaton::with_template`] on a facade already made (connected or
    /// not).
    pub fn add_template(&mut self, template: Template) {
        self.templates.insert(templates::template_name(template.kind, &template.name), template);
    }

    /// The templates given, by kind and name.
    pub fn templates(&self) -> impl Iterator<Item = &Template> {
        self.templates.values()
    }

    /// The plan of `saved` with its `secretKeyRef` variables given their
    /// values, resolved with its template when it has one.
    fn plan_for(&self, saved: &SavedServer) -> Result<ServerPlan, Error> {
        let spec = self.resolved(&saved.namespace, &saved.spec)?;
        templates::plan_saved(&SavedServer { spec, ..saved.clone() })
    }

    /// The spec with its `secretKeyRef` variables given their values.
    fn resolved(&self, namespace: &str, spec: &GameServerSpec) -> Result<GameServerSpec, Error> {
        let Some(dir) = &self.secrets_dir else { return Ok(spec.clone()) };
        let mut spec = spec.clone();
        let mut problems = Vec::new();
        let mut env = Vec::with_capacity(spec.env.len());
        for (i, var) in spec.env.drain(..).enumerate() {
            let Some(secret) = var.value_from.as_ref().and_then(|f| f.secret_key_ref.as_ref()) else {
                env.push(var);
                continue;
            };
            let path = dir.join(namespace).join(&secret.name).join(&secret.key);
            match std::fs::read(&path) {
                Ok(bytes) => match String::from_utf8(bytes) {
                    Ok(value) => env.push(k8s_openapi::api::core::v1::EnvVar {
                        name: var.name,
                        value: Some(value),
                        value_from: None,
                    }),
                    Err(_) => problems
                        .push(format!("spec.env[{i}].valueFrom.secretKeyRef: {} is not UTF-8 text", path.display())),
                },
                Err(_) if secret.optional == Some(true) => {}
                Err(e) => problems.push(format!(
                    "spec.env[{i}].valueFrom.secretKeyRef: secret {} key {} not found ({}: {e})",
                    secret.name,
                    secret.key,
                    path.display()
                )),
            }
        }
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        spec.env = env;
        Ok(spec)
    }

    /// Connects to the backend (for swarm, the daemon must be a manager);
    /// loads the saved state and compares it with what the backend runs;
    /// starts the watcher. The events of
    /// the comparison (`Recovered`, `Vanished`, `Unknown`) are sent on the
    /// event stream too, for subscribers that exist before connecting.
    pub async fn connect(&mut self) -> Result<Recovery, Error> {
        self.disconnect().await;
        // Connecting checks that the daemon can run servers; a refusal can
        // only mean that it cannot (for swarm: it is no manager).
        let mut backend = B::connect(&self.target).await.map_err(|e| match e {
            BackendError::Refused { reason, .. } => Error::DaemonRefused(reason),
            other => other.into(),
        })?;
        if let Some(image) = &self.supervisor_image {
            backend = backend.with_supervisor_image(image);
        }
        let mut saved = state::load(&self.state_path)?;
        let on_swarm: Vec<String> =
            backend.list_managed().await?.into_iter().map(|k| server_id(&k.namespace, &k.name)).collect();
        let recovery = state::compare(&saved, &on_swarm);
        // Vanished servers are reported once and forgotten: nothing of them is
        // left to manage. Their volumes, kept by Retain, stay on the swarm.
        for id in &recovery.vanished {
            saved.servers.remove(id);
        }
        if !recovery.vanished.is_empty() {
            state::save(&self.state_path, &saved)?;
        }
        for id in &recovery.picked_up {
            let _ = self.events.send(ServerEvent::Recovered { id: id.clone() });
        }
        for id in &recovery.vanished {
            let _ = self.events.send(ServerEvent::Vanished { id: id.clone() });
        }
        for id in &recovery.unknown {
            let _ = self.events.send(ServerEvent::Unknown { id: id.clone() });
        }
        let backend = Arc::new(backend);
        let state = Arc::new(Mutex::new(saved));
        let shared = Arc::new(Shared::new(self.events.clone(), self.report_interval));
        let watcher = tokio::spawn(watcher::watch(
            backend.clone(),
            state.clone(),
            shared.clone(),
            self.state_path.clone(),
            self.events.clone(),
            WATCH_PERIOD,
        ));
        self.connection = Some(Connection { backend, state, shared, watcher });
        Ok(recovery)
    }

    /// Whether the facade is connected and the daemon answers.
    pub async fn is_connected(&self) -> bool {
        match &self.connection {
            Some(c) => c.backend.ping().await.is_ok(),
            None => false,
        }
    }

    /// Stops the watcher and drops the connection. Servers keep running.
    pub async fn disconnect(&mut self) {
        if let Some(c) = self.connection.take() {
            c.watcher.abort();
            let _ = c.watcher.await;
        }
    }

    /// A stream of what happens to the servers without the caller asking.
    pub fn events(&self) -> broadcast::Receiver<ServerEvent> {
        self.events.subscribe()
    }

    fn connection(&self) -> Result<&Connection<B>, Error> {
        self.connection.as_ref().ok_or(Error::NotConnected)
    }

    /// Spawns a server from a GameServer manifest (its `metadata.name` names
    /// it; `metadata.namespace` defaults to `default`) and waits until it runs
    /// and is ready, up to the manifest's `health.startupTimeoutSeconds`,
    /// returning its id and address (a server spawned `state: Stopped` is
    /// created and not waited for). On failure nothing this call created is
    /// left behind, and a volume it found (kept from an earlier server of the
    /// name) is left as it was.
    ///
    /// Create-only: a server of that name is `AlreadyExists`; [`Mettaton::apply`]
    /// creates or updates. A manifest read from text should come through
    /// [`manifests_from_str`], which refuses unknown fields.
    pub async fn spawn(&self, manifest: &GameServer) -> Result<ServerHandle, Error> {
        let c = self.connection()?;
        let (name, namespace) = checked(manifest)?;
        let id = server_id(&namespace, &name);
        if c.state.lock().unwrap().servers.contains_key(&id)
            || c.backend.list_managed().await?.iter().any(|k| k.namespace == namespace && k.name == name)
        {
            return Err(Error::AlreadyExists(id));
        }

        let saved = SavedServer {
            name: name.clone(),
            namespace: namespace.clone(),
            spec: manifest.spec.clone(),
            spawned_at: Timestamp::now().to_string(),
            template: templates::template_for(&manifest.spec, &self.templates)?,
            reinstall: reinstall_of(manifest),
        };
        let plan = self.plan_for(&saved)?;
        let owner = owner(&saved);
        // Cleanup after a failure removes only what this call created: a
        // volume that was there before (the world an earlier server of this
        // name kept) is never removed, whatever the manifest's policy.
        let cleanup = match c.backend.volume_exists(&plan).await? {
            true => ReclaimPolicy::Retain,
            false => ReclaimPolicy::Delete,
        };
        if let Err(e) = c.backend.apply(&owner, &plan).await {
            // apply undoes what it created; make sure of it.
            let _ = c.backend.teardown(&plan, cleanup).await;
            return Err(e.into());
        }
        self.remember(c, saved.clone())?;
        let warnings = c.backend.limitations(&plan);
        if plan.replicas == 0 {
            // `state: Stopped`: created, and nothing to wait for.
            return Ok(ServerHandle { id, address: None, ports: Vec::new(), warnings });
        }

        match c.wait(&saved, &plan).running(startup_timeout(&plan)).await {
            Ok(observed) => Ok(ServerHandle {
                id,
                address: observed.endpoint.address.clone(),
                ports: observed.endpoint.ports.clone(),
                warnings,
            }),
            Err(reason) => {
                // A server that cannot start is not left half-made; a volume
                // it found is left as it was.
                let _ = remove(&*c.backend, &plan, cleanup, SHUTDOWN_TIMEOUT).await;
                self.forget(c, &id)?;
                Err(Error::StartFailed { id, reason })
            }
        }
    }

    /// `kubectl apply` for the swarm: spawns the server when there is none of
    /// that name, else updates it in place to the manifest (same service, same
    /// volume, so its data is kept) and waits until it runs it, saying what
    /// changed field by field; `Unchanged` when nothing differs. What a
    /// GameServer may not change (storage removed, its class changed, its size
    /// shrunk) is refused, as the CRD's rules refuse it on Kubernetes. A failed
    /// update removes nothing.
    pub async fn apply(&self, manifest: &GameServer) -> Result<Applied, Error> {
        let c = self.connection()?;
        let (name, namespace) = checked(manifest)?;
        let id = server_id(&namespace, &name);
        let Ok(old) = self.saved(c, &id) else {
            return Ok(Applied::Created(self.spawn(manifest).await?));
        };
        // The template given, else the one the server was applied with (a
        // new process need not be given it again).
        let template = match templates::template_for(&manifest.spec, &self.templates) {
            Err(Error::TemplateNotFound(name)) => {
                let kept = old.template.clone().filter(|t| templates::template_name(t.kind, &t.name) == name);
                Some(kept.ok_or(Error::TemplateNotFound(name))?)
            }
            other => other?,
        };
        let saved =
            SavedServer { spec: manifest.spec.clone(), template, reinstall: reinstall_of(manifest), ..old.clone() };
        let changes = diff_saved(&old, &saved);
        let plan = self.plan_for(&saved)?;
        if changes.is_empty() {
            // Still applied: a service changed by hand is put back, with no
            // write when it matches.
            c.backend.apply(&owner(&old), &plan).await?;
            return Ok(Applied::Unchanged { id });
        }
        let problems = validate::update_problems(&old.spec, &manifest.spec);
        if !problems.is_empty() {
            return Err(Error::Invalid(problems));
        }
        // The update replaces the container: its exit is no death.
        let mark = |until: Instant| c.shared.restarting.lock().unwrap().insert(id.clone(), until);
        mark(Instant::now() + SHUTDOWN_TIMEOUT + startup_timeout(&plan));
        self.remember(c, saved.clone())?;
        if let Err(e) = c.backend.apply(&owner(&saved), &plan).await {
            mark(Instant::now() + Duration::from_secs(5));
            self.remember(c, old)?;
            return Err(e.into());
        }
        let warnings = c.backend.limitations(&plan);
        if plan.replicas == 0 {
            mark(Instant::now() + SHUTDOWN_TIMEOUT);
            let handle = ServerHandle { id, address: None, ports: Vec::new(), warnings };
            return Ok(Applied::Updated { handle, changes });
        }
        let rolled_out = c.wait(&saved, &plan).rolled_out(startup_timeout(&plan)).await;
        mark(Instant::now() + Duration::from_secs(5));
        match rolled_out {
            Ok(o) => Ok(Applied::Updated {
                handle: ServerHandle { id, address: o.endpoint.address, ports: o.endpoint.ports, warnings },
                changes,
            }),
            Err(reason) => Err(Error::StartFailed { id, reason }),
        }
    }

    /// Restarts the server without changing its manifest: swarm replaces its
    /// container with a new one (a forced update of its service: same spec,
    /// same volume), and this waits until the new one runs and is ready. Its
    /// old container's exit is no `Died` event; the restart does not count in
    /// `restarts`, which counts failures. A stopped server is refused.
    pub async fn restart(&self, id: &str) -> Result<ServerHandle, Error> {
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        let plan = plan_of(&saved);
        if plan.replicas == 0 {
            return Err(Error::Refused(format!(
                "server {id} is stopped (state: Stopped): there is nothing to restart"
            )));
        }
        let mark = |until: Instant| c.shared.restarting.lock().unwrap().insert(id.to_string(), until);
        mark(Instant::now() + SHUTDOWN_TIMEOUT + startup_timeout(&plan));
        let result = async {
            c.backend.restart(&plan).await?;
            c.wait(&saved, &plan)
                .rolled_out(startup_timeout(&plan))
                .await
                .map_err(|reason| Error::StartFailed { id: id.to_string(), reason })
        }
        .await;
        // The engine's events of the old container may still be on their way.
        mark(Instant::now() + Duration::from_secs(5));
        let o = result?;
        let warnings = c.backend.limitations(&plan);
        Ok(ServerHandle { id: id.to_string(), address: o.endpoint.address, ports: o.endpoint.ports, warnings })
    }

    /// The servers this facade manages, with their current state.
    pub async fn list(&self) -> Result<Vec<ServerInfo>, Error> {
        let c = self.connection()?;
        let saved: Vec<SavedServer> = c.state.lock().unwrap().servers.values().cloned().collect();
        let mut infos = Vec::with_capacity(saved.len());
        for s in &saved {
            infos.push(describe(c, s).await?);
        }
        Ok(infos)
    }

    /// One server's state, health, address, ports and restarts.
    pub async fn info(&self, id: &str) -> Result<ServerInfo, Error> {
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        describe(c, &saved).await
    }

    /// The last `tail` lines the server printed (all when `None`).
    pub async fn logs(&self, id: &str, tail: Option<i64>) -> Result<String, Error> {
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        Ok(c.backend.logs(&plan_of(&saved), tail).await?)
    }

    /// Shuts the server down and removes it; its data volume is kept unless
    /// its storage's reclaim policy is Delete. Errors say what could not be
    /// removed; the server stays known until it is gone.
    pub async fn shutdown(&self, id: &str) -> Result<(), Error> {
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        let reclaim = saved.spec.storage.as_ref().map_or(ReclaimPolicy::Retain, |s| s.reclaim_policy);
        // Forgotten first, so the watcher does not report the removal as a death.
        self.forget(c, id)?;
        if let Err(reason) = remove(&*c.backend, &plan_of(&saved), reclaim, SHUTDOWN_TIMEOUT).await {
            self.remember(c, saved)?;
            return Err(Error::ShutdownFailed { id: id.to_string(), reason });
        }
        Ok(())
    }

    /// The path of the state file.
    pub fn state_path(&self) -> &Path {
        &self.state_path
    }

    fn saved(&self, c: &Connection<B>, id: &str) -> Result<SavedServer, Error> {
        c.state.lock().unwrap().servers.get(id).cloned().ok_or_else(|| Error::UnknownServer(id.to_string()))
    }

    fn remember(&self, c: &Connection<B>, saved: SavedServer) -> Result<(), Error> {
        let mut state = c.state.lock().unwrap();
        state.servers.insert(saved.id(), saved);
        state::save(&self.state_path, &state)?;
        Ok(())
    }

    fn forget(&self, c: &Connection<B>, id: &str) -> Result<(), Error> {
        c.shared.statuses.lock().unwrap().forget(id);
        c.shared.readings.forget(id);
        let mut state = c.state.lock().unwrap();
        state.servers.remove(id);
        state::save(&self.state_path, &state)?;
        Ok(())
    }
}

impl<B: Standalone> Drop for Mettaton<B> {
    fn drop(&mut self) {
        if let Some(c) = &self.connection {
            c.watcher.abort();
        }
    }
}

/// The identity of a saved server, as the orchestrator's owner (it has no
/// uid: no API server ever held it).
fn owner(saved: &SavedServer) -> Owner {
    Owner { name: saved.name.clone(), namespace: saved.namespace.clone(), uid: None }
}

/// The plan of a saved server (resolved with its template when it has one;
/// a server the facade accepted resolves, and one that no longer does, which
/// a newer mettaton's stricter rules could make of it, is planned from its
/// spec alone, and logged).
fn plan_of(saved: &SavedServer) -> ServerPlan {
    templates::plan_saved(saved).unwrap_or_else(|e| {
        tracing::warn!(server = saved.id(), error = %e, "the saved server no longer resolves with its template");
        plan_spec(&saved.name, &saved.namespace, &saved.spec)
    })
}

/// The manifest's `mettaton.dev/reinstall` annotation, when it has one.
fn reinstall_of(manifest: &GameServer) -> Option<String> {
    manifest.metadata.annotations.as_ref()?.get(ANNOTATION_REINSTALL).filter(|v| !v.is_empty()).cloned()
}

/// What differs between two saved versions of a server: its spec
/// (`spec.…`), the template it was applied with (`template.…`, the
/// template's own fields), the reinstall asked for.
fn diff_saved(old: &SavedServer, new: &SavedServer) -> Vec<Change> {
    let mut changes = diff_specs(&old.spec, &new.spec);
    let template = |t: &Option<state::Template>| t.as_ref().map(|t| serde_json::to_value(t).unwrap_or_default());
    diff_values("template", template(&old.template).as_ref(), template(&new.template).as_ref(), &mut changes);
    if old.reinstall != new.reinstall {
        changes.push(Change {
            field: format!("metadata.annotations.{ANNOTATION_REINSTALL}"),
            from: old.reinstall.clone().map(Into::into),
            to: new.reinstall.clone().map(Into::into),
        });
    }
    changes
}

/// A server's info, its players read when due.
async fn describe<B: Standalone>(c: &Connection<B>, saved: &SavedServer) -> Result<ServerInfo, Error> {
    let (plan, observed, status) = c.shared.look(&*c.backend, saved, saved.spec.players.is_some()).await?;
    let mut info = info_of(saved, &observed, &status);
    info.image = plan.container.image.clone();
    info.last_failure = c.shared.last_failure.lock().unwrap().get(&saved.id()).cloned();
    info.warnings = c.backend.limitations(&plan);
    Ok(info)
}

/// The name and namespace of a manifest, once it is valid.
fn checked(manifest: &GameServer) -> Result<(String, String), Error> {
    let name = manifest.metadata.name.clone().unwrap_or_default();
    let namespace = manifest.metadata.namespace.clone().unwrap_or_else(|| "default".to_string());
    let mut problems = Vec::new();
    if !validate::valid_server_name(&name) {
        problems.push(format!(
            "metadata.name: Invalid value {name:?}: lowercase letters, digits and dashes, at most 63 characters"
        ));
    }
    if !validate::valid_server_name(&namespace) {
        problems.push(format!("metadata.namespace: Invalid value {namespace:?}"));
    }
    problems.extend(validate::problems(&manifest.spec));
    if !problems.is_empty() {
        return Err(Error::Invalid(problems));
    }
    Ok((name, namespace))
}

/// The fields that differ between two specs, as `spec.…` paths, in order.
pub fn diff_specs(old: &GameServerSpec, new: &GameServerSpec) -> Vec<Change> {
    let mut changes = Vec::new();
    let old = serde_json::to_value(old).unwrap_or_default();
    let new = serde_json::to_value(new).unwrap_or_default();
    diff_values("spec", Some(&old), Some(&new), &mut changes);
    changes
}

fn diff_values(at: &str, old: Option<&serde_json::Value>, new: Option<&serde_json::Value>, out: &mut Vec<Change>) {
    use serde_json::Value;
    match (old, new) {
        (Some(Value::Object(a)), Some(Value::Object(b))) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            for key in keys {
                diff_values(&format!("{at}.{key}"), a.get(key), b.get(key), out);
            }
        }
        (Some(Value::Array(a)), Some(Value::Array(b))) if a.len() == b.len() => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                diff_values(&format!("{at}[{i}]"), Some(x), Some(y), out);
            }
        }
        (a, b) if a != b => out.push(Change { field: at.to_string(), from: a.cloned(), to: b.cloned() }),
        _ => {}
    }
}

/// A server's info from what the backend shows of it and the status computed
/// from that.
fn info_of(saved: &SavedServer, observed: &Observed, status: &crate::api::GameServerStatus) -> ServerInfo {
    let running = observed.instance.as_ref().is_some_and(|i| i.running);
    let phase::Reading { phase, healthy, problem } = phase::read(status, observed);
    ServerInfo {
        id: saved.id(),
        name: saved.name.clone(),
        namespace: saved.namespace.clone(),
        image: saved.spec.image.clone(),
        template: saved.spec.template.as_ref().map(|t| templates::template_name(t.kind, &t.name)),
        phase,
        running,
        healthy,
        address: observed.endpoint.address.clone(),
        ports: observed.endpoint.ports.clone(),
        restarts: status.restarts,
        problem,
        service_id: observed.backend_ref.clone(),
        spawned_at: saved.spawned_at.clone(),
        last_failure: None,
        warnings: Vec::new(),
        players: status.players.clone(),
    }
}

impl<B: Standalone> Connection<B> {
    /// A wait for server `saved`, of `plan`, on the backend.
    fn wait<'a>(&'a self, saved: &'a SavedServer, plan: &'a ServerPlan) -> Wait<'a, B> {
        Wait { backend: &*self.backend, shared: &self.shared, saved, plan }
    }
}

/// A wait for a server to run. Each observation it makes computes the
/// server's status, as every look of the facade does.
struct Wait<'a, O> {
    backend: &'a O,
    shared: &'a Shared,
    saved: &'a SavedServer,
    plan: &'a ServerPlan,
}

impl<O: Orchestrator> Wait<'_, O> {
    async fn observe(&self) -> Result<Observed, BackendError> {
        let observed = self.backend.observe(self.plan).await?;
        self.shared.status_of(self.saved, &observed, None);
        Ok(observed)
    }

    /// Waits until the server's task runs and is ready and its address and
    /// ports are known; the reason when it fails or the time runs out.
    async fn running(&self, timeout: Duration) -> Result<Observed, String> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no task yet");
        while Instant::now() < deadline {
            match self.observe().await {
                Ok(o) => {
                    if let Some(i) = &o.instance {
                        // Ready, and every port published: what a player needs.
                        let published = o.endpoint.ports.len() == self.plan.container.ports.len();
                        if i.running && i.ready && o.endpoint.address.is_some() && published {
                            return Ok(o);
                        }
                        if let Some(problem) = &i.problem {
                            last = problem.reason.clone();
                            // A task that failed twice to start will not start
                            // on a retry (its image and ports were checked; one
                            // failure may be the engine's, under load).
                            if !i.running && i.restarts > 1 {
                                return Err(last);
                            }
                        }
                    }
                }
                Err(e) => last = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
        Err(format!("not running after {}s: {last}", timeout.as_secs()))
    }

    /// Waits until the service's latest spec runs, ready (after an update or
    /// a restart, the old task may still be the one running for a moment).
    async fn rolled_out(&self, timeout: Duration) -> Result<Observed, String> {
        let deadline = Instant::now() + timeout;
        loop {
            let remaining = deadline.saturating_duration_since(Instant::now());
            let observed = self.running(remaining.max(Duration::from_millis(1))).await?;
            if observed.workload.as_ref().is_some_and(|w| w.rolled_out) {
                return Ok(observed);
            }
            if Instant::now() >= deadline {
                return Err(format!("the update did not roll out within {}s", timeout.as_secs()));
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

/// Tears the server down and waits until nothing of it is left.
async fn remove(
    backend: &impl Orchestrator,
    plan: &ServerPlan,
    reclaim: ReclaimPolicy,
    timeout: Duration,
) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    loop {
        match backend.teardown(plan, reclaim).await {
            Ok(Teardown::Done) => return Ok(()),
            Ok(Teardown::Pending) if Instant::now() < deadline => {}
            Ok(Teardown::Pending) => return Err(format!("still removing after {}s", timeout.as_secs())),
            Err(e) => return Err(e.to_string()),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// A GameServer manifest from its parts, for callers building one in code.
pub fn manifest(name: &str, namespace: Option<&str>, spec: GameServerSpec) -> GameServer {
    GameServer {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            namespace: namespace.map(str::to_string),
            ..Default::default()
        },
        spec,
        status: None,
    }
}

impl<B: Standalone> Mettaton<B> {
    /// The server's log as it is printed: the last `tail` lines, then every
    /// new line until the stream is dropped.
    pub fn follow_logs(
        &self,
        id: &str,
        tail: Option<i64>,
    ) -> Result<impl futures::Stream<Item = Result<String, Error>> + use<B>, Error> {
        use futures::StreamExt;
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        Ok(c.backend.follow_logs(&plan_of(&saved), tail).map(|r| r.map_err(Error::from)))
    }
}

impl<B: Standalone + Console> Mettaton<B> {
    /// Types `line` into the server's console (its game's standard input, or
    /// the supervisor's, which passes it on) and returns once it was
    /// delivered. What the game answers is in its log ([`Mettaton::logs`]),
    /// or read it on a [`Mettaton::console`] session.
    pub async fn send(&self, id: &str, line: &str) -> Result<(), Error> {
        if line.contains('\n') {
            return Err(Error::Invalid(vec!["line: must be one line: it contains a newline".into()]));
        }
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        Ok(c.backend.send(&plan_of(&saved), line).await?)
    }

    /// A session on the server's console: what is written to its `input`
    /// goes to the game's standard input, its `output` gives what the game
    /// prints from now on; [`ConsoleSession::close`] ends it once what was
    /// typed was delivered (the server goes on).
    pub async fn console(&self, id: &str) -> Result<ConsoleSession, Error> {
        let c = self.connection()?;
        let saved = self.saved(c, id)?;
        Ok(c.backend.attach(&plan_of(&saved)).await?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(v: serde_json::Value) -> GameServerSpec {
        serde_json::from_value(v).unwrap()
    }

    /// TESTS_1_UNITS (`apply`'s comparison and what an update may not do).
    #[test]
    fn apply_lists_each_changed_field_and_refuses_what_may_not_change() {
        let old = spec(serde_json::json!({
            "image": "game:1",
            "env": [{ "name": "A", "value": "1" }],
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "storage": { "size": "1Gi" }
        }));
        assert!(diff_specs(&old, &old).is_empty());
        let new = spec(serde_json::json!({
            "image": "game:2",
            "env": [{ "name": "A", "value": "2" }, { "name": "B", "value": "x" }],
            "ports": [{ "name": "game", "containerPort": 7777 }],
            "storage": { "size": "2Gi" },
            "description": "bigger"
        }));
        let changes: Vec<String> = diff_specs(&old, &new).iter().map(ToString::to_string).collect();
        assert_eq!(
            changes,
            vec![
                "spec.description: <none> -> \"bigger\"",
                "spec.env: [{\"name\":\"A\",\"value\":\"1\"}] -> [{\"name\":\"A\",\"value\":\"2\"},{\"name\":\"B\",\"value\":\"x\"}]",
                "spec.image: \"game:1\" -> \"game:2\"",
                "spec.storage.size: \"1Gi\" -> \"2Gi\"",
            ]
        );
        assert!(validate::update_problems(&old, &new).is_empty(), "growing is fine");
        assert!(validate::update_problems(&new, &old)[0].starts_with("spec.storage.size: may grow but never shrink"));
        let mut classless = new.clone();
        classless.storage.as_mut().unwrap().storage_class_name = Some("fast".into());
        assert!(validate::update_problems(&new, &classless)[0].starts_with("spec.storage.storageClassName"));
        let mut without = new.clone();
        without.storage = None;
        assert!(validate::update_problems(&new, &without)[0].starts_with("spec.storage: cannot be removed"));
    }
}
