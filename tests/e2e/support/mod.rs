//! The end-to-end harness shared by the root tests: the real service (API + workers, started
//! in-process from a `Config` exactly as `main` does) on a random port against the in-process
//! pi-sim, on one of two stacks:
//!
//! - [`Stack::Embedded`]: a SQLite ledger and the embedded SQLite queue in a temp directory;
//! - [`Stack::PostgresRedis`]: a fresh Postgres database on `TEST_DATABASE_URL` and a unique
//!   queue namespace on `TEST_REDIS_URL` (skipped with a message when Postgres is unreachable).
//!
//! The Pioneer's side is driven through pi-sim's control API (`/_sim/...`); the app's side
//! through the real callbacks. Waits are polls with a generous deadline, never timed assertions.

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod browser;
pub mod compose;
pub mod deployment;
pub mod http;
pub mod payouts;
pub mod prometheus;

use pi_payments::cli::ConfigArgs;
use pi_payments::config::QueueTarget;
use pi_payments::{Config, Role, RunningApp};
use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_sim::control_client::{SimControl, U2aRequest};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// `APP_API_TOKEN` of the harness's service: [`Harness::get`] reads with it.
pub const APP_API_TOKEN: &str = "e2e-harness-backend-token-0123456789";

/// How long a payment may take to reach a final state, even under injected faults.
pub const DEADLINE: Duration = Duration::from_secs(60);

/// Which ledger and queue the service runs on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stack {
    /// SQLite ledger + embedded SQLite queue.
    Embedded,
    /// Postgres ledger (`TEST_DATABASE_URL`) + Redis queue (`TEST_REDIS_URL`).
    PostgresRedis,
}

/// Knobs of one test's service, beyond the defaults.
#[derive(Clone, Debug, Default)]
pub struct Options {
    /// `PI_RATE_LIMIT`.
    pub rate_limit: Option<u32>,
    /// `REQUIRE_ORDER`.
    pub require_order: bool,
    /// `APP_WEBHOOK_URL` and `APP_WEBHOOK_SECRET`.
    pub webhook: Option<(String, String)>,
    /// A pi-sim started by the test (it outlives the service, for restarts); `None` runs one
    /// inside the service, as `PI_API_KEY` unset does.
    pub remote_pi: Option<RemotePi>,
    /// `CLIENT_RATE_LIMIT` and `CLIENT_RATE_BURST`; `None` turns the per-client limit off
    /// (every test client is 127.0.0.1).
    pub client_limit: Option<(u32, u32)>,
    /// `TRUST_PROXY=true`: tests vary `X-Forwarded-For` to be many clients.
    pub trust_proxy: bool,
    /// `ANONYMOUS_CANCEL_GRACE` in seconds.
    pub anonymous_cancel_grace: Option<u32>,
}

/// Where a test-started pi-sim is, configured as if it were Pi (`PI_API_KEY` & co.).
#[derive(Clone, Debug)]
pub struct RemotePi {
    pub api_key: String,
    pub platform_url: String,
    pub horizon_url: String,
    pub network: String,
    pub app_wallet: String,
}

impl RemotePi {
    pub fn of(sim: &pi_sim::RunningSim) -> RemotePi {
        RemotePi {
            api_key: sim.api_key.clone(),
            platform_url: sim.platform_url.clone(),
            horizon_url: sim.horizon_url.clone(),
            network: sim.network_passphrase.clone(),
            app_wallet: sim.app_wallet_public_key.clone(),
        }
    }
}

/// A Postgres database made for one test, dropped by [`Harness::stop`].
/// A running service and its simulated Pi.
pub struct Harness {
    pub app: RunningApp,
    pub http: reqwest::Client,
    /// The service's base URL.
    pub api: String,
    /// pi-sim's Platform base URL (control API under `/_sim`).
    pub sim: String,
    /// pi-sim's control API: the Pioneer's side, faults and reports.
    pub control: SimControl,
    pub stack: Stack,
    /// What the service was started with (a restart reuses it: same ledger, same queue).
    config: Config,
    pg: Option<ScratchDatabase>,
    _dir: tempfile::TempDir,
}

