//! `mettaton swarm ...`: the GameServer manifests of Kubernetes, applied to a
//! Docker Swarm (or, with `--backend docker`, to plain containers on one
//! Docker Engine) through the `Mettaton` facade. Thin: parsing, printing, and
//! a call to the facade per command (`send` and `console` print as
//! `mettaton send` and `mettaton console` do).

use std::io::{Read, Write};
use std::path::PathBuf;

use clap::{Args, Subcommand, ValueEnum};
use futures::StreamExt;
use mettaton::api::GameServer;
use mettaton::facade::{Applied, Mettaton, ServerEvent, ServerHandle, ServerInfo};
use mettaton::orchestrator::docker::DockerOrchestrator;
use mettaton::orchestrator::swarm::{Daemon, SwarmOrchestrator};
use mettaton::orchestrator::{Console, Standalone};

#[derive(Args, Debug)]
pub struct SwarmArgs {
    /// The Docker daemon, a swarm manager: unix:///path or tcp://host:port
    /// (default: $DOCKER_HOST, else the local socket).
    #[arg(long = "host", short = 'H', global = true)]
    host: Option<String>,
    /// Use TLS with the certificates in --tls-certs (ca.pem, cert.pem, key.pem).
    #[arg(long, global = true)]
    tls: bool,
    /// Directory of the TLS certificates (default: $DOCKER_CERT_PATH or ~/.docker).
    #[arg(long, global = true)]
    tls_certs: Option<PathBuf>,
    /// The state file remembering what was spawned (default:
    /// $XDG_STATE_HOME/mettaton/swarm-state.json or ~/.local/state/mettaton/...;
    /// docker-state.json with --backend docker).
    #[arg(long, global = true, env = "MTN_STATE")]
    state: Option<PathBuf>,
    /// Where `env[].valueFrom.secretKeyRef` values are read: the file
    /// DIR/NAMESPACE/NAME/KEY holds the value (default:
    /// $XDG_CONFIG_HOME/mettaton/secrets or ~/.config/mettaton/secrets).
    #[arg(long, global = true, env = "MTN_SECRETS")]
    secrets: Option<PathBuf>,
    /// What runs the servers: a Docker Swarm (the daemon a manager), or plain
    /// containers on the daemon (no swarm needed).
    #[arg(long, global = true, value_enum, default_value_t = Backend::Swarm, env = "MTN_BACKEND")]
    backend: Backend,
    /// The image of mettaton's supervisor, put into the servers that need it
    /// (`health.readyLogLine`, `shutdown.stop`): on the swarm's nodes (or the
    /// engine) or in a registry they pull from.
    #[arg(long, global = true, default_value = mettaton::supervisor::DEFAULT_IMAGE, env = "MTN_SUPERVISOR_IMAGE")]
    supervisor_image: String,
    /// Namespace of the servers (default: default).
    #[arg(long, short = 'n', global = true, default_value = "default")]
    namespace: String,
    /// Output format.
    #[arg(long, short = 'o', global = true, value_enum, default_value_t = Output::Table)]
    output: Output,
    #[command(subcommand)]
    command: SwarmCommand,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Backend {
    Swarm,
    Docker,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum Output {
    Table,
    Json,
    Yaml,
}

#[derive(Subcommand, Debug)]
enum SwarmCommand {
    /// Create the GameServer(s) of a manifest file ("-" for standard input),
    /// or update them in place to it (same volume), printing what changed;
    /// "unchanged" when nothing did. Unknown fields are refused by name.
    Apply {
        #[arg(short = 'f', long = "filename")]
        file: PathBuf,
        /// A file of game templates (GameTemplate, ClusterGameTemplate, as
        /// `mettaton template import` prints them; YAML or JSON, several
        /// documents allowed) that the manifests' `spec.template` may name.
        /// May be given several times. A server keeps the template it was
        /// applied with (in the state file).
        #[arg(long = "template", short = 't')]
        templates: Vec<PathBuf>,
    },
    /// List the servers, or show one.
    Get { name: Option<String> },
    /// Everything known of a server.
    Describe { name: String },
    /// A server's log.
    Logs {
        name: String,
        /// Keep printing new lines.
        #[arg(short, long)]
        follow: bool,
        /// Only the last N lines.
        #[arg(long)]
        tail: Option<i64>,
    },
    /// Restart a server: a new container, same manifest, same volume.
    Restart { name: String },
    /// Shut a server down and remove it (its volume stays unless its
    /// reclaimPolicy is Delete).
    Delete { name: String },
    /// Type one line into a server's console (its standard input) and print
    /// what the game prints after it. On swarm, the server must run on the
    /// node of the daemon mettaton talks to.
    Send {
        name: String,
        /// The console line, for example `say hello` (several words are
        /// joined with spaces).
        #[arg(required = true, num_args = 1..)]
        line: Vec<String>,
        /// How long to print what the game prints after the line (seconds).
        #[arg(long, default_value_t = 2.0)]
        wait: f64,
    },
    /// An interactive console on a server: its output as it comes, each line
    /// you type goes to the game. Ctrl-D leaves; the server goes on.
    Console { name: String },
    /// Print what happens to the servers (deaths, restarts, vanishings, the
    /// daemon lost and back, the lines of their `spec.outputEvents`, read
    /// every 30 s) until interrupted.
    Events,
}

pub async fn run(args: SwarmArgs) -> Result<(), String> {
    match args.backend {
        Backend::Swarm => run_on::<SwarmOrchestrator>(args).await,
        Backend::Docker => run_on::<DockerOrchestrator>(args).await,
    }
}

async fn run_on<B: Standalone<Target = Daemon> + Console>(args: SwarmArgs) -> Result<(), String> {
    // Listened for from the start, so that an interrupt while connecting ends
    // `logs -f` and `events` cleanly too (exit 0), not by the default action.
    let mut interrupt = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt())
        .map_err(|e| format!("listening for SIGINT: {e}"))?;
    let daemon = match &args.host {
        Some(host) => {
            let certs = args.tls_certs.clone().or_else(|| std::env::var_os("DOCKER_CERT_PATH").map(PathBuf::from));
            Daemon::parse(host, args.tls, certs.or_else(home_docker))?
        }
        None => Daemon::from_env().map_err(|e| e.to_string())?,
    };
    let state = args.state.clone().unwrap_or_else(|| default_state_path(args.backend));
    let secrets = args.secrets.clone().unwrap_or_else(default_secrets_dir);
    let mut facade =
        Mettaton::<B>::on(daemon, state).with_secrets_dir(secrets).with_supervisor_image(args.supervisor_image.clone());
    if let SwarmCommand::Apply { templates, .. } = &args.command {
        for file in templates {
            for template in read_templates(file)? {
                facade.add_template(template);
            }
        }
    }
    let events = facade.events();
    let recovery = facade.connect().await.map_err(|e| e.to_string())?;
    let runtime = match args.backend {
        Backend::Swarm => "the swarm",
        Backend::Docker => "the Docker engine",
    };
    for id in &recovery.vanished {
        eprintln!("warning: server {id} is gone from {runtime}; it was forgotten");
    }
    for id in &recovery.unknown {
        eprintln!("note: {runtime} runs server {id}, which this state file does not know");
    }
    let id = |name: &str| format!("{}/{name}", args.namespace);
    let result = match args.command {
        SwarmCommand::Apply { file, .. } => apply(&facade, &file, &args.namespace, args.output).await,
        SwarmCommand::Get { name: None } => {
            let infos = facade.list().await.map_err(|e| e.to_string())?;
            let infos: Vec<_> = infos.into_iter().filter(|i| i.namespace == args.namespace).collect();
            print_infos(&infos, args.output)
        }
        SwarmCommand::Get { name: Some(name) } => {
            let info = facade.info(&id(&name)).await.map_err(|e| e.to_string())?;
            print_infos(&[info], args.output)
        }
        SwarmCommand::Describe { name } => {
            let info = facade.info(&id(&name)).await.map_err(|e| e.to_string())?;
            match args.output {
                Output::Table => {
                    print!("{}", describe(&info));
                    Ok(())
                }
                _ => print_infos(&[info], args.output),
            }
        }
        SwarmCommand::Logs { name, follow: false, tail } => {
            print!("{}", facade.logs(&id(&name), tail).await.map_err(|e| e.to_string())?);
            Ok(())
        }
        SwarmCommand::Logs { name, follow: true, tail } => {
            let mut lines = facade.follow_logs(&id(&name), tail).map_err(|e| e.to_string())?;
            loop {
                tokio::select! {
                    chunk = lines.next() => match chunk {
                        // A reader gone (`| head`) ends the command.
                        Some(Ok(text)) => {
                            let mut out = std::io::stdout();
                            if out.write_all(text.as_bytes()).and_then(|()| out.flush()).is_err() {
                                break Ok(());
                            }
                        }
                        Some(Err(e)) => break Err(e.to_string()),
                        None => break Ok(()),
                    },
                    _ = interrupt.recv() => break Ok(()),
                }
            }
        }
        SwarmCommand::Restart { name } => {
            let handle = facade.restart(&id(&name)).await.map_err(|e| e.to_string())?;
            println!("gameserver {} restarted at {}", handle.id, at(&handle));
            Ok(())
        }
        SwarmCommand::Delete { name } => {
            facade.shutdown(&id(&name)).await.map_err(|e| e.to_string())?;
            println!("gameserver {} deleted", id(&name));
            Ok(())
        }
        SwarmCommand::Send { name, line, wait } => match crate::console_cli::one_line(&line, wait) {
            Ok(line) => match facade.console(&id(&name)).await {
                Ok(session) => crate::console_cli::type_and_print(session, &line, wait).await,
                Err(e) => Err(e.to_string()),
            },
            Err(e) => Err(e),
        },
        SwarmCommand::Console { name } => match facade.console(&id(&name)).await {
            Ok(session) => crate::console_cli::interactive(session).await,
            Err(e) => Err(e.to_string()),
        },
        SwarmCommand::Events => watch_events(events, &args.namespace, &mut interrupt).await,
    };
    facade.disconnect().await;
    result
}

fn home_docker() -> Option<PathBuf> {
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".docker"))
}

