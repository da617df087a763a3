//! The API's posture towards browsers, for an app that runs framed inside Pi's Sandbox and
//! the Pi Browser (pi-platform.md §7):
//!
//! - **Framing**: never `X-Frame-Options: DENY` (it would blank the app inside Pi's frame);
//!   instead `Content-Security-Policy: frame-ancestors 'self' <Pi's origins> <APP_ORIGINS>`.
//! - **CORS** for `APP_ORIGINS` with credentials (the frontend fetches with
//!   `credentials: "include"` or sends a Bearer header).
//! - **CSRF**: a state-changing request that carries the session cookie and no Bearer header
//!   must come from a trusted origin (`APP_ORIGINS`, Pi's Sandbox) or the API's own origin,
//!   judged by `Origin` (or `Referer`). A Bearer header cannot be attached by a cross-site page
//!   without passing CORS, so Bearer requests need no check.
//! - **Proxies**: with `TRUST_PROXY`, `X-Forwarded-Host`/`-Proto` name the API's own origin.
//!
//! [`apply`] adds all three layers to a router, outermost last.

use crate::error::ApiError;
use crate::extract::has_bearer;
use crate::session;
use crate::settings::{AuthConfig, ConfigError, normalize_origin};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderName, HeaderValue, Method, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;
use tower_http::cors::{AllowOrigin, CorsLayer};

/// The checked browser settings the layers share; build once with [`BrowserPolicy::new`].
#[derive(Clone, Debug)]
pub struct BrowserPolicy {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    cors_origins: Vec<HeaderValue>,
    /// Normalized origins whose cookie-carrying mutations are accepted.
    trusted: HashSet<String>,
    csp: HeaderValue,
    trust_proxy: bool,
    cookie_name: String,
}

impl BrowserPolicy {
    /// Check and prepare the settings; a bad origin or cookie name is a startup error.
    pub fn new(cfg: &AuthConfig) -> Result<BrowserPolicy, ConfigError> {
        if !session::valid_cookie_name(&cfg.cookie_name) {
            return Err(ConfigError::BadCookieName(cfg.cookie_name.clone()));
        }
        let norm = |o: &String, wildcard: bool| {
            normalize_origin(o, wildcard).ok_or_else(|| ConfigError::BadOrigin(o.clone()))
        };
        let app = cfg
            .app_origins
            .iter()
            .map(|o| norm(o, false))
            .collect::<Result<Vec<_>, _>>()?;
        let pi_trusted = cfg
            .pi_trusted_origins
            .iter()
            .map(|o| norm(o, false))
            .collect::<Result<Vec<_>, _>>()?;
        let pi_frames = cfg
            .pi_frame_origins
            .iter()
            .map(|o| norm(o, true))
            .collect::<Result<Vec<_>, _>>()?;
        let cors_origins = app
            .iter()
            .map(|o| HeaderValue::from_str(o).map_err(|_| ConfigError::BadOrigin(o.clone())))
            .collect::<Result<Vec<_>, _>>()?;
        let mut ancestors = vec!["'self'".to_string()];
        for o in pi_frames.iter().chain(&app) {
            if !ancestors.contains(o) {
                ancestors.push(o.clone());
            }
        }
        let csp = HeaderValue::from_str(&format!("frame-ancestors {}", ancestors.join(" ")))
            .map_err(|_| ConfigError::BadOrigin(ancestors.join(" ")))?;
        Ok(BrowserPolicy {
            inner: Arc::new(Inner {
                cors_origins,
                trusted: app.into_iter().chain(pi_trusted).collect(),
                csp,
                trust_proxy: cfg.trust_proxy,
                cookie_name: cfg.cookie_name.clone(),
            }),
        })
    }

    /// The `Content-Security-Policy` value sent on every answer.
    pub fn csp(&self) -> &HeaderValue {
        &self.inner.csp
    }

    /// The CORS layer: `APP_ORIGINS` only, with credentials, the methods and headers the
    /// frontend uses. Without origins it allows none.
    pub fn cors_layer(&self) -> CorsLayer {
        CorsLayer::new()
            .allow_origin(AllowOrigin::list(self.inner.cors_origins.clone()))
            .allow_credentials(true)
            .allow_methods([
                Method::GET,
                Method::POST,
                Method::PUT,
                Method::PATCH,
                Method::DELETE,
            ])
            .allow_headers([
                header::AUTHORIZATION,
                header::CONTENT_TYPE,
                header::ACCEPT,
                HeaderName::from_static("idempotency-key"),
            ])
            .max_age(Duration::from_secs(600))
    }

