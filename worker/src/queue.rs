//! The job queue: one apalis storage per job type, each under an explicit queue name, on Redis
//! when a URL is given, else on an embedded apalis-sqlite queue in its own database file.
//!
//! Enqueueing goes through a small batcher per job type: callers hand their jobs to a channel,
//! and one task pushes everything that has accumulated in one bulk push (one Lua script on Redis,
//! one statement on SQLite, see [`crate::sqlite_push`]). Under load this turns thousands of single pushes per second into
//! a few bulk ones, which is what lets the API answer over 10k callbacks/s; when idle it adds no
//! delay, since the first job is pushed at once. A push is acknowledged only after the backend
//! accepted it, so a 202 from the API means the job is stored.

use crate::error::WorkerError;
use crate::wake::WakeSignal;
use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::{ConnectionManager, RedisStorage};
use apalis_sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteStorage};
use futures::future::BoxFuture;
use pi_payments_core::jobs::{
    ApproveJob, BoxFuture as CoreBoxFuture, CancelJob, CompleteJob, DeliverEventJob, IncompleteJob,
    Job, JobQueue, PayoutJob, QueueError, RecordErrorJob, queue_names,
};
use serde::Serialize;
use serde::de::DeserializeOwned;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{mpsc, oneshot};

/// How many enqueue calls one batcher round gathers at most.
const MAX_BATCH: usize = 1024;
/// How many jobs one bulk push carries at most (bounds one Lua call / one transaction).
const MAX_PUSH: usize = 2048;
/// Jobs waiting for the batcher before `enqueue` callers wait for room (backpressure).
const LANE_CAPACITY: usize = 16 * 1024;

/// Where the queue lives.
#[derive(Clone, Debug)]
pub struct QueueConfig {
    /// `REDIS_URL`: use Redis when set.
    pub redis_url: Option<String>,
    /// The embedded queue's SQLite file, used when `redis_url` is `None`. Never the ledger's
    /// file: apalis-sqlite turns `synchronous` off on the pool it sets up.
    pub sqlite_path: PathBuf,
    /// Prefix of every queue name (`{namespace}:pi-payments:approve`…). Tests use a unique one
    /// so that they can share one Redis; production leaves the default.
    pub namespace: String,
}

impl QueueConfig {
    /// The embedded queue next to the working directory, the default namespace.
    pub fn embedded(sqlite_path: impl Into<PathBuf>) -> QueueConfig {
        QueueConfig {
            redis_url: None,
            sqlite_path: sqlite_path.into(),
            namespace: DEFAULT_NAMESPACE.to_string(),
        }
    }
}

/// The namespace used when none is configured.
pub const DEFAULT_NAMESPACE: &str = "prod";

/// Which backend holds the jobs.
#[derive(Clone)]
pub(crate) enum Backend {
    Redis(ConnectionManager),
    Sqlite(SqlitePool),
}

/// One job type's lane: a batcher's inbox and the signal that wakes its in-process worker.
struct Lane<J> {
    tx: mpsc::Sender<Pending<J>>,
}

impl<J> Clone for Lane<J> {
    fn clone(&self) -> Self {
        Lane {
            tx: self.tx.clone(),
        }
    }
}

/// Jobs waiting to be pushed, and who to tell when they are.
struct Pending<J> {
    jobs: Vec<J>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Pushes a batch into one storage; built per backend so the lanes need not be generic over it.
type Pusher<J> = Arc<dyn Fn(Vec<J>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

/// Per-job-type wake signals, shared by the queue (notify after a push) and the runner (listen).
#[derive(Clone, Default)]
pub(crate) struct Signals {
    pub(crate) approve: WakeSignal,
    pub(crate) complete: WakeSignal,
    pub(crate) cancel: WakeSignal,
    pub(crate) record_error: WakeSignal,
    pub(crate) incomplete: WakeSignal,
    pub(crate) deliver_event: WakeSignal,
    pub(crate) payout: WakeSignal,
}

/// The job queue. Cheap to clone; every clone shares the same batchers and connections.
/// Implements core's [`JobQueue`] for the API; [`crate::run_workers`] consumes it.
#[derive(Clone)]
pub struct Queue {
    pub(crate) backend: Backend,
    pub(crate) namespace: String,
    pub(crate) signals: Signals,
    approve: Lane<ApproveJob>,
    complete: Lane<CompleteJob>,
    cancel: Lane<CancelJob>,
    record_error: Lane<RecordErrorJob>,
    incomplete: Lane<IncompleteJob>,
    deliver_event: Lane<DeliverEventJob>,
    payout: Lane<PayoutJob>,
}

impl std::fmt::Debug for Queue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Queue")
            .field("backend", &self.backend_name())
            .field("namespace", &self.namespace)
            .finish()
    }
}

