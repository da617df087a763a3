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
//! Adding a job type (payouts, the sweeper): a lane in `queue.rs` (`Queue::push_jobs` matches
//! on core's `Job`), a wake signal, a line in `runner.rs`'s `register_all!`, and its handler.

mod error;
mod housekeeping;
mod payout;
mod queue;
mod runner;
mod schedule;
mod sqlite_push;
mod u2a;
mod wake;
mod webhook;

pub use error::WorkerError;
pub use queue::{DEFAULT_NAMESPACE, Queue, QueueConfig, connect_queue, delete_redis_namespace};
pub use runner::{
    DEFAULT_CONCURRENCY, WorkerConfig, WorkerDeps, default_worker_id, run_workers,
    run_workers_with_schedule,
};
pub use schedule::ScheduleConfig;
pub use u2a::JobRetry;
pub use webhook::WebhookConfig;
