//! The `pi-sim` binary: starts the simulator on 127.0.0.1, prints exactly one JSON "ready" line
//! on stdout once both listeners are up, logs to stderr, and stops cleanly on SIGTERM/SIGINT.

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use pi_sim::amount::parse_stroops;
use pi_sim::{SimConfig, Target};

/// A local Pi Platform API + Pi blockchain (Horizon) simulator.
#[derive(Parser, Debug)]
#[command(name = "pi-sim", version, about)]
struct Cli {
    /// Platform API port (0 = a free port, announced in the ready line).
    #[arg(long, default_value_t = 0)]
    platform_port: u16,
    /// Horizon port (0 = a free port).
    #[arg(long, default_value_t = 0)]
    horizon_port: u16,
    /// Server API key (default: random, printed in the ready line).
    #[arg(long)]
    api_key: Option<String>,
    /// App wallet secret seed `S…` (default: a random wallet).
    #[arg(long)]
    app_wallet_seed: Option<String>,
    /// Network passphrase.
    #[arg(long, default_value = "Pi Testnet")]
    network: String,
    /// Seconds between ledger closes; 0 = one ledger per submission.
    #[arg(long, default_value_t = 1.0)]
    ledger_seconds: f64,
    /// Per source account, at most this many transactions per ledger.
    #[arg(long)]
    max_tx_per_ledger: Option<u32>,
    /// Seconds before `POST /transactions` answers 504 (the transaction still lands).
    #[arg(long, default_value_t = 30.0)]
    submit_timeout: f64,
    /// Requests per second per Authorization value (sliding 1 s window) before 429.
    #[arg(long)]
    rate_limit: Option<u32>,
    /// Latency added to every faulted request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    latency_ms: u64,
    /// Probability (0..1) of an injected 500 before the handler.
    #[arg(long, default_value_t = 0.0)]
    fail_rate: f64,
    /// Probability (0..1) that the handler runs and the connection is closed unanswered.
    #[arg(long, default_value_t = 0.0)]
    drop_rate: f64,
    /// Listeners the faults apply to: platform, horizon (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "platform", value_parser = parse_target)]
    fault_targets: Vec<Target>,
    /// Seed of the fault RNG (default: random).
    #[arg(long)]
    seed: Option<u64>,
    /// App wallet balance at start, in Pi.
    #[arg(long, default_value = "1000000", value_parser = parse_pi)]
    app_balance: i64,
    /// Balance of every new Pioneer wallet, in Pi.
    #[arg(long, default_value = "1000", value_parser = parse_pi)]
    pioneer_balance: i64,
}

fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text).ok_or_else(|| format!("unknown target {text:?}; use platform or horizon"))
}

fn parse_pi(text: &str) -> Result<i64, String> {
    parse_stroops(text)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("{text:?} is not a positive amount of Pi with at most 7 decimals"))
}

impl Cli {
    fn into_config(self) -> Result<SimConfig, String> {
        if !(self.submit_timeout.is_finite() && self.submit_timeout > 0.0) {
            return Err("--submit-timeout must be a positive number of seconds".into());
        }
        Ok(SimConfig {
            platform_port: self.platform_port,
            horizon_port: self.horizon_port,
            api_key: self.api_key,
            app_wallet_seed: self.app_wallet_seed,
            network: self.network,
            ledger_seconds: self.ledger_seconds,
            max_tx_per_ledger: self.max_tx_per_ledger,
            submit_timeout: Duration::from_secs_f64(self.submit_timeout),
            rate_limit: self.rate_limit,
            latency_ms: self.latency_ms,
            fail_rate: self.fail_rate,
            drop_rate: self.drop_rate,
            fault_targets: self.fault_targets,
            seed: self.seed,
            app_balance: self.app_balance,
            pioneer_balance: self.pioneer_balance,
        })
    }
}

/// Resolves on SIGTERM or SIGINT.
async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops pi-sim");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Cli::parse().into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("pi-sim: {message}");
            return ExitCode::from(2);
        }
    };
    let sim = match pi_sim::start(config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("pi-sim: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The one stdout line tools wait for; everything else goes to stderr.
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", sim.ready_line())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("pi-sim: cannot write the ready line to stdout");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    stop_signal().await;
    tracing::info!("pi-sim stopping");
    sim.shutdown().await;
    ExitCode::SUCCESS
}
