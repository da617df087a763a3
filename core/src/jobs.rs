//! Job payloads and the enqueue abstraction.
//!
//! Payloads carry ONLY ids: tokens and secrets stay in the ledger (or the process config), so a
//! queue dump (Redis, the SQLite queue file) never leaks them. Every job re-reads the ledger and
//! must be safe to run twice, because queues deliver at least once.
//!
//! The API enqueues through [`JobQueue`] without depending on apalis; the worker crate implements
//! it over apalis storages, and [`RecordingQueue`] serves tests.

use crate::ids::{PaymentId, PayoutId};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Queue names, fixed so that moving a type does not orphan queued jobs (apalis would otherwise
/// name queues after the Rust type).
pub mod queue_names {
    /// [`super::ApproveJob`].
    pub const APPROVE: &str = "pi-payments:approve";
    /// [`super::CompleteJob`].
    pub const COMPLETE: &str = "pi-payments:complete";
    /// [`super::CancelJob`].
    pub const CANCEL: &str = "pi-payments:cancel";
    /// [`super::RecordErrorJob`].
    pub const RECORD_ERROR: &str = "pi-payments:record-error";
    /// [`super::IncompleteJob`].
    pub const INCOMPLETE: &str = "pi-payments:incomplete";
    /// [`super::DeliverEventJob`].
    pub const DELIVER_EVENT: &str = "pi-payments:deliver-event";
    /// [`super::PayoutJob`].
    pub const PAYOUT: &str = "pi-payments:payout";
}

/// Verify the Pioneer and the payment at Pi, then approve or refuse (cancel) it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApproveJob {
    pub payment_id: PaymentId,
}

/// Verify the stored txid on chain, then `POST /complete`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompleteJob {
    pub payment_id: PaymentId,
}

/// The Pioneer cancelled: re-read the payment at Pi and record what Pi says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CancelJob {
    pub payment_id: PaymentId,
}

/// The frontend reported an error: re-read the payment at Pi and record what Pi says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordErrorJob {
    pub payment_id: PaymentId,
}

/// An incomplete payment without a txid: re-read it; cancel an approved one with no tx.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncompleteJob {
    pub payment_id: PaymentId,
}

/// Deliver one outbox event (by its id) to the app's webhook.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DeliverEventJob {
    pub event_id: i64,
}

/// Advance one A2U payout by one `PayoutProcessor::step` (it resumes from the stored step; the
/// outcome says whether to run again at once, later, or never).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayoutJob {
    pub payout_id: PayoutId,
}

/// Any job the API or the ledger may ask for.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Job {
    Approve(ApproveJob),
    Complete(CompleteJob),
    Cancel(CancelJob),
    RecordError(RecordErrorJob),
    Incomplete(IncompleteJob),
    DeliverEvent(DeliverEventJob),
    Payout(PayoutJob),
}

impl Job {
    /// The queue this job goes to.
    pub fn queue_name(&self) -> &'static str {
        match self {
            Job::Approve(_) => queue_names::APPROVE,
            Job::Complete(_) => queue_names::COMPLETE,
            Job::Cancel(_) => queue_names::CANCEL,
            Job::RecordError(_) => queue_names::RECORD_ERROR,
            Job::Incomplete(_) => queue_names::INCOMPLETE,
            Job::DeliverEvent(_) => queue_names::DELIVER_EVENT,
            Job::Payout(_) => queue_names::PAYOUT,
        }
    }

    /// The payment this job is about, if it is about one (for tracing spans).
    pub fn payment_id(&self) -> Option<&PaymentId> {
        match self {
            Job::Approve(j) => Some(&j.payment_id),
            Job::Complete(j) => Some(&j.payment_id),
            Job::Cancel(j) => Some(&j.payment_id),
            Job::RecordError(j) => Some(&j.payment_id),
            Job::Incomplete(j) => Some(&j.payment_id),
            Job::DeliverEvent(_) | Job::Payout(_) => None,
        }
    }

    /// The payout this job is about, if it is about one (for tracing spans).
    pub fn payout_id(&self) -> Option<&PayoutId> {
        match self {
            Job::Payout(j) => Some(&j.payout_id),
            _ => None,
        }
    }

    /// See [`PayoutJob`].
    pub fn payout(payout_id: PayoutId) -> Job {
        Job::Payout(PayoutJob { payout_id })
    }

    /// Shorthand constructors used by the ledger.
    pub fn approve(payment_id: PaymentId) -> Job {
        Job::Approve(ApproveJob { payment_id })
    }
    /// See [`CompleteJob`].
    pub fn complete(payment_id: PaymentId) -> Job {
        Job::Complete(CompleteJob { payment_id })
    }
    /// See [`CancelJob`].
    pub fn cancel(payment_id: PaymentId) -> Job {
        Job::Cancel(CancelJob { payment_id })
    }
    /// See [`RecordErrorJob`].
    pub fn record_error(payment_id: PaymentId) -> Job {
        Job::RecordError(RecordErrorJob { payment_id })
    }
    /// See [`IncompleteJob`].
    pub fn incomplete(payment_id: PaymentId) -> Job {
        Job::Incomplete(IncompleteJob { payment_id })
    }
}

