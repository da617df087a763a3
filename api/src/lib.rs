//! pi-payments-api: the HTTP side of pi-payments, axum on hyper 1.
//!
//! One module per concern: [`callbacks`] (the five Pi frontend callbacks, group-committed to
//! the ledger), [`payments`], [`orders`], [`events`] (outbox polling), [`health`], with
//! [`error`] and [`extract`] shared by all. Every answer, including 404, 405 and 413, is JSON
//! (except [`metrics`]' Prometheus text). [`probes`] is the small server of worker processes.
//! Pioneer sign-in and sessions ([`auth`], [`session`]), rewarded ads ([`ads`]), operator
//! routes behind `ADMIN_TOKEN` ([`operator`], [`admin`]) and the browser posture for Pi's
//! iframe ([`browser`]), all configured by [`settings`], are mounted in [`router`].
//! Every request gets an id and an access log line ([`access_log`]); the routes describe
//! themselves in an OpenAPI document served at `/openapi.json` and rendered at `/docs`
//! ([`openapi`], [`docs_page`]).

pub mod access_log;
pub mod callbacks;
pub mod client_limit;
pub mod dashboard;
pub mod docs_page;
pub mod drift;
pub mod error;
pub mod events;
pub mod extract;
pub mod health;
pub mod metrics;
pub mod openapi;
pub mod operator;
pub mod operator_actions;
pub mod operator_views;
pub mod orders;
pub mod payments;
pub mod payouts;
pub mod probes;
pub mod read_access;
pub mod request_timeout;
pub mod scrape_gauges;
pub mod server;
pub mod state;
pub mod token_guesses;

pub use callbacks::{BatchConfig, CallbackBatcher, CallbackKind};
pub use client_limit::{ClientLimit, ClientLimiter};
pub use error::ApiError;
pub use operator::operator_routes;
pub use server::ServerLimits;
pub use state::{ApiShared, ApiState, PioneerServices};

use axum::Router;
use axum::extract::DefaultBodyLimit;
use axum::http::Method;
use axum::routing::get;
use std::future::Future;

/// Every route of the API, with its state, body limit, request ids and access log.
///
/// The access log and the request span record only the method, the path and the request id:
/// never query strings, headers (the Authorization header carries access tokens) or bodies.
/// Every route is described in [`openapi::ApiDoc`] (a test fails when one is missing).
///
/// Operator routes go through [`operator_routes`] (behind `ADMIN_TOKEN`); the browser layers
/// (CSRF guard, CORS, framing headers) wrap everything, refusals and 404s included.
pub fn router(state: ApiState) -> Router {
    // The public routes that write or ask Pi are limited per client (CLIENT_RATE_LIMIT).
    let limited = |router: Router<ApiState>| match &state.client_limit {
        Some(limiter) => limiter.protect(router),
        None => router,
    };
    let mut routes = Router::new()
        .merge(limited(callbacks::routes()))
        .merge(payments::routes())
        .merge(limited(orders::routes()))
        .merge(events::routes())
        .route("/healthz", get(health::healthz))
        .route("/readyz", get(health::readyz))
        // Prometheus text; open like the probes (see `metrics` for why nothing in it is secret).
        .route("/metrics", get(metrics::metrics))
        // Behind ADMIN_TOKEN, and a brake on guessing it (token_guesses).
        .merge(
            state
                .token_guesses
                .protect(operator_routes(state.admin.clone())),
        )
        // GET /admin/drift, behind ADMIN_TOKEN like every operator route.
        .merge(
            state
                .token_guesses
                .protect(admin::protect(drift::routes(), state.admin.clone())),
        )
        // /dashboard: HTML for operators, behind ADMIN_TOKEN or its login cookie.
        .merge(dashboard::routes(&state))
        // GET /openapi.json and /docs: public, they describe the routes and hold no secret.
        .merge(openapi::routes());
    if let Some(pioneers) = &state.pioneers {
        // Sign-in, /me, logout and ad claims run on their own state (auth + ads).
        let pioneer_routes = Router::new().merge(auth::routes()).merge(ads::routes());
        let pioneer_routes = match &state.client_limit {
            Some(limiter) => limiter.protect(pioneer_routes),
            None => pioneer_routes,
        };
        routes = routes.merge(pioneer_routes.with_state(pioneers.clone()));
    }
    if let Some(demo) = &state.demo {
        // The embedded-mode storefront (the binary builds it only with the in-process pi-sim).
        routes = routes.nest_service("/demo", demo.clone());
    }
    let browser_policy = state.browser.clone();
    let app = routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(extract::BODY_LIMIT))
        .with_state(state);
    // After the routes, so that it wraps every answer (see browser::apply).
    let app = match &browser_policy {
        Some(policy) => browser::apply(app, policy),
        None => app,
    };
    // Outermost: browser refusals are logged and carry X-Request-Id too.
    app.layer(axum::middleware::from_fn(access_log::log_requests))
}

/// Serve the API on `listener` within `limits` (header-read and request timeouts, a connection
/// cap: see [`server`]) until `shutdown` resolves, then finish the requests in flight (every
/// accepted callback is answered) and return.
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: ApiState,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let callbacks = state.callbacks.clone();
    let app = router(state)
        .layer(axum::middleware::from_fn_with_state(
            limits.request_timeout,
            request_timeout::enforce,
        ))
        // Outermost, so that refusals and timeouts are counted too (by route template).
        .layer(axum::middleware::from_fn(metrics::record_requests));
    server::serve_bounded(listener, app, limits, shutdown).await;
    // Push the jobs of callbacks answered just before the stop (their rows are stored either
    // way; this only spares them a wait for the sweeper).
    callbacks.flush().await;
    Ok(())
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(
        "not_found",
        format!(
            "no route {}; Pi callbacks are POST /pi_payment/{{approve,complete,cancel,error,incomplete}} (or under /api/)",
            uri.path().chars().take(200).collect::<String>()
        ),
    )
}

async fn method_not_allowed(method: Method) -> ApiError {
    ApiError::MethodNotAllowed {
        method: method.to_string(),
    }
}

pub mod admin;
pub mod ads;
pub mod auth;
pub mod browser;
pub mod session;
pub mod settings;
