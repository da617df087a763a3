//! Operator authentication: `ADMIN_TOKEN` as a Bearer token on every `/payouts`, `/admin` and
//! dashboard route, because those routes move money or reveal every Pioneer's payments.
//!
//! The presented token and the configured one are both hashed with SHA-256 and the digests
//! compared in constant time (`subtle`), so neither the content nor the length of the token
//! leaks through timing. Without a configured token the routes are closed to everyone, and
//! [`check_startup`] refuses to run a payout wallet in that state.

use crate::error::ApiError;
use crate::settings::{AuthConfig, ConfigError};
use axum::Router;
use axum::extract::{Request, State};
use axum::http::HeaderMap;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use pi_payments_core::secret::Secret;
use sha2::{Digest, Sha256};
use std::fmt;
use subtle::ConstantTimeEq;

/// The shortest admin token accepted at startup.
pub const MIN_ADMIN_TOKEN_LEN: usize = 16;

/// Refuse to start with a payout wallet but no admin token (the payout routes would be
/// closed to the operator too, or worse, someone would "fix" it by opening them), and refuse
/// a token short enough to guess. An empty token counts as none.
pub fn check_startup(
    wallet_configured: bool,
    admin_token: Option<&str>,
) -> Result<(), ConfigError> {
    match admin_token.map(str::trim).filter(|t| !t.is_empty()) {
        None if wallet_configured => Err(ConfigError::AdminTokenRequired),
        None => Ok(()),
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN_LEN => {
            Err(ConfigError::AdminTokenTooShort {
                min: MIN_ADMIN_TOKEN_LEN,
            })
        }
        Some(_) => Ok(()),
    }
}

/// Refuse an `APP_API_TOKEN` short enough to guess (the same rule as `ADMIN_TOKEN`); an empty
/// one counts as none.
pub fn check_app_api_token(token: Option<&str>) -> Result<(), ConfigError> {
    match token.map(str::trim).filter(|t| !t.is_empty()) {
        Some(t) if t.chars().count() < MIN_ADMIN_TOKEN_LEN => {
            Err(ConfigError::AppApiTokenTooShort {
                min: MIN_ADMIN_TOKEN_LEN,
            })
        }
        _ => Ok(()),
    }
}

/// The admin check; cheap to clone. Holds only a digest of the token.
#[derive(Clone)]
pub struct AdminAuth {
    digest: Option<[u8; 32]>,
}

impl fmt::Debug for AdminAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AdminAuth")
            .field("configured", &self.digest.is_some())
            .finish()
    }
}

fn digest(text: &str) -> [u8; 32] {
    Sha256::digest(text.as_bytes()).into()
}

impl AdminAuth {
    /// Check against `token` (`None` or empty: every request is refused).
    pub fn new(token: Option<&Secret>) -> AdminAuth {
        AdminAuth {
            digest: token
                .map(|t| t.expose().trim())
                .filter(|t| !t.is_empty())
                .map(digest),
        }
    }

    /// From the auth settings' `admin_token`.
    pub fn from_config(cfg: &AuthConfig) -> AdminAuth {
        AdminAuth::new(cfg.admin_token.as_ref())
    }

