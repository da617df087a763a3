//! The API's OpenAPI 3.1 document, built from the `#[utoipa::path]` annotations next to each
//! handler and the `ToSchema` types they answer with, served at `GET /openapi.json` and
//! rendered for people at `GET /docs` ([`crate::docs_page`]). Both are public: they describe
//! routes and hold no secret.
//!
//! To document a new route: annotate its handler with `#[utoipa::path(...)]` (method, path,
//! tag, `operation_id`, request body, responses, `security`) and list the handler in
//! [`ApiDoc`]'s `paths(...)`. The tests in `api/tests/openapi.rs` fail while a mounted route
//! is missing from the document or a documented one is not mounted.

use crate::callbacks;
use crate::state::ApiState;
use axum::Router;
use axum::http::header;
use axum::response::{Html, IntoResponse};
use axum::routing::get;
use std::sync::OnceLock;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::security::{ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{ObjectBuilder, Required, Type};

/// The document's description: what every route shares.
const DESCRIPTION: &str = "The HTTP API of pi-payments: the five Pi frontend callbacks, orders, payments, the event outbox, Pioneer sign-in and rewarded ads, and the operator routes (payouts, drift, the /admin views and actions, the HTML dashboard) behind ADMIN_TOKEN.

Every error is JSON `{\"error\": \"<code>\", \"message\": \"<what to do next>\"}` (the `Error` schema); an unknown route answers 404 `not_found` and a wrong method 405 `method_not_allowed`. Bodies are limited to 64 KiB (16 MiB for POST /payouts/bulk).

Every answer carries `X-Request-Id`: the request's own id when it sent a sane one (1 to 64 visible ASCII characters), else a new one. It is in the access log line of the request and in the log lines of the jobs the request caused.

The Pi callbacks are also mounted under /api/pi_payment/ (operation ids ending in `_api`) for frontends that keep their backend under /api.";

/// The whole API, as one OpenAPI document. Every handler the router mounts is listed here.
#[derive(OpenApi)]
#[openapi(
    info(title = "pi-payments API", description = DESCRIPTION),
    paths(
        callbacks::approve,
        callbacks::complete,
        callbacks::cancel,
        callbacks::error,
        callbacks::incomplete,
        crate::orders::create,
        crate::orders::show,
        crate::payments::show,
        crate::events::list,
        crate::auth::sign_in,
        crate::auth::me,
        crate::auth::sign_out,
        crate::ads::claim,
        crate::health::healthz,
        crate::health::readyz,
        crate::metrics::metrics,
        crate::operator::ping,
        crate::drift::drift,
        crate::payouts::create,
        crate::payouts::bulk,
        crate::payouts::list,
        crate::payouts::show,
        crate::payouts::cancel,
        crate::operator_views::overview_route,
        crate::operator_views::payments_route,
        crate::operator_views::payment_route,
        crate::operator_views::webhooks_route,
        crate::operator_views::batches_route,
        crate::operator_actions::retry_payment_route,
        crate::operator_actions::retry_payout_route,
        crate::operator_actions::resend_route,
        crate::dashboard::access::login_form,
        crate::dashboard::access::login,
        crate::dashboard::access::logout,
        crate::dashboard::pages::overview,
        crate::dashboard::pages::attention,
        crate::dashboard::pages::payments,
        crate::dashboard::pages::payment,
        crate::dashboard::pages::retry_payment,
        crate::dashboard::pages::payouts,
        crate::dashboard::pages::payout,
        crate::dashboard::pages::retry_payout,
        crate::dashboard::pages::webhooks,
        crate::dashboard::pages::webhook,
        crate::dashboard::pages::resend_webhook,
        crate::dashboard::pages::batches,
        crate::dashboard::pages::drift_form,
        crate::dashboard::pages::drift_run,
        openapi_json,
        docs,
    ),
    modifiers(&SecuritySchemes, &CallbackPrefixes, &RequestIdParameter, &WrongTokenLockout),
    tags(
        (name = "callbacks", description = "The Pi SDK's payment callbacks (pi-platform.md §2): recorded at once, then checked against Pi by jobs."),
        (name = "orders", description = "Orders priced by the server from the product catalogue."),
        (name = "payments", description = "What the ledger knows about a payment."),
        (name = "events", description = "The outbox of payment events, for apps that poll instead of receiving webhooks."),
        (name = "pioneers", description = "Pioneer sign-in (through Pi's /v2/me), sessions and rewarded ads."),
        (name = "health", description = "Liveness and readiness probes."),
        (name = "operator", description = "Operator routes: every one needs `Authorization: Bearer <ADMIN_TOKEN>`."),
        (name = "dashboard", description = "The operator dashboard: HTML pages and form posts for people. Each needs `Authorization: Bearer <ADMIN_TOKEN>` or the `pp_operator` login cookie set by POST /dashboard/login (the login form itself is open); form posts with the cookie must come from the dashboard's own origin. Scripts use the /admin JSON routes instead."),
        (name = "payouts", description = "A2U payouts (operator routes, behind ADMIN_TOKEN)."),
        (name = "docs", description = "This document and its rendered form."),
    )
)]
pub struct ApiDoc;

