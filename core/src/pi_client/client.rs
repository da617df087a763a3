//! [`PiClient`]: the typed client for the Pi Platform API v2 (pi-platform.md §3), its config
//! ([`PiClientConfig`]) and why a config is refused ([`PiConfigError`]).
//!
//! Every call goes through the process-wide [`PiRateLimiter`] (one permit per attempt,
//! retries included) and is retried under a [`RetryPolicy`] when the failure is transient.

use super::bad_tokens::BadTokens;
use super::error::{Auth, PiError, decode_error, parse_retry_after, snippet};
use super::retry::{RetryPolicy, with_retries};
use crate::dto::{
    CreatePaymentRequest, IncompleteServerPayments, PaymentDto, RewardedAdStatusDto,
    UnreadableEntry, UserDto,
};
use crate::ids::{PaymentId, Txid};
use crate::rate_limit::{DEFAULT_UNVERIFIED_SHARE_PERCENT, PiRateLimiter, UnverifiedShare};
use crate::secret::{AccessToken, Secret};
use crate::telemetry::{self, CallStatus, Upstream};
use reqwest::header::{ACCEPT, AUTHORIZATION, CONTENT_TYPE, HeaderValue, RETRY_AFTER};
use reqwest::{Method, StatusCode};
use serde::de::DeserializeOwned;
use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tracing::Instrument;
use url::Url;

/// Per-request timeout used by [`PiClientConfig::new`]: Pi's own SDKs wait 20 s (creating a
/// payment can take that long, and a timed-out create is a payment in doubt).
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(20);

/// Install ring as rustls' process-wide crypto provider (reqwest is built with
/// `rustls-no-provider`, and building a client without a provider panics). Safe to call any
/// number of times; an already installed provider is kept. [`PiClient::new`] calls it too.
pub fn install_crypto_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Err means another thread installed one first: fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

/// Settings for a [`PiClient`].
#[derive(Clone)]
pub struct PiClientConfig {
    /// `PI_API_BASE_URL`, e.g. `https://api.minepi.com`. The client appends `/v2`; a URL that
    /// already ends in `/v2` (with or without a trailing slash) is used as is.
    pub base_url: String,
    /// The app's server API key (`Authorization: Key …`). Never logged.
    pub api_key: Secret,
    /// Per-attempt timeout, connect to end of body.
    pub timeout: Duration,
    /// The process-wide limiter: share one `Arc` between all clients.
    pub limiter: Arc<PiRateLimiter>,
    /// How transient failures are retried.
    pub retry: RetryPolicy,
}

impl PiClientConfig {
    /// A config with [`DEFAULT_TIMEOUT`] and the default [`RetryPolicy`].
    pub fn new(
        base_url: impl Into<String>,
        api_key: impl Into<Secret>,
        limiter: Arc<PiRateLimiter>,
    ) -> PiClientConfig {
        PiClientConfig {
            base_url: base_url.into(),
            api_key: api_key.into(),
            timeout: DEFAULT_TIMEOUT,
            limiter,
            retry: RetryPolicy::default(),
        }
    }
}

impl fmt::Debug for PiClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiClientConfig")
            .field("base_url", &self.base_url)
            .field("api_key", &self.api_key)
            .field("timeout", &self.timeout)
            .field("limiter", &self.limiter)
            .field("retry", &self.retry)
            .finish()
    }
}

/// Why a [`PiClient`] could not be built from its config.
#[derive(Debug, thiserror::Error)]
pub enum PiConfigError {
    /// `base_url` is not an absolute http(s) URL.
    #[error(
        "PI_API_BASE_URL {url:?} is not usable ({reason}): give an http(s) URL such as https://api.minepi.com"
    )]
    BadBaseUrl { url: String, reason: String },
    /// The API key is empty or holds characters a header cannot carry.
    #[error(
        "PI_API_KEY is empty or malformed: paste the server API key from the Pi Developer Portal"
    )]
    BadApiKey,
    /// reqwest could not build its client.
    #[error("could not build the HTTP client for Pi ({0}): check the TLS setup")]
    Http(String),
}

