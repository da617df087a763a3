//! Job payloads and the enqueue abstraction.
//!
//! Payloads carry ids, and one thing more: an approve job made by an approve callback carries
//! that callback's [`ApproveCredential`] (the Pioneer's access token, or a signed-in session's
//! uid). Access tokens are never stored at rest in the ledger, so the job is where the token
//! lives until it is verified, and it is gone with the job. Every other secret stays in the
//! process config. Every job re-reads the ledger and must be safe to run twice, because queues
//! deliver at least once.
//!
//! The API enqueues through [`JobQueue`] without depending on apalis; the worker crate implements
//! it over apalis storages, and [`RecordingQueue`] serves tests.

use crate::ids::{PaymentId, PayoutId, Txid, Uid};
use crate::secret::AccessToken;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};

/// Declares every job kind once: its variant of [`Job`] and [`JobKind`], its payload type and
/// its queue name. Everything that lists job kinds (the worker's lanes, its workers, the purge
/// and hand-back lists) follows from [`JobKind::ALL`] and exhaustive matches, so a kind added
/// here cannot be forgotten there.
macro_rules! declare_job_kinds {
    ($(
        $(#[$doc:meta])*
        $kind:ident($payload:ident) => $queue:literal, $name:literal;
    )*) => {
        /// Any job the API, the ledger or the reconciler may ask for.
        #[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
        #[serde(tag = "kind", rename_all = "snake_case")]
        pub enum Job {
            $( $(#[$doc])* $kind($payload), )*
        }

        /// The kinds of [`Job`], one queue (and one worker per process) each.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum JobKind {
            $( $(#[$doc])* $kind, )*
        }

        impl JobKind {
            /// Every kind, in declaration order (`ALL[k.index()] == k`).
            pub const ALL: &'static [JobKind] = &[$( JobKind::$kind, )*];

            /// The queue this kind's jobs go to. Fixed strings, so that moving or renaming a
            /// type does not orphan queued jobs (apalis would otherwise name queues after the
            /// Rust type).
            pub fn queue_name(self) -> &'static str {
                match self {
                    $( JobKind::$kind => $queue, )*
                }
            }

            /// The kind's short name: the suffix of its worker's name (`{worker_id}-{name}`).
            pub fn name(self) -> &'static str {
                match self {
                    $( JobKind::$kind => $name, )*
                }
            }

            /// This kind's position in [`JobKind::ALL`] (for per-kind tables).
            pub fn index(self) -> usize {
                self as usize
            }

            /// Call `visitor` with this kind's payload type (for code generic over payloads,
            /// such as one typed queue storage per kind).
            pub fn visit<V: JobKindVisitor>(self, visitor: V) -> V::Output {
                match self {
                    $( JobKind::$kind => visitor.visit::<$payload>(), )*
                }
            }
        }

        impl Job {
            /// This job's kind.
            pub fn kind(&self) -> JobKind {
                match self {
                    $( Job::$kind(_) => JobKind::$kind, )*
                }
            }
        }

        $(
            impl JobPayload for $payload {
                const KIND: JobKind = JobKind::$kind;

                fn from_job(job: Job) -> Option<$payload> {
                    match job {
                        Job::$kind(payload) => Some(payload),
                        _ => None,
                    }
                }
            }

            impl From<$payload> for Job {
                fn from(payload: $payload) -> Job {
                    Job::$kind(payload)
                }
            }
        )*
    };
}

declare_job_kinds! {
    /// Verify the Pioneer and the payment at Pi, then approve or refuse it.
    Approve(ApproveJob) => "pi-payments:approve", "approve";
    /// Verify the stored txid on chain, then complete the payment at Pi.
    Complete(CompleteJob) => "pi-payments:complete", "complete";
    /// The Pioneer cancelled: record what Pi says.
    Cancel(CancelJob) => "pi-payments:cancel", "cancel";
    /// The frontend reported an error: record what Pi says.
    RecordError(RecordErrorJob) => "pi-payments:record-error", "record-error";
    /// An incomplete payment reported at sign-in.
    Incomplete(IncompleteJob) => "pi-payments:incomplete", "incomplete";
    /// One step of one A2U payout.
    Payout(PayoutJob) => "pi-payments:payout", "payout";
}

/// A job payload type: the one [`JobKind`] it belongs to. Implemented for every payload by
/// the kind declaration above; the bounds are what a queue needs to store and read it back.
pub trait JobPayload:
    Clone
    + std::fmt::Debug
    + serde::Serialize
    + serde::de::DeserializeOwned
    + Into<Job>
    + Send
    + Sync
    + Unpin
    + 'static
{
    /// The kind of job this payload is.
    const KIND: JobKind;

    /// The payload of `job`, if `job` is of this kind.
    fn from_job(job: Job) -> Option<Self>;
}

/// A job kind name that is not one of [`JobKind::name`]'s.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{name:?} is not a job kind (one of: {known})")]
pub struct UnknownJobKind {
    /// The name as given.
    pub name: String,
    /// The known names, comma-separated.
    pub known: String,
}

impl JobKind {
    /// The kind whose [`JobKind::name`] is `name` (the names operators write, e.g. in
    /// `WORKER_QUEUES`).
    pub fn from_name(name: &str) -> Result<JobKind, UnknownJobKind> {
        JobKind::ALL
            .iter()
            .copied()
            .find(|k| k.name() == name)
            .ok_or_else(|| UnknownJobKind {
                name: name.to_owned(),
                known: JobKind::ALL
                    .iter()
                    .map(|k| k.name())
                    .collect::<Vec<_>>()
                    .join(", "),
            })
    }

    /// The kinds of a comma-separated list of names (blanks around names and empty entries
    /// are ignored, repeats kept once), in declaration order.
    pub fn parse_list(list: &str) -> Result<Vec<JobKind>, UnknownJobKind> {
        let mut kinds = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            kinds.push(JobKind::from_name(name)?);
        }
        kinds.sort_by_key(|k| k.index());
        kinds.dedup();
        Ok(kinds)
    }
}

/// Code generic over job payload types, run for one kind by [`JobKind::visit`].
pub trait JobKindVisitor {
    /// What the visit returns.
    type Output;
    /// Run for payload type `J`.
    fn visit<J: JobPayload>(self) -> Self::Output;
}

/// Verify the Pioneer and the payment at Pi, then approve or refuse (cancel) it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ApproveJob {
    pub payment_id: PaymentId,
    /// What the approve callback said about who pays. `None` for a job no callback made (the
    /// sweeper's, or one queued before jobs carried it): the step then waits for the Pi SDK's
    /// next approve callback, which brings the token again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<ApproveCredential>,
    /// The `X-Request-Id` of the callback that asked for this job, so that the worker's logs
    /// of the job can be joined to the API's access log. `None` for jobs no request made (the
    /// sweeper's) and for jobs queued before jobs carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// How an approve callback named the Pioneer who pays, for the approve job to check against
/// the payment's `user_uid` at Pi. It travels in the job only: the ledger never stores access
/// tokens. `Debug` redacts the token.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ApproveCredential {
    /// The Pioneer's access token (body `accessToken` or `Authorization: Bearer`): `GET /v2/me`
    /// says whose it is.
    AccessToken(#[serde(with = "token_text")] AccessToken),
    /// The uid of the signed-in session a cookie-only callback came with (verified at sign-in).
    Session(Uid),
    /// Neither: nobody can say who pays, so the payment is refused.
    Missing,
}

impl ApproveCredential {
    /// A callback's token if it had one, else [`ApproveCredential::Missing`].
    pub fn from_token(token: Option<AccessToken>) -> ApproveCredential {
        token.map_or(ApproveCredential::Missing, ApproveCredential::AccessToken)
    }
}

/// The token's text in a job payload (the one place outside requests to Pi where it is
/// written out; the job is deleted once done).
mod token_text {
    use crate::secret::AccessToken;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(token: &AccessToken, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(token.expose())
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<AccessToken, D::Error> {
        String::deserialize(d).map(AccessToken::stored)
    }
}

/// Bind the txid Pi linked, verify it on chain, then `POST /complete`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CompleteJob {
    pub payment_id: PaymentId,
    /// The txid the callback claimed: only a hint, compared with the one Pi linked (a
    /// difference is noted in the payment's history), never bound.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub txid_hint: Option<Txid>,
    /// The `X-Request-Id` of the callback that asked for this job, so that the worker's logs
    /// of the job can be joined to the API's access log. `None` for jobs no request made (the
    /// sweeper's) and for jobs queued before jobs carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The Pioneer cancelled: re-read the payment at Pi and record what Pi says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct CancelJob {
    pub payment_id: PaymentId,
    /// The `X-Request-Id` of the callback that asked for this job, so that the worker's logs
    /// of the job can be joined to the API's access log. `None` for jobs no request made (the
    /// sweeper's) and for jobs queued before jobs carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// The frontend reported an error: re-read the payment at Pi and record what Pi says.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RecordErrorJob {
    pub payment_id: PaymentId,
    /// The `X-Request-Id` of the callback that asked for this job, so that the worker's logs
    /// of the job can be joined to the API's access log. `None` for jobs no request made (the
    /// sweeper's) and for jobs queued before jobs carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// An incomplete payment without a txid: re-read it; cancel an approved one with no tx when
/// the Pioneer asks, or when it has waited longer than the grace period.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct IncompleteJob {
    pub payment_id: PaymentId,
    /// Who sent the callback (Bearer token, session, or `Missing` when anonymous): only the
    /// payment's own Pioneer may have it cancelled at once. `None` for the sweeper's job (an
    /// approved payment left without a transaction: the service's own decision).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<ApproveCredential>,
    /// The `X-Request-Id` of the callback that asked for this job, so that the worker's logs
    /// of the job can be joined to the API's access log. `None` for jobs no request made (the
    /// sweeper's) and for jobs queued before jobs carried it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

/// Advance one A2U payout by one `PayoutProcessor::step` (it resumes from the stored step; the
/// outcome says whether to run again at once, later, or never).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PayoutJob {
    pub payout_id: PayoutId,
    /// The `X-Request-Id` of the operator request that asked for this job (`POST /payouts`,
    /// a cancel, a retry), so that the worker's logs of it join the API's access log. `None`
    /// for jobs no single request made (bulk imports, the sweeper, the processor's own).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub request_id: Option<String>,
}

impl Job {
    /// The queue this job goes to.
    pub fn queue_name(&self) -> &'static str {
        self.kind().queue_name()
    }

    /// The payment this job is about, if it is about one (for tracing spans).
    pub fn payment_id(&self) -> Option<&PaymentId> {
        match self {
            Job::Approve(j) => Some(&j.payment_id),
            Job::Complete(j) => Some(&j.payment_id),
            Job::Cancel(j) => Some(&j.payment_id),
            Job::RecordError(j) => Some(&j.payment_id),
            Job::Incomplete(j) => Some(&j.payment_id),
            Job::Payout(_) => None,
        }
    }

    /// The `X-Request-Id` of the request that asked for this job, if one did (for the
    /// worker's tracing span; see [`ApproveJob::request_id`]).
    pub fn request_id(&self) -> Option<&str> {
        match self {
            Job::Approve(j) => j.request_id.as_deref(),
            Job::Complete(j) => j.request_id.as_deref(),
            Job::Cancel(j) => j.request_id.as_deref(),
            Job::RecordError(j) => j.request_id.as_deref(),
            Job::Incomplete(j) => j.request_id.as_deref(),
            Job::Payout(j) => j.request_id.as_deref(),
        }
    }

    /// This job, marked as asked for by the request `request_id` (the API's callbacks and
    /// operator routes do this as they enqueue).
    pub fn with_request_id(mut self, request_id: impl Into<String>) -> Job {
        let slot = match &mut self {
            Job::Approve(j) => &mut j.request_id,
            Job::Complete(j) => &mut j.request_id,
            Job::Cancel(j) => &mut j.request_id,
            Job::RecordError(j) => &mut j.request_id,
            Job::Incomplete(j) => &mut j.request_id,
            Job::Payout(j) => &mut j.request_id,
        };
        *slot = Some(request_id.into());
        self
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
        Job::Payout(PayoutJob {
            payout_id,
            request_id: None,
        })
    }

    /// An approve job without a credential (the sweeper's): see [`ApproveJob::credential`].
    pub fn approve(payment_id: PaymentId) -> Job {
        Job::Approve(ApproveJob {
            payment_id,
            credential: None,
            request_id: None,
        })
    }
    /// The approve job an approve callback asks for, carrying what it said about who pays.
    pub fn approve_with(payment_id: PaymentId, credential: ApproveCredential) -> Job {
        Job::Approve(ApproveJob {
            payment_id,
            credential: Some(credential),
            request_id: None,
        })
    }
    /// See [`CompleteJob`].
    pub fn complete(payment_id: PaymentId) -> Job {
        Job::Complete(CompleteJob {
            payment_id,
            txid_hint: None,
            request_id: None,
        })
    }
    /// A complete job for a callback that claimed `txid` (see [`CompleteJob::txid_hint`]).
    pub fn complete_hinted(payment_id: PaymentId, txid: Txid) -> Job {
        Job::Complete(CompleteJob {
            payment_id,
            txid_hint: Some(txid),
            request_id: None,
        })
    }
    /// See [`CancelJob`].
    pub fn cancel(payment_id: PaymentId) -> Job {
        Job::Cancel(CancelJob {
            payment_id,
            request_id: None,
        })
    }
    /// See [`RecordErrorJob`].
    pub fn record_error(payment_id: PaymentId) -> Job {
        Job::RecordError(RecordErrorJob {
            payment_id,
            request_id: None,
        })
    }
    /// See [`IncompleteJob`].
    pub fn incomplete(payment_id: PaymentId) -> Job {
        Job::Incomplete(IncompleteJob {
            payment_id,
            credential: None,
            request_id: None,
        })
    }
    /// An incomplete job for a callback that came with `credential` (see
    /// [`IncompleteJob::credential`]; `Missing`: an anonymous callback).
    pub fn incomplete_with(payment_id: PaymentId, credential: ApproveCredential) -> Job {
        Job::Incomplete(IncompleteJob {
            payment_id,
            credential: Some(credential),
            request_id: None,
        })
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
    /// How many jobs wait per kind (for `/metrics`); a queue that cannot tell lists none.
    fn depths(&self) -> BoxFuture<'_, Result<Vec<QueueDepth>, QueueError>> {
        Box::pin(async { Ok(Vec::new()) })
    }
}

