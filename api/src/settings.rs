//! The browser-facing and operator settings of the API ([`AuthConfig`]) and the startup errors
//! they can cause: read by sign-in ([`crate::auth`]), the operator check ([`crate::admin`]) and
//! the browser posture ([`crate::browser`]), so they live apart from all three.

use crate::session::DEFAULT_COOKIE_NAME;
use pi_payments_core::pioneer::DEFAULT_SESSION_TTL;
use pi_payments_core::secret::Secret;
use std::time::Duration;

/// Pi's origins that frame apps or are trusted for cookie mutations (the Sandbox).
pub const PI_SANDBOX_ORIGIN: &str = "https://sandbox.minepi.com";

/// PiNet, Pi's domain for apps (Pi's integration guide trusts it for framing and CSRF).
pub const PINET_ORIGIN: &str = "https://pinet.com";

/// Pi's origins allowed to frame the app (CSP `frame-ancestors`) by default.
pub const DEFAULT_PI_FRAME_ORIGINS: &[&str] = &[
    "https://sandbox.minepi.com",
    "https://*.minepi.com",
    PINET_ORIGIN,
    "https://*.pinet.com",
];

/// Pi's origins trusted for cookie-authenticated mutations by default: exact origins only. A
/// wildcard such as `*.pinet.com` would also trust every other app served there; put your
/// app's own PiNet origin in `APP_ORIGINS`.
pub const DEFAULT_PI_TRUSTED_ORIGINS: &[&str] = &[PI_SANDBOX_ORIGIN, PINET_ORIGIN];

/// Browser-facing and operator settings, from the binary's configuration.
#[derive(Clone, Debug)]
pub struct AuthConfig {
    /// `APP_ORIGINS`: the app's own origins (`https://app.example.com`), allowed by CORS with
    /// credentials, trusted for cookie mutations and allowed to frame the app.
    pub app_origins: Vec<String>,
    /// `TRUST_PROXY`: a TLS-terminating proxy sits in front, so `X-Forwarded-Proto`/`-Host`
    /// describe the request the browser made (used by the CSRF same-origin check). Session
    /// cookies are `Secure` either way (`SameSite=None` requires it).
    pub trust_proxy: bool,
    /// `ADMIN_TOKEN`: Bearer token for `/payouts`, `/admin` and the dashboard. Without it those
    /// routes answer 401 to everyone.
    pub admin_token: Option<Secret>,
    /// `APP_API_TOKEN`: read-only Bearer token for the app's own backend (`GET /events`, any
    /// payment or order). Without it only `ADMIN_TOKEN` reads the outbox.
    pub app_api_token: Option<Secret>,
    /// Session cookie name (default `pi_session`).
    pub cookie_name: String,
    /// Longest session (never beyond the token's `valid_until`).
    pub session_ttl: Duration,
    /// Pi's origins: allowed to frame the app (CSP `frame-ancestors`). Default
    /// [`DEFAULT_PI_FRAME_ORIGINS`].
    pub pi_frame_origins: Vec<String>,
    /// Pi's origins trusted for cookie-authenticated mutations (default: the Sandbox).
    pub pi_trusted_origins: Vec<String>,
}

impl Default for AuthConfig {
    fn default() -> AuthConfig {
        AuthConfig {
            app_origins: Vec::new(),
            trust_proxy: false,
            admin_token: None,
            app_api_token: None,
            cookie_name: DEFAULT_COOKIE_NAME.to_string(),
            session_ttl: DEFAULT_SESSION_TTL,
            pi_frame_origins: DEFAULT_PI_FRAME_ORIGINS
                .iter()
                .map(|s| s.to_string())
                .collect(),
            pi_trusted_origins: DEFAULT_PI_TRUSTED_ORIGINS
                .iter()
                .map(|s| s.to_string())
                .collect(),
        }
    }
}

/// A configuration value the service must refuse to start with; each says what to set.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A payout wallet without an admin token would leave money-moving routes open.
    #[error(
        "ADMIN_TOKEN is not set but a payout wallet is configured: set ADMIN_TOKEN to a long random string (e.g. `openssl rand -hex 32`) so that /payouts and /admin are closed to everyone else"
    )]
    AdminTokenRequired,
    /// The admin token is too short to resist guessing.
    #[error(
        "ADMIN_TOKEN is shorter than {min} characters: use a long random string (e.g. `openssl rand -hex 32`)"
    )]
    AdminTokenTooShort { min: usize },
    /// The app's read token is too short to resist guessing.
    #[error(
        "APP_API_TOKEN is shorter than {min} characters: use a long random string (e.g. `openssl rand -hex 32`)"
    )]
    AppApiTokenTooShort { min: usize },
    /// An `APP_ORIGINS` entry is not an origin.
    #[error(
        "APP_ORIGINS entry {0:?} is not an origin: write scheme://host[:port] with no path, e.g. https://app.example.com, separated by commas"
    )]
    BadOrigin(String),
    /// The cookie name is not a valid cookie name.
    #[error("the session cookie name {0:?} is invalid: use letters, digits, '-' or '_'")]
    BadCookieName(String),
}

/// Normalize one origin (`scheme://host[:port]`, lowercase, no trailing slash). `*.` hosts
/// are accepted (CSP wildcards) only when `wildcard` is set.
pub fn normalize_origin(text: &str, wildcard: bool) -> Option<String> {
    let text = text.trim().trim_end_matches('/').to_ascii_lowercase();
    let (scheme, rest) = text.split_once("://")?;
    if !matches!(scheme, "http" | "https") || rest.is_empty() {
        return None;
    }
    let host = rest.strip_prefix("*.").filter(|_| wildcard).unwrap_or(rest);
    let ok = host
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        && !host.is_empty()
        && !host.starts_with(':');
    ok.then_some(text)
}

/// Parse `APP_ORIGINS` (comma- or space-separated origins).
pub fn parse_origins(text: &str) -> Result<Vec<String>, ConfigError> {
    text.split([',', ' '])
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            normalize_origin(s, false).ok_or_else(|| ConfigError::BadOrigin(s.trim().to_string()))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::settings::*;

    #[test]
    fn origins_parse_and_normalize() {
        assert_eq!(
            parse_origins("https://App.example.com/, http://localhost:3000").unwrap(),
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert_eq!(parse_origins("").unwrap(), Vec::<String>::new());
        for bad in [
            "app.example.com",
            "ftp://x",
            "https://a.com/path",
            "https://*.a.com",
        ] {
            assert!(parse_origins(bad).is_err(), "{bad}");
        }
        assert_eq!(
            normalize_origin("https://*.minepi.com", true).as_deref(),
            Some("https://*.minepi.com")
        );
    }

    #[test]
    fn secrets_are_redacted() {
        assert!(!format!("{:?}", Secret::new("hunter2")).contains("hunter2"));
        let cfg = AuthConfig {
            admin_token: Some(Secret::new("hunter2")),
            app_api_token: Some(Secret::new("swordfish")),
            ..AuthConfig::default()
        };
        assert!(!format!("{cfg:?}").contains("hunter2"));
        assert!(!format!("{cfg:?}").contains("swordfish"));
    }
}
