//! Test harness: pi-sim, a ledger, a queue and the workers of this crate, wired as the binary
//! wires them, plus helpers that play the Pioneer's part through pi-sim's control API.
#![allow(dead_code)]

use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ids::{PaymentId, Txid};
use pi_payments_core::jobs::{Job, JobKind};
use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_payments_core::ledger::{Ledger, PaymentRow};
use pi_payments_core::payout::PayoutProcessor;
use pi_payments_core::pi_client::{PiClient, PiClientConfig, install_crypto_provider};
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::secret::AccessToken;
use pi_payments_core::state::PaymentState;
use pi_payments_core::stellar::{Network, Wallet};
use pi_payments_worker::{
    JobRetry, Queue, QueueConfig, ScheduleConfig, WebhookConfig, WorkerConfig, WorkerDeps,
    connect_queue, delete_redis_namespace, run_workers_with_schedule,
};
use pi_sim::control_client::{SimControl, U2aRequest};
use serde_json::Value;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// Which storage the test runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// SQLite ledger in a temp dir + the embedded SQLite queue.
    Embedded,
    /// Postgres ledger (a fresh database) + Redis queue (a unique namespace).
    Served,
}

/// Knobs a test may change before the workers start.
pub struct Options {
    pub stack: Stack,
    pub require_order: bool,
    pub webhook: Option<WebhookConfig>,
    pub pi_rate_limit: u32,
    pub sim: pi_sim::SimConfig,
    pub retry: JobRetry,
    pub pi_retry: RetryPolicy,
    /// Run the payout worker (the app wallet is pi-sim's).
    pub payouts: bool,
    /// Run the scheduled reconciliation (sweeper) in the workers, as the binary does.
    pub schedule: Option<ScheduleConfig>,
    /// Do not start the workers in [`Harness::start`]; the test calls
    /// [`Harness::start_workers`] once it has prepared the ledger and the queue.
    pub defer_workers: bool,
    /// The job kinds the workers run (`WORKER_QUEUES`); every kind by default.
    pub kinds: Vec<JobKind>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            stack: Stack::Embedded,
            require_order: false,
            webhook: None,
            pi_rate_limit: 200,
            sim: pi_sim::SimConfig::default(),
            retry: JobRetry {
                max_attempts: 10,
                base_delay: Duration::from_millis(50),
                max_delay: Duration::from_millis(500),
            },
            pi_retry: RetryPolicy::fast(),
            payouts: false,
            schedule: None,
            defer_workers: false,
            kinds: JobKind::ALL.to_vec(),
        }
    }
}

/// Everything running for one test.
pub struct Harness {
    pub sim: pi_sim::RunningSim,
    pub ledger: Ledger,
    pub queue: Queue,
    /// pi-sim's control API: the Pioneer's side, faults and reports.
    pub control: SimControl,
    pub http: reqwest::Client,
    pub dir: PathBuf,
    /// The fresh Postgres database and the Redis namespace, to drop at the end.
    pg_db: Option<ScratchDatabase>,
    redis_ns: Option<(String, String)>,
    stop: Option<oneshot::Sender<()>>,
    workers: Option<JoinHandle<Result<(), pi_payments_worker::WorkerError>>>,
    /// The workers' wiring while [`Options::defer_workers`] holds them back.
    deferred: Option<(WorkerDeps, WorkerConfig, Option<ScheduleConfig>)>,
}

fn unique(prefix: &str) -> String {
    let r: u64 = rand::random();
    format!("{prefix}{}{r:x}", std::process::id())
}

pub fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

pub fn database_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

