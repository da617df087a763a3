//! `GET /payments/{id}`: what the ledger knows about a payment and its full history, for the
//! app's own pages and for operators. The access token is not part of the row.
//!
//! It answers the payment's Pioneer (Bearer access token or session cookie), the app's backend
//! (`APP_API_TOKEN`) and the operator (`ADMIN_TOKEN`); anyone else gets the 404 of an unknown
//! payment ([`crate::read_access`]).

use crate::error::{ApiError, ErrorBody};
use crate::extract::PathId;
use crate::read_access;
use crate::state::ApiState;
use axum::extract::State;
use axum::http::HeaderMap;
use axum::routing::get;
use axum::{Json, Router};
use pi_payments_core::PaymentId;
use pi_payments_core::ledger::{PaymentEventRow, PaymentRow};

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

/// A payment and its history, oldest event first.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentWithHistory {
    /// The ledger's row (never the access token).
    pub payment: PaymentRow,
    /// Every state change, oldest first.
    pub events: Vec<PaymentEventRow>,
}

/// Show a payment and its history.
///
/// For the payment's own Pioneer, the app's backend and the operator; anyone else gets the
/// 404 of an unknown payment.
#[utoipa::path(
    get,
    path = "/payments/{id}",
    tag = "payments",
    operation_id = "show_payment",
    params(("id" = String, Path, description = "Pi's payment identifier")),
    security(("pioneer_token" = []), ("session_cookie" = []), ("app_api_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "The payment and its history", body = PaymentWithHistory),
        (status = 400, description = "Not a payment id", body = ErrorBody),
        (status = 404, description = "Unknown, or not yours", body = ErrorBody),
        (status = 503, description = "Ledger or Pi unreachable; retry", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Json<PaymentWithHistory>, ApiError> {
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
    Ok(Json(PaymentWithHistory { payment, events }))
}
