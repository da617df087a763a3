//! A typed client of the control API under `/_sim` (see `control.rs` and the README), so test
//! harnesses drive the Pioneer's side, the faults and the reports in one way instead of each
//! keeping its own copy of the HTTP calls. Behind the `control-client` feature: the simulator
//! binary does not need it.
//!
//! Answers that mirror Pi's wire shapes (PaymentDTOs, the request log, the audit) stay
//! [`serde_json::Value`]s: tests assert on their fields as Pi spells them.

use serde::Deserialize;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::RunningSim;

/// Why a control call failed: the simulator could not be reached, or it answered an error.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    /// No answer (connection refused, body not readable).
    #[error("pi-sim control call {path} failed: {source}")]
    Transport {
        /// The control path called.
        path: String,
        /// What reqwest reported.
        source: reqwest::Error,
    },
    /// An answer that is not a success; `body` is pi-sim's error JSON (Null if not JSON).
    #[error("pi-sim control call {path} answered {status}: {body}")]
    Status {
        /// The control path called.
        path: String,
        /// The HTTP status.
        status: u16,
        /// The answer's JSON body.
        body: Value,
    },
    /// A success whose body does not have the documented shape.
    #[error("pi-sim control call {path} answered an unexpected body: {source}")]
    Body {
        /// The control path called.
        path: String,
        /// What serde reported.
        source: serde_json::Error,
    },
    /// The request could not be built (an amount that is not JSON, a client that cannot start).
    #[error("pi-sim control request is invalid: {0}")]
    Request(String),
}

/// A Pioneer as `POST /_sim/users` returns it, with the wallet the simulator holds for them.
#[derive(Debug, Clone, Deserialize)]
pub struct SimUser {
    /// The app-scoped user id.
    pub uid: String,
    /// The Pi username.
    pub username: String,
    /// The Pioneer's wallet account (`G…`).
    pub wallet_address: String,
    /// The wallet's secret seed (`S…`), for tests that sign as the Pioneer themselves.
    pub wallet_seed: String,
}

/// What to mint with `POST /_sim/tokens`: a Pioneer's access token.
#[derive(Debug, Clone, Default, Serialize)]
pub struct TokenRequest {
    /// Whose token (created if unknown).
    pub uid: String,
    /// The username to give a new Pioneer (pi-sim picks one otherwise).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The scopes (pi-sim's default: username, payments, wallet_address).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scopes: Option<Vec<String>>,
    /// Seconds of validity from now; negative = already expired (default one hour).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<i64>,
}

impl TokenRequest {
    /// A token for `uid` with every default.
    pub fn for_uid(uid: &str) -> Self {
        TokenRequest {
            uid: uid.to_owned(),
            ..TokenRequest::default()
        }
    }
}

/// A minted token, as `POST /_sim/tokens` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct SimToken {
    /// The bearer token the app verifies with `GET /v2/me`.
    pub access_token: String,
    /// Whose it is.
    pub uid: String,
    /// Their username.
    pub username: String,
}

/// What the Pioneer's `Pi.createPayment` asks for (`POST /_sim/u2a`).
#[derive(Debug, Clone)]
pub struct U2aRequest {
    /// The paying Pioneer.
    pub uid: String,
    /// The amount as JSON text, passed through untouched so no float ever rounds it:
    /// a number (`3.1415`) or, to test refusals, any other JSON (`"\"abc\""`).
    pub amount: String,
    /// The memo shown to the Pioneer.
    pub memo: String,
    /// The app's metadata.
    pub metadata: Value,
    /// The network Pi records the payment on; `None`: the simulator's.
    pub network: Option<String>,
}

impl U2aRequest {
    /// A payment of `amount` (JSON number text) by `uid`, with an empty memo and metadata.
    pub fn new(uid: &str, amount: &str) -> Self {
        U2aRequest {
            uid: uid.to_owned(),
            amount: amount.to_owned(),
            memo: String::new(),
            metadata: Value::Object(serde_json::Map::new()),
            network: None,
        }
    }

    /// The same with this memo.
    pub fn memo(mut self, memo: &str) -> Self {
        self.memo = memo.to_owned();
        self
    }

