//! A server's log as the engine gives it: asked for with [`log_options`],
//! read whole or followed as text.

use bollard::container::LogOutput;
use bollard::errors::Error as DockerError;
use bollard::query_parameters::{LogsOptions, LogsOptionsBuilder};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use crate::orchestrator::BackendError;

/// Both streams of the log, its last `tail` lines (all when `None`), then
/// what comes (`follow`), with the engine's timestamp in front of each line
/// (`timestamps`).
pub fn log_options(tail: Option<i64>, follow: bool, timestamps: bool) -> LogsOptions {
    let mut options = LogsOptionsBuilder::default()
        .stdout(true)
        .stderr(true)
        .tail(&tail.map_or_else(|| "all".to_string(), |n| n.max(0).to_string()));
    if follow {
        options = options.follow(true);
    }
    if timestamps {
        options = options.timestamps(true);
    }
    options.build()
}

/// The whole of a log `stream` as text; a failure is the backend's error
/// (`error`) of `what`.
pub async fn read_log(
    stream: impl Stream<Item = Result<LogOutput, DockerError>>,
    what: String,
    error: impl Fn(String, DockerError) -> BackendError,
) -> Result<String, BackendError> {
    let mut stream = std::pin::pin!(stream);
    let mut bytes = Vec::new();
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| error(what.clone(), e))?;
        bytes.extend_from_slice(&chunk.into_bytes());
    }
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// A followed log `stream`'s chunks as text; a failure is the backend's
/// error (`error`) of `what`.
pub fn log_text(
    stream: impl Stream<Item = Result<LogOutput, DockerError>> + Send + 'static,
    what: String,
    error: impl Fn(String, DockerError) -> BackendError + Send + 'static,
) -> BoxStream<'static, Result<String, BackendError>> {
    stream
        .map(move |chunk| {
            chunk.map(|c| String::from_utf8_lossy(&c.into_bytes()).into_owned()).map_err(|e| error(what.clone(), e))
        })
        .boxed()
}
