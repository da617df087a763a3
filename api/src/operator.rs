//! The operator's routes (`/admin/*`, `/payouts`, the dashboard), gathered in one router so
//! that every one of them sits behind `ADMIN_TOKEN` ([`crate::admin::protect`]). They move
//! money or show every Pioneer's payments: a route added anywhere else would be open.
//!
//! To add an operator route, merge its router in [`operator_routes`]; nothing else is needed.

use crate::admin::{self, AdminAuth};
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

/// `GET /admin/ping`: lets an operator (or a deploy check) confirm that its token is accepted.
async fn ping() -> Json<Value> {
    Json(json!({ "status": "ok", "operator": true }))
}
