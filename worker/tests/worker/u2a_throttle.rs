//! Throttling is waiting, not failing: a U2A payment whose Pi and Horizon calls are answered
//! with 429s (with and without `Retry-After`), 503s, far more often than the job's attempt cap,
//! still completes, and none of it counts as an attempt; a real failure still does.

use crate::support::{Harness, Options, Stack};
use pi_payments_core::state::PaymentState;
use pi_payments_worker::JobRetry;
use serde_json::json;
use std::time::Duration;

/// Three attempts at most, short backoffs, and no retries inside the Pi client, so every
/// throttled answer reaches the job.
fn tight(stack: Stack) -> Options {
    Options {
        stack,
        pi_retry: pi_payments_core::retry::RetryPolicy::none(),
        retry: JobRetry {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..Options::default()
    }
}

/// Run on both stacks (the ledger's throttle bookkeeping is SQL on SQLite and Postgres).
async fn a_throttled_u2a_payment_completes_without_using_attempts(stack: Stack) {
    let h = Harness::start(tight(stack)).await;
    let token = h.token("tess").await;
    let id = h.create_u2a("tess", "1", json!({})).await;

    // Approve: 429s without Retry-After on every Pi call, then 503s: 12 in a row > 3 attempts.
    h.set_faults(json!({
        "throttle_next": 6,
        "unavailable_next": 6,
        "endpoints": ["get_payment", "me", "approve"],
        "targets": ["platform"],
    }))
    .await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;

    // Complete: Horizon throttles the on-chain check the same way.
    let txid = h.submit(&id).await;
    h.set_faults(json!({
        "throttle_next": 4,
        "unavailable_next": 4,
        "endpoints": ["horizon_transaction", "horizon_transaction_payments"],
        "targets": ["horizon"],
    }))
    .await;
    h.complete_callback(&id, &txid).await;
    let row = h.wait_for(&id, PaymentState::Completed).await;
    assert!(row.reason.is_none(), "{row:?}");

    let events = h.ledger.payment_events(&id).await.unwrap();
    assert!(
        !events.iter().any(|e| e.cause == "attempt_failed"),
        "throttling is not a failed attempt: {events:#?}"
    );
    assert!(
        events.iter().any(|e| e.cause == "throttled"),
        "the wait is in the history: {events:#?}"
    );
    let log = h.log().await;
    // The Pioneer is checked first (/me), then the payment: the throttles land on either.
    let throttled: u64 = ["get_payment", "me"]
        .iter()
        .map(|e| log["endpoints"][e]["rate_limited"].as_u64().unwrap_or(0))
        .sum();
    assert!(throttled >= 3, "more 429s than attempts: {log}");
    assert_eq!(h.calls(&id, "approve").await, 1);
    assert_eq!(h.calls(&id, "complete").await, 1);
    assert_eq!(h.audit().await["ok"], true);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_u2a_payment_completes_without_using_attempts_embedded() {
    a_throttled_u2a_payment_completes_without_using_attempts(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_u2a_payment_completes_without_using_attempts_served() {
    a_throttled_u2a_payment_completes_without_using_attempts(Stack::Served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_after_is_honoured_and_still_not_an_attempt() {
    let h = Harness::start(tight(Stack::Embedded)).await;
    let token = h.token("ruth").await;
    let id = h.create_u2a("ruth", "1", json!({})).await;
    // pi-sim's own limiter: 2 requests a second on the app's key, answered 429 with
    // Retry-After. Two reads use up this second, so the job's first call is refused.
    h.set_faults(json!({ "rate_limit": 2, "targets": ["platform"] }))
        .await;
    let url = format!("{}/v2/payments/{id}", h.sim.platform_url);
    let key = format!("Key {}", h.sim.api_key);
    for _ in 0..2 {
        let answer = h.http.get(&url).header("Authorization", &key).send().await;
        assert!(answer.unwrap().status().is_success());
    }
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    let events = h.ledger.payment_events(&id).await.unwrap();
    assert!(
        !events.iter().any(|e| e.cause == "attempt_failed"),
        "{events:#?}"
    );
    assert!(
        events.iter().any(|e| e.cause == "throttled"),
        "the job was throttled: {events:#?}"
    );
    assert_eq!(h.calls(&id, "approve").await, 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_still_count_between_throttles() {
    let h = Harness::start(tight(Stack::Embedded)).await;
    let token = h.token("uma").await;
    let id = h.create_u2a("uma", "1", json!({})).await;
    // Throttled answers are served first, then two 500s: those two count, the throttles don't.
    h.set_faults(json!({
        "throttle_next": 5,
        "fail_next": 2,
        "endpoints": ["get_payment"],
    }))
    .await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    let events = h.ledger.payment_events(&id).await.unwrap();
    let failed: Vec<i64> = events
        .iter()
        .filter(|e| e.cause == "attempt_failed")
        .map(|e| e.attempt)
        .collect();
    assert_eq!(failed, vec![1, 2], "{events:#?}");

    // A third real failure is past the cap of 3: needs_attention, as before.
    let token = h.token("val").await;
    let other = h.create_u2a("val", "2", json!({})).await;
    h.set_faults(json!({ "throttle_next": 4, "fail_next": 3, "endpoints": ["get_payment"] }))
        .await;
    h.approve_callback(&other, Some(&token)).await;
    let row = h.wait_for(&other, PaymentState::NeedsAttention).await;
    let reason = row.reason.unwrap_or_default();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    h.shutdown().await;
}