    /// The same with this metadata.
    pub fn metadata(mut self, metadata: Value) -> Self {
        self.metadata = metadata;
        self
    }

    /// The same, recorded by Pi on `network` instead of the simulator's own.
    pub fn network(mut self, network: &str) -> Self {
        self.network = Some(network.to_owned());
        self
    }
}

/// The body of `POST /_sim/u2a`; the amount travels as raw JSON.
#[derive(Serialize)]
struct U2aBody<'a> {
    uid: &'a str,
    amount: Box<RawValue>,
    memo: &'a str,
    metadata: &'a Value,
    #[serde(skip_serializing_if = "Option::is_none")]
    network: Option<&'a str>,
}

/// A submission that landed, as `POST /_sim/u2a/{id}/submit` returns it.
#[derive(Debug, Clone, Deserialize)]
pub struct Submitted {
    /// The transaction's hash.
    pub txid: String,
    /// The payment's PaymentDTO after the link.
    pub payment: Value,
}

/// The control API of one running simulator.
#[derive(Debug, Clone)]
pub struct SimControl {
    base: String,
    http: reqwest::Client,
}

impl SimControl {
    /// A client for the simulator whose Platform listener is `platform_url`
    /// (`http://127.0.0.1:PORT`, as in the ready line).
    pub fn new(platform_url: &str) -> Result<Self, ControlError> {
        // reqwest is built without a default TLS provider; plain HTTP still needs one installed.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let http = reqwest::Client::builder()
            .build()
            .map_err(|e| ControlError::Request(e.to_string()))?;
        Ok(SimControl {
            base: platform_url.trim_end_matches('/').to_owned(),
            http,
        })
    }

    /// A client for an in-process simulator.
    pub fn of(sim: &RunningSim) -> Result<Self, ControlError> {
        SimControl::new(&sim.platform_url)
    }

    /// `POST path` with a JSON body; the JSON answer of a success.
    pub async fn post(&self, path: &str, body: &impl Serialize) -> Result<Value, ControlError> {
        let request = self.http.post(format!("{}{path}", self.base)).json(body);
        self.call(path, request).await
    }

    /// `GET path`; the JSON answer of a success.
    pub async fn get(&self, path: &str) -> Result<Value, ControlError> {
        let request = self.http.get(format!("{}{path}", self.base));
        self.call(path, request).await
    }

    async fn call(
        &self,
        path: &str,
        request: reqwest::RequestBuilder,
    ) -> Result<Value, ControlError> {
        let transport = |source| ControlError::Transport {
            path: path.to_owned(),
            source,
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let text = response.text().await.map_err(transport)?;
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        if !status.is_success() {
            return Err(ControlError::Status {
                path: path.to_owned(),
                status: status.as_u16(),
                body,
            });
        }
        Ok(body)
    }

    async fn post_typed<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &impl Serialize,
    ) -> Result<T, ControlError> {
        let value = self.post(path, body).await?;
        serde_json::from_value(value).map_err(|source| ControlError::Body {
            path: path.to_owned(),
            source,
        })
    }

    /// `GET /_sim/info`: the ready fields plus the payment and user counts.
    pub async fn info(&self) -> Result<Value, ControlError> {
        self.get("/_sim/info").await
    }

    /// `POST /_sim/users`: the Pioneer `uid` (created if unknown) and their wallet.
    pub async fn user(&self, uid: &str) -> Result<SimUser, ControlError> {
        self.post_typed("/_sim/users", &serde_json::json!({ "uid": uid }))
            .await
    }

    /// `POST /_sim/tokens`: an access token as asked.
    pub async fn mint_token(&self, request: &TokenRequest) -> Result<SimToken, ControlError> {
        self.post_typed("/_sim/tokens", request).await
    }

    /// `POST /_sim/tokens` with every default: `uid`'s access token.
    pub async fn token(&self, uid: &str) -> Result<String, ControlError> {
        let token = self.mint_token(&TokenRequest::for_uid(uid)).await?;
        Ok(token.access_token)
    }

