//! Who may use the dashboard, and how a browser logs in without keeping the admin token.
//!
//! - `Authorization: Bearer <ADMIN_TOKEN>` (scripts, curl) is checked like every operator route.
//! - The login cookie [`COOKIE_NAME`] holds `<expiry unix s>.<hex HMAC-SHA256>` over the
//!   expiry, keyed by a key derived from `ADMIN_TOKEN` ([`AdminAuth::derive_key`]): it never
//!   contains the token, every API process with the same token accepts it, it expires after
//!   [`SESSION_TTL`], and changing the token voids every cookie. It is `HttpOnly`,
//!   `SameSite=Strict`, `Path=/dashboard` (and `Secure` behind an HTTPS proxy). Logging out
//!   clears it in the browser; a copied cookie stays valid until it expires.
//! - A form post carrying the cookie must come from the API's own origin (`Origin`, else
//!   `Referer`; `APP_ORIGINS` do not count), besides `SameSite=Strict`.
//! - Without a credential: a browser `GET` asking for HTML is redirected to the login form;
//!   anything else is 401 JSON.

use super::html;
use crate::admin::AdminAuth;
use crate::error::{ApiError, ErrorBody};
use crate::extract::has_bearer;
use crate::state::ApiState;
use axum::Form;
use axum::extract::rejection::FormRejection;
use axum::extract::{Query, Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use cookie::{Cookie, SameSite};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The login cookie's name.
pub const COOKIE_NAME: &str = "pp_operator";

/// How long a login lasts.
pub const SESSION_TTL: Duration = Duration::from_secs(8 * 3600);

/// What the cookie key is derived for (changing it voids every cookie).
const KEY_PURPOSE: &str = "pi-payments operator dashboard login cookie v1";

/// The dashboard's security headers: no framing by anyone, no script, forms only to itself,
/// nothing cached (pages show every Pioneer's payments).
const CSP: &str = "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

fn now_s() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

fn signature(key: &[u8; 32], expires: u64) -> Option<Hmac<Sha256>> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).ok()?;
    mac.update(format!("operator|{expires}").as_bytes());
    Some(mac)
}

/// A fresh cookie value valid for [`SESSION_TTL`] from `now` (unix s); `None` without a
/// configured token.
pub fn issue(admin: &AdminAuth, now: u64) -> Option<String> {
    let key = admin.derive_key(KEY_PURPOSE)?;
    let expires = now.saturating_add(SESSION_TTL.as_secs());
    let mac = signature(&key, expires)?;
    Some(format!(
        "{expires}.{}",
        hex::encode(mac.finalize().into_bytes())
    ))
}

/// Whether `value` is a cookie [`issue`] made with this token and not expired at `now`.
/// The MAC is compared in constant time.
pub fn verify(admin: &AdminAuth, value: &str, now: u64) -> bool {
    let Some(key) = admin.derive_key(KEY_PURPOSE) else {
        return false;
    };
    let Some((expires, sig)) = value.split_once('.') else {
        return false;
    };
    let Ok(expires) = expires.parse::<u64>() else {
        return false;
    };
    // Expired, or further ahead than any cookie this version issues.
    if expires <= now || expires > now.saturating_add(SESSION_TTL.as_secs() + 60) {
        return false;
    }
    let Ok(sig) = hex::decode(sig) else {
        return false;
    };
    signature(&key, expires).is_some_and(|mac| mac.verify_slice(&sig).is_ok())
}

fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .find(|c| c.name() == COOKIE_NAME)
        .map(|c| c.value().to_string())
}

/// Whether the request carries a valid login cookie.
pub fn has_valid_cookie(admin: &AdminAuth, headers: &HeaderMap) -> bool {
    cookie_value(headers).is_some_and(|v| verify(admin, &v, now_s()))
}

/// Behind an HTTPS proxy the cookie is `Secure`; on plain HTTP (the embedded demo on
/// loopback) a `Secure` cookie would be refused by the browser.
fn behind_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.trim().eq_ignore_ascii_case("https"))
}

fn set_cookie(value: &str, max_age: Duration, secure: bool) -> HeaderValue {
    let mut cookie = Cookie::build((COOKIE_NAME, value.to_string()))
        .path("/dashboard")
        .http_only(true)
        .same_site(SameSite::Strict)
        .secure(secure)
        .build();
    cookie.set_max_age(cookie::time::Duration::seconds(
        i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX),
    ));
    // The value is digits, a dot and hex: always a valid header.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD)
}