/// Connect to (or create) the queue described by `cfg` and start its enqueue batchers.
///
/// Needs a Tokio runtime (the batchers are tasks). The SQLite file is created if missing.
pub async fn connect_queue(cfg: &QueueConfig) -> Result<Queue, WorkerError> {
    if cfg.namespace.is_empty() || cfg.namespace.contains(char::is_whitespace) {
        return Err(WorkerError::Config(format!(
            "queue namespace {:?} must be non-empty and without spaces",
            cfg.namespace
        )));
    }
    let backend = match &cfg.redis_url {
        Some(url) => Backend::Redis(apalis_redis::connect(url.as_str()).await?),
        None => Backend::Sqlite(open_sqlite(&cfg.sqlite_path).await?),
    };
    let signals = Signals::default();
    let ns = cfg.namespace.clone();
    Ok(Queue {
        approve: lane(&backend, &ns, queue_names::APPROVE, signals.approve.clone()),
        complete: lane(
            &backend,
            &ns,
            queue_names::COMPLETE,
            signals.complete.clone(),
        ),
        cancel: lane(&backend, &ns, queue_names::CANCEL, signals.cancel.clone()),
        record_error: lane(
            &backend,
            &ns,
            queue_names::RECORD_ERROR,
            signals.record_error.clone(),
        ),
        incomplete: lane(
            &backend,
            &ns,
            queue_names::INCOMPLETE,
            signals.incomplete.clone(),
        ),
        deliver_event: lane(
            &backend,
            &ns,
            queue_names::DELIVER_EVENT,
            signals.deliver_event.clone(),
        ),
        payout: lane(&backend, &ns, queue_names::PAYOUT, signals.payout.clone()),
        backend,
        namespace: ns,
        signals,
    })
}

/// Open the embedded queue's own database and create apalis' tables.
async fn open_sqlite(path: &std::path::Path) -> Result<SqlitePool, WorkerError> {
    let options = SqliteConnectOptions::new()
        .filename(path)
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        // The queue is rebuilt by the sweeper if lost; NORMAL+WAL survives process crashes.
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        // Statement journals in memory: no temp file opened per bulk push.
        .pragma("temp_store", "memory")
        // Read pages through the OS cache instead of copying them per connection.
        .pragma("mmap_size", "268435456")
        // Checkpoints come from the side (`wal_checkpoint::spawn`), not after a pusher's or a
        // worker's commit; 32768 pages (128 MiB) is only the backstop.
        .pragma("wal_autocheckpoint", "32768")
        .busy_timeout(Duration::from_secs(10));
    let pool = SqlitePoolOptions::new()
        .max_connections(4)
        // A local file cannot drop: no ping (one more thread hop) before each use.
        .test_before_acquire(false)
        .connect_with(options)
        .await?;
    SqliteStorage::setup(&pool).await?;
    // Checkpoints from the side, so that neither a pusher nor a worker stalls after its commit.
    pi_payments_core::wal_checkpoint::spawn(pool.clone(), "queue");
    Ok(pool)
}

/// The full queue name for a job type under a namespace.
pub(crate) fn full_name(namespace: &str, queue: &str) -> String {
    format!("{namespace}:{queue}")
}

