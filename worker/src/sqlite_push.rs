//! Pushing a batch of jobs into the embedded queue (apalis-sqlite) with ONE statement.
//!
//! apalis-sqlite 1.0 pushes a batch as one INSERT per task inside a transaction. Every
//! statement is a hand-off to SQLite's connection thread and back, so under load the embedded
//! queue spent more time switching threads than writing: it topped out near 24k jobs/s and
//! cost the API a thread hop per accepted callback. This writes the very rows apalis-sqlite's
//! own push writes (its `queries/task/sink.sql`: the JSON codec's bytes, a ULID id, `Pending`,
//! the task builder's defaults for attempts, priority, run time and metadata) with one
//! `INSERT … SELECT` over a JSON array: one hand-off per batch, whatever its size.
//!
//! Each lane pushes on its own connection, outside apalis' pool: sqlx pings a pooled connection
//! every time it is returned (one more hand-off per push), and a connection that only pushes
//! keeps the pages it writes in its cache instead of finding them changed by other connections.
//!
//! The table layout is apalis-sqlite 1.0's, pinned by Cargo.lock; `tests/worker/sqlite_bulk_push.rs`
//! has an apalis worker run what this pushes, so an upgrade that changes it fails there first.

use apalis::prelude::TaskBuilder;
use apalis_sqlite::{SqliteConnectOptions, SqliteConnection, SqlitePool};
use serde::Serialize;
use sqlx::Connection;
use std::time::{SystemTime, UNIX_EPOCH};
use tokio::sync::Mutex;

/// One statement for every batch size (prepared once per connection). `$1`: the queue name;
/// `$2`: a JSON array of `[job JSON, id, max attempts, run at (unix s), priority, metadata
/// JSON, idempotency key or null]`. `WHERE true` lets SQLite parse the upsert after a SELECT.
const PUSH_JOBS: &str = "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, \
     run_at, last_result, lock_at, lock_by, done_at, priority, metadata, idempotency_key) \
     SELECT CAST(j.value ->> 0 AS BLOB), j.value ->> 1, $1, 'Pending', 0, j.value ->> 2, \
       j.value ->> 3, NULL, NULL, NULL, NULL, j.value ->> 4, j.value ->> 5, j.value ->> 6 \
     FROM json_each($2) AS j WHERE true \
     ON CONFLICT (job_type, idempotency_key) DO NOTHING";

/// apalis-sqlite's attempt limit for a task built without one.
const DEFAULT_MAX_ATTEMPTS: usize = 25;

/// One lane's pushing connection: opened on first use with the queue pool's options, reopened
/// after a failed push.
pub(crate) struct SqlitePusher {
    options: SqliteConnectOptions,
    conn: Mutex<Option<SqliteConnection>>,
}

impl SqlitePusher {
    /// A pusher for the queue database `pool` is open on (nothing is opened yet).
    pub(crate) fn new(pool: &SqlitePool) -> SqlitePusher {
        SqlitePusher {
            options: (*pool.connect_options()).clone(),
            conn: Mutex::new(None),
        }
    }

    /// Push `jobs` onto `queue` in one statement (atomic: all or none). The error is readable
    /// text, as the lanes report it.
    pub(crate) async fn push_jobs<J: Serialize>(
        &self,
        queue: &str,
        jobs: &[J],
    ) -> Result<(), String> {
        if jobs.is_empty() {
            return Ok(());
        }
        let rows = encode_rows(jobs)?;
        let mut guard = self.conn.lock().await;
        let conn = match guard.as_mut() {
            Some(conn) => conn,
            None => guard.insert(
                SqliteConnection::connect_with(&self.options)
                    .await
                    .map_err(|e| format!("opening the embedded queue: {e}"))?,
            ),
        };
        let pushed = sqlx::query(PUSH_JOBS)
            .bind(queue)
            .bind(rows)
            .execute(&mut *conn)
            .await;
        if let Err(e) = pushed {
            // A fresh connection next time, whatever state this one is in.
            *guard = None;
            return Err(format!("pushing {} jobs onto {queue}: {e}", jobs.len()));
        }
        Ok(())
    }
}

/// The JSON array [`PUSH_JOBS`] takes for `jobs`.
fn encode_rows<J: Serialize>(jobs: &[J]) -> Result<String, String> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    // What apalis' task builder leaves unset, exactly as apalis-sqlite's push fills it in.
    let defaults = TaskBuilder::new(()).build();
    let max_attempts = defaults.max_attempts().unwrap_or(DEFAULT_MAX_ATTEMPTS);
    let run_at = defaults.run_at().unwrap_or(now);
    let priority = defaults.priority().unwrap_or_default();
    let metadata = serde_json::to_string(defaults.metadata())
        .map_err(|e| format!("encoding a job's metadata: {e}"))?;
    let idempotency_key = defaults.idempotency_key();
    let mut rows = Vec::with_capacity(jobs.len());
    for job in jobs {
        // apalis-sqlite's default codec is JSON (`serde_json::to_vec`); stored as its bytes.
        let args = serde_json::to_string(job).map_err(|e| format!("encoding a job: {e}"))?;
        rows.push(serde_json::json!([
            args,
            ulid::Ulid::generate().to_string(),
            max_attempts,
            run_at,
            priority,
            metadata,
            idempotency_key,
        ]));
    }
    serde_json::to_string(&rows).map_err(|e| format!("encoding jobs: {e}"))
}
