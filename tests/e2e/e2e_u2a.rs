//! End to end: the real service (API + workers, started in-process from a Config exactly as
//! `main` does) against pi-sim, a Pioneer paying through the real callbacks.
//!
//! The SQLite + embedded-queue variant always runs; the Postgres + Redis variant runs when
//! TEST_DATABASE_URL / TEST_REDIS_URL (or their defaults) answer, each test in its own
//! database and queue namespace. The harness is in `tests/support`.

use crate::support::{Harness, Options, Stack};

async fn embedded(rate_limit: Option<u32>) -> Harness {
    Harness::start(
        Stack::Embedded,
        Options {
            rate_limit,
            ..Options::default()
        },
    )
    .await
    .unwrap()
}

/// Exactly one `approve` and one `complete` reached Pi for each payment, and Pi's books are
/// clean.
async fn assert_one_call_each(h: &Harness, ids: &[String]) {
    let log = h.sim_log().await;
    for id in ids {
        let stats = &log["payments"][id];
        assert_eq!(stats["approve"], 1, "approve calls for {id}: {stats}");
        assert_eq!(stats["complete"], 1, "complete calls for {id}: {stats}");
    }
    h.assert_audit_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_payment_approved_and_completed_with_sqlite_and_embedded_queue() {
    let h = embedded(None).await;
    assert!(h.app.simulated);
    let (status, _) = h.get(format!("{}/readyz", h.api)).await;
    assert_eq!(status, 200);
    let id = h.purchase("pioneer-smoke", 3).await;
    assert_one_call_each(&h, std::slice::from_ref(&id)).await;
    assert_eq!(h.completed_events().await, 1);
    h.stop().await;
}

/// 50 Pioneers buy at once, every callback sent three times: one approve and one complete at
/// Pi per payment, one `payment.completed` each.
async fn fifty_payments_each_callback_three_times(h: Harness, prefix: &str) {
    let h = std::sync::Arc::new(h);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..50 {
        let h = h.clone();
        let uid = format!("{prefix}-{i}");
        tasks.spawn(async move { h.purchase(&uid, 3).await });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    assert_one_call_each(&h, &ids).await;
    assert_eq!(h.completed_events().await, 50);
    let h = std::sync::Arc::into_inner(h).unwrap();
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_payments_each_callback_three_times_complete_once() {
    fifty_payments_each_callback_three_times(embedded(Some(200)).await, "pioneer").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_bodies_get_400_and_change_nothing() {
    let h = embedded(None).await;
    for body in [
        "nope",
        "{}",
        r#"{"paymentId": 5}"#,
        r#"{"paymentId": "a b"}"#,
    ] {
        let (status, answer) = h
            .post_raw(format!("{}/pi_payment/approve", h.api), body)
            .await;
        assert_eq!(status, 400, "{body} -> {answer}");
    }
    assert_eq!(h.ledger_payments().await, 0);
    h.stop().await;
}

/// Postgres + Redis, when both are reachable (always under CI); each run in a fresh database.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_payments_complete_once_each_with_postgres_and_redis() {
    let options = Options {
        rate_limit: Some(200),
        ..Options::default()
    };
    let Some(h) = Harness::start(Stack::PostgresRedis, options).await else {
        return;
    };
    fifty_payments_each_callback_three_times(h, "pioneer-pg").await;
}