/// Delete every Redis key of `namespace`'s queues (jobs, their data and metadata, worker
/// records) on the Redis at `url`, and return how many went. For scratch namespaces such as
/// the bench's, which would otherwise leave their jobs behind; a deployment's namespace is
/// never passed here.
pub async fn delete_redis_namespace(url: &str, namespace: &str) -> Result<u64, WorkerError> {
    if namespace.is_empty()
        || namespace.contains(|c: char| c.is_whitespace() || "*?[]\\".contains(c))
    {
        return Err(WorkerError::Config(format!(
            "queue namespace {namespace:?} must be non-empty, without spaces or glob characters"
        )));
    }
    let mut conn = apalis_redis::connect(url).await?;
    // Every queue name is `{namespace}:…` (full_name) and apalis-redis keys start with it.
    let pattern = format!("{namespace}:*");
    let mut cursor: u64 = 0;
    let mut deleted = 0;
    loop {
        let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
            .arg(cursor)
            .arg("MATCH")
            .arg(&pattern)
            .arg("COUNT")
            .arg(1000)
            .query_async(&mut conn)
            .await?;
        if !keys.is_empty() {
            let gone: u64 = redis::cmd("UNLINK")
                .arg(&keys)
                .query_async(&mut conn)
                .await?;
            deleted += gone;
        }
        if next == 0 {
            return Ok(deleted);
        }
        cursor = next;
    }
}

/// Build a lane for one job type and spawn its batcher.
fn lane<J>(backend: &Backend, namespace: &str, queue: &str, signal: WakeSignal) -> Lane<J>
where
    J: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
{
    let name = full_name(namespace, queue);
    let pusher: Pusher<J> = match backend {
        Backend::Redis(conn) => {
            let storage = RedisStorage::<J>::new(conn.clone()).with_config(
                apalis_redis::Config::default()
                    .queue(&name)
                    // Nobody subscribes to apalis' pubsub events; publishing costs per push.
                    .emit_events(false),
            );
            Arc::new(move |jobs: Vec<J>| {
                let mut storage = storage.clone();
                Box::pin(async move { storage.push_bulk(jobs).await.map_err(|e| e.to_string()) })
            })
        }
        Backend::Sqlite(pool) => {
            let pusher = Arc::new(crate::sqlite_push::SqlitePusher::new(pool));
            let name = Arc::new(name);
            Arc::new(move |jobs: Vec<J>| {
                let pusher = pusher.clone();
                let name = name.clone();
                Box::pin(async move { pusher.push_jobs(&name, &jobs).await })
            })
        }
    };
    let (tx, rx) = mpsc::channel(LANE_CAPACITY);
    tokio::spawn(run_batcher(rx, pusher, signal));
    Lane { tx }
}

/// Push whatever has accumulated, as one bulk push, until every sender is gone.
async fn run_batcher<J: Send + 'static>(
    mut rx: mpsc::Receiver<Pending<J>>,
    pusher: Pusher<J>,
    signal: WakeSignal,
) {
    let mut buf: Vec<Pending<J>> = Vec::new();
    while rx.recv_many(&mut buf, MAX_BATCH).await > 0 {
        let mut jobs = Vec::new();
        let mut waiters = Vec::with_capacity(buf.len());
        for pending in buf.drain(..) {
            jobs.extend(pending.jobs);
            waiters.push(pending.done);
        }
        // Bounded pushes: one huge enqueue_many must not become one giant Lua call or
        // transaction. If a chunk fails, everyone in this round is told so (some jobs may have
        // been stored already; jobs are safe to run twice, so a re-enqueue is harmless).
        let mut result = Ok(());
        while !jobs.is_empty() {
            let rest = jobs.split_off(jobs.len().min(MAX_PUSH));
            if let Err(e) = pusher(std::mem::replace(&mut jobs, rest)).await {
                result = Err(e);
                break;
            }
        }
        if result.is_ok() {
            signal.notify();
        } else if let Err(error) = &result {
            tracing::warn!(%error, "bulk enqueue failed");
        }
        for waiter in waiters {
            // A caller that gave up waiting is fine: its jobs were pushed (or not) all the same.
            let _ = waiter.send(result.clone());
        }
    }
}

