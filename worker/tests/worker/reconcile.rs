//! Reconciliation against pi-sim with the real workers: lost jobs (a row written and nothing
//! enqueued, the queue flushed), an abandoned U2A payment, A2U payouts interrupted at each step,
//! an incomplete server payment created outside the service, and the scheduled run with two
//! worker processes sharing one ledger (one run at a time).
//!
//! Rows are made "stuck" by moving their `updated_at` into the past instead of waiting for
//! `STUCK_AFTER`, so nothing here depends on timing; the one test that runs the schedule itself
//! (Redis flushed) uses a 1 s `STUCK_AFTER` and only polls for the outcome.

use crate::support::{Harness, Options, Stack};
use pi_payments_core::PiAmount;
use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ids::PayoutId;
use pi_payments_core::ids::{PaymentId, Uid};
use pi_payments_core::jobs::Job;
use pi_payments_core::ledger::{Ledger, PayoutRequest};
use pi_payments_core::payout::{CrashPoint, PayoutError, PayoutProcessor};
use pi_payments_core::pi_client::{PiClient, PiClientConfig};
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::reconcile::{ReconcileConfig, Reconciler, RunOutcome, RunSummary};
use pi_payments_core::secret::AccessToken;
use pi_payments_core::state::{PaymentState, PayoutState};
use pi_payments_core::stellar::{Network, Wallet};
use pi_payments_core::u2a::AWAITING_APPROVE_CALLBACK;
use pi_payments_worker::{
    JobRetry, QueueConfig, ScheduleConfig, WorkerConfig, WorkerDeps, connect_queue,
    run_workers_with_schedule,
};
use serde_json::json;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

fn pi_client(h: &Harness) -> PiClient {
    let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(200).unwrap()));
    PiClient::new(PiClientConfig::new(
        h.sim.platform_url.clone(),
        h.sim.api_key.clone(),
        limiter,
    ))
    .unwrap()
}

fn horizon(h: &Harness) -> HorizonClient {
    HorizonClient::new(&h.sim.horizon_url, Duration::from_secs(5)).unwrap()
}

/// A reconciler on the harness' ledger and queue; no cool-down, so runs can follow each other.
fn reconciler(h: &Harness) -> Reconciler {
    Reconciler::new(
        h.ledger.clone(),
        pi_client(h),
        horizon(h),
        h.sim.app_wallet_public_key.clone(),
        Arc::new(h.queue.clone()),
        ReconcileConfig {
            every: Duration::ZERO,
            ..ReconcileConfig::default()
        },
    )
}

async fn run(r: &Reconciler) -> RunSummary {
    match r.run_once("test").await.expect("reconcile runs") {
        RunOutcome::Ran(summary) => *summary,
        RunOutcome::Skipped { holder } => panic!("skipped: lease held by {holder:?}"),
    }
}

/// Wait until the payment's history has a line with `cause` (panics after 30 s).
async fn wait_for_cause(h: &Harness, id: &PaymentId, cause: &str) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let history = h.ledger.payment_events(id).await.unwrap();
        if history.iter().any(|e| e.cause == cause) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "no {cause} in {history:#?}"
        );
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Pretend the payment has not changed for ten minutes.
async fn age_payment(ledger: &Ledger, id: &PaymentId) {
    sqlx::query(
        "UPDATE payments SET updated_at = updated_at - 600000, next_check_at = NULL WHERE id = $1",
    )
    .bind(id.as_str())
    .execute(ledger.pool())
    .await
    .unwrap();
}

async fn age_payout(ledger: &Ledger, id: &PayoutId) {
    sqlx::query(
        "UPDATE payouts SET updated_at = updated_at - 600000, next_check_at = NULL WHERE id = $1",
    )
    .bind(id.as_str())
    .execute(ledger.pool())
    .await
    .unwrap();
}

