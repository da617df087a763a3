//! `/demo`: a small storefront that runs the whole Pi flow in a browser against the in-process
//! simulator, so a newcomer sees a payment and a rewarded ad go through every step. Mounted
//! only by `serve` with the built-in pi-sim (no `PI_API_KEY`): against the real Pi there is no
//! simulated wallet to sign with.
//!
//! Three static files, embedded in the binary (no Node build): `index.html`, `store.js` (the
//! app's own frontend code, written against the real SDK and our real routes, so it doubles as
//! the integration example) and `pi-sim-sdk.js` (a `window.Pi` stand-in backed by pi-sim
//! through [`sim_proxy`]). `GET /demo/products` lists the catalogue the page sells.

pub mod sim_proxy;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use pi_payments_api::ClientLimiter;
use pi_payments_core::products::Catalogue;
use std::sync::Arc;

const INDEX_HTML: &str = include_str!("assets/index.html");
const STORE_JS: &str = include_str!("assets/store.js");
const PI_SIM_SDK_JS: &str = include_str!("assets/pi-sim-sdk.js");
const STYLE_CSS: &str = include_str!("assets/style.css");

/// The `/demo` router (paths relative to `/demo`), ready to hand to
/// [`pi_payments_api::ApiState::with_demo`]. `products` is what the API sells; `limiter`
/// (`CLIENT_RATE_LIMIT`) guards the proxy's writes like the API's public routes.
pub fn router(
    products: Arc<Catalogue>,
    proxy: sim_proxy::SimProxy,
    limiter: Option<ClientLimiter>,
) -> Router {
    let pages = Router::new()
        .route("/", get(|| asset(INDEX_HTML, "text/html; charset=utf-8")))
        .route(
            "/store.js",
            get(|| asset(STORE_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/pi-sim-sdk.js",
            get(|| asset(PI_SIM_SDK_JS, "text/javascript; charset=utf-8")),
        )
        .route(
            "/style.css",
            get(|| asset(STYLE_CSS, "text/css; charset=utf-8")),
        )
        .route("/products", get(list_products))
        .with_state(products);
    pages.merge(sim_proxy::routes(proxy, limiter))
}

async fn asset(body: &'static str, content_type: &'static str) -> Response {
    let mut response = body.into_response();
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    // Served from the binary: a new build may change them, so revalidate every time.
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    response
}

/// `GET /demo/products`: `{"products": [{id, name, price, memo}]}`, prices as decimal strings.
async fn list_products(State(products): State<Arc<Catalogue>>) -> Response {
    axum::Json(serde_json::json!({ "products": products.products() })).into_response()
}
