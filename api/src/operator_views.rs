//! What the operator dashboard shows, as JSON for scripts (behind `ADMIN_TOKEN`), and the
//! filter parsing both share:
//!
//! - `GET /admin/overview`: payments and payouts per state (counted up to
//!   [`COUNT_CAP`]), undelivered webhooks, the Pi call rate against `PI_RATE_LIMIT`;
//! - `GET /admin/payments?state=&since=&q=&before=&limit=`: newest first; `q` is a payment id
//!   or a Pioneer uid; `before` is the `next_before` of the previous page;
//! - `GET /admin/payments/{id}`: the payment and its history;
//! - `GET /admin/webhooks?undelivered=1&before=&limit=`: outbox events with their delivery
//!   attempts, last error and next attempt;
//! - `GET /admin/batches?before=&limit=`: bulk imports with their progress.
//!
//! Every page is at most [`MAX_PAGE`] rows of one index range (see
//! `pi_payments_core::ledger::operator_views`).

use crate::error::{ApiError, ErrorBody};
use crate::extract::PathId;
use crate::operator_actions::payment_id;
use crate::state::ApiState;
use axum::extract::{Query, State};
use axum::routing::get;
use axum::{Json, Router};
use pi_payments_core::ids::{BatchId, PaymentId, PayoutId, Uid};
use pi_payments_core::ledger::operator_views::{COUNT_CAP, MAX_PAGE};
use pi_payments_core::ledger::{
    BatchProgress, DeliveryQuery, EventRow, LedgerError, PageCursor, PaymentQuery, PaymentRow,
    PayoutQuery, PayoutRow,
};
use pi_payments_core::state::{PaymentState, PayoutState};
use serde_json::{Value, json};
use std::collections::HashMap;

/// The page size when none is asked for.
pub const DEFAULT_PAGE: i64 = 50;

/// The JSON routes (mount them behind the admin token).
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/admin/overview", get(overview_route))
        .route("/admin/payments", get(payments_route))
        .route("/admin/payments/{id}", get(payment_route))
        .route("/admin/webhooks", get(webhooks_route))
        .route("/admin/batches", get(batches_route))
}

/// The query string of a listing, as text (parsed by the functions below, each refusing bad
/// input with a 400 that names the field).
pub type Params = HashMap<String, String>;

fn param<'a>(params: &'a Params, name: &str) -> Option<&'a str> {
    params.get(name).map(|v| v.trim()).filter(|v| !v.is_empty())
}

/// `limit`: 1 to [`MAX_PAGE`], default [`DEFAULT_PAGE`].
pub fn limit(params: &Params) -> Result<i64, ApiError> {
    match param(params, "limit") {
        None => Ok(DEFAULT_PAGE),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (1..=MAX_PAGE).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("limit must be a whole number from 1 to {MAX_PAGE}"),
                )
            }),
    }
}

/// `since`: a date (`2026-01-31`, midnight UTC) or an RFC 3339 time, as unix ms.
pub fn since(params: &Params) -> Result<Option<i64>, ApiError> {
    let Some(text) = param(params, "since") else {
        return Ok(None);
    };
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.timestamp_millis()));
    }
    chrono::NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| Some(t.and_utc().timestamp_millis()))
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_query",
                "since must be a date like 2026-01-31 or an RFC 3339 time like 2026-01-31T12:00:00Z",
            )
        })
}

/// `before`: the `next_before` cursor of the previous page.
pub fn before(params: &Params) -> Result<Option<PageCursor>, ApiError> {
    param(params, "before")
        .map(|text| {
            PageCursor::parse(text).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    "before must be the next_before value of the previous page",
                )
            })
        })
        .transpose()
}

/// `state` of a payment.
pub fn payment_state(params: &Params) -> Result<Option<PaymentState>, ApiError> {
    param(params, "state")
        .map(|s| {
            PaymentState::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_state",
                    "state must be one of received, approved, completing, completed, cancelled, needs_attention",
                )
            })
        })
        .transpose()
}

/// `state` of a payout.
pub fn payout_state(params: &Params) -> Result<Option<PayoutState>, ApiError> {
    param(params, "state")
        .map(|s| {
            PayoutState::parse(s).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_state",
                    "state must be one of requested, created, signed, confirmed, completed, failed, cancelled, needs_attention",
                )
            })
        })
        .transpose()
}

/// `batch` of a payout listing.
pub fn batch(params: &Params) -> Result<Option<BatchId>, ApiError> {
    param(params, "batch")
        .map(|b| {
            BatchId::parse(b).map_err(|e| ApiError::bad_request("invalid_batch_id", e.to_string()))
        })
        .transpose()
}

