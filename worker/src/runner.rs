//! Runs the workers: one apalis worker per job type under an apalis `Monitor`, plus the webhook
//! deliverer, until the shutdown future resolves.
//!
//! Settings that matter for correctness are explicit here rather than apalis' defaults: queue
//! names (declared once in core's `jobs.rs`), a worker name unique per process (apalis-redis
//! recovers a dead worker's in-flight jobs by name), the heartbeat and missed-heartbeat counts
//! (the orphan timeout is their product), `catch_panic` (a panicking job would otherwise kill
//! its worker), and retries with exponential backoff whose count the handlers cap themselves.

use crate::backend::{Backend, full_name};
use crate::context::HandlerCtx;
use crate::deps::{JobRetry, WorkerDeps};
use crate::error::WorkerError;
use crate::handler::handle_job;
use crate::queue::Queue;
use crate::schedule::{Every, ScheduleConfig, ScheduleCtx, reconcile_tick};
use crate::wake::WakeSignal;
use crate::webhook::run_deliverer;
use apalis::layers::retry::HasherRng;
use apalis::layers::retry::backoff::{ExponentialBackoff, ExponentialBackoffMaker, MakeBackoff};
use apalis::prelude::*;
use apalis_redis::RedisStorage;
use apalis_sqlite::SqliteStorage;
use pi_payments_core::jobs::{JobKind, JobKindVisitor, JobPayload};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

/// `WORKER_CONCURRENCY`'s default: jobs of one type run at once in one process.
pub const DEFAULT_CONCURRENCY: usize = 16;

/// How the workers of this process run.
#[derive(Clone, Debug)]
pub struct WorkerConfig {
    /// Unique per process: workers are named `{worker_id}-{job}`. A restarted process should
    /// get a new id unless it wants its predecessor's in-flight jobs back at once.
    pub worker_id: String,
    /// `WORKER_CONCURRENCY`: jobs of one type in flight at once.
    pub concurrency: usize,
    /// How often a worker tells the backend it is alive.
    pub heartbeat_interval: Duration,
    /// Missed heartbeats before another worker takes a dead worker's jobs back
    /// (orphan timeout = interval × missed).
    pub missed_heartbeats: usize,
    /// How often an idle worker looks for jobs enqueued by other processes (jobs enqueued in
    /// this process wake it at once).
    pub poll_interval: Duration,
    /// On shutdown, how long in-flight jobs may take before the workers stop anyway (their
    /// jobs then come back after the orphan timeout).
    pub shutdown_timeout: Duration,
    /// `WORKER_QUEUES`: the job kinds this process runs (default every kind), so that e.g. one
    /// process serves payouts and others the U2A steps. Jobs of other kinds wait in their
    /// queues for a process that runs them.
    pub kinds: Vec<JobKind>,
}

impl Default for WorkerConfig {
    fn default() -> Self {
        WorkerConfig {
            worker_id: default_worker_id(),
            concurrency: DEFAULT_CONCURRENCY,
            heartbeat_interval: Duration::from_secs(10),
            missed_heartbeats: 3,
            poll_interval: Duration::from_millis(250),
            shutdown_timeout: Duration::from_secs(30),
            kinds: JobKind::ALL.to_vec(),
        }
    }
}

/// `{hostname}-{pid}-{random}`: unique per process, readable in Redis.
pub fn default_worker_id() -> String {
    let host = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "worker".to_string());
    let random: u32 = rand::random();
    format!("{host}-{}-{random:08x}", std::process::id())
}

/// Run every worker and the webhook deliverer until `shutdown` resolves, then stop taking jobs,
/// let in-flight jobs finish (up to `cfg.shutdown_timeout`) and return.
///
/// Jobs a worker had fetched but not finished are handed back to the queue on shutdown
/// ([`Queue::hand_back_inflight`]); after a crash (SIGKILL) they come back after the orphan
/// timeout instead. Delivery is at least once, and every handler is safe to run twice.
pub async fn run_workers(
    deps: WorkerDeps,
    queue: Queue,
    cfg: WorkerConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    run_workers_with_schedule(deps, queue, cfg, None, shutdown).await
}