fn default_secrets_dir() -> PathBuf {
    let base = std::env::var_os("XDG_CONFIG_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("mettaton/secrets")
}

/// One state file per backend: each reports the other's servers as vanished.
fn default_state_path(backend: Backend) -> PathBuf {
    let base = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join(match backend {
        Backend::Swarm => "mettaton/swarm-state.json",
        Backend::Docker => "mettaton/docker-state.json",
    })
}

/// Reads every GameServer of a manifest (YAML, several documents allowed),
/// strictly: unknown fields are refused by name.
fn manifests(file: &PathBuf, namespace: &str) -> Result<Vec<GameServer>, String> {
    let mut text = String::new();
    if file.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map_err(|e| format!("reading standard input: {e}"))?;
    } else {
        text = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    }
    mettaton::facade::manifests_from_str(&text, namespace).map_err(|e| match e {
        mettaton::facade::Error::Invalid(problems) => {
            format!("{}: invalid GameServer:\n  {}", file.display(), problems.join("\n  "))
        }
        other => format!("{}: {other}", file.display()),
    })
}

/// Every game template of a file (YAML or JSON, several documents allowed),
/// strictly: unknown fields are refused by name.
fn read_templates(file: &PathBuf) -> Result<Vec<mettaton::facade::Template>, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("reading {}: {e}", file.display()))?;
    mettaton::facade::templates_from_str(&text).map_err(|e| match e {
        mettaton::facade::Error::Invalid(problems) => {
            format!("{}: invalid game template:\n  {}", file.display(), problems.join("\n  "))
        }
        other => format!("{}: {other}", file.display()),
    })
}

