//! Fault injection: rate limit (429 + Retry-After), latency, injected 500s, dropped
//! connections, deterministic counts, endpoint and target restrictions; /_sim is exempt.

use std::time::{Duration, Instant};

use crate::support::platform::{assert_error, id, start};
use pi_sim::amount::STROOPS_PER_PI;
use reqwest::StatusCode;
use serde_json::json;

const CREATE: &str = r#"{"payment": {"amount": 1, "memo": "m", "metadata": {}, "uid": "u-fault"}}"#;

#[tokio::test]
async fn rate_limit_answers_429_with_retry_after_per_key() {
    let h = start().await;
    h.faults(json!({"rate_limit": 2})).await;
    let answers = futures::future::join_all((0..10).map(|_| {
        h.http
            .get(h.platform("/v2/payments/incomplete_server_payments"))
            .header("Authorization", h.key())
            .send()
    }))
    .await;
    let mut limited = 0;
    for r in answers {
        let r = r.unwrap();
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            limited += 1;
            let retry: u64 = r.headers()["retry-after"]
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            assert!(retry >= 1);
            let body: serde_json::Value = r.json().await.unwrap();
            assert_eq!(body["error"], "too_many_requests");
        } else {
            assert_eq!(r.status(), StatusCode::OK);
        }
    }
    assert!(limited >= 1, "10 requests at once against a limit of 2/s");

    // Another Authorization value has its own window.
    let (_, token) = h.control("/_sim/tokens", json!({"uid": "u-rl"})).await;
    let r = h
        .http
        .get(h.platform("/v2/me"))
        .header(
            "Authorization",
            format!("Bearer {}", token["access_token"].as_str().unwrap()),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    // The control API is never limited.
    for _ in 0..5 {
        assert_eq!(h.control_get("/_sim/info").await.0, StatusCode::OK);
    }

    let (_, log) = h.control_get("/_sim/log").await;
    let endpoint = &log["endpoints"]["incomplete_server_payments"];
    assert_eq!(
        endpoint["calls"], 10,
        "429-ed requests count as arrivals: {log}"
    );
    assert_eq!(endpoint["rate_limited"], limited);
    assert_eq!(endpoint["status"]["429"], limited);
    assert_eq!(log["totals"]["rate_limited"], limited);
    assert!(log["max_rate_1s"]["platform"].as_u64().unwrap() >= 10);
    assert!(endpoint["max_rate_1s"].as_u64().unwrap() >= 10);
    assert!(
        log["max_rate_1s_per_key"][format!("platform:{}", h.key())]
            .as_u64()
            .unwrap()
            >= 10
    );
}

#[tokio::test]
async fn latency_is_added_before_the_answer() {
    let h = start().await;
    h.faults(json!({"latency_ms": 150})).await;
    let started = Instant::now();
    let (status, _) = h.get("/v2/payments/incomplete_server_payments").await;
    assert_eq!(status, StatusCode::OK);
    assert!(started.elapsed() >= Duration::from_millis(150));
}

#[tokio::test]
async fn fail_rate_answers_500_before_the_handler_and_changes_nothing() {
    let h = start().await;
    h.faults(json!({"fail_rate": 1.0})).await;
    for _ in 0..3 {
        assert_error(
            &h.post_raw("/v2/payments", CREATE).await,
            500,
            "internal_server_error",
        );
    }
    assert_eq!(h.payment_count().await, 0, "the handler never ran");
    assert_eq!(
        h.control_get("/_sim/info").await.0,
        StatusCode::OK,
        "/_sim is not faulted"
    );
    let (_, log) = h.control_get("/_sim/log").await;
    assert_eq!(log["endpoints"]["create_payment"]["injected_500"], 3);
    assert_eq!(log["totals"]["injected_500"], 3);
}

#[tokio::test]
async fn drop_rate_runs_the_handler_then_closes_the_connection() {
    let h = start().await;
    h.sim_control.user("u-fault").await.unwrap();
    h.faults(json!({"drop_rate": 1.0})).await;
    let result = h
        .http
        .post(h.platform("/v2/payments"))
        .header("Authorization", h.key())
        .body(CREATE)
        .send()
        .await;
    let error = result.expect_err("no response must arrive");
    assert!(!error.is_status(), "{error}");
    h.faults(json!({"drop_rate": 0.0})).await;
    // The state changed although the client saw nothing.
    let (_, list) = h.control_get("/_sim/payments").await;
    let payments = list["payments"].as_array().unwrap();
    assert_eq!(payments.len(), 1);
    let pid = id(&payments[0]);
    let (_, log) = h.control_get("/_sim/log").await;
    assert_eq!(log["endpoints"]["create_payment"]["dropped"], 1);
    assert_eq!(log["totals"]["dropped"], 1);
    assert_eq!(log["payments"][&pid]["dropped"], 1, "{log}");
    // A retry now meets the open payment.
    let answer = h.post_raw("/v2/payments", CREATE).await;
    assert_error(&answer, 400, "ongoing_payment_found");
    assert_eq!(answer.1["payment"]["identifier"], pid.as_str());
}

