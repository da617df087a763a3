//! `GET /payments/{id}`: what the ledger knows about a payment and its full history, for the
//! app's own pages and for operators. The access token is not part of the row.
//!
//! It answers the payment's Pioneer (Bearer access token or session cookie), the app's backend
//! (`APP_API_TOKEN`) and the operator (`ADMIN_TOKEN`); anyone else gets the 404 of an unknown
//! payment ([`crate::read_access`]).

use crate::error::ApiError;
use crate::extract::PathId;
use crate::read_access;
use crate::state::ApiState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use pi_payments_core::PaymentId;
use serde_json::{Value, json};

/// `GET /payments/{id}`.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/payments/{id}", get(show))
}

/// The one answer for "not there" and "not yours", so that neither can be told apart.
fn not_found(id: &PaymentId) -> ApiError {
    ApiError::not_found(
        "payment_not_found",
        format!(
            "payment {id} is not in the ledger or is not yours: send the paying Pioneer's `Authorization: Bearer <Pi access token>` (or session cookie), or the backend's APP_API_TOKEN; a payment appears once a callback has mentioned it"
        ),
    )
}

async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = PaymentId::parse(&id)
        .map_err(|e| ApiError::bad_request("invalid_payment_id", e.to_string()))?;
    let reader = read_access::reader(&state, &headers).await?;
    if reader == read_access::Reader::Nobody {
        return Err(not_found(&id));
    }
    let Some(payment) = state.ledger.payment(&id).await? else {
        return Err(not_found(&id));
    };
    if !reader.may_read(payment.uid.as_ref()) {
        return Err(not_found(&id));
    }
    let events = state.ledger.payment_events(&id).await?;
    Ok(Json(json!({ "payment": payment, "events": events })))
}