/// `q`, the search box: an id or a Pioneer uid.
pub fn search(params: &Params) -> Result<Option<&str>, ApiError> {
    match param(params, "q") {
        Some(q) if q.len() > 128 => Err(ApiError::bad_request(
            "invalid_query",
            "q is a payment or payout id or a Pioneer uid (at most 128 characters)",
        )),
        other => Ok(other),
    }
}

fn uid(q: &str) -> Result<Uid, ApiError> {
    Uid::parse(q).map_err(|e| ApiError::bad_request("invalid_query", e.to_string()))
}

/// One page of a listing and where the next one starts.
#[derive(Debug)]
pub struct Page<T> {
    /// The rows, newest first.
    pub rows: Vec<T>,
    /// The `before` of the next page, when this one was full.
    pub next: Option<String>,
}

fn page<T>(rows: Vec<T>, limit: i64, cursor: impl Fn(&T) -> String) -> Page<T> {
    let full = i64::try_from(rows.len()).unwrap_or(i64::MAX) >= limit;
    let next = if full { rows.last().map(cursor) } else { None };
    Page { rows, next }
}

/// Payments matching the query string: `q` naming a stored payment id shows that payment
/// alone; any other `q` is a Pioneer uid.
pub async fn payments(
    state: &ApiState,
    params: &Params,
    limit: i64,
) -> Result<Page<PaymentRow>, ApiError> {
    let mut query = PaymentQuery {
        state: payment_state(params)?,
        uid: None,
        created_since: since(params)?,
        before: before(params)?,
    };
    if let Some(q) = search(params)? {
        if let Ok(id) = PaymentId::parse(q)
            && let Some(row) = state.ledger.payment(&id).await?
        {
            return Ok(Page {
                rows: vec![row],
                next: None,
            });
        }
        query.uid = Some(uid(q)?);
    }
    let rows = state.ledger.payments_page(&query, limit).await?;
    Ok(page(rows, limit, |r| {
        PageCursor::after(r.created_at, r.id.as_str()).encode()
    }))
}

/// Payouts matching the query string: `q` naming a payout id shows that payout alone; any
/// other `q` is a Pioneer uid.
pub async fn payouts(
    state: &ApiState,
    params: &Params,
    limit: i64,
) -> Result<Page<PayoutRow>, ApiError> {
    let mut query = PayoutQuery {
        state: payout_state(params)?,
        uid: None,
        batch: batch(params)?,
        created_since: since(params)?,
        before: before(params)?,
    };
    if let Some(q) = search(params)? {
        if let Ok(id) = PayoutId::parse(q) {
            let rows = state.ledger.payout(&id).await?.into_iter().collect();
            return Ok(Page { rows, next: None });
        }
        query.uid = Some(uid(q)?);
    }
    let rows = state.ledger.payouts_page(&query, limit).await?;
    Ok(page(rows, limit, |r| {
        PageCursor::after(r.created_at, r.id.as_str()).encode()
    }))
}

/// Outbox events: `undelivered=1` for those the app has not acknowledged; `before` an id.
pub async fn deliveries(
    state: &ApiState,
    params: &Params,
    limit: i64,
) -> Result<Page<EventRow>, ApiError> {
    let before_id = param(params, "before")
        .map(|b| {
            b.parse::<i64>().map_err(|_| {
                ApiError::bad_request(
                    "invalid_query",
                    "before must be the next_before value of the previous page",
                )
            })
        })
        .transpose()?;
    let query = DeliveryQuery {
        undelivered_only: matches!(param(params, "undelivered"), Some("1" | "true" | "on")),
        before_id,
    };
    let rows = state.ledger.deliveries_page(query, limit).await?;
    Ok(page(rows, limit, |e| e.id.to_string()))
}

/// Bulk batches with their progress.
pub async fn batches(
    state: &ApiState,
    params: &Params,
    limit: i64,
) -> Result<Page<BatchProgress>, ApiError> {
    let rows = state
        .ledger
        .batches_page(before(params)?.as_ref(), limit)
        .await?;
    Ok(page(rows, limit, |b| {
        PageCursor::after(b.batch.created_at, b.batch.id.as_str()).encode()
    }))
}

