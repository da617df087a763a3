//! `GET /payments/{id}`: what the ledger knows about a payment and its full history, for the
//! app's own pages and for operators. The access token is not part of the row.

use crate::error::ApiError;
use crate::state::ApiState;
use axum::extract::{Path, State};
use axum::routing::get;
use axum::{Json, Router};
use pi_payments_core::PaymentId;
use serde_json::{Value, json};

/// `GET /payments/{id}`.
pub fn routes() -> Router<ApiState> {
    Router::new().route("/payments/{id}", get(show))
}

async fn show(
    State(state): State<ApiState>,
    Path(id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let id = PaymentId::parse(&id)
        .map_err(|e| ApiError::bad_request("invalid_payment_id", e.to_string()))?;
    let Some(payment) = state.ledger.payment(&id).await? else {
        return Err(ApiError::not_found(
            "payment_not_found",
            format!("payment {id} is not in the ledger: no callback has mentioned it yet"),
        ));
    };
    let events = state.ledger.payment_events(&id).await?;
    Ok(Json(json!({ "payment": payment, "events": events })))
}
