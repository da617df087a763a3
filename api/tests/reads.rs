//! Reads need a reason, and our answers have one shape (issue 17): `GET /events` only with
//! `APP_API_TOKEN` or `ADMIN_TOKEN`; a payment or order only for its Pioneer (Bearer or session)
//! and the backend, 404 to anyone else; every answer snake_case, amounts as decimal strings and
//! times as RFC 3339 UTC. The real router and `ApiState` (with sign-in against pi-sim for
//! `/v2/me`), a SQLite ledger in a temp dir and the recording queue.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use pi_payments_api::auth::{AuthConfig, Secret};
use pi_payments_api::{ApiState, router};
use pi_payments_core::jobs::RecordingQueue;
use pi_payments_core::ledger::{Ledger, PaymentPatch};
use pi_payments_core::pi_client::{PiClient, PiClientConfig, install_crypto_provider};
use pi_payments_core::products::Catalogue;
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::state::Transition;
use pi_payments_core::{OrderId, PaymentId, PiAmount, Uid};
use pi_sim::control_client::{SimControl, TokenRequest};
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

const ADMIN: &str = "reads-admin-token-0123456789abcdef";
const BACKEND: &str = "reads-backend-token-0123456789abcdef";
/// i64::MAX stroops: the largest amount the ledger can hold.
const MAX_AMOUNT: &str = "922337203685.4775807";

struct Api {
    router: Router,
    state: ApiState,
    ledger: Ledger,
    control: SimControl,
    sim: pi_sim::RunningSim,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    body: Value,
    set_cookie: Option<String>,
}

impl Api {
    async fn new() -> Api {
        install_crypto_provider();
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = Ledger::connect(&url).await.unwrap();
        let sim = pi_sim::start(pi_sim::SimConfig::default()).await.unwrap();
        let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(1000).unwrap()));
        let mut pi_config = PiClientConfig::new(&sim.platform_url, &sim.api_key, limiter);
        pi_config.retry = RetryPolicy::fast();
        pi_config.timeout = Duration::from_secs(5);
        let pi = PiClient::new(pi_config).unwrap();
        let catalogue = Catalogue::from_toml_str(
            &format!(
                "[[product]]\nid = \"coffee\"\nname = \"Coffee\"\nprice = \"1.5\"\n\n\
                 [[product]]\nid = \"everything\"\nname = \"Everything\"\nprice = \"{MAX_AMOUNT}\"\n"
            ),
            "test.toml",
        )
        .unwrap();
        let config = AuthConfig {
            admin_token: Some(Secret::new(ADMIN)),
            app_api_token: Some(Secret::new(BACKEND)),
            ..AuthConfig::default()
        };
        let state = ApiState::new(ledger.clone(), Arc::new(RecordingQueue::new()), catalogue)
            .with_auth(pi, config)
            .unwrap();
        let control = SimControl::of(&sim).unwrap();
        Api {
            router: router(state.clone()),
            state,
            ledger,
            control,
            sim,
            _dir: dir,
        }
    }

    async fn finish(self) {
        self.ledger.close().await;
        self.sim.shutdown().await;
    }

    async fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, String)],
        body: Option<Value>,
    ) -> Answer {
        let mut req = Request::builder().method(method).uri(path);
        for (name, value) in headers {
            req = req.header(*name, value);
        }
        let req = match body {
            Some(b) => req
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(b.to_string())),
            None => req.body(Body::empty()),
        }
        .unwrap();
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let set_cookie = response
            .headers()
            .get(header::SET_COOKIE)
            .map(|v| v.to_str().unwrap().to_string());
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let body = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "non-JSON answer ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        Answer {
            status,
            body,
            set_cookie,
        }
    }

    async fn get(&self, path: &str, auth: Option<&str>) -> Answer {
        let headers: Vec<(&str, String)> = auth
            .map(|t| vec![("authorization", format!("Bearer {t}"))])
            .unwrap_or_default();
        self.send("GET", path, &headers, None).await
    }

    async fn token(&self, uid: &str) -> String {
        self.control
            .mint_token(&TokenRequest::for_uid(uid))
            .await
            .unwrap()
            .access_token
    }

    /// An order for `product`, and a payment by `uid` bound to it and approved (as the approve
    /// job would leave it): an outbox event with both.
    async fn paid_order(&self, n: u32, uid: &str, product: &str) -> (Value, PaymentId) {
        let order = self
            // The SDK-era spelling, accepted before and after (the shape test sends product_id).
            .send("POST", "/orders", &[], Some(json!({"productId": product})))
            .await;
        assert_eq!(order.status, StatusCode::CREATED, "{}", order.body);
        let id = PaymentId::parse(&format!("readsPayment{n:016}")).unwrap();
        let cb = self
            .send(
                "POST",
                "/pi_payment/approve",
                &[],
                Some(json!({"paymentId": id.as_str(), "accessToken": "t"})),
            )
            .await;
        assert_eq!(cb.status, StatusCode::ACCEPTED, "{}", cb.body);
        self.state.callbacks.flush().await;
        // Read leniently: the shape itself is asserted by the tests, not by this set-up.
        let id_field = order.body.get("id").or_else(|| order.body.get("orderId"));
        let order_id = OrderId::parse(id_field.and_then(Value::as_str).unwrap()).unwrap();
        let patch = PaymentPatch {
            uid: Some(Uid::parse(uid).unwrap()),
            amount: Some(PiAmount::from_json_text(&order.body["amount"].to_string()).unwrap()),
            order_id: Some(order_id),
            ..PaymentPatch::default()
        };
        self.ledger
            .apply(&id, Transition::PiApproved, None, 1, patch)
            .await
            .unwrap();
        (order.body, id)
    }
}

