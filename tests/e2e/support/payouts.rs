//! The payout side of the harness: an in-test pi-sim (so each test picks its ledger time, balances
//! and faults) and the real service started from a `Config` pointing at it exactly as `main`
//! would (`PI_API_KEY`, `PI_API_BASE_URL`, `PI_HORIZON_URL`, `PI_APP_WALLET`, `PI_WALLET_SEED`,
//! `ADMIN_TOKEN`, a SQLite ledger and the embedded queue in a temp directory).
//!
//! The same settings are available as environment variables ([`PayoutEnv::env_vars`]) for
//! tests that run the real binary (`worker`, `payouts import`, `channels create`).

use pi_payments::cli::ConfigArgs;
use pi_payments::config::QueueTarget;
use pi_payments::{Config, Role, RunningApp};
use pi_sim::control_client::SimControl;
use pi_sim::{RunningSim, SimConfig};
use serde_json::Value;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// The operator token of every payout test.
pub const ADMIN_TOKEN: &str = "payout-tests-admin-token-0123456789";

/// How long payouts may take to settle, even under injected faults.
pub const DEADLINE: Duration = Duration::from_secs(75);

/// What the service runs with, beyond the sim.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `PI_CHANNEL_SEEDS` (funded on the sim's chain before the service starts).
    pub channels: usize,
    /// Which parts run in-process (`Serve` when `None`).
    pub role: Option<Role>,
    /// Use this sim's Horizon instead of the Platform sim's (an independent chain).
    pub horizon_url: Option<String>,
}

/// A pi-sim and the service paying out against it.
pub struct PayoutEnv {
    pub sim: RunningSim,
    /// pi-sim's control API: Pioneers, faults, audit, log.
    pub control: SimControl,
    pub app: Option<RunningApp>,
    pub http: reqwest::Client,
    /// The service's base URL (`None` for a worker-only service).
    pub api: String,
    /// pi-sim's Platform URL (control API under `/_sim`).
    pub sim_url: String,
    /// The Horizon the service pays on.
    pub horizon_url: String,
    pub database_url: String,
    pub queue_path: PathBuf,
    pub namespace: String,
    pub channel_seeds: Vec<String>,
    pub dir: tempfile::TempDir,
}

/// A fast simulated chain: ledgers every `ledger_seconds`.
pub fn sim_config(ledger_seconds: f64) -> SimConfig {
    SimConfig {
        ledger_seconds,
        ..SimConfig::default()
    }
}

impl PayoutEnv {
    /// Start pi-sim with `sim`, then the service with `options`.
    pub async fn start(sim: SimConfig, options: Options) -> PayoutEnv {
        pi_payments_core::pi_client::install_crypto_provider();
        let sim = pi_sim::start(sim).await.expect("pi-sim starts");
        let dir = tempfile::tempdir().unwrap();
        let channel_seeds: Vec<String> = (0..options.channels)
            .map(|_| {
                let w = pi_payments_core::stellar::Wallet::generate();
                sim.chain().fund_account(&w.public_key(), 10 * 10_000_000);
                w.expose_seed()
            })
            .collect();
        let database_url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let mut env = PayoutEnv {
            sim_url: sim.platform_url.clone(),
            horizon_url: options
                .horizon_url
                .clone()
                .unwrap_or_else(|| sim.horizon_url.clone()),
            control: SimControl::of(&sim).expect("control client"),
            sim,
            app: None,
            http: reqwest::Client::new(),
            api: String::new(),
            // Where the binary puts the embedded queue for this ledger, so that an in-process
            // API and a `worker` process of the same test share it.
            queue_path: pi_payments::config::queue_file_for(&database_url),
            database_url,
            namespace: pi_payments::config::DEFAULT_QUEUE_NAMESPACE.to_string(),
            channel_seeds,
            dir,
        };
        let role = options.role.unwrap_or(Role::Serve);
        let app = RunningApp::start(env.config(), role).await.unwrap();
        if let Some(addr) = app.addr {
            env.api = format!("http://{addr}");
        }
        env.app = Some(app);
        env
    }

