//! The job queue: one apalis storage per job type, each under an explicit queue name, on Redis
//! when a URL is given, else on an embedded apalis-sqlite queue in its own database file.
//!
//! Enqueueing goes through a small batcher per job type (see [`crate::lane`]): callers hand
//! their jobs to a channel, and one task pushes everything that has accumulated in one bulk
//! push. Under load this turns thousands of single pushes per second into a few bulk ones,
//! which is what lets the API answer over 10k callbacks/s; when idle it adds no delay, since
//! the first job is pushed at once. A push is acknowledged only after the backend
//! accepted it, so a 202 from the API means the job is stored.

use crate::backend::{Backend, full_name};
use crate::error::WorkerError;
use crate::lane::Lane;
use crate::wake::WakeSignal;
use apalis::prelude::{TaskBuilder, TaskSink};
use apalis_redis::RedisStorage;
use apalis_sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteStorage};
use futures::future::{BoxFuture, join_all};
use pi_payments_core::jobs::{
    BoxFuture as CoreBoxFuture, Job, JobKind, JobKindVisitor, JobPayload, JobQueue, QueueDepth,
    QueueError,
};
use std::path::PathBuf;
use std::time::Duration;

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

/// Per-job-kind wake signals (indexed by [`JobKind::index`]), shared by the queue's lanes
/// (notify after a push) and the runner (listen).
#[derive(Clone)]
pub(crate) struct Signals(Vec<WakeSignal>);

impl Signals {
    fn new() -> Signals {
        Signals(JobKind::ALL.iter().map(|_| WakeSignal::default()).collect())
    }

    /// The signal of `kind`'s lane.
    pub(crate) fn of(&self, kind: JobKind) -> &WakeSignal {
        &self.0[kind.index()]
    }
}

/// The job queue. Cheap to clone; every clone shares the same batchers and connections.
/// Implements core's [`JobQueue`] for the API; [`crate::run_workers`] consumes it.
#[derive(Clone)]
pub struct Queue {
    pub(crate) backend: Backend,
    pub(crate) namespace: String,
    pub(crate) signals: Signals,
    /// One lane per job kind, indexed by [`JobKind::index`].
    lanes: Vec<Lane>,
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
    let signals = Signals::new();
    let namespace = cfg.namespace.clone();
    let lanes = JobKind::ALL
        .iter()
        .map(|&kind| Lane::spawn(kind, &backend, &namespace, signals.of(kind).clone()))
        .collect();
    Ok(Queue {
        backend,
        namespace,
        signals,
        lanes,
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
        for &kind in JobKind::ALL {
            let queue = full_name(&self.namespace, kind.queue_name());
            let returned: u64 = script
                .key(format!("{queue}:inflight:{worker_id}-{}", kind.name()))
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
        let mut by_kind: Vec<Vec<Job>> = self.lanes.iter().map(|_| Vec::new()).collect();
        for job in jobs {
            by_kind[job.kind().index()].push(job);
        }
        // Only the lanes that have work are awaited; the common single-job case is one push.
        let pushed = join_all(
            self.lanes
                .iter()
                .zip(by_kind)
                .map(|(lane, jobs)| lane.push(jobs)),
        )
        .await;
        pushed.into_iter().collect()
    }

    /// Enqueue one job to run after `delay` (a payout step that must wait for the chain, a
    /// retry at a time the job chose). Not batched: delayed jobs are rare.
    pub async fn push_delayed(&self, job: Job, delay: Duration) -> Result<(), WorkerError> {
        job.kind()
            .visit(PushDelayed {
                queue: self,
                job,
                delay,
            })
            .await
    }

    async fn push_task<J: JobPayload>(
        &self,
        name: &str,
        job: J,
        delay: Duration,
    ) -> Result<(), WorkerError> {
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
        crate::purge::remove_done(&self.backend, &self.namespace, older_than)
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

/// Pushes one delayed job with its kind's payload type.
struct PushDelayed<'a> {
    queue: &'a Queue,
    job: Job,
    delay: Duration,
}

impl<'a> JobKindVisitor for PushDelayed<'a> {
    type Output = BoxFuture<'a, Result<(), WorkerError>>;

    fn visit<J: JobPayload>(self) -> Self::Output {
        Box::pin(async move {
            let name = full_name(&self.queue.namespace, J::KIND.queue_name());
            match J::from_job(self.job) {
                Some(job) => self.queue.push_task(&name, job, self.delay).await,
                // `visit` picked J from the job's own kind.
                None => Err(WorkerError::Push(format!(
                    "a job is not of its kind {}",
                    J::KIND.name()
                ))),
            }
        })
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

    fn depths(&self) -> CoreBoxFuture<'_, Result<Vec<QueueDepth>, QueueError>> {
        Box::pin(async move {
            crate::depth::read(&self.backend, &self.namespace)
                .await
                .map_err(QueueError::Unavailable)
        })
    }
}