/// [`run_workers`] plus, with `schedule`, the scheduled reconciliation (sweeper and incomplete
/// server payments, see `schedule.rs`): what the binary runs. Several processes may run it;
/// the ledger lease lets one run happen at a time.
pub async fn run_workers_with_schedule(
    deps: WorkerDeps,
    queue: Queue,
    cfg: WorkerConfig,
    schedule: Option<ScheduleConfig>,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), WorkerError> {
    if let Some(s) = &schedule
        && (s.reconcile.every.is_zero() || s.reconcile.stuck_after.is_zero())
    {
        return Err(WorkerError::Config(
            "RECONCILE_EVERY and STUCK_AFTER must be at least 1 second".into(),
        ));
    }
    if cfg.concurrency == 0 {
        return Err(WorkerError::Config(
            "WORKER_CONCURRENCY must be at least 1".into(),
        ));
    }
    if cfg.heartbeat_interval.is_zero() || cfg.missed_heartbeats == 0 {
        return Err(WorkerError::Config(
            "the heartbeat interval and missed-heartbeat count must be positive".into(),
        ));
    }
    if deps.retry.max_attempts == 0 {
        return Err(WorkerError::Config(
            "the job retry policy needs max_attempts of at least 1".into(),
        ));
    }
    let webhook_nudge = Arc::new(tokio::sync::Notify::new());
    let ctx = Arc::new(HandlerCtx::new(
        deps.clone(),
        queue.clone(),
        webhook_nudge.clone(),
    ));

    // The deliverer and the monitor share one stop signal.
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    let deliverer = deps.webhook.clone().map(|hook| {
        let ledger = deps.ledger.clone();
        let nudge = webhook_nudge.clone();
        let stop = stop_rx.clone();
        tokio::spawn(run_deliverer(ledger, hook, nudge, stop))
    });

    // Sessions and ad claims are tidied on the same tick, asking Pi through the shared client.
    let ads = pi_payments_core::ads::AdRewards::new(deps.ledger.clone(), deps.pi.clone());
    let housekeeper = tokio::spawn(crate::housekeeping::run(
        queue.clone(),
        deps.ledger.clone(),
        ads,
        stop_rx.clone(),
    ));

    let schedule_ctx =
        schedule.map(|s| Arc::new(ScheduleCtx::new(&ctx, &s, cfg.worker_id.clone())));
    let mut monitor = build_monitor(&queue, &cfg, ctx);
    if let Some(sctx) = schedule_ctx {
        monitor = register_schedule(monitor, &cfg, sctx);
    }
    let monitor = monitor
        .shutdown_timeout(cfg.shutdown_timeout)
        .on_event(|worker, event| {
            if let Event::Error(error) = event {
                tracing::warn!(worker = worker.name(), %error, "worker error");
            }
        });
    let signal = async move {
        shutdown.await;
        tracing::info!("shutting down workers: finishing in-flight jobs");
        let _ = stop_tx.send(true);
        Ok(())
    };
    let result = monitor
        .run_with_signal(signal)
        .await
        .map_err(|e| WorkerError::Monitor(e.to_string()));
    match queue.hand_back_inflight(&cfg.worker_id).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(jobs = n, "handed unfinished jobs back to the queue"),
        Err(error) => tracing::warn!(
            %error,
            "could not hand unfinished jobs back; they return after the orphan timeout"
        ),
    }
    if let Some(handle) = deliverer {
        let _ = handle.await;
    }
    let _ = housekeeper.await;
    result
}

/// Backoff between in-process retries of a failed job: exponential with jitter, so many jobs
/// failing on one outage do not retry in lockstep.
fn backoff(retry: &JobRetry) -> ExponentialBackoff {
    let base = retry.base_delay.max(Duration::from_millis(1));
    let max = retry.max_delay.max(base);
    let maker = ExponentialBackoffMaker::new(base, max, 0.5, HasherRng::default()).or_else(|_| {
        ExponentialBackoffMaker::new(
            Duration::from_secs(1),
            Duration::from_secs(30),
            0.5,
            HasherRng::default(),
        )
    });
    match maker {
        Ok(mut maker) => maker.make_backoff(),
        // Unreachable with the constant bounds above; a zero-jitter fallback keeps it total.
        Err(_) => ExponentialBackoffMaker::default().make_backoff(),
    }
}

/// A Redis storage for one job type, with this process' liveness settings.
fn redis_storage<J>(
    conn: &apalis_redis::ConnectionManager,
    name: &str,
    cfg: &WorkerConfig,
) -> RedisStorage<J> {
    RedisStorage::new(conn.clone()).with_config(
        apalis_redis::Config::default()
            .queue(name)
            .heartbeat_interval(cfg.heartbeat_interval)
            .missed_heartbeats(cfg.missed_heartbeats)
            .batch_size(cfg.concurrency)
            .emit_events(false),
    )
}

/// An embedded-queue storage for one job type, with this process' liveness settings.
fn sqlite_storage<J>(
    pool: &apalis_sqlite::SqlitePool,
    name: &str,
    cfg: &WorkerConfig,
) -> SqliteStorage<J> {
    SqliteStorage::new(pool).with_config(
        apalis_sqlite::Config::default()
            .queue(name)
            .heartbeat_interval(cfg.heartbeat_interval)
            .missed_heartbeats(cfg.missed_heartbeats)
            .batch_size(cfg.concurrency),
    )
}

