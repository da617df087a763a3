//! The one type for every secret the service holds: the Pi API key, the webhook signing key,
//! wallet seeds, the admin token, Pioneers' access tokens and session ids.
//!
//! A [`Secret`]'s `Debug` and `Display` print `<redacted>`, so that a secret cannot reach a log
//! line, an error or a panic message by accident; its text is read only through
//! [`Secret::expose`], at the few places that must send or compare it. Types that hold one
//! (configs, callbacks, requests) can then derive `Debug` without leaking it.

use std::fmt;

/// What every redacted secret prints instead of its text.
pub const REDACTED: &str = "<redacted>";

/// A secret string. Compare, clone and move it freely; read its text with [`Secret::expose`]
/// only where it leaves the process (a header, a signature, a hash, a database column).
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wrap a secret value, as it is (no trimming).
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The secret's text, for the one place that must use it. Never log what it returns.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Secret({REDACTED})")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

/// Lets constructors take a plain string where a secret is expected (`impl Into<Secret>`), so
/// that the value is wrapped as soon as it enters our code.
impl From<String> for Secret {
    fn from(value: String) -> Secret {
        Secret(value)
    }
}

/// See `From<String>`.
impl From<&str> for Secret {
    fn from(value: &str) -> Secret {
        Secret(value.to_string())
    }
}

/// See `From<String>`.
impl From<&String> for Secret {
    fn from(value: &String) -> Secret {
        Secret(value.clone())
    }
}

/// A Pioneer's Pi access token (from `Pi.authenticate()`): carried from the request through
/// the ledger to the Pi client's `GET /v2/me` without ever being a bare `String`.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(Secret);

impl AccessToken {
    /// A token as a client sent it: trimmed; `None` for an empty one, which means "no token".
    pub fn new(token: &str) -> Option<AccessToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| AccessToken(Secret::new(token)))
    }

    /// A token as the ledger stored it (already checked when it arrived), unchanged.
    pub fn stored(token: String) -> AccessToken {
        AccessToken(Secret(token))
    }

    /// The token's text, for the places that must send, hash or store it.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AccessToken({REDACTED})")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(REDACTED)
    }
}

#[cfg(test)]
mod tests {
    use crate::secret::{AccessToken, Secret};

    #[test]
    fn secrets_are_redacted() {
        let secret = Secret::new("hunter2");
        assert!(!format!("{secret:?} {secret}").contains("hunter2"));
        assert_eq!(secret.expose(), "hunter2");
        assert_eq!(Secret::from("hunter2"), secret);
    }

    #[test]
    fn tokens_are_redacted_and_trimmed() {
        let token = AccessToken::new(" secret-token ").unwrap();
        assert!(!format!("{token:?} {token}").contains("secret"));
        assert_eq!(token.expose(), "secret-token");
        assert!(AccessToken::new("  ").is_none());
        assert_eq!(AccessToken::stored("t".into()).expose(), "t");
    }
}
