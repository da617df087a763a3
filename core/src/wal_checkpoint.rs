//! Background WAL checkpoints for SQLite files in WAL mode (the ledger and the embedded queue).
//!
//! Without them, SQLite checkpoints inside whichever commit crosses `wal_autocheckpoint`, so a
//! writer now and then stalls copying thousands of pages. A PASSIVE checkpoint from the side
//! never blocks writers. Often enough that the WAL never reaches the writers' own
//! autocheckpoint under load (see [`EVERY`]); a tick with nothing new to copy costs one query.

use sqlx::{Database, Executor, Pool};
use std::time::Duration;

/// How often a checkpoint runs. Measured on the 2-core VM (BENCHMARKS.md, 2026-12-04, with
/// both the ledger and the queue checkpointed from the side): every 100 ms, 22–23k callbacks/s
/// at 32 connections with the worst answer at 17–51 ms; every second, 21–22k/s with every
/// connection stalled for 40–170 ms about every 0.6 s, because at that write rate the WAL
/// reached the writers' 128 MiB autocheckpoint between two ticks. (On 2026-12-03, 100 ms looked
/// worse, but that run still had the queue checkpointing inside its writers' commits.) A crash
/// loses nothing either way: the WAL is the durable copy.
pub const EVERY: Duration = Duration::from_millis(100);

/// Checkpoint the database behind `pool` every [`EVERY`] until the pool is closed. `what`
/// names the database in the warning logged when a checkpoint fails (the next tick retries).
pub fn spawn<DB>(pool: Pool<DB>, what: &'static str)
where
    DB: Database,
    for<'c> &'c mut DB::Connection: Executor<'c, Database = DB>,
{
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        while !pool.is_closed() {
            tick.tick().await;
            if let Err(err) = pool.execute("PRAGMA wal_checkpoint(PASSIVE)").await {
                if pool.is_closed() {
                    break;
                }
                tracing::warn!(error = %err, database = what, "WAL checkpoint failed; retrying on the next tick");
            }
        }
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions};

    /// Pages written to the WAL reach the database file without any writer checkpointing.
    #[tokio::test]
    async fn checkpoints_copy_the_wal_into_the_file() {
        let dir = std::env::temp_dir().join(format!("pp-wal-{}", crate::ids::random_alnum(10)));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("db.sqlite");
        let options = SqliteConnectOptions::new()
            .filename(&file)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .pragma("wal_autocheckpoint", "0");
        let pool = SqlitePoolOptions::new()
            .max_connections(2)
            .connect_with(options)
            .await
            .unwrap();
        pool.execute("CREATE TABLE t (v BLOB)").await.unwrap();
        for _ in 0..50 {
            pool.execute("INSERT INTO t VALUES (zeroblob(4000))")
                .await
                .unwrap();
        }
        let before = std::fs::metadata(&file).unwrap().len();
        spawn(pool.clone(), "test");
        tokio::time::sleep(EVERY + Duration::from_millis(500)).await;
        let after = std::fs::metadata(&file).unwrap().len();
        assert!(
            after >= before + 50 * 4000,
            "database file {before} → {after} bytes"
        );
        pool.close().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