/// A cheap-to-clone client for the Pi Platform API. Clones share the connection pool and the
/// rate limiter.
#[derive(Clone)]
pub struct PiClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    base: Url,
    api_key: Secret,
    key_header: HeaderValue,
    limiter: Arc<PiRateLimiter>,
    retry: RetryPolicy,
    /// Tokens Pi refused lately (hashes only).
    bad_tokens: Arc<BadTokens>,
    /// The share of the budget for unverified work.
    unverified: Arc<UnverifiedShare>,
}

impl fmt::Debug for PiClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PiClient")
            .field("base_url", &self.inner.base.as_str())
            .field("api_key", &self.inner.api_key)
            .field("limiter", &self.inner.limiter)
            .field("retry", &self.inner.retry)
            .finish()
    }
}

/// The authorization a call carries.
enum Credential<'a> {
    ServerKey,
    AccessToken(&'a AccessToken),
}

/// One call, described once and sent as many times as the retry policy allows.
struct Call<'a> {
    method: Method,
    /// Path template for logs, e.g. `/payments/{id}/approve`.
    endpoint: &'static str,
    /// The same under `/v2`, as the metrics' `endpoint` label.
    metric_endpoint: &'static str,
    segments: Vec<&'a str>,
    body: Option<Vec<u8>>,
    credential: Credential<'a>,
    payment_id: Option<&'a PaymentId>,
}

