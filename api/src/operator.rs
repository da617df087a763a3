//! The operator's routes (`/admin/*`, `/payouts`, the dashboard), gathered in one router so
//! that every one of them sits behind `ADMIN_TOKEN` ([`crate::admin::protect`]). They move
//! money or show every Pioneer's payments: a route added anywhere else would be open.
//!
//! To add an operator route, merge its router in [`operator_routes`]; nothing else is needed.

use crate::admin::{self, AdminAuth};
use crate::error::ErrorBody;
use crate::state::ApiState;
use axum::Json;
use axum::Router;
use axum::routing::get;
use serde_json::{Value, json};

/// Every operator route, behind the admin token (401 JSON without it, or with a wrong one).
pub fn operator_routes(admin: AdminAuth) -> Router<ApiState> {
    let routes = Router::new()
        .route("/admin/ping", get(ping))
        .merge(crate::payouts::payout_routes())
        // What the dashboard shows and does, as JSON for scripts.
        .merge(crate::operator_views::routes())
        .merge(crate::operator_actions::routes());
    // The HTML dashboard (`crate::dashboard`) has its own guard: Bearer or its login cookie.
    admin::protect(routes, admin)
}

/// `/admin/ping`'s answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the answer for the OpenAPI document (built with `json!`).
pub struct OperatorPing {
    /// Always `ok`.
    #[schema(example = "ok")]
    status: String,
    /// Always true: the token was accepted.
    operator: bool,
}

/// Check the operator token.
///
/// Lets an operator (or a deploy check) confirm that its ADMIN_TOKEN is accepted.
#[utoipa::path(
    get,
    path = "/admin/ping",
    tag = "operator",
    operation_id = "admin_ping",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The token is accepted", body = OperatorPing),
        (status = 401, description = "No or wrong ADMIN_TOKEN (or none configured)", body = ErrorBody),
    )
)]
pub(crate) async fn ping() -> Json<Value> {
    Json(json!({ "status": "ok", "operator": true }))
}
