//! [`HandlerCtx`]: what every job handler gets through apalis' `Data`.

use crate::deps::{JobRetry, WorkerDeps};
use crate::queue::Queue;
use pi_payments_core::u2a::U2aProcessor;
use std::sync::Arc;
use tokio::sync::Notify;

/// What every handler gets through apalis' `Data`.
pub(crate) struct HandlerCtx {
    pub(crate) deps: WorkerDeps,
    pub(crate) retry: JobRetry,
    /// Core's U2A steps, over the same ledger and clients as `deps`.
    pub(crate) u2a: U2aProcessor,
    /// For jobs that enqueue their own next step (payouts).
    pub(crate) queue: Queue,
    /// Wakes the webhook deliverer (a new event may be due).
    pub(crate) webhook_nudge: Arc<Notify>,
}

impl HandlerCtx {
    pub(crate) fn new(deps: WorkerDeps, queue: Queue, webhook_nudge: Arc<Notify>) -> HandlerCtx {
        HandlerCtx {
            retry: deps.retry,
            u2a: U2aProcessor::new(deps.u2a(), deps.retry.max_attempts)
                .with_throttle_backoff(deps.retry.base_delay, deps.retry.max_delay),
            deps,
            queue,
            webhook_nudge,
        }
    }
}
