//! The engine's errors as the [`BackendError`]s users see.

use std::fmt::Display;

use bollard::errors::Error as DockerError;

use crate::orchestrator::{BackendError, error_chain};

/// A bollard error as the backend error the user sees, naming the daemon
/// when it could not be reached: a 4xx is a refusal (but 408 and 429, which
/// say "not now", not "no"), anything else another failure.
pub fn error(daemon: &impl Display, what: String, err: DockerError) -> BackendError {
    if is_transport(&err) {
        return BackendError::Unreachable(format!(
            "{what}: the Docker daemon at {daemon} does not answer: {}",
            error_chain(&err)
        ));
    }
    match err {
        DockerError::DockerResponseServerError { status_code, message }
            if (400..500).contains(&status_code) && !matches!(status_code, 408 | 429) =>
        {
            BackendError::Refused { what, reason: message }
        }
        DockerError::DockerResponseServerError { status_code, message } => {
            BackendError::Other { what, reason: format!("{message} (HTTP {status_code})") }
        }
        other => BackendError::Other { what, reason: error_chain(&other) },
    }
}

/// The HTTP status of an engine's answer, if it answered.
pub fn status_of(err: &DockerError) -> Option<u16> {
    match err {
        DockerError::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// The engine's own message for an error, else the error as text.
pub fn docker_message(err: &DockerError) -> String {
    match err {
        DockerError::DockerResponseServerError { message, .. } => message.clone(),
        DockerError::DockerStreamError { error } => error.clone(),
        other => error_chain(other),
    }
}

/// Whether the daemon could not be reached or stopped answering, as opposed
/// to answering with an error.
pub fn is_transport(err: &DockerError) -> bool {
    matches!(
        err,
        DockerError::HyperLegacyError { .. }
            | DockerError::IOError { .. }
            | DockerError::RequestTimeoutError
            | DockerError::SocketNotFoundError(_)
            | DockerError::HttpClientError { .. }
            | DockerError::HyperResponseError { .. }
    )
}