impl PiClient {
    /// Build a client. Installs the rustls crypto provider if none is installed yet.
    pub fn new(config: PiClientConfig) -> Result<PiClient, PiConfigError> {
        install_crypto_provider();
        let base = api_base(&config.base_url)?;
        if config.api_key.expose().trim().is_empty() {
            return Err(PiConfigError::BadApiKey);
        }
        let mut key_header = HeaderValue::from_str(&format!("Key {}", config.api_key.expose()))
            .map_err(|_| PiConfigError::BadApiKey)?;
        key_header.set_sensitive(true);
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(5)))
            .user_agent(concat!("pi-payments/", env!("CARGO_PKG_VERSION")))
            .build()
            .map_err(|e| PiConfigError::Http(e.to_string()))?;
        Ok(PiClient {
            inner: Arc::new(Inner {
                http,
                base,
                api_key: config.api_key,
                key_header,
                unverified: Arc::new(UnverifiedShare::new(
                    config.limiter.per_second(),
                    DEFAULT_UNVERIFIED_SHARE_PERCENT,
                )),
                limiter: config.limiter,
                retry: config.retry,
                bad_tokens: Arc::default(),
            }),
        })
    }

    /// This client with `percent` of its rate limit for unverified work (`PI_UNVERIFIED_SHARE`;
    /// default [`DEFAULT_UNVERIFIED_SHARE_PERCENT`]).
    pub fn with_unverified_share(self, percent: u8) -> PiClient {
        let inner = &self.inner;
        PiClient {
            inner: Arc::new(Inner {
                http: inner.http.clone(),
                base: inner.base.clone(),
                api_key: inner.api_key.clone(),
                key_header: inner.key_header.clone(),
                limiter: inner.limiter.clone(),
                retry: inner.retry,
                bad_tokens: inner.bad_tokens.clone(),
                unverified: Arc::new(UnverifiedShare::new(inner.limiter.per_second(), percent)),
            }),
        }
    }

    /// Take a permit of the unverified share of the Pi budget now, or say how long until one
    /// is free. Work for a payment nobody vouched for asks this before calling Pi.
    pub fn unverified_permit(&self) -> Result<(), Duration> {
        self.inner
            .unverified
            .try_take(self.inner.limiter.sharing_processes())
    }

    /// Whether Pi refused this token lately (answered from the negative cache, no call).
    pub fn is_known_bad_token(&self, access_token: &AccessToken) -> bool {
        self.inner.bad_tokens.is_bad(access_token)
    }

    /// The rate limiter every call of this client waits on (`PI_RATE_LIMIT`): the operator
    /// dashboard reads its configured rate and the calls of the last minute from it.
    pub fn limiter(&self) -> &Arc<PiRateLimiter> {
        &self.inner.limiter
    }

    /// The normalized API base, ending in `/v2`.
    pub fn base_url(&self) -> &str {
        self.inner.base.as_str()
    }

    /// `GET /v2/me` with a Pioneer's access token: who the token belongs to.
    /// A rejected token is [`PiError::InvalidToken`]; it is remembered (as a hash) for
    /// [`BAD_TOKEN_TTL`](super::BAD_TOKEN_TTL), during which it is refused again
    /// without asking Pi.
    pub async fn me(&self, access_token: &AccessToken) -> Result<UserDto, PiError> {
        if self.inner.bad_tokens.is_bad(access_token) {
            return Err(PiError::InvalidToken);
        }
        let result = self
            .send(Call {
                method: Method::GET,
                endpoint: "/me",
                metric_endpoint: "/v2/me",
                segments: vec!["me"],
                body: None,
                credential: Credential::AccessToken(access_token),
                payment_id: None,
            })
            .await;
        if matches!(&result, Err(e) if matches!(e.root(), PiError::InvalidToken)) {
            self.inner.bad_tokens.remember(access_token);
        }
        result
    }

    /// `GET /v2/payments/{id}`: Pi's current view of a payment.
    pub async fn get_payment(&self, id: &PaymentId) -> Result<PaymentDto, PiError> {
        self.send(Call {
            method: Method::GET,
            endpoint: "/payments/{id}",
            metric_endpoint: "/v2/payments/{id}",
            segments: vec!["payments", id.as_str()],
            body: None,
            credential: Credential::ServerKey,
            payment_id: Some(id),
        })
        .await
    }

    /// `POST /v2/payments/{id}/approve`. After a retry, [`PiError::AlreadyApproved`] may mean
    /// an earlier attempt succeeded: confirm with [`PiClient::get_payment`].
    pub async fn approve(&self, id: &PaymentId) -> Result<PaymentDto, PiError> {
        self.post_payment_action(
            id,
            "approve",
            ("/payments/{id}/approve", "/v2/payments/{id}/approve"),
            None,
        )
        .await
    }

    /// `POST /v2/payments/{id}/complete {"txid"}`. After a retry, [`PiError::AlreadyCompleted`]
    /// may mean an earlier attempt succeeded: confirm with [`PiClient::get_payment`] that the
    /// linked txid is `txid`.
    pub async fn complete(&self, id: &PaymentId, txid: &Txid) -> Result<PaymentDto, PiError> {
        let body = serde_json::json!({ "txid": txid });
        self.post_payment_action(
            id,
            "complete",
            ("/payments/{id}/complete", "/v2/payments/{id}/complete"),
            Some(body),
        )
        .await
    }

    /// `POST /v2/payments/{id}/cancel`.
    pub async fn cancel(&self, id: &PaymentId) -> Result<PaymentDto, PiError> {
        self.post_payment_action(
            id,
            "cancel",
            ("/payments/{id}/cancel", "/v2/payments/{id}/cancel"),
            None,
        )
        .await
    }

    /// `POST /v2/payments`: create an A2U payment (Pi creates it already approved). Store the
    /// returned `identifier` before anything else. A retried create may answer
    /// [`PiError::OngoingPaymentFound`] with the payment the first attempt created.
    pub async fn create_payment(&self, req: &CreatePaymentRequest) -> Result<PaymentDto, PiError> {
        let body = serde_json::to_vec(req).map_err(|e| PiError::Request {
            detail: e.to_string(),
        })?;
        self.send(Call {
            method: Method::POST,
            endpoint: "/payments",
            metric_endpoint: "/v2/payments",
            segments: vec!["payments"],
            body: Some(body),
            credential: Credential::ServerKey,
            payment_id: None,
        })
        .await
    }

    /// `GET /v2/payments/incomplete_server_payments`: A2U payments neither completed nor
    /// cancelled. Entries that are not readable payments are logged and left out (see
    /// [`PiClient::incomplete_server_payments_read`] to get them too).
    pub async fn incomplete_server_payments(&self) -> Result<Vec<PaymentDto>, PiError> {
        let (payments, unreadable) = self.incomplete_server_payments_read().await?;
        for entry in unreadable {
            tracing::warn!(
                index = entry.index,
                identifier = entry.identifier.as_deref().unwrap_or("?"),
                problem = %entry.problem,
                "an incomplete server payment Pi listed could not be read; left out"
            );
        }
        Ok(payments)
    }

    /// `GET /v2/payments/incomplete_server_payments`, entry by entry: the readable payments
    /// and the entries that are not.
    pub async fn incomplete_server_payments_read(
        &self,
    ) -> Result<(Vec<PaymentDto>, Vec<UnreadableEntry>), PiError> {
        let list: IncompleteServerPayments = self
            .send(Call {
                method: Method::GET,
                endpoint: "/payments/incomplete_server_payments",
                metric_endpoint: "/v2/payments/incomplete_server_payments",
                segments: vec!["payments", "incomplete_server_payments"],
                body: None,
                credential: Credential::ServerKey,
                payment_id: None,
            })
            .await?;
        Ok(list.read())
    }

    /// `GET /v2/ads_network/status/{adId}`: whether a rewarded ad was watched. `ad_id` comes
    /// from the client and is percent-encoded as one path segment.
    pub async fn ad_status(&self, ad_id: &str) -> Result<RewardedAdStatusDto, PiError> {
        if ad_id.is_empty() {
            return Err(PiError::AdNotFound);
        }
        self.send(Call {
            method: Method::GET,
            endpoint: "/ads_network/status/{adId}",
            metric_endpoint: "/v2/ads_network/status/{adId}",
            segments: vec!["ads_network", "status", ad_id],
            body: None,
            credential: Credential::ServerKey,
            payment_id: None,
        })
        .await
    }

    async fn post_payment_action(
        &self,
        id: &PaymentId,
        action: &'static str,
        (endpoint, metric_endpoint): (&'static str, &'static str),
        body: Option<serde_json::Value>,
    ) -> Result<PaymentDto, PiError> {
        // Pi's SDKs send a JSON object even when there is nothing to say.
        let body = body.unwrap_or_else(|| serde_json::json!({}));
        let body = serde_json::to_vec(&body).map_err(|e| PiError::Request {
            detail: e.to_string(),
        })?;
        self.send(Call {
            method: Method::POST,
            endpoint,
            metric_endpoint,
            segments: vec!["payments", id.as_str(), action],
            body: Some(body),
            credential: Credential::ServerKey,
            payment_id: Some(id),
        })
        .await
    }

    /// Send `call` with rate limiting and retries, in a span naming the call.
    async fn send<T: DeserializeOwned>(&self, call: Call<'_>) -> Result<T, PiError> {
        let span = tracing::info_span!(
            "pi_call",
            method = %call.method,
            endpoint = call.endpoint,
            payment_id = tracing::field::Empty,
        );
        if let Some(id) = call.payment_id {
            span.record("payment_id", tracing::field::display(id));
        }
        let mut url = self.inner.base.clone();
        url.path_segments_mut()
            .map_err(|()| PiError::Request {
                detail: "the base URL cannot take a path".into(),
            })?
            .extend(&call.segments);
        let (auth, secret) = match call.credential {
            Credential::ServerKey => (self.inner.key_header.clone(), self.inner.api_key.expose()),
            Credential::AccessToken(token) => {
                // A token a header cannot carry is not a token Pi issued.
                let mut v = HeaderValue::from_str(&format!("Bearer {}", token.expose()))
                    .map_err(|_| PiError::InvalidToken)?;
                v.set_sensitive(true);
                (v, token.expose())
            }
        };
        let kind = match call.credential {
            Credential::ServerKey => Auth::Key,
            Credential::AccessToken(_) => Auth::Bearer,
        };
        let secrets = [self.inner.api_key.expose(), secret];
        let call = &call;
        let (url, auth, secrets) = (&url, &auth, &secrets);
        let result = with_retries(&self.inner.retry, |attempt| async move {
            let waiting = Instant::now();
            self.inner.limiter.acquire().await;
            telemetry::record_limiter_wait(Upstream::Pi, waiting.elapsed());
            let sent = Instant::now();
            let mut req = self
                .inner
                .http
                .request(call.method.clone(), url.clone())
                .header(AUTHORIZATION, auth.clone())
                .header(ACCEPT, "application/json");
            if let Some(body) = &call.body {
                req = req
                    .header(CONTENT_TYPE, "application/json")
                    .body(body.clone());
            }
            let resp = req.send().await.map_err(transport_error);
            let resp = match resp {
                Ok(r) => r,
                Err(e) => {
                    let status = match e {
                        PiError::Timeout => CallStatus::Timeout,
                        _ => CallStatus::ConnectionError,
                    };
                    telemetry::record_upstream_call(
                        Upstream::Pi,
                        call.method.as_str(),
                        call.metric_endpoint,
                        status,
                        sent.elapsed(),
                    );
                    tracing::debug!(attempt, error = %e, "Pi call failed before an answer");
                    return Err(e);
                }
            };
            let status = resp.status();
            telemetry::record_upstream_call(
                Upstream::Pi,
                call.method.as_str(),
                call.metric_endpoint,
                CallStatus::Http(status.as_u16()),
                sent.elapsed(),
            );
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(parse_retry_after);
            let body = resp.bytes().await.map_err(transport_error)?;
            tracing::debug!(attempt, status = status.as_u16(), "Pi answered");
            decode_answer(status, retry_after, &body, kind, secrets)
        })
        .instrument(span.clone())
        .await;
        if let Err(e) = &result {
            let _entered = span.enter();
            tracing::debug!(error = %e, attempts = e.attempts(), "Pi call failed");
        }
        result
    }
}

