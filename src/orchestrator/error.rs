//! The failures of a backend, typed: the status, the metrics and the facade
//! match on the kind, never on the text.

/// A failure of a backend, with what the user should know of it.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// The backend could not be reached (network, daemon down).
    #[error("backend unreachable: {0}")]
    Unreachable(String),
    /// The image is neither on the node nor in its registry.
    #[error("image {image} not found locally or in its registry: {reason}")]
    ImageMissing { image: String, reason: String },
    /// A port the server must publish is already published by something else.
    #[error("port {port}/{protocol} is already published by {holder}")]
    PortTaken { port: i64, protocol: String, holder: String },
    /// The backend refused a request (invalid object, quota, permission...).
    #[error("backend refused {what}: {reason}")]
    Refused { what: String, reason: String },
    /// Any other failure of the backend's API.
    #[error("backend error during {what}: {reason}")]
    Other { what: String, reason: String },
}

impl BackendError {
    /// Every [`reason`](BackendError::reason), in the order of the variants.
    pub const REASONS: [&'static str; 5] =
        ["BackendUnreachable", "ImageMissing", "PortTaken", "BackendRefused", "BackendError"];

    /// Whether the request cannot succeed as it is: the backend refused it, or
    /// its image or ports are not to be had. A server that never ran is then
    /// Failed, not Pending; the other failures may pass on their own.
    pub fn is_permanent(&self) -> bool {
        match self {
            BackendError::Refused { .. } | BackendError::ImageMissing { .. } | BackendError::PortTaken { .. } => true,
            BackendError::Unreachable(_) | BackendError::Other { .. } => false,
        }
    }

    /// A short machine-readable reason, for conditions, Events and metrics.
    pub fn reason(&self) -> &'static str {
        match self {
            BackendError::Unreachable(_) => "BackendUnreachable",
            BackendError::ImageMissing { .. } => "ImageMissing",
            BackendError::PortTaken { .. } => "PortTaken",
            BackendError::Refused { .. } => "BackendRefused",
            BackendError::Other { .. } => "BackendError",
        }
    }
}

/// An error with its causes: transport errors keep the useful part
/// (connection refused, no such file, certificate expired) deep in the chain.
pub(crate) fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reasons_lists_every_reason_and_refusals_are_permanent() {
        let text = String::new;
        let every = |e: &BackendError| match e {
            // Exhaustive: a new variant must be added here and to REASONS.
            BackendError::Unreachable(_)
            | BackendError::ImageMissing { .. }
            | BackendError::PortTaken { .. }
            | BackendError::Refused { .. }
            | BackendError::Other { .. } => e.reason(),
        };
        let errors = [
            BackendError::Unreachable(text()),
            BackendError::ImageMissing { image: text(), reason: text() },
            BackendError::PortTaken { port: 1, protocol: text(), holder: text() },
            BackendError::Refused { what: text(), reason: text() },
            BackendError::Other { what: text(), reason: text() },
        ];
        assert_eq!(errors.iter().map(every).collect::<Vec<_>>(), BackendError::REASONS);
        let permanent: Vec<bool> = errors.iter().map(BackendError::is_permanent).collect();
        assert_eq!(permanent, [false, true, true, true, false]);
    }
}
