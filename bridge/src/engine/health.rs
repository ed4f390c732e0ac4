//! `/metrics`, `/healthz` and `/readyz` over HTTP.
//!
//! - `/metrics`: Prometheus text exposition (see [`metrics`](super::metrics)).
//! - `/healthz`: `200 ok` while the process runs.
//! - `/readyz`: `200` when every connection is up, subscribed, and neither refusing nor
//!   sitting on (stalled) the bridge's messages, else `503`; the body is a
//!   JSON [`Readiness`] naming each connection, whether it is connected and subscribed, and
//!   its last error. With a spool (`--spool-dir`), a broker that is down or stalled does not
//!   make the bridge unready (spooling is its job then); a spool queue that is full, cannot
//!   write or is corrupt does, and `spool` names its state.

use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::Shared;

/// The readiness of the bridge: ready when every connection is connected and subscribed
/// and the bridge is not shutting down.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Readiness {
    /// Whether the bridge is ready.
    pub ready: bool,
    /// Whether shutdown has begun.
    pub shutting_down: bool,
    /// Every connection.
    pub connections: Vec<ConnectionStatus>,
    /// Every spool queue (empty without `--spool-dir`).
    pub spool: Vec<super::SpoolStatus>,
}

/// The state of one broker connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConnectionStatus {
    /// The connector's name.
    pub bridge: String,
    /// `local` or `remote`.
    pub broker: &'static str,
    /// The MQTT client identifier.
    pub client_id: String,
    /// `host:port`.
    pub endpoint: String,
    /// Whether the MQTT session is established.
    pub connected: bool,
    /// Whether every subscription was granted (true when there is none to make).
    pub subscribed: bool,
    /// Whether the broker refused the last message the bridge published on this
    /// connection (reason code in `last_error`); cleared by the next accepted one.
    pub publishes_refused: bool,
    /// Why the last attempt failed or the subscription was refused.
    pub last_error: Option<String>,
    /// Set when the broker has acknowledged none of the messages the bridge published on
    /// this connection for longer than a keep-alive while connected: seconds the oldest has
    /// waited. A stalled session still answers pings, so only this shows it.
    pub stalled_secs: Option<u64>,
}

impl ConnectionStatus {
    /// Connected and subscribed, and the broker accepts and acknowledges what the bridge
    /// publishes.
    pub fn is_ready(&self) -> bool {
        self.connected && self.subscribed && !self.publishes_refused && self.stalled_secs.is_none()
    }
}

/// Serves the endpoints until `stop` is cancelled.
pub(crate) async fn serve(
    listener: tokio::net::TcpListener,
    shared: Arc<Shared>,
    stop: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .with_state(shared);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { stop.cancelled().await })
        .await;
    if let Err(error) = result {
        tracing::error!(%error, "metrics endpoint failed");
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        shared.metrics.encode(),
    )
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    let readiness = shared.readiness();
    let status = if readiness.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string_pretty(&readiness).unwrap_or_default();
    (status, [(header::CONTENT_TYPE, "application/json")], body)
}
