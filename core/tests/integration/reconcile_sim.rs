//! The reconciler against pi-sim with a recording queue (no workers): what a run enqueues,
//! one run at a time under concurrency, the sweep's give-up, and the drift report.

use crate::support::sim::{SimEnv, start};
use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ids::PaymentId;
use pi_payments_core::jobs::Job;
use pi_payments_core::ledger::Swept;
use pi_payments_core::reconcile::{
    DriftKind, QUEUED_REQUEUE_FACTOR, RECONCILE_LEASE, ReconcileConfig, Reconciler, RunOutcome,
};
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::state::PaymentState;
use pi_payments_core::u2a::{U2aDeps, U2aOutcome, U2aProcessor, U2aStep};
use pi_sim::SimConfig;
use pi_sim::control_client::U2aRequest;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

impl SimEnv {
    fn reconciler(&self, config: ReconcileConfig) -> Reconciler {
        let horizon = HorizonClient::new(&self.sim.horizon_url, Duration::from_secs(5)).unwrap();
        Reconciler::new(
            self.ledger.clone(),
            self.pi(RetryPolicy::default()),
            horizon,
            self.sim.app_wallet_public_key.clone(),
            Arc::new(self.queue.clone()),
            config,
        )
    }

    async fn u2a(&self, uid: &str) -> PaymentId {
        let request = U2aRequest::new(uid, "1").memo("m");
        let id = self.control.create_u2a_id(&request).await.unwrap();
        PaymentId::parse(&id).unwrap()
    }

    async fn age(&self, id: &PaymentId) {
        sqlx::query(
            "UPDATE payments SET updated_at = updated_at - 600000, next_check_at = NULL WHERE id = $1",
        )
        .bind(id.as_str())
        .execute(self.ledger.pool())
        .await
        .unwrap();
    }

    /// Make a swept row due again without changing `updated_at` (the row did not move).
    async fn due(&self, id: &PaymentId) {
        sqlx::query("UPDATE payments SET next_check_at = NULL WHERE id = $1")
            .bind(id.as_str())
            .execute(self.ledger.pool())
            .await
            .unwrap();
    }
}

fn no_cooldown() -> ReconcileConfig {
    ReconcileConfig {
        every: Duration::ZERO,
        ..ReconcileConfig::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_runs_are_one_at_a_time() {
    let env = start(SimConfig::default()).await;
    // A slow Pi keeps the first run inside its lease while the second tries.
    env.faults(json!({"latency_ms": 300})).await;
    env.control.reset("log").await.unwrap();
    let a = env.reconciler(ReconcileConfig::default());
    let b = env.reconciler(ReconcileConfig::default());
    let (ra, rb) = tokio::join!(a.run_once("proc-a"), b.run_once("proc-b"));
    let outcomes = [ra.unwrap(), rb.unwrap()];
    let ran = outcomes
        .iter()
        .filter(|o| matches!(o, RunOutcome::Ran(_)))
        .count();
    assert_eq!(ran, 1, "{outcomes:?}");
    // Right after it, within the cool-down (half of RECONCILE_EVERY), a later tick skips too.
    assert!(matches!(
        b.run_once("proc-b").await.unwrap(),
        RunOutcome::Skipped { .. }
    ));
    let log = env.control.log().await.unwrap();
    assert_eq!(
        log["endpoints"]["incomplete_server_payments"]["calls"], 1,
        "{log}"
    );
    assert_eq!(env.ledger.reconcile_runs(10).await.unwrap().len(), 1);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_that_sweeping_does_not_move_goes_to_needs_attention() {
    let env = start(SimConfig::default()).await;
    let r = env.reconciler(ReconcileConfig {
        max_sweeps: 2,
        ..no_cooldown()
    });
    let id = env.u2a("stuck").await;
    env.ledger.record_approve_callback(&id, None).await.unwrap();
    env.age(&id).await;
    for _ in 0..2 {
        env.due(&id).await;
        let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
            panic!("skipped")
        };
        assert_eq!(summary.requeued_payments, vec![format!("{id}:approve")]);
        // A worker runs the job and the row does not move.
        env.ledger
            .job_finished(Swept::Payment, id.as_str())
            .await
            .unwrap();
    }
    // The jobs ran and the row never moved: the third sweep gives up.
    env.due(&id).await;
    let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
        panic!("skipped")
    };
    assert_eq!(summary.gave_up, vec![format!("payment:{id}")]);
    let row = env.ledger.payment(&id).await.unwrap().unwrap();
    assert_eq!(row.state, PaymentState::NeedsAttention);
    assert!(
        row.reason
            .unwrap()
            .contains("re-enqueued its approve job 2 times")
    );
    let history = env.ledger.payment_events(&id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.cause == "sweep_requeued")
            .count(),
        2
    );
    assert_eq!(
        env.queue.take(),
        vec![Job::approve(id.clone()), Job::approve(id.clone())]
    );
    // A person's problem now: no more sweeps.
    env.age(&id).await;
    let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
        panic!("skipped")
    };
    assert!(summary.requeued_payments.is_empty() && summary.gave_up.is_empty());
    env.done().await;
}

