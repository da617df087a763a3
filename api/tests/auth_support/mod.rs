//! A small router of the auth, ads and admin pieces (as the lead will mount them), over a real
//! ledger (SQLite in a temp dir, or a fresh Postgres database) and pi-sim for `/v2/me` and
//! the ads status endpoint.
#![allow(dead_code)]

use axum::Json;
use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, FromRef};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::routing::{get, post};
use pi_payments_api::admin::{self, AdminAuth};
use pi_payments_api::ads;
use pi_payments_api::auth::{self, AuthConfig, AuthState, AuthenticatedPioneer, Secret};
use pi_payments_api::browser::{self, BrowserPolicy};
use pi_payments_core::ads::AdRewards;
use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_payments_core::ledger::{EventRow, Ledger};
use pi_payments_core::pi_client::{PiClient, PiClientConfig, install_crypto_provider};
use pi_payments_core::pioneer::PioneerAuth;
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::retry::RetryPolicy;
use pi_sim::control_client::{SimControl, TokenRequest};
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;
use tower::ServiceExt;

pub const APP_ORIGIN: &str = "https://app.example.com";
pub const ADMIN_TOKEN: &str = "test-admin-token-0123456789abcdef";

/// The state the test router runs on: what the lead's `ApiState` will also provide.
#[derive(Clone)]
pub struct TestState {
    pub auth: AuthState,
    pub ads: AdRewards,
    pub admin: AdminAuth,
}

impl FromRef<TestState> for AuthState {
    fn from_ref(s: &TestState) -> AuthState {
        s.auth.clone()
    }
}

impl FromRef<TestState> for AdRewards {
    fn from_ref(s: &TestState) -> AdRewards {
        s.ads.clone()
    }
}

impl FromRef<TestState> for AdminAuth {
    fn from_ref(s: &TestState) -> AdminAuth {
        s.admin.clone()
    }
}

pub struct Harness {
    pub router: Router,
    pub sim: pi_sim::RunningSim,
    pub ledger: Ledger,
    pub state: TestState,
    /// pi-sim's control API: the Pioneer's tokens, ads, faults and the request log.
    pub control: SimControl,
    pg_db: Option<ScratchDatabase>,
    _dir: Option<tempfile::TempDir>,
}

pub fn default_config() -> AuthConfig {
    AuthConfig {
        app_origins: vec![APP_ORIGIN.to_string()],
        admin_token: Some(Secret::new(ADMIN_TOKEN)),
        ..AuthConfig::default()
    }
}

fn pg_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

impl Harness {
    /// SQLite ledger in a temp dir.
    pub async fn sqlite() -> Harness {
        Harness::sqlite_with(default_config()).await
    }

