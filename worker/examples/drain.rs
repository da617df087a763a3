//! Approval drain rate against `PI_RATE_LIMIT`: how fast a backlog of approve jobs empties
//! when every call to Pi goes through our one shared limiter.
//!
//! pi-sim plays Pi with its own rate limit set above ours, so a correct limiter drains at
//! (almost) exactly our limit and pi-sim answers zero 429s.
//!
//! ```text
//! cargo run --release -p pi-payments-worker --example drain -- \
//!     --payments 300 --rate 10 [--sim-rate 20] [--concurrency 16] [--redis redis://127.0.0.1:6379] \
//!     [--processes N]
//! ```
//!
//! `--processes N` (with `--redis`) runs N worker pools, each with its own queue connection
//! and its own Pi rate limiter reserving from the deployment's one schedule in Redis, as N
//! `worker` processes would: together they must still drain at `--rate`. With `--separate 1`
//! each pool is a child OS process of its own (this example started again with `DRAIN_CHILD`
//! set), sharing only Redis, the ledger file and pi-sim, exactly as separate workers do.
//!
//! Each approval costs three Pi calls (`GET /payments/{id}`, `GET /me`, `POST …/approve`), so
//! approvals/s is about a third of the Pi calls/s. It prints one JSON line with both.

use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ids::PaymentId;
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::ledger::{Callback, Ledger};
use pi_payments_core::pi_client::{PiClient, PiClientConfig, install_crypto_provider};
use pi_payments_core::rate_limit::{RateLimiter, budget_key};
use pi_payments_core::state::PaymentState;
use pi_payments_worker::{
    JobRetry, QueueConfig, WorkerConfig, WorkerDeps, connect_queue, run_workers,
};
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Args {
    payments: usize,
    rate: u32,
    sim_rate: u32,
    concurrency: usize,
    redis: Option<String>,
    processes: usize,
    separate: bool,
}

/// What a child process needs to run one pool (`--separate`), passed as JSON in `DRAIN_CHILD`.
#[derive(Clone, serde::Serialize, serde::Deserialize)]
struct Pool {
    platform_url: String,
    horizon_url: String,
    api_key: String,
    app_wallet: String,
    network: String,
    ledger_url: String,
    redis: Option<String>,
    sqlite_queue: std::path::PathBuf,
    namespace: String,
    rate: u32,
    concurrency: usize,
}

