//! What an operator may do to stuck rows, shared by the dashboard's forms and the JSON routes
//! scripts use (all behind `ADMIN_TOKEN`):
//!
//! - `POST /admin/payments/{id}/retry`: a `needs_attention` payment goes back through the state
//!   machine (to `completing` when a txid is stored, else `received`) and its job is enqueued;
//! - `POST /admin/payouts/{id}/retry`: a `needs_attention` payout goes back to the step its
//!   stored data implies and its job is enqueued;
//! - `POST /admin/webhooks/{id}/resend`: an outbox event is due for delivery again now.
//!
//! Each is recorded with the operator named (payment and payout histories, `operator_actions`
//! for deliveries). A row that is not in `needs_attention` is 409; nothing is enqueued twice
//! by a double click (only a row that moved gets a job).

use crate::error::{ApiError, ErrorBody};
use crate::extract::PathId;
use crate::state::ApiState;
use axum::extract::State;
use axum::routing::post;
use axum::{Json, Router};
use pi_payments_core::ids::{PaymentId, PayoutId};
use pi_payments_core::jobs::Job;
use pi_payments_core::ledger::{EventRow, LedgerError, PaymentRow, PayoutRow};
use pi_payments_core::state::{PaymentState, PayoutState, RetryStep};
use serde_json::{Value, json};

/// Who asked, as written into histories: the operator, and through which door.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Via {
    /// A form of the dashboard.
    Dashboard,
    /// A JSON route (a script with the Bearer token).
    Api,
}

impl Via {
    fn detail(self, what: &str) -> String {
        match self {
            Via::Dashboard => format!("operator (dashboard): {what}"),
            Via::Api => format!("operator (admin API): {what}"),
        }
    }
}

/// The JSON routes (mount them behind the admin token: [`crate::operator::operator_routes`]).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/admin/payments/{id}/retry", post(retry_payment_route))
        .route("/admin/payouts/{id}/retry", post(retry_payout_route))
        .route("/admin/webhooks/{id}/resend", post(resend_route))
}

/// Parse a payment id from a path.
pub fn payment_id(text: &str) -> Result<PaymentId, ApiError> {
    PaymentId::parse(text).map_err(|e| ApiError::bad_request("invalid_payment_id", e.to_string()))
}

/// Parse a payout id from a path.
pub fn payout_id(text: &str) -> Result<PayoutId, ApiError> {
    PayoutId::parse(text).map_err(|e| ApiError::bad_request("invalid_payout_id", e.to_string()))
}

/// Parse an outbox event id from a path.
pub fn event_id(text: &str) -> Result<i64, ApiError> {
    text.parse::<i64>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ApiError::bad_request(
            "invalid_event_id",
            "an event id is a positive whole number, as GET /events or the dashboard lists it",
        )
    })
}

fn not_waiting(what: &str, id: &str, state: &str) -> ApiError {
    ApiError::Conflict {
        code: "not_needs_attention",
        message: format!(
            "{what} {id} is {state}: only rows in needs_attention can be retried (reload to see where it stands)"
        ),
    }
}

fn queue_down(what: &str, id: &str) -> ApiError {
    ApiError::unavailable(
        "queue_unavailable",
        format!(
            "{what} {id} is back in work but its job could not be queued; the sweeper enqueues it after STUCK_AFTER, or check the queue (REDIS_URL) and retry"
        ),
    )
}

/// Retry a `needs_attention` payment: the transition (recorded with the operator) and then
/// its job. Returns the payment as it is now.
pub async fn retry_payment(
    state: &ApiState,
    id: &PaymentId,
    via: Via,
) -> Result<PaymentRow, ApiError> {
    let current = state
        .ledger
        .payment(id)
        .await?
        .ok_or_else(|| ApiError::from(LedgerError::PaymentNotFound(id.clone())))?;
    if current.state != PaymentState::NeedsAttention {
        return Err(not_waiting("payment", id.as_str(), current.state.as_str()));
    }
    let (applied, step) = match state.ledger.retry_payment(id, &via.detail("retry")).await {
        Ok(done) => done,
        Err(LedgerError::InvalidTransition(t)) => {
            return Err(not_waiting("payment", id.as_str(), t.from.as_str()));
        }
        Err(e) => return Err(e.into()),
    };
    if !applied.moved() {
        return Err(not_waiting(
            "payment",
            id.as_str(),
            applied.row().state.as_str(),
        ));
    }
    let job = match step {
        RetryStep::Approve => Job::approve(id.clone()),
        RetryStep::Complete => Job::complete(id.clone()),
    };
    tracing::info!(payment_id = %id, ?step, "operator retried a payment");
    let job = crate::access_log::tag(job);
    state.queue.enqueue(job).await.map_err(|err| {
        tracing::error!(payment_id = %id, error = %err, "retried payment not enqueued");
        queue_down("payment", id.as_str())
    })?;
    Ok(applied.row().clone())
}

