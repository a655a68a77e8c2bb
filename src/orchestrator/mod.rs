//! The seam between mettaton and what runs its game servers.
//!
//! [`Orchestrator`] is what every backend must do: apply a [`ServerPlan`],
//! observe what runs, tear it down, and say what should wake a controller.
//! Beyond that, each capability is a trait of its own, implemented by the
//! backends that have it: [`Logs`] (read and follow a server's log),
//! [`Standalone`] (run without a control plane: connect by itself, know what it
//! runs, restart, report its instances' events), which is what the library
//! facade ([`crate::facade::Mettaton`]) needs, [`Reports`] (read what
//! mettaton's supervisor reports from inside a running server), which the
//! controller finds through [`Orchestrator::reports`]. A backend that lacks a
//! capability does not implement its trait, and the code that needs it does
//! not compile against it; the CLI says so by name.
//!
//! Backends are handed the plan and the identity of its GameServer
//! ([`Owner`]), never the resource; they report in the neutral types of
//! [`observed`] and fail with a typed [`BackendError`]. The controller and the
//! status logic know no backend by name; the backends know nothing of
//! reconciliation.

use std::fmt;
use std::future::Future;
use std::time::{Duration, SystemTime};

use futures::stream::BoxStream;
use kube::ResourceExt;

use crate::api::{GameServer, ReclaimPolicy};
use crate::plan::ServerPlan;
use crate::supervisor::Report;

pub mod docker;
pub mod engine;
pub mod error;
pub mod kubernetes;
pub mod observed;
pub mod swarm;

pub use error::BackendError;
pub(crate) use error::error_chain;
pub use observed::{Endpoint, Instance, Observed, Teardown, Workload};

/// The identity of the GameServer a server's runtime objects belong to.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Owner {
    pub name: String,
    pub namespace: String,
    /// The GameServer's uid, when it was read from an API server (the
    /// library's servers have none). Kubernetes ties the children to it.
    pub uid: Option<String>,
}

impl Owner {
    /// The identity of a GameServer (namespace `default` when it has none).
    pub fn of(gs: &GameServer) -> Self {
        Owner { name: gs.name_any(), namespace: gs.namespace().unwrap_or_else(|| "default".to_string()), uid: gs.uid() }
    }

    /// The key of the server it owns.
    pub fn key(&self) -> ServerKey {
        ServerKey { namespace: self.namespace.clone(), name: self.name.clone() }
    }
}

/// Which server something is about: its GameServer's namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServerKey {
    pub namespace: String,
    pub name: String,
}

impl fmt::Display for ServerKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// What should wake a controller for a server, beside changes of its
/// GameServer: the backend's own change notifications, and how often to look
/// anyway when it has none (or they can be missed).
pub struct Triggers {
    /// The servers whose runtime changed, as the backend learns of it.
    pub changes: BoxStream<'static, ServerKey>,
    /// Observe every server at least this often; `None` when the changes are
    /// complete (a watch that relists after it breaks).
    pub poll: Option<Duration>,
}

impl Triggers {
    /// No notifications: every server is observed again every `poll`.
    pub fn poll_only(poll: Duration) -> Self {
        Triggers { changes: Box::pin(futures::stream::empty()), poll: Some(poll) }
    }
}

/// A backend that runs game servers.
pub trait Orchestrator: Send + Sync + 'static {
    /// Makes the runtime match the plan. Writes nothing when it already does.
    /// `owner` is the GameServer the plan came from.
    fn apply(&self, owner: &Owner, plan: &ServerPlan) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// What the runtime holds for the server now.
    fn observe(&self, plan: &ServerPlan) -> impl Future<Output = Result<Observed, BackendError>> + Send;

    /// Removes the server's runtime objects. The data volume goes too only with
    /// `ReclaimPolicy::Delete`; with `Retain` it is kept (and released, so that a
    /// new server of the same name can take it over). Idempotent: what is
    /// already gone counts as removed. Returns `Done` once nothing that should
    /// go is left, `Pending` while removal is still under way.
    fn teardown(
        &self,
        plan: &ServerPlan,
        reclaim: ReclaimPolicy,
    ) -> impl Future<Output = Result<Teardown, BackendError>> + Send;

    /// Called once by a controller as it starts, for the servers of
    /// `namespace` (all when `None`): what should wake it. A backend that
    /// caches what it reads may fill its caches from the same watches.
    fn triggers(&self, namespace: Option<&str>) -> Triggers;

    /// The backend's reader of what mettaton's supervisor reports from inside
    /// a running server ([`Reports`]), when it has one: the controller reads
    /// the players and output events of the servers that ask for them
    /// through it. `None`, the default, for a backend without one.
    fn reports(&self) -> Option<&impl Reports> {
        None::<&NoReports>
    }
}

/// Reading the report of mettaton's supervisor in a server's running
/// instance ([`Report`]: the players it counts, the lines it matched), which
/// has no credentials of its own and cannot push it anywhere. Kubernetes reads
/// it through the API server's pod proxy; a backend on a Docker Engine can run
/// `mettaton-supervisor status` in the container.
pub trait Reports: Send + Sync {
    /// The report of the supervisor of the server's running instance, with
    /// the matched lines from `since` on; `None` when no instance runs the
    /// game (none, or its container not started).
    fn report(
        &self,
        plan: &ServerPlan,
        since: u64,
    ) -> impl Future<Output = Result<Option<Report>, BackendError>> + Send;
}

/// The [`Reports`] of a backend that has none: never made.
pub enum NoReports {}

impl Reports for NoReports {
    async fn report(&self, _: &ServerPlan, _: u64) -> Result<Option<Report>, BackendError> {
        match *self {}
    }
}