/// The document, built once per process (it never changes while the process runs).
pub fn document() -> &'static utoipa::openapi::OpenApi {
    static DOCUMENT: OnceLock<utoipa::openapi::OpenApi> = OnceLock::new();
    DOCUMENT.get_or_init(ApiDoc::openapi)
}

/// `GET /openapi.json` and `GET /docs`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/openapi.json", get(openapi_json))
        .route("/docs", get(docs))
}

/// This API's OpenAPI 3.1 document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "docs",
    operation_id = "openapi_document",
    responses((status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json", body = serde_json::Value))
)]
pub(crate) async fn openapi_json() -> impl IntoResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let json = JSON.get_or_init(|| document().to_json().unwrap_or_else(|_| "{}".to_string()));
    ([(header::CONTENT_TYPE, "application/json")], json.as_str())
}

/// The API reference for people: this document rendered as one HTML page (no JavaScript).
#[utoipa::path(
    get,
    path = "/docs",
    tag = "docs",
    operation_id = "api_reference",
    responses((status = 200, description = "The API reference as HTML", content_type = "text/html", body = String))
)]
pub(crate) async fn docs() -> Html<&'static str> {
    static PAGE: OnceLock<String> = OnceLock::new();
    Html(PAGE.get_or_init(|| crate::docs_page::render(document())))
}

/// The ways a request proves who it is.
struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        let bearer = |description: &str| {
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(description))
                    .build(),
            )
        };
        components.add_security_scheme(
            "admin_token",
            bearer("The operator's ADMIN_TOKEN: `Authorization: Bearer <ADMIN_TOKEN>`. Operator routes answer 401 without it (and to everyone while ADMIN_TOKEN is unset)."),
        );
        components.add_security_scheme(
            "app_api_token",
            bearer("The app backend's APP_API_TOKEN: `Authorization: Bearer <APP_API_TOKEN>`; reads every payment, order and event."),
        );
        components.add_security_scheme(
            "pioneer_token",
            bearer("A Pioneer's Pi access token from `Pi.authenticate()`: `Authorization: Bearer <access token>`; verified with Pi's /v2/me."),
        );
        components.add_security_scheme(
            "session_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::session::DEFAULT_COOKIE_NAME,
                "The session cookie set by POST /auth/pi. Changes sent with it from a browser must come from an allowed origin (CSRF guard).",
            ))),
        );
        components.add_security_scheme(
            "operator_cookie",
            SecurityScheme::ApiKey(ApiKey::Cookie(ApiKeyValue::with_description(
                crate::dashboard::access::COOKIE_NAME,
                "The dashboard's login cookie, set by POST /dashboard/login after the operator pastes ADMIN_TOKEN: a signed expiry (never the token), valid 8 hours, for /dashboard only. Form posts sent with it must come from the dashboard's own origin.",
            ))),
        );
    }
}