    /// `POST /_sim/u2a`: the Pioneer creates a payment; its PaymentDTO.
    pub async fn create_u2a(&self, request: &U2aRequest) -> Result<Value, ControlError> {
        let amount = RawValue::from_string(request.amount.clone())
            .map_err(|e| ControlError::Request(format!("amount is not JSON: {e}")))?;
        let body = U2aBody {
            uid: &request.uid,
            amount,
            memo: &request.memo,
            metadata: &request.metadata,
            network: request.network.as_deref(),
        };
        self.post("/_sim/u2a", &body).await
    }

    /// `POST /_sim/u2a` and the new payment's identifier.
    pub async fn create_u2a_id(&self, request: &U2aRequest) -> Result<String, ControlError> {
        let payment = self.create_u2a(request).await?;
        payment["identifier"]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| ControlError::Status {
                path: "/_sim/u2a".into(),
                status: 200,
                body: payment.clone(),
            })
    }

    /// `POST /_sim/u2a/{id}/submit`: the Pioneer signs and submits, honestly with `{}`, or
    /// with pi-sim's tamper fields (`amount`, `memo`, `to`).
    pub async fn submit_with(
        &self,
        payment_id: &str,
        tamper: &Value,
    ) -> Result<Submitted, ControlError> {
        self.post_typed(&format!("/_sim/u2a/{payment_id}/submit"), tamper)
            .await
    }

    /// An honest submission; the txid.
    pub async fn submit(&self, payment_id: &str) -> Result<String, ControlError> {
        let empty = Value::Object(serde_json::Map::new());
        Ok(self.submit_with(payment_id, &empty).await?.txid)
    }

    /// `POST /_sim/u2a/{id}/user_cancel`: the Pioneer cancels in the Pi Browser.
    pub async fn user_cancel(&self, payment_id: &str) -> Result<Value, ControlError> {
        let empty = Value::Object(serde_json::Map::new());
        self.post(&format!("/_sim/u2a/{payment_id}/user_cancel"), &empty)
            .await
    }

    /// `POST /_sim/ads`: creates or updates a rewarded ad (`ad_id` None = a new random id,
    /// `status` None = no answer yet); its id.
    pub async fn set_ad(
        &self,
        ad_id: Option<&str>,
        status: Option<&str>,
    ) -> Result<String, ControlError> {
        let mut body = serde_json::json!({ "status": status });
        if let Some(id) = ad_id {
            body["ad_id"] = Value::from(id);
        }
        let ad = self.post("/_sim/ads", &body).await?;
        Ok(ad["identifier"].as_str().unwrap_or_default().to_owned())
    }

    /// `POST /_sim/faults`: a partial update of the fault knobs (JSON as in the README);
    /// the knobs after it.
    pub async fn faults(&self, update: &Value) -> Result<Value, ControlError> {
        self.post("/_sim/faults", update).await
    }

    /// `GET /_sim/log`: the request log's counters.
    pub async fn log(&self) -> Result<Value, ControlError> {
        self.get("/_sim/log").await
    }

    /// How many calls pi-sim counted for one endpoint name (`me`, `approve`, …); 0 if none.
    pub async fn endpoint_calls(&self, endpoint: &str) -> Result<u64, ControlError> {
        let log = self.log().await?;
        Ok(log["endpoints"][endpoint]["calls"].as_u64().unwrap_or(0))
    }

    /// How many calls pi-sim counted to `endpoint` for one payment; 0 if none.
    pub async fn payment_calls(
        &self,
        payment_id: &str,
        endpoint: &str,
    ) -> Result<u64, ControlError> {
        let log = self.log().await?;
        Ok(log["payments"][payment_id][endpoint].as_u64().unwrap_or(0))
    }

    /// `GET /_sim/audit`: Platform records checked against the chain.
    pub async fn audit(&self) -> Result<Value, ControlError> {
        self.get("/_sim/audit").await
    }

    /// `GET /_sim/payments`: every payment's PaymentDTO, as Pi sees it.
    pub async fn payments(&self) -> Result<Vec<Value>, ControlError> {
        let list = self.get("/_sim/payments").await?;
        Ok(list["payments"].as_array().cloned().unwrap_or_default())
    }

    /// `POST /_sim/reset`: `"log"` clears the request log, `"all"` everything.
    pub async fn reset(&self, what: &str) -> Result<Value, ControlError> {
        self.post("/_sim/reset", &serde_json::json!({ "what": what }))
            .await
    }
}