fn assert_json_error(answer: &Answer, status: StatusCode) {
    assert_eq!(answer.status, status, "{}", answer.body);
    assert!(answer.body["error"].is_string(), "{}", answer.body);
    assert!(answer.body["message"].is_string(), "{}", answer.body);
}

#[tokio::test]
async fn events_need_the_backend_or_operator_token() {
    let api = Api::new().await;
    api.paid_order(1, "pioneer-alice", "coffee").await;
    let anonymous = api.get("/events", None).await;
    assert_json_error(&anonymous, StatusCode::UNAUTHORIZED);
    assert_eq!(anonymous.body["error"], "events_unauthorized");
    assert!(
        anonymous.body["message"]
            .as_str()
            .unwrap()
            .contains("APP_API_TOKEN")
    );
    assert_json_error(
        &api.get("/events", Some("not-the-token-0123456789")).await,
        StatusCode::UNAUTHORIZED,
    );
    // A Pioneer's own access token is not enough: the outbox names every Pioneer.
    let alice = api.token("pioneer-alice").await;
    assert_json_error(
        &api.get("/events", Some(&alice)).await,
        StatusCode::UNAUTHORIZED,
    );
    for token in [BACKEND, ADMIN] {
        let page = api.get("/events?after=0", Some(token)).await;
        assert_eq!(page.status, StatusCode::OK, "{}", page.body);
        assert_eq!(page.body["events"][0]["type"], "payment.approved");
    }
    api.finish().await;
}

