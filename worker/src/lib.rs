//! pi-payments-worker: the job side of pi-payments. It owns the job queue (apalis on Redis or an
//! embedded SQLite queue), runs one worker per job type, handles each U2A step against Pi and
//! Horizon through the ledger's state machine, and delivers outbox events to the app's webhook.
//!
//! Wiring (what the binary does):
//!
//! ```text
//! let queue = connect_queue(&QueueConfig { redis_url, sqlite_path, namespace }).await?;
//! // the API gets `queue.clone()` as its `JobQueue`
//! run_workers(WorkerDeps { ledger, pi, horizon, app_wallet, require_order, webhook,
//!                          retry: JobRetry::default(), payouts: None /* or Some(processor) */ },
//!             queue, WorkerConfig { concurrency, ..WorkerConfig::default() },
//!             async { let _ = tokio::signal::ctrl_c().await; }).await?;
//! ```
//!
//! Adding a job type: declare it in core's `jobs.rs` (`declare_job_kinds!`: its payload, queue
//! name and worker name); the lanes, workers, purge and hand-back lists follow from
//! `JobKind::ALL`, and `handler.rs`'s exhaustive match does not compile until it is handled.

mod backend;
mod context;
mod deps;
mod depth;
mod error;
mod handler;
mod housekeeping;
mod lane;
mod payout;
mod purge;
mod queue;
mod runner;
mod schedule;
mod sqlite_push;
mod u2a;
mod wake;
mod webhook;

pub use deps::{JobRetry, WorkerDeps};
pub use error::WorkerError;
pub use queue::{DEFAULT_NAMESPACE, Queue, QueueConfig, connect_queue, delete_redis_namespace};
pub use runner::{
    DEFAULT_CONCURRENCY, WorkerConfig, default_worker_id, run_workers, run_workers_with_schedule,
};
pub use schedule::ScheduleConfig;
pub use webhook::WebhookConfig;
