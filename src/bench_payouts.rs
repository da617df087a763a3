//! `pi-payments bench payouts --count 10000 --ledger-seconds 1 --channels N`: how close A2U
//! payouts come to what the chain allows.
//!
//! The service runs in-process (SQLite ledger and embedded queue in a scratch directory, API
//! and workers) against an in-process pi-sim. The bench requests `count` payouts in ONE
//! `POST /payouts/bulk`, to `count` distinct Pioneers (Pi allows one open A2U payment per
//! Pioneer), waits until every one is completed, and prints the wall time against the chain's
//! bound: one payout per ledger per transaction source (the app wallet, or each channel), so
//! `ceil(count / max(1, channels)) × ledger_seconds`. It also prints pi-sim's audit (zero
//! `double_paid` expected), the Pi calls made and the process's peak RSS.

use crate::cli::{BenchPayoutsArgs, ConfigArgs};
use crate::config::{Config, QueueTarget};
use crate::startup::{Role, RunningApp};
use anyhow::Context;
use pi_payments_core::amount::STROOPS_PER_PI;
use pi_payments_core::ids::BatchId;
use pi_payments_core::state::PayoutState;
use pi_payments_core::stellar::Wallet;
use serde_json::Value;
use std::fmt::Write as _;
use std::time::{Duration, Instant};

/// Pi Platform calls one payout needs: create, complete, and sometimes a get.
const PI_CALLS_PER_PAYOUT: u32 = 3;

/// `HORIZON_RATE_LIMIT` of the benches: pi-sim is no public Horizon, and the benches measure
/// the service's own pace, so its budget must never be what they measure.
pub const HORIZON_UNLIMITED: u32 = 1_000_000;

/// Scratch directory for the bench's ledger and queue, removed on drop.
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The process's peak resident set (`VmHWM`), in KiB; `None` off Linux.
fn peak_rss_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// One of pi-sim's reports (`/_sim/audit`, `/_sim/log`) as JSON.
async fn sim_report(
    http: &reqwest::Client,
    sim: &pi_sim::RunningSim,
    report: &str,
) -> anyhow::Result<Value> {
    let url = format!("{}/_sim/{report}", sim.platform_url);
    Ok(http.get(url).send().await?.json().await?)
}

