//! Payouts through the real service when things go wrong: dropped answers and injected 500s
//! on Horizon's submit and Pi's complete (everyone still paid exactly once), and payouts that
//! cannot be paid (an underfunded app wallet, an unfunded destination) failing cleanly with
//! their reason and a `payout.failed` event.

use crate::support::payouts::{Options, PayoutEnv, sim_config, stroops};
use serde_json::{Value, json};

/// The payout.* events of the outbox, as (type, payout id).
async fn payout_events(env: &PayoutEnv) -> Vec<(String, String)> {
    let (status, page) =
        PayoutEnv::send(env.admin(reqwest::Method::GET, "/events?limit=1000")).await;
    assert_eq!(status, 200, "{page}");
    page["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"].as_str().unwrap_or("").starts_with("payout."))
        .map(|e| {
            (
                e["type"].as_str().unwrap().to_string(),
                e["data"]["payout"]["id"]
                    .as_str()
                    .or(e["data"]["id"].as_str())
                    .unwrap_or("")
                    .to_string(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dropped_answers_and_injected_500s_still_pay_everyone_exactly_once() {
    let env = PayoutEnv::start(sim_config(0.05), Options::default()).await;
    let mut expected = Vec::new();
    let mut csv = String::new();
    for i in 0..30 {
        let uid = format!("faulty-{i}");
        let address = env.pioneer(&uid).await;
        let before = env.balance(&address).await;
        csv.push_str(&format!("{uid},1.000000{},reward,faulty-{i}\n", i % 10));
        expected.push((address, before, stroops(&format!("1.000000{}", i % 10))));
    }
    // Answers lost after the work was done (the worst case for "did it land?") and 500s,
    // on the chain's submit and on Pi's create/complete.
    env.faults(json!({
        "drop_rate": 0.25,
        "fail_rate": 0.15,
        "endpoints": ["horizon_submit", "complete", "create_payment"],
        "targets": ["platform", "horizon"],
        "seed": 11
    }))
    .await;
    let (status, bulk) = env.post_csv(&csv).await;
    assert_eq!(status, 202, "{bulk}");
    assert_eq!(bulk["accepted"], 30);
    let ids: Vec<String> = env
        .ledger_payouts()
        .await
        .iter()
        .map(|r| r.id.to_string())
        .collect();
    let rows = env.wait_settled(&ids).await;
    env.faults(json!({"drop_rate": 0.0, "fail_rate": 0.0}))
        .await;
    for row in &rows {
        assert_eq!(row["state"], "completed", "{row}");
    }
    for (address, before, amount) in &expected {
        assert_eq!(env.balance(address).await - before, *amount, "{address}");
    }
    env.assert_audit_ok().await;
    assert_eq!(env.pi_payment_count().await, 30);
    // The faults really happened.
    let log = env.control.log().await.unwrap();
    let hit: u64 = ["horizon_submit", "complete", "create_payment"]
        .iter()
        .map(|e| {
            log["endpoints"][e]["dropped"].as_u64().unwrap_or(0)
                + log["endpoints"][e]["injected_500"].as_u64().unwrap_or(0)
        })
        .sum();
    assert!(hit > 0, "no fault was injected: {log}");
    let events = payout_events(&env).await;
    assert_eq!(
        events
            .iter()
            .filter(|(t, _)| t == "payout.completed")
            .count(),
        30
    );
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_underfunded_app_wallet_fails_cleanly_with_its_reason() {
    let env = PayoutEnv::start(
        pi_sim::SimConfig {
            ledger_seconds: 0.05,
            app_balance: stroops("5"),
            ..pi_sim::SimConfig::default()
        },
        Options::default(),
    )
    .await;
    let address = env.pioneer("wishful").await;
    let before = env.balance(&address).await;
    let (status, answer) = env
        .post_payout(json!({"uid": "wishful", "amount": "100", "memo": "too much", "idempotency_key": "too-much"}))
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["payout"]["id"].as_str().unwrap().to_string();
    let row = &env.wait_settled(std::slice::from_ref(&id)).await[0];
    assert_eq!(row["state"], "failed", "{row}");
    let reason = row["reason"].as_str().unwrap();
    assert!(reason.starts_with("op_underfunded"), "{reason}");
    assert_eq!(env.balance(&address).await, before);
    assert_eq!(
        payout_events(&env).await,
        vec![("payout.failed".to_string(), id.clone())]
    );
    // The Pioneer is not blocked: an affordable payout goes through.
    let (status, small) = env
        .post_payout(
            json!({"uid": "wishful", "amount": "1", "memo": "ok", "idempotency_key": "affordable"}),
        )
        .await;
    assert_eq!(status, 202, "{small}");
    let small_id = small["payout"]["id"].as_str().unwrap().to_string();
    let done = &env.wait_settled(&[small_id]).await[0];
    assert_eq!(done["state"], "completed", "{done}");
    assert_eq!(env.balance(&address).await - before, stroops("1"));
    env.assert_audit_ok().await;
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_to_an_unfunded_destination_fails_cleanly_with_its_reason() {
    // Pi (sim A) knows the Pioneer and its wallet; the chain the service pays on (sim B, the
    // same app wallet) has never seen that wallet.
    let seed = pi_payments_core::stellar::Wallet::generate().expose_seed();
    let chain = pi_sim::start(pi_sim::SimConfig {
        ledger_seconds: 0.05,
        app_wallet_seed: Some(seed.clone()),
        ..pi_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let env = PayoutEnv::start(
        pi_sim::SimConfig {
            ledger_seconds: 0.05,
            app_wallet_seed: Some(seed),
            ..pi_sim::SimConfig::default()
        },
        Options {
            horizon_url: Some(chain.horizon_url.clone()),
            ..Options::default()
        },
    )
    .await;
    let address = env.pioneer("ghost").await;
    assert_eq!(
        env.balance(&address).await,
        0,
        "unfunded on the paying chain"
    );
    let (status, answer) = env
        .post_payout(
            json!({"uid": "ghost", "amount": "1", "memo": "hello", "idempotency_key": "ghost-1"}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["payout"]["id"].as_str().unwrap().to_string();
    let row: Value = env.wait_settled(std::slice::from_ref(&id)).await[0].clone();
    assert_eq!(row["state"], "failed", "{row}");
    let reason = row["reason"].as_str().unwrap();
    assert!(reason.starts_with("op_no_destination"), "{reason}");
    assert!(reason.contains(&address), "{reason}");
    assert_eq!(env.balance(&address).await, 0);
    assert_eq!(
        payout_events(&env).await,
        vec![("payout.failed".to_string(), id.clone())]
    );
    // The history says what happened, step by step.
    let shown = env.payout(&id).await;
    let last = shown["events"].as_array().unwrap().last().unwrap().clone();
    assert_eq!(last["to_state"], "failed", "{shown}");
    env.stop().await;
    chain.shutdown().await;
}
