//! The operator dashboard at `/dashboard`: server-rendered HTML (maud, no script, no external
//! asset) over the same ledger reads and actions as the JSON operator routes
//! ([`crate::operator_views`], [`crate::operator_actions`]).
//!
//! Who may see it ([`access`]): `Authorization: Bearer <ADMIN_TOKEN>`, or the login cookie
//! that `POST /dashboard/login` sets after the operator pastes the token (an HMAC-signed expiry,
//! never the token). Without either, a browser asking for HTML is sent to the login form and
//! anything else gets 401 JSON. Cookie-authenticated form posts must come from the API's own
//! origin (and the cookie is `SameSite=Strict`). Every page forbids framing and caching.
//!
//! Pages ([`pages`]): the overview, payments and payouts by state with filters and their
//! histories, `needs_attention` with retry, webhook deliveries with resend, bulk batches, the
//! drift report (on demand: it calls Pi) and the Pi call rate. Element ids and `data-testid`
//! attributes are stable for browser tests (listed in [`pages`]).

pub mod access;
pub mod dashboard_state;
mod html;
pub(crate) mod pages;

use crate::state::ApiState;
use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
pub use dashboard_state::DashboardState;

/// Every dashboard route: the login form open to all, the rest behind [`access::require_operator`],
/// all with the dashboard's response headers ([`access::dashboard_headers`]) and errors as
/// pages for browsers ([`access::html_errors`]).
pub fn routes(state: &ApiState) -> Router<ApiState> {
    let protected = Router::new()
        .route("/dashboard", get(pages::overview))
        .route("/dashboard/attention", get(pages::attention))
        .route("/dashboard/payments", get(pages::payments))
        .route("/dashboard/payments/{id}", get(pages::payment))
        .route("/dashboard/payments/{id}/retry", post(pages::retry_payment))
        .route("/dashboard/payouts", get(pages::payouts))
        .route("/dashboard/payouts/{id}", get(pages::payout))
        .route("/dashboard/payouts/{id}/retry", post(pages::retry_payout))
        .route("/dashboard/webhooks", get(pages::webhooks))
        .route("/dashboard/webhooks/{id}", get(pages::webhook))
        .route(
            "/dashboard/webhooks/{id}/resend",
            post(pages::resend_webhook),
        )
        .route("/dashboard/batches", get(pages::batches))
        .route(
            "/dashboard/drift",
            get(pages::drift_form).post(pages::drift_run),
        )
        .route("/dashboard/logout", post(access::logout))
        .route_layer(middleware::from_fn_with_state(
            state.clone(),
            access::require_operator,
        ));
    // The brake on guessing ADMIN_TOKEN inside html_errors, so a locked-out browser gets a page.
    let guarded = state.token_guesses.protect(
        Router::new()
            .route(
                "/dashboard/login",
                get(access::login_form).post(access::login),
            )
            .merge(protected),
    );
    guarded
        .route_layer(middleware::from_fn(access::html_errors))
        .route_layer(middleware::from_fn(access::dashboard_headers))
}
