#![forbid(unsafe_code)]

use std::future::Future;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};
use futures::FutureExt;
use futures::future::{BoxFuture, Shared};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mettaton::admin::{self, Role};
use mettaton::api::GameServer;
use mettaton::controller::{self, Reporting, Tuning};
use mettaton::leader::{self, Elector, LeaseConfig};
use mettaton::orchestrator::kubernetes::KubernetesOrchestrator;
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator};

mod console_cli;
mod render_cli;
mod swarm_cli;
mod template_cli;

/// Dedicated game servers run declaratively.
#[derive(Parser, Debug)]
#[command(name = "mettaton", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print mettaton's CustomResourceDefinitions as YAML: GameServer,
    /// GameTemplate and ClusterGameTemplate, or the one named.
    Crd {
        /// Only this one.
        #[arg(value_parser = ["gameserver", "gametemplate", "clustergametemplate"])]
        kind: Option<String>,
    },
    /// Game templates: import a Pterodactyl/Pelican egg.
    #[command(subcommand)]
    Template(template_cli::TemplateCommand),
    /// Print a GameServer made from a template as the server that runs, in
    /// YAML: its spec with the template merged in (image, start command,
    /// environment, ports, ready lines, stop), the working dir, the config
    /// files' edits and the install script. `NAME` reads the server and its
    /// template from the cluster; `-f server.yaml --template template.yaml`
    /// works offline. A server that does not resolve is refused, its
    /// problems one a line on stderr.
    Render(render_cli::RenderArgs),
    /// Run the controller: reconcile GameServers onto the backend.
    Controller(ControllerArgs),
    /// Run GameServers on a Docker Swarm, without Kubernetes.
    Swarm(swarm_cli::SwarmArgs),
    /// Restart a GameServer: its pod is replaced by a new one on the same
    /// volume (as `kubectl rollout restart` does for a Deployment), without a
    /// change to its spec. Sets the annotation `mettaton.dev/restartedAt` to
    /// now; the controller does the rest.
    Restart(ServerRef),
    /// Run a templated GameServer's install script again: at its next start,
    /// which this also causes (its pod is replaced, on the same volume). Sets
    /// the annotation `mettaton.dev/reinstall` to now; the install runs
    /// whenever the value differs from the one the volume last installed with.
    Reinstall(ServerRef),
    /// Type one line into a GameServer's console (its standard input) and
    /// print what the game prints after it. Through the API server, with your
    /// credentials: needs `get` and `create` on `pods/attach` in the namespace (a WebSocket
    /// session is authorised as `get`, an SPDY one as `create`). With
    /// `--backend swarm`, through the swarm manager's engine.
    Send(console_cli::SendArgs),
    /// An interactive console on a GameServer: its output as it comes, each
    /// line you type goes to the game. Ctrl-D leaves; the server goes on.
    Console(console_cli::ConsoleArgs),
}

/// A GameServer named on the command line (restart, send, console).
#[derive(clap::Args, Debug)]
pub(crate) struct ServerRef {
    /// The GameServer.
    name: String,
    /// Its namespace (default: the kubeconfig context's namespace, else `default`).
    #[arg(long, short = 'n', env = "MTN_NAMESPACE")]
    namespace: Option<String>,
    /// Kubeconfig to use; otherwise $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account.
    #[arg(long, env = "MTN_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
}

/// A GameServer read from the API server, with the client and the API it
/// was read through, and how messages name it.
pub(crate) struct Server {
    pub client: Client,
    pub api: Api<GameServer>,
    pub gs: GameServer,
    pub what: String,
}

impl ServerRef {
    pub(crate) async fn read(&self) -> Result<Server, String> {
        let client = client(self.kubeconfig.as_ref()).await?;
        let namespace = self.namespace.clone().unwrap_or_else(|| client.default_namespace().to_string());
        let api: Api<GameServer> = Api::namespaced(client.clone(), &namespace);
        let what = format!("gameserver {namespace}/{}", self.name);
        let gs = api.get_opt(&self.name).await.map_err(|e| format!("reading {what}: {e}"))?;
        let gs = gs.ok_or_else(|| format!("{what} not found"))?;
        Ok(Server { client, api, gs, what })
    }
}

