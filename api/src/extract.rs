//! Extractors that turn raw requests into checked values, answering with our JSON errors
//! (never axum's plain-text rejections): the JSON body with its size limit, the id in a
//! route's path, and the `Authorization: Bearer` access token that lighter frontends send on
//! every call (and that sign-in and the session layer read too).

use crate::error::{ApiError, CALLBACK_SIZE_ADVICE};
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
pub use pi_payments_core::secret::AccessToken;

/// The largest request body we read. Pi callbacks are a few hundred bytes; a PaymentDTO in
/// an `incomplete` callback is about 1 KiB.
pub const BODY_LIMIT: usize = 64 * 1024;

/// The longest access token we keep; Pi's are far shorter. Longer ones are refused, not cut.
pub const MAX_TOKEN_LEN: usize = 4096;

/// A body axum could not read, as our JSON error: `too_large` (413) over the limit, else a 400
/// asking for a complete JSON object.
pub fn body_error(rejection: &BytesRejection, too_large: ApiError) -> ApiError {
    if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
        too_large
    } else {
        ApiError::bad_request(
            "unreadable_body",
            "the request body could not be read; send a complete JSON object",
        )
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
            body_error(
                &rejection,
                ApiError::too_large(BODY_LIMIT, CALLBACK_SIZE_ADVICE),
            )
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

/// The one parameter of a route's path (`/payments/{id}`), as text. A path axum cannot read
/// (percent-escapes that are not UTF-8, such as `/payments/%80`) is our JSON 400, not axum's
/// plain-text one; the handler checks the id's shape itself.
#[derive(Debug)]
pub struct PathId(pub String);

impl<S: Send + Sync> FromRequestParts<S> for PathId {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        match Path::<String>::from_request_parts(parts, state).await {
            Ok(Path(id)) => Ok(PathId(id)),
            Err(rejection) => {
                tracing::debug!(error = %rejection, "unreadable path");
                Err(ApiError::bad_request(
                    "invalid_path",
                    "the id in the URL path is not readable text; send the id exactly as our answer gave it (letters, digits and underscores)",
                ))
            }
        }
    }
}

/// Whether the request has an `Authorization: Bearer …` header (whatever the token).
pub fn has_bearer(headers: &HeaderMap) -> bool {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().split_once(' '))
        .is_some_and(|(scheme, _)| scheme.eq_ignore_ascii_case("bearer"))
}

/// The token of an `Authorization: Bearer <token>` header: `None` without one (other schemes
/// are not ours to judge) or with an empty token, 400 when it is unreadable or absurdly long.
pub fn bearer_from_headers(headers: &HeaderMap) -> Result<Option<AccessToken>, ApiError> {
    let Some(value) = headers.get(header::AUTHORIZATION) else {
        return Ok(None);
    };
    let Ok(value) = value.to_str() else {
        return Err(ApiError::bad_request(
            "invalid_authorization",
            "the Authorization header is not readable text; send `Authorization: Bearer <Pi access token>`",
        ));
    };
    let Some((scheme, token)) = value.trim().split_once(' ') else {
        return Ok(None);
    };
    if !scheme.eq_ignore_ascii_case("bearer") {
        return Ok(None);
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(ApiError::bad_request(
            "invalid_authorization",
            format!(
                "the Bearer token is longer than {MAX_TOKEN_LEN} characters; send the access token Pi.authenticate() returned"
            ),
        ));
    }
    Ok(AccessToken::new(token))
}

/// The token of an `Authorization: Bearer <token>` header, if there is one, as an extractor
/// ([`bearer_from_headers`]).
#[derive(Debug, Default)]
pub struct Bearer(pub Option<AccessToken>);

impl<S: Send + Sync> FromRequestParts<S> for Bearer {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        bearer_from_headers(&parts.headers).map(Bearer)
    }
}

#[cfg(test)]
mod tests {
    use crate::extract::*;

    #[test]
    fn json_errors_say_what_to_send() {
        let err = parse_json(b"not json").unwrap_err();
        assert_eq!(err.code(), "invalid_json");
        assert!(err.to_string().contains("paymentId"));
        assert_eq!(parse_json(b"").unwrap_err().code(), "empty_body");
    }
}
