//! What every handler shares: the ledger, the job queue, the products catalogue, the
//! callback group-commit pipeline, and the Pioneer / operator / browser settings of issue 8.
//! Later concerns (payouts) add fields here rather than new globals.

use crate::admin::AdminAuth;
use crate::auth::AuthState;
use crate::browser::BrowserPolicy;
use crate::callbacks::batch::{BatchConfig, CallbackBatcher};
use crate::settings::{AuthConfig, ConfigError};
use axum::extract::FromRef;
use pi_payments_core::ads::AdRewards;
use pi_payments_core::jobs::JobQueue;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::pi_client::PiClient;
use pi_payments_core::pioneer::PioneerAuth;
use pi_payments_core::products::Catalogue;
use std::sync::Arc;

/// Pioneer sign-in, sessions and rewarded ads: the parts of the API that ask Pi about a
/// Pioneer (`GET /v2/me`, the ads status). Built by [`ApiState::with_auth`].
#[derive(Clone, Debug)]
pub struct PioneerServices {
    /// Token verification and cookie sessions.
    pub auth: AuthState,
    /// Rewarded-ad claims.
    pub ads: AdRewards,
}

impl FromRef<PioneerServices> for AuthState {
    fn from_ref(s: &PioneerServices) -> AuthState {
        s.auth.clone()
    }
}

impl FromRef<PioneerServices> for AdRewards {
    fn from_ref(s: &PioneerServices) -> AdRewards {
        s.ads.clone()
    }
}

/// Shared state of the API. Every request clones it (axum's `State`), so it is one `Arc`
/// around [`ApiShared`]: one reference count to bump instead of one per field (the per-field
/// clones and drops were ~3 % of a callback's CPU). Fields read through `Deref`.
#[derive(Clone)]
pub struct ApiState(Arc<ApiShared>);

impl std::ops::Deref for ApiState {
    type Target = ApiShared;

    fn deref(&self) -> &ApiShared {
        &self.0
    }
}

/// What [`ApiState`] shares: everything is behind `Arc`s or pools.
#[derive(Clone)]
pub struct ApiShared {
    /// The ledger (a connection pool).
    pub ledger: Ledger,
    /// Where jobs go (Redis, the embedded queue, or a recording queue in tests).
    pub queue: Arc<dyn JobQueue>,
    /// Products that orders are priced from.
    pub products: Arc<Catalogue>,
    /// The group-commit pipeline callbacks are recorded through.
    pub callbacks: CallbackBatcher,
    /// Sign-in, sessions and ads. `None` for an API built without a Pi client
    /// ([`ApiState::new`], used by tests of the payment routes): `/auth`, `/me` and `/ads` are
    /// then not mounted and approve callbacks take their token from the body or Bearer only.
    pub pioneers: Option<PioneerServices>,
    /// The `ADMIN_TOKEN` check of every operator route. Closed to everyone by default.
    pub admin: AdminAuth,
    /// Wrong operator tokens per client address: too many lock the address out of the
    /// operator routes for a minute ([`crate::token_guesses`]).
    pub token_guesses: crate::token_guesses::TokenGuesses,
    /// The `APP_API_TOKEN` check (same constant-time comparison): the app's backend reads
    /// `/events`, payments and orders with it ([`crate::read_access`]). Closed by default.
    pub app_api: AdminAuth,
    /// Framing, CORS and CSRF posture, applied around every route by [`crate::router`].
    /// `None` only when even the default policy could not be built (it always can).
    pub browser: Option<BrowserPolicy>,
    /// The drift report behind `GET /admin/drift` ([`crate::drift`]); `None` (503) for an API
    /// built without Pi and Horizon clients. Set with [`ApiState::with_drift`].
    pub drift: Option<pi_payments_core::reconcile::DriftChecker>,
    /// Per-client limits of the public routes (`CLIENT_RATE_LIMIT`); `None`: unlimited (the
    /// default of [`ApiState::new`], for tests). Set with [`ApiState::with_client_limit`].
    pub client_limit: Option<crate::client_limit::ClientLimiter>,
    /// The ledger and queue gauges of `GET /metrics`, refreshed at most every few seconds.
    pub scrape_gauges: crate::scrape_gauges::ScrapeGauges,
    /// What the operator dashboard keeps besides the ledger ([`crate::dashboard`]): the Pi
    /// limiter it reads the call rate from (set by [`ApiState::with_auth`]) and its drift gate.
    pub dashboard: crate::dashboard::dashboard_state::DashboardState,
    /// The demo storefront and its simulator proxy, mounted at `/demo` by [`crate::router`].
    /// Built by the binary, only when it runs the simulator in-process; `None` everywhere
    /// else, so a deployment against the real Pi has no `/demo`. Set with
    /// [`ApiState::with_demo`].
    pub demo: Option<axum::Router>,
}

impl FromRef<ApiState> for AdminAuth {
    fn from_ref(s: &ApiState) -> AdminAuth {
        s.admin.clone()
    }
}

