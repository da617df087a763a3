//! The middleware in front of both routers: names the endpoint, logs the arrival, applies the
//! fault knobs (latency, 429, injected 500, drop after the handler) and logs the outcome.
//! `/_sim` passes straight through: the control API is never faulted, limited or logged.

use std::time::Instant;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use stellar_xdr::{FeeBumpTransactionInnerTx, Limits, Memo, ReadXdr, TransactionEnvelope};

use crate::error::{ApiError, PaymentRef};
use crate::faults::{Target, Verdict};
use crate::request_log::Outcome;
use crate::server::DropConnection;
use crate::shared::Shared;

/// Largest submission body buffered to read its memo (Horizon's own limit is far lower).
const MAX_SUBMIT_BODY: usize = 1 << 20;

/// The middleware's state: the shared simulator and which listener this is.
#[derive(Clone)]
pub struct LayerState {
    pub shared: std::sync::Arc<Shared>,
    pub target: Target,
}

/// The endpoint name of a request and the payment its path names, if any.
pub fn classify(target: Target, method: &Method, path: &str) -> (&'static str, Option<String>) {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let get = method == Method::GET;
    let post = method == Method::POST;
    match target {
        Target::Platform => match parts.as_slice() {
            ["v2", "me"] if get => ("me", None),
            ["v2", "payments"] if post => ("create_payment", None),
            ["v2", "payments", "incomplete_server_payments"] if get => {
                ("incomplete_server_payments", None)
            }
            ["v2", "payments", id] if get => ("get_payment", Some((*id).to_owned())),
            ["v2", "payments", id, "approve"] if post => ("approve", Some((*id).to_owned())),
            ["v2", "payments", id, "complete"] if post => ("complete", Some((*id).to_owned())),
            ["v2", "payments", id, "cancel"] if post => ("cancel", Some((*id).to_owned())),
            ["v2", "ads_network", "status", _] if get => ("ads_status", None),
            _ => ("platform_unknown", None),
        },
        Target::Horizon => {
            let name = match parts.as_slice() {
                [""] if get => "horizon_root",
                ["transactions"] if post => "horizon_submit",
                ["transactions", _] if get => "horizon_transaction",
                ["transactions", _, "operations"] if get => "horizon_transaction_operations",
                ["transactions", _, "payments"] if get => "horizon_transaction_payments",
                ["accounts", _] if get => "horizon_account",
                ["accounts", _, "transactions"] if get => "horizon_account_transactions",
                ["accounts", _, "payments"] if get => "horizon_account_payments",
                ["fee_stats"] if get => "horizon_fee_stats",
                ["ledgers"] | ["ledgers", _] if get => "horizon_ledgers",
                _ => "horizon_unknown",
            };
            (name, None)
        }
    }
}

/// The text memo of a form-encoded submission (`tx=<base64 envelope>`), if any.
pub fn submission_memo(form: &[u8]) -> Option<String> {
    let fields: Vec<(String, String)> = serde_urlencoded::from_bytes(form).ok()?;
    let (_, tx) = fields.into_iter().find(|(k, _)| k == "tx")?;
    let envelope =
        TransactionEnvelope::from_xdr_base64(tx.trim(), Limits::len(MAX_SUBMIT_BODY)).ok()?;
    let memo = match envelope {
        TransactionEnvelope::TxV0(e) => e.tx.memo,
        TransactionEnvelope::Tx(e) => e.tx.memo,
        TransactionEnvelope::TxFeeBump(e) => match e.tx.inner_tx {
            FeeBumpTransactionInnerTx::Tx(inner) => inner.tx.memo,
        },
    };
    match memo {
        Memo::Text(text) => text.to_utf8_string().ok(),
        _ => None,
    }
}

