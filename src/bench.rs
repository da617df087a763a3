//! `pi-payments bench callbacks`: how many approve callbacks per second this machine's API
//! accepts (each one recorded in the ledger and enqueued: SQLite and the embedded queue by
//! default, PostgreSQL with `--postgres`, Redis with `--redis`), and at what latency, next to
//! the same server's `/healthz` in the same run. The ratio of the two shows what the callback
//! path costs over a bare request.
//!
//! The load comes from `connections` keep-alive HTTP/1.1 connections, each sending its next
//! request as soon as the previous answer arrives (closed loop), from this same process.

use crate::cli::BenchCallbacksArgs;
use crate::cli::ConfigArgs;
use crate::config::{Config, QueueTarget};
use crate::startup::{Role, RunningApp};
use anyhow::Context;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use pi_payments_core::ledger::scratch::ScratchDatabase;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::net::TcpStream;

/// What one phase measured.
#[derive(Debug, Clone)]
pub struct PhaseReport {
    /// What was requested.
    pub name: &'static str,
    /// Requests answered with the expected status.
    pub ok: u64,
    /// Requests answered otherwise, or failed.
    pub errors: u64,
    /// Measured wall time.
    pub elapsed: Duration,
    /// Median latency.
    pub p50: Duration,
    /// 99th percentile latency.
    pub p99: Duration,
    /// Worst latency.
    pub max: Duration,
}