impl Harness {
    pub async fn start(opts: Options) -> Harness {
        install_crypto_provider();
        let _ = tracing_subscriber::fmt()
            .with_env_filter(
                tracing_subscriber::EnvFilter::try_from_default_env()
                    .unwrap_or_else(|_| "warn".into()),
            )
            .with_test_writer()
            .try_init();
        let sim = pi_sim::start(opts.sim).await.expect("pi-sim starts");
        let dir = std::env::temp_dir().join(unique("pi-worker-test-"));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let namespace = unique("t");
        let (ledger_url, redis, pg_db) = match opts.stack {
            Stack::Embedded => (
                format!("sqlite://{}", dir.join("ledger.db").display()),
                None,
                None,
            ),
            Stack::Served => {
                let pg = ScratchDatabase::create(&database_url(), "pipw")
                    .await
                    .expect("TEST_DATABASE_URL must reach a running Postgres");
                (pg.url().to_string(), Some(redis_url()), Some(pg))
            }
        };
        let redis_ns = redis.clone().map(|url| (url, namespace.clone()));
        let mut ledger = Ledger::connect(&ledger_url).await.expect("ledger opens");
        if let Some(schedule) = &opts.schedule {
            // As the service does: callbacks re-arm after the sweeper's STUCK_AFTER.
            ledger = ledger.with_stuck_after(schedule.reconcile.stuck_after);
        }
        let queue = connect_queue(&QueueConfig {
            redis_url: redis,
            sqlite_path: dir.join("queue.db"),
            namespace,
        })
        .await
        .expect("queue opens");
        let limiter = Arc::new(PiRateLimiter::new(
            NonZeroU32::new(opts.pi_rate_limit).expect("rate > 0"),
        ));
        let mut pi_cfg =
            PiClientConfig::new(sim.platform_url.clone(), sim.api_key.clone(), limiter);
        pi_cfg.retry = opts.pi_retry;
        pi_cfg.timeout = Duration::from_secs(5);
        let pi = PiClient::new(pi_cfg).expect("pi client");
        let horizon =
            HorizonClient::new(&sim.horizon_url, Duration::from_secs(5)).expect("horizon client");
        let payouts = opts.payouts.then(|| {
            let wallet = Wallet::from_seed(&sim.app_wallet_seed).expect("sim seed");
            PayoutProcessor::new(
                ledger.clone(),
                pi.clone(),
                horizon.clone(),
                wallet,
                Network::new(&sim.network_passphrase),
                Vec::new(),
            )
        });
        let deps = WorkerDeps {
            ledger: ledger.clone(),
            pi,
            horizon,
            app_wallet: sim.app_wallet_public_key.clone(),
            network: sim.network_passphrase.clone(),
            require_order: opts.require_order,
            anonymous_cancel_grace: pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE,
            webhook: opts.webhook,
            retry: opts.retry,
            payouts,
        };
        let cfg = WorkerConfig {
            worker_id: unique("w"),
            concurrency: 8,
            heartbeat_interval: Duration::from_secs(2),
            missed_heartbeats: 3,
            poll_interval: Duration::from_millis(100),
            shutdown_timeout: Duration::from_secs(5),
            kinds: opts.kinds.clone(),
        };
        let control = SimControl::of(&sim).expect("control client");
        let mut harness = Harness {
            control,
            sim,
            ledger,
            queue,
            http: reqwest::Client::new(),
            dir,
            pg_db,
            redis_ns,
            stop: None,
            workers: None,
            deferred: Some((deps, cfg, opts.schedule)),
        };
        if !opts.defer_workers {
            harness.start_workers();
        }
        harness
    }

    /// Start the workers held back by [`Options::defer_workers`] (a no-op once started).
    pub fn start_workers(&mut self) {
        let Some((deps, cfg, schedule)) = self.deferred.take() else {
            return;
        };
        let (stop, stopped) = oneshot::channel::<()>();
        self.workers = Some(tokio::spawn(run_workers_with_schedule(
            deps,
            self.queue.clone(),
            cfg,
            schedule,
            async move {
                let _ = stopped.await;
            },
        )));
        self.stop = Some(stop);
    }

    /// Delete every Redis key of this test's queue namespace, as a Redis restart without
    /// persistence would; returns how many keys went. Served stack only.
    pub async fn flush_queue(&self) -> usize {
        let (url, ns) = self
            .redis_ns
            .as_ref()
            .expect("flush_queue needs the served stack (Redis)");
        let deleted = delete_redis_namespace(url, ns)
            .await
            .expect("Redis answers");
        usize::try_from(deleted).unwrap_or(usize::MAX)
    }

    /// Stop the workers gracefully, check they stopped without error, and clean up.
    pub async fn shutdown(mut self) {
        self.stop_workers().await;
        let _ = std::fs::remove_dir_all(&self.dir);
        self.ledger.close().await;
        if let Some(pg) = self.pg_db.take() {
            let _ = pg.drop_database().await;
        }
        if let Some((url, ns)) = self.redis_ns.take() {
            let _ = delete_redis_namespace(&url, &ns).await;
        }
    }

    /// Stop the workers gracefully (waiting for in-flight jobs) and check they stopped cleanly.
    pub async fn stop_workers(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(workers) = self.workers.take() {
            let result = tokio::time::timeout(Duration::from_secs(20), workers)
                .await
                .expect("workers stop within the shutdown timeout")
                .expect("worker task did not panic");
            result.expect("workers stopped cleanly");
        }
    }

    // ---- pi-sim control API ------------------------------------------------------------

    /// A Pioneer's access token.
    pub async fn token(&self, uid: &str) -> String {
        self.control.token(uid).await.expect("token minted")
    }

    /// `Pi.createPayment` by `uid`: returns the payment id.
    pub async fn create_u2a(&self, uid: &str, amount: &str, metadata: Value) -> PaymentId {
        let request = U2aRequest::new(uid, amount)
            .memo("test purchase")
            .metadata(metadata);
        let id = self
            .control
            .create_u2a_id(&request)
            .await
            .expect("create u2a");
        PaymentId::parse(&id).expect("valid id")
    }

    /// The Pioneer signs and submits; returns the txid.
    pub async fn submit(&self, id: &PaymentId) -> Txid {
        let txid = self.control.submit(id.as_str()).await.expect("submitted");
        Txid::parse(&txid).expect("valid txid")
    }