#[tokio::test]
async fn fail_next_and_drop_next_are_exact_counts() {
    let h = start().await;
    h.faults(json!({"fail_next": 2})).await;
    for _ in 0..2 {
        assert_eq!(
            h.get("/v2/payments/incomplete_server_payments").await.0,
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(
        h.get("/v2/payments/incomplete_server_payments").await.0,
        StatusCode::OK
    );
    let (_, knobs) = h.control_get("/_sim/faults").await;
    assert_eq!(knobs["fail_next"], 0);

    h.faults(json!({"drop_next": 1})).await;
    let dropped = h
        .http
        .get(h.platform("/v2/payments/incomplete_server_payments"))
        .header("Authorization", h.key())
        .send()
        .await;
    assert!(dropped.is_err());
    assert_eq!(
        h.get("/v2/payments/incomplete_server_payments").await.0,
        StatusCode::OK
    );
}

#[tokio::test]
async fn endpoint_restriction() {
    let h = start().await;
    h.faults(json!({"fail_next": 1, "endpoints": ["approve"]}))
        .await;
    let u2a = h.u2a("u-ep", 1.0).await;
    assert_eq!(
        h.get("/v2/payments/incomplete_server_payments").await.0,
        StatusCode::OK
    );
    let path = format!("/v2/payments/{}/approve", id(&u2a));
    assert_error(
        &h.post(&path, json!({})).await,
        500,
        "internal_server_error",
    );
    let (_, still) = h.get(&format!("/v2/payments/{}", id(&u2a))).await;
    assert_eq!(
        still["status"]["developer_approved"], false,
        "nothing changed"
    );
    assert_eq!(h.post(&path, json!({})).await.0, StatusCode::OK);
    let (_, log) = h.control_get("/_sim/log").await;
    assert_eq!(log["payments"][id(&u2a)]["injected_500"], 1);
    assert_eq!(log["payments"][id(&u2a)]["approve"], 2);
}

#[tokio::test]
async fn targets_decide_which_listener_is_faulted() {
    let h = start().await;
    // Default target: the Platform only.
    h.faults(json!({"fail_next": 1})).await;
    let r = h.http.get(h.horizon("/")).send().await.unwrap();
    assert_eq!(
        r.status(),
        StatusCode::OK,
        "Horizon is not a default target"
    );
    assert_eq!(
        h.get("/v2/payments/incomplete_server_payments").await.0,
        StatusCode::INTERNAL_SERVER_ERROR
    );

    h.faults(json!({"fail_next": 1, "targets": ["horizon"]}))
        .await;
    assert_eq!(
        h.get("/v2/payments/incomplete_server_payments").await.0,
        StatusCode::OK
    );
    let r = h.http.get(h.horizon("/fee_stats")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::INTERNAL_SERVER_ERROR);
    let problem: serde_json::Value = r.json().await.unwrap();
    assert_eq!(problem["status"], 500);

    h.faults(json!({"rate_limit": 1, "endpoints": ["horizon_root"]}))
        .await;
    let first = h.http.get(h.horizon("/")).send().await.unwrap();
    let second = h.http.get(h.horizon("/")).send().await.unwrap();
    // At most one of two back-to-back requests passes a 1/s limit.
    assert!(
        first.status() == StatusCode::TOO_MANY_REQUESTS
            || second.status() == StatusCode::TOO_MANY_REQUESTS
    );
    let limited = if first.status() == StatusCode::TOO_MANY_REQUESTS {
        first
    } else {
        second
    };
    assert!(limited.headers().contains_key("retry-after"));
    let (_, log) = h.control_get("/_sim/log").await;
    assert_eq!(log["endpoints"]["horizon_fee_stats"]["injected_500"], 1);
    assert!(log["max_rate_1s"]["horizon"].as_u64().unwrap() >= 2);
}

#[tokio::test]
async fn horizon_submissions_are_logged_against_the_payment_by_memo() {
    let h = start().await;
    let payment = h.a2u("u-sub", "1").await;
    let pid = id(&payment);
    let app = h.app_wallet();
    let sequence = h
        .sim
        .chain()
        .next_sequence(&h.sim.app_wallet_public_key)
        .expect("app account");
    let max_time = chrono::Utc::now().timestamp() as u64 + 120;
    let (hash, envelope) = pi_sim::chain::build_payment_envelope(
        &h.sim.network_passphrase,
        &app,
        payment["to_address"].as_str().unwrap(),
        STROOPS_PER_PI,
        &pid,
        sequence,
        max_time,
    )
    .expect("envelope");
    let r = h
        .http
        .post(h.horizon("/transactions"))
        .form(&[("tx", envelope.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK, "{}", r.text().await.unwrap());
    let (status, done) = h
        .post(
            &format!("/v2/payments/{pid}/complete"),
            json!({"txid": hash}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let (_, log) = h.control_get("/_sim/log").await;
    let entry = &log["payments"][&pid];
    assert_eq!(entry["horizon_submit"], 1, "{log}");
    assert_eq!(entry["complete"], 1);
    assert_eq!(entry["calls"], 3);
    assert_eq!(log["endpoints"]["horizon_submit"]["status"]["200"], 1);
}
