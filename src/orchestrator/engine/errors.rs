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

/// Whether the engine refused to update a container only because the game in
/// it has just exited and the engine has not handled that exit yet: it still
/// takes the container for running, containerd no longer has its task. An
/// update of the container's configuration passes a moment later.
pub fn is_exit_race(err: &DockerError) -> bool {
    matches!(err, DockerError::DockerResponseServerError { status_code: 500, message }
        if message.contains("cannot update a stopped container"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answered(status_code: u16, message: &str) -> DockerError {
        DockerError::DockerResponseServerError { status_code, message: message.to_string() }
    }

    #[test]
    fn the_exit_race_is_the_engines_500_for_an_update_of_a_container_it_still_takes_for_running() {
        // As the fresh-clone CI run got it from Docker 20.10.
        let seen = "Cannot update container 7f3ce6a21905: cannot update a stopped container: unknown";
        assert!(is_exit_race(&answered(500, seen)));
        assert!(!is_exit_race(&answered(409, seen)), "another status is another refusal");
        assert!(!is_exit_race(&answered(500, "Cannot update container: no such container")));
        assert!(!is_exit_race(&DockerError::RequestTimeoutError));
    }
}