/// Age the sweep counter of `id` by `ms`, as if its last re-enqueue were that much older.
async fn age_sweep(env: &SimEnv, id: &PaymentId, ms: i64) {
    sqlx::query("UPDATE reconcile_sweeps SET last_at = last_at - $1 WHERE subject = $2")
        .bind(ms)
        .bind(id.as_str())
        .execute(env.ledger.pool())
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_row_whose_job_is_only_queued_is_not_stuck() {
    let env = start(SimConfig::default()).await;
    let config = ReconcileConfig {
        max_sweeps: 2,
        ..no_cooldown()
    };
    let stuck_after_ms = i64::try_from(config.stuck_after.as_millis()).unwrap();
    let r = env.reconciler(config);
    let id = env.u2a("backlogged").await;
    env.ledger.record_approve_callback(&id, None).await.unwrap();
    env.age(&id).await;
    let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
        panic!("skipped")
    };
    assert_eq!(summary.requeued_payments, vec![format!("{id}:approve")]);
    // A backlog: no worker has reached the job yet. Sweep after sweep, the row is neither
    // counted nor enqueued again, however many sweeps pass, and it is postponed meanwhile.
    for _ in 0..5 {
        env.due(&id).await;
        let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
            panic!("skipped")
        };
        assert!(summary.requeued_payments.is_empty(), "{summary:?}");
        assert!(summary.gave_up.is_empty(), "{summary:?}");
        let row = env.ledger.payment(&id).await.unwrap().unwrap();
        assert!(row.next_check_at.is_some(), "{row:?}");
    }
    assert_eq!(env.queue.take(), vec![Job::approve(id.clone())]);
    // After QUEUED_REQUEUE_FACTOR × STUCK_AFTER the queue may have lost it: enqueued once
    // more, said so in its history, still not counted; each time it waits twice as long.
    let first_wait = QUEUED_REQUEUE_FACTOR * stuck_after_ms;
    for doubling in 0..3 {
        let wait = first_wait << doubling;
        if doubling > 0 {
            // The previous wait is no longer enough.
            age_sweep(&env, &id, wait / 2).await;
            env.due(&id).await;
            let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
                panic!("skipped")
            };
            assert!(summary.requeued_payments.is_empty(), "{summary:?}");
            age_sweep(&env, &id, -wait / 2).await;
        }
        age_sweep(&env, &id, wait).await;
        env.due(&id).await;
        let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
            panic!("skipped")
        };
        assert_eq!(summary.requeued_payments, vec![format!("{id}:approve")]);
        assert!(summary.gave_up.is_empty(), "{summary:?}");
    }
    let history = env.ledger.payment_events(&id).await.unwrap();
    assert!(
        history.iter().any(|e| e.cause == "sweep_requeued"
            && e.detail.as_deref().unwrap_or("").contains("queue lost it")),
        "{history:?}"
    );
    assert_eq!(
        env.ledger.payment(&id).await.unwrap().unwrap().state,
        PaymentState::Received
    );
    // Once jobs finish and the row still does not move, the count goes on to needs_attention.
    for _ in 0..2 {
        env.ledger
            .job_finished(Swept::Payment, id.as_str())
            .await
            .unwrap();
        env.due(&id).await;
        r.run_once("t").await.unwrap();
    }
    assert_eq!(
        env.ledger.payment(&id).await.unwrap().unwrap().state,
        PaymentState::NeedsAttention
    );
    env.done().await;
}

