//! Liveness and readiness. `/healthz` answers as long as the process serves HTTP (no I/O, so a
//! slow database never makes an orchestrator kill a healthy process); `/readyz` checks the
//! ledger and the queue and says which one is down.

use crate::state::ApiState;
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use pi_payments_core::jobs::JobQueue;
use pi_payments_core::ledger::Ledger;
use serde_json::json;
use std::time::Duration;

/// How long a readiness probe waits for each dependency.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// `GET /healthz`: the process is up.
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// `GET /readyz`: 200 when the ledger and the queue both answer; 503 naming each that does not.
pub async fn readyz(State(state): State<ApiState>) -> Response {
    readiness(&state.ledger, &*state.queue).await
}

/// The answer of a readiness probe over `ledger` and `queue` (the API's `/readyz`, and a
/// worker's on `WORKER_ADDR`).
pub async fn readiness(ledger: &Ledger, queue: &dyn JobQueue) -> Response {
    let (ledger, queue) = tokio::join!(
        tokio::time::timeout(PROBE_TIMEOUT, ledger.ping()),
        tokio::time::timeout(PROBE_TIMEOUT, queue.ping()),
    );
    let ledger = match ledger {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    };
    let queue = match queue {
        Ok(Ok(())) => Ok(()),
        Ok(Err(err)) => Err(err.to_string()),
        Err(_) => Err(format!("no answer within {} s", PROBE_TIMEOUT.as_secs())),
    };
    let show = |r: &Result<(), String>| match r {
        Ok(()) => "ok".to_string(),
        Err(e) => e.clone(),
    };
    if ledger.is_ok() && queue.is_ok() {
        return (
            StatusCode::OK,
            Json(json!({"status": "ready", "ledger": "ok", "queue": "ok"})),
        )
            .into_response();
    }
    let down: Vec<&str> = [("ledger", &ledger), ("queue", &queue)]
        .into_iter()
        .filter(|(_, r)| r.is_err())
        .map(|(name, _)| name)
        .collect();
    tracing::warn!(ledger = %show(&ledger), queue = %show(&queue), "not ready");
    (
        StatusCode::SERVICE_UNAVAILABLE,
        Json(json!({
            "error": "not_ready",
            "message": format!("{} not reachable; the fields below say why (a down ledger refuses callbacks with 503, a down queue delays their jobs)", down.join(" and ")),
            "ledger": show(&ledger),
            "queue": show(&queue),
        })),
    )
        .into_response()
}