/// The Pi call rate against `PI_RATE_LIMIT`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct CallRate {
    /// `PI_RATE_LIMIT`: requests per second for the whole deployment.
    pub limit_per_second: u32,
    /// The same limit over a minute.
    pub limit_per_minute: u64,
    /// Pi calls (attempts, retries included) made in the last 60 s: by every process of the
    /// deployment when `counted_in` is `deployment`, by this one when it is `process`.
    pub calls_last_minute: u64,
    /// Whose calls `calls_last_minute` counts.
    pub counted_in: CountedIn,
    /// Pi calls made in the last 60 s through this process's Pi client: its API, and its
    /// workers when it runs them (`serve`, or `api` and `worker` roles in one process).
    pub process_calls_last_minute: u64,
    /// Whether the budget is shared through Redis with other processes.
    pub shared: bool,
}

/// Whose calls a [`CallRate`] counts.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum CountedIn {
    /// Every process sharing the budget through Redis (counted there).
    Deployment,
    /// This process only: the budget is not shared, or Redis did not answer.
    Process,
}

impl CountedIn {
    /// The name the JSON answer uses.
    pub fn as_str(self) -> &'static str {
        match self {
            CountedIn::Deployment => "deployment",
            CountedIn::Process => "process",
        }
    }
}

/// The call rate, when this API has a Pi client: the deployment's when the budget is shared
/// and Redis answers, since the process serving the dashboard is rarely the one calling Pi.
pub async fn call_rate(state: &ApiState) -> Option<CallRate> {
    let limiter = state.dashboard.pi_limiter()?;
    let per_second = limiter.per_second().get();
    let process = limiter.calls_last_minute();
    let (calls, counted_in) = match limiter.deployment_calls_last_minute().await {
        Some(calls) => (calls, CountedIn::Deployment),
        None => (process, CountedIn::Process),
    };
    Some(CallRate {
        limit_per_second: per_second,
        limit_per_minute: u64::from(per_second) * 60,
        calls_last_minute: calls,
        counted_in,
        process_calls_last_minute: process,
        shared: limiter.is_shared(),
    })
}

/// What the overview shows.
#[derive(Debug, serde::Serialize)]
pub struct Overview {
    /// Payments per state (each count stops at `count_cap`).
    pub payments: Vec<(PaymentState, i64)>,
    /// Payouts per state (each count stops at `count_cap`).
    pub payouts: Vec<(PayoutState, i64)>,
    /// Outbox events the app's webhook has not acknowledged.
    pub undelivered_webhooks: i64,
    /// Where counts stop.
    pub count_cap: i64,
    /// The Pi call rate, if this API has a Pi client.
    pub pi_calls: Option<CallRate>,
}

impl Overview {
    /// Payments plus payouts in `needs_attention`.
    pub fn needs_attention(&self) -> i64 {
        let payments = self
            .payments
            .iter()
            .filter(|(s, _)| *s == PaymentState::NeedsAttention)
            .map(|(_, n)| n);
        let payouts = self
            .payouts
            .iter()
            .filter(|(s, _)| *s == PayoutState::NeedsAttention)
            .map(|(_, n)| n);
        payments.chain(payouts).sum()
    }
}

/// Read the overview.
pub async fn overview(state: &ApiState) -> Result<Overview, ApiError> {
    Ok(Overview {
        payments: state.ledger.payment_counts().await?,
        payouts: state.ledger.payout_counts().await?,
        undelivered_webhooks: state.ledger.undelivered_count().await?,
        count_cap: COUNT_CAP,
        pi_calls: call_rate(state).await,
    })
}

/// `GET /admin/overview`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct OperatorOverview {
    /// Payments per state name (each count stops at `count_cap`).
    payments: HashMap<String, i64>,
    /// Payouts per state name (each count stops at `count_cap`).
    payouts: HashMap<String, i64>,
    /// Payments plus payouts in `needs_attention`.
    needs_attention: i64,
    /// Outbox events the app's webhook has not acknowledged.
    undelivered_webhooks: i64,
    /// Where counts stop.
    count_cap: i64,
    /// The Pi call rate, null when this API has no Pi client.
    pi_calls: Option<CallRate>,
}

/// A page of `GET /admin/payments`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct OperatorPaymentsPage {
    /// Newest first.
    payments: Vec<PaymentRow>,
    /// What to send as `before` for the next page (null on the last page).
    next_before: Option<String>,
}

/// A page of `GET /admin/webhooks`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct OperatorWebhooksPage {
    /// Outbox events with their delivery state, newest first.
    events: Vec<EventRow>,
    /// What to send as `before` for the next page (null on the last page).
    next_before: Option<String>,
}

/// A page of `GET /admin/batches`.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct OperatorBatchesPage {
    /// Bulk imports with their progress, newest first.
    batches: Vec<BatchProgress>,
    /// What to send as `before` for the next page (null on the last page).
    next_before: Option<String>,
}

