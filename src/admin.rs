//! The controller's admin HTTP server: `/healthz` (the process answers),
//! `/readyz` (the controller can do its job, or is a standby that could) and
//! `/metrics` (see [`crate::metrics`]).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU8, Ordering};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio::net::TcpListener;

use crate::metrics::{self, Metrics};

/// What this replica is doing, for `/readyz`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub enum Role {
    /// Not yet known whether it leads (reading the Lease, checking the CRD).
    Starting = 0,
    /// Another replica holds the Lease; this one waits to take over.
    Standby = 1,
    /// Runs the controller.
    Leading = 2,
}

/// Ready means: a standby waiting for the Lease (so a rolling update can
/// replace the replicas one by one while the leader keeps working), or a
/// leader whose GameServer cache has been filled once. A leader before its
/// first sync would act on an empty view of the cluster.
pub fn ready(role: Role, synced: bool) -> bool {
    match role {
        Role::Starting => false,
        Role::Standby => true,
        Role::Leading => synced,
    }
}

/// The controller's readiness as `/readyz` answers it: the replica's role and
/// whether its GameServer cache has synced. Shared between the controller,
/// the leader election and the admin server.
#[derive(Debug, Default)]
pub struct Readiness {
    role: AtomicU8,
    synced: AtomicBool,
}

impl Readiness {
    pub fn set_role(&self, role: Role) {
        self.role.store(role as u8, Ordering::Relaxed);
    }

    pub fn role(&self) -> Role {
        match self.role.load(Ordering::Relaxed) {
            1 => Role::Standby,
            2 => Role::Leading,
            _ => Role::Starting,
        }
    }

    /// The controller's GameServer cache has its first full list.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
    }

    pub fn ready(&self) -> bool {
        ready(self.role(), self.synced.load(Ordering::Relaxed))
    }
}

#[derive(Clone)]
struct AppState {
    metrics: Arc<Metrics>,
    readiness: Arc<Readiness>,
}

/// The routes, apart from the listener (for tests).
pub fn router(metrics: Arc<Metrics>, readiness: Arc<Readiness>) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics_text))
        .with_state(AppState { metrics, readiness })
}

async fn readyz(State(state): State<AppState>) -> impl IntoResponse {
    if state.readiness.ready() {
        (StatusCode::OK, "ok\n".to_string())
    } else {
        let why = match state.readiness.role() {
            Role::Starting => "starting",
            _ => "the GameServer cache is not synced yet",
        };
        (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {why}\n"))
    }
}

async fn metrics_text(State(state): State<AppState>) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, metrics::CONTENT_TYPE)], state.metrics.encode())
}

/// Binds `address` (host:port; port 0 picks a free one) and logs where it listens.
pub async fn bind(address: &str) -> Result<TcpListener, String> {
    let listener = TcpListener::bind(address).await.map_err(|e| format!("admin server on {address}: {e}"))?;
    let bound = listener.local_addr().map_err(|e| format!("admin server on {address}: {e}"))?;
    tracing::info!("admin server listening on {bound}");
    Ok(listener)
}

/// Serves until the process ends: probes must answer for as long as it runs,
/// also while the controller shuts down.
pub async fn serve(listener: TcpListener, metrics: Arc<Metrics>, readiness: Arc<Readiness>) {
    if let Err(e) = axum::serve(listener, router(metrics, readiness)).await {
        tracing::error!(error = %e, "admin server stopped");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;
    use axum::http::Request;
    use tower::ServiceExt;

    #[test]
    fn readiness_by_role() {
        assert!(!ready(Role::Starting, false));
        assert!(!ready(Role::Starting, true));
        assert!(ready(Role::Standby, false));
        assert!(!ready(Role::Leading, false));
        assert!(ready(Role::Leading, true));
    }

    async fn get(app: &Router, path: &str) -> (StatusCode, Option<String>, String) {
        let response = app.clone().oneshot(Request::get(path).body(Body::empty()).unwrap()).await.unwrap();
        let status = response.status();
        let content_type = response.headers().get(header::CONTENT_TYPE).map(|v| v.to_str().unwrap().to_string());
        let body = axum::body::to_bytes(response.into_body(), usize::MAX).await.unwrap();
        (status, content_type, String::from_utf8(body.to_vec()).unwrap())
    }

    #[tokio::test]
    async fn probes_and_metrics_answer() {
        let metrics = Arc::new(Metrics::new(&[]));
        let readiness = Arc::new(Readiness::default());
        let app = router(metrics.clone(), readiness.clone());

        assert_eq!(get(&app, "/healthz").await.0, StatusCode::OK);
        let (status, _, body) = get(&app, "/readyz").await;
        assert_eq!((status, body.as_str()), (StatusCode::SERVICE_UNAVAILABLE, "not ready: starting\n"));

        readiness.set_role(Role::Standby);
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);
        // Taking over: not ready again until the new leader has synced.
        readiness.set_role(Role::Leading);
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::SERVICE_UNAVAILABLE);
        readiness.set_synced();
        assert_eq!(get(&app, "/readyz").await.0, StatusCode::OK);

        metrics.set_leader(true);
        let (status, content_type, body) = get(&app, "/metrics").await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(content_type.as_deref(), Some(metrics::CONTENT_TYPE));
        assert!(body.contains("\nmettaton_leader 1\n"), "{body}");

        assert_eq!(get(&app, "/nothing").await.0, StatusCode::NOT_FOUND);
    }
}
