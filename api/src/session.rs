//! How a request says who it is: an `Authorization: Bearer <Pi access token>` header (the
//! primary transport: session cookies are known to fail inside Pi's Sandbox iframe on some
//! browsers), or the session cookie set by `POST /auth/pi`.
//!
//! The cookie is third-party inside the Pi Browser / Sandbox iframe, so it is always
//! `SameSite=None; Secure; HttpOnly; Partitioned; Path=/` (CHIPS): without `SameSite=None` the
//! browser would not send it from the frame, without `Secure` it would refuse `SameSite=None`,
//! and `Partitioned` keeps it working where third-party cookies are otherwise blocked.

use crate::error::ApiError;
use crate::extract::{AccessToken, bearer_from_headers};
use axum::http::{HeaderMap, HeaderValue, header};
use cookie::{Cookie, SameSite};
use pi_payments_core::pioneer::SessionSecret;
use std::time::Duration;

/// The default session cookie name.
pub const DEFAULT_COOKIE_NAME: &str = "pi_session";

/// Whether `name` can be a cookie name (an RFC 6265 token).
pub fn valid_cookie_name(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn base_cookie(name: &str, value: &str) -> Cookie<'static> {
    Cookie::build((name.to_string(), value.to_string()))
        .path("/")
        .secure(true)
        .http_only(true)
        .same_site(SameSite::None)
        .partitioned(true)
        .build()
}

fn header_value(cookie: &Cookie<'_>) -> HeaderValue {
    // Names are checked at startup and values are base64url, so this cannot fail; an empty
    // header is the harmless fallback.
    HeaderValue::from_str(&cookie.to_string()).unwrap_or(HeaderValue::from_static(""))
}

/// The `Set-Cookie` value for a new session lasting `max_age`.
pub fn session_cookie(name: &str, session: &SessionSecret, max_age: Duration) -> HeaderValue {
    let mut cookie = base_cookie(name, session.expose());
    let secs = i64::try_from(max_age.as_secs()).unwrap_or(i64::MAX);
    cookie.set_max_age(cookie::time::Duration::seconds(secs));
    header_value(&cookie)
}

/// The `Set-Cookie` value that deletes the session cookie. It repeats every attribute
/// (`Partitioned` included): a partitioned cookie is only replaced by one in the same partition.
pub fn clear_session_cookie(name: &str) -> HeaderValue {
    let mut cookie = base_cookie(name, "");
    cookie.set_max_age(cookie::time::Duration::ZERO);
    header_value(&cookie)
}

/// Whether the request carries a cookie named `name` at all (well-formed or not): the CSRF
/// guard treats such requests as cookie-authenticated.
pub fn has_cookie(headers: &HeaderMap, name: &str) -> bool {
    cookie_values(headers, name).next().is_some()
}

fn cookie_values<'a>(headers: &'a HeaderMap, name: &'a str) -> impl Iterator<Item = String> + 'a {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| Cookie::split_parse(v.to_string()))
        .filter_map(Result::ok)
        .filter(move |c| c.name() == name)
        .map(|c| c.value().to_string())
}

/// The session id in the request's cookie `name`, if one of that name has the shape of our ids.
pub fn session_from_headers(headers: &HeaderMap, name: &str) -> Option<SessionSecret> {
    cookie_values(headers, name).find_map(|v| SessionSecret::from_cookie(&v))
}

/// What a request presented to identify its Pioneer.
#[derive(Debug)]
pub enum Credential {
    /// A Pi access token in `Authorization: Bearer`; it wins over a cookie.
    Bearer(AccessToken),
    /// Our session cookie.
    Session(SessionSecret),
    /// Neither.
    Missing,
}

/// Read the request's credential: the Bearer header first, then the cookie `cookie_name`.
pub fn credential(headers: &HeaderMap, cookie_name: &str) -> Result<Credential, ApiError> {
    if let Some(token) = bearer_from_headers(headers)? {
        return Ok(Credential::Bearer(token));
    }
    Ok(match session_from_headers(headers, cookie_name) {
        Some(s) => Credential::Session(s),
        None => Credential::Missing,
    })
}

#[cfg(test)]
mod tests {
    use crate::extract::has_bearer;
    use crate::session::*;

    fn secret() -> SessionSecret {
        SessionSecret::from_cookie(&"A".repeat(43)).unwrap()
    }

    #[test]
    fn session_cookie_has_every_attribute() {
        let v = session_cookie("pi_session", &secret(), Duration::from_secs(3600));
        let text = v.to_str().unwrap();
        assert!(text.starts_with(&format!("pi_session={}", "A".repeat(43))));
        let parsed = Cookie::parse(text).unwrap();
        assert_eq!(parsed.same_site(), Some(SameSite::None), "{text}");
        assert_eq!(parsed.secure(), Some(true), "{text}");
        assert_eq!(parsed.http_only(), Some(true), "{text}");
        assert_eq!(parsed.partitioned(), Some(true), "{text}");
        assert_eq!(parsed.path(), Some("/"), "{text}");
        assert_eq!(
            parsed.max_age(),
            Some(cookie::time::Duration::seconds(3600)),
            "{text}"
        );
        let cleared = clear_session_cookie("pi_session");
        let text = cleared.to_str().unwrap();
        assert!(
            text.contains("Max-Age=0") && text.contains("Partitioned"),
            "{text}"
        );
    }

    #[test]
    fn cookies_and_bearers_are_read() {
        let mut h = HeaderMap::new();
        h.insert(
            header::COOKIE,
            HeaderValue::from_str(&format!("a=1; pi_session={}; b=2", "A".repeat(43))).unwrap(),
        );
        assert_eq!(session_from_headers(&h, "pi_session"), Some(secret()));
        assert!(matches!(
            credential(&h, "pi_session"),
            Ok(Credential::Session(_))
        ));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer tok"),
        );
        assert!(
            matches!(credential(&h, "pi_session"), Ok(Credential::Bearer(t)) if t.expose() == "tok")
        );
        h.insert(header::AUTHORIZATION, HeaderValue::from_static("Basic xyz"));
        assert!(!has_bearer(&h));
        assert!(matches!(
            credential(&h, "pi_session"),
            Ok(Credential::Session(_))
        ));
        let mut junk = HeaderMap::new();
        junk.insert(
            header::COOKIE,
            HeaderValue::from_static("pi_session=garbage"),
        );
        assert!(has_cookie(&junk, "pi_session"));
        assert!(matches!(
            credential(&junk, "pi_session"),
            Ok(Credential::Missing)
        ));
    }

    #[test]
    fn cookie_names() {
        assert!(valid_cookie_name("pi_session"));
        assert!(valid_cookie_name("__Host-pi"));
        assert!(!valid_cookie_name(""));
        assert!(!valid_cookie_name("a b"));
        assert!(!valid_cookie_name("a;b"));
    }
}
