//! Command-line flags of the simulator, as a clap `Args` struct so that every binary that can
//! start pi-sim (`pi-sim`, `pi-payments sim`) offers the same flags with the same meaning.

use std::net::IpAddr;
use std::time::Duration;

use clap::Args;

use crate::amount::parse_stroops;
use crate::{SimConfig, Target};

/// The simulator's flags, shared by the `pi-sim` binary and `pi-payments sim`.
#[derive(Args, Debug, Clone)]
pub struct SimArgs {
    /// Address both listeners bind to (0.0.0.0: reachable from other hosts or containers).
    #[arg(long, default_value = "127.0.0.1")]
    pub host: IpAddr,
    /// Platform API port (0 = a free port, announced in the ready line).
    #[arg(long, default_value_t = 0)]
    pub platform_port: u16,
    /// Horizon port (0 = a free port).
    #[arg(long, default_value_t = 0)]
    pub horizon_port: u16,
    /// Server API key (default: random, printed in the ready line).
    #[arg(long)]
    pub api_key: Option<String>,
    /// App wallet secret seed `S…` (default: a random wallet).
    #[arg(long)]
    pub app_wallet_seed: Option<String>,
    /// Network passphrase.
    #[arg(long, default_value = "Pi Testnet")]
    pub network: String,
    /// Seconds between ledger closes; 0 = one ledger per submission.
    #[arg(long, default_value_t = 1.0)]
    pub ledger_seconds: f64,
    /// Per source account, at most this many transactions per ledger.
    #[arg(long)]
    pub max_tx_per_ledger: Option<u32>,
    /// The chain's clock minus the real clock, in seconds (e.g. -120: the validators' time is
    /// two minutes behind this machine's); ledger close times and time bounds follow it.
    #[arg(long, default_value_t = 0, allow_hyphen_values = true)]
    pub clock_offset_seconds: i64,
    /// Whom Pi's one-open-A2U-payment limit (`ongoing_payment_found`) counts.
    #[arg(long, value_enum, default_value = "per-user")]
    pub a2u_open_limit: crate::state::A2uOpenLimit,
    /// Seconds before `POST /transactions` answers 504 (the transaction still lands).
    #[arg(long, default_value_t = 30.0)]
    pub submit_timeout: f64,
    /// Requests per second per Authorization value (sliding 1 s window) before 429.
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Latency added to every faulted request, in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
    /// Probability (0..1) of an injected 500 before the handler.
    #[arg(long, default_value_t = 0.0)]
    pub fail_rate: f64,
    /// Probability (0..1) that the handler runs and the connection is closed unanswered.
    #[arg(long, default_value_t = 0.0)]
    pub drop_rate: f64,
    /// Listeners the faults apply to: platform, horizon (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "platform", value_parser = parse_target)]
    pub fault_targets: Vec<Target>,
    /// Seed of the fault RNG (default: random).
    #[arg(long)]
    pub seed: Option<u64>,
    /// App wallet balance at start, in Pi.
    #[arg(long, default_value = "1000000", value_parser = parse_pi)]
    pub app_balance: i64,
    /// Balance of every new Pioneer wallet, in Pi.
    #[arg(long, default_value = "1000", value_parser = parse_pi)]
    pub pioneer_balance: i64,
    /// Keep the state (payments, Pioneers, chain, API key, app wallet) in this JSON file
    /// across restarts: loaded at start if it exists, saved while running and at shutdown.
    /// It holds seeds: keep it private.
    #[arg(long)]
    pub state_file: Option<std::path::PathBuf>,
}

fn parse_target(text: &str) -> Result<Target, String> {
    Target::parse(text).ok_or_else(|| format!("unknown target {text:?}; use platform or horizon"))
}

fn parse_pi(text: &str) -> Result<i64, String> {
    parse_stroops(text)
        .filter(|&s| s > 0)
        .ok_or_else(|| format!("{text:?} is not a positive amount of Pi with at most 7 decimals"))
}

impl SimArgs {
    /// The configuration these flags describe; an error names the bad flag.
    pub fn into_config(self) -> Result<SimConfig, String> {
        if !(self.submit_timeout.is_finite() && self.submit_timeout > 0.0) {
            return Err("--submit-timeout must be a positive number of seconds".into());
        }
        let config = SimConfig {
            host: self.host,
            platform_port: self.platform_port,
            horizon_port: self.horizon_port,
            api_key: self.api_key,
            app_wallet_seed: self.app_wallet_seed,
            network: self.network,
            ledger_seconds: self.ledger_seconds,
            max_tx_per_ledger: self.max_tx_per_ledger,
            submit_timeout: Duration::from_secs_f64(self.submit_timeout),
            clock_offset_seconds: self.clock_offset_seconds,
            a2u_open_limit: self.a2u_open_limit,
            rate_limit: self.rate_limit,
            latency_ms: self.latency_ms,
            fail_rate: self.fail_rate,
            drop_rate: self.drop_rate,
            fault_targets: self.fault_targets,
            seed: self.seed,
            app_balance: self.app_balance,
            pioneer_balance: self.pioneer_balance,
            state_file: self.state_file,
        };
        config.validate().map_err(|e| e.to_string())?;
        Ok(config)
    }
}
