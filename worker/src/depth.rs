//! How many jobs wait in the queue, per kind, read for `/metrics` at scrape time: three cheap
//! reads per kind on Redis (`LLEN` of the active list, two `ZCOUNT`s of the scheduled set, in
//! one pipeline), one indexed `GROUP BY` on the embedded queue.

use crate::backend::{Backend, full_name};
use pi_payments_core::jobs::{JobKind, QueueDepth};
use sqlx::Row;

/// The waiting jobs of every kind in `namespace`, or the backend's error as text.
pub(crate) async fn read(backend: &Backend, namespace: &str) -> Result<Vec<QueueDepth>, String> {
    match backend {
        Backend::Redis(conn) => {
            // apalis-redis puts every pushed job in the scheduled set (scored by its run time in
            // unix seconds) and moves due ones to the active list when a worker polls: due
            // scheduled jobs are ready too.
            let now = chrono::Utc::now().timestamp();
            let mut conn = conn.clone();
            let mut pipe = redis::pipe();
            for kind in JobKind::ALL {
                let config =
                    apalis_redis::Config::default().queue(full_name(namespace, kind.queue_name()));
                let scheduled = config.scheduled_jobs_set();
                pipe.cmd("LLEN").arg(config.active_jobs_list());
                pipe.cmd("ZCOUNT").arg(&scheduled).arg("-inf").arg(now);
                pipe.cmd("ZCOUNT")
                    .arg(&scheduled)
                    .arg(format!("({now}"))
                    .arg("+inf");
            }
            let counts: Vec<u64> = pipe
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
            Ok(JobKind::ALL
                .iter()
                .zip(counts.chunks(3))
                .map(|(&kind, counts)| QueueDepth {
                    kind,
                    ready: counts.iter().take(2).sum(),
                    scheduled: counts.get(2).copied().unwrap_or(0),
                })
                .collect())
        }
        Backend::Sqlite(pool) => {
            // run_at is in unix seconds; the (job_type, status, run_at) index answers this.
            let now = chrono::Utc::now().timestamp();
            let rows = sqlx::query(
                "SELECT job_type, SUM(run_at <= ?1), SUM(run_at > ?1) FROM Jobs \
                 WHERE status = 'Pending' GROUP BY job_type",
            )
            .bind(now)
            .fetch_all(pool)
            .await
            .map_err(|e| e.to_string())?;
            let mut depths: Vec<QueueDepth> = JobKind::ALL
                .iter()
                .map(|&kind| QueueDepth {
                    kind,
                    ready: 0,
                    scheduled: 0,
                })
                .collect();
            for row in rows {
                let queue: String = row.try_get(0).map_err(|e| e.to_string())?;
                let ready: i64 = row.try_get(1).map_err(|e| e.to_string())?;
                let scheduled: i64 = row.try_get(2).map_err(|e| e.to_string())?;
                // Other namespaces (tests sharing a file) are not this queue's.
                if let Some(depth) = depths
                    .iter_mut()
                    .find(|d| full_name(namespace, d.kind.queue_name()) == queue)
                {
                    depth.ready = u64::try_from(ready).unwrap_or(0);
                    depth.scheduled = u64::try_from(scheduled).unwrap_or(0);
                }
            }
            Ok(depths)
        }
    }
}
