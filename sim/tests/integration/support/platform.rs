//! Shared helpers of the Platform-side tests: start pi-sim in-process on free ports and talk to
//! it with reqwest.

use std::sync::Once;

use pi_sim::chain::SubmitOutcome;
use pi_sim::control_client::{SimControl, U2aRequest};
use pi_sim::keys::Keypair;
use pi_sim::{RunningSim, SimConfig};
use reqwest::StatusCode;
use serde_json::{Value, json};

/// A running simulator and a client for it.
pub struct Harness {
    pub sim: RunningSim,
    pub http: reqwest::Client,
    /// The typed control client (the raw `control` calls below test the API's answers).
    pub sim_control: SimControl,
}

fn install_crypto() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let _ = rustls::crypto::ring::default_provider().install_default();
    });
}

/// The config the tests use: free ports, one ledger per submission, a fixed fault seed.
pub fn test_config() -> SimConfig {
    SimConfig {
        platform_port: 0,
        horizon_port: 0,
        ledger_seconds: 0.0,
        seed: Some(42),
        ..SimConfig::default()
    }
}

pub async fn start() -> Harness {
    start_with(test_config()).await
}

pub async fn start_with(config: SimConfig) -> Harness {
    install_crypto();
    let sim = pi_sim::start(config).await.expect("pi-sim starts");
    let http = reqwest::Client::builder().build().expect("client");
    let sim_control = SimControl::of(&sim).expect("control client");
    Harness {
        sim,
        http,
        sim_control,
    }
}

/// A status and a JSON body (Null when the body is not JSON).
pub type Answer = (StatusCode, Value);

async fn answer(response: reqwest::Response) -> Answer {
    let status = response.status();
    let text = response.text().await.expect("body");
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

impl Harness {
    pub fn platform(&self, path: &str) -> String {
        format!("{}{path}", self.sim.platform_url)
    }

    pub fn horizon(&self, path: &str) -> String {
        format!("{}{path}", self.sim.horizon_url)
    }

    pub fn key(&self) -> String {
        format!("Key {}", self.sim.api_key)
    }

    /// GET with the server key.
    pub async fn get(&self, path: &str) -> Answer {
        let r = self
            .http
            .get(self.platform(path))
            .header("Authorization", self.key())
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    /// POST JSON with the server key.
    pub async fn post(&self, path: &str, body: Value) -> Answer {
        self.post_raw(path, &body.to_string()).await
    }

    /// POST a raw body with the server key (for exact amount texts).
    pub async fn post_raw(&self, path: &str, body: &str) -> Answer {
        let r = self
            .http
            .post(self.platform(path))
            .header("Authorization", self.key())
            .header("Content-Type", "application/json")
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    /// POST raw text and return the raw answer text (for exact number checks).
    pub async fn post_text(&self, path: &str, body: &str) -> (StatusCode, String) {
        let r = self
            .http
            .post(self.platform(path))
            .header("Authorization", self.key())
            .body(body.to_owned())
            .send()
            .await
            .expect("request");
        (r.status(), r.text().await.expect("body"))
    }

    /// Control API GET (no auth).
    pub async fn control_get(&self, path: &str) -> Answer {
        let r = self
            .http
            .get(self.platform(path))
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    /// Control API POST (no auth).
    pub async fn control(&self, path: &str, body: Value) -> Answer {
        let r = self
            .http
            .post(self.platform(path))
            .json(&body)
            .send()
            .await
            .expect("request");
        answer(r).await
    }

    /// Creates an A2U payment (must succeed) to `uid`, made a Pioneer of the app first (Pi pays
    /// only those).
    pub async fn a2u(&self, uid: &str, amount: &str) -> Value {
        self.sim_control.user(uid).await.expect("user");
        let body = format!(
            r#"{{"payment": {{"amount": {amount}, "memo": "reward", "metadata": {{"k": 1}}, "uid": "{uid}"}}}}"#
        );
        let (status, payment) = self.post_raw("/v2/payments", &body).await;
        assert_eq!(status, StatusCode::OK, "{payment}");
        payment
    }

    /// Creates a U2A payment through the control API (must succeed).
    pub async fn u2a(&self, uid: &str, amount: f64) -> Value {
        let request = U2aRequest::new(uid, &Value::from(amount).to_string())
            .memo("order")
            .metadata(json!({"orderId": 1}));
        self.sim_control
            .create_u2a(&request)
            .await
            .expect("u2a created")
    }

    /// A U2A payment approved and submitted by the Pioneer; returns (payment, txid).
    pub async fn u2a_submitted(&self, uid: &str, amount: f64) -> (Value, String) {
        let payment = self.u2a(uid, amount).await;
        let id = id(&payment);
        let (status, body) = self
            .post(&format!("/v2/payments/{id}/approve"), json!({}))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let submitted = self.sim_control.submit_with(&id, &json!({})).await;
        let submitted = submitted.expect("submitted");
        (submitted.payment, submitted.txid)
    }

    pub fn app_wallet(&self) -> Keypair {
        Keypair::from_seed(&self.sim.app_wallet_seed).expect("app seed")
    }

    /// Pays on chain from `from` with a text memo; returns the applied tx (hash, successful).
    pub async fn chain_pay(
        &self,
        from: &Keypair,
        to: &str,
        stroops: i64,
        memo: &str,
    ) -> (String, bool) {
        match self.sim.chain().pay(from, to, stroops, memo).await {
            SubmitOutcome::Applied(tx) => (tx.hash, tx.successful),
            other => panic!("payment did not land: {other:?}"),
        }
    }

    /// The app pays an A2U payment on chain exactly; returns the txid.
    pub async fn pay_a2u(&self, payment: &Value, stroops: i64) -> String {
        let to = payment["to_address"].as_str().expect("to_address");
        let (hash, ok) = self
            .chain_pay(&self.app_wallet(), to, stroops, &id(payment))
            .await;
        assert!(ok, "the payment should succeed on chain");
        hash
    }

    /// Sets fault knobs (partial update; must succeed).
    pub async fn faults(&self, knobs: Value) -> Value {
        self.sim_control.faults(&knobs).await.expect("faults set")
    }

    /// How many payments the Platform holds.
    pub async fn payment_count(&self) -> usize {
        self.sim_control.payments().await.expect("payments").len()
    }
}

/// A payment's identifier.
pub fn id(payment: &Value) -> String {
    payment["identifier"]
        .as_str()
        .expect("identifier")
        .to_owned()
}

/// Asserts an error answer: status, code, and the `{error, error_message}` shape.
pub fn assert_error(answer: &Answer, status: u16, code: &str) {
    let (got, body) = answer;
    assert_eq!(got.as_u16(), status, "status of {body}");
    assert_eq!(body["error"], code, "code of {body}");
    assert!(
        body["error_message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()),
        "error_message in {body}"
    );
}