/// `ADDRESS (name=port/PROTO, ...)`.
fn at(handle: &ServerHandle) -> String {
    let ports: Vec<String> =
        handle.ports.iter().map(|p| format!("{}={}/{}", p.name, p.port, p.protocol.as_str())).collect();
    format!("{} ({})", handle.address.as_deref().unwrap_or("<unknown>"), ports.join(", "))
}

async fn apply<B: Standalone>(
    facade: &Mettaton<B>,
    file: &PathBuf,
    namespace: &str,
    output: Output,
) -> Result<(), String> {
    let mut infos = Vec::new();
    for gs in manifests(file, namespace)? {
        let applied = facade.apply(&gs).await.map_err(|e| e.to_string())?;
        let id = match &applied {
            Applied::Created(h) | Applied::Updated { handle: h, .. } => {
                for w in &h.warnings {
                    eprintln!("warning: {}: {w}", h.id);
                }
                h.id.clone()
            }
            Applied::Unchanged { id } => id.clone(),
        };
        if output == Output::Table {
            match &applied {
                Applied::Created(h) if h.address.is_none() => println!("gameserver {} created (stopped)", h.id),
                Applied::Created(h) => println!("gameserver {} spawned at {}", h.id, at(h)),
                Applied::Updated { handle, changes } => {
                    match handle.address {
                        Some(_) => println!("gameserver {} configured, running at {}", handle.id, at(handle)),
                        None => println!("gameserver {} configured", handle.id),
                    }
                    for change in changes {
                        println!("  {change}");
                    }
                }
                Applied::Unchanged { id } => println!("gameserver {id} unchanged"),
            }
        } else {
            infos.push(facade.info(&id).await.map_err(|e| e.to_string())?);
        }
    }
    if output != Output::Table {
        print_infos(&infos, output)?;
    }
    Ok(())
}