/// Registers one worker for payload type `$ty` on one backend (`$mk` builds its storage from
/// `$handle`).
macro_rules! register_on {
    ($monitor:ident, $cfg:ident, $ctx:ident, $queue:ident, $ty:ty, $mk:ident, $handle:expr) => {{
        let kind = <$ty as JobPayload>::KIND;
        let name = format!("{}-{}", $cfg.worker_id, kind.name());
        let queue_name = full_name(&$queue.namespace, kind.queue_name());
        let signal: WakeSignal = $queue.signals.of(kind).clone();
        let ctx = $ctx.clone();
        let cfg = $cfg.clone();
        let handle = $handle.clone();
        $monitor.register(move |restarts| {
            // Woken at once by pushes from this process, and every poll_interval for others'.
            let strategy = Strategy::new()
                .stream(signal.listener())
                .interval(cfg.poll_interval);
            let delay = restart_delay(restarts);
            let backend = $mk::<$ty>(&handle, queue_name.as_str(), &cfg)
                .poll_with_strategy(strategy)
                .before_start(move |_| async move {
                    // A restarted worker waits, so a backend outage is not a busy loop.
                    tokio::time::sleep(delay).await;
                    Ok(())
                });
            WorkerBuilder::new(name.clone())
                .backend(backend)
                .data(ctx.clone())
                // Outermost first: at most `concurrency` jobs in flight, retries included;
                // retries back off; innermost, a panic becomes a failed attempt (retried like
                // any error) instead of killing the worker. This is the order apalis checks
                // for: the other way round it warned at every start, once per worker.
                .concurrency(cfg.concurrency)
                .retry(
                    RetryPolicy::retries(ctx.retry.max_attempts as usize)
                        .with_backoff(backoff(&ctx.retry)),
                )
                .catch_panic()
                .build(handle_job::<$ty>)
        })
    }};
}

/// Registers the worker of one job kind on the queue's backend.
struct RegisterWorker<'a> {
    monitor: Monitor,
    queue: &'a Queue,
    cfg: &'a WorkerConfig,
    ctx: &'a Arc<HandlerCtx>,
}

impl JobKindVisitor for RegisterWorker<'_> {
    type Output = Monitor;

    fn visit<J: JobPayload>(self) -> Monitor {
        let RegisterWorker {
            monitor,
            queue,
            cfg,
            ctx,
        } = self;
        match &queue.backend {
            Backend::Redis(conn) => register_on!(monitor, cfg, ctx, queue, J, redis_storage, conn),
            Backend::Sqlite(pool) => {
                register_on!(monitor, cfg, ctx, queue, J, sqlite_storage, pool)
            }
        }
    }
}

/// The reconcile cron worker: ticks every `RECONCILE_EVERY`; one run at a time (the handler
/// takes the ledger lease), and a panic in a run does not kill the tick stream.
fn register_schedule(monitor: Monitor, cfg: &WorkerConfig, sctx: Arc<ScheduleCtx>) -> Monitor {
    let name = format!("{}-reconcile", cfg.worker_id);
    let every = sctx.reconciler.config().every;
    monitor.register(move |_restarts| {
        WorkerBuilder::new(name.clone())
            .backend(apalis_cron::CronScheduler::new(Every::new(every)))
            .data(sctx.clone())
            // One run at a time in this process; other processes are held off by the lease.
            .concurrency(1)
            .catch_panic()
            .build(reconcile_tick)
    })
}

/// How long a worker waits before its `restarts`-th restart: 0 at first start, then doubling
/// from 1 s to at most 30 s.
fn restart_delay(restarts: usize) -> Duration {
    if restarts == 0 {
        Duration::ZERO
    } else {
        let exp = u32::try_from(restarts - 1).unwrap_or(u32::MAX).min(5);
        Duration::from_secs(1u64 << exp).min(Duration::from_secs(30))
    }
}

fn build_monitor(queue: &Queue, cfg: &WorkerConfig, ctx: Arc<HandlerCtx>) -> Monitor {
    // A worker whose backend failed (Redis restarted, the queue file was locked) starts again
    // under the same name, which also takes back the jobs it had in flight.
    let mut monitor = Monitor::new().should_restart(|worker, error| {
        if worker.is_shutting_down() {
            return false;
        }
        tracing::warn!(worker = worker.name(), %error, "worker stopped; restarting it");
        true
    });
    for &kind in JobKind::ALL {
        // Kinds left out by WORKER_QUEUES wait for another process. Payout jobs wait in their
        // queue until a worker has a payout processor.
        if !cfg.kinds.contains(&kind) || (kind == JobKind::Payout && ctx.deps.payouts.is_none()) {
            continue;
        }
        monitor = kind.visit(RegisterWorker {
            monitor,
            queue,
            cfg,
            ctx: &ctx,
        });
    }
    monitor
}