    pub async fn sqlite_with(config: AuthConfig) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = Ledger::connect(&url).await.unwrap();
        Harness::build(ledger, config, None, Some(dir)).await
    }

    /// A fresh Postgres database (TEST_DATABASE_URL's server), dropped by [`Harness::finish`].
    pub async fn postgres() -> Harness {
        let base = pg_base_url();
        let db = ScratchDatabase::create(&base, "pp_auth")
            .await
            .unwrap_or_else(|e| {
                panic!(
                    "Postgres at {base} is required for these tests (set TEST_DATABASE_URL): {e}"
                )
            });
        let ledger = Ledger::connect(db.url()).await.unwrap();
        Harness::build(ledger, default_config(), Some(db), None).await
    }

    async fn build(
        ledger: Ledger,
        config: AuthConfig,
        pg_db: Option<ScratchDatabase>,
        dir: Option<tempfile::TempDir>,
    ) -> Harness {
        install_crypto_provider();
        let sim = pi_sim::start(pi_sim::SimConfig::default()).await.unwrap();
        let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(1000).unwrap()));
        let mut pi_config = PiClientConfig::new(&sim.platform_url, &sim.api_key, limiter);
        pi_config.retry = RetryPolicy::fast();
        pi_config.timeout = Duration::from_secs(5);
        let pi = PiClient::new(pi_config).unwrap();
        let policy = BrowserPolicy::new(&config).unwrap();
        let state = TestState {
            auth: AuthState::new(
                PioneerAuth::new(ledger.clone(), pi.clone(), config.session_ttl),
                config.clone(),
            ),
            ads: AdRewards::new(ledger.clone(), pi),
            admin: AdminAuth::from_config(&config),
        };
        // Operator routes: a stand-in for /payouts, /admin and the dashboard.
        let operator = admin::protect(
            Router::new()
                .route("/admin/ping", get(|| async { Json(json!({"ok": true})) }))
                .route("/payouts", post(|| async { Json(json!({"ok": true})) })),
            state.admin.clone(),
        );
        // A Pioneer mutation besides the ones above, to exercise the CSRF guard.
        let whoami = Router::new().route(
            "/whoami",
            post(|who: AuthenticatedPioneer| async move {
                Json(json!({"uid": who.pioneer.uid.as_str()}))
            }),
        );
        let router = Router::new()
            .merge(auth::routes())
            .merge(ads::routes())
            .merge(operator)
            .merge(whoami)
            .layer(DefaultBodyLimit::max(pi_payments_api::extract::BODY_LIMIT))
            .with_state(state.clone());
        let router = browser::apply(router, &policy);
        let control = SimControl::of(&sim).unwrap();
        Harness {
            router,
            sim,
            ledger,
            state,
            control,
            pg_db,
            _dir: dir,
        }
    }

    /// Stop the simulator and drop the Postgres database, if any.
    pub async fn finish(self) {
        self.ledger.close().await;
        self.sim.shutdown().await;
        if let Some(db) = self.pg_db {
            let _ = db.drop_database().await;
        }
    }

    /// A fresh access token for `uid` at pi-sim, valid `expires_in` seconds (default 1 h).
    pub async fn token(&self, uid: &str, expires_in: Option<i64>) -> String {
        let request = TokenRequest {
            username: Some(format!("user_{uid}")),
            expires_in,
            ..TokenRequest::for_uid(uid)
        };
        self.control
            .mint_token(&request)
            .await
            .unwrap()
            .access_token
    }

    /// Create or update a rewarded ad at pi-sim; its id.
    pub async fn set_ad(&self, ad_id: Option<&str>, status: Option<&str>) -> String {
        self.control.set_ad(ad_id, status).await.unwrap()
    }

    pub async fn faults(&self, update: Value) {
        self.control.faults(&update).await.unwrap();
    }

    /// pi-sim's call count for one endpoint name (`me`, `ads_status`, …).
    pub async fn sim_calls(&self, endpoint: &str) -> u64 {
        self.control.endpoint_calls(endpoint).await.unwrap()
    }

    /// Send a request; status, headers and the JSON body (Null when empty).
    pub async fn send(&self, req: Request<Body>) -> (StatusCode, HeaderMap, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = if bytes.is_empty() {
            Value::Null
        } else {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| {
                panic!(
                    "non-JSON answer ({status}): {}",
                    String::from_utf8_lossy(&bytes)
                )
            })
        };
        (status, headers, value)
    }

    /// `POST /auth/pi {"accessToken": token}`: status, headers and JSON body.
    pub async fn post_sign_in(&self, token: &str) -> (StatusCode, HeaderMap, Value) {
        self.send(json_request(
            "POST",
            "/auth/pi",
            json!({"accessToken": token}),
            &[],
        ))
        .await
    }

    /// Sign in with `token`; the cookie pair `name=value` to send back.
    pub async fn sign_in(&self, token: &str) -> String {
        let (status, headers, body) = self.post_sign_in(token).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        cookie_pair(&headers)
    }

    /// Claim an ad as the holder of `token` (Bearer).
    pub async fn claim(&self, token: &str, ad_id: &str) -> (StatusCode, Value) {
        let auth = format!("Bearer {token}");
        let (status, _, body) = self
            .send(json_request(
                "POST",
                "/ads/claim",
                json!({"adId": ad_id, "productId": "coins-10"}),
                &[("authorization", &auth)],
            ))
            .await;
        (status, body)
    }

    /// The same claim on its own task (real parallelism on a multi-thread runtime).
    pub fn spawn_claim(
        &self,
        token: &str,
        ad_id: &str,
    ) -> tokio::task::JoinHandle<(StatusCode, Value)> {
        let router = self.router.clone();
        let auth = format!("Bearer {token}");
        let req = json_request(
            "POST",
            "/ads/claim",
            json!({"adId": ad_id, "productId": "coins-10"}),
            &[("authorization", &auth)],
        );
        tokio::spawn(async move {
            let response = router.oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, serde_json::from_slice(&bytes).unwrap())
        })
    }

    /// Outbox events of `event_type` about `subject`.
    pub async fn events(&self, event_type: &str, subject: &str) -> Vec<EventRow> {
        self.ledger
            .events_after(0, 10_000)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.event_type == event_type && e.subject_id == subject)
            .collect()
    }
}

/// A second client to pi-sim (its own limiter), as another process would have.
pub fn pi_client(h: &Harness) -> PiClient {
    let limiter = Arc::new(PiRateLimiter::default());
    PiClient::new(PiClientConfig::new(
        &h.sim.platform_url,
        &h.sim.api_key,
        limiter,
    ))
    .unwrap()
}

/// A request with a JSON body and extra headers.
pub fn json_request(
    method: &str,
    path: &str,
    body: Value,
    headers: &[(&str, &str)],
) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "api.example.com")
        .header(header::CONTENT_TYPE, "application/json");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::from(body.to_string())).unwrap()
}

/// A request without a body.
pub fn bare_request(method: &str, path: &str, headers: &[(&str, &str)]) -> Request<Body> {
    let mut builder = Request::builder()
        .method(method)
        .uri(path)
        .header(header::HOST, "api.example.com");
    for (k, v) in headers {
        builder = builder.header(*k, *v);
    }
    builder.body(Body::empty()).unwrap()
}

/// The single `Set-Cookie` header's text.
pub fn set_cookie(headers: &HeaderMap) -> String {
    let all: Vec<_> = headers.get_all(header::SET_COOKIE).iter().collect();
    assert_eq!(all.len(), 1, "expected one Set-Cookie, got {all:?}");
    all[0].to_str().unwrap().to_string()
}

/// `name=value` of the `Set-Cookie` header, as a browser would send it back.
pub fn cookie_pair(headers: &HeaderMap) -> String {
    set_cookie(headers)
        .split(';')
        .next()
        .unwrap()
        .trim()
        .to_string()
}

pub mod ads_scenarios;
