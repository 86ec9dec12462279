//! Liveness and readiness over plain HTTP, for Kubernetes probes and load balancers.
//!
//! `GET /healthz` answers 200 while the process serves at all; `GET /readyz` answers 200 once
//! the service has called [`Health::set_ready`] with `true`, and 503 with the reason until then.

use std::sync::{Arc, PoisonError, RwLock};

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::Router;
use tokio::net::TcpListener;

use crate::shutdown::Shutdown;

#[derive(Debug)]
struct Readiness {
    ready: bool,
    reason: String,
}

/// Shared readiness state; clones see the same state.
#[derive(Clone, Debug)]
pub struct Health {
    state: Arc<RwLock<Readiness>>,
}

impl Default for Health {
    fn default() -> Self {
        Self::new()
    }
}

impl Health {
    /// Not ready, with the reason "starting".
    pub fn new() -> Self {
        Self {
            state: Arc::new(RwLock::new(Readiness {
                ready: false,
                reason: "starting".to_owned(),
            })),
        }
    }

    /// Records readiness; `reason` is shown by `/readyz` while not ready (e.g. "NATS unreachable").
    pub fn set_ready(&self, ready: bool, reason: &str) {
        let mut state = self.state.write().unwrap_or_else(PoisonError::into_inner);
        state.ready = ready;
        reason.clone_into(&mut state.reason);
    }

    /// Whether the service is ready for traffic.
    pub fn is_ready(&self) -> bool {
        self.state
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .ready
    }

    fn readiness(&self) -> (bool, String) {
        let state = self.state.read().unwrap_or_else(PoisonError::into_inner);
        (state.ready, state.reason.clone())
    }
}

/// The `/healthz` and `/readyz` routes, for merging into a larger HTTP server.
pub fn router(health: Health) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route("/readyz", get(readyz))
        .with_state(health)
}

async fn readyz(State(health): State<Health>) -> (StatusCode, String) {
    match health.readiness() {
        (true, _) => (StatusCode::OK, "ready".to_owned()),
        (false, reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: {reason}"),
        ),
    }
}

/// Serves the health routes plus `extra` on `listener` until `shutdown` fires, then finishes
/// the requests in flight and returns.
pub async fn serve_http(
    listener: TcpListener,
    health: Health,
    extra: Router,
    shutdown: Shutdown,
) -> std::io::Result<()> {
    let app = router(health).merge(extra);
    axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.wait().await })
        .await
}
