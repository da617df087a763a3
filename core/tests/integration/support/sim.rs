//! pi-sim with a fresh SQLite ledger beside it: what core's pipelines talk to in tests. The
//! Pioneer's side, the faults and the reports go through pi-sim's typed control client; our
//! side through real clients built here.

use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::jobs::RecordingQueue;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::pi_client::{PiClient, PiClientConfig, install_crypto_provider};
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::stellar::{Network, Wallet};
use pi_sim::control_client::SimControl;
use pi_sim::{RunningSim, SimConfig};
use serde_json::Value;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use super::ledger::{Cleanup, sqlite};

/// A running pi-sim, its control API, and a fresh ledger with a queue that records jobs.
pub struct SimEnv {
    /// The simulator (URLs, API key, app wallet).
    pub sim: RunningSim,
    /// The simulator's control API: Pioneers, U2A payments, faults, log, audit.
    pub control: SimControl,
    /// A fresh SQLite ledger of this test alone.
    pub ledger: Ledger,
    /// Jobs the code under test enqueued (no workers run).
    pub queue: RecordingQueue,
    cleanup: Cleanup,
}

/// pi-sim's defaults with this many seconds per ledger close (0 = one ledger per submission).
pub fn fast_sim(ledger_seconds: f64) -> SimConfig {
    SimConfig {
        ledger_seconds,
        ..SimConfig::default()
    }
}

/// Starts pi-sim with `config` and opens a fresh ledger.
pub async fn start(config: SimConfig) -> SimEnv {
    install_crypto_provider();
    let sim = pi_sim::start(config).await.expect("pi-sim starts");
    let control = SimControl::of(&sim).unwrap();
    let (ledger, cleanup) = sqlite().await;
    SimEnv {
        sim,
        control,
        ledger,
        queue: RecordingQueue::new(),
        cleanup,
    }
}

impl SimEnv {
    /// A Pi client of the app with `retry` (a limiter high enough never to slow a test).
    pub fn pi(&self, retry: RetryPolicy) -> PiClient {
        let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(10_000).unwrap()));
        let mut cfg = PiClientConfig::new(&self.sim.platform_url, &self.sim.api_key, limiter);
        cfg.retry = retry;
        cfg.timeout = Duration::from_secs(10);
        PiClient::new(cfg).unwrap()
    }

    /// A Horizon client of the sim's chain.
    pub fn horizon(&self) -> HorizonClient {
        HorizonClient::new(&self.sim.horizon_url, Duration::from_secs(40)).unwrap()
    }

    /// The app's wallet.
    pub fn app_wallet(&self) -> Wallet {
        Wallet::from_seed(&self.sim.app_wallet_seed).unwrap()
    }

    /// The sim's network.
    pub fn network(&self) -> Network {
        Network::new(&self.sim.network_passphrase)
    }

    /// A Pioneer (funded on the sim's chain); returns its wallet address.
    pub async fn pioneer(&self, uid: &str) -> String {
        self.control.user(uid).await.unwrap().wallet_address
    }

    /// An account's balance in stroops; 0 if it does not exist.
    pub async fn balance(&self, address: &str) -> i64 {
        self.horizon()
            .account(address)
            .await
            .unwrap()
            .map(|a| a.balance_stroops)
            .unwrap_or(0)
    }

    /// A partial update of pi-sim's fault knobs.
    pub async fn faults(&self, update: Value) {
        self.control.faults(&update).await.unwrap();
    }

    /// pi-sim's audit of Platform records against the chain.
    pub async fn audit(&self) -> Value {
        self.control.audit().await.unwrap()
    }

    /// The audit is clean: ok, and nothing paid twice.
    pub async fn assert_audit_ok(&self) {
        let audit = self.audit().await;
        assert_eq!(audit["ok"], true, "audit: {audit:#}");
        let text = audit.to_string();
        assert!(!text.contains("double_paid"), "{text}");
    }

    /// The sim's payments (Pi's view).
    pub async fn pi_payments(&self) -> Vec<Value> {
        self.control.payments().await.unwrap()
    }

    /// Checks the audit is clean ([`SimEnv::assert_audit_ok`]), then stops as [`SimEnv::done`].
    pub async fn done_audited(self) {
        self.assert_audit_ok().await;
        self.done().await;
    }

    /// Stops the sim and removes the ledger.
    pub async fn done(self) {
        self.sim.shutdown().await;
        self.cleanup.done(self.ledger).await;
    }
}