impl<J> Lane<J> {
    async fn push(&self, jobs: Vec<J>) -> Result<(), WorkerError> {
        let (done, wait) = oneshot::channel();
        self.tx
            .send(Pending { jobs, done })
            .await
            .map_err(|_| WorkerError::Closed)?;
        match wait.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(WorkerError::Push(e)),
            Err(_) => Err(WorkerError::Closed),
        }
    }
}

/// Each job type's worker-name suffix (workers are named `{worker_id}-{suffix}` in
/// `runner.rs`) and its queue.
pub(crate) const WORKER_QUEUES: [(&str, &str); 7] = [
    ("approve", queue_names::APPROVE),
    ("complete", queue_names::COMPLETE),
    ("cancel", queue_names::CANCEL),
    ("record-error", queue_names::RECORD_ERROR),
    ("incomplete", queue_names::INCOMPLETE),
    ("deliver-event", queue_names::DELIVER_EVENT),
    ("payout", queue_names::PAYOUT),
];

/// Hands back every job a stopped worker still holds in Redis: moves the ids in its in-flight
/// set to the queue's active list, marks them pending again, and wakes the queue's pollers.
/// The key layout is apalis-redis 1.0's (`{queue}:inflight:{worker}`, `{queue}:active`,
/// `{queue}:meta:{id}`, `{queue}:signal`).
const HAND_BACK_INFLIGHT: &str = r#"
local ids = redis.call("SMEMBERS", KEYS[1])
if #ids == 0 then return 0 end
for _, id in ipairs(ids) do
  redis.call("RPUSH", KEYS[2], id)
  redis.call("HSET", KEYS[3] .. ":" .. id, "status", "Pending")
  redis.call("HDEL", KEYS[3] .. ":" .. id, "locked_at", "locked_by")
end
redis.call("DEL", KEYS[1])
redis.call("DEL", KEYS[4])
redis.call("LPUSH", KEYS[4], 1)
return #ids
"#;

impl Queue {
    /// After this process's workers stopped: give the jobs they had fetched but not finished
    /// back to the queue at once. apalis-redis would otherwise leave them to the orphan sweep
    /// (heartbeat × missed beats later), because each process has a fresh worker name. Every
    /// handler is safe to run twice, so handing back a job that was half done is harmless.
    /// The SQLite queue needs nothing here. Returns how many jobs went back.
    pub async fn hand_back_inflight(&self, worker_id: &str) -> Result<u64, WorkerError> {
        let Backend::Redis(conn) = &self.backend else {
            return Ok(0);
        };
        let mut conn = conn.clone();
        let script = redis::Script::new(HAND_BACK_INFLIGHT);
        let mut total = 0;
        for (job, queue) in WORKER_QUEUES {
            let queue = full_name(&self.namespace, queue);
            let returned: u64 = script
                .key(format!("{queue}:inflight:{worker_id}-{job}"))
                .key(format!("{queue}:active"))
                .key(format!("{queue}:meta"))
                .key(format!("{queue}:signal"))
                .invoke_async(&mut conn)
                .await?;
            total += returned;
        }
        Ok(total)
    }