/// Retry a `needs_attention` payout: back to the step its stored data implies (recorded with
/// the operator), then its job.
pub async fn retry_payout(
    state: &ApiState,
    id: &PayoutId,
    via: Via,
) -> Result<PayoutRow, ApiError> {
    let current = state
        .ledger
        .payout(id)
        .await?
        .ok_or_else(|| ApiError::from(LedgerError::PayoutNotFound(id.clone())))?;
    if current.state != PayoutState::NeedsAttention {
        return Err(not_waiting("payout", id.as_str(), current.state.as_str()));
    }
    let applied = match state
        .ledger
        .retry_payout(id, Some(&via.detail("retry")))
        .await
    {
        Ok(done) => done,
        Err(LedgerError::InvalidPayoutTransition(_)) => {
            return Err(not_waiting(
                "payout",
                id.as_str(),
                "no longer needs_attention",
            ));
        }
        Err(e) => return Err(e.into()),
    };
    if !applied.moved() {
        return Err(not_waiting(
            "payout",
            id.as_str(),
            applied.row().state.as_str(),
        ));
    }
    tracing::info!(payout_id = %id, "operator retried a payout");
    state
        .queue
        .enqueue(crate::access_log::tag(Job::payout(id.clone())))
        .await
        .map_err(|err| {
            tracing::error!(payout_id = %id, error = %err, "retried payout not enqueued");
            queue_down("payout", id.as_str())
        })?;
    Ok(applied.into_row())
}

/// Make outbox event `id` due for delivery now (recorded with the operator).
pub async fn resend_webhook(state: &ApiState, id: i64, via: Via) -> Result<EventRow, ApiError> {
    let event = state
        .ledger
        .resend_delivery(id, &via.detail("webhook delivery re-armed"))
        .await?
        .ok_or_else(|| {
            ApiError::not_found(
                "event_not_found",
                format!("no outbox event {id}; list them with GET /admin/webhooks"),
            )
        })?;
    tracing::info!(event_id = id, "operator re-armed a webhook delivery");
    Ok(event)
}

/// `POST /admin/payments/{id}/retry`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct RetriedPayment {
    /// The payment as it is now (back in `completing` or `received`).
    payment: PaymentRow,
    /// Always true: its job is queued.
    enqueued: bool,
}

/// `POST /admin/payouts/{id}/retry`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct RetriedPayout {
    /// The payout as it is now (without its signed envelope).
    payout: PayoutRow,
    /// Always true: its job is queued.
    enqueued: bool,
}

/// `POST /admin/webhooks/{id}/resend`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct ResentWebhook {
    /// The outbox event, now due for delivery.
    event: EventRow,
    /// Always true: the deliverer sends it again shortly.
    rearmed: bool,
}

/// Retry a payment that needs attention.
///
/// Sends a `needs_attention` payment back through the state machine (to `completing` when a
/// txid is stored, else `received`), records the operator in its history and queues its job.
#[utoipa::path(
    post,
    path = "/admin/payments/{id}/retry",
    tag = "operator",
    operation_id = "admin_retry_payment",
    params(("id" = String, Path, description = "The payment id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Back in work and queued", body = RetriedPayment),
        (status = 400, description = "Not a payment id", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 409, description = "The payment is not in needs_attention", body = ErrorBody),
        (status = 503, description = "Ledger or queue unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn retry_payment_route(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = payment_id(&id)?;
    let row = retry_payment(&state, &id, Via::Api).await?;
    Ok(Json(json!({ "payment": row, "enqueued": true })))
}

/// Retry a payout that needs attention.
///
/// Sends a `needs_attention` payout back to the step its stored data implies, records the
/// operator in its history and queues its job.
#[utoipa::path(
    post,
    path = "/admin/payouts/{id}/retry",
    tag = "operator",
    operation_id = "admin_retry_payout",
    params(("id" = String, Path, description = "The payout id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Back in work and queued", body = RetriedPayout),
        (status = 400, description = "Not a payout id", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such payout", body = ErrorBody),
        (status = 409, description = "The payout is not in needs_attention", body = ErrorBody),
        (status = 503, description = "Ledger or queue unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn retry_payout_route(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = payout_id(&id)?;
    let row = retry_payout(&state, &id, Via::Api).await?;
    Ok(Json(
        json!({ "payout": crate::payouts::payout_json(&row), "enqueued": true }),
    ))
}

/// Resend a webhook delivery.
///
/// Makes an outbox event due for delivery now (again, if it was delivered: apps dedupe by
/// event id) and records the operator.
#[utoipa::path(
    post,
    path = "/admin/webhooks/{id}/resend",
    tag = "operator",
    operation_id = "admin_resend_webhook",
    params(("id" = i64, Path, description = "The outbox event id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Due for delivery now", body = ResentWebhook),
        (status = 400, description = "Not an event id", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such event", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn resend_route(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = event_id(&id)?;
    let event = resend_webhook(&state, id, Via::Api).await?;
    Ok(Json(json!({ "event": event, "rearmed": true })))
}
