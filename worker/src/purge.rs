//! Removes finished jobs from the queue backend, which apalis keeps forever: on Redis every
//! job's data and metadata stay in the queue's hashes, and on SQLite every job stays a row. At
//! thousands of payments a day that is unbounded growth. Only jobs that ended well (`Done`) are
//! removed; killed jobs (gave up, see the ledger's `needs_attention`) stay for inspection.

use crate::backend::{Backend, full_name};
use pi_payments_core::jobs::JobKind;
use std::time::Duration;

/// Redis ids looked at per round trip.
const SCAN_CHUNK: usize = 500;

/// Remove this namespace's jobs that finished well and were enqueued more than `older_than`
/// ago; returns how many.
pub(crate) async fn remove_done(
    backend: &Backend,
    namespace: &str,
    older_than: Duration,
) -> Result<u64, String> {
    let cutoff_ms = chrono::Utc::now()
        .timestamp_millis()
        .saturating_sub(i64::try_from(older_than.as_millis()).unwrap_or(i64::MAX));
    match backend {
        Backend::Sqlite(pool) => {
            let mut removed = 0;
            for kind in JobKind::ALL {
                // done_at is in seconds.
                let done = sqlx::query(
                    "DELETE FROM Jobs WHERE job_type = ?1 AND status = 'Done' AND done_at <= ?2",
                )
                .bind(full_name(namespace, kind.queue_name()))
                .bind(cutoff_ms / 1000)
                .execute(pool)
                .await
                .map_err(|e| e.to_string())?;
                removed += done.rows_affected();
            }
            Ok(removed)
        }
        Backend::Redis(conn) => {
            let mut conn = conn.clone();
            let mut removed = 0;
            for kind in JobKind::ALL {
                let config =
                    apalis_redis::Config::default().queue(full_name(namespace, kind.queue_name()));
                let mut cursor: u64 = 0;
                loop {
                    let (next, ids): (u64, Vec<String>) = redis::cmd("SSCAN")
                        .arg(config.done_jobs_set())
                        .arg(cursor)
                        .arg("COUNT")
                        .arg(SCAN_CHUNK)
                        .query_async(&mut conn)
                        .await
                        .map_err(|e| e.to_string())?;
                    // apalis' ids are ULIDs: their first 48 bits are the enqueue time.
                    let old: Vec<&String> = ids
                        .iter()
                        .filter(|id| ulid_millis(id).is_some_and(|ms| ms <= cutoff_ms))
                        .collect();
                    if !old.is_empty() {
                        let meta: Vec<String> = old
                            .iter()
                            .map(|id| format!("{}:{id}", config.job_meta_hash()))
                            .collect();
                        let mut pipe = redis::pipe();
                        pipe.cmd("SREM")
                            .arg(config.done_jobs_set())
                            .arg(&old)
                            .ignore();
                        pipe.cmd("HDEL")
                            .arg(config.job_data_hash())
                            .arg(&old)
                            .ignore();
                        pipe.cmd("DEL").arg(&meta).ignore();
                        pipe.query_async::<()>(&mut conn)
                            .await
                            .map_err(|e| e.to_string())?;
                        removed += old.len() as u64;
                    }
                    if next == 0 {
                        break;
                    }
                    cursor = next;
                }
            }
            Ok(removed)
        }
    }
}

/// The millisecond timestamp in a ULID's first 10 (Crockford base32) characters.
fn ulid_millis(id: &str) -> Option<i64> {
    const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";
    let head = id.get(..10)?;
    let mut ms: i64 = 0;
    for c in head.bytes() {
        let v = ALPHABET.iter().position(|&a| a == c.to_ascii_uppercase())?;
        ms = ms.checked_mul(32)?.checked_add(v as i64)?;
    }
    Some(ms)
}

#[cfg(test)]
mod tests {
    use crate::purge::ulid_millis;

    #[test]
    fn ulid_time_is_decoded() {
        // ulid(1469918176385) = "01ARYZ6S41…" (the ULID README example).
        assert_eq!(
            ulid_millis("01ARYZ6S41TSV4RRFFQ69G5FAV"),
            Some(1_469_918_176_385)
        );
        assert_eq!(ulid_millis("short"), None);
        assert_eq!(ulid_millis("01ARZ3NDE!TSV4RRFFQ69G5FAV"), None);
    }
}