#[derive(clap::Args, Debug)]
struct ControllerArgs {
    /// Kubeconfig to use; otherwise $KUBECONFIG, ~/.kube/config, or the
    /// in-cluster service account.
    #[arg(long, env = "MTN_KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// Reconcile only the GameServers of this namespace (all namespaces when absent).
    #[arg(long, short = 'n', env = "MTN_NAMESPACE")]
    namespace: Option<String>,
    /// Where the game servers run.
    #[arg(long, value_enum, default_value_t = Backend::Kubernetes, env = "MTN_BACKEND")]
    backend: Backend,
    /// With `--backend swarm`: the Docker daemon, a swarm manager (default:
    /// $DOCKER_HOST, else the local socket; TLS from $DOCKER_TLS_VERIFY and
    /// $DOCKER_CERT_PATH).
    #[arg(long, env = "MTN_DOCKER_HOST")]
    docker_host: Option<String>,
    /// The image of mettaton's supervisor, put into the game containers of
    /// servers that need it (`health.readyLogLine`, `shutdown.stop`): copied
    /// by an init container on Kubernetes, into a volume on every node on
    /// swarm.
    #[arg(long, default_value = mettaton::supervisor::DEFAULT_IMAGE, env = "MTN_SUPERVISOR_IMAGE")]
    supervisor_image: String,
    /// Where the admin server listens: /healthz, /readyz, /metrics (port 0
    /// picks a free port; the log says which).
    #[arg(long, default_value = "0.0.0.0:8080", env = "MTN_ADMIN_ADDRESS")]
    admin_address: String,
    /// Run only while holding a coordination.k8s.io Lease, so that of several
    /// replicas exactly one reconciles and a standby takes over.
    #[arg(long, env = "MTN_LEADER_ELECTION")]
    leader_election: bool,
    /// The Lease's name.
    #[arg(long, default_value = "mettaton-controller", env = "MTN_LEASE_NAME")]
    lease_name: String,
    /// The Lease's namespace (default: $POD_NAMESPACE, else the kubeconfig
    /// context's namespace, else `default`).
    #[arg(long, env = "MTN_LEASE_NAMESPACE")]
    lease_namespace: Option<String>,
    /// How long the Lease holds without renewal; the leader renews every
    /// third of it, and a standby takes over once it has expired.
    #[arg(long, default_value_t = 15, value_parser = clap::value_parser!(u64).range(3..=3600), env = "MTN_LEASE_DURATION_SECONDS")]
    lease_duration_seconds: u64,
    /// How long a passing phase (Pending, Starting, Stopping) may stand before
    /// the status says so: a server that is up within it gets one status write
    /// instead of one per phase. 0 reports every phase at once. Failures,
    /// readiness and its loss are always reported at once.
    #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u64).range(0..=300), env = "MTN_STATUS_SETTLE_SECONDS")]
    status_settle_seconds: u64,
    /// How many GameServers are reconciled at once (0: no limit). Each one in
    /// flight holds a connection to the API server.
    #[arg(long, default_value_t = controller::CONCURRENCY, env = "MTN_CONCURRENCY")]
    concurrency: u16,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub(crate) enum Backend {
    /// Deployments, Services and PersistentVolumeClaims in the same cluster.
    Kubernetes,
    /// Services, volumes and configs on a Docker Swarm.
    Swarm,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd { kind } => {
            for (name, yaml) in mettaton::api::crds() {
                if kind.as_deref().is_none_or(|k| k == name) {
                    print!("{yaml}");
                }
            }
            ExitCode::SUCCESS
        }
        Command::Template(command) => finish(
            "mettaton template",
            tokio::runtime::Runtime::new().expect("tokio runtime").block_on(template_cli::run(command)),
        ),
        Command::Render(args) => finish(
            "mettaton render",
            tokio::runtime::Runtime::new().expect("tokio runtime").block_on(render_cli::run(args)),
        ),
        Command::Controller(args) => {
            init_tracing();
            let runtime = tokio::runtime::Runtime::new().expect("tokio runtime");
            let result = runtime.block_on(run_controller(args));
            // A replica that lost the Lease must stop now, not wait for
            // whatever is still running on the runtime.
            runtime.shutdown_timeout(Duration::from_secs(1));
            finish("mettaton controller", result)
        }
        Command::Restart(args) => {
            finish("mettaton restart", tokio::runtime::Runtime::new().expect("tokio runtime").block_on(restart(args)))
        }
        Command::Reinstall(args) => finish(
            "mettaton reinstall",
            tokio::runtime::Runtime::new().expect("tokio runtime").block_on(reinstall(args)),
        ),
        Command::Send(args) => finish(
            "mettaton send",
            tokio::runtime::Runtime::new().expect("tokio runtime").block_on(console_cli::send(args)),
        ),
        Command::Console(args) => finish(
            "mettaton console",
            tokio::runtime::Runtime::new().expect("tokio runtime").block_on(console_cli::console(args)),
        ),
        Command::Swarm(args) => finish(
            "mettaton swarm",
            tokio::runtime::Runtime::new().expect("tokio runtime").block_on(swarm_cli::run(args)),
        ),
    }
}

