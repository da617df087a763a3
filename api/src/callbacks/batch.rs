//! Group commit for callbacks. Under load, one ledger transaction and one queue push per
//! callback would cap the API at what SQLite commits (and the embedded queue enqueues) one at
//! a time. Instead every callback goes through a channel to a pipeline of two tasks:
//!
//! 1. the **recorder** takes everything that has accumulated (up to `max_batch`), records it
//!    in ONE ledger transaction ([`Ledger::record_callbacks`]), answers each waiting request,
//!    and hands the batch's jobs on;
//! 2. the **enqueuer** takes every batch of jobs that has accumulated and pushes them with one
//!    `enqueue_many`, so a slow queue makes pushes bigger rather than answers slower.
//!
//! When idle, a lone callback is recorded at once (no timer), so there is no added latency.
//!
//! Guarantees: a request is answered 202 only after the transaction holding its callback
//! committed, so an accepted callback is never lost. The ledger row, not the queue, is the
//! truth: if the process dies between the commit and the push, or the push fails, the
//! sweeper re-enqueues payments stuck in a step. The recorder waits when the enqueuer falls
//! too far behind (bounded channel), so memory stays bounded under a sustained burst.
//! [`CallbackBatcher::flush`] waits until everything submitted before it has been pushed.

use crate::access_log::RequestId;
use crate::error::ApiError;
use pi_payments_core::jobs::{Job, JobQueue};
use pi_payments_core::ledger::{Callback, Ledger, LedgerError, Recorded};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};
use tracing::Instrument;

/// Tuning of the group-commit pipeline.
#[derive(Debug, Clone, Copy)]
pub struct BatchConfig {
    /// Most callbacks recorded in one transaction.
    pub max_batch: usize,
    /// Callbacks that may wait for the recorder before requests wait for room (backpressure).
    pub queue_depth: usize,
    /// How long the enqueuer waits for the queue before answering anyway.
    pub enqueue_timeout: Duration,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_batch: 256,
            queue_depth: 8192,
            enqueue_timeout: Duration::from_secs(5),
        }
    }
}

/// What the request handler gets back.
type Reply = Result<Recorded, ApiError>;

/// What goes through the pipeline, in order.
enum Pending {
    /// One callback waiting for its batch.
    Callback {
        callback: Callback,
        /// The request that sent it: its job carries the id (see [`RequestId`]).
        request_id: Option<RequestId>,
        reply: oneshot::Sender<Reply>,
    },
    /// Answered once everything submitted before it has been pushed to the queue.
    Flush(oneshot::Sender<()>),
}

/// What the recorder hands the enqueuer.
enum ToEnqueue {
    Jobs(Vec<Job>),
    Flush(oneshot::Sender<()>),
}

/// Batches of jobs that may wait for the enqueuer before the recorder waits (backpressure).
const ENQUEUE_BACKLOG: usize = 64;

/// The handle requests use to submit callbacks; cheap to clone.
#[derive(Clone)]
pub struct CallbackBatcher {
    tx: mpsc::Sender<Pending>,
}

impl std::fmt::Debug for CallbackBatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CallbackBatcher").finish_non_exhaustive()
    }
}

impl CallbackBatcher {
    /// Start the pipeline's two tasks (needs a Tokio runtime). They stop when every handle is
    /// dropped, after answering what they hold.
    pub fn spawn(ledger: Ledger, queue: Arc<dyn JobQueue>, config: BatchConfig) -> CallbackBatcher {
        let max_batch = config.max_batch.max(1);
        let (tx, rx) = mpsc::channel::<Pending>(config.queue_depth.max(1));
        let (done_tx, done_rx) = mpsc::channel::<ToEnqueue>(ENQUEUE_BACKLOG);
        tokio::spawn(
            record_loop(ledger, rx, done_tx, max_batch)
                .instrument(tracing::info_span!("callback_recorder")),
        );
        tokio::spawn(
            enqueue_loop(queue, done_rx, config.enqueue_timeout)
                .instrument(tracing::info_span!("callback_enqueuer")),
        );
        CallbackBatcher { tx }
    }

    /// Record `callback` (in some batch) and return what the ledger did, once committed. Its
    /// job, if any, is pushed right after by the enqueuer.
    pub async fn submit(&self, callback: Callback) -> Reply {
        self.submit_for_request(callback, None).await
    }

    /// [`submit`](Self::submit) for the request `request_id`: the job the callback causes
    /// carries the id, so that the worker's log lines for it can be joined to the request's.
    pub async fn submit_for_request(
        &self,
        callback: Callback,
        request_id: Option<RequestId>,
    ) -> Reply {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Pending::Callback {
                callback,
                request_id,
                reply,
            })
            .await
            .map_err(|_| stopped())?;
        rx.await.map_err(|_| stopped())?
    }

    /// Wait until every callback submitted before this call is recorded and its job pushed
    /// (or the push given up on). For tests and for a clean shutdown.
    pub async fn flush(&self) {
        let (done, wait) = oneshot::channel();
        if self.tx.send(Pending::Flush(done)).await.is_ok() {
            let _ = wait.await;
        }
    }
}

