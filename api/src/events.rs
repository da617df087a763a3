//! `GET /events?after=<id>&limit=<n>`: the outbox for apps that poll instead of (or as well
//! as) receiving webhooks. Pages by the last id seen; `next_after` is what to send next.

use crate::error::{ApiError, ErrorBody};
use crate::read_access;
use crate::state::ApiState;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use pi_payments_core::events::WebhookBody;

use std::collections::HashMap;

/// The default and the largest page.
pub const DEFAULT_LIMIT: i64 = 100;
/// The largest page one request may ask for.
pub const MAX_LIMIT: i64 = 1000;

/// `GET /events`.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/events", get(list))
}

fn number(
    query: &HashMap<String, String>,
    name: &str,
    default: i64,
    max: i64,
) -> Result<i64, ApiError> {
    match query.get(name) {
        None => Ok(default),
        Some(text) => text
            .parse::<i64>()
            .ok()
            .filter(|n| (0..=max).contains(n))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name} must be a whole number from 0 to {max}, e.g. /events?after=0&limit={DEFAULT_LIMIT}"),
                )
            }),
    }
}

/// A page of the outbox.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct EventsPage {
    /// The events after `after`, oldest first (each as its webhook body).
    pub events: Vec<WebhookBody>,
    /// What to send as `after` for the next page.
    pub next_after: i64,
}

/// List events of the outbox (the webhooks' bodies), oldest first.
///
/// For the app's backend and the operator: the outbox holds every Pioneer's payments.
#[utoipa::path(
    get,
    path = "/events",
    tag = "events",
    operation_id = "list_events",
    params(
        ("after" = Option<i64>, Query, description = "The last event id already seen (default 0)"),
        ("limit" = Option<i64>, Query, description = "Most events to answer, 1 to 1000 (default 100)"),
    ),
    security(("app_api_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "A page of events", body = EventsPage),
        (status = 400, description = "Bad query", body = ErrorBody),
        (status = 401, description = "No or wrong backend token", body = ErrorBody),
        (status = 503, description = "Ledger unreachable; retry", body = ErrorBody),
    )
)]
pub(crate) async fn list(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(query): Query<HashMap<String, String>>,
) -> Result<Json<EventsPage>, ApiError> {
    read_access::require_backend(&state, &headers)?;
    let after = number(&query, "after", 0, i64::MAX)?;
    let limit = number(&query, "limit", DEFAULT_LIMIT, MAX_LIMIT)?.max(1);
    let rows = state.ledger.events_after(after, limit).await?;
    let next_after = rows.last().map(|r| r.id).unwrap_or(after);
    let events: Vec<WebhookBody> = rows.iter().map(WebhookBody::from_row).collect();
    Ok(Json(EventsPage { events, next_after }))
}
