//! A2U payouts over HTTP (operator routes, behind `ADMIN_TOKEN`; see [`crate::operator`]):
//!
//! - `POST /payouts {uid, amount, memo, metadata?, idempotency_key}` → 202 with the new payout,
//!   200 with the existing one for a repeated key and body, 409 for a repeated key with another
//!   body;
//! - `POST /payouts/bulk` (CSV or JSON lines, up to [`BULK_BODY_LIMIT`]) → 202
//!   `{batch_id, accepted, duplicates, rejected: [{line, error}], already_imported}`, good rows
//!   committed in chunks (see [`pi_payments_core::payout_import::run_import`]); a file whose
//!   every row was already imported → 200 naming the existing batch, no new batch;
//! - `GET /payouts/{id}` (row and history), `GET /payouts?batch=&state=&limit=&after=`;
//! - `POST /payouts/{id}/cancel` (only before an envelope exists).
//!
//! The API only records requests and enqueues `Job::Payout`; the worker's
//! `PayoutProcessor::step` does the rest. Every job is enqueued after the ledger commit, and a
//! repeated request enqueues again, so a lost enqueue is repaired by retrying the same call
//! (and by the sweeper for payouts left in flight).

use crate::error::{ApiError, CALLBACK_SIZE_ADVICE, ErrorBody};
use crate::extract::{BODY_LIMIT, PathId};
use crate::state::ApiState;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::routing::{get, post};
use axum::{Json, Router};
use pi_payments_core::ids::{BatchId, PayoutId};
use pi_payments_core::jobs::Job;
use pi_payments_core::ledger::{BatchRow, LedgerError, PayoutEventRow, PayoutFilter, PayoutRow};
use pi_payments_core::payout_import::PayoutRequestJson;
use pi_payments_core::payout_import::{
    BulkError, BulkFormat, BulkOutcome, BulkRecordError, ImportPace, parse_bulk,
    parse_json_request, run_import, start_import,
};
use pi_payments_core::state::PayoutState;
use serde_json::{Value, json};
use std::collections::HashMap;

/// The default page of `GET /payouts`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page of `GET /payouts`.
pub const MAX_LIMIT: i64 = 1000;
/// The largest bulk body the API reads (the rest of the API stays at 64 KiB).
pub const BULK_BODY_LIMIT: usize = 16 * 1024 * 1024;

/// Every payout route. Mount it behind the admin token (it is merged in
/// [`crate::operator::operator_routes`]).
pub fn payout_routes() -> Router<ApiState> {
    Router::new()
        .route("/payouts", post(create).get(list))
        .route(
            "/payouts/bulk",
            // Files are large: this route alone reads up to 16 MiB.
            post(bulk).layer(DefaultBodyLimit::max(BULK_BODY_LIMIT)),
        )
        .route("/payouts/{id}", get(show))
        .route("/payouts/{id}/cancel", post(cancel))
}

impl From<BulkRecordError> for ApiError {
    fn from(err: BulkRecordError) -> ApiError {
        match err {
            BulkRecordError::Ledger(e) => e.into(),
            BulkRecordError::Queue(_) => {
                tracing::error!(error = %err, "bulk payouts recorded but not enqueued");
                ApiError::unavailable("queue_unavailable", err.to_string())
            }
        }
    }
}

/// A payout as the API shows it: the ledger row without the signed envelope (large, and of
/// no use to an app); the amount a decimal string and times RFC 3339, like every answer.
pub fn payout_json(row: &PayoutRow) -> Value {
    let mut value = serde_json::to_value(row).unwrap_or(Value::Null);
    if let Value::Object(map) = &mut value {
        map.remove("envelope_b64");
    }
    value
}

fn bytes_error(rejection: &BytesRejection, limit: usize) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        ApiError::too_large(limit, CALLBACK_SIZE_ADVICE)
    } else {
        ApiError::bad_request(
            "unreadable_body",
            "the request body could not be read; send it again",
        )
    }
}

async fn enqueue(state: &ApiState, row: &PayoutRow) -> Result<(), ApiError> {
    if !row.state.is_in_flight() {
        return Ok(());
    }
    state
        .queue
        .enqueue(crate::access_log::tag(Job::payout(row.id.clone())))
        .await
        .map_err(|err| {
            tracing::error!(payout_id = %row.id, error = %err, "payout recorded but not enqueued");
            ApiError::unavailable(
                "queue_unavailable",
                format!(
                    "payout {} is recorded but could not be queued; send the same request again (nothing is paid twice)",
                    row.id
                ),
            )
        })
}

/// The answer of `POST /payouts`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct PayoutCreated {
    /// The payout (new, or the one this idempotency key already made).
    payout: PayoutRow,
    /// Whether this request created it.
    created: bool,
}

/// One payout, as `GET /payouts/{id}` and `POST /payouts/{id}/cancel` answer it.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct PayoutWithHistory {
    /// The payout (without its signed envelope).
    payout: PayoutRow,
    /// Its history, oldest first (`GET /payouts/{id}` only).
    events: Option<Vec<PayoutEventRow>>,
}

