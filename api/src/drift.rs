//! `GET /admin/drift`: the drift report (ledger vs Pi vs chain, see
//! `pi_payments_core::reconcile::drift`) as JSON, for operators and monitoring. It is an
//! operator route: [`crate::router`] mounts it behind `ADMIN_TOKEN` (`admin::protect`, a
//! constant-time check). The answer is 200 with `"clean": true|false` either way; 503 when this
//! API has no Pi/Horizon clients to compare with.
//!
//! The report reads Pi once per payment it compares (through the process's shared rate
//! limiter), so it is meant for an operator's look or a monitor polling every few minutes, not
//! for every request.

use crate::error::{ApiError, ErrorBody};
use crate::state::ApiState;
use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use pi_payments_core::reconcile::DriftReport;

/// The drift route (unprotected: mount it through `admin::protect`).
pub fn routes() -> Router<ApiState> {
    Router::new().route("/admin/drift", get(drift))
}

/// The drift report: ledger against Pi against the chain.
///
/// 200 with `clean: true|false` either way. It reads Pi once per payment compared: for an
/// operator's look or a monitor every few minutes.
#[utoipa::path(
    get,
    path = "/admin/drift",
    tag = "operator",
    operation_id = "drift_report",
    security(("admin_token" = [])),
    responses(
        (status = 200, description = "The report", body = DriftReport),
        (status = 401, description = "No or wrong ADMIN_TOKEN (or none configured)", body = ErrorBody),
        (status = 503, description = "This API has no Pi and Horizon clients, or the ledger is unreachable", body = ErrorBody),
    )
)]
pub(crate) async fn drift(State(state): State<ApiState>) -> Result<Json<DriftReport>, ApiError> {
    let Some(checker) = &state.drift else {
        return Err(ApiError::unavailable(
            "drift_unavailable",
            "this API runs without Pi and Horizon clients, so it cannot compare: run `pi-payments reconcile --report` instead",
        ));
    };
    let report = checker.report().await?;
    Ok(Json(report))
}

#[cfg(test)]
mod tests {
    use crate::admin::AdminAuth;
    use crate::auth::Secret;
    use crate::state::ApiState;
    use axum::body::Body;
    use axum::http::{Request, StatusCode};
    use pi_payments_core::jobs::RecordingQueue;
    use pi_payments_core::ledger::Ledger;
    use pi_payments_core::products::Catalogue;
    use std::sync::Arc;
    use tower::ServiceExt;

    const TOKEN: &str = "0123456789abcdef-drift";

    async fn app() -> axum::Router {
        let ledger = Ledger::connect("sqlite::memory:").await.unwrap();
        let state = ApiState::new(ledger, Arc::new(RecordingQueue::new()), Catalogue::demo())
            .with_admin(AdminAuth::new(Some(&Secret::new(TOKEN))));
        crate::router(state)
    }

    async fn get(app: axum::Router, auth: Option<&str>) -> (StatusCode, serde_json::Value) {
        let mut req = Request::get("/admin/drift");
        if let Some(a) = auth {
            req = req.header("authorization", a);
        }
        let resp = app.oneshot(req.body(Body::empty()).unwrap()).await.unwrap();
        let status = resp.status();
        let bytes = axum::body::to_bytes(resp.into_body(), 1 << 20)
            .await
            .unwrap();
        (status, serde_json::from_slice(&bytes).unwrap_or_default())
    }

    #[tokio::test]
    async fn drift_is_an_operator_route() {
        let (status, body) = get(app().await, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        let (status, _) = get(app().await, Some("Bearer wrong-token-wrong-token")).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        // With the token, but this API has no Pi/Horizon clients to compare with.
        let (status, body) = get(app().await, Some(&format!("Bearer {TOKEN}"))).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert_eq!(body["error"], "drift_unavailable");
    }
}
