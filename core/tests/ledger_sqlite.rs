//! The ledger scenarios on SQLite, each in its own fresh database file.

mod ledger_common;

use pi_payments_core::ledger::{DbKind, Ledger};
use std::path::PathBuf;

struct Cleanup {
    dir: PathBuf,
}

impl Cleanup {
    async fn done(self, ledger: Ledger) {
        ledger.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup() -> Option<(Ledger, Cleanup)> {
    let dir = std::env::temp_dir().join(format!(
        "pp-ledger-test-{}",
        pi_payments_core::ids::random_alnum(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // The file does not exist yet: connect must create it.
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    let ledger = Ledger::connect(&url).await.unwrap();
    assert_eq!(ledger.kind(), DbKind::Sqlite);
    Some((ledger, Cleanup { dir }))
}

ledger_scenarios!(
    migrations_are_idempotent,
    callback_idempotency,
    incomplete_rearms_after_a_while,
    full_lifecycle,
    refusal_and_attention_paths,
    conflicting_txid_refused,
    concurrent_apply_has_one_winner,
    uniqueness_is_enforced_by_the_database,
    batch_recording,
    amounts_are_exact,
    concurrent_batches_enqueue_once,
    batched_first_approvals_match_single_recording,
    payments_are_numbered_and_their_rows_follow,
    repeated_callbacks_of_an_idle_row_reenqueue_once,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_nothing_and_the_next_one_works() {
    use ledger_common::pid;
    use pi_payments_core::ledger::Callback;
    let (ledger, cleanup) = setup().await.unwrap();
    // Make one payment's history line fail to insert, half-way through the batch statement.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON payment_events WHEN NEW.payment_id = '{}' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END",
        pid(7)
    )))
    .execute(ledger.pool())
    .await
    .unwrap();
    let approve = |n: u32| Callback::Approve {
        payment_id: pid(n),
        access_token: None,
    };
    let results = ledger
        .record_callbacks((0..10).map(approve).collect())
        .await;
    // Recorded again one by one: the refused payment fails alone, the others are stored once.
    ledger_common::assert_refused_alone_others_once(&ledger, &results, 7).await;
    // No transaction was left open: the next batch (and a plain write) go through.
    let next = ledger
        .record_callbacks((20..30).map(approve).collect())
        .await;
    assert!(next.iter().all(|r| r.as_ref().is_ok_and(|r| r.created)));
    ledger
        .record_approve_callback(&pid(40), None)
        .await
        .unwrap();
    cleanup.done(ledger).await;
}

#[tokio::test]
async fn sqlite_runs_in_wal_mode() {
    let (ledger, cleanup) = setup().await.unwrap();
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(ledger.pool())
        .await
        .unwrap();
    assert_eq!(mode.to_lowercase(), "wal");
    cleanup.done(ledger).await;
}

#[tokio::test]
async fn in_memory_works_for_quick_tools() {
    let ledger = Ledger::connect("sqlite::memory:").await.unwrap();
    ledger_common::callback_idempotency(&ledger).await;
}

#[tokio::test]
async fn unsupported_urls_are_refused_readably() {
    let err = Ledger::connect("mysql://root:hunter2@localhost/db")
        .await
        .unwrap_err();
    let text = err.to_string();
    assert!(
        text.contains("sqlite://") && !text.contains("hunter2"),
        "{text}"
    );
}

/// A ledger written before payments were numbered (migrations 0001–0004) keeps its history
/// and its callback counters when 0005 moves them onto payment numbers.
#[tokio::test]
async fn a_ledger_from_before_payment_numbers_keeps_its_history_and_counters() {
    use ledger_common::pid;
    use sqlx::migrate::Migrator;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};

    let dir = std::env::temp_dir().join(format!(
        "pp-ledger-0005-{}",
        pi_payments_core::ids::random_alnum(12)
    ));
    let old_migrations = dir.join("migrations");
    std::fs::create_dir_all(&old_migrations).unwrap();
    let all = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../migrations/sqlite");
    for entry in std::fs::read_dir(&all).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        if name.as_str() < "0005" {
            std::fs::copy(&path, old_migrations.join(&name)).unwrap();
        }
    }
    let file = dir.join("ledger.db");
    let pool = SqlitePool::connect_with(
        SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true),
    )
    .await
    .unwrap();
    Migrator::new(old_migrations.as_path())
        .await
        .unwrap()
        .run(&pool)
        .await
        .unwrap();
    let (old, other) = (pid(7000), pid(7001));
    // Recorded just before the upgrade (a payment idle past STUCK_AFTER would be re-armed).
    let just_now = pi_payments_core::ledger::now_ms();
    for id in [&old, &other] {
        sqlx::query(
            "INSERT INTO payments (id, direction, state, attempts, created_at, updated_at) \
             VALUES ($1, 'user_to_app', 'received', 0, $2, $2)",
        )
        .bind(id.as_str())
        .bind(just_now)
        .execute(&pool)
        .await
        .unwrap();
        sqlx::query(
            "INSERT INTO payment_events (payment_id, from_state, to_state, cause, attempt, at) \
             VALUES ($1, NULL, 'received', 'approve_callback', 0, 1), \
                    ($1, 'received', 'received', 'cancel_callback', 0, 2)",
        )
        .bind(id.as_str())
        .execute(&pool)
        .await
        .unwrap();
    }
    sqlx::query(
        "INSERT INTO payment_callbacks (payment_id, step, first_at, last_at, count, armed_count, armed_at) \
         VALUES ($1, 'approve', $2, $2, 1, 1, $2)",
    )
    .bind(old.as_str())
    .bind(just_now)
    .execute(&pool)
    .await
    .unwrap();
    pool.close().await;

    let ledger = Ledger::connect(&format!("sqlite://{}", file.display()))
        .await
        .unwrap();
    for id in [&old, &other] {
        let history = ledger.payment_events(id).await.unwrap();
        assert_eq!(history.len(), 2, "history of {id}");
    }
    // The approve already counted before the upgrade: a repeat enqueues nothing...
    assert_eq!(
        ledger
            .record_approve_callback(&old, None)
            .await
            .unwrap()
            .job,
        None
    );
    // ...while the first approve of the other payment still does.
    assert!(
        ledger
            .record_approve_callback(&other, None)
            .await
            .unwrap()
            .job
            .is_some()
    );
    // New payments are numbered after the old ones.
    let new = pid(7002);
    ledger.record_approve_callback(&new, None).await.unwrap();
    let seqs: Vec<i64> = sqlx::query_scalar("SELECT seq FROM payments ORDER BY seq")
        .fetch_all(ledger.pool())
        .await
        .unwrap();
    assert_eq!(seqs, vec![1, 2, 3]);
    assert_eq!(ledger.payment_events(&new).await.unwrap().len(), 1);
    ledger.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