#[tokio::test]
async fn payments_and_orders_answer_their_pioneer_and_the_backend_only() {
    let api = Api::new().await;
    let (order, payment) = api.paid_order(2, "pioneer-alice", "coffee").await;
    let order_id = order.get("id").or_else(|| order.get("orderId"));
    let order_path = format!("/orders/{}", order_id.and_then(Value::as_str).unwrap());
    let payment_path = format!("/payments/{payment}");
    let alice = api.token("pioneer-alice").await;
    let bob = api.token("pioneer-bob").await;

    for path in [&payment_path, &order_path] {
        for (who, token) in [
            ("alice", Some(alice.as_str())),
            ("admin", Some(ADMIN)),
            ("backend", Some(BACKEND)),
        ] {
            let ok = api.get(path, token).await;
            assert_eq!(ok.status, StatusCode::OK, "{who} {path}: {}", ok.body);
        }
        for (who, token) in [
            ("bob", Some(bob.as_str())),
            ("anonymous", None),
            ("garbage", Some("not-a-token")),
        ] {
            let refused = api.get(path, token).await;
            assert_json_error(&refused, StatusCode::NOT_FOUND);
            assert!(
                !refused.body.to_string().contains("pioneer-alice"),
                "{who} {path}: {}",
                refused.body
            );
        }
    }
    let shown = api.get(&payment_path, Some(&alice)).await;
    assert_eq!(shown.body["payment"]["uid"], "pioneer-alice");
    assert_eq!(shown.body["payment"]["state"], "approved");

    // "Not yours" reads exactly like "not there".
    let missing = PaymentId::parse("readsPayment9999999999999999").unwrap();
    let not_yours = api.get(&payment_path, Some(&bob)).await;
    let not_there = api.get(&format!("/payments/{missing}"), Some(&bob)).await;
    assert_eq!(
        not_yours.body.to_string().replace(payment.as_str(), "X"),
        not_there.body.to_string().replace(missing.as_str(), "X")
    );

    // The session cookie of sign-in works like the Bearer token.
    let signed = api
        .send("POST", "/auth/pi", &[], Some(json!({"accessToken": alice})))
        .await;
    assert_eq!(signed.status, StatusCode::OK, "{}", signed.body);
    let cookie = signed.set_cookie.unwrap();
    let cookie = cookie.split(';').next().unwrap().to_string();
    for path in [&payment_path, &order_path] {
        let by_cookie = api
            .send("GET", path, &[("cookie", cookie.clone())], None)
            .await;
        assert_eq!(
            by_cookie.status,
            StatusCode::OK,
            "{path}: {}",
            by_cookie.body
        );
    }
    api.finish().await;
}

/// Every key snake_case (the app's `metadata` is its own), every `amount`/`price` a decimal
/// string, every time RFC 3339 UTC with milliseconds (`2026-11-24T10:00:00.000Z`).
fn shape_problems(at: &str, value: &Value, problems: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (key, v) in map {
                let here = format!("{at}.{key}");
                if key.chars().any(|c| c.is_ascii_uppercase()) {
                    problems.push(format!("{here}: camelCase key"));
                }
                if key == "metadata" {
                    continue;
                }
                if key == "amount" || key == "price" {
                    match v.as_str().map(PiAmount::parse) {
                        Some(Ok(_)) => {}
                        _ => problems.push(format!("{here}: amount {v} is not a decimal string")),
                    }
                    continue;
                }
                let is_time = key.ends_with("_at")
                    || [
                        "at",
                        "since",
                        "settled_since",
                        "max_time",
                        "first_seen",
                        "last_seen",
                    ]
                    .contains(&key.as_str());
                if is_time {
                    let ok = v.is_null()
                        || v.as_str().is_some_and(|t| {
                            t.len() == 24
                                && t.ends_with('Z')
                                && chrono::DateTime::parse_from_rfc3339(t).is_ok()
                        });
                    if !ok {
                        problems.push(format!("{here}: time {v} is not RFC 3339 UTC with ms"));
                    }
                    continue;
                }
                shape_problems(&here, v, problems);
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                shape_problems(&format!("{at}[{i}]"), v, problems);
            }
        }
        _ => {}
    }
}