impl PhaseReport {
    /// Successful requests per second.
    pub fn rate(&self) -> f64 {
        self.ok as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

/// A scratch directory for the bench's ledger and queue, removed on drop.
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new() -> anyhow::Result<ScratchDir> {
        let dir = std::env::temp_dir().join(format!(
            "pi-payments-bench-{}-{}",
            std::process::id(),
            pi_payments_core::ids::random_alnum(8)
        ));
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("creating the scratch directory {}", dir.display()))?;
        Ok(ScratchDir(dir))
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Run the benchmark and print its table. Starts its own service (pi-sim in-process, workers
/// only with `--workers`) on a scratch ledger and queue: SQLite files in a scratch directory by
/// default, a scratch database on `--postgres`'s server, a scratch namespace on `--redis`. The
/// scratch stores are removed afterwards, whatever the run's outcome.
pub async fn run(args: BenchCallbacksArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.connections > 0, "--connections must be at least 1");
    anyhow::ensure!(args.seconds > 0, "--seconds must be at least 1");
    let scratch = ScratchDir::new()?;
    let pg = match &args.postgres {
        Some(url) => Some(
            ScratchDatabase::create(url, "pi_payments_bench")
                .await
                .context("creating the bench's scratch database on the --postgres server")?,
        ),
        None => None,
    };
    let namespace = format!(
        "bench{}",
        pi_payments_core::ids::random_alnum(8).to_ascii_lowercase()
    );
    let measured = measure(&args, &scratch, pg.as_ref(), &namespace).await;
    if let Some(pg) = pg {
        let name = pg.name().to_string();
        if let Err(err) = pg.drop_database().await {
            eprintln!("could not drop the scratch database {name}: {err}");
        }
    }
    if let Some(url) = &args.redis
        && let Err(err) = pi_payments_worker::delete_redis_namespace(url, &namespace).await
    {
        eprintln!("could not delete the scratch Redis namespace {namespace}: {err}");
    }
    drop(scratch);
    let (callbacks, healthz) = measured?;

    println!();
    println!(
        "{:<20} {:>10} {:>8} {:>10} {:>10} {:>10}",
        "phase", "req/s", "errors", "p50", "p99", "max"
    );
    for r in [&callbacks, &healthz] {
        println!(
            "{:<20} {:>10.0} {:>8} {:>10} {:>10} {:>10}",
            r.name,
            r.rate(),
            r.errors,
            fmt_latency(r.p50),
            fmt_latency(r.p99),
            fmt_latency(r.max)
        );
    }
    let ratio = callbacks.rate() / healthz.rate().max(1e-9);
    println!("callbacks / healthz throughput: {ratio:.2}");
    println!(
        "targets: >= 10000 callbacks/s ({}), p99 <= 10 ms ({}), >= 0.5x healthz ({})",
        verdict(callbacks.rate() >= 10_000.0),
        verdict(callbacks.p99 <= Duration::from_millis(10)),
        verdict(ratio >= 0.5)
    );
    Ok(())
}

/// Start the service on the scratch stores, run both phases, stop it.
async fn measure(
    args: &BenchCallbacksArgs,
    scratch: &ScratchDir,
    pg: Option<&ScratchDatabase>,
    namespace: &str,
) -> anyhow::Result<(PhaseReport, PhaseReport)> {
    let database_url = match pg {
        Some(db) => db.url().to_string(),
        None => format!("sqlite://{}", scratch.0.join("bench.db").display()),
    };
    // `api` never embeds a simulator: without the workers the bench gives it one by URL and
    // key, as a deployment would.
    let sim = if args.workers {
        None
    } else {
        Some(
            pi_sim::start(pi_sim::SimConfig::default())
                .await
                .context("starting pi-sim")?,
        )
    };
    let config_args = ConfigArgs {
        pi_api_key: sim.as_ref().map(|s| s.api_key.clone()),
        pi_api_base_url: sim.as_ref().map(|s| s.platform_url.clone()),
        pi_horizon_url: sim.as_ref().map(|s| s.horizon_url.clone()),
        pi_network: sim.as_ref().map(|s| s.network_passphrase.clone()),
        pi_app_wallet: sim.as_ref().map(|s| s.app_wallet_public_key.clone()),
        database_url: Some(database_url),
        redis_url: args.redis.clone(),
        bind_addr: Some("127.0.0.1:0".to_string()),
        // The service's pace is measured, not a public Horizon's budget.
        horizon_rate_limit: Some(crate::bench_payouts::HORIZON_UNLIMITED.to_string()),
        ..ConfigArgs::default()
    };
    let mut config = Config::from_args(&config_args)?;
    // Every connection comes from 127.0.0.1: the per-client limit would measure itself.
    config.client_limit = None;
    config.queue_namespace = namespace.to_string();
    if let QueueTarget::Sqlite(_) = config.queue {
        config.queue = QueueTarget::Sqlite(scratch.0.join("queue.db"));
    }
    config.sim_state_file = Some(scratch.0.join("sim.json"));
    let role = if args.workers { Role::Serve } else { Role::Api };
    let app = RunningApp::start(config, role).await?;
    let addr = app.addr.context("the bench's service has no API address")?;
    println!(
        "bench callbacks: {} connections, {} s per phase, workers {}; ledger {}, queue {}; service on http://{addr}",
        args.connections,
        args.seconds,
        if args.workers { "on" } else { "off" },
        pg.map_or_else(
            || "SQLite (scratch file)".to_string(),
            |db| format!("PostgreSQL (scratch database {})", db.name())
        ),
        if args.redis.is_some() {
            format!("Redis (scratch namespace {namespace})")
        } else {
            "embedded SQLite".to_string()
        },
    );
    let duration = Duration::from_secs(args.seconds);
    let run_id = pi_payments_core::ids::random_alnum(6);
    let callbacks = phase(
        addr,
        "approve callbacks",
        args.connections,
        duration,
        Target::Approve(run_id),
    )
    .await;
    let healthz = phase(
        addr,
        "GET /healthz",
        args.connections,
        duration,
        Target::Healthz,
    )
    .await;
    app.stop().await?;
    if let Some(sim) = sim {
        sim.shutdown().await;
    }
    Ok((callbacks, healthz))
}

fn verdict(ok: bool) -> &'static str {
    if ok { "met" } else { "NOT met" }
}

fn fmt_latency(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

/// What a phase requests.
#[derive(Clone)]
enum Target {
    /// `POST /pi_payment/approve` with a fresh payment id per request (prefix = the run id).
    Approve(String),
    /// `GET /healthz`.
    Healthz,
}

impl Target {
    fn request(&self, conn: usize, n: u64) -> Request<Full<Bytes>> {
        let builder = Request::builder().header(hyper::header::HOST, "bench");
        let built = match self {
            Target::Approve(run) => builder
                .method(Method::POST)
                .uri("/pi_payment/approve")
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(Bytes::from(format!(
                    r#"{{"paymentId":"b{run}c{conn:04}n{n:010}","accessToken":"bench-token"}}"#
                )))),
            Target::Healthz => builder
                .method(Method::GET)
                .uri("/healthz")
                .body(Full::new(Bytes::new())),
        };
        // The parts above are constants and valid; an error here would be a bug in this file.
        built.unwrap_or_else(|_| Request::new(Full::new(Bytes::new())))
    }

    fn expected(&self) -> StatusCode {
        match self {
            Target::Approve(_) => StatusCode::ACCEPTED,
            Target::Healthz => StatusCode::OK,
        }
    }
}

/// What one connection saw.
#[derive(Default)]
struct ConnStats {
    latencies_us: Vec<u32>,
    errors: u64,
}

/// One warm-up second (not counted), then `duration` measured, over `connections` connections.
async fn phase(
    addr: SocketAddr,
    name: &'static str,
    connections: usize,
    duration: Duration,
    target: Target,
) -> PhaseReport {
    let warmup = Duration::from_secs(1);
    let start = Instant::now() + warmup;
    let end = start + duration;
    let tasks: Vec<_> = (0..connections)
        .map(|conn| {
            let target = target.clone();
            tokio::spawn(async move { drive(addr, conn, target, start, end).await })
        })
        .collect();
    let mut all = Vec::new();
    let mut errors = 0;
    for task in tasks {
        match task.await {
            Ok(stats) => {
                all.extend(stats.latencies_us);
                errors += stats.errors;
            }
            Err(_) => errors += 1,
        }
    }
    all.sort_unstable();
    let pick = |q: f64| -> Duration {
        if all.is_empty() {
            return Duration::ZERO;
        }
        let i = ((all.len() as f64 - 1.0) * q).round() as usize;
        Duration::from_micros(u64::from(all[i.min(all.len() - 1)]))
    };
    PhaseReport {
        name,
        ok: all.len() as u64,
        errors,
        elapsed: duration,
        p50: pick(0.50),
        p99: pick(0.99),
        max: pick(1.0),
    }
}

/// One keep-alive connection in a closed loop until `end`; only answers that start after
/// `start` are counted. A broken connection is re-opened (and counted as an error).
async fn drive(
    addr: SocketAddr,
    conn: usize,
    target: Target,
    start: Instant,
    end: Instant,
) -> ConnStats {
    let mut stats = ConnStats::default();
    let mut n: u64 = 0;
    'connect: while Instant::now() < end {
        let Ok(stream) = TcpStream::connect(addr).await else {
            stats.errors += 1;
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(TokioIo::new(stream)).await
        else {
            stats.errors += 1;
            continue;
        };
        tokio::spawn(connection);
        while Instant::now() < end {
            n += 1;
            let request = target.request(conn, n);
            let sent = Instant::now();
            let ok = match sender.send_request(request).await {
                Ok(response) => {
                    let status = response.status();
                    // Read the whole body so the connection can be reused.
                    response.into_body().collect().await.is_ok() && status == target.expected()
                }
                Err(_) => {
                    stats.errors += 1;
                    continue 'connect;
                }
            };
            if sent >= start {
                if ok {
                    let us = sent.elapsed().as_micros();
                    stats
                        .latencies_us
                        .push(u32::try_from(us).unwrap_or(u32::MAX));
                } else {
                    stats.errors += 1;
                }
            }
        }
    }
    stats
}