fn finish(what: &str, result: Result<(), String>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{what}: {e}");
            ExitCode::FAILURE
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,kube=warn"));
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).with_ansi(colour).init();
}

pub(crate) async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client, String> {
    let config = match kubeconfig {
        Some(path) => {
            let kc = Kubeconfig::read_from(path).map_err(|e| format!("reading kubeconfig {}: {e}", path.display()))?;
            Config::from_custom_kubeconfig(kc, &KubeConfigOptions::default())
                .await
                .map_err(|e| format!("kubeconfig {}: {e}", path.display()))?
        }
        None => Config::infer().await.map_err(|e| format!("no Kubernetes configuration found: {e}"))?,
    };
    Client::try_from(config).map_err(|e| format!("Kubernetes client: {e}"))
}

/// The field manager of the restart annotation, as `kubectl rollout restart`
/// writes under its own.
const RESTART_FIELD_MANAGER: &str = "mettaton-restart";

async fn restart(args: ServerRef) -> Result<(), String> {
    let server = args.read().await?;
    let token = restart_token(
        mettaton::plan::restart_token(server.gs.metadata.annotations.as_ref()).as_deref(),
        Timestamp::now(),
    );
    annotate(&server, &args.name, mettaton::plan::ANNOTATION_RESTARTED_AT, &token).await?;
    println!("{} restart asked ({}={token})", server.what, mettaton::plan::ANNOTATION_RESTARTED_AT);
    Ok(())
}

async fn reinstall(args: ServerRef) -> Result<(), String> {
    let server = args.read().await?;
    if server.gs.spec.template.is_none() {
        return Err(format!("{} names no template (spec.template): it has no install script", server.what));
    }
    let key = mettaton::plan::ANNOTATION_REINSTALL;
    let current = server.gs.metadata.annotations.as_ref().and_then(|a| a.get(key));
    let token = restart_token(current.map(String::as_str), Timestamp::now());
    annotate(&server, &args.name, key, &token).await?;
    println!("{} reinstall asked ({key}={token})", server.what);
    Ok(())
}

/// Sets one annotation of the GameServer, under the restart's field manager.
async fn annotate(server: &Server, name: &str, key: &str, value: &str) -> Result<(), String> {
    let patch = serde_json::json!({ "metadata": { "annotations": { key: value } } });
    let params = PatchParams { field_manager: Some(RESTART_FIELD_MANAGER.into()), ..Default::default() };
    server
        .api
        .patch(name, &params, &Patch::Merge(&patch))
        .await
        .map_err(|e| format!("annotating {}: {e}", server.what))?;
    Ok(())
}

/// The restart token for `now`: RFC 3339 to the second, as kubectl's; finer
/// when that is the token the server has already (a second restart within
/// the same second must still be a new value).
fn restart_token(current: Option<&str>, now: Timestamp) -> String {
    let seconds = Timestamp::from_second(now.as_second()).unwrap_or(now).to_string();
    if current != Some(seconds.as_str()) { seconds } else { now.to_string() }
}

async fn run_controller(args: ControllerArgs) -> Result<(), String> {
    let shutdown = shutdown_signal();
    let reporting = Reporting::default();
    // First, so that liveness probes answer during a slow start.
    let listener = admin::bind(&args.admin_address).await?;
    tokio::spawn(admin::serve(listener, reporting.metrics.clone(), reporting.health.clone()));

    let client = client(args.kubeconfig.as_ref()).await?;
    // Fail fast and say what to do when the CRD is missing, rather than let
    // the watch retry forever.
    let probe: Api<GameServer> = match &args.namespace {
        Some(ns) => Api::namespaced(client.clone(), ns),
        None => Api::all(client.clone()),
    };
    if let Err(e) = probe.list(&ListParams::default().limit(1)).await {
        return Err(match &e {
            kube::Error::Api(s) if s.code == 404 => {
                "the GameServer CRD is not installed: run `mettaton crd | kubectl apply --server-side -f -`".to_string()
            }
            _ => format!("cannot list GameServers: {e}"),
        });
    }
    if !args.leader_election {
        lead(&reporting);
        reconcile(&args, client, reporting, shutdown).await?;
        tracing::info!("controller stopped");
        return Ok(());
    }

    let namespace = leader::lease_namespace(
        args.lease_namespace.clone(),
        std::env::var("POD_NAMESPACE").ok(),
        client.default_namespace(),
    );
    let config = LeaseConfig {
        name: args.lease_name.clone(),
        namespace,
        identity: leader::default_identity(),
        duration: Duration::from_secs(args.lease_duration_seconds),
    };
    tracing::info!(lease = %config.name, namespace = %config.namespace, identity = %config.identity, "leader election");
    let elector = Elector::new(client.clone(), config);
    let health = reporting.health.clone();
    let standby = |_: &str| health.set_role(Role::Standby);
    let mut leadership = tokio::select! {
        leadership = elector.acquire(standby) => leadership,
        _ = shutdown.clone() => {
            tracing::info!("stopped while standing by");
            return Ok(());
        }
    };
    lead(&reporting);
    let outcome = tokio::select! {
        done = reconcile(&args, client, reporting.clone(), shutdown) => Ok(done),
        lost = leadership.keep() => Err(lost),
    };
    match outcome {
        Ok(done) => {
            // Only now that no reconcile runs any more may a standby start.
            if let Err(e) = leadership.release().await {
                tracing::warn!(error = %e, "the lease will expire instead");
            }
            reporting.metrics.set_leader(false);
            done?;
            tracing::info!("controller stopped");
            Ok(())
        }
        Err(lost) => {
            // Dropping the controller above stopped every reconcile; exit so
            // that the replica comes back as a standby.
            reporting.metrics.set_leader(false);
            tracing::error!(reason = %lost, "lost the leadership; exiting");
            Err(format!("lost the leadership: {lost}"))
        }
    }
}

