#![forbid(unsafe_code)]

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand, ValueEnum};
use kube::api::{Api, ListParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::{Client, Config};
use mettaton::api::GameServer;
use mettaton::controller::{self, Watch};
use mettaton::orchestrator::kubernetes::KubernetesOrchestrator;
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator};

mod swarm_cli;

/// Dedicated game servers run declaratively.
#[derive(Parser, Debug)]
#[command(name = "mettaton", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print the GameServer CustomResourceDefinition as YAML.
    Crd,
    /// Run the controller: reconcile GameServers onto the backend.
    Controller(ControllerArgs),
    /// Run GameServers on a Docker Swarm, without Kubernetes.
    Swarm(swarm_cli::SwarmArgs),
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
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    /// Deployments, Services and PersistentVolumeClaims in the same cluster.
    Kubernetes,
    /// Services, volumes and configs on a Docker Swarm.
    Swarm,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Crd => {
            print!("{}", mettaton::api::crd_yaml());
            ExitCode::SUCCESS
        }
        Command::Controller(args) => {
            init_tracing();
            finish(
                "mettaton controller",
                tokio::runtime::Runtime::new().expect("tokio runtime").block_on(run_controller(args)),
            )
        }
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
    tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr).init();
}

async fn client(kubeconfig: Option<&PathBuf>) -> Result<Client, String> {
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

async fn run_controller(args: ControllerArgs) -> Result<(), String> {
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
    tracing::info!(namespace = ?args.namespace, backend = ?args.backend, "controller starting");
    match args.backend {
        Backend::Kubernetes => {
            let orchestrator = KubernetesOrchestrator::new(client.clone());
            controller::run(client, orchestrator, args.namespace, Watch::KubernetesChildren, shutdown_signal()).await;
        }
        Backend::Swarm => {
            let daemon = match &args.docker_host {
                Some(host) => Daemon::parse(host, false, None)?,
                None => Daemon::from_env().map_err(|e| e.to_string())?,
            };
            let orchestrator = SwarmOrchestrator::connect(&daemon).await.map_err(|e| e.to_string())?;
            orchestrator.ensure_manager().await.map_err(|e| e.to_string())?;
            let watch = Watch::GameServersOnly { poll: SWARM_POLL };
            controller::run(client, orchestrator, args.namespace, watch, shutdown_signal()).await;
        }
    }
    tracing::info!("controller stopped");
    Ok(())
}

/// How often the controller looks at a swarm, which sends no watch events.
const SWARM_POLL: std::time::Duration = std::time::Duration::from_secs(3);

/// Completes on SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{SignalKind, signal};
    let mut term = signal(SignalKind::terminate()).expect("SIGTERM handler");
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = term.recv() => {}
    }
}
