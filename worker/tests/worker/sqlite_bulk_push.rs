//! The embedded queue's one-statement bulk push (src/sqlite_push.rs) writes the rows
//! apalis-sqlite's own push writes, so apalis workers fetch and run them as their own. (The
//! U2A end-to-end tests then run such jobs through real workers.)

use apalis::prelude::TaskSink;
use apalis_sqlite::{SqlitePool, SqliteStorage};
use pi_payments_core::PaymentId;
use pi_payments_core::jobs::{ApproveJob, Job};
use pi_payments_worker::{QueueConfig, connect_queue};
use sqlx::Row;

/// The columns both pushes must agree on (everything but the id and the run time).
const COMPARED: &str = "CAST(job AS TEXT) AS job, status, attempts, max_attempts, \
     last_result, lock_at, lock_by, done_at, priority, metadata, idempotency_key";

fn pid(n: u32) -> PaymentId {
    PaymentId::parse(&format!("bulkpush{n:06}")).unwrap()
}

async fn row_of(pool: &SqlitePool, payment: &PaymentId) -> Vec<Option<String>> {
    let row = sqlx::query(sqlx::AssertSqlSafe(format!(
        "SELECT {COMPARED} FROM Jobs WHERE CAST(job AS TEXT) LIKE '%' || $1 || '%'"
    )))
    .bind(payment.as_str())
    .fetch_one(pool)
    .await
    .unwrap();
    (0..row.len())
        .map(|i| {
            row.try_get::<Option<String>, _>(i)
                .or_else(|_| {
                    row.try_get::<Option<i64>, _>(i)
                        .map(|v| v.map(|v| v.to_string()))
                })
                .unwrap()
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bulk_push_writes_what_apalis_writes() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("queue.db");
    let queue = connect_queue(&QueueConfig {
        namespace: "bulkpush".into(),
        ..QueueConfig::embedded(&path)
    })
    .await
    .unwrap();

    // 300 approve jobs in one push, plus one of another type.
    let mut jobs: Vec<Job> = (0..300).map(|n| Job::approve(pid(n))).collect();
    jobs.push(Job::complete(pid(1000)));
    queue.push_jobs(jobs).await.unwrap();

    let pool = SqlitePool::connect(&format!("sqlite://{}", path.display()))
        .await
        .unwrap();
    let per_queue: Vec<(String, i64)> =
        sqlx::query_as("SELECT job_type, COUNT(*) FROM Jobs GROUP BY job_type ORDER BY job_type")
            .fetch_all(&pool)
            .await
            .unwrap();
    assert_eq!(
        per_queue,
        vec![
            ("bulkpush:pi-payments:approve".to_string(), 300),
            ("bulkpush:pi-payments:complete".to_string(), 1),
        ]
    );
    let ids: Vec<String> = sqlx::query_scalar("SELECT id FROM Jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    assert!(ids.iter().all(|id| id.len() == 26), "ULID ids: {ids:?}");

    // The same job pushed by apalis-sqlite itself, on another queue name.
    let mut storage = SqliteStorage::<ApproveJob>::new(&pool)
        .with_config(apalis_sqlite::Config::default().queue("apalis-own"));
    storage
        .push(ApproveJob {
            payment_id: pid(5000),
            credential: None,
            request_id: None,
        })
        .await
        .unwrap();
    let theirs = row_of(&pool, &pid(5000)).await;
    let ours = row_of(&pool, &pid(7)).await;
    // The job text differs only by the payment id.
    let ours_job = ours[0]
        .clone()
        .unwrap()
        .replace(pid(7).as_str(), pid(5000).as_str());
    assert_eq!(Some(ours_job), theirs[0]);
    assert_eq!(ours[1..], theirs[1..], "status, attempts, limits, metadata");

    // Run times are "now" in unix seconds, as apalis writes them.
    let run_at: Vec<i64> = sqlx::query_scalar("SELECT DISTINCT run_at FROM Jobs")
        .fetch_all(&pool)
        .await
        .unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(
        run_at.iter().all(|t| (now - 60..=now + 1).contains(t)),
        "{run_at:?}"
    );
}