/// Decode a 2xx body into `T`, anything else into a [`PiError`].
fn decode_answer<T: DeserializeOwned>(
    status: StatusCode,
    retry_after: Option<Duration>,
    body: &[u8],
    auth: Auth,
    secrets: &[&str],
) -> Result<T, PiError> {
    if !status.is_success() {
        return Err(decode_error(
            status.as_u16(),
            retry_after,
            body,
            auth,
            secrets,
        ));
    }
    serde_json::from_slice(body).map_err(|e| {
        if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_err() {
            PiError::NonJson {
                status: status.as_u16(),
                snippet: snippet(body, secrets),
            }
        } else {
            // serde's message may quote the body's values: redacted like a snippet.
            PiError::Decode {
                detail: snippet(e.to_string().as_bytes(), secrets),
            }
        }
    })
}

/// Classify a reqwest failure. The detail names the cause chain (no headers, no secrets).
fn transport_error(e: reqwest::Error) -> PiError {
    if e.is_timeout() {
        return PiError::Timeout;
    }
    if e.is_builder() {
        return PiError::Request {
            detail: e.without_url().to_string(),
        };
    }
    let mut detail = e.to_string();
    let mut source = std::error::Error::source(&e);
    while let Some(s) = source {
        detail.push_str(": ");
        detail.push_str(&s.to_string());
        source = s.source();
    }
    PiError::Connection { detail }
}