    /// The service's configuration (what the environment of [`PayoutEnv::env_vars`] gives).
    pub fn config(&self) -> Config {
        let args = ConfigArgs {
            pi_api_key: Some(self.sim.api_key.clone()),
            pi_api_base_url: Some(self.sim.platform_url.clone()),
            pi_horizon_url: Some(self.horizon_url.clone()),
            pi_network: Some(self.sim.network_passphrase.clone()),
            pi_app_wallet: Some(self.sim.app_wallet_public_key.clone()),
            pi_wallet_seed: Some(self.sim.app_wallet_seed.clone()),
            pi_channel_seeds: (!self.channel_seeds.is_empty())
                .then(|| self.channel_seeds.join(",")),
            admin_token: Some(ADMIN_TOKEN.into()),
            database_url: Some(self.database_url.clone()),
            bind_addr: Some("127.0.0.1:0".into()),
            pi_rate_limit: Some("1000".into()),
            horizon_rate_limit: Some("1000".into()),
            ..ConfigArgs::default()
        };
        let mut config = Config::from_args(&args).unwrap();
        config.queue = QueueTarget::Sqlite(self.queue_path.clone());
        config.queue_namespace = self.namespace.clone();
        config
    }

    /// The same configuration as environment variables, for the real binary (same ledger,
    /// same embedded queue file, same queue namespace).
    pub fn env_vars(&self) -> Vec<(&'static str, String)> {
        let mut vars = vec![
            ("PI_API_KEY", self.sim.api_key.clone()),
            ("PI_API_BASE_URL", self.sim.platform_url.clone()),
            ("PI_HORIZON_URL", self.horizon_url.clone()),
            ("PI_NETWORK", self.sim.network_passphrase.clone()),
            ("PI_APP_WALLET", self.sim.app_wallet_public_key.clone()),
            ("PI_WALLET_SEED", self.sim.app_wallet_seed.clone()),
            ("ADMIN_TOKEN", ADMIN_TOKEN.to_string()),
            ("DATABASE_URL", self.database_url.clone()),
            ("PI_RATE_LIMIT", "1000".to_string()),
            ("HORIZON_RATE_LIMIT", "1000".to_string()),
            ("BIND_ADDR", "127.0.0.1:0".to_string()),
            ("CLIENT_RATE_LIMIT", "0".to_string()),
            ("RUST_LOG", "warn".to_string()),
        ];
        if !self.channel_seeds.is_empty() {
            vars.push(("PI_CHANNEL_SEEDS", self.channel_seeds.join(",")));
        }
        vars
    }

    /// A `pi-payments` command with exactly [`PayoutEnv::env_vars`] (nothing inherited that
    /// could point it elsewhere).
    pub fn command(&self) -> std::process::Command {
        let mut cmd = std::process::Command::new(env!("CARGO_BIN_EXE_pi-payments"));
        cmd.env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in self.env_vars() {
            cmd.env(k, v);
        }
        cmd.current_dir(self.dir.path());
        cmd
    }

    /// Stop the service and the sim.
    pub async fn stop(mut self) {
        if let Some(app) = self.app.take() {
            app.stop().await.unwrap();
        }
        self.sim.shutdown().await;
    }

    // -- HTTP -------------------------------------------------------------------------------

    /// An admin request (`Authorization: Bearer ADMIN_TOKEN`).
    pub fn admin(&self, method: reqwest::Method, path: &str) -> reqwest::RequestBuilder {
        self.http
            .request(method, format!("{}{path}", self.api))
            .bearer_auth(ADMIN_TOKEN)
    }