/// Run the benchmark and print its report.
pub async fn run(args: BenchPayoutsArgs) -> anyhow::Result<()> {
    anyhow::ensure!(args.count > 0, "--count must be at least 1");
    anyhow::ensure!(
        args.ledger_seconds.is_finite() && args.ledger_seconds > 0.0,
        "--ledger-seconds must be greater than 0"
    );
    anyhow::ensure!(args.channels <= 100, "--channels must be at most 100");
    let amount = pi_payments_core::PiAmount::parse(&args.amount)
        .map_err(|e| anyhow::anyhow!("--amount: {e}"))?;
    pi_payments_core::pi_client::install_crypto_provider();
    let sources = args.channels.max(1);
    let concurrency = args.concurrency.unwrap_or(4 * sources + 16);
    // The chain's pace: `sources` payouts per ledger, each ~3 Pi calls.
    let needed_rate = f64::from(PI_CALLS_PER_PAYOUT) * sources as f64 / args.ledger_seconds;
    let rate_limit = args
        .rate_limit
        .unwrap_or_else(|| ((needed_rate * 4.0).ceil() as u32).max(100));

    let scratch = Scratch(std::env::temp_dir().join(format!(
        "pi-payments-bench-payouts-{}-{}",
        std::process::id(),
        pi_payments_core::ids::random_alnum(8)
    )));
    std::fs::create_dir_all(&scratch.0)
        .with_context(|| format!("creating {}", scratch.0.display()))?;

    let fees = i64::try_from(args.count).unwrap_or(i64::MAX) * 100_000;
    let budget = i64::try_from(args.count)
        .unwrap_or(i64::MAX)
        .saturating_mul(amount.stroops())
        .saturating_add(fees)
        .saturating_add(1_000 * STROOPS_PER_PI);
    let sim = pi_sim::start(pi_sim::SimConfig {
        ledger_seconds: args.ledger_seconds,
        app_balance: budget,
        ..pi_sim::SimConfig::default()
    })
    .await
    .context("starting pi-sim")?;
    let channels: Vec<Wallet> = (0..args.channels).map(|_| Wallet::generate()).collect();
    for c in &channels {
        // Funded directly on the simulated chain (not part of what is measured).
        sim.chain()
            .fund_account(&c.public_key(), 100 * STROOPS_PER_PI);
    }
    let admin_token = pi_payments_core::ids::random_alnum(32);
    let channel_seeds: Vec<String> = channels.iter().map(Wallet::expose_seed).collect();
    let config_args = ConfigArgs {
        pi_api_key: Some(sim.api_key.clone()),
        pi_api_base_url: Some(sim.platform_url.clone()),
        pi_horizon_url: Some(sim.horizon_url.clone()),
        pi_network: Some(sim.network_passphrase.clone()),
        pi_app_wallet: Some(sim.app_wallet_public_key.clone()),
        pi_wallet_seed: Some(sim.app_wallet_seed.clone()),
        pi_channel_seeds: (!channel_seeds.is_empty()).then(|| channel_seeds.join(",")),
        admin_token: Some(admin_token.clone()),
        database_url: Some(format!(
            "sqlite://{}",
            scratch.0.join("ledger.db").display()
        )),
        bind_addr: Some("127.0.0.1:0".into()),
        pi_rate_limit: Some(rate_limit.to_string()),
        // The chain's pace is measured, not a public Horizon's budget.
        horizon_rate_limit: Some(HORIZON_UNLIMITED.to_string()),
        worker_concurrency: Some(concurrency.to_string()),
        ..ConfigArgs::default()
    };
    let mut config = Config::from_args(&config_args).map_err(|e| anyhow::anyhow!("{e}"))?;
    config.queue = QueueTarget::Sqlite(scratch.0.join("queue.db"));
    let app = RunningApp::start(config, Role::Serve).await?;
    let api = format!(
        "http://{}",
        app.addr.context("the bench's service has no API address")?
    );
    let http = reqwest::Client::new();

    let run = pi_payments_core::ids::random_alnum(6);
    let mut csv = String::from("uid,amount,memo,idempotency_key\n");
    for i in 0..args.count {
        // Pi pays only Pioneers who used the app: each signs in once (not measured).
        http.post(format!("{}/_sim/users", sim.platform_url))
            .json(&serde_json::json!({ "uid": format!("bench-{run}-{i}") }))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .context("making the bench's Pioneers known to pi-sim")?;
        let _ = writeln!(
            csv,
            "bench-{run}-{i},{amount},Bench payout {i},bench-{run}-{i}"
        );
    }
    println!(
        "bench payouts: {} payouts of {amount} Pi, {} channel(s), ledger every {} s, worker concurrency {concurrency}",
        args.count, args.channels, args.ledger_seconds
    );
    println!(
        "PI_RATE_LIMIT={rate_limit}/s: the chain's pace needs about {needed_rate:.0} Pi calls/s ({PI_CALLS_PER_PAYOUT} per payout), so the rate limit is not the bottleneck"
    );
    let started = Instant::now();
    let answer = http
        .post(format!("{api}/payouts/bulk?source=bench"))
        .bearer_auth(&admin_token)
        .header("content-type", "text/csv")
        .body(csv)
        .send()
        .await
        .context("POST /payouts/bulk")?;
    let status = answer.status();
    let body: Value = answer.json().await.unwrap_or(Value::Null);
    anyhow::ensure!(
        status.as_u16() == 202,
        "POST /payouts/bulk: {status} {body}"
    );
    let accepted_after = started.elapsed();
    let batch = BatchId::parse(body["batch_id"].as_str().unwrap_or(""))
        .map_err(|e| anyhow::anyhow!("the bulk answer has no batch id: {e}"))?;

    let bound_secs = (args.count.div_ceil(sources)) as f64 * args.ledger_seconds;
    let deadline = Duration::from_secs_f64(bound_secs * 3.0 + 120.0);
    let mut last_report = Instant::now();
    let counts = loop {
        let counts = app.ledger.batch_state_counts(&batch).await?;
        let count_of = |s: PayoutState| {
            counts
                .iter()
                .find(|(st, _)| *st == s)
                .map(|(_, n)| *n)
                .unwrap_or(0)
        };
        let settled: i64 = counts
            .iter()
            .filter(|(s, _)| s.is_terminal() || *s == PayoutState::NeedsAttention)
            .map(|(_, n)| *n)
            .sum();
        if settled >= i64::try_from(args.count).unwrap_or(i64::MAX) {
            break counts;
        }
        if started.elapsed() > deadline {
            eprintln!("giving up after {:.0} s", started.elapsed().as_secs_f64());
            break counts;
        }
        if last_report.elapsed() >= Duration::from_secs(10) {
            last_report = Instant::now();
            eprintln!(
                "  {:>6.0} s: {} completed of {}",
                started.elapsed().as_secs_f64(),
                count_of(PayoutState::Completed),
                args.count
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let wall = started.elapsed();
    let rss = peak_rss_kib();

    let audit = sim_report(&http, &sim, "audit").await?;
    let problems = audit["problems"].as_array().cloned().unwrap_or_default();
    let duplicates = problems
        .iter()
        .filter(|p| p["problem"] == "double_paid")
        .count();
    let log = sim_report(&http, &sim, "log").await?;
    app.stop().await?;
    sim.shutdown().await;
    drop(scratch);

    let completed = counts
        .iter()
        .find(|(s, _)| *s == PayoutState::Completed)
        .map(|(_, n)| *n)
        .unwrap_or(0);
    println!();
    println!(
        "accepted by the API in {:.2} s (one bulk request)",
        accepted_after.as_secs_f64()
    );
    let states: Vec<String> = counts
        .iter()
        .map(|(s, n)| format!("{} {n}", s.as_str()))
        .collect();
    println!("states: {}", states.join(", "));
    println!("wall time: {:.1} s", wall.as_secs_f64());
    println!(
        "chain bound: ceil({} / {sources}) ledgers x {} s = {bound_secs:.1} s",
        args.count, args.ledger_seconds
    );
    let ratio = wall.as_secs_f64() / bound_secs.max(1e-9);
    println!("ratio wall / bound: {ratio:.3}");
    println!(
        "duplicates (double_paid in /_sim/audit): {duplicates}; audit ok: {}; problems: {}",
        audit["ok"],
        problems.len()
    );
    let calls = log["total_requests"].as_u64().unwrap_or(0);
    println!(
        "Pi + Horizon requests seen by pi-sim: {calls} ({:.1} per payout), busiest second: {} requests",
        calls as f64 / args.count as f64,
        log["max_rate_1s"]
    );
    match rss {
        Some(kib) => println!(
            "peak RSS (VmHWM of this process: API, workers and pi-sim together): {:.1} MiB",
            kib as f64 / 1024.0
        ),
        None => println!("peak RSS: unavailable (no /proc/self/status)"),
    }
    anyhow::ensure!(
        completed == i64::try_from(args.count).unwrap_or(i64::MAX),
        "only {completed} of {} payouts completed",
        args.count
    );
    anyhow::ensure!(duplicates == 0, "{duplicates} payouts were paid twice");
    Ok(())
}
