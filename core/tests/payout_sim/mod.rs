//! Shared harness of the payout pipeline tests: a pi-sim, a fresh SQLite (or Postgres) ledger,
//! processors wired to both, the sim's control API, and an in-process driver that steps payouts
//! until they settle (what the worker does with `Job::Payout`).

#![allow(dead_code)]

use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ids::PayoutId;
use pi_payments_core::ledger::{Ledger, PayoutRequest, PayoutRow};
use pi_payments_core::payout::{PayoutConfig, PayoutProcessor, StepOutcome};
use pi_payments_core::pi_client::{PiClient, PiClientConfig};
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::stellar::{Network, Wallet};
use pi_payments_core::{PiAmount, Uid};
use pi_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub struct Env {
    pub sim: RunningSim,
    pub ledger: Ledger,
    pub http: reqwest::Client,
    dir: PathBuf,
}

/// Backoffs in milliseconds so tests settle quickly.
pub fn test_config() -> PayoutConfig {
    PayoutConfig {
        tx_validity: Duration::from_secs(60),
        expiry_margin: Duration::from_secs(2),
        max_attempts: 30,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        resubmit_delay: Duration::from_millis(100),
        fee_cache: Duration::from_secs(10),
    }
}

pub async fn start(config: SimConfig) -> Env {
    pi_payments_core::pi_client::install_crypto_provider();
    let sim = pi_sim::start(config).await.expect("pi-sim starts");
    let dir = std::env::temp_dir().join(format!(
        "pp-payout-sim-{}",
        pi_payments_core::ids::random_alnum(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let ledger = Ledger::connect(&format!("sqlite://{}", dir.join("ledger.db").display()))
        .await
        .unwrap();
    Env {
        sim,
        ledger,
        http: reqwest::Client::new(),
        dir,
    }
}

pub fn fast_sim(ledger_seconds: f64) -> SimConfig {
    SimConfig {
        ledger_seconds,
        ..SimConfig::default()
    }
}

impl Env {
    pub fn pi(&self, retry: RetryPolicy) -> PiClient {
        let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(10_000).unwrap()));
        let mut cfg = PiClientConfig::new(&self.sim.platform_url, &self.sim.api_key, limiter);
        cfg.retry = retry;
        cfg.timeout = Duration::from_secs(10);
        PiClient::new(cfg).unwrap()
    }

    pub fn horizon(&self) -> HorizonClient {
        HorizonClient::new(&self.sim.horizon_url, Duration::from_secs(40)).unwrap()
    }

    pub fn app_wallet(&self) -> Wallet {
        Wallet::from_seed(&self.sim.app_wallet_seed).unwrap()
    }

    pub fn network(&self) -> Network {
        Network::new(&self.sim.network_passphrase)
    }

    /// A processor as one worker process would build it (its own sequence lanes).
    pub fn processor(&self, channels: Vec<Wallet>) -> PayoutProcessor {
        self.processor_with(channels, RetryPolicy::fast())
    }

    pub fn processor_with(&self, channels: Vec<Wallet>, retry: RetryPolicy) -> PayoutProcessor {
        PayoutProcessor::new(
            self.ledger.clone(),
            self.pi(retry),
            self.horizon(),
            self.app_wallet(),
            self.network(),
            channels,
        )
        .with_config(test_config())
    }

    pub async fn control(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Value {
        let mut rq = self
            .http
            .request(method, format!("{}{path}", self.sim.platform_url));
        if let Some(b) = body {
            rq = rq.json(&b);
        }
        let resp = rq.send().await.unwrap();
        let status = resp.status();
        let v: Value = resp.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {v}");
        v
    }

    /// A Pioneer (funded on the sim's chain); returns its wallet address.
    pub async fn pioneer(&self, uid: &str) -> String {
        let v = self
            .control(
                reqwest::Method::POST,
                "/_sim/users",
                Some(json!({"uid": uid})),
            )
            .await;
        v["wallet_address"].as_str().unwrap().to_string()
    }

    pub async fn balance(&self, address: &str) -> i64 {
        self.horizon()
            .account(address)
            .await
            .unwrap()
            .map(|a| a.balance_stroops)
            .unwrap_or(0)
    }

    pub async fn faults(&self, update: Value) {
        self.control(reqwest::Method::POST, "/_sim/faults", Some(update))
            .await;
    }

    pub async fn audit(&self) -> Value {
        self.control(reqwest::Method::GET, "/_sim/audit", None)
            .await
    }

    pub async fn assert_audit_ok(&self) {
        let audit = self.audit().await;
        assert_eq!(audit["ok"], true, "audit: {audit:#}");
        let text = audit.to_string();
        assert!(!text.contains("double_paid"), "{text}");
    }

    /// The sim's payments (Pi's view).
    pub async fn pi_payments(&self) -> Vec<Value> {
        let v = self
            .control(reqwest::Method::GET, "/_sim/payments", None)
            .await;
        v["payments"].as_array().cloned().unwrap_or_default()
    }

    pub async fn request(&self, uid: &str, amount: &str, key: &str) -> PayoutRow {
        let (row, created) = self
            .ledger
            .request_payout(PayoutRequest {
                uid: Uid::parse(uid).unwrap(),
                amount: PiAmount::parse(amount).unwrap(),
                memo: format!("Reward {key}"),
                metadata: json!({"campaign": "test"}),
                idempotency_key: key.to_string(),
                batch_id: None,
            })
            .await
            .unwrap();
        assert!(created);
        row
    }

    pub async fn row(&self, id: &PayoutId) -> PayoutRow {
        self.ledger.payout(id).await.unwrap().unwrap()
    }

    /// Outbox event types about one payout.
    pub async fn outbox(&self, id: &PayoutId) -> Vec<String> {
        self.ledger
            .events_after(0, 100_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.subject_id == id.as_str())
            .map(|e| e.event_type)
            .collect()
    }

    pub async fn done(self) {
        self.ledger.close().await;
        self.sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Step one payout until it settles (Done / Failed / NeedsAttention), sleeping on RetryAt.
pub async fn settle(p: &PayoutProcessor, id: &PayoutId) -> StepOutcome {
    for _ in 0..3_000 {
        match p.step(id).await {
            Ok(StepOutcome::Again) => {}
            Ok(StepOutcome::RetryAt(d)) => tokio::time::sleep(d.min(Duration::from_secs(2))).await,
            Ok(outcome) => return outcome,
            Err(e) => panic!("step {id} failed: {e}"),
        }
    }
    panic!("payout {id} did not settle");
}

/// The in-process driver: step every payout until it settles, `concurrency` at a time.
pub async fn drive(
    p: &PayoutProcessor,
    ids: &[PayoutId],
    concurrency: usize,
) -> HashMap<PayoutId, StepOutcome> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let (p, id, sem) = (p.clone(), id.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let outcome = settle(&p, &id).await;
            (id, outcome)
        });
    }
    let mut out = HashMap::new();
    while let Some(r) = set.join_next().await {
        let (id, outcome) = r.unwrap();
        out.insert(id, outcome);
    }
    out
}
