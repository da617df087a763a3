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

/// `/healthz`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct Alive {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
}

/// `/readyz`'s answer: `ready`, or (503) what is not reachable.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct Readiness {
    /// `ready` (200).
    status: Option<String>,
    /// `not_ready` (503).
    error: Option<String>,
    /// What is down and what that means (503).
    message: Option<String>,
    /// `ok`, or why the ledger cannot be reached.
    ledger: String,
    /// `ok`, or why the queue cannot be reached.
    queue: String,
}

/// Liveness: the process serves HTTP (no I/O).
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    operation_id = "healthz",
    responses((status = 200, description = "The process is up", body = Alive))
)]
pub async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the ledger and the queue both answer.
///
/// 200 when both answer within 2 s; 503 naming each that does not.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    operation_id = "readyz",
    responses(
        (status = 200, description = "Ledger and queue reachable", body = Readiness),
        (status = 503, description = "The ledger or the queue is not reachable", body = Readiness),
    )
)]
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