/// Normalize `PI_API_BASE_URL` to the v2 root: `https://api.minepi.com`,
/// `https://api.minepi.com/`, `https://api.minepi.com/v2` and `…/v2/` all become
/// `https://api.minepi.com/v2`.
fn api_base(raw: &str) -> Result<Url, PiConfigError> {
    let bad = |reason: &str| PiConfigError::BadBaseUrl {
        url: raw.to_string(),
        reason: reason.to_string(),
    };
    let mut url = Url::parse(raw.trim()).map_err(|e| bad(&e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(bad("the scheme must be http or https"));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(bad("credentials in the URL are not supported"));
    }
    url.set_query(None);
    url.set_fragment(None);
    {
        let mut segs = url
            .path_segments_mut()
            .map_err(|()| bad("it cannot take a path"))?;
        segs.pop_if_empty();
    }
    let ends_in_v2 = url
        .path_segments()
        .and_then(|mut s| s.next_back())
        .is_some_and(|last| last == "v2");
    if !ends_in_v2 {
        url.path_segments_mut()
            .map_err(|()| bad("it cannot take a path"))?
            .push("v2");
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use crate::pi_client::client::{PiClient, PiClientConfig, api_base};
    use crate::rate_limit::PiRateLimiter;
    use std::sync::Arc;

    #[test]
    fn base_url_forms_normalize_to_v2() {
        for raw in [
            "https://api.minepi.com",
            "https://api.minepi.com/",
            "https://api.minepi.com/v2",
            "https://api.minepi.com/v2/",
        ] {
            assert_eq!(
                api_base(raw).unwrap().as_str(),
                "https://api.minepi.com/v2",
                "{raw}"
            );
        }
        assert_eq!(
            api_base("http://127.0.0.1:9000/pi/").unwrap().as_str(),
            "http://127.0.0.1:9000/pi/v2"
        );
        assert!(api_base("ftp://x").is_err());
        assert!(api_base("not a url").is_err());
    }

    #[test]
    fn config_debug_hides_the_key() {
        let c = PiClientConfig::new(
            "https://api.minepi.com",
            "very-secret-key",
            Arc::new(PiRateLimiter::default()),
        );
        let text = format!("{c:?}");
        assert!(!text.contains("very-secret-key"), "{text}");
        let client = PiClient::new(c).unwrap();
        assert!(!format!("{client:?}").contains("very-secret-key"));
    }

    /// Found by fuzzing: serde's message for a 2xx that does not decode quoted the body's
    /// values (here an echoed credential where Pi's amount should be).
    #[test]
    fn decode_errors_do_not_quote_secrets() {
        use crate::dto::PaymentDto;
        use crate::pi_client::client::decode_answer;
        use crate::pi_client::error::{Auth, PiError};
        let key = "Aa00a_0aAaA_AAA0";
        let body = format!(r#"{{"amount":"{key}"}}"#);
        let err = decode_answer::<PaymentDto>(
            reqwest::StatusCode::OK,
            None,
            body.as_bytes(),
            Auth::Key,
            &[key],
        )
        .unwrap_err();
        assert!(matches!(err, PiError::Decode { .. }), "{err:?}");
        assert!(!err.to_string().contains(key), "{err}");
    }
}

/// Property tests: whatever body comes with a 2xx, Pi's DTOs are read or the answer is an
/// error that says so (`NonJson`, `Decode`), never a panic, and no secret reaches its text.
#[cfg(test)]
mod fuzz {
    use crate::dto::{IncompleteServerPayments, PaymentDto, RewardedAdStatusDto, UserDto};
    use crate::fuzzing::config;
    use crate::pi_client::client::decode_answer;
    use crate::pi_client::error::fuzz::{answer, secret, with_secret};
    use crate::pi_client::error::{Auth, PiError};
    use proptest::prelude::*;
    use reqwest::StatusCode;
    use serde::de::DeserializeOwned;

    /// Decode `body` as `T` with a 200; the error's text, checked to be a decoding error.
    fn decode<T: DeserializeOwned>(body: &[u8], secrets: &[&str]) -> Result<(), TestCaseError> {
        match decode_answer::<T>(StatusCode::OK, None, body, Auth::Bearer, secrets) {
            Ok(_) => Ok(()),
            Err(err @ (PiError::NonJson { .. } | PiError::Decode { .. })) => {
                let text = err.to_string();
                for s in secrets {
                    prop_assert!(!text.contains(s), "{text}");
                }
                Ok(())
            }
            Err(other) => Err(TestCaseError::fail(format!(
                "not a decode error: {other:?}"
            ))),
        }
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_success_answers_decode_or_say_why(key in secret(), answer in answer()) {
            let body = with_secret(&answer, &key);
            let secrets = [key.as_str()];
            decode::<PaymentDto>(&body, &secrets)?;
            decode::<UserDto>(&body, &secrets)?;
            decode::<RewardedAdStatusDto>(&body, &secrets)?;
            decode::<IncompleteServerPayments>(&body, &secrets)?;
        }
    }
}
