//! [`SimConfig`]: every flag of the `pi-sim` binary as a field, so tests and `pi-payments` can
//! start the same simulator in-process.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::time::Duration;

use crate::amount::STROOPS_PER_PI;
use crate::error::SimError;
use crate::faults::Target;

/// How to start the simulator. `Default` gives the binary's flag defaults.
#[derive(Clone)]
pub struct SimConfig {
    /// Address both listeners bind to: 127.0.0.1 (this machine only) by default; 0.0.0.0
    /// when other containers must reach the simulator (the compose `sim` service).
    pub host: IpAddr,
    /// Platform API port on `host`; 0 = a free port.
    pub platform_port: u16,
    /// Horizon port on `host`; 0 = a free port.
    pub horizon_port: u16,
    /// Server API key; random when `None`.
    pub api_key: Option<String>,
    /// App wallet `S…` seed; random wallet when `None`.
    pub app_wallet_seed: Option<String>,
    /// Network passphrase (`Pi Testnet`).
    pub network: String,
    /// Seconds between ledger closes; 0 = one ledger per submission.
    pub ledger_seconds: f64,
    /// Per source account, at most this many transactions per ledger.
    pub max_tx_per_ledger: Option<u32>,
    /// After this long `POST /transactions` answers 504 (the tx still lands).
    pub submit_timeout: Duration,
    /// The chain's clock minus the real clock, in seconds (validators' time differs from
    /// the app server's); ledger close times and time bounds follow the chain's clock.
    pub clock_offset_seconds: i64,
    /// Requests per second per `Authorization` value; `None` = unlimited.
    pub rate_limit: Option<u32>,
    /// Added latency per faulted request.
    pub latency_ms: u64,
    /// Probability of an injected 500.
    pub fail_rate: f64,
    /// Probability of a dropped connection after the handler ran.
    pub drop_rate: f64,
    /// Which listeners the faults apply to (default: the Platform only).
    pub fault_targets: Vec<Target>,
    /// Seed of the fault RNG; random when `None`.
    pub seed: Option<u64>,
    /// App wallet balance at start, in stroops.
    pub app_balance: i64,
    /// Balance of every new Pioneer wallet, in stroops.
    pub pioneer_balance: i64,
    /// Whom the one-open-A2U-payment limit counts (per Pioneer or per app).
    pub a2u_open_limit: crate::state::A2uOpenLimit,
    /// Keep the simulator's state (payments, Pioneers, chain, API key, app wallet) in this
    /// file across restarts; `None`: in memory only.
    pub state_file: Option<PathBuf>,
}

impl Default for SimConfig {
    fn default() -> SimConfig {
        SimConfig {
            host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            platform_port: 0,
            horizon_port: 0,
            api_key: None,
            app_wallet_seed: None,
            network: "Pi Testnet".to_owned(),
            ledger_seconds: 1.0,
            max_tx_per_ledger: None,
            submit_timeout: Duration::from_secs(30),
            clock_offset_seconds: 0,
            a2u_open_limit: crate::state::A2uOpenLimit::PerUser,
            rate_limit: None,
            latency_ms: 0,
            fail_rate: 0.0,
            drop_rate: 0.0,
            fault_targets: vec![Target::Platform],
            seed: None,
            app_balance: 1_000_000 * STROOPS_PER_PI,
            pioneer_balance: 1_000 * STROOPS_PER_PI,
            state_file: None,
        }
    }
}

// Secrets (API key, seed) stay out of Debug output and therefore out of logs.
impl fmt::Debug for SimConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SimConfig")
            .field("host", &self.host)
            .field("platform_port", &self.platform_port)
            .field("horizon_port", &self.horizon_port)
            .field("api_key", &self.api_key.as_ref().map(|_| "<redacted>"))
            .field(
                "app_wallet_seed",
                &self.app_wallet_seed.as_ref().map(|_| "<redacted>"),
            )
            .field("network", &self.network)
            .field("ledger_seconds", &self.ledger_seconds)
            .field("clock_offset_seconds", &self.clock_offset_seconds)
            .field("max_tx_per_ledger", &self.max_tx_per_ledger)
            .field("submit_timeout", &self.submit_timeout)
            .field("rate_limit", &self.rate_limit)
            .field("latency_ms", &self.latency_ms)
            .field("fail_rate", &self.fail_rate)
            .field("drop_rate", &self.drop_rate)
            .field("fault_targets", &self.fault_targets)
            .field("seed", &self.seed)
            .field("app_balance", &self.app_balance)
            .field("pioneer_balance", &self.pioneer_balance)
            .field("state_file", &self.state_file)
            .finish()
    }
}

impl SimConfig {
    /// Refuses values the simulator cannot honour, saying which flag to fix.
    pub fn validate(&self) -> Result<(), SimError> {
        let bad = |msg: String| Err(SimError::Config(msg));
        if !(self.ledger_seconds.is_finite() && self.ledger_seconds >= 0.0) {
            return bad(format!(
                "--ledger-seconds must be >= 0 (0 = one ledger per submission), got {}",
                self.ledger_seconds
            ));
        }
        for (flag, rate) in [
            ("--fail-rate", self.fail_rate),
            ("--drop-rate", self.drop_rate),
        ] {
            if !(0.0..=1.0).contains(&rate) {
                return bad(format!("{flag} must be between 0 and 1, got {rate}"));
            }
        }
        if self.app_balance <= 0 || self.pioneer_balance <= 0 {
            return bad("--app-balance and --pioneer-balance must be greater than 0".into());
        }
        if self.network.is_empty() {
            return bad("--network must not be empty".into());
        }
        if self.api_key.as_deref().is_some_and(str::is_empty) {
            return bad("--api-key must not be empty (omit it for a random key)".into());
        }
        Ok(())
    }
}