/// The callbacks are mounted under every prefix of [`callbacks::PREFIXES`]; the annotations
/// describe the first, and this repeats each of those operations under the others (with
/// distinct operation ids, as OpenAPI requires).
struct CallbackPrefixes;

impl Modify for CallbackPrefixes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let [documented, others @ ..] = callbacks::PREFIXES;
        let originals: Vec<(String, utoipa::openapi::PathItem)> = openapi
            .paths
            .paths
            .iter()
            .filter(|(path, _)| path.starts_with(&format!("{documented}/")))
            .map(|(path, item)| (path.clone(), item.clone()))
            .collect();
        for prefix in others {
            let suffix = prefix.trim_start_matches('/').replace('/', "_");
            for (path, item) in &originals {
                let mut item = item.clone();
                for operation in [
                    &mut item.get,
                    &mut item.post,
                    &mut item.put,
                    &mut item.delete,
                    &mut item.patch,
                ]
                .into_iter()
                .flatten()
                {
                    operation.operation_id = operation
                        .operation_id
                        .as_ref()
                        .map(|id| format!("{id}_{suffix}"));
                    operation.tags = Some(vec!["callbacks".to_string()]);
                }
                let moved = format!("{prefix}{}", &path[documented.len()..]);
                openapi.paths.paths.insert(moved, item);
            }
        }
    }
}

/// The operations of one path, whatever their method (the modifiers below touch each).
fn operations_mut(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.post,
        &mut item.put,
        &mut item.delete,
        &mut item.patch,
    ]
    .into_iter()
    .flatten()
}

/// Every operation accepts `X-Request-Id` (see [`crate::access_log`]).
struct RequestIdParameter;

impl RequestIdParameter {
    fn parameter() -> Parameter {
        ParameterBuilder::new()
            .name("X-Request-Id")
            .parameter_in(ParameterIn::Header)
            .required(Required::False)
            .description(Some(
                "Your id for this request (1 to 64 visible ASCII characters), echoed in the answer's X-Request-Id and written to the logs of the request and of its jobs; a new one is made when it is missing or not sane.",
            ))
            .schema(Some(
                ObjectBuilder::new()
                    .schema_type(Type::String)
                    .max_length(Some(crate::access_log::MAX_REQUEST_ID_LEN)),
            ))
            .build()
    }
}

impl Modify for RequestIdParameter {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        for item in openapi.paths.paths.values_mut() {
            for operation in operations_mut(item) {
                operation
                    .parameters
                    .get_or_insert_with(Vec::new)
                    .push(Self::parameter());
            }
        }
    }
}

/// Every operator route (`/admin`, `/payouts`, `/dashboard`, the login form included) may
/// answer 429 `too_many_wrong_tokens` (see [`crate::token_guesses`]).
struct WrongTokenLockout;

/// The path prefixes [`crate::token_guesses`] guards.
const GUARDED_PREFIXES: [&str; 3] = ["/admin", "/payouts", "/dashboard"];

impl Modify for WrongTokenLockout {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::{ContentBuilder, Ref, RefOr, ResponseBuilder};
        let response = ResponseBuilder::new()
            .description(
                "This client address presented too many wrong operator tokens within a minute: every operator route refuses it, the right token included, until `Retry-After` (`too_many_wrong_tokens`)",
            )
            .content(
                "application/json",
                ContentBuilder::new()
                    .schema(Some(Ref::from_schema_name("Error")))
                    .build(),
            )
            .build();
        for (path, item) in openapi.paths.paths.iter_mut() {
            if !GUARDED_PREFIXES.iter().any(|p| path.starts_with(p)) {
                continue;
            }
            for operation in operations_mut(item) {
                operation
                    .responses
                    .responses
                    .entry("429".to_string())
                    .or_insert_with(|| RefOr::T(response.clone()));
            }
        }
    }
}