    /// Whether the request carries `Authorization: Bearer <the token>` (never with no token
    /// configured). The same constant-time check serves `APP_API_TOKEN` ([`crate::read_access`]).
    pub fn accepts(&self, headers: &HeaderMap) -> bool {
        let presented = headers
            .get(axum::http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().split_once(' '))
            .filter(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
            .map(|(_, token)| token.trim());
        // Always hash and compare, so a missing header and a wrong one take the same path.
        let given = digest(presented.unwrap_or(""));
        match &self.digest {
            Some(expected) => bool::from(given.ct_eq(expected)) && presented.is_some(),
            None => false,
        }
    }

    /// A 32-byte key for `purpose`, derived from the configured token (`None` without one):
    /// what signs the dashboard's login cookie, so that every API process with the same
    /// `ADMIN_TOKEN` accepts it and changing the token logs every operator out.
    pub fn derive_key(&self, purpose: &str) -> Option<[u8; 32]> {
        use hmac::{Hmac, Mac};
        let digest = self.digest?;
        let mut mac = Hmac::<Sha256>::new_from_slice(&digest).ok()?;
        mac.update(purpose.as_bytes());
        Some(mac.finalize().into_bytes().into())
    }

    /// Whether `token` (as typed into the dashboard's login form) is the configured token;
    /// the same constant-time comparison of digests as [`AdminAuth::accepts`].
    pub fn accepts_token(&self, token: &str) -> bool {
        let token = token.trim();
        let given = digest(token);
        match &self.digest {
            Some(expected) => bool::from(given.ct_eq(expected)) && !token.is_empty(),
            None => false,
        }
    }

    /// Whether a token is configured at all.
    pub fn is_configured(&self) -> bool {
        self.digest.is_some()
    }

    /// Whether the request carries `Authorization: Bearer <ADMIN_TOKEN>`; 401 otherwise.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), ApiError> {
        if self.accepts(headers) {
            return Ok(());
        }
        if self.digest.is_none() {
            return Err(ApiError::unauthorized(
                "admin_disabled",
                "operator routes are closed: the server has no ADMIN_TOKEN; set it and send `Authorization: Bearer <ADMIN_TOKEN>`",
            ));
        }
        Err(ApiError::unauthorized(
            "admin_unauthorized",
            "operator routes need `Authorization: Bearer <ADMIN_TOKEN>` with the server's admin token",
        ))
    }
}

/// Middleware: 401 JSON unless the request carries the admin token.
pub async fn require_admin(
    State(admin): State<AdminAuth>,
    request: Request,
    next: Next,
) -> Response {
    match admin.check(request.headers()) {
        Ok(()) => next.run(request).await,
        Err(rejection) => rejection.into_response(),
    }
}

/// Put every route of `router` behind the admin token (a route layer: unknown paths still
/// get the router's 404). Use it on the `/payouts`, `/admin` and dashboard routers before
/// merging them into the main one.
pub fn protect<S>(router: Router<S>, admin: AdminAuth) -> Router<S>
where
    S: Clone + Send + Sync + 'static,
{
    router.route_layer(middleware::from_fn_with_state(admin, require_admin))
}

#[cfg(test)]
mod tests {
    use crate::admin::*;
    use axum::http::HeaderValue;

    #[test]
    fn startup_rules() {
        assert_eq!(
            check_startup(true, None),
            Err(ConfigError::AdminTokenRequired)
        );
        assert_eq!(
            check_startup(true, Some("  ")),
            Err(ConfigError::AdminTokenRequired)
        );
        assert_eq!(
            check_startup(true, Some("short")),
            Err(ConfigError::AdminTokenTooShort {
                min: MIN_ADMIN_TOKEN_LEN
            })
        );
        assert!(check_startup(false, Some("short")).is_err());
        assert_eq!(check_startup(true, Some("0123456789abcdef0123")), Ok(()));
        assert_eq!(check_startup(false, None), Ok(()));
        let msg = check_startup(true, Some("tiny-secret"))
            .unwrap_err()
            .to_string();
        assert!(!msg.contains("tiny-secret"), "{msg}");
    }

    #[test]
    fn tokens_are_checked() {
        let secret = Secret::new("0123456789abcdef0123");
        let admin = AdminAuth::new(Some(&secret));
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert("authorization", HeaderValue::from_str(v).unwrap());
            h
        };
        assert!(admin.check(&with("Bearer 0123456789abcdef0123")).is_ok());
        assert!(admin.check(&with("bearer 0123456789abcdef0123")).is_ok());
        assert!(admin.check(&with("Bearer 0123456789abcdef012")).is_err());
        assert!(admin.check(&with("Basic 0123456789abcdef0123")).is_err());
        assert!(admin.check(&HeaderMap::new()).is_err());
        let closed = AdminAuth::new(None);
        assert_eq!(
            closed.check(&with("Bearer ")).unwrap_err().code(),
            "admin_disabled"
        );
        assert!(!format!("{admin:?}").contains("0123"));
    }
}