/// Count payments and payouts per state.
///
/// The dashboard's overview as JSON: counts per state (capped), undelivered webhooks and the
/// Pi call rate (of every process when they share the budget through Redis).
#[utoipa::path(
    get,
    path = "/admin/overview",
    tag = "operator",
    operation_id = "admin_overview",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The counts", body = OperatorOverview),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn overview_route(State(state): State<ApiState>) -> Result<Json<Value>, ApiError> {
    let o = overview(&state).await?;
    let as_map = |pairs: Vec<(&'static str, i64)>| -> serde_json::Map<String, Value> {
        pairs
            .into_iter()
            .map(|(k, v)| (k.to_string(), Value::from(v)))
            .collect()
    };
    Ok(Json(json!({
        "payments": as_map(o.payments.iter().map(|(s, n)| (s.as_str(), *n)).collect()),
        "payouts": as_map(o.payouts.iter().map(|(s, n)| (s.as_str(), *n)).collect()),
        "needs_attention": o.needs_attention(),
        "undelivered_webhooks": o.undelivered_webhooks,
        "count_cap": o.count_cap,
        "pi_calls": o.pi_calls,
    })))
}

/// List payments, newest first, with filters.
///
/// `q` naming a stored payment id answers that payment alone; any other `q` is a Pioneer uid.
#[utoipa::path(
    get,
    path = "/admin/payments",
    tag = "operator",
    operation_id = "admin_list_payments",
    params(
        ("state" = Option<PaymentState>, Query, description = "Only payments in this state"),
        ("since" = Option<String>, Query, description = "Only payments created since this date (`2026-01-31`, midnight UTC) or RFC 3339 time"),
        ("q" = Option<String>, Query, description = "A payment id or a Pioneer uid (at most 128 characters)"),
        ("before" = Option<String>, Query, description = "The `next_before` of the previous page"),
        ("limit" = Option<i64>, Query, description = "Rows per page, 1 to 100 (default 50)"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of payments", body = OperatorPaymentsPage),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn payments_route(
    State(state): State<ApiState>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(&params)?;
    let p = payments(&state, &params, limit).await?;
    Ok(Json(json!({ "payments": p.rows, "next_before": p.next })))
}

/// Show any payment and its history.
#[utoipa::path(
    get,
    path = "/admin/payments/{id}",
    tag = "operator",
    operation_id = "admin_show_payment",
    params(("id" = String, Path, description = "The payment id")),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The payment and its history", body = crate::payments::PaymentWithHistory),
        (status = 400, description = "Not a payment id", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 404, description = "No such payment", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn payment_route(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = payment_id(&id)?;
    let row = state
        .ledger
        .payment(&id)
        .await?
        .ok_or_else(|| ApiError::from(LedgerError::PaymentNotFound(id.clone())))?;
    let events = state.ledger.payment_events(&id).await?;
    Ok(Json(json!({ "payment": row, "events": events })))
}

/// List outbox events with their webhook delivery state.
///
/// Newest first, with delivery attempts, last error and next attempt.
#[utoipa::path(
    get,
    path = "/admin/webhooks",
    tag = "operator",
    operation_id = "admin_list_webhooks",
    params(
        ("undelivered" = Option<String>, Query, description = "`1` (or `true`, `on`) for only the events the app has not acknowledged"),
        ("before" = Option<i64>, Query, description = "The `next_before` of the previous page (an event id)"),
        ("limit" = Option<i64>, Query, description = "Rows per page, 1 to 100 (default 50)"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of events", body = OperatorWebhooksPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn webhooks_route(
    State(state): State<ApiState>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(&params)?;
    let p = deliveries(&state, &params, limit).await?;
    Ok(Json(json!({ "events": p.rows, "next_before": p.next })))
}

/// List bulk payout batches with their progress.
#[utoipa::path(
    get,
    path = "/admin/batches",
    tag = "operator",
    operation_id = "admin_list_batches",
    params(
        ("before" = Option<String>, Query, description = "The `next_before` of the previous page"),
        ("limit" = Option<i64>, Query, description = "Rows per page, 1 to 100 (default 50)"),
    ),
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "A page of batches", body = OperatorBatchesPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No or wrong ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn batches_route(
    State(state): State<ApiState>,
    Query(params): Query<Params>,
) -> Result<Json<Value>, ApiError> {
    let limit = limit(&params)?;
    let p = batches(&state, &params, limit).await?;
    Ok(Json(json!({ "batches": p.rows, "next_before": p.next })))
}