/// Reading a server's log.
pub trait Logs: Orchestrator {
    /// The server's log: the last `tail` lines (all when `None`).
    fn logs(&self, plan: &ServerPlan, tail: Option<i64>) -> impl Future<Output = Result<String, BackendError>> + Send;

    /// The server's log as it is printed: the last `tail` lines, then every
    /// new chunk until the stream is dropped or the server's instance ends.
    fn follow_logs(&self, plan: &ServerPlan, tail: Option<i64>) -> BoxStream<'static, Result<String, BackendError>>;
}

/// Typing into a server's console: its standard input, which the game (or
/// mettaton's supervisor, which passes it on) reads.
pub trait Console: Orchestrator {
    /// A session on the console of the server's running instance: what is
    /// written to `input` goes to the game's standard input, and `output`
    /// gives what the game prints from now on.
    fn attach(&self, plan: &ServerPlan) -> impl Future<Output = Result<ConsoleSession, BackendError>> + Send;

    /// Writes `line` and a newline to the game's standard input, and closes
    /// the session once it was delivered. What the game answers is in its log.
    fn send(&self, plan: &ServerPlan, line: &str) -> impl Future<Output = Result<(), BackendError>> + Send {
        async move {
            let mut session = self.attach(plan).await?;
            session.write_line(line).await?;
            session.close().await
        }
    }
}

/// An open console: see [`Console::attach`].
pub struct ConsoleSession {
    /// What is typed in: the game's standard input.
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
    /// What the game prints (stdout and stderr, as they come).
    pub output: BoxStream<'static, Result<Vec<u8>, BackendError>>,
    /// Ends the session once what was written reached the game.
    pub closer: futures::future::BoxFuture<'static, Result<(), BackendError>>,
    /// What the session is, for errors: "the console of GameServer NAME (pod/POD)".
    pub what: String,
}

impl ConsoleSession {
    /// Types one line.
    pub async fn write_line(&mut self, line: &str) -> Result<(), BackendError> {
        use tokio::io::AsyncWriteExt;
        let written = async {
            self.input.write_all(format!("{line}\n").as_bytes()).await?;
            self.input.flush().await
        };
        written
            .await
            .map_err(|e| BackendError::Other { what: format!("type into {}", self.what), reason: e.to_string() })
    }

    /// Closes the input, then the session, once what was typed was delivered.
    pub async fn close(mut self) -> Result<(), BackendError> {
        use tokio::io::AsyncWriteExt;
        let _ = self.input.shutdown().await;
        drop(self.input);
        drop(self.output);
        self.closer.await
    }
}

/// A backend that runs without a control plane, as the library facade drives
/// it: it connects by itself, knows which servers it runs, restarts them, and
/// reports what happens to their instances as it happens.
pub trait Standalone: Orchestrator + Logs + Sized {
    /// What it connects to (a Docker daemon).
    type Target: Clone + fmt::Display + fmt::Debug + Send + Sync + 'static;

    /// Connects, and checks that the target can run servers.
    fn connect(target: &Self::Target) -> impl Future<Output = Result<Self, BackendError>> + Send;

    /// The backend taking mettaton's supervisor from `image` (instead of
    /// [`crate::supervisor::DEFAULT_IMAGE`]), for the servers that need it.
    fn with_supervisor_image(self, image: &str) -> Self;

    /// Whether the target answers.
    fn ping(&self) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// The servers mettaton runs there (whoever spawned them).
    fn list_managed(&self) -> impl Future<Output = Result<Vec<ServerKey>, BackendError>> + Send;

    /// Whether the server's data volume exists (its own or not).
    fn volume_exists(&self, plan: &ServerPlan) -> impl Future<Output = Result<bool, BackendError>> + Send;

    /// Replaces the server's instance with a new one (same spec, same
    /// volume), running its stop command first.
    fn restart(&self, plan: &ServerPlan) -> impl Future<Output = Result<(), BackendError>> + Send;

    /// What of the plan this backend runs differently than asked, each
    /// naming its field.
    fn limitations(&self, plan: &ServerPlan) -> Vec<String>;

    /// Starts, exits, out-of-memory kills and health changes of the managed
    /// servers' instances, from `since` on (only new ones when `None`). The
    /// stream ends when the connection does.
    fn instance_events(&self, since: Option<SystemTime>) -> BoxStream<'static, Result<InstanceEvent, BackendError>>;

    /// Whether the instance of `event` ended because the backend stopped it
    /// on purpose (an update, a restart, a scale to zero), not by failing.
    fn stopped_on_purpose(&self, event: &InstanceEvent) -> impl Future<Output = bool> + Send;

    /// Counts the instance of `event` as failed at once (the backend may
    /// record the failure a moment later) and returns the server's restarts
    /// with it; `None` when `observed`'s count already holds it.
    fn note_failure(&self, observed: &Observed, event: &InstanceEvent) -> Option<i32>;
}

/// Something that happened to a server's instance, as the backend reported it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct InstanceEvent {
    pub server: ServerKey,
    pub kind: InstanceEventKind,
    /// The container's id.
    pub container_id: String,
    /// The backend's own id of the instance, when it is not the container
    /// (a swarm task).
    pub task_id: Option<String>,
    /// When, in nanoseconds since the Unix epoch.
    pub time_nanos: Option<i64>,
}

/// What happened to a server's instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum InstanceEventKind {
    Started,
    /// The instance ended: on its own, killed, or stopped by the backend.
    Exited {
        exit_code: Option<i64>,
    },
    OutOfMemory,
    Healthy,
    Unhealthy,
}