async fn wait_payout(h: &Harness, id: &PayoutId, state: PayoutState) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let row = h.ledger.payout(id).await.unwrap().unwrap();
        if row.state == state {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let events = h.ledger.payout_events(id).await.unwrap_or_default();
            panic!("payout {id} never reached {state}; now {row:?}\n{events:#?}");
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

async fn request_payout(h: &Harness, uid: &str, key: &str) -> PayoutId {
    h.control.user(uid).await.unwrap();
    let (row, created) = h
        .ledger
        .request_payout(PayoutRequest {
            uid: Uid::parse(uid).unwrap(),
            amount: PiAmount::parse("0.5").unwrap(),
            memo: "reward".into(),
            metadata: json!({}),
            idempotency_key: key.into(),
            batch_id: None,
        })
        .await
        .unwrap();
    assert!(created);
    row.id
}

fn processor(h: &Harness) -> PayoutProcessor {
    PayoutProcessor::new(
        h.ledger.clone(),
        pi_client(h),
        horizon(h),
        Wallet::from_seed(&h.sim.app_wallet_seed).unwrap(),
        Network::new(&h.sim.network_passphrase),
        Vec::new(),
    )
}

/// How many successful transactions on chain carry `memo`, from the app wallet.
async fn chain_txs_with_memo(h: &Harness, memo: &str) -> usize {
    let page = horizon(h)
        .account_transactions(
            &h.sim.app_wallet_public_key,
            None,
            200,
            pi_payments_core::horizon::Order::Desc,
        )
        .await
        .unwrap();
    page.records
        .iter()
        .filter(|t| t.successful && t.memo.as_deref() == Some(memo))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lost_u2a_jobs_are_finished_by_the_sweep() {
    let h = Harness::start(Options::default()).await;
    let r = reconciler(&h);
    let token = h.token("lost1").await;
    let id = h.create_u2a("lost1", "2", json!({})).await;

    // The API died between the ledger write and the enqueue: the row exists, no job.
    h.ledger
        .record_approve_callback(&id, AccessToken::new(&token).as_ref())
        .await
        .unwrap();
    // Not stuck yet: a young row is left to its job.
    let summary = run(&r).await;
    assert!(summary.requeued_payments.is_empty(), "{summary:?}");
    age_payment(&h.ledger, &id).await;
    let summary = run(&r).await;
    assert_eq!(summary.requeued_payments, vec![format!("{id}:approve")]);
    // The swept job has no token (the ledger stores none): it re-reads Pi and waits.
    wait_for_cause(&h, &id, AWAITING_APPROVE_CALLBACK).await;
    assert_eq!(h.row(&id).await.state, PaymentState::Received);
    assert_eq!(h.calls(&id, "approve").await, 0);
    // The Pi SDK re-sends the approve callback with the token: the waiting job disarmed the
    // step, so this repeat gets a job at once (carrying the token), which approves.
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    // The worker told the ledger the swept row's job finished: a later sweep that finds the row
    // unchanged counts it as stuck, not as queued.
    // (Here the waiting job cleared the row's sweep count instead: waiting on the Pioneer is
    // not being stuck, so there is no sweep row to mark.)
    let finished_at: Option<Option<i64>> =
        sqlx::query_scalar("SELECT finished_at FROM reconcile_sweeps WHERE subject = $1")
            .bind(id.as_str())
            .fetch_optional(h.ledger.pool())
            .await
            .unwrap();
    assert!(finished_at.is_none_or(|f| f.is_some()));

    let txid = h.submit(&id).await;
    h.ledger.record_complete_callback(&id, &txid).await.unwrap();
    age_payment(&h.ledger, &id).await;
    let summary = run(&r).await;
    // The callback's txid bound nothing: the row is `approved`; a complete callback came, so
    // the sweeper enqueues the complete job (never the incomplete one, which would cancel a
    // payment Pi had not linked yet), and it completes with the transaction Pi linked.
    assert_eq!(summary.requeued_payments, vec![format!("{id}:complete")]);
    h.wait_for(&id, PaymentState::Completed).await;

    assert_eq!(h.calls(&id, "approve").await, 1);
    assert_eq!(h.calls(&id, "complete").await, 1);
    let history = h.ledger.payment_events(&id).await.unwrap();
    assert_eq!(
        history
            .iter()
            .filter(|e| e.cause == "sweep_requeued")
            .count(),
        2,
        "{history:#?}"
    );
    // Settled: later sweeps leave it alone.
    age_payment(&h.ledger, &id).await;
    assert!(run(&r).await.requeued_payments.is_empty());
    assert_eq!(h.audit().await["ok"], true);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_approved_payment_is_cancelled_and_the_pioneer_unblocked() {
    let h = Harness::start(Options::default()).await;
    let r = reconciler(&h);
    let token = h.token("walker").await;
    let id = h.create_u2a("walker", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;

    // Approved, no transaction, but younger than ABANDON_AFTER: the Pioneer may be signing.
    sqlx::query("UPDATE payments SET updated_at = updated_at - 150000 WHERE id = $1")
        .bind(id.as_str())
        .execute(h.ledger.pool())
        .await
        .unwrap();
    assert!(run(&r).await.requeued_payments.is_empty());
    assert_eq!(h.row(&id).await.state, PaymentState::Approved);

    // Past ABANDON_AFTER: re-read at Pi, still no tx → cancelled there.
    age_payment(&h.ledger, &id).await;
    let summary = run(&r).await;
    assert_eq!(summary.requeued_payments, vec![format!("{id}:incomplete")]);
    let row = h.wait_for(&id, PaymentState::Cancelled).await;
    assert!(row.reason.unwrap_or_default().contains("abandoned"));
    let at_pi = h.pi_payment(&id).await;
    assert_eq!(at_pi["status"]["cancelled"], true, "{at_pi}");

    // The Pioneer pays again, and that payment goes through.
    let token = h.token("walker").await;
    let again = h.create_u2a("walker", "1", json!({})).await;
    h.approve_callback(&again, Some(&token)).await;
    h.wait_for(&again, PaymentState::Approved).await;
    let txid = h.submit(&again).await;
    h.complete_callback(&again, &txid).await;
    h.wait_for(&again, PaymentState::Completed).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_abandoned_payment_with_a_linked_tx_is_completed_not_cancelled() {
    let h = Harness::start(Options::default()).await;
    let r = reconciler(&h);
    let token = h.token("late").await;
    let id = h.create_u2a("late", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    // The Pioneer paid, but the complete callback never arrived.
    h.submit(&id).await;
    age_payment(&h.ledger, &id).await;
    run(&r).await;
    h.wait_for(&id, PaymentState::Completed).await;
    assert_eq!(h.calls(&id, "cancel").await, 0);
    assert_eq!(h.audit().await["ok"], true);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interrupted_payouts_are_finished_without_paying_twice() {
    let h = Harness::start(Options {
        payouts: true,
        ..Options::default()
    })
    .await;
    let r = reconciler(&h);

    // 1. Queue flushed / job lost: requested, nothing enqueued.
    let lost = request_payout(&h, "payee1", "lost-job").await;
    // 2. Killed right after Horizon accepted the transaction.
    let killed = request_payout(&h, "payee2", "killed-after-submit").await;
    let err = processor(&h)
        .crash_at(CrashPoint::AfterSubmit)
        .step(&killed)
        .await
        .unwrap_err();
    assert!(matches!(err, PayoutError::SimulatedCrash(_)), "{err}");
    // 3. Pi completed it but the answer was lost.
    let dropped = request_payout(&h, "payee3", "complete-dropped").await;
    let err = processor(&h)
        .crash_at(CrashPoint::AfterComplete)
        .step(&dropped)
        .await
        .unwrap_err();
    assert!(matches!(err, PayoutError::SimulatedCrash(_)), "{err}");
    // 4. Pi created the payment but the identifier was never stored: it only exists at Pi
    //    (an incomplete server payment carrying our payout id).
    let orphan = request_payout(&h, "payee4", "create-answer-lost").await;
    let err = processor(&h)
        .crash_at(CrashPoint::AfterPiCreate)
        .step(&orphan)
        .await
        .unwrap_err();
    assert!(matches!(err, PayoutError::SimulatedCrash(_)), "{err}");

    for id in [&lost, &killed, &dropped, &orphan] {
        age_payout(&h.ledger, id).await;
    }
    let summary = run(&r).await;
    assert_eq!(summary.requeued_payouts.len(), 4, "{summary:?}");
    assert!(summary.server_unknown.is_empty(), "{summary:?}");
    for id in [&lost, &killed, &dropped, &orphan] {
        wait_payout(&h, id, PayoutState::Completed).await;
        let row = h.ledger.payout(id).await.unwrap().unwrap();
        let memo = row.pi_payment_id.expect("identifier stored");
        assert_eq!(chain_txs_with_memo(&h, memo.as_str()).await, 1, "{id}");
    }
    let audit = h.audit().await;
    assert_eq!(audit["ok"], true, "{audit}");
    // Everything settled: Pi has no incomplete server payment left, and the report is clean.
    let summary = run(&r).await;
    assert_eq!(summary.server_payments, 0, "{summary:?}");
    let report = r.drift_checker().report().await.unwrap();
    assert!(report.clean, "{report:#?}");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_incomplete_server_payment_made_outside_the_service_is_reported_not_paid() {
    let h = Harness::start(Options {
        payouts: true,
        ..Options::default()
    })
    .await;
    let r = reconciler(&h);
    h.control.user("stranger").await.unwrap();
    // Someone with the API key created an A2U payment by hand.
    let response = h
        .http
        .post(format!("{}/v2/payments", h.sim.platform_url))
        .header("authorization", format!("Key {}", h.sim.api_key))
        .json(&json!({"payment": {"amount": 3, "memo": "by hand", "metadata": {}, "uid": "stranger"}}))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success());
    let created: serde_json::Value = response.json().await.unwrap();
    let pid = created["identifier"].as_str().unwrap().to_string();

    let summary = run(&r).await;
    assert_eq!(summary.server_unknown, vec![pid.clone()], "{summary:?}");
    assert!(summary.server_resumed.is_empty());
    let findings = h.ledger.open_findings(None).await.unwrap();
    assert!(findings.iter().any(|f| f.subject == pid), "{findings:?}");
    // Seen again by the next run: still reported, still not paid.
    run(&r).await;
    h.settle().await;
    assert_eq!(chain_txs_with_memo(&h, &pid).await, 0);
    let at_pi = h.pi_payment(&PaymentId::parse(&pid).unwrap()).await;
    assert!(at_pi["transaction"].is_null(), "{at_pi}");
    let report = r.drift_checker().report().await.unwrap();
    assert!(!report.clean);
    assert!(
        report
            .drift
            .iter()
            .any(|d| d.subject == pid && d.kind.as_str() == "unknown_incomplete_server_payment"),
        "{report:#?}"
    );
    h.shutdown().await;
}

/// One "worker process" with the schedule on, sharing the harness' ledger and pi-sim.
async fn scheduled_process(
    h: &Harness,
    name: &str,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), pi_payments_worker::WorkerError>>,
) {
    let queue = connect_queue(&QueueConfig {
        redis_url: None,
        sqlite_path: h.dir.join(format!("{name}-queue.db")),
        namespace: name.to_string(),
    })
    .await
    .unwrap();
    let deps = WorkerDeps {
        ledger: h.ledger.clone(),
        pi: pi_client(h),
        horizon: horizon(h),
        app_wallet: h.sim.app_wallet_public_key.clone(),
        network: h.sim.network_passphrase.clone(),
        require_order: false,
        anonymous_cancel_grace: pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE,
        webhook: None,
        retry: JobRetry::default(),
        payouts: None,
    };
    let cfg = WorkerConfig {
        worker_id: name.to_string(),
        concurrency: 2,
        heartbeat_interval: Duration::from_secs(2),
        missed_heartbeats: 3,
        poll_interval: Duration::from_millis(200),
        shutdown_timeout: Duration::from_secs(5),
        ..WorkerConfig::default()
    };
    let schedule = ScheduleConfig {
        reconcile: ReconcileConfig {
            every: Duration::from_secs(1),
            ..ReconcileConfig::default()
        },
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let handle = tokio::spawn(run_workers_with_schedule(
        deps,
        queue,
        cfg,
        Some(schedule),
        async move {
            let _ = stopped.await;
        },
    ));
    (stop, handle)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_scheduled_workers_run_reconcile_one_at_a_time() {
    let h = Harness::start(Options::default()).await;
    // Slow Pi: a run takes a while, so overlapping runs would show.
    h.set_faults(json!({ "latency_ms": 150 })).await;
    h.control.reset("log").await.unwrap();
    let a = scheduled_process(&h, "proc-a").await;
    let b = scheduled_process(&h, "proc-b").await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let runs = h.ledger.reconcile_runs(100).await.unwrap();
        if runs.iter().filter(|r| r.finished_at.is_some()).count() >= 4 {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "runs: {runs:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for (stop, handle) in [a, b] {
        let _ = stop.send(());
        handle.await.unwrap().unwrap();
    }
    let mut runs = h.ledger.reconcile_runs(100).await.unwrap();
    runs.reverse();
    // No two runs overlapped…
    for pair in runs.windows(2) {
        let finished = pair[0].finished_at.expect("every run finished");
        assert!(
            pair[1].started_at >= finished,
            "overlapping runs: {pair:#?}"
        );
    }
    // …and each run asked Pi once: no tick was processed twice.
    let log = h.log().await;
    let calls = log["endpoints"]["incomplete_server_payments"]["calls"]
        .as_u64()
        .unwrap_or(0);
    assert_eq!(calls, runs.len() as u64, "{log}");
    h.shutdown().await;
}

/// Redis restarted without persistence (issue 7), on the served stack: a payout and a U2A
/// payment had their jobs enqueued, then every key of the queue's namespace vanished before any
/// worker ran. The workers' own schedule (`STUCK_AFTER` = `RECONCILE_EVERY` = 1 s) finds both
/// rows and re-enqueues their jobs; the payout is paid exactly once, and the payment (whose
/// swept job has no token) is approved once the SDK's approve callback comes again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_lost_in_a_flushed_redis_are_finished_by_the_scheduled_sweep() {
    let mut h = Harness::start(Options {
        stack: Stack::Served,
        payouts: true,
        defer_workers: true,
        schedule: Some(ScheduleConfig {
            reconcile: ReconcileConfig {
                every: Duration::from_secs(1),
                stuck_after: Duration::from_secs(1),
                ..ReconcileConfig::default()
            },
        }),
        ..Options::default()
    })
    .await;
    let payout = request_payout(&h, "flushed1", "redis-flushed").await;
    h.queue
        .push_jobs(vec![Job::payout(payout.clone())])
        .await
        .unwrap();
    let token = h.token("flushed2").await;
    let payment = h.create_u2a("flushed2", "1", json!({})).await;
    // Recorded and its approve job enqueued, as the API does.
    h.approve_callback(&payment, Some(&token)).await;

    // Redis comes back empty: both jobs are gone before any worker saw them.
    assert!(h.flush_queue().await > 0, "the jobs were in Redis");
    h.start_workers();

    wait_payout(&h, &payout, PayoutState::Completed).await;
    // The swept approve job carries no token (none is stored) and waits; the Pi SDK re-sends the
    // approve callback with the token (every ~10 s; here faster), and the callback that finds
    // the payment idle for STUCK_AFTER gets a job that approves it.
    wait_for_cause(&h, &payment, AWAITING_APPROVE_CALLBACK).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while h.row(&payment).await.state != PaymentState::Approved {
        assert!(tokio::time::Instant::now() < deadline, "never approved");
        h.approve_callback(&payment, Some(&token)).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    let row = h.ledger.payout(&payout).await.unwrap().unwrap();
    let memo = row.pi_payment_id.expect("identifier stored");
    assert_eq!(chain_txs_with_memo(&h, memo.as_str()).await, 1);
    let audit = h.audit().await;
    assert_eq!(audit["ok"], true, "{audit}");
    assert!(
        !audit["problems"].to_string().contains("double_paid"),
        "{audit}"
    );
    let history = h.ledger.payout_events(&payout).await.unwrap();
    assert!(
        history.iter().any(|e| e.cause == "sweep_requeued"),
        "{history:#?}"
    );
    let history = h.ledger.payment_events(&payment).await.unwrap();
    assert!(
        history.iter().any(|e| e.cause == "sweep_requeued"),
        "{history:#?}"
    );
    let at_pi = h.pi_payment(&payment).await;
    assert_eq!(at_pi["status"]["developer_approved"], true, "{at_pi}");
    h.shutdown().await;
}
