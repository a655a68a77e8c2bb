//! `mettaton send` and `mettaton console`: a GameServer's console on
//! Kubernetes, through the API server with the caller's own credentials (so
//! RBAC decides who may type, and the audit log shows who did), or, with
//! `--backend swarm`, on the swarm its controller runs it on; the typing
//! and printing of a session on any backend, which `mettaton swarm send` and
//! `mettaton swarm console` share.

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use mettaton::orchestrator::kubernetes::KubernetesOrchestrator;
use mettaton::orchestrator::swarm::SwarmOrchestrator;
use mettaton::orchestrator::{Console, ConsoleSession};
use mettaton::template::lookup;

use crate::ServerRef;

/// Where the GameServer's controller runs it (`mettaton controller --backend`).
#[derive(clap::Args, Debug)]
pub struct Runtime {
    /// The backend its controller runs it on: Kubernetes (through the API
    /// server), or a Docker Swarm (through the manager's engine, for a server
    /// whose task runs on the manager's node).
    #[arg(long, value_enum, default_value_t = crate::Backend::Kubernetes)]
    backend: crate::Backend,
    /// With `--backend swarm`: the Docker daemon, a swarm manager (default:
    /// $DOCKER_HOST, else the local socket; TLS from $DOCKER_TLS_VERIFY and
    /// $DOCKER_CERT_PATH).
    #[arg(long, env = "MTN_DOCKER_HOST")]
    docker_host: Option<String>,
}

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    target: ServerRef,
    #[command(flatten)]
    runtime: Runtime,
    /// The console line, for example `say hello` (several words are joined
    /// with spaces).
    #[arg(required = true, num_args = 1..)]
    line: Vec<String>,
    /// How long to print what the game prints after the line (seconds).
    #[arg(long, default_value_t = 2.0)]
    wait: f64,
}

#[derive(clap::Args, Debug)]
pub struct ConsoleArgs {
    #[command(flatten)]
    target: ServerRef,
    #[command(flatten)]
    runtime: Runtime,
}

/// A session on the console of the GameServer `target` names, read from the
/// API server, where its controller runs it. A server made from a template
/// is planned as its controller plans it, the template read too (whether a
/// supervisor runs the game, and so how to reach its console, can come from
/// the template).
async fn attach(target: &ServerRef, runtime: &Runtime) -> Result<ConsoleSession, String> {
    let server = target.read().await?;
    let template = match lookup::wanted(&server.gs) {
        Some(wanted) => lookup::get(&server.client, &wanted)
            .await
            .map_err(|e| format!("reading {} (spec.template): {e}", wanted.describe()))?,
        None => None,
    };
    let name = server.gs.metadata.name.as_deref().unwrap_or_default();
    let plan = lookup::plan(&server.gs, template.as_ref())
        .map_err(|why| format!("GameServer {name} does not resolve ({}): {}", why.reason, why.message))?
        .plan;
    let session = match runtime.backend {
        crate::Backend::Kubernetes => KubernetesOrchestrator::new(server.client).attach(&plan).await,
        crate::Backend::Swarm => {
            let daemon = crate::daemon(runtime.docker_host.as_deref())?;
            let swarm = SwarmOrchestrator::connect(&daemon).await.map_err(|e| e.to_string())?;
            swarm.attach(&plan).await
        }
    };
    session.map_err(|e| e.to_string())
}

/// Types one line, and prints what the game prints for `--wait` seconds.
pub async fn send(args: SendArgs) -> Result<(), String> {
    let line = one_line(&args.line, args.wait)?;
    type_and_print(attach(&args.target, &args.runtime).await?, &line, args.wait).await
}

/// The console, interactive: what the game prints is shown as it comes, each
/// line typed goes to the game; end of input (Ctrl-D) leaves.
pub async fn console(args: ConsoleArgs) -> Result<(), String> {
    interactive(attach(&args.target, &args.runtime).await?).await
}

/// The words of `mettaton send` as one console line, checked with `wait`.
pub fn one_line(words: &[String], wait: f64) -> Result<String, String> {
    if !(0.0..=3600.0).contains(&wait) {
        return Err(format!("--wait {wait} is not between 0 and 3600 seconds"));
    }
    let line = words.join(" ");
    if line.contains('\n') {
        return Err("the line must be one line: it contains a newline".into());
    }
    Ok(line)
}

/// Types `line` on the session, prints what the game prints for `wait`
/// seconds, and closes the session (on any backend).
pub async fn type_and_print(mut session: ConsoleSession, line: &str, wait: f64) -> Result<(), String> {
    session.write_line(line).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(wait);
    let mut stdout = std::io::stdout();
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, session.output.next()).await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        stdout.write_all(&chunk).and_then(|_| stdout.flush()).map_err(|e| format!("writing the output: {e}"))?;
    }
    session.close().await.map_err(|e| e.to_string())
}

/// The session, interactive: what the game prints is shown as it comes, each
/// line typed goes to the game; end of input (Ctrl-D) leaves (on any backend).
pub async fn interactive(mut session: ConsoleSession) -> Result<(), String> {
    use tokio::io::AsyncBufReadExt;
    eprintln!("connected to {}; Ctrl-D leaves (the server goes on)", session.what);
    let mut output = std::mem::replace(&mut session.output, futures::stream::empty().boxed());
    let printing = tokio::spawn(async move {
        let mut stdout = std::io::stdout();
        while let Some(chunk) = output.next().await {
            let chunk = chunk.map_err(|e| e.to_string())?;
            stdout.write_all(&chunk).and_then(|_| stdout.flush()).map_err(|e| format!("writing the output: {e}"))?;
        }
        Ok::<_, String>(())
    });
    let mut lines = tokio::io::BufReader::new(tokio::io::stdin()).lines();
    let mut printing = printing;
    loop {
        tokio::select! {
            line = lines.next_line() => match line.map_err(|e| format!("reading the terminal: {e}"))? {
                Some(line) => session.write_line(&line).await.map_err(|e| e.to_string())?,
                None => break,
            },
            // The output ended: the server's instance is gone.
            printed = &mut printing => {
                printed.map_err(|e| e.to_string())??;
                return Err(format!("{} closed: the server stopped", session.what));
            }
        }
    }
    printing.abort();
    session.close().await.map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use crate::{Backend, Cli, Command};

    #[test]
    fn send_and_console_take_the_backend_their_controller_runs_the_server_on() {
        let cli = Cli::try_parse_from([
            "mettaton",
            "send",
            "mc",
            "-n",
            "games",
            "--backend",
            "swarm",
            "--docker-host",
            "tcp://10.0.0.5:2375",
            "say",
            "hi",
        ])
        .unwrap();
        let Command::Send(args) = cli.command else { panic!("{:?}", cli.command) };
        assert_eq!(args.runtime.backend, Backend::Swarm);
        assert_eq!(args.runtime.docker_host.as_deref(), Some("tcp://10.0.0.5:2375"));
        assert_eq!(super::one_line(&args.line, args.wait).unwrap(), "say hi");
        let cli = Cli::try_parse_from(["mettaton", "console", "mc"]).unwrap();
        let Command::Console(args) = cli.command else { panic!("{:?}", cli.command) };
        assert_eq!(args.runtime.backend, Backend::Kubernetes, "Kubernetes unless told");
        assert!(Cli::try_parse_from(["mettaton", "send", "mc", "--backend", "docker", "x"]).is_err());
        assert!(super::one_line(&["a\nb".to_string()], 2.0).is_err());
        assert!(super::one_line(&["a".to_string()], 4000.0).is_err());
    }
}
