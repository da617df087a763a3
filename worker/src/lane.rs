//! One job kind's enqueue lane: callers hand their jobs to a channel, and one batcher task
//! pushes everything that has accumulated in one bulk push (one Lua script on Redis, one
//! statement on SQLite, see [`crate::sqlite_push`]), then wakes the kind's in-process worker.

use crate::backend::{Backend, full_name};
use crate::error::WorkerError;
use crate::sqlite_push::SqlitePusher;
use crate::wake::WakeSignal;
use apalis::prelude::TaskSink;
use apalis_redis::RedisStorage;
use futures::future::BoxFuture;
use pi_payments_core::jobs::{Job, JobKind, JobKindVisitor, JobPayload};
use std::sync::Arc;
use tokio::sync::{mpsc, oneshot};

/// How many enqueue calls one batcher round gathers at most.
const MAX_BATCH: usize = 1024;
/// How many jobs one bulk push carries at most (bounds one Lua call / one transaction).
const MAX_PUSH: usize = 2048;
/// Jobs waiting for the batcher before `enqueue` callers wait for room (backpressure).
const LANE_CAPACITY: usize = 16 * 1024;

/// One job kind's lane: its batcher's inbox.
#[derive(Clone)]
pub(crate) struct Lane {
    tx: mpsc::Sender<Pending>,
}

/// Jobs waiting to be pushed, and who to tell when they are.
struct Pending {
    jobs: Vec<Job>,
    done: oneshot::Sender<Result<(), String>>,
}

/// Pushes a batch into one kind's storage; built per backend and payload type, so that the
/// lanes need be generic over neither.
type Pusher = Arc<dyn Fn(Vec<Job>) -> BoxFuture<'static, Result<(), String>> + Send + Sync>;

impl Lane {
    /// Build the lane of `kind` under `namespace` and spawn its batcher, which notifies
    /// `signal` after every successful push.
    pub(crate) fn spawn(
        kind: JobKind,
        backend: &Backend,
        namespace: &str,
        signal: WakeSignal,
    ) -> Lane {
        let pusher = kind.visit(MakePusher {
            backend,
            name: full_name(namespace, kind.queue_name()),
        });
        let (tx, rx) = mpsc::channel(LANE_CAPACITY);
        tokio::spawn(run_batcher(rx, pusher, signal));
        Lane { tx }
    }

    /// Push `jobs` (all of this lane's kind); returns once the backend stored them.
    pub(crate) async fn push(&self, jobs: Vec<Job>) -> Result<(), WorkerError> {
        if jobs.is_empty() {
            return Ok(());
        }
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

/// Builds the [`Pusher`] of one kind's payload type.
struct MakePusher<'a> {
    backend: &'a Backend,
    name: String,
}

impl JobKindVisitor for MakePusher<'_> {
    type Output = Pusher;

    fn visit<J: JobPayload>(self) -> Pusher {
        let name = self.name;
        match self.backend {
            Backend::Redis(conn) => {
                let storage = RedisStorage::<J>::new(conn.clone()).with_config(
                    apalis_redis::Config::default()
                        .queue(&name)
                        // Nobody subscribes to apalis' pubsub events; publishing costs per push.
                        .emit_events(false),
                );
                Arc::new(move |jobs: Vec<Job>| {
                    let mut storage = storage.clone();
                    let jobs = payloads::<J>(jobs);
                    Box::pin(
                        async move { storage.push_bulk(jobs).await.map_err(|e| e.to_string()) },
                    )
                })
            }
            Backend::Sqlite(pool) => {
                let pusher = Arc::new(SqlitePusher::new(pool));
                let name = Arc::new(name);
                Arc::new(move |jobs: Vec<Job>| {
                    let pusher = pusher.clone();
                    let name = name.clone();
                    let jobs = payloads::<J>(jobs);
                    Box::pin(async move { pusher.push_jobs(&name, &jobs).await })
                })
            }
        }
    }
}

/// The payloads of `jobs` (a lane only ever receives jobs of its own kind).
fn payloads<J: JobPayload>(jobs: Vec<Job>) -> Vec<J> {
    jobs.into_iter().filter_map(J::from_job).collect()
}

/// Push whatever has accumulated, as one bulk push, until every sender is gone.
async fn run_batcher(mut rx: mpsc::Receiver<Pending>, pusher: Pusher, signal: WakeSignal) {
    let mut buf: Vec<Pending> = Vec::new();
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
