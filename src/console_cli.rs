//! `mettaton send` and `mettaton console`: a GameServer's console on
//! Kubernetes, through the API server with the caller's own credentials (so
//! RBAC decides who may type, and the audit log shows who did).

use std::io::Write;
use std::time::Duration;

use futures::StreamExt;
use mettaton::orchestrator::kubernetes::KubernetesOrchestrator;
use mettaton::orchestrator::{Console, ConsoleSession};

use crate::ServerRef;

#[derive(clap::Args, Debug)]
pub struct SendArgs {
    #[command(flatten)]
    target: ServerRef,
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
}

async fn attach(target: &ServerRef) -> Result<ConsoleSession, String> {
    let server = target.read().await?;
    let plan = mettaton::plan::plan(&server.gs);
    KubernetesOrchestrator::new(server.client).attach(&plan).await.map_err(|e| e.to_string())
}

/// Types one line, and prints what the game prints for `--wait` seconds.
pub async fn send(args: SendArgs) -> Result<(), String> {
    if !(0.0..=3600.0).contains(&args.wait) {
        return Err(format!("--wait {} is not between 0 and 3600 seconds", args.wait));
    }
    let line = args.line.join(" ");
    if line.contains('\n') {
        return Err("the line must be one line: it contains a newline".into());
    }
    let mut session = attach(&args.target).await?;
    session.write_line(&line).await.map_err(|e| e.to_string())?;
    let deadline = tokio::time::Instant::now() + Duration::from_secs_f64(args.wait);
    let mut stdout = std::io::stdout();
    while let Ok(Some(chunk)) = tokio::time::timeout_at(deadline, session.output.next()).await {
        let chunk = chunk.map_err(|e| e.to_string())?;
        stdout.write_all(&chunk).and_then(|_| stdout.flush()).map_err(|e| format!("writing the output: {e}"))?;
    }
    session.close().await.map_err(|e| e.to_string())
}

/// The console, interactive: what the game prints is shown as it comes, each
/// line typed goes to the game; end of input (Ctrl-D) leaves.
pub async fn console(args: ConsoleArgs) -> Result<(), String> {
    use tokio::io::AsyncBufReadExt;
    let mut session = attach(&args.target).await?;
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
