//! Which store holds the queue's jobs, and how a queue is named in it.

use apalis_redis::ConnectionManager;
use apalis_sqlite::SqlitePool;

/// Which backend holds the jobs.
#[derive(Clone)]
pub(crate) enum Backend {
    Redis(ConnectionManager),
    Sqlite(SqlitePool),
}

/// The full queue name for a job type under a namespace.
pub(crate) fn full_name(namespace: &str, queue: &str) -> String {
    format!("{namespace}:{queue}")
}