fn lead(reporting: &Reporting) {
    reporting.health.set_role(Role::Leading);
    reporting.metrics.set_leader(true);
}

/// Connects the backend and runs the controller until `shutdown`.
async fn reconcile(
    args: &ControllerArgs,
    client: Client,
    reporting: Reporting,
    shutdown: impl Future<Output = ()> + Send + Sync + 'static,
) -> Result<(), String> {
    tracing::info!(namespace = ?args.namespace, backend = ?args.backend, "controller starting");
    let namespace = args.namespace.clone();
    let tuning =
        Tuning { status_settle: Duration::from_secs(args.status_settle_seconds), concurrency: args.concurrency };
    match args.backend {
        Backend::Kubernetes => {
            let orchestrator =
                KubernetesOrchestrator::new(client.clone()).with_supervisor_image(&args.supervisor_image);
            controller::run_reporting(client, orchestrator, namespace, shutdown, reporting, tuning).await;
        }
        Backend::Swarm => {
            let daemon = daemon(args.docker_host.as_deref())?;
            let orchestrator = SwarmOrchestrator::connect(&daemon)
                .await
                .map_err(|e| e.to_string())?
                .with_supervisor_image(&args.supervisor_image);
            orchestrator.ensure_manager().await.map_err(|e| e.to_string())?;
            controller::run_reporting(client, orchestrator, namespace, shutdown, reporting, tuning).await;
        }
    }
    Ok(())
}

/// The Docker daemon of `--docker-host` (TLS as the Docker CLI does it), else
/// the one the environment names.
pub(crate) fn daemon(docker_host: Option<&str>) -> Result<Daemon, String> {
    match docker_host {
        Some(host) => {
            let tls = std::env::var_os("DOCKER_TLS_VERIFY").is_some_and(|v| !v.is_empty());
            Daemon::parse(host, tls, std::env::var_os("DOCKER_CERT_PATH").map(PathBuf::from))
        }
        None => Daemon::from_env().map_err(|e| e.to_string()),
    }
}

/// Completes on SIGINT or SIGTERM, for every clone. The handlers are installed
/// at once, so a signal that comes early is not lost.
fn shutdown_signal() -> Shared<BoxFuture<'static, ()>> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    let mut int = signal(SignalKind::interrupt()).expect("SIGINT handler");
    async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    }
    .boxed()
    .shared()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_restart_token_is_the_time_to_the_second_and_always_new() {
        let now: Timestamp = "2026-12-03T10:00:00.75Z".parse().unwrap();
        assert_eq!(restart_token(None, now), "2026-12-03T10:00:00Z", "not a time to come");
        assert_eq!(restart_token(Some("2026-12-02T09:00:00Z"), now), "2026-12-03T10:00:00Z");
        // The same second as the last restart: finer, so still a new value.
        assert_eq!(restart_token(Some("2026-12-03T10:00:00Z"), now), "2026-12-03T10:00:00.75Z");
    }

    #[test]
    fn restart_takes_a_name_a_namespace_and_a_kubeconfig() {
        let cli = Cli::try_parse_from(["mettaton", "restart", "mc", "-n", "games", "--kubeconfig", "/k"]).unwrap();
        let Command::Restart(args) = cli.command else { panic!("{:?}", cli.command) };
        assert_eq!((args.name.as_str(), args.namespace.as_deref()), ("mc", Some("games")));
        assert_eq!(args.kubeconfig, Some(PathBuf::from("/k")));
        assert!(Cli::try_parse_from(["mettaton", "restart"]).is_err(), "the name is required");
    }
}