    /// Whether a request may go on as far as CSRF is concerned (see the module docs).
    pub fn allows(&self, method: &Method, headers: &HeaderMap) -> Result<(), ApiError> {
        let safe = matches!(
            *method,
            Method::GET | Method::HEAD | Method::OPTIONS | Method::TRACE
        );
        if safe || has_bearer(headers) || !session::has_cookie(headers, &self.inner.cookie_name) {
            return Ok(());
        }
        let origin = request_origin(headers).ok_or_else(|| {
            ApiError::forbidden(
                "csrf_origin_missing",
                "a cookie-authenticated change needs an Origin header: call from the app's page, or send `Authorization: Bearer <Pi access token>` instead of the cookie",
            )
        })?;
        if self.inner.trusted.contains(&origin) || self.same_origin(&origin, headers) {
            return Ok(());
        }
        tracing::warn!(origin = %origin, "refused a cookie-authenticated request from an untrusted origin");
        Err(ApiError::forbidden(
            "csrf_origin_refused",
            "this origin may not make cookie-authenticated changes: add it to APP_ORIGINS, or send `Authorization: Bearer <Pi access token>`",
        ))
    }

    /// Whether the request's `Origin` (or `Referer`) is the API's own origin: what the
    /// operator dashboard demands of its cookie-authenticated form posts (`APP_ORIGINS` are
    /// not enough there: an app's page has no business posting to the dashboard).
    pub fn is_own_origin(&self, headers: &HeaderMap) -> bool {
        request_origin(headers).is_some_and(|origin| self.same_origin(&origin, headers))
    }

    /// Whether `origin` is the API's own origin (from `Host`, or the proxy's forwarded headers
    /// with `TRUST_PROXY`).
    fn same_origin(&self, origin: &str, headers: &HeaderMap) -> bool {
        let Some((scheme, authority)) = origin.split_once("://") else {
            return false;
        };
        let forwarded = |name: &str| {
            headers
                .get(name)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.split(',').next())
                .map(|v| v.trim().to_ascii_lowercase())
        };
        let (host, proto) = if self.inner.trust_proxy {
            (
                forwarded("x-forwarded-host").or_else(|| forwarded("host")),
                forwarded("x-forwarded-proto"),
            )
        } else {
            (forwarded("host"), None)
        };
        let Some(host) = host else {
            return false;
        };
        if proto.is_some_and(|p| p != scheme) {
            return false;
        }
        strip_default_port(scheme, authority) == strip_default_port(scheme, &host)
    }
}

fn strip_default_port<'a>(scheme: &str, authority: &'a str) -> &'a str {
    let default = if scheme == "https" { ":443" } else { ":80" };
    authority.strip_suffix(default).unwrap_or(authority)
}

/// The normalized origin of a request: `Origin`, else the origin of `Referer`. `Origin: null`
/// (sandboxed frames, privacy redirects) counts as no origin.
fn request_origin(headers: &HeaderMap) -> Option<String> {
    let text = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(o) = text(header::ORIGIN) {
        return normalize_origin(o, false);
    }
    let referer = text(header::REFERER)?;
    let (scheme, rest) = referer.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    normalize_origin(&format!("{scheme}://{authority}"), false)
}

/// Middleware: refuse cookie-authenticated mutations from untrusted origins with 403.
pub async fn csrf_guard(
    State(policy): State<BrowserPolicy>,
    request: Request,
    next: Next,
) -> Response {
    match policy.allows(request.method(), request.headers()) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// Middleware: every answer may be framed by Pi and the app (CSP `frame-ancestors`), and
/// none carries `X-Frame-Options` (whose only values, DENY/SAMEORIGIN, break Pi's frame).
pub async fn frame_headers(
    State(policy): State<BrowserPolicy>,
    request: Request,
    next: Next,
) -> Response {
    let mut response = next.run(request).await;
    let headers = response.headers_mut();
    headers.remove(header::X_FRAME_OPTIONS);
    if !headers.contains_key(header::CONTENT_SECURITY_POLICY) {
        headers.insert(header::CONTENT_SECURITY_POLICY, policy.csp().clone());
    }
    response
}

/// Wrap `router` (call it after every route, fallback included, is added) in the CSRF guard,
/// CORS and the framing headers, in that order from the inside out: CORS answers preflights
/// before the guard, and every answer (preflights and refusals too) gets the framing headers.
pub fn apply<S>(router: Router<S>, policy: &BrowserPolicy) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router
        .layer(middleware::from_fn_with_state(policy.clone(), csrf_guard))
        .layer(policy.cors_layer())
        .layer(middleware::from_fn_with_state(
            policy.clone(),
            frame_headers,
        ))
}