/// The approve step of `id` once, against a Pi that answers its read with a 429: the payment is
/// throttled, and waits `wait` before its next try.
async fn throttled_approve(env: &SimEnv, id: &PaymentId, wait: Duration) {
    let deps = U2aDeps {
        ledger: env.ledger.clone(),
        pi: env.pi(RetryPolicy::none()),
        horizon: env.horizon(),
        app_wallet: env.sim.app_wallet_public_key.clone(),
        network: env.sim.network_passphrase.clone(),
        require_order: false,
        anonymous_cancel_grace: pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE,
    };
    let processor = U2aProcessor::new(deps, 3).with_throttle_backoff(wait, wait);
    env.faults(json!({"throttle_next": 1, "endpoints": ["get_payment"]}))
        .await;
    let outcome = processor.run(U2aStep::Approve, id, 1).await;
    assert!(
        matches!(outcome, U2aOutcome::Throttled { .. }),
        "{outcome:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_throttled_row_is_waiting_not_stuck() {
    let env = start(SimConfig::default()).await;
    let r = env.reconciler(ReconcileConfig {
        max_sweeps: 2,
        ..no_cooldown()
    });
    let id = env.u2a("throttled").await;
    env.ledger.record_approve_callback(&id, None).await.unwrap();
    env.age(&id).await;
    // Throttled for a minute: the sweeper leaves it alone meanwhile.
    throttled_approve(&env, &id, Duration::from_secs(60)).await;
    let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
        panic!("skipped")
    };
    assert!(summary.requeued_payments.is_empty(), "{summary:?}");
    // Each re-enqueued job was throttled again: more sweeps than max_sweeps, none of them
    // "without movement", so the payment is never handed to a person.
    for _ in 0..4 {
        env.due(&id).await;
        let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
            panic!("skipped")
        };
        assert_eq!(summary.requeued_payments, vec![format!("{id}:approve")]);
        assert!(summary.gave_up.is_empty(), "{summary:?}");
        throttled_approve(&env, &id, Duration::from_millis(10)).await;
    }
    let row = env.ledger.payment(&id).await.unwrap().unwrap();
    assert_eq!(row.state, PaymentState::Received);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approved_payment_gets_the_incomplete_job_only_once_abandoned() {
    let env = start(SimConfig::default()).await;
    let r = env.reconciler(no_cooldown());
    let id = env.u2a("slow").await;
    env.ledger.record_approve_callback(&id, None).await.unwrap();
    env.ledger
        .apply(
            &id,
            pi_payments_core::state::Transition::PiApproved,
            None,
            1,
            Default::default(),
        )
        .await
        .unwrap();
    // 150 s: past STUCK_AFTER, not past ABANDON_AFTER.
    sqlx::query("UPDATE payments SET updated_at = updated_at - 150000 WHERE id = $1")
        .bind(id.as_str())
        .execute(env.ledger.pool())
        .await
        .unwrap();
    r.run_once("t").await.unwrap();
    assert!(env.queue.take().is_empty());
    // A cancel callback whose re-read found Pi still open: re-checked after STUCK_AFTER.
    env.ledger.record_cancel_callback(&id).await.unwrap();
    r.run_once("t").await.unwrap();
    assert_eq!(env.queue.take(), vec![Job::incomplete(id.clone())]);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_drift_report_lists_a_planted_mismatch_and_is_clean_otherwise() {
    let env = start(SimConfig::default()).await;
    let r = env.reconciler(no_cooldown());
    let report = r.drift_checker().report().await.unwrap();
    assert!(report.clean, "{report:#?}");

    let id = env.u2a("victim").await;
    env.ledger.record_approve_callback(&id, None).await.unwrap();
    // Planted: the ledger says completed, Pi never completed it.
    sqlx::query("UPDATE payments SET state = 'completed', amount_stroops = 10000000 WHERE id = $1")
        .bind(id.as_str())
        .execute(env.ledger.pool())
        .await
        .unwrap();
    let report = r.drift_checker().report().await.unwrap();
    assert!(!report.clean);
    let item = report
        .drift
        .iter()
        .find(|d| d.subject == id.as_str())
        .unwrap_or_else(|| panic!("{report:#?}"));
    assert_eq!(item.kind, DriftKind::StateMismatch);
    assert!(item.detail.contains("completed in the ledger"), "{item:?}");
    // JSON shape used by GET /admin/drift and --json.
    let json = serde_json::to_value(&report).unwrap();
    assert_eq!(json["drift"][0]["kind"], "state_mismatch");
    assert_eq!(json["clean"], false);
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dead_holder_blocks_reconciliation_for_about_two_intervals() {
    let env = start(SimConfig::default()).await;
    assert_eq!(
        ReconcileConfig::default().lease_ttl,
        2 * pi_payments_core::reconcile::DEFAULT_RECONCILE_EVERY
    );
    let every = Duration::from_secs(1);
    let config = ReconcileConfig {
        every,
        lease_ttl: ReconcileConfig::lease_ttl_for(every),
        ..ReconcileConfig::default()
    };
    assert_eq!(config.lease_ttl, Duration::from_secs(2));
    // A process took the lease as a run does, then died without releasing it.
    let taken = pi_payments_core::ledger::now_ms();
    assert!(
        env.ledger
            .try_lease(RECONCILE_LEASE, "dead:00000001", config.lease_ttl)
            .await
            .unwrap()
    );
    let r = env.reconciler(config.clone());
    assert!(matches!(
        r.run_once("next").await.unwrap(),
        RunOutcome::Skipped { .. }
    ));
    let lease = env.ledger.lease(RECONCILE_LEASE).await.unwrap().unwrap();
    assert!(lease.expires_at <= taken + 2_000 + 100, "{lease:?}");
    tokio::time::sleep(config.lease_ttl + Duration::from_millis(200)).await;
    assert!(matches!(
        r.run_once("next").await.unwrap(),
        RunOutcome::Ran(_)
    ));
    env.done().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_keeps_its_lease_by_renewing_it() {
    let env = start(SimConfig::default()).await;
    let config = ReconcileConfig {
        lease_ttl: Duration::from_millis(600),
        ..no_cooldown()
    };
    // Pi answers after 2 s: the run outlasts its lease's time to live three times over.
    env.faults(json!({"latency_ms": 2000})).await;
    let a = env.reconciler(config.clone());
    let b = env.reconciler(config);
    let first = tokio::spawn(async move { a.run_once("proc-a").await });
    for _ in 0..4 {
        tokio::time::sleep(Duration::from_millis(400)).await;
        assert!(
            matches!(
                b.run_once("proc-b").await.unwrap(),
                RunOutcome::Skipped { .. }
            ),
            "the running holder renews its lease"
        );
    }
    assert!(matches!(first.await.unwrap().unwrap(), RunOutcome::Ran(_)));
    env.done().await;
}

/// A Pi payment created for a payout that is already bound to (and paid with) another one,
/// left open because the step that made it could not cancel it: the reconciler cancels it
/// (it was never signed) instead of reporting it as unknown, and leaves a payment without our
/// tag alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_superseded_payout_payment_is_cancelled_and_a_foreign_one_left_alone() {
    use crate::support::payouts::settle;
    use pi_payments_core::PiAmount;
    use pi_payments_core::Uid;
    use pi_payments_core::dto::CreatePaymentRequest;
    use pi_payments_core::payout::StepOutcome;

    let env = start(SimConfig::default()).await;
    env.pioneer("sup").await;
    let row = env.request("sup", "1", "sup-1").await;
    let p = env.processor(Vec::new());
    assert_eq!(settle(&p, &row.id).await, StepOutcome::Done);
    let pi = env.pi(RetryPolicy::fast());
    let create = |metadata: serde_json::Value| CreatePaymentRequest {
        amount: PiAmount::parse("1").unwrap(),
        memo: "late".into(),
        metadata,
        uid: Uid::parse("sup").unwrap(),
    };
    let late = pi
        .create_payment(&create(json!({"payout_id": row.id.as_str()})))
        .await
        .unwrap();
    let r = env.reconciler(no_cooldown());
    let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
        panic!("skipped")
    };
    assert_eq!(summary.server_superseded, vec![late.identifier.to_string()]);
    assert!(summary.server_unknown.is_empty(), "{summary:?}");
    let now = pi.get_payment(&late.identifier).await.unwrap();
    assert!(now.status.cancelled, "{now:?}");

    let foreign = pi.create_payment(&create(json!({}))).await.unwrap();
    let RunOutcome::Ran(summary) = r.run_once("t").await.unwrap() else {
        panic!("skipped")
    };
    assert!(summary.server_superseded.is_empty(), "{summary:?}");
    assert_eq!(summary.server_unknown, vec![foreign.identifier.to_string()]);
    assert!(
        !pi.get_payment(&foreign.identifier)
            .await
            .unwrap()
            .status
            .cancelled
    );
    env.done().await;
}