impl Harness {
    /// The service on `stack` with `options`; `None` (after a message) when the stack's
    /// servers are not reachable.
    pub async fn start(stack: Stack, options: Options) -> Option<Harness> {
        let dir = tempfile::tempdir().unwrap();
        let (database_url, redis_url, pg) = match stack {
            Stack::Embedded => (
                format!("sqlite://{}", dir.path().join("ledger.db").display()),
                None,
                None,
            ),
            Stack::PostgresRedis => {
                let server_url = std::env::var("TEST_DATABASE_URL")
                    .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
                let redis = std::env::var("TEST_REDIS_URL")
                    .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
                let created = tokio::time::timeout(
                    Duration::from_secs(5),
                    ScratchDatabase::create(&server_url, "pi_payments_e2e"),
                )
                .await;
                let Ok(Ok(pg)) = created else {
                    // CI (and scripts/test) always has Postgres: a skip there would hide a gap.
                    assert!(
                        std::env::var_os("CI").is_none(),
                        "Postgres at TEST_DATABASE_URL is not reachable (CI is set, so this fails instead of skipping)"
                    );
                    eprintln!("skipping: Postgres at TEST_DATABASE_URL is not reachable");
                    return None;
                };
                (pg.url().to_string(), Some(redis), Some(pg))
            }
        };
        let args = ConfigArgs {
            database_url: Some(database_url),
            redis_url,
            bind_addr: Some("127.0.0.1:0".into()),
            app_api_token: Some(APP_API_TOKEN.into()),
            pi_rate_limit: options.rate_limit.map(|n| n.to_string()),
            // pi-sim is not Pi's public Horizon: its 1/s default would only slow the tests.
            horizon_rate_limit: Some("1000".into()),
            require_order: Some(options.require_order.to_string()),
            app_webhook_url: options.webhook.as_ref().map(|(url, _)| url.clone()),
            app_webhook_secret: options.webhook.as_ref().map(|(_, secret)| secret.clone()),
            pi_api_key: options.remote_pi.as_ref().map(|p| p.api_key.clone()),
            pi_api_base_url: options.remote_pi.as_ref().map(|p| p.platform_url.clone()),
            pi_horizon_url: options.remote_pi.as_ref().map(|p| p.horizon_url.clone()),
            pi_network: options.remote_pi.as_ref().map(|p| p.network.clone()),
            pi_app_wallet: options.remote_pi.as_ref().map(|p| p.app_wallet.clone()),
            client_rate_limit: Some(
                options
                    .client_limit
                    .map_or("0".to_string(), |(rate, _)| rate.to_string()),
            ),
            client_rate_burst: options.client_limit.map(|(_, burst)| burst.to_string()),
            trust_proxy: Some(options.trust_proxy.to_string()),
            anonymous_cancel_grace: options.anonymous_cancel_grace.map(|s| s.to_string()),
            ..ConfigArgs::default()
        };
        let mut config = Config::from_args(&args).unwrap();
        config.queue_namespace = format!("test{}", pi_payments_core::ids::random_alnum(10));
        if let QueueTarget::Sqlite(_) = config.queue {
            config.queue = QueueTarget::Sqlite(dir.path().join("queue.db"));
        }
        // The embedded simulator's state beside this test's ledger (a Postgres ledger would
        // put it in the working directory, shared by every test).
        config.sim_state_file = Some(dir.path().join("sim.json"));
        let app = RunningApp::start(config.clone(), Role::Serve)
            .await
            .unwrap();
        let api = format!("http://{}", app.addr.unwrap());
        let sim = app.pi.api_base_url.clone();
        let control = SimControl::new(&sim).unwrap();
        Some(Harness {
            control,
            app,
            http: reqwest::Client::new(),
            api,
            sim,
            stack,
            config,
            pg,
            _dir: dir,
        })
    }

    /// Stop the service gracefully, then drop its Postgres database (if any).
    pub async fn stop(self) {
        self.app.stop().await.unwrap();
        if let Some(pg) = self.pg {
            // Best effort: the test passed, its database is no longer needed.
            let _ = pg.drop_database().await;
        }
    }