fn wants_html(headers: &HeaderMap) -> bool {
    headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.contains("text/html"))
}

/// Whether a cookie-authenticated form post comes from the API's own origin.
fn own_origin(state: &ApiState, headers: &HeaderMap) -> bool {
    state
        .browser
        .as_ref()
        .is_some_and(|policy| policy.is_own_origin(headers))
}

fn cross_site() -> Response {
    tracing::warn!("refused a dashboard form post from another origin");
    ApiError::forbidden(
        "csrf_origin_refused",
        "dashboard forms must be posted from the dashboard's own pages (same origin); scripts send `Authorization: Bearer <ADMIN_TOKEN>` to the /admin routes instead",
    )
    .into_response()
}

/// Middleware of every dashboard route but the login form (see the module docs).
pub async fn require_operator(
    State(state): State<ApiState>,
    request: Request,
    next: Next,
) -> Response {
    let headers = request.headers();
    if has_bearer(headers) {
        return match state.admin.check(headers) {
            Ok(()) => next.run(request).await,
            Err(refused) => refused.into_response(),
        };
    }
    if has_valid_cookie(&state.admin, headers) {
        if !is_safe(request.method()) && !own_origin(&state, headers) {
            return cross_site();
        }
        return next.run(request).await;
    }
    if is_safe(request.method()) && wants_html(headers) {
        let next_path = request
            .uri()
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/dashboard");
        let query = serde_urlencoded::to_string([("next", next_path)]).unwrap_or_default();
        return Redirect::to(&format!("/dashboard/login?{query}")).into_response();
    }
    match state.admin.check(headers) {
        Ok(()) => next.run(request).await,
        Err(refused) => refused.into_response(),
    }
}

/// Middleware of every dashboard route: the security headers of [`CSP`] and no caching.
pub async fn dashboard_headers(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    response
}

/// Middleware of every dashboard route: an error answer (JSON `{error, message}`, like every
/// route's) becomes a page for a browser that asked for HTML; scripts keep the JSON.
pub async fn html_errors(request: Request, next: Next) -> Response {
    let wants = wants_html(request.headers());
    let response = next.run(request).await;
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !wants || !json || !(status.is_client_error() || status.is_server_error()) {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    // Error bodies are a code and a sentence.
    let Ok(bytes) = axum::body::to_bytes(body, 64 * 1024).await else {
        return ApiError::Internal.into_response();
    };
    let value: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
    let code = value["error"].as_str().unwrap_or("error");
    let message = value["message"]
        .as_str()
        .unwrap_or("the request could not be served");
    let page = html::error_page(code, message).into_string();
    parts.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(page))
}

/// Where to go after logging in: a dashboard path of ours, never another site.
fn safe_next(next: Option<&String>) -> String {
    next.filter(|n| {
        n.starts_with("/dashboard")
            && !n.contains("//")
            && !n.contains('\\')
            && n.len() < 512
            && !n.chars().any(char::is_control)
    })
    .cloned()
    .unwrap_or_else(|| "/dashboard".to_string())
}

/// The login form's fields (`POST /dashboard/login`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the body for the OpenAPI document; `login` reads it as a map.
pub struct LoginForm {
    /// The server's ADMIN_TOKEN, pasted by the operator.
    token: String,
    /// The dashboard page to go to after logging in (default `/dashboard`; other sites are
    /// ignored).
    next: Option<String>,
}

/// The dashboard's login form.
///
/// Where the operator pastes `ADMIN_TOKEN` (open to everyone: it shows nothing else).
#[utoipa::path(
    get,
    path = "/dashboard/login",
    tag = "dashboard",
    operation_id = "dashboard_login_form",
    params(("next" = Option<String>, Query, description = "The dashboard page to go to after logging in (default `/dashboard`)")),
    responses((status = 200, description = "The form", content_type = "text/html", body = String))
)]
pub async fn login_form(
    State(state): State<ApiState>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let next = safe_next(query.get("next"));
    html::login_page(&next, None, state.admin.is_configured()).into_response()
}