/// A page of `GET /payouts`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct PayoutsPage {
    /// Oldest first.
    payouts: Vec<PayoutRow>,
    /// What to send as `after` for the next page (null on the last page).
    next_after: Option<PayoutId>,
    /// The batch asked for with `batch`, with its counts.
    batch: Option<BatchRow>,
}

/// `POST /payouts/{id}/cancel`'s optional body.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the body for the OpenAPI document; `cancel` reads it.
pub struct CancelPayoutRequest {
    /// Why (kept in the payout's history, at most 500 characters).
    reason: Option<String>,
}

/// Request one payout to a Pioneer (A2U).
///
/// Idempotent by `idempotency_key`: the same key and body answer the existing payout (200),
/// the same key with another body is 409. The payout job does the rest.
#[utoipa::path(
    post,
    path = "/payouts",
    tag = "payouts",
    operation_id = "create_payout",
    request_body = PayoutRequestJson,
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "Recorded and queued", body = PayoutCreated),
        (status = 200, description = "This key's payout, already requested", body = PayoutCreated),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 409, description = "The key was used with another body", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 503, description = "Ledger or queue unreachable; send the same request again", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let body = body.map_err(|r| bytes_error(&r, BODY_LIMIT))?;
    let request =
        parse_json_request(&body).map_err(|msg| ApiError::bad_request("invalid_payout", msg))?;
    let (row, created) = state.ledger.request_payout(request).await?;
    enqueue(&state, &row).await?;
    let status = if created {
        StatusCode::ACCEPTED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        Json(json!({ "payout": payout_json(&row), "created": created })),
    ))
}

/// Request many payouts from a CSV or JSON-lines file.
///
/// CSV columns `uid,amount,memo,idempotency_key`, or one `PayoutRequest` JSON object per line;
/// up to 16 MiB. Good rows are recorded, refused ones reported by line; a file whose every row
/// was already imported answers 200 naming the existing batch.
#[utoipa::path(
    post,
    path = "/payouts/bulk",
    tag = "payouts",
    operation_id = "bulk_payouts",
    params(("source" = Option<String>, Query, description = "A name for the batch (e.g. the file name; default `api`)")),
    request_body(content(
        (String = "text/csv"),
        (String = "application/x-ndjson"),
    ), description = "The file"),
    security(("admin_token" = [])),
    responses(
        (status = 202, description = "A new batch", body = BulkOutcome),
        (status = 200, description = "Every row was already imported", body = BulkOutcome),
        (status = 400, description = "Unsupported content type, unreadable file or too many rows", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 413, description = "Body over 16 MiB", body = ErrorBody),
        (status = 503, description = "Ledger or queue unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn bulk(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, Json<BulkOutcome>), ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let Some(format) = BulkFormat::from_content_type(content_type) else {
        return Err(ApiError::bad_request(
            "unsupported_content_type",
            "send the file as Content-Type: text/csv (uid,amount,memo,idempotency_key) or application/x-ndjson (one JSON payout per line)",
        ));
    };
    let body = body.map_err(|r| bytes_error(&r, BULK_BODY_LIMIT))?;
    let rows = parse_bulk(&body, format).map_err(|e| match e {
        BulkError::TooManyRows { .. } => ApiError::bad_request("too_many_rows", e.to_string()),
        other => ApiError::bad_request("invalid_bulk_file", other.to_string()),
    })?;
    let source = query
        .get("source")
        .map(|s| s.chars().take(200).collect::<String>())
        .unwrap_or_else(|| "api".to_string());
    let mut import = start_import(&state.ledger, &source, rows).await?;
    // The import runs on a task of its own, outside this request's task-local id.
    import.request_id = crate::access_log::current().map(|id| id.as_str().to_string());
    // Its own task: a client that hangs up (or a request timeout) never stops an import
    // between two chunks; it runs to the end either way.
    let ledger = state.ledger.clone();
    let queue = state.queue.clone();
    let task = tokio::spawn(async move {
        let mut done = 0u64;
        let total = import.rows.len() as u64;
        let batch = import.batch_id.clone();
        run_import(
            &ledger,
            queue.as_ref(),
            import,
            ImportPace::IN_PROCESS,
            &mut |n| {
                done += n;
                tracing::debug!(batch_id = %batch, done, total, "bulk import progress");
            },
        )
        .await
    });
    let outcome = match task.await {
        Ok(Ok(outcome)) => outcome,
        Ok(Err(stopped)) => return Err(stopped.error.into()),
        Err(err) => {
            tracing::error!(error = %err, "bulk import task failed");
            return Err(ApiError::Internal);
        }
    };
    let status = if outcome.already_imported {
        StatusCode::OK
    } else {
        StatusCode::ACCEPTED
    };
    Ok((status, Json(outcome)))
}

fn payout_id(text: &str) -> Result<PayoutId, ApiError> {
    PayoutId::parse(text).map_err(|e| ApiError::bad_request("invalid_payout_id", e.to_string()))
}

async fn load(state: &ApiState, id: &PayoutId) -> Result<PayoutRow, ApiError> {
    state
        .ledger
        .payout(id)
        .await?
        .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()).into())
}

