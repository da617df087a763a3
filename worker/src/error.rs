//! The one error type of the worker crate: what can stop the queue or the workers from running.
//! Job-level failures never surface here: they end in the ledger (`needs_attention`) instead.

/// Why the queue could not be reached or the workers could not run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Redis was unreachable or answered with an error.
    #[error("Redis queue error: {0} (check REDIS_URL and that Redis is running)")]
    Redis(#[from] apalis_redis::RedisError),

    /// The embedded SQLite queue database could not be opened or written.
    #[error(
        "embedded queue database error: {0} (check that the queue file's directory is writable)"
    )]
    Sqlite(#[from] sqlx::Error),

    /// The embedded queue's schema could not be created.
    #[error(
        "embedded queue setup failed: {0} (delete the queue file if it is from an incompatible version)"
    )]
    SqliteSetup(#[from] apalis_sqlite::Error),

    /// A push into the queue failed.
    #[error(
        "could not enqueue the job: {0} (the queue backend is unreachable; retry, the callback is recorded)"
    )]
    Push(String),

    /// The queue backend failed an operation other than a push.
    #[error("queue backend error: {0} (check that Redis or the queue file is reachable)")]
    Backend(String),

    /// The in-process enqueue batcher is gone (the queue was shut down).
    #[error("the job queue is shut down; restart the service")]
    Closed,

    /// The worker monitor stopped with an error.
    #[error("the job workers stopped: {0}")]
    Monitor(String),

    /// The configuration cannot work (reported at start, before anything runs).
    #[error("invalid worker configuration: {0}")]
    Config(String),
}