impl std::fmt::Debug for ApiState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiState")
            .field("ledger", &self.ledger.kind())
            .field("products", &self.products.products().len())
            .field("pioneers", &self.pioneers.is_some())
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

impl ApiState {
    /// Build the state and start the callback pipeline with default tuning (needs a Tokio
    /// runtime). No Pioneer sign-in and closed operator routes until [`ApiState::with_auth`].
    pub fn new(ledger: Ledger, queue: Arc<dyn JobQueue>, products: Catalogue) -> ApiState {
        ApiState::with_batch_config(ledger, queue, products, BatchConfig::default())
    }

    /// Like [`ApiState::new`] with explicit group-commit tuning.
    pub fn with_batch_config(
        ledger: Ledger,
        queue: Arc<dyn JobQueue>,
        products: Catalogue,
        batch: BatchConfig,
    ) -> ApiState {
        let callbacks = CallbackBatcher::spawn(ledger.clone(), queue.clone(), batch);
        ApiState(Arc::new(ApiShared {
            ledger,
            queue,
            products: Arc::new(products),
            callbacks,
            pioneers: None,
            admin: AdminAuth::new(None),
            token_guesses: crate::token_guesses::TokenGuesses::default(),
            app_api: AdminAuth::new(None),
            browser: BrowserPolicy::new(&AuthConfig::default()).ok(),
            drift: None,
            client_limit: None,
            scrape_gauges: crate::scrape_gauges::ScrapeGauges::default(),
            dashboard: crate::dashboard::dashboard_state::DashboardState::default(),
            demo: None,
        }))
    }

    /// The fields, for the builders below (they run before the state is shared, so this
    /// normally copies nothing).
    fn shared_mut(&mut self) -> &mut ApiShared {
        Arc::make_mut(&mut self.0)
    }

    /// Serve the drift report at `GET /admin/drift` (behind `ADMIN_TOKEN`).
    pub fn with_drift(mut self, checker: pi_payments_core::reconcile::DriftChecker) -> ApiState {
        self.shared_mut().drift = Some(checker);
        self
    }

    /// Add Pioneer sign-in, sessions and ads (asking Pi through `pi`, which should be the
    /// process's client so that every call shares its rate limiter), the operator token and
    /// the browser posture, all from `config`. A bad origin or cookie name is refused here;
    /// the binary checks them at configuration time already.
    pub fn with_auth(mut self, pi: PiClient, config: AuthConfig) -> Result<ApiState, ConfigError> {
        let browser = BrowserPolicy::new(&config)?;
        let pioneers = PioneerAuth::new(self.ledger.clone(), pi.clone(), config.session_ttl);
        let limiter = pi.limiter().clone();
        let ads = AdRewards::new(self.ledger.clone(), pi);
        let shared = self.shared_mut();
        shared.dashboard = shared.dashboard.clone().with_pi_limiter(limiter);
        shared.admin = AdminAuth::from_config(&config);
        shared.token_guesses = crate::token_guesses::TokenGuesses::new(config.trust_proxy);
        shared.app_api = AdminAuth::new(config.app_api_token.as_ref());
        shared.browser = Some(browser);
        shared.pioneers = Some(PioneerServices {
            auth: AuthState::new(pioneers, config),
            ads,
        });
        Ok(self)
    }

    /// Limit each client of the public routes to `limit` (`None`: no limit). `trust_proxy`:
    /// the client is the last `X-Forwarded-For` address, not the peer.
    pub fn with_client_limit(
        mut self,
        limit: Option<crate::client_limit::ClientLimit>,
        trust_proxy: bool,
    ) -> ApiState {
        self.shared_mut().client_limit =
            limit.map(|l| crate::client_limit::ClientLimiter::new(l, trust_proxy));
        self
    }

    /// Replace the brake on guessing `ADMIN_TOKEN` (e.g. with one shared through Redis,
    /// [`crate::token_guesses::TokenGuesses::shared`]); [`ApiState::with_auth`] sets one of
    /// this process alone.
    pub fn with_token_guesses(mut self, guesses: crate::token_guesses::TokenGuesses) -> ApiState {
        self.shared_mut().token_guesses = guesses;
        self
    }

    /// Mount `demo` (a finished router with its own state) at `/demo`, inside the API's
    /// tracing, body limit and browser layers.
    pub fn with_demo(mut self, demo: axum::Router) -> ApiState {
        self.shared_mut().demo = Some(demo);
        self
    }

    /// Replace the `APP_API_TOKEN` check alone (for an API without Pi, e.g. tests of reads).
    pub fn with_app_api(mut self, app_api: AdminAuth) -> ApiState {
        self.shared_mut().app_api = app_api;
        self
    }

    /// Replace the operator check alone (for an API without Pi, e.g. tests of admin routes).
    pub fn with_admin(mut self, admin: AdminAuth) -> ApiState {
        self.shared_mut().admin = admin;
        self
    }
}