    /// "redis" or "sqlite", for logs and `/readyz`.
    pub fn backend_name(&self) -> &'static str {
        match self.backend {
            Backend::Redis(_) => "redis",
            Backend::Sqlite(_) => "sqlite",
        }
    }

    /// Enqueue jobs of any types, grouped into one bulk push per job type (pushed concurrently).
    pub async fn push_jobs(&self, jobs: Vec<Job>) -> Result<(), WorkerError> {
        let mut approve = Vec::new();
        let mut complete = Vec::new();
        let mut cancel = Vec::new();
        let mut record_error = Vec::new();
        let mut incomplete = Vec::new();
        let mut deliver = Vec::new();
        let mut payout = Vec::new();
        for job in jobs {
            match job {
                Job::Approve(j) => approve.push(j),
                Job::Complete(j) => complete.push(j),
                Job::Cancel(j) => cancel.push(j),
                Job::RecordError(j) => record_error.push(j),
                Job::Incomplete(j) => incomplete.push(j),
                Job::DeliverEvent(j) => deliver.push(j),
                Job::Payout(j) => payout.push(j),
            }
        }
        // Only the lanes that have work are awaited; the common single-job case is one push.
        let (a, b, c, d, e, f, g) = tokio::join!(
            push_if_any(&self.approve, approve),
            push_if_any(&self.complete, complete),
            push_if_any(&self.cancel, cancel),
            push_if_any(&self.record_error, record_error),
            push_if_any(&self.incomplete, incomplete),
            push_if_any(&self.deliver_event, deliver),
            push_if_any(&self.payout, payout),
        );
        a.and(b).and(c).and(d).and(e).and(f).and(g)
    }

    /// Enqueue one job to run after `delay` (a payout step that must wait for the chain, a
    /// retry at a time the job chose). Not batched: delayed jobs are rare.
    pub async fn push_delayed(&self, job: Job, delay: Duration) -> Result<(), WorkerError> {
        let name = full_name(&self.namespace, job.queue_name());
        match job {
            Job::Approve(j) => self.push_task(&name, j, delay).await,
            Job::Complete(j) => self.push_task(&name, j, delay).await,
            Job::Cancel(j) => self.push_task(&name, j, delay).await,
            Job::RecordError(j) => self.push_task(&name, j, delay).await,
            Job::Incomplete(j) => self.push_task(&name, j, delay).await,
            Job::DeliverEvent(j) => self.push_task(&name, j, delay).await,
            Job::Payout(j) => self.push_task(&name, j, delay).await,
        }
    }

    async fn push_task<J>(&self, name: &str, job: J, delay: Duration) -> Result<(), WorkerError>
    where
        J: Serialize + DeserializeOwned + Send + Sync + Unpin + 'static,
    {
        let task = TaskBuilder::new(job).run_after(delay).build();
        match &self.backend {
            Backend::Redis(conn) => {
                let mut storage = RedisStorage::<J>::new(conn.clone()).with_config(
                    apalis_redis::Config::default()
                        .queue(name)
                        .emit_events(false),
                );
                storage
                    .push_task(task)
                    .await
                    .map_err(|e| WorkerError::Push(e.to_string()))
            }
            Backend::Sqlite(pool) => {
                let mut storage = SqliteStorage::<J>::new(pool)
                    .with_config(apalis_sqlite::Config::default().queue(name));
                storage
                    .push_task(task)
                    .await
                    .map_err(|e| WorkerError::Push(e.to_string()))
            }
        }
    }

    /// Remove this namespace's jobs that finished well and were enqueued more than
    /// `older_than` ago (apalis keeps them forever). [`crate::run_workers`] does this every few
    /// minutes for jobs older than an hour; killed jobs are kept for inspection.
    pub async fn purge_finished(&self, older_than: Duration) -> Result<u64, WorkerError> {
        crate::housekeeping::remove_done(self, older_than)
            .await
            .map_err(WorkerError::Backend)
    }

    /// Whether the backend answers (Redis `PING`, SQLite `SELECT 1`).
    pub async fn check(&self) -> Result<(), WorkerError> {
        match &self.backend {
            Backend::Redis(conn) => {
                let mut conn = conn.clone();
                let _: String = redis::cmd("PING").query_async(&mut conn).await?;
                Ok(())
            }
            Backend::Sqlite(pool) => {
                sqlx::query("SELECT 1").execute(pool).await?;
                Ok(())
            }
        }
    }
}

async fn push_if_any<J>(lane: &Lane<J>, jobs: Vec<J>) -> Result<(), WorkerError> {
    if jobs.is_empty() {
        Ok(())
    } else {
        lane.push(jobs).await
    }
}

fn to_queue_error(e: WorkerError) -> QueueError {
    QueueError::Unavailable(e.to_string())
}

impl JobQueue for Queue {
    fn enqueue(&self, job: Job) -> CoreBoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { self.push_jobs(vec![job]).await.map_err(to_queue_error) })
    }

    fn enqueue_many(&self, jobs: Vec<Job>) -> CoreBoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { self.push_jobs(jobs).await.map_err(to_queue_error) })
    }

    fn ping(&self) -> CoreBoxFuture<'_, Result<(), QueueError>> {
        Box::pin(async move { self.check().await.map_err(to_queue_error) })
    }
}