fn info_json(info: &ServerInfo) -> serde_json::Value {
    serde_json::json!({
        "id": info.id,
        "name": info.name,
        "namespace": info.namespace,
        "image": info.image,
        "template": info.template,
        "phase": info.phase.as_str(),
        "players": info.players,
        "running": info.running,
        "healthy": info.healthy,
        "address": info.address,
        "ports": info.ports,
        "restarts": info.restarts,
        "problem": info.problem,
        "serviceId": info.service_id,
        "spawnedAt": info.spawned_at,
        "lastFailure": info.last_failure,
        "warnings": info.warnings,
    })
}

fn print_infos(infos: &[ServerInfo], output: Output) -> Result<(), String> {
    match output {
        Output::Json => {
            let items: Vec<_> = infos.iter().map(info_json).collect();
            println!("{}", serde_json::to_string_pretty(&items).unwrap());
        }
        Output::Yaml => {
            let items: Vec<_> = infos.iter().map(info_json).collect();
            print!("{}", serde_yaml::to_string(&items).unwrap());
        }
        Output::Table => print!("{}", table(infos)),
    }
    Ok(())
}

/// The servers as an aligned table, like `kubectl get`.
pub fn table(infos: &[ServerInfo]) -> String {
    let mut rows = vec![
        ["NAME", "PHASE", "PLAYERS", "HEALTHY", "ADDRESS", "PORTS", "RESTARTS", "IMAGE", "TEMPLATE"]
            .map(String::from)
            .to_vec(),
    ];
    for i in infos {
        let ports: Vec<String> = i.ports.iter().map(|p| format!("{}/{}", p.port, p.protocol.as_str())).collect();
        rows.push(vec![
            i.name.clone(),
            i.phase.as_str().to_string(),
            i.players.as_ref().map_or_else(|| "<none>".into(), |p| p.count.to_string()),
            i.healthy.to_string(),
            i.address.clone().unwrap_or_else(|| "<none>".into()),
            if ports.is_empty() { "<none>".into() } else { ports.join(",") },
            i.restarts.to_string(),
            i.image.clone(),
            i.template.clone().unwrap_or_else(|| "<none>".into()),
        ]);
    }
    let widths: Vec<usize> = (0..rows[0].len()).map(|c| rows.iter().map(|r| r[c].len()).max().unwrap_or(0)).collect();
    let mut out = String::new();
    for row in rows {
        let cells: Vec<String> = row.iter().zip(&widths).map(|(cell, w)| format!("{cell:<w$}")).collect();
        out.push_str(cells.join("   ").trim_end());
        out.push('\n');
    }
    out
}