#[tokio::test]
async fn every_answer_is_snake_case_with_string_amounts_and_rfc3339_times() {
    let api = Api::new().await;
    let (order, payment) = api.paid_order(3, "pioneer-alice", "coffee").await;
    let alice = api.token("pioneer-alice").await;
    let snake = api
        .send(
            "POST",
            "/orders",
            &[],
            Some(json!({"product_id": "coffee"})),
        )
        .await;
    assert_eq!(snake.status, StatusCode::CREATED, "{}", snake.body);
    let mut answers: Vec<(String, Value)> = vec![
        ("POST /orders".into(), order.clone()),
        ("POST /orders (product_id)".into(), snake.body),
    ];
    let callback = api
        .send(
            "POST",
            "/pi_payment/complete",
            &[],
            Some(json!({"paymentId": payment.as_str(), "txid": "ab".repeat(32)})),
        )
        .await;
    assert_eq!(callback.status, StatusCode::ACCEPTED, "{}", callback.body);
    assert_eq!(callback.body["payment_id"], payment.as_str());
    answers.push(("callback".into(), callback.body));
    let signed = api
        .send("POST", "/auth/pi", &[], Some(json!({"accessToken": alice})))
        .await;
    answers.push(("POST /auth/pi".into(), signed.body));
    answers.push(("GET /me".into(), api.get("/me", Some(&alice)).await.body));
    let payout = api
        .send(
            "POST",
            "/payouts",
            &[("authorization", format!("Bearer {ADMIN}"))],
            Some(json!({"uid": "pioneer-alice", "amount": "2.5", "memo": "m", "idempotency_key": "k1"})),
        )
        .await;
    assert_eq!(payout.status, StatusCode::ACCEPTED, "{}", payout.body);
    let payout_id = payout.body["payout"]["id"].as_str().unwrap().to_string();
    answers.push(("POST /payouts".into(), payout.body));
    for path in [
        format!("/orders/{}", order["id"].as_str().unwrap()),
        format!("/payments/{payment}"),
        "/events?after=0".to_string(),
        format!("/payouts/{payout_id}"),
        "/payouts".to_string(),
    ] {
        let answer = api.get(&path, Some(ADMIN)).await;
        assert_eq!(answer.status, StatusCode::OK, "{path}: {}", answer.body);
        answers.push((path, answer.body));
    }
    let mut problems = Vec::new();
    for (name, body) in &answers {
        shape_problems(name, body, &mut problems);
    }
    assert!(problems.is_empty(), "{problems:#?}");
    // The walk saw what it is meant to check.
    let all = serde_json::to_string(&answers.iter().map(|(_, b)| b).collect::<Vec<_>>()).unwrap();
    for needle in [
        "\"amount\":\"1.5\"",
        "\"amount\":\"2.5\"",
        "\"created_at\":\"20",
    ] {
        assert!(all.contains(needle), "{needle} in {all}");
    }
    api.finish().await;
}

#[tokio::test]
async fn the_largest_amount_round_trips_exactly_in_answers() {
    let api = Api::new().await;
    let (order, payment) = api.paid_order(4, "pioneer-alice", "everything").await;
    assert_eq!(order["amount"], MAX_AMOUNT);
    let shown = api
        .get(
            &format!("/orders/{}", order["id"].as_str().unwrap()),
            Some(BACKEND),
        )
        .await;
    assert_eq!(shown.body["amount"], MAX_AMOUNT);
    let paid = api
        .get(&format!("/payments/{payment}"), Some(BACKEND))
        .await;
    assert_eq!(paid.body["payment"]["amount"], MAX_AMOUNT, "{}", paid.body);
    let events = api.get("/events", Some(BACKEND)).await;
    assert_eq!(
        events.body["events"][0]["data"]["payment"]["amount"], MAX_AMOUNT,
        "{}",
        events.body
    );
    assert_eq!(
        events.body["events"][0]["data"]["order"]["amount"],
        MAX_AMOUNT
    );
    let payout = api
        .send(
            "POST",
            "/payouts",
            &[("authorization", format!("Bearer {ADMIN}"))],
            Some(json!({"uid": "pioneer-alice", "amount": MAX_AMOUNT, "memo": "m", "idempotency_key": "max"})),
        )
        .await;
    assert_eq!(payout.status, StatusCode::ACCEPTED, "{}", payout.body);
    assert_eq!(payout.body["payout"]["amount"], MAX_AMOUNT);
    api.finish().await;
}
