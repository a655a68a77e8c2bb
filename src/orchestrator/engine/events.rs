//! The engine's container events of a backend's servers, as
//! [`InstanceEvent`]s.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bollard::Docker;
use bollard::errors::Error as DockerError;
use bollard::models::EventMessage;
use bollard::query_parameters::EventsOptionsBuilder;
use futures::StreamExt;
use futures::stream::BoxStream;

use crate::orchestrator::{BackendError, InstanceEvent, InstanceEventKind};

/// Starts, exits, out-of-memory kills and health changes of the containers
/// with all of `labels` (`KEY=VALUE`), from `since` on (only new ones when
/// `None`), each made an event by `event` (`None`: not one of the backend's).
/// The stream ends when the connection does; a failure is made the backend's
/// error by `error`.
pub fn container_events(
    docker: &Docker,
    labels: Vec<String>,
    since: Option<SystemTime>,
    event: fn(&EventMessage) -> Option<InstanceEvent>,
    error: impl Fn(String, DockerError) -> BackendError + Send + 'static,
) -> BoxStream<'static, Result<InstanceEvent, BackendError>> {
    let filters = HashMap::from([
        ("type", vec!["container".to_string()]),
        ("label", labels),
        ("event", vec!["start".to_string(), "die".to_string(), "oom".to_string(), "health_status".to_string()]),
    ]);
    let mut options = EventsOptionsBuilder::default().filters(&filters);
    if let Some(since) = since {
        let secs = since.duration_since(UNIX_EPOCH).unwrap_or(Duration::ZERO).as_secs_f64();
        options = options.since(&format!("{secs:.9}"));
    }
    docker
        .events(Some(options.build()))
        .filter_map(move |item| {
            let mapped = match item {
                Ok(message) => event(&message).map(Ok),
                Err(e) => Some(Err(error("follow the Docker daemon's events".to_string(), e))),
            };
            futures::future::ready(mapped)
        })
        .boxed()
}

/// What an engine event of a container says happened to it; `None` for an
/// action that is none of those.
pub fn event_kind(message: &EventMessage) -> Option<InstanceEventKind> {
    let action = message.action.as_deref()?;
    let attributes = message.actor.as_ref()?.attributes.as_ref();
    Some(match action {
        "start" => InstanceEventKind::Started,
        "die" => InstanceEventKind::Exited {
            exit_code: attributes.and_then(|a| a.get("exitCode")).and_then(|c| c.parse().ok()),
        },
        "oom" => InstanceEventKind::OutOfMemory,
        _ => match action.strip_prefix("health_status:").map(str::trim) {
            Some("unhealthy") => InstanceEventKind::Unhealthy,
            Some("healthy") => InstanceEventKind::Healthy,
            _ => return None,
        },
    })
}
