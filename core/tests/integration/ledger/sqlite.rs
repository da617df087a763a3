//! What only SQLite does: its failed-batch recovery, WAL mode, in-memory ledgers, the URL
//! check, and the upgrade of a ledger from before payment numbers.

use super::u2a_scenarios;
use crate::support::ledger::{pid, sqlite, temp_dir};
use pi_payments_core::ledger::Ledger;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_leaves_nothing_and_the_next_one_works() {
    use pi_payments_core::ledger::Callback;
    let (ledger, cleanup) = sqlite().await;
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
        credential: pi_payments_core::jobs::ApproveCredential::Missing,
    };
    let results = ledger
        .record_callbacks((0..10).map(approve).collect())
        .await;
    // Recorded again one by one: the refused payment fails alone, the others are stored once.
    u2a_scenarios::assert_refused_alone_others_once(&ledger, &results, 7).await;
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
    let (ledger, cleanup) = sqlite().await;
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
    u2a_scenarios::callback_idempotency(&ledger).await;
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
    use sqlx::migrate::Migrator;
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePool};
    use u2a_scenarios::pid;

    let dir = temp_dir("pp-ledger-0005");
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

/// With one long read transaction open, the WAL grew to 699 MB and never shrank: once the
/// reader ends, the background checkpoint and the next write bring it back to its limit.
/// Prints the sizes it saw (BENCHMARKS.md).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wal_shrinks_back_once_a_long_reader_ends() {
    use pi_payments_core::ledger::WAL_SIZE_LIMIT;
    use sqlx::Connection;
    use std::time::{Duration, Instant};
    let dir = temp_dir("pp-wal-limit");
    let file = dir.join("ledger.db");
    let url = format!("sqlite://{}", file.display());
    let ledger = Ledger::connect(&url).await.unwrap();
    ledger.spawn_checkpointer();
    let wal = dir.join("ledger.db-wal");
    let wal_size = || std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
    sqlx::query("CREATE TABLE filler (v BLOB)")
        .execute(ledger.pool())
        .await
        .unwrap();

    // A reader that holds its snapshot (as a long report or backup would).
    let mut reader = sqlx::SqliteConnection::connect(&format!("{url}?mode=ro"))
        .await
        .unwrap();
    sqlx::query("BEGIN").execute(&mut reader).await.unwrap();
    let _: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM payments")
        .fetch_one(&mut reader)
        .await
        .unwrap();
    // Write more than the limit meanwhile: the WAL cannot start over, it grows.
    let mib = 1024 * 1024;
    let rows = WAL_SIZE_LIMIT / mib + 32;
    for _ in 0..rows {
        sqlx::query("INSERT INTO filler VALUES (zeroblob(1048576))")
            .execute(ledger.pool())
            .await
            .unwrap();
    }
    let grown = wal_size();
    assert!(
        grown > WAL_SIZE_LIMIT,
        "the WAL did not grow: {grown} bytes"
    );

    sqlx::query("COMMIT").execute(&mut reader).await.unwrap();
    reader.close().await.unwrap();
    sqlx::query("DELETE FROM filler")
        .execute(ledger.pool())
        .await
        .unwrap();
    // Generous: a checkpoint runs every 100 ms; each small write may start the WAL over.
    let started = Instant::now();
    while wal_size() > WAL_SIZE_LIMIT {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the WAL stayed at {} bytes (limit {WAL_SIZE_LIMIT}) after the reader ended",
            wal_size()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
        ledger.record_approve_callback(&pid(1), None).await.unwrap();
    }
    println!(
        "WAL: {} MiB with a reader open, {} MiB after it ended (limit {} MiB), {:.1} s later",
        grown / mib,
        wal_size() / mib,
        WAL_SIZE_LIMIT / mib,
        started.elapsed().as_secs_f64()
    );
    ledger.close().await;
    let _ = std::fs::remove_dir_all(&dir);
}
