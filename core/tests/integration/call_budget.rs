//! Calls per payment against pi-sim's request log: on the happy path a payout costs one Horizon
//! submit plus at most one read (the fee is cached for about a ledger and shared by all payouts
//! of the process, the sequence is held by the lane), and a U2A payment costs its Platform calls
//! plus the transaction check. Run with `--nocapture` to see the figures.

use crate::support::payouts::drive;
use crate::support::sim::{SimEnv, fast_sim, start};
use pi_payments_core::ids::{PaymentId, Txid};
use pi_payments_core::payout::StepOutcome;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::secret::AccessToken;
use pi_payments_core::u2a::{U2aDeps, U2aOutcome, U2aProcessor, U2aStep};
use pi_sim::control_client::U2aRequest;
use serde_json::json;
use std::collections::BTreeMap;

/// pi-sim's calls per endpoint so far.
async fn calls(env: &SimEnv) -> BTreeMap<String, u64> {
    let log = env.control.log().await.unwrap();
    let mut out = BTreeMap::new();
    if let Some(endpoints) = log["endpoints"].as_object() {
        for (name, v) in endpoints {
            out.insert(name.clone(), v["calls"].as_u64().unwrap_or(0));
        }
    }
    out
}

/// The calls made between two snapshots, per endpoint (zero rows left out).
fn since(before: &BTreeMap<String, u64>, after: &BTreeMap<String, u64>) -> BTreeMap<String, u64> {
    after
        .iter()
        .map(|(k, v)| (k.clone(), v - before.get(k).copied().unwrap_or(0)))
        .filter(|(_, v)| *v > 0)
        .collect()
}

/// (Platform, Horizon) totals of a per-endpoint count.
fn split(calls: &BTreeMap<String, u64>) -> (u64, u64) {
    let horizon: u64 = calls
        .iter()
        .filter(|(k, _)| k.starts_with("horizon_"))
        .map(|(_, v)| v)
        .sum();
    (calls.values().sum::<u64>() - horizon, horizon)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_payout_costs_one_submit_and_at_most_one_horizon_read() {
    const N: u64 = 40;
    let env = start(fast_sim(0.0)).await;
    let p = env.processor(Vec::new());
    let mut ids = Vec::new();
    for i in 0..N {
        env.pioneer(&format!("budget-{i}")).await;
        let row = env
            .request(&format!("budget-{i}"), "1.5", &format!("budget-{i}"))
            .await;
        ids.push(row.id);
    }
    // A slow `/fee_stats`: payouts arriving while it is read wait for that read.
    env.faults(json!({"latency_ms": 300, "endpoints": ["horizon_fee_stats"]}))
        .await;
    let before = calls(&env).await;
    // All at once: a burst of payouts shares one `/fee_stats` read.
    let outcomes = drive(&p, &ids, N as usize).await;
    assert!(
        outcomes.values().all(|o| *o == StepOutcome::Done),
        "{outcomes:?}"
    );
    let used = since(&before, &calls(&env).await);
    let (platform, horizon) = split(&used);
    println!(
        "{N} payouts: {used:?}\nper payout: Platform {:.2}, Horizon {:.2}",
        platform as f64 / N as f64,
        horizon as f64 / N as f64
    );
    let get = |k: &str| used.get(k).copied().unwrap_or(0);
    assert_eq!(get("horizon_submit"), N, "one submit per payout");
    let reads = get("horizon_fee_stats")
        + get("horizon_account")
        + get("horizon_transaction")
        + get("horizon_account_transactions");
    assert!(reads <= N, "at most one Horizon read per payout: {used:?}");
    assert!(
        get("horizon_fee_stats") <= N / 10,
        "the fee is cached and shared, not read per payout: {used:?}"
    );
    assert!(
        get("horizon_account") <= 1,
        "the lane holds the sequence: {used:?}"
    );
    assert_eq!(get("horizon_account_transactions"), 0, "no memo scan");
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_per_completed_u2a_payment() {
    const N: u64 = 10;
    let env = start(fast_sim(0.0)).await;
    let processor = U2aProcessor::new(
        U2aDeps {
            ledger: env.ledger.clone(),
            pi: env.pi(RetryPolicy::fast()),
            horizon: env.horizon(),
            app_wallet: env.sim.app_wallet_public_key.clone(),
            network: env.sim.network_passphrase.clone(),
            require_order: false,
            anonymous_cancel_grace: pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE,
        },
        2,
    );
    let mut ours = BTreeMap::new();
    for i in 0..N {
        let uid = format!("u2a-{i}");
        let token = env.control.token(&uid).await.unwrap();
        let request = U2aRequest::new(&uid, "1").memo("m").metadata(json!({}));
        let id = PaymentId::parse(&env.control.create_u2a_id(&request).await.unwrap()).unwrap();
        let recorded = env
            .ledger
            .record_approve_callback(&id, AccessToken::new(&token).as_ref())
            .await
            .unwrap();
        let Some(pi_payments_core::jobs::Job::Approve(job)) = recorded.job else {
            panic!("the approve callback asks for an approve job");
        };
        // Only the processor's calls count (not the Pioneer's side played by the control API).
        let before = calls(&env).await;
        assert_eq!(
            processor
                .run_approve(&id, job.credential.as_ref(), 1, 0)
                .await,
            U2aOutcome::Done
        );
        for (k, v) in since(&before, &calls(&env).await) {
            *ours.entry(k).or_insert(0) += v;
        }
        let txid = Txid::parse(&env.control.submit(id.as_str()).await.unwrap()).unwrap();
        env.ledger
            .record_complete_callback(&id, &txid)
            .await
            .unwrap();
        let before = calls(&env).await;
        assert_eq!(
            processor.run(U2aStep::Complete, &id, 1).await,
            U2aOutcome::Done
        );
        for (k, v) in since(&before, &calls(&env).await) {
            *ours.entry(k).or_insert(0) += v;
        }
    }
    let (platform, horizon) = split(&ours);
    println!(
        "{N} U2A payments: {ours:?}\nper payment: Platform {:.2}, Horizon {:.2}",
        platform as f64 / N as f64,
        horizon as f64 / N as f64
    );
    assert!(platform >= 2 * N, "approve and complete at least: {ours:?}");
    env.done().await;
}