fn stopped() -> ApiError {
    ApiError::unavailable(
        "shutting_down",
        "the service is shutting down and no longer records callbacks; the Pi SDK will retry",
    )
}

async fn record_loop(
    ledger: Ledger,
    mut rx: mpsc::Receiver<Pending>,
    done: mpsc::Sender<ToEnqueue>,
    max_batch: usize,
) {
    let mut batch: Vec<Pending> = Vec::with_capacity(max_batch);
    loop {
        // Wait for the first, then take whatever else is already waiting.
        if rx.recv_many(&mut batch, max_batch).await == 0 {
            break;
        }
        let mut callbacks = Vec::with_capacity(batch.len());
        let mut waiters = Vec::with_capacity(batch.len());
        let mut request_ids = Vec::with_capacity(batch.len());
        let mut flushes = Vec::new();
        for pending in batch.drain(..) {
            match pending {
                Pending::Callback {
                    callback,
                    request_id,
                    reply,
                } => {
                    callbacks.push(callback);
                    request_ids.push(request_id);
                    waiters.push(reply);
                }
                Pending::Flush(done) => flushes.push(done),
            }
        }
        let jobs = record_and_answer(&ledger, callbacks, request_ids, waiters).await;
        // The flushes of this round come after its jobs, so they see them pushed.
        let messages =
            std::iter::once(ToEnqueue::Jobs(jobs)).chain(flushes.into_iter().map(ToEnqueue::Flush));
        for message in messages {
            if done.send(message).await.is_err() {
                // The enqueuer only stops when we do; recorded rows are the sweeper's.
                tracing::error!(
                    "callback enqueuer stopped; the sweeper will enqueue what was recorded"
                );
                return;
            }
        }
    }
}

/// Record one batch, answer its requests, and return the jobs to push (each marked with the
/// id of the request that caused it, when there is one).
async fn record_and_answer(
    ledger: &Ledger,
    callbacks: Vec<Callback>,
    request_ids: Vec<Option<RequestId>>,
    waiters: Vec<oneshot::Sender<Reply>>,
) -> Vec<Job> {
    let mut jobs = Vec::new();
    if callbacks.is_empty() {
        return jobs;
    }
    let size = callbacks.len();
    let results = ledger.record_callbacks(callbacks).await;
    if results.len() != size {
        tracing::error!(
            sent = size,
            got = results.len(),
            "ledger answered a batch with the wrong number of results"
        );
        for waiter in waiters {
            let _ = waiter.send(Err(ApiError::Internal));
        }
        return jobs;
    }
    for ((waiter, result), request_id) in waiters.into_iter().zip(results).zip(request_ids) {
        let reply = match result {
            Ok(recorded) => {
                jobs.extend(recorded.job.clone().map(|job| match &request_id {
                    Some(id) => job.with_request_id(id.as_str()),
                    None => job,
                }));
                Ok(recorded)
            }
            Err(err) => Err(refusal(err)),
        };
        // The request may have gone (client disconnected): the callback is stored anyway.
        let _ = waiter.send(reply);
    }
    tracing::debug!(batch = size, jobs = jobs.len(), "callbacks recorded");
    jobs
}

/// A callback the ledger refused or could not store (the others of its batch are unaffected).
/// Storage failures are logged by the conversion; refusals are the client's business.
fn refusal(err: LedgerError) -> ApiError {
    let err = ApiError::from(err);
    if err.status().is_client_error() {
        tracing::info!(error = %err, "callback refused by the ledger");
    }
    err
}

async fn enqueue_loop(
    queue: Arc<dyn JobQueue>,
    mut rx: mpsc::Receiver<ToEnqueue>,
    timeout: Duration,
) {
    let mut inbox = Vec::with_capacity(ENQUEUE_BACKLOG);
    while rx.recv_many(&mut inbox, ENQUEUE_BACKLOG).await > 0 {
        let mut jobs = Vec::new();
        let mut flushes = Vec::new();
        for message in inbox.drain(..) {
            match message {
                ToEnqueue::Jobs(batch) => jobs.extend(batch),
                ToEnqueue::Flush(done) => flushes.push(done),
            }
        }
        if !jobs.is_empty() {
            push(queue.as_ref(), jobs, timeout).await;
        }
        for done in flushes {
            let _ = done.send(());
        }
    }
}

async fn push(queue: &dyn JobQueue, jobs: Vec<Job>, timeout: Duration) {
    let count = jobs.len();
    match tokio::time::timeout(timeout, queue.enqueue_many(jobs)).await {
        Ok(Ok(())) => {}
        Ok(Err(err)) => tracing::error!(
            error = %err, jobs = count,
            "enqueueing recorded callbacks failed; they are stored and the sweeper will re-enqueue them"
        ),
        Err(_) => tracing::error!(
            jobs = count,
            timeout_ms = timeout.as_millis() as u64,
            "enqueueing recorded callbacks timed out; they are stored and the sweeper will re-enqueue them"
        ),
    }
}