    pub async fn set_faults(&self, faults: Value) {
        self.control.faults(&faults).await.expect("faults set");
    }

    pub async fn log(&self) -> Value {
        self.control.log().await.expect("pi-sim log")
    }

    /// How many times an endpoint was called for a payment (pi-sim's per-payment counters).
    pub async fn calls(&self, id: &PaymentId, endpoint: &str) -> u64 {
        self.control
            .payment_calls(id.as_str(), endpoint)
            .await
            .expect("pi-sim log")
    }

    /// How many of an endpoint's answers had status 200.
    pub async fn ok_answers(&self, endpoint: &str) -> u64 {
        self.log().await["endpoints"][endpoint]["status"]["200"]
            .as_u64()
            .unwrap_or(0)
    }

    pub async fn audit(&self) -> Value {
        self.control.audit().await.expect("pi-sim audit")
    }

    /// Pi's view of a payment.
    pub async fn pi_payment(&self, id: &PaymentId) -> Value {
        self.http
            .get(format!("{}/v2/payments/{id}", self.sim.platform_url))
            .header("authorization", format!("Key {}", self.sim.api_key))
            .send()
            .await
            .expect("pi-sim answers")
            .json()
            .await
            .expect("json")
    }

    // ---- the API's part: record the callback, enqueue its job ---------------------------

    pub async fn approve_callback(&self, id: &PaymentId, token: Option<&str>) {
        let recorded = self
            .ledger
            .record_approve_callback(id, token.and_then(AccessToken::new).as_ref())
            .await
            .expect("record approve");
        self.enqueue_recorded(recorded.job).await;
    }

    pub async fn complete_callback(&self, id: &PaymentId, txid: &Txid) {
        let recorded = self
            .ledger
            .record_complete_callback(id, txid)
            .await
            .expect("record complete");
        self.enqueue_recorded(recorded.job).await;
    }

    /// An incomplete callback sent with `credential` (its Pioneer's token, or `Missing`).
    pub async fn incomplete_callback_as(
        &self,
        id: &PaymentId,
        credential: pi_payments_core::jobs::ApproveCredential,
    ) {
        let callback = pi_payments_core::ledger::Callback::Incomplete {
            payment_id: id.clone(),
            txid: None,
            credential,
        };
        let recorded = self
            .ledger
            .record_callback(&callback)
            .await
            .expect("record incomplete");
        self.enqueue_recorded(recorded.job).await;
    }

    pub async fn incomplete_callback(&self, id: &PaymentId, txid: Option<&Txid>) {
        let recorded = self
            .ledger
            .record_incomplete_callback(id, txid)
            .await
            .expect("record incomplete");
        self.enqueue_recorded(recorded.job).await;
    }

    async fn enqueue_recorded(&self, job: Option<Job>) {
        if let Some(job) = job {
            self.queue.push_jobs(vec![job]).await.expect("enqueue");
        }
    }

    // ---- waiting ---------------------------------------------------------------------------

    pub async fn row(&self, id: &PaymentId) -> PaymentRow {
        self.ledger
            .payment(id)
            .await
            .expect("ledger readable")
            .expect("payment recorded")
    }

    /// Wait until the payment reaches `state` (panics with its history after 30 s).
    pub async fn wait_for(&self, id: &PaymentId, state: PaymentState) -> PaymentRow {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        loop {
            let row = self.row(id).await;
            if row.state == state {
                return row;
            }
            if tokio::time::Instant::now() > deadline {
                let events = self.ledger.payment_events(id).await.unwrap_or_default();
                panic!("payment {id} never reached {state}; now {row:?}\nhistory: {events:#?}");
            }
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    }

    /// Let queued work settle: wait a little so that a wrongly enqueued or retried job would
    /// have run by then (used before asserting that something did NOT happen).
    pub async fn settle(&self) {
        tokio::time::sleep(Duration::from_millis(800)).await;
    }
}

/// Requests the receiver got: (signature header, body).
pub type Hits = Arc<Mutex<Vec<(String, Vec<u8>)>>>;

/// An in-test webhook receiver: records every request's signature header and body.
pub struct Receiver {
    pub url: String,
    pub hits: Hits,
}

pub async fn webhook_receiver() -> Receiver {
    use axum::Router;
    use axum::body::Bytes;
    use axum::http::HeaderMap;
    use axum::routing::post;
    let hits: Hits = Arc::default();
    let store = hits.clone();
    let app = Router::new().route(
        "/hook",
        post(move |headers: HeaderMap, body: Bytes| {
            let store = store.clone();
            async move {
                let sig = headers
                    .get("pi-payments-signature")
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default()
                    .to_string();
                store.lock().expect("lock").push((sig, body.to_vec()));
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind receiver");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Receiver {
        url: format!("http://{addr}/hook"),
        hits,
    }
}