/// Show a payout and its history.
#[utoipa::path(
    get,
    path = "/payouts/{id}",
    tag = "payouts",
    operation_id = "show_payout",
    params(("id" = String, Path, description = "The payout id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The payout and its history", body = PayoutWithHistory),
        (status = 400, description = "Not a payout id", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such payout", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = payout_id(&id)?;
    let row = load(&state, &id).await?;
    let events = state.ledger.payout_events(&id).await?;
    Ok(Json(
        json!({ "payout": payout_json(&row), "events": events }),
    ))
}

/// List payouts, oldest first; `next_after` pages on.
#[utoipa::path(
    get,
    path = "/payouts",
    tag = "payouts",
    operation_id = "list_payouts",
    params(
        ("batch" = Option<String>, Query, description = "Only this bulk batch's payouts"),
        ("state" = Option<PayoutState>, Query, description = "Only payouts in this state"),
        ("limit" = Option<i64>, Query, description = "Most payouts to answer, 1 to 1000 (default 100)"),
        ("after" = Option<String>, Query, description = "The `next_after` of the previous page"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of payouts", body = PayoutsPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such batch", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<Value>, ApiError> {
    let batch = query
        .get("batch")
        .filter(|b| !b.is_empty())
        .map(|b| {
            BatchId::parse(b).map_err(|e| ApiError::bad_request("invalid_batch_id", e.to_string()))
        })
        .transpose()?;
    let wanted = query
        .get("state")
        .filter(|s| !s.is_empty())
        .map(|s| {
            PayoutState::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_state",
                    "state must be one of requested, created, signed, confirmed, completed, failed, cancelled, needs_attention",
                )
            })
        })
        .transpose()?;
    let limit = match query.get("limit") {
        None => DEFAULT_LIMIT,
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("limit must be a whole number from 1 to {MAX_LIMIT}"),
                )
            })?,
    };
    let after = query
        .get("after")
        .filter(|a| !a.is_empty())
        .map(|a| payout_id(a))
        .transpose()?;
    let batch_row = match &batch {
        Some(b) => Some(
            state
                .ledger
                .batch(b)
                .await?
                .ok_or_else(|| LedgerError::BatchNotFound(b.clone()))?,
        ),
        None => None,
    };
    let filter = PayoutFilter {
        batch,
        state: wanted,
    };
    let rows = state.ledger.payouts(&filter, limit, after.as_ref()).await?;
    let next_after = if i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit {
        rows.last().map(|r| r.id.clone())
    } else {
        None
    };
    let payouts: Vec<Value> = rows.iter().map(payout_json).collect();
    Ok(Json(json!({
        "payouts": payouts,
        "next_after": next_after,
        "batch": batch_row,
    })))
}

/// Cancel a payout that has no signed transaction yet.
///
/// Only before an envelope was stored; 409 once the payout may be on its way to the chain. The
/// payout job runs after, so that an open Pi payment is cancelled at Pi too.
#[utoipa::path(
    post,
    path = "/payouts/{id}/cancel",
    tag = "payouts",
    operation_id = "cancel_payout",
    params(("id" = String, Path, description = "The payout id")),
    request_body(content = Option<CancelPayoutRequest>, description = "Optional: why"),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "Cancelled", body = PayoutWithHistory),
        (status = 400, description = "Not a payout id, or a body that is not JSON", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such payout", body = ErrorBody),
        (status = 409, description = "Too late: the payout may already be on the chain", body = ErrorBody),
        (status = 503, description = "Ledger or queue unreachable; send the cancel again", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    PathId(id): PathId,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<Value>, ApiError> {
    let id = payout_id(&id)?;
    let body = body.map_err(|r| bytes_error(&r, BODY_LIMIT))?;
    let reason = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: Value = serde_json::from_slice(&body).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("the body is not JSON ({e}); send {{\"reason\": \"…\"}} or nothing"),
            )
        })?;
        value
            .get("reason")
            .and_then(Value::as_str)
            .map(|r| r.chars().take(500).collect::<String>())
    };
    load(&state, &id).await?;
    let applied = state.ledger.cancel_payout(&id, reason.as_deref()).await?;
    let row = applied.into_row();
    if row.state != PayoutState::Cancelled {
        return Err(ApiError::Conflict {
            code: "not_cancellable",
            message: format!(
                "payout {id} is {} and can no longer be cancelled (only requested or created payouts can)",
                row.state.as_str()
            ),
        });
    }
    // The step closes the Pi payment, if one was created (it is a no-op otherwise).
    state
        .queue
        .enqueue(crate::access_log::tag(Job::payout(id.clone())))
        .await
        .map_err(|err| {
            tracing::error!(payout_id = %id, error = %err, "cancelled payout not enqueued");
            ApiError::unavailable(
                "queue_unavailable",
                format!(
                    "payout {id} is cancelled but its Pi payment could not be closed yet; send the cancel again"
                ),
            )
        })?;
    Ok(Json(json!({ "payout": payout_json(&row) })))
}