/// Log in to the dashboard.
///
/// Checks the pasted token, sets the login cookie (`pp_operator`: a signed expiry, never the
/// token; valid 8 hours) and goes on to `next`; a wrong token shows the form again.
#[utoipa::path(
    post,
    path = "/dashboard/login",
    tag = "dashboard",
    operation_id = "dashboard_login",
    request_body(content = LoginForm, content_type = "application/x-www-form-urlencoded"),
    responses(
        (status = 303, description = "Logged in: the `pp_operator` cookie is set and the browser is sent to `next`",
            headers(("Set-Cookie" = String, description = "The login cookie (`HttpOnly`, `SameSite=Strict`, `Path=/dashboard`)"))),
        (status = 400, description = "Not a form (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "Wrong token, or no ADMIN_TOKEN configured: the form again with the reason", content_type = "text/html", body = String),
        (status = 403, description = "Posted from another origin (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn login(
    State(state): State<ApiState>,
    headers: HeaderMap,
    form: Result<Form<HashMap<String, String>>, FormRejection>,
) -> Response {
    let Ok(Form(form)) = form else {
        return ApiError::bad_request(
            "invalid_form",
            "post the login form as application/x-www-form-urlencoded with a `token` field",
        )
        .into_response();
    };
    // Logging someone in from another site gains nothing without the token, but the form is
    // meant to be posted from itself only.
    if (headers.contains_key(header::ORIGIN) || headers.contains_key(header::REFERER))
        && !own_origin(&state, &headers)
    {
        return cross_site();
    }
    let next = safe_next(form.get("next"));
    let token = form.get("token").map(String::as_str).unwrap_or("");
    if !state.admin.accepts_token(token) {
        tracing::warn!("dashboard login refused");
        let message = if state.admin.is_configured() {
            "That is not the server's ADMIN_TOKEN. Paste it exactly as configured."
        } else {
            "This server has no ADMIN_TOKEN, so the dashboard is closed: set ADMIN_TOKEN and restart."
        };
        return (
            StatusCode::UNAUTHORIZED,
            html::login_page(&next, Some(message), state.admin.is_configured()),
        )
            .into_response();
    }
    let Some(value) = issue(&state.admin, now_s()) else {
        return ApiError::Internal.into_response();
    };
    tracing::info!("operator logged in to the dashboard");
    let mut response = Redirect::to(&next).into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie(&value, SESSION_TTL, behind_https(&headers)),
    );
    response
}

/// Log out of the dashboard.
///
/// Clears the login cookie in this browser (a copied cookie stays valid until it expires).
#[utoipa::path(
    post,
    path = "/dashboard/logout",
    tag = "dashboard",
    operation_id = "dashboard_logout",
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 303, description = "Logged out: the cookie is cleared and the browser is sent to `/dashboard/login`",
            headers(("Set-Cookie" = String, description = "The login cookie, expired"))),
        (status = 401, description = "No or wrong credential", body = ErrorBody),
        (status = 403, description = "A cookie-authenticated form posted from another origin (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn logout(headers: HeaderMap) -> Response {
    let mut response = Redirect::to("/dashboard/login").into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        set_cookie("", Duration::ZERO, behind_https(&headers)),
    );
    response
}

#[cfg(test)]
mod tests {
    use crate::admin::AdminAuth;
    use crate::dashboard::access::{SESSION_TTL, issue, verify};
    use pi_payments_core::secret::Secret;

    #[test]
    fn cookies_are_signed_expiring_and_do_not_hold_the_token() {
        let token = "0123456789abcdef-dashboard";
        let admin = AdminAuth::new(Some(&Secret::new(token)));
        let now = 1_800_000_000;
        let value = issue(&admin, now).unwrap();
        assert!(!value.contains(token));
        assert!(verify(&admin, &value, now));
        assert!(verify(&admin, &value, now + SESSION_TTL.as_secs() - 1));
        assert!(!verify(&admin, &value, now + SESSION_TTL.as_secs()));
        // Another token, a changed expiry, a changed signature, junk: refused.
        let other = AdminAuth::new(Some(&Secret::new("another-token-0123456789")));
        assert!(!verify(&other, &value, now));
        let (exp, sig) = value.split_once('.').unwrap();
        let later = exp.parse::<u64>().unwrap() + 1;
        assert!(!verify(&admin, &format!("{later}.{sig}"), now));
        let mut flipped = sig.to_string();
        flipped.replace_range(0..1, if sig.starts_with('0') { "1" } else { "0" });
        assert!(!verify(&admin, &format!("{exp}.{flipped}"), now));
        for junk in ["", ".", "x.y", "1.zz", &format!("{exp}.")] {
            assert!(!verify(&admin, junk, now), "{junk}");
        }
        // No token configured: no cookie at all.
        assert!(issue(&AdminAuth::new(None), now).is_none());
        assert!(!verify(&AdminAuth::new(None), &value, now));
    }
}
