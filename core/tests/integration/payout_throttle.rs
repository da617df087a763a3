//! Throttling is waiting, not failing, for payouts: Pi and Horizon answering 429s (without
//! `Retry-After`) and 503s many more times in a row than the payout's attempt cap still pay the
//! Pioneer once, and the payout never reaches `needs_attention`; real failures still count.

use crate::support::payouts::{settle, test_config};
use crate::support::sim::{SimEnv, fast_sim, start};
use pi_payments_core::payout::{PayoutConfig, PayoutProcessor, StepOutcome};
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::state::PayoutState;
use serde_json::json;

/// At most 3 failed attempts per step, and no retries inside the Pi client, so every throttled
/// answer reaches the pipeline.
fn tight(env: &SimEnv) -> PayoutProcessor {
    PayoutProcessor::new(
        env.ledger.clone(),
        env.pi(RetryPolicy::none()),
        env.horizon(),
        env.app_wallet(),
        env.network(),
        Vec::new(),
    )
    .with_config(PayoutConfig {
        max_attempts: 3,
        ..test_config()
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_wait_out_429s_and_503s_from_pi_and_horizon() {
    let env = start(fast_sim(0.0)).await;
    let groups: [&[&str]; 4] = [
        &["create_payment"],
        &["horizon_fee_stats", "horizon_account"],
        &["horizon_submit"],
        &["complete"],
    ];
    for (i, endpoints) in groups.iter().enumerate() {
        let uid = format!("throttled-{i}");
        let addr = env.pioneer(&uid).await;
        let before = env.balance(&addr).await;
        let row = env.request(&uid, "0.5", &uid).await;
        // 4 × 429 then 4 × 503: 8 throttled answers in a row against a cap of 3 attempts.
        env.faults(json!({
            "throttle_next": 4,
            "unavailable_next": 4,
            "endpoints": endpoints,
            "targets": ["platform", "horizon"],
        }))
        .await;
        let outcome = settle(&tight(&env), &row.id).await;
        assert_eq!(outcome, StepOutcome::Done, "{endpoints:?}");
        let row = env.row(&row.id).await;
        assert_eq!(row.state, PayoutState::Completed, "{endpoints:?}");
        assert_eq!(env.balance(&addr).await - before, 5_000_000);
        let history = env.ledger.payout_events(&row.id).await.unwrap();
        let causes: Vec<&str> = history.iter().map(|e| e.cause.as_str()).collect();
        assert!(!causes.contains(&"gave_up"), "{endpoints:?}: {causes:?}");
        let knobs = env.control.get("/_sim/faults").await.unwrap();
        assert_eq!(knobs["throttle_next"], 0, "every 429 was served: {knobs}");
        assert_eq!(
            knobs["unavailable_next"], 0,
            "every 503 was served: {knobs}"
        );
    }
    env.assert_audit_ok().await;
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn real_failures_still_count_towards_needs_attention() {
    let env = start(fast_sim(0.0)).await;
    env.pioneer("broken").await;
    let row = env.request("broken", "0.5", "broken").await;
    // 500s are failures, not throttling: the third one ends the payout's tries.
    env.faults(json!({ "fail_next": 3, "endpoints": ["create_payment"] }))
        .await;
    let outcome = settle(&tight(&env), &row.id).await;
    let StepOutcome::NeedsAttention { reason } = outcome else {
        panic!("expected needs_attention, got {outcome:?}");
    };
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    env.done().await;
}