/// Jobs of one kind waiting in the queue (read for `/metrics`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct QueueDepth {
    /// The job kind.
    pub kind: JobKind,
    /// Jobs that may run now (no worker has taken them yet).
    pub ready: u64,
    /// Jobs waiting for the time they were scheduled for (delayed steps, retries).
    pub scheduled: u64,
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
    #[test]
    fn kinds_parse_from_their_names() {
        use super::JobKind;
        for &kind in JobKind::ALL {
            assert_eq!(JobKind::from_name(kind.name()), Ok(kind));
        }
        assert_eq!(
            JobKind::parse_list(" payout, approve,,payout "),
            Ok(vec![JobKind::Approve, JobKind::Payout])
        );
        let err = JobKind::parse_list("approve,payouts").unwrap_err();
        assert_eq!(err.name, "payouts");
        assert!(err.to_string().contains("record-error"), "{err}");
    }

    use crate::jobs::{CompleteJob, Job, JobKind, JobQueue, PaymentId, PayoutId, RecordingQueue};

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
        let plain = serde_json::to_value(CompleteJob {
            payment_id: pid(),
            txid_hint: None,
            request_id: None,
        })
        .unwrap();
        assert_eq!(plain, serde_json::json!({"payment_id": "abc123"}));
    }

    #[test]
    fn approve_jobs_carry_their_callbacks_credential_redacted_in_debug() {
        use crate::jobs::ApproveCredential;
        use crate::secret::AccessToken;
        let token = AccessToken::new("tok-secret").unwrap();
        let job = Job::approve_with(pid(), ApproveCredential::AccessToken(token));
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "approve", "payment_id": "abc123",
                "credential": {"access_token": "tok-secret"}})
        );
        assert_eq!(serde_json::from_value::<Job>(json).unwrap(), job);
        assert!(!format!("{job:?}").contains("tok-secret"));
        let uid = crate::ids::Uid::parse("pioneer-1").unwrap();
        for credential in [ApproveCredential::Session(uid), ApproveCredential::Missing] {
            let job = Job::approve_with(pid(), credential);
            let json = serde_json::to_value(&job).unwrap();
            assert_eq!(serde_json::from_value::<Job>(json).unwrap(), job);
        }
        assert_eq!(
            ApproveCredential::from_token(None),
            ApproveCredential::Missing
        );
    }

    #[test]
    fn request_ids_travel_in_the_payload_and_old_jobs_still_decode() {
        let job = Job::complete(pid()).with_request_id("req-42");
        let json = serde_json::to_value(&job).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"kind": "complete", "payment_id": "abc123", "request_id": "req-42"})
        );
        let back: Job = serde_json::from_value(json).unwrap();
        assert_eq!(back.request_id(), Some("req-42"));
        // A job queued before request ids existed.
        let old: Job =
            serde_json::from_value(serde_json::json!({"kind": "cancel", "payment_id": "abc123"}))
                .unwrap();
        assert_eq!(old.request_id(), None);
        let payout = Job::payout(PayoutId::generate()).with_request_id("req-43");
        assert_eq!(payout.request_id(), Some("req-43"));
    }

    #[test]
    fn payout_jobs_carry_the_payout_id_and_nothing_else_unless_a_request_asked() {
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
            Job::payout(PayoutId::generate()),
        ];
        let kinds: Vec<JobKind> = jobs.iter().map(Job::kind).collect();
        assert_eq!(kinds, JobKind::ALL, "one job of every kind, in order");
        let mut names: Vec<_> = jobs.iter().map(Job::queue_name).collect();
        assert!(names.iter().all(|n| n.starts_with("pi-payments:")));
        names.sort();
        names.dedup();
        assert_eq!(names.len(), jobs.len());
    }

    #[test]
    fn queue_and_worker_names_never_change() {
        // Jobs stored in Redis and in the SQLite queue refer to these queue names, and a
        // stopped worker's in-flight jobs are found by its name.
        let names: Vec<_> = JobKind::ALL
            .iter()
            .map(|k| (k.queue_name(), k.name()))
            .collect();
        assert_eq!(
            names,
            [
                ("pi-payments:approve", "approve"),
                ("pi-payments:complete", "complete"),
                ("pi-payments:cancel", "cancel"),
                ("pi-payments:record-error", "record-error"),
                ("pi-payments:incomplete", "incomplete"),
                ("pi-payments:payout", "payout"),
            ]
        );
        assert!(JobKind::ALL.iter().enumerate().all(|(i, k)| k.index() == i));
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
