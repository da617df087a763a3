//! The probe server of a process without the API (`pi-payments worker`, on `WORKER_ADDR`):
//! `/healthz`, `/readyz` (the ledger and the queue, as the API's) and `/metrics`, so that an
//! orchestrator can check a worker and Prometheus can scrape it. Three routes, nothing else.

use crate::error::ApiError;
use crate::health;
use crate::metrics;
use crate::scrape_gauges::ScrapeGauges;
use crate::server::{ServerLimits, serve_bounded};
use axum::Router;
use axum::extract::State;
use axum::response::Response;
use axum::routing::get;
use pi_payments_core::jobs::JobQueue;
use pi_payments_core::ledger::Ledger;
use std::future::Future;
use std::sync::Arc;

/// What the probes read.
#[derive(Clone)]
struct ProbeState {
    ledger: Ledger,
    queue: Arc<dyn JobQueue>,
    gauges: ScrapeGauges,
}

/// The probe routes over `ledger` and `queue`; every request is counted like the API's.
pub fn router(ledger: Ledger, queue: Arc<dyn JobQueue>) -> Router {
    let state = ProbeState {
        ledger,
        queue,
        gauges: ScrapeGauges::default(),
    };
    Router::new()
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(scrape))
        .fallback(not_found)
        .with_state(state)
        .layer(axum::middleware::from_fn(metrics::record_requests))
}

/// Serve the probes on `listener` until `shutdown` resolves (with the API's connection bounds:
/// header timeout, connection cap).
pub async fn serve(
    listener: tokio::net::TcpListener,
    ledger: Ledger,
    queue: Arc<dyn JobQueue>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    serve_bounded(
        listener,
        router(ledger, queue),
        ServerLimits::default(),
        shutdown,
    )
    .await;
}

async fn readyz(State(state): State<ProbeState>) -> Response {
    health::readiness(&state.ledger, &*state.queue).await
}

async fn scrape(State(state): State<ProbeState>) -> Response {
    metrics::scrape(&state.gauges, &state.ledger, &*state.queue).await
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!(
            "no route {}; this probe server has /healthz, /readyz and /metrics",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}