#[cfg(test)]
mod tests {
    use crate::browser::*;

    fn policy(trust_proxy: bool) -> BrowserPolicy {
        BrowserPolicy::new(&AuthConfig {
            app_origins: vec!["https://app.example.com".into()],
            trust_proxy,
            ..AuthConfig::default()
        })
        .unwrap()
    }

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(*k, HeaderValue::from_str(v).unwrap());
        }
        h
    }

    const COOKIE: (&str, &str) = ("cookie", "pi_session=x");

    #[test]
    fn csp_lists_pi_and_app_origins() {
        let csp = policy(false).csp().to_str().unwrap().to_string();
        assert_eq!(
            csp,
            "frame-ancestors 'self' https://sandbox.minepi.com https://*.minepi.com https://pinet.com https://*.pinet.com https://app.example.com"
        );
    }

    #[test]
    fn csrf_decisions() {
        let p = policy(false);
        let post = Method::POST;
        let allowed: [(&Method, HeaderMap); 8] = [
            // No cookie, or a safe method, or a Bearer header: nothing to check.
            (&post, headers(&[("origin", "https://evil.example")])),
            (
                &Method::GET,
                headers(&[COOKIE, ("origin", "https://evil.example")]),
            ),
            (
                &post,
                headers(&[
                    COOKIE,
                    ("origin", "https://evil.example"),
                    ("authorization", "Bearer t"),
                ]),
            ),
            // Cookie mutations: trusted, sandbox and same origin pass; others and missing refuse.
            (
                &post,
                headers(&[COOKIE, ("origin", "https://app.example.com")]),
            ),
            (
                &post,
                headers(&[COOKIE, ("origin", "https://sandbox.minepi.com")]),
            ),
            (&post, headers(&[COOKIE, ("origin", "https://pinet.com")])),
            (
                &post,
                headers(&[
                    COOKIE,
                    ("origin", "https://api.example.com"),
                    ("host", "api.example.com"),
                ]),
            ),
            (
                &post,
                headers(&[COOKIE, ("referer", "https://app.example.com/page?x=1")]),
            ),
        ];
        for (method, good) in &allowed {
            assert!(p.allows(method, good).is_ok(), "{method} {good:?}");
        }
        for bad in [
            headers(&[COOKIE, ("origin", "https://evil.example")]),
            headers(&[COOKIE, ("origin", "null")]),
            headers(&[COOKIE]),
            headers(&[COOKIE, ("origin", "https://app.example.com.evil.example")]),
            // Another app on PiNet is not this app.
            headers(&[COOKIE, ("origin", "https://other-app.pinet.com")]),
        ] {
            assert_eq!(p.allows(&post, &bad).unwrap_err().status(), 403, "{bad:?}");
        }
    }

    #[test]
    fn forwarded_host_counts_only_behind_a_trusted_proxy() {
        let h = headers(&[
            COOKIE,
            ("origin", "https://api.example.com"),
            ("host", "10.0.0.5:8080"),
            ("x-forwarded-host", "api.example.com"),
            ("x-forwarded-proto", "https"),
        ]);
        assert!(policy(true).allows(&Method::POST, &h).is_ok());
        assert!(policy(false).allows(&Method::POST, &h).is_err());
    }

    #[test]
    fn bad_settings_are_refused() {
        let bad = AuthConfig {
            app_origins: vec!["not an origin".into()],
            ..AuthConfig::default()
        };
        assert!(matches!(
            BrowserPolicy::new(&bad),
            Err(ConfigError::BadOrigin(_))
        ));
        let bad = AuthConfig {
            cookie_name: "a b".into(),
            ..AuthConfig::default()
        };
        assert!(matches!(
            BrowserPolicy::new(&bad),
            Err(ConfigError::BadCookieName(_))
        ));
    }
}