    /// Stop the service gracefully and start it again on the same ledger and queue (on a new
    /// port). With the in-process simulator, it restarts from its state file (same key,
    /// wallet, payments and chain) on new ports.
    pub async fn restart(mut self) -> Harness {
        self.app.stop().await.unwrap();
        self.app = RunningApp::start(self.config.clone(), Role::Serve)
            .await
            .unwrap();
        self.api = format!("http://{}", self.app.addr.unwrap());
        if self.app.simulated {
            self.sim = self.app.pi.api_base_url.clone();
            self.control = SimControl::new(&self.sim).unwrap();
        }
        self
    }

    // -- plain HTTP -------------------------------------------------------------------------

    pub async fn post(&self, url: String, body: Value) -> (u16, Value) {
        let res = self.http.post(url).json(&body).send().await.unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// POST a raw body as `application/json`.
    pub async fn post_raw(&self, url: String, body: &str) -> (u16, Value) {
        let res = self
            .http
            .post(url)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    /// GET as the app's backend (`APP_API_TOKEN`): payments, orders and events need it.
    pub async fn get(&self, url: String) -> (u16, Value) {
        let res = self
            .http
            .get(url)
            .bearer_auth(APP_API_TOKEN)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(Value::Null))
    }

    // -- the Pioneer's side (pi-sim) ----------------------------------------------------------

    /// A fresh access token for `uid`.
    pub async fn token(&self, uid: &str) -> String {
        self.control.token(uid).await.unwrap()
    }

    /// The app creates an order for `product` (`POST /orders`).
    pub async fn order(&self, product: &str) -> Value {
        let (status, order) = self
            .post(
                format!("{}/orders", self.api),
                json!({"productId": product}),
            )
            .await;
        assert_eq!(status, 201, "{order}");
        order
    }

    /// The Pioneer creates a U2A payment (as `Pi.createPayment` would); its identifier.
    pub async fn create_payment(&self, uid: &str, amount: Value, metadata: Value) -> String {
        // Our answers carry amounts as decimal strings; a number works too.
        let amount = amount
            .as_str()
            .map(str::to_string)
            .unwrap_or_else(|| amount.to_string());
        let request = U2aRequest::new(uid, &amount).memo("e2e").metadata(metadata);
        self.control.create_u2a_id(&request).await.unwrap()
    }

    /// The Pioneer signs and submits the payment's transaction (`tamper` as pi-sim's submit
    /// body, `{}` for an honest one); the txid.
    pub async fn submit(&self, payment: &str, tamper: Value) -> String {
        self.control
            .submit_with(payment, &tamper)
            .await
            .unwrap()
            .txid
    }

    /// The Pioneer cancels in the Pi Browser.
    pub async fn user_cancel(&self, payment: &str) {
        self.control.user_cancel(payment).await.unwrap();
    }

    /// The payment as Pi shows it (its PaymentDTO).
    pub async fn pi_payment(&self, payment: &str) -> Value {
        self.control
            .payments()
            .await
            .unwrap()
            .into_iter()
            .find(|p| p["identifier"] == payment)
            .unwrap_or_else(|| panic!("pi-sim does not know payment {payment}"))
    }

    /// Set pi-sim's fault knobs (a partial update).
    pub async fn faults(&self, knobs: Value) {
        self.control.faults(&knobs).await.unwrap();
    }

    /// pi-sim's request log.
    pub async fn sim_log(&self) -> Value {
        self.control.log().await.unwrap()
    }

    /// How many requests to `endpoint` pi-sim saw for `payment` (0 if none).
    pub async fn pi_calls(&self, payment: &str, endpoint: &str) -> u64 {
        self.control.payment_calls(payment, endpoint).await.unwrap()
    }

    /// pi-sim's audit of Platform records against the chain must be clean.
    pub async fn assert_audit_ok(&self) {
        let audit = self.control.audit().await.unwrap();
        assert_eq!(audit["ok"], true, "pi-sim audit: {audit}");
    }

    // -- the app's side (our callbacks) ----------------------------------------------------------

    /// `POST <prefix>/<kind>` with `body`; must answer 202 naming the payment. The 202 body.
    pub async fn callback(&self, prefix: &str, kind: &str, body: Value) -> Value {
        let (status, answer) = self
            .post(format!("{}{prefix}/{kind}", self.api), body.clone())
            .await;
        assert_eq!(status, 202, "{kind} {body} -> {answer}");
        answer
    }

    pub async fn approve(&self, payment: &str, token: &str) -> Value {
        self.callback(
            "/pi_payment",
            "approve",
            json!({"paymentId": payment, "accessToken": token}),
        )
        .await
    }

    pub async fn complete(&self, payment: &str, txid: &str) -> Value {
        self.callback(
            "/api/pi_payment",
            "complete",
            json!({"paymentId": payment, "txid": txid}),
        )
        .await
    }

    /// `GET /payments/{id}`: `{payment, events}`.
    pub async fn payment(&self, payment: &str) -> Value {
        let (status, body) = self.get(format!("{}/payments/{payment}", self.api)).await;
        assert_eq!(status, 200, "{body}");
        body
    }

    /// Wait (up to [`DEADLINE`]) until the ledger shows `state`; fails early when the payment
    /// settles in another final state.
    pub async fn wait_for_state(&self, payment: &str, state: &str) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < DEADLINE {
            let (_, body) = self.get(format!("{}/payments/{payment}", self.api)).await;
            let now = body["payment"]["state"].as_str().unwrap_or("");
            if now == state {
                return body;
            }
            if is_final(now) {
                panic!("payment {payment} settled as {now}, not {state}: {body}");
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("payment {payment} never reached {state}: {last}");
    }

    /// Wait (up to [`DEADLINE`]) until the payment is completed, cancelled or needs attention.
    pub async fn wait_until_settled(&self, payment: &str) -> Value {
        let start = Instant::now();
        let mut last = Value::Null;
        while start.elapsed() < DEADLINE {
            let (_, body) = self.get(format!("{}/payments/{payment}", self.api)).await;
            if is_final(body["payment"]["state"].as_str().unwrap_or("")) {
                return body;
            }
            last = body;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("payment {payment} never settled: {last}");
    }

    /// One full purchase of a `coffee` order through the callbacks, each callback sent
    /// `repeat` times; the payment id.
    pub async fn purchase(&self, uid: &str, repeat: usize) -> String {
        let order = self.order("coffee").await;
        let id = self
            .create_payment(uid, order["amount"].clone(), order["metadata"].clone())
            .await;
        let token = self.token(uid).await;
        for _ in 0..repeat {
            let body = self.approve(&id, &token).await;
            assert_eq!(body["payment_id"], id.as_str());
        }
        self.wait_for_state(&id, "approved").await;
        let txid = self.submit(&id, json!({})).await;
        for _ in 0..repeat {
            self.complete(&id, &txid).await;
        }
        let done = self.wait_for_state(&id, "completed").await;
        assert_eq!(done["payment"]["txid"], txid.as_str());
        assert_eq!(done["payment"]["uid"], uid);
        id
    }

    /// Every event of the outbox (`GET /events`), oldest first.
    pub async fn events(&self) -> Vec<Value> {
        let mut all = Vec::new();
        let mut after = 0;
        loop {
            let (status, page) = self
                .get(format!("{}/events?after={after}&limit=1000", self.api))
                .await;
            assert_eq!(status, 200, "{page}");
            let events = page["events"].as_array().unwrap().clone();
            if events.is_empty() {
                return all;
            }
            after = page["next_after"].as_i64().unwrap();
            all.extend(events);
        }
    }

    /// How many `event_type` events the outbox holds for `payment`.
    pub async fn count_events(&self, event_type: &str, payment: &str) -> usize {
        self.events()
            .await
            .iter()
            .filter(|e| e["type"] == event_type && e["data"]["payment"]["id"] == payment)
            .count()
    }

    /// How many `payment.completed` events the outbox holds in all.
    pub async fn completed_events(&self) -> usize {
        self.events()
            .await
            .iter()
            .filter(|e| e["type"] == "payment.completed")
            .count()
    }

    /// Rows in the ledger's `payments` table.
    pub async fn ledger_payments(&self) -> i64 {
        sqlx::query_scalar("SELECT COUNT(*) FROM payments")
            .fetch_one(self.app.ledger.pool())
            .await
            .unwrap()
    }
}

/// The states a payment does not leave on its own.
pub fn is_final(state: &str) -> bool {
    matches!(state, "completed" | "cancelled" | "needs_attention")
}

/// How many of a payment's history lines entered `state` (from another state).
pub fn entered(history: &Value, state: &str) -> usize {
    history["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["to_state"] == state && e["from_state"] != state)
        .count()
}