    pub async fn send(rq: reqwest::RequestBuilder) -> (u16, Value) {
        let res = rq.send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// `POST /payouts` with `body`.
    pub async fn post_payout(&self, body: Value) -> (u16, Value) {
        Self::send(self.admin(reqwest::Method::POST, "/payouts").json(&body)).await
    }

    /// `POST /payouts/bulk` with a CSV body.
    pub async fn post_csv(&self, csv: &str) -> (u16, Value) {
        Self::send(
            self.admin(reqwest::Method::POST, "/payouts/bulk")
                .header("content-type", "text/csv")
                .body(csv.to_string()),
        )
        .await
    }

    /// `GET /payouts/{id}`: `{payout, events}`.
    pub async fn payout(&self, id: &str) -> Value {
        let (status, body) =
            Self::send(self.admin(reqwest::Method::GET, &format!("/payouts/{id}"))).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Every payout of the ledger (oldest first).
    pub async fn ledger_payouts(&self) -> Vec<pi_payments_core::ledger::PayoutRow> {
        let ledger = &self.app.as_ref().unwrap().ledger;
        let mut all = Vec::new();
        let mut after = None;
        loop {
            let page = ledger
                .payouts(&Default::default(), 1000, after.as_ref())
                .await
                .unwrap();
            if page.is_empty() {
                return all;
            }
            after = page.last().map(|r| r.id.clone());
            all.extend(page);
        }
    }

    /// Wait until none of `ids` is in flight any more; their rows.
    pub async fn wait_settled(&self, ids: &[String]) -> Vec<Value> {
        let start = Instant::now();
        let mut pending: Vec<String> = ids.to_vec();
        let mut done = std::collections::HashMap::new();
        while !pending.is_empty() {
            assert!(
                start.elapsed() < DEADLINE,
                "{} payouts never settled, e.g. {}",
                pending.len(),
                self.payout(&pending[0]).await
            );
            let mut still = Vec::new();
            for id in pending {
                let row = self.payout(&id).await["payout"].clone();
                let state = row["state"].as_str().unwrap_or("").to_string();
                if matches!(
                    state.as_str(),
                    "completed" | "failed" | "cancelled" | "needs_attention"
                ) {
                    done.insert(id, row);
                } else {
                    still.push(id);
                }
            }
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        ids.iter().map(|id| done[id].clone()).collect()
    }

    // -- pi-sim ---------------------------------------------------------------------------------

    /// A Pioneer known to Pi (funded on the sim's chain); its wallet address.
    pub async fn pioneer(&self, uid: &str) -> String {
        self.control.user(uid).await.unwrap().wallet_address
    }

    /// An account's balance on the service's Horizon (`GET /accounts/{G}`), in stroops; 0 if
    /// the account does not exist.
    pub async fn balance(&self, address: &str) -> i64 {
        let res = self
            .http
            .get(format!("{}/accounts/{address}", self.horizon_url))
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 404 {
            return 0;
        }
        let v: Value = res.json().await.unwrap();
        let native = v["balances"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["asset_type"] == "native")
            .unwrap()["balance"]
            .as_str()
            .unwrap()
            .to_string();
        pi_payments_core::PiAmount::parse(&native)
            .map(|a| a.stroops())
            .unwrap_or(0)
    }

    pub async fn faults(&self, knobs: Value) {
        self.control.faults(&knobs).await.unwrap();
    }

    /// pi-sim's audit must be clean: ok, and nothing paid twice.
    pub async fn assert_audit_ok(&self) {
        let audit = self.control.audit().await.unwrap();
        assert_eq!(audit["ok"], true, "audit: {audit:#}");
        assert!(!audit.to_string().contains("double_paid"), "{audit}");
    }

    /// How many A2U payments Pi holds.
    pub async fn pi_payment_count(&self) -> usize {
        let payments = self.control.payments().await.unwrap();
        payments
            .iter()
            .filter(|p| p["direction"] == "app_to_user")
            .count()
    }
}

/// `amount` in stroops.
pub fn stroops(amount: &str) -> i64 {
    pi_payments_core::PiAmount::parse(amount).unwrap().stroops()
}