fn describe(i: &ServerInfo) -> String {
    let mut out = String::new();
    let mut line = |k: &str, v: String| out.push_str(&format!("{:<13}{v}\n", format!("{k}:")));
    line("Name", i.name.clone());
    line("Namespace", i.namespace.clone());
    line("Image", i.image.clone());
    line("Template", i.template.clone().unwrap_or_else(|| "<none>".into()));
    line("Phase", i.phase.as_str().to_string());
    if let Some(p) = &i.players {
        let names = if p.names.is_empty() { String::new() } else { format!(" ({})", p.names.join(", ")) };
        line("Players", format!("{}{names}", p.count));
    }
    line("Running", i.running.to_string());
    line("Healthy", i.healthy.to_string());
    line("Address", i.address.clone().unwrap_or_else(|| "<none>".into()));
    for p in &i.ports {
        line("Port", format!("{} {}/{}", p.name, p.port, p.protocol.as_str()));
    }
    line("Restarts", i.restarts.to_string());
    line("Problem", i.problem.clone().unwrap_or_else(|| "<none>".into()));
    line("LastFailure", i.last_failure.clone().unwrap_or_else(|| "<none>".into()));
    for w in &i.warnings {
        line("Warning", w.clone());
    }
    line("Service", i.service_id.clone().unwrap_or_else(|| "<none>".into()));
    line("Spawned", i.spawned_at.clone());
    out
}

/// Prints the events of the namespace's servers (and of the daemon).
async fn watch_events(
    mut events: tokio::sync::broadcast::Receiver<ServerEvent>,
    namespace: &str,
    interrupt: &mut tokio::signal::unix::Signal,
) -> Result<(), String> {
    let prefix = format!("{namespace}/");
    loop {
        tokio::select! {
            event = events.recv() => match event {
                Ok(e) if event_id(&e).is_some_and(|id| !id.starts_with(&prefix)) => {}
                Ok(e) => {
                    let mut out = std::io::stdout();
                    if writeln!(out, "{}", event_line(&e)).and_then(|()| out.flush()).is_err() {
                        return Ok(());
                    }
                }
                Err(tokio::sync::broadcast::error::RecvError::Lagged(n)) => eprintln!("warning: {n} events missed"),
                Err(tokio::sync::broadcast::error::RecvError::Closed) => return Ok(()),
            },
            _ = interrupt.recv() => return Ok(()),
        }
    }
}

fn event_id(e: &ServerEvent) -> Option<&str> {
    match e {
        ServerEvent::Died { id, .. }
        | ServerEvent::Unhealthy { id, .. }
        | ServerEvent::Vanished { id }
        | ServerEvent::Recovered { id }
        | ServerEvent::Unknown { id }
        | ServerEvent::Restarted { id, .. }
        | ServerEvent::Output { id, .. } => Some(id),
        ServerEvent::DaemonLost { .. } | ServerEvent::DaemonBack { .. } => None,
    }
}

fn event_line(e: &ServerEvent) -> String {
    let now = k8s_openapi::jiff::Timestamp::now();
    match e {
        ServerEvent::Died { id, restarts, reason } => {
            format!("{now} Died       {id} restarts={restarts} reason={reason}")
        }
        ServerEvent::Unhealthy { id, restarts } => format!("{now} Unhealthy  {id} restarts={restarts}"),
        ServerEvent::Vanished { id } => format!("{now} Vanished   {id}"),
        ServerEvent::Recovered { id } => format!("{now} Recovered  {id}"),
        ServerEvent::Unknown { id } => format!("{now} Unknown    {id}"),
        ServerEvent::DaemonLost { reason } => format!("{now} DaemonLost reason={reason}"),
        ServerEvent::DaemonBack { after } => format!("{now} DaemonBack after={:.1}s", after.as_secs_f64()),
        ServerEvent::Restarted { id, restarts } => format!("{now} Restarted  {id} restarts={restarts}"),
        ServerEvent::Output { id, reason, type_, line } => {
            format!("{now} Output     {id} reason={reason} type={type_:?} line={line}")
        }
    }
}