impl Pool {
    /// Run this pool's workers until `stop` resolves.
    async fn run(
        &self,
        stop: impl std::future::Future<Output = ()> + Send + 'static,
    ) -> Result<(), Box<dyn std::error::Error>> {
        let rate = NonZeroU32::new(self.rate).ok_or("rate must be positive")?;
        // Each pool its own limiter (and Redis connection): only Redis is shared.
        let limiter = match &self.redis {
            Some(url) => RateLimiter::shared_at(
                url,
                budget_key("pi", &[&self.api_key, &self.platform_url]),
                rate,
            )?,
            None => RateLimiter::new(rate),
        };
        let pi = PiClient::new(PiClientConfig::new(
            self.platform_url.clone(),
            self.api_key.clone(),
            Arc::new(limiter),
        ))?;
        let horizon = HorizonClient::new(&self.horizon_url, Duration::from_secs(10))?;
        let deps = WorkerDeps {
            ledger: Ledger::connect(&self.ledger_url).await?,
            pi,
            horizon,
            app_wallet: self.app_wallet.clone(),
            network: self.network.clone(),
            require_order: false,
            anonymous_cancel_grace: pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE,
            webhook: None,
            retry: JobRetry::default(),
            payouts: None,
        };
        let cfg = WorkerConfig {
            concurrency: self.concurrency,
            ..WorkerConfig::default()
        };
        let queue = connect_queue(&QueueConfig {
            redis_url: self.redis.clone(),
            sqlite_path: self.sqlite_queue.clone(),
            namespace: self.namespace.clone(),
        })
        .await?;
        run_workers(deps, queue, cfg, stop).await?;
        Ok(())
    }
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        payments: 300,
        rate: 10,
        sim_rate: 0,
        concurrency: 16,
        redis: None,
        processes: 1,
        separate: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let num = || {
            value
                .parse::<u64>()
                .map_err(|_| format!("{flag}: not a number: {value}"))
        };
        match flag.as_str() {
            "--payments" => args.payments = num()? as usize,
            "--rate" => args.rate = num()? as u32,
            "--sim-rate" => args.sim_rate = num()? as u32,
            "--concurrency" => args.concurrency = num()? as usize,
            "--redis" => args.redis = Some(value),
            "--processes" => args.processes = num()? as usize,
            "--separate" => args.separate = num()? != 0,
            other => return Err(format!("unknown flag {other}")),
        }
    }
    if args.sim_rate == 0 {
        args.sim_rate = args.rate.saturating_mul(2);
    }
    if args.rate == 0 || args.payments == 0 || args.concurrency == 0 || args.processes == 0 {
        return Err("--rate, --payments, --concurrency and --processes must be positive".into());
    }
    if args.processes > 1 && args.redis.is_none() {
        return Err("--processes above 1 needs --redis (the processes share it)".into());
    }
    Ok(args)
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    install_crypto_provider();
    if let Ok(child) = std::env::var("DRAIN_CHILD") {
        // A pool of its own (`--separate`): runs until the parent kills it.
        let pool: Pool = serde_json::from_str(&child)?;
        return pool.run(std::future::pending()).await;
    }
    let args = parse_args().map_err(|e| {
        format!("{e}\nusage: drain [--payments N] [--rate PI_RATE_LIMIT] [--sim-rate N] [--concurrency N] [--redis URL] [--processes N] [--separate 0|1]")
    })?;
    let sim = pi_sim::start(pi_sim::SimConfig {
        rate_limit: Some(args.sim_rate),
        ..pi_sim::SimConfig::default()
    })
    .await?;
    let http = reqwest::Client::new();
    let dir = std::env::temp_dir().join(format!("pi-drain-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let ledger_url = format!("sqlite://{}", dir.join("ledger.db").display());
    let ledger = Ledger::connect(&ledger_url).await?;
    let queue_config = QueueConfig {
        redis_url: args.redis.clone(),
        sqlite_path: dir.join("queue.db"),
        namespace: format!("drain{}", std::process::id()),
    };
    let queue = connect_queue(&queue_config).await?;

    // The backlog: N Pioneers, each with a payment and a recorded approve callback.
    eprintln!("preparing {} payments…", args.payments);
    let mut callbacks = Vec::with_capacity(args.payments);
    let mut ids = Vec::with_capacity(args.payments);
    for i in 0..args.payments {
        let uid = format!("drainer{i}");
        let token: Value = http
            .post(format!("{}/_sim/tokens", sim.platform_url))
            .json(&json!({ "uid": uid }))
            .send()
            .await?
            .json()
            .await?;
        let payment: Value = http
            .post(format!("{}/_sim/u2a", sim.platform_url))
            .json(&json!({ "uid": uid, "amount": 1, "memo": "drain", "metadata": {} }))
            .send()
            .await?
            .json()
            .await?;
        let id = PaymentId::parse(payment["identifier"].as_str().unwrap_or_default())?;
        callbacks.push(Callback::Approve {
            payment_id: id.clone(),
            credential: ApproveCredential::from_token(
                token["access_token"]
                    .as_str()
                    .and_then(pi_payments_core::secret::AccessToken::new),
            ),
        });
        ids.push(id);
    }
    // The approve jobs carry the tokens (the ledger stores none).
    let mut jobs = Vec::new();
    for recorded in ledger.record_callbacks(callbacks).await {
        jobs.extend(recorded?.job);
    }

    http.post(format!("{}/_sim/reset", sim.platform_url))
        .json(&json!({ "what": "log" }))
        .send()
        .await?;
    let pool = Pool {
        platform_url: sim.platform_url.clone(),
        horizon_url: sim.horizon_url.clone(),
        api_key: sim.api_key.clone(),
        app_wallet: sim.app_wallet_public_key.clone(),
        network: sim.network_passphrase.clone(),
        ledger_url,
        redis: args.redis.clone(),
        sqlite_queue: queue_config.sqlite_path.clone(),
        namespace: queue_config.namespace.clone(),
        rate: args.rate,
        concurrency: args.concurrency,
    };
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let mut workers = Vec::new();
    let mut children = Vec::new();
    for _ in 0..args.processes {
        if args.separate {
            children.push(
                std::process::Command::new(std::env::current_exe()?)
                    .env("DRAIN_CHILD", serde_json::to_string(&pool)?)
                    .stdout(std::process::Stdio::null())
                    .spawn()?,
            );
            continue;
        }
        let mut stopped = stopped.clone();
        let pool = pool.clone();
        workers.push(tokio::spawn(async move {
            pool.run(async move {
                let _ = stopped.wait_for(|stop| *stop).await;
            })
            .await
            .map_err(|e| e.to_string())
        }));
    }
    let started = Instant::now();
    queue.push_jobs(jobs).await?;
    loop {
        let approved = ledger
            .payments_in_state(PaymentState::Approved, i64::MAX)
            .await?
            .len();
        if approved >= ids.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let _ = stop.send(true);
    for worker in workers {
        let _ = worker.await;
    }
    for mut child in children {
        let _ = child.kill();
        let _ = child.wait();
    }

    let log: Value = http
        .get(format!("{}/_sim/log", sim.platform_url))
        .send()
        .await?
        .json()
        .await?;
    let calls = log["total_requests"].as_u64().unwrap_or(0);
    let calls_per_s = calls as f64 / elapsed;
    let max_per_key = log["max_rate_1s_per_key"]
        .as_object()
        .map(|m| m.values().filter_map(Value::as_u64).max().unwrap_or(0))
        .unwrap_or(0);
    let report = json!({
        "payments": ids.len(),
        "queue": queue.backend_name(),
        "pi_rate_limit": args.rate,
        "sim_rate_limit": args.sim_rate,
        "concurrency": args.concurrency,
        "processes": args.processes,
        "separate_os_processes": args.separate,
        "seconds": (elapsed * 1000.0).round() / 1000.0,
        "approvals_per_s": ((ids.len() as f64 / elapsed) * 100.0).round() / 100.0,
        "pi_calls": calls,
        "pi_calls_per_s": (calls_per_s * 100.0).round() / 100.0,
        "drain_vs_limit": ((calls_per_s / f64::from(args.rate)) * 1000.0).round() / 1000.0,
        "rate_limited_429": log["totals"]["rate_limited"],
        // Per-key rates are keyed by the Authorization value: print only the highest.
        "max_rate_1s_one_key": max_per_key,
    });
    println!("{report}");
    // Leave a shared Redis (nearly) as we found it.
    let _ = queue.purge_finished(Duration::ZERO).await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