/// The middleware (see the module doc).
pub async fn fault_layer(
    State(layer): State<LayerState>,
    request: Request,
    next: Next,
) -> Response {
    let target = layer.target;
    if target == Target::Platform && request.uri().path().starts_with("/_sim") {
        return next.run(request).await;
    }
    let shared = &layer.shared;
    let now = Instant::now();
    let method = request.method().clone();
    let path = request.uri().path().to_owned();
    let (endpoint, mut payment) = classify(target, &method, &path);
    let key = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();

    // A Horizon submission belongs to the payment its memo names.
    let request = if endpoint == "horizon_submit" {
        let (parts, body) = request.into_parts();
        let bytes = axum::body::to_bytes(body, MAX_SUBMIT_BODY)
            .await
            .unwrap_or_default();
        if let Some(memo) = submission_memo(&bytes)
            && shared.platform().has_payment(&memo)
        {
            payment = Some(memo);
        }
        Request::from_parts(parts, Body::from(bytes))
    } else {
        request
    };

    shared.log().arrive(target, endpoint, &key, now);
    let (latency, verdict) = shared.faults().before(target, endpoint, &key, now);
    if !latency.is_zero() {
        tokio::time::sleep(latency).await;
    }
    let finish = |payment: Option<&str>, outcome| {
        shared
            .log()
            .finish(target, endpoint, method.as_str(), &path, payment, outcome);
    };
    match verdict {
        Verdict::RateLimited(retry_after) => {
            finish(payment.as_deref(), Outcome::RateLimited);
            return too_many_requests(target, Some(retry_after));
        }
        Verdict::Throttled => {
            finish(payment.as_deref(), Outcome::RateLimited);
            return too_many_requests(target, None);
        }
        Verdict::Unavailable => {
            finish(payment.as_deref(), Outcome::Answered(503));
            return unavailable(target);
        }
        Verdict::Fail => {
            finish(payment.as_deref(), Outcome::Injected500);
            return injected_500(target);
        }
        Verdict::Pass => {}
    }
    let mut response = next.run(request).await;
    if payment.is_none() {
        payment = response
            .extensions()
            .get::<PaymentRef>()
            .map(|p| p.0.clone());
    }
    if shared.faults().drop_after(target, endpoint) {
        finish(payment.as_deref(), Outcome::Dropped);
        response.extensions_mut().insert(DropConnection);
    } else {
        finish(
            payment.as_deref(),
            Outcome::Answered(response.status().as_u16()),
        );
    }
    response
}

/// 429 in the target's error shape, with `Retry-After` when given.
fn too_many_requests(target: Target, retry_after: Option<u64>) -> Response {
    let mut response = match target {
        Target::Platform => ApiError::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_requests",
            match retry_after {
                Some(s) => format!("Rate limit exceeded; retry after {s} s"),
                None => "Rate limit exceeded; slow down".to_string(),
            },
        )
        .into_response(),
        Target::Horizon => horizon_problem(
            StatusCode::TOO_MANY_REQUESTS,
            "rate_limit_exceeded",
            "Rate Limit Exceeded",
            "The rate limit for the requesting IP address is over its alloted limit. Retry after the Retry-After header's seconds.",
        ),
    };
    if let Some(seconds) = retry_after {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

/// 503 (`unavailable_next`) in the target's error shape: nothing changed.
fn unavailable(target: Target) -> Response {
    let detail = "Injected overload (pi-sim unavailable_next); nothing changed, retry later";
    match target {
        Target::Platform => ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            detail,
        )
        .into_response(),
        Target::Horizon => horizon_problem(
            StatusCode::SERVICE_UNAVAILABLE,
            "service_unavailable",
            "Service Unavailable",
            detail,
        ),
    }
}

fn injected_500(target: Target) -> Response {
    match target {
        Target::Platform => ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "Injected failure (pi-sim fail_rate/fail_next); nothing changed, retry",
        )
        .into_response(),
        Target::Horizon => horizon_problem(
            StatusCode::INTERNAL_SERVER_ERROR,
            "server_error",
            "Internal Server Error",
            "Injected failure (pi-sim fail_rate/fail_next); nothing changed, retry",
        ),
    }
}

/// A Horizon problem+json body.
fn horizon_problem(status: StatusCode, kind: &str, title: &str, detail: &str) -> Response {
    let body = serde_json::json!({
        "type": format!("https://stellar.org/horizon-errors/{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    let mut response = crate::response::json_response(status, &body);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json; charset=utf-8"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_endpoints() {
        let p = |m: Method, path: &str| classify(Target::Platform, &m, path);
        assert_eq!(p(Method::GET, "/v2/me").0, "me");
        assert_eq!(p(Method::POST, "/v2/payments").0, "create_payment");
        assert_eq!(
            p(Method::GET, "/v2/payments/incomplete_server_payments").0,
            "incomplete_server_payments"
        );
        assert_eq!(
            p(Method::POST, "/v2/payments/abc/complete"),
            ("complete", Some("abc".to_owned()))
        );
        assert_eq!(p(Method::DELETE, "/v2/me").0, "platform_unknown");
        let h = |m: Method, path: &str| classify(Target::Horizon, &m, path).0;
        assert_eq!(h(Method::GET, "/"), "horizon_root");
        assert_eq!(h(Method::POST, "/transactions"), "horizon_submit");
        assert_eq!(
            h(Method::GET, "/accounts/G/payments"),
            "horizon_account_payments"
        );
        assert_eq!(h(Method::GET, "/ledgers"), "horizon_ledgers");
    }
}