/// Why a job could not be enqueued.
#[derive(Debug, thiserror::Error)]
pub enum QueueError {
    #[error(
        "the job queue is unreachable ({0}): check REDIS_URL or the queue database file; the sweeper re-enqueues stuck payments once it is back"
    )]
    Unavailable(String),
    #[error("the job could not be encoded for the queue: {0}")]
    Encode(String),
}

/// A boxed, sendable future (what [`JobQueue`] methods return, so the trait stays object-safe
/// without `async-trait`).
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// Where the API puts jobs. Implemented by the worker crate over apalis storages.
pub trait JobQueue: Send + Sync {
    /// Enqueue one job.
    fn enqueue(&self, job: Job) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Enqueue many jobs at once (bulk pushes are far faster on every backend).
    fn enqueue_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<(), QueueError>>;
    /// Whether the queue is reachable (for `/readyz`).
    fn ping(&self) -> BoxFuture<'_, Result<(), QueueError>>;
}

/// An in-memory [`JobQueue`] that records what was enqueued: for tests.
#[derive(Clone, Debug, Default)]
pub struct RecordingQueue {
    jobs: Arc<Mutex<Vec<Job>>>,
    failing: Arc<Mutex<bool>>,
}

impl RecordingQueue {
    /// An empty queue.
    pub fn new() -> RecordingQueue {
        RecordingQueue::default()
    }

    /// Every job enqueued so far, in order.
    pub fn jobs(&self) -> Vec<Job> {
        self.jobs.lock().map(|j| j.clone()).unwrap_or_default()
    }

    /// Remove and return every job enqueued so far.
    pub fn take(&self) -> Vec<Job> {
        self.jobs
            .lock()
            .map(|mut j| std::mem::take(&mut *j))
            .unwrap_or_default()
    }

    /// Make every later call fail with [`QueueError::Unavailable`] (or succeed again).
    pub fn set_failing(&self, failing: bool) {
        if let Ok(mut f) = self.failing.lock() {
            *f = failing;
        }
    }

    fn check(&self) -> Result<(), QueueError> {
        match self.failing.lock() {
            Ok(f) if *f => Err(QueueError::Unavailable("RecordingQueue set to fail".into())),
            _ => Ok(()),
        }
    }
}

impl JobQueue for RecordingQueue {
    fn enqueue(&self, job: Job) -> BoxFuture<'_, Result<(), QueueError>> {
        self.enqueue_many(vec![job])
    }

    fn enqueue_many(&self, jobs: Vec<Job>) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move {
            self.check()?;
            if let Ok(mut all) = self.jobs.lock() {
                all.extend(jobs);
            }
            Ok(())
        })
    }

    fn ping(&self) -> BoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { self.check() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pid() -> PaymentId {
        PaymentId::parse("abc123").unwrap()
    }

    #[test]
    fn payloads_carry_only_ids() {
        let json = serde_json::to_value(Job::approve(pid())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "approve", "payment_id": "abc123"})
        );
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back, Job::approve(pid()));
        let plain = serde_json::to_value(CompleteJob { payment_id: pid() }).unwrap();
        assert_eq!(plain, serde_json::json!({"payment_id": "abc123"}));
    }

    #[test]
    fn payout_jobs_carry_only_the_payout_id() {
        let id = PayoutId::generate();
        let json = serde_json::to_value(Job::payout(id.clone())).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "payout", "payout_id": id.as_str()})
        );
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back.payout_id(), Some(&id));
        assert_eq!(back.queue_name(), "pi-payments:payout");
    }

    #[test]
    fn queue_names_are_explicit_and_distinct() {
        let jobs = [
            Job::approve(pid()),
            Job::complete(pid()),
            Job::cancel(pid()),
            Job::record_error(pid()),
            Job::incomplete(pid()),
            Job::DeliverEvent(DeliverEventJob { event_id: 1 }),
            Job::payout(PayoutId::generate()),
        ];
        let mut names: Vec<_> = jobs.iter().map(Job::queue_name).collect();
        assert!(names.iter().all(|n| n.starts_with("pi-payments:")));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), jobs.len());
    }

    #[tokio::test]
    async fn recording_queue_records_and_fails_on_demand() {
        let q = RecordingQueue::new();
        q.enqueue(Job::approve(pid())).await.unwrap();
        q.enqueue_many(vec![Job::complete(pid()), Job::cancel(pid())])
            .await
            .unwrap();
        assert_eq!(q.jobs().len(), 3);
        q.set_failing(true);
        assert!(q.ping().await.is_err());
        assert!(q.enqueue(Job::approve(pid())).await.is_err());
        assert_eq!(q.take().len(), 3);
        assert!(q.jobs().is_empty());
    }
}
