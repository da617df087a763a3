//! Extractors that turn raw requests into checked values, answering with our JSON errors
//! (never axum's plain-text rejections): the JSON body with its size limit, and the
//! `Authorization: Bearer` access token that lighter frontends send on every call.

use crate::error::ApiError;
use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{StatusCode, header};
use std::fmt;

/// The largest request body we read. Pi callbacks are a few hundred bytes; a PaymentDTO in
/// an `incomplete` callback is about 1 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The longest access token we keep; Pi's are far shorter. Longer ones are refused, not cut.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A Pi user access token. Its `Debug` and `Display` are redacted so that it cannot end up in
/// a log line by accident; read it with [`AccessToken::expose`] where it is sent to Pi.
#[derive(Clone, PartialEq, Eq)]
pub struct AccessToken(String);

impl AccessToken {
    /// Wrap a token; `None` for an empty one, which means "no token".
    pub fn new(token: &str) -> Option<AccessToken> {
        let token = token.trim();
        (!token.is_empty()).then(|| AccessToken(token.to_string()))
    }

    /// The token's text, for the one place that must send it (the job for `/v2/me`).
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// Take the text out, for handing it to the ledger.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl fmt::Debug for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AccessToken(<redacted>)")
    }
}

impl fmt::Display for AccessToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The request body parsed as any JSON value; the handler checks its shape so that the error
/// can say exactly which field is wrong. Bodies over [`BODY_LIMIT`] get 413.
#[derive(Debug)]
pub struct JsonBody(pub serde_json::Value);

impl<S: Send + Sync> FromRequest<S> for JsonBody {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let bytes = Bytes::from_request(req, state).await.map_err(|rejection| {
            if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::TooLarge { limit: BODY_LIMIT }
            } else {
                ApiError::bad_request(
                    "unreadable_body",
                    "the request body could not be read; send a complete JSON object",
                )
            }
        })?;
        parse_json(&bytes).map(JsonBody)
    }
}

/// Parse a body as JSON, with an error that says what to send.
pub fn parse_json(bytes: &[u8]) -> Result<serde_json::Value, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(ApiError::bad_request(
            "empty_body",
            "the request body is empty; send a JSON object such as {\"paymentId\": \"<Pi payment id>\"}",
        ));
    }
    serde_json::from_slice(bytes).map_err(|err| {
        ApiError::bad_request(
            "invalid_json",
            format!(
                "the request body is not valid JSON ({err}); send a JSON object such as {{\"paymentId\": \"<Pi payment id>\"}}"
            ),
        )
    })
}

/// The token of an `Authorization: Bearer <token>` header, if there is one. Other schemes
/// are ignored (they are not ours to judge), and so is an empty token.
#[derive(Debug, Default)]
pub struct Bearer(pub Option<AccessToken>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        let Some(value) = parts.headers.get(header::AUTHORIZATION) else {
            return Ok(Bearer(None));
        };
        let Ok(value) = value.to_str() else {
            return Err(ApiError::bad_request(
                "invalid_authorization",
                "the Authorization header is not readable text; send `Authorization: Bearer <Pi access token>`",
            ));
        };
        let Some((scheme, token)) = value.trim().split_once(' ') else {
            return Ok(Bearer(None));
        };
        if !scheme.eq_ignore_ascii_case("bearer") {
            return Ok(Bearer(None));
        }
        if token.len() > MAX_TOKEN_LEN {
            return Err(ApiError::bad_request(
                "invalid_authorization",
                format!(
                    "the Bearer token is longer than {MAX_TOKEN_LEN} characters; send the access token Pi.authenticate() returned"
                ),
            ));
        }
        Ok(Bearer(AccessToken::new(token)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_redacted() {
        let token = AccessToken::new("secret-token").unwrap();
        assert!(!format!("{token:?} {token}").contains("secret"));
        assert_eq!(token.expose(), "secret-token");
        assert!(AccessToken::new("  ").is_none());
    }

    #[test]
    fn json_errors_say_what_to_send() {
        let err = parse_json(b"not json").unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        assert!(err.to_string().contains("paymentId"));
        assert_eq!(parse_json(b"").unwrap_err().code(), "empty_body");
    }
}
