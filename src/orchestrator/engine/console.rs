//! A container's console on its engine: the engine's attach (stdin, stdout
//! and stderr, as they come; no past log), as a [`ConsoleSession`].
//!
//! The container is created with `OpenStdin` (and not `StdinOnce`): its
//! standard input stays open while nobody is attached, and a session that
//! ends its input leaves it open. The engine copies what a session typed to
//! the container's stdin, and once the session's input ends it closes the
//! session: that close is how a session knows that all it typed was
//! delivered.

use std::time::Duration;

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::AttachContainerOptionsBuilder;
use futures::StreamExt;

use crate::orchestrator::{BackendError, ConsoleSession, error_chain};

/// How long a closing session may take to hand over what was typed.
pub const CONSOLE_CLOSE: Duration = Duration::from_secs(10);
/// Chunks of output held for a session whose reader is slow; the engine
/// waits beyond that (the game does not: its output goes to its log too).
const OUTPUT_BUFFER: usize = 64;

/// A session on the console of the running `container`, called `what` in
/// errors ("the console of GameServer NS/NAME (container ...)"); a failed
/// attach is made the backend's error by `error`.
pub async fn attach(
    docker: &Docker,
    container: &str,
    what: String,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<ConsoleSession, BackendError> {
    let options =
        AttachContainerOptionsBuilder::default().stdin(true).stdout(true).stderr(true).stream(true).logs(false).build();
    let attached =
        docker.attach_container(container, Some(options)).await.map_err(|e| error(format!("open {what}"), e))?;
    let (sender, receiver) = tokio::sync::mpsc::channel(OUTPUT_BUFFER);
    let (ended, ended_rx) = tokio::sync::oneshot::channel::<()>();
    let mut engine_output = attached.output;
    let failed = format!("read {what}");
    // Reads the engine's side until it closes the session, also once the
    // session's reader is gone (its close is awaited); a session dropped
    // without closing its input is let go after CONSOLE_CLOSE.
    tokio::spawn(async move {
        let mut reader = Some(sender);
        let mut deadline: Option<tokio::time::Instant> = None;
        loop {
            let next = async {
                match &reader {
                    Some(r) => tokio::select! {
                        chunk = engine_output.next() => Some(chunk),
                        () = r.closed() => None,
                    },
                    None => Some(engine_output.next().await),
                }
            };
            let step = match deadline {
                Some(at) => match tokio::time::timeout_at(at, next).await {
                    Ok(step) => step,
                    Err(_) => break,
                },
                None => next.await,
            };
            match step {
                // The reader left: what is still to come is drained, for a while.
                None => {
                    reader = None;
                    deadline = Some(tokio::time::Instant::now() + CONSOLE_CLOSE);
                }
                Some(None) => break,
                Some(Some(chunk)) => {
                    let item = chunk
                        .map(|c| c.into_bytes().to_vec())
                        .map_err(|e| BackendError::Other { what: failed.clone(), reason: error_chain(&e) });
                    let broken = item.is_err();
                    if let Some(r) = &reader
                        && r.send(item).await.is_err()
                    {
                        reader = None;
                        deadline = Some(tokio::time::Instant::now() + CONSOLE_CLOSE);
                    }
                    if broken {
                        break;
                    }
                }
            }
        }
        let _ = ended.send(());
    });
    let output = futures::stream::unfold(receiver, |mut r| async move { r.recv().await.map(|item| (item, r)) }).boxed();
    let closing = what.clone();
    let closer = Box::pin(async move {
        match tokio::time::timeout(CONSOLE_CLOSE, ended_rx).await {
            Ok(_) => Ok(()),
            Err(_) => Err(BackendError::Other {
                what: format!("close {closing}"),
                reason: format!(
                    "the engine did not end the session within {} s of the end of its input",
                    CONSOLE_CLOSE.as_secs()
                ),
            }),
        }
    });
    Ok(ConsoleSession { input: attached.input, output, closer, what })
}
