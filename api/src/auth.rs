//! Pioneer sign-in over HTTP: `POST /auth/pi`, `GET /me`, `POST /auth/logout`, and the
//! [`AuthenticatedPioneer`] extractor every Pioneer endpoint uses.
//!
//! Identity comes only from Pi (`GET /v2/me` through [`PioneerAuth`]); a `uid` in a body is
//! ignored. An invalid or expired token is 401; Pi being unreachable is 503 (the Pioneer did
//! nothing wrong and should retry). Tokens and session ids never appear in logs or answers.
//!
//! Mounting: `routes()` is generic over the router state `S`; the lead's state implements
//! `FromRef<S> for AuthState` (and for [`pi_payments_core::ads::AdRewards`] and
//! [`crate::admin::AdminAuth`] for the other modules).

use crate::error::{ApiError, ErrorBody, FIELDS_SIZE_ADVICE};
use crate::extract::{AccessToken, BODY_LIMIT, MAX_TOKEN_LEN, bearer_from_headers, body_error};
use crate::session::{self, Credential};
/// The settings, also under this module's path (the binary's configuration imports them here).
pub use crate::settings::{
    AuthConfig, ConfigError, DEFAULT_PI_FRAME_ORIGINS, PI_SANDBOX_ORIGIN, normalize_origin,
    parse_origins,
};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::ledger::now_ms;
use pi_payments_core::pioneer::{AuthError, PioneerAuth, VerifiedPioneer};
/// The admin token's type (`AuthConfig::admin_token`), here for the binary's configuration.
pub use pi_payments_core::secret::Secret;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;

/// What the auth routes and the extractor share; cheap to clone.
#[derive(Clone, Debug)]
pub struct AuthState {
    /// Token verification and sessions.
    pub pioneers: PioneerAuth,
    /// The settings.
    pub config: Arc<AuthConfig>,
}

impl AuthState {
    /// Bundle the service with its settings.
    pub fn new(pioneers: PioneerAuth, config: AuthConfig) -> AuthState {
        AuthState {
            pioneers,
            config: Arc::new(config),
        }
    }
}

impl From<AuthError> for ApiError {
    /// A refused token is 401; Pi or the ledger failing is 503 with `Retry-After` (the Pioneer
    /// did nothing wrong and should retry).
    fn from(err: AuthError) -> ApiError {
        match err {
            AuthError::InvalidToken => ApiError::unauthorized("invalid_token", err.to_string()),
            AuthError::PiUnavailable(e) => {
                // Pi's error may name hosts; the client gets a fixed message.
                tracing::warn!(error = %e, "could not verify an access token with Pi");
                ApiError::retry_later(
                    "pi_unavailable",
                    "Pi could not verify the access token right now; retry in a few seconds",
                )
            }
            AuthError::Ledger(e) => ApiError::ledger_retry_later(&e),
        }
    }
}

/// How the Pioneer of a request was recognised.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AuthMethod {
    Bearer,
    Session,
}

/// The Pioneer a request comes from, verified: a Bearer access token (through the cache of
/// `/v2/me` answers) or a live session cookie. Rejects with 401 (no or bad credential) or 503
/// (Pi unreachable for an unknown token).
#[derive(Clone, Debug)]
pub struct AuthenticatedPioneer {
    pub pioneer: VerifiedPioneer,
    pub method: AuthMethod,
}

impl<S> FromRequestParts<S> for AuthenticatedPioneer
where
    S: Send + Sync,
    AuthState: FromRef<S>,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let auth = AuthState::from_ref(state);
        authenticate(&auth, &parts.headers).await
    }
}

/// The extractor's logic, for handlers that hold the headers themselves.
pub async fn authenticate(
    auth: &AuthState,
    headers: &HeaderMap,
) -> Result<AuthenticatedPioneer, ApiError> {
    match session::credential(headers, &auth.config.cookie_name)? {
        Credential::Bearer(token) => {
            let pioneer = auth.pioneers.verify_token(&token).await?;
            Ok(AuthenticatedPioneer {
                pioneer,
                method: AuthMethod::Bearer,
            })
        }
        Credential::Session(s) => match auth.pioneers.session(&s).await? {
            Some(pioneer) => Ok(AuthenticatedPioneer {
                pioneer,
                method: AuthMethod::Session,
            }),
            None => Err(ApiError::unauthorized(
                "session_expired",
                "the session has ended: sign in again with POST /auth/pi, or send `Authorization: Bearer <Pi access token>`",
            )),
        },
        Credential::Missing => Err(ApiError::unauthorized(
            "not_signed_in",
            "no credential: send `Authorization: Bearer <Pi access token>`, or sign in with POST /auth/pi and send the cookie (fetch with credentials: \"include\")",
        )),
    }
}

/// What an approve callback without a body `accessToken` says about who pays: the Bearer
/// header's token, else the uid of the request's live cookie session (verified at sign-in; the
/// approve job compares it with the payment's `user_uid` at Pi), else
/// [`ApproveCredential::Missing`]. Only the session lookup happens here; the token is verified
/// by the approve job.
pub async fn approve_credential_for_request(
    auth: &AuthState,
    headers: &HeaderMap,
) -> Result<ApproveCredential, ApiError> {
    match session::credential(headers, &auth.config.cookie_name)? {
        Credential::Bearer(token) => Ok(ApproveCredential::AccessToken(token)),
        Credential::Session(s) => Ok(match auth.pioneers.session(&s).await? {
            Some(pioneer) => ApproveCredential::Session(pioneer.uid),
            None => ApproveCredential::Missing,
        }),
        Credential::Missing => Ok(ApproveCredential::Missing),
    }
}

/// `{uid, username, scopes}`: what sign-in and `GET /me` answer (`Pioneer` in the OpenAPI
/// document).
#[derive(Serialize, utoipa::ToSchema)]
#[schema(as = Pioneer)]
pub struct PioneerBody<'a> {
    /// The Pioneer's app-scoped user id (from Pi's /v2/me).
    uid: &'a str,
    /// Their username, when the `username` scope was granted.
    username: Option<&'a str>,
    /// The scopes the access token was granted.
    scopes: &'a [String],
}

/// `POST /auth/pi`'s body (`access_token` is read too); the `Authorization: Bearer` header
/// may carry the token instead.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; `sign_in_token` reads it.
pub struct SignInRequest {
    /// The access token `Pi.authenticate()` returned.
    access_token: String,
}

/// `POST /auth/logout`'s answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct SignedOut {
    /// Always `signed_out`.
    #[schema(example = "signed_out")]
    status: &'static str,
}

fn pioneer_body(p: &VerifiedPioneer) -> PioneerBody<'_> {
    PioneerBody {
        uid: p.uid.as_str(),
        username: p.username.as_deref(),
        scopes: &p.scopes,
    }
}

/// Answers about a Pioneer must not be cached by anything between us and the browser.
fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// The sign-in, me and logout routes, for any router state that can give an [`AuthState`].
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AuthState: FromRef<S>,
{
    Router::new()
        .route("/auth/pi", post(sign_in))
        .route("/auth/logout", post(sign_out))
        .route("/me", get(me))
}

/// The token a sign-in request carries: `accessToken` (or `access_token`) in a JSON body, else
/// the Bearer header. Any other field (a `uid` especially) is ignored.
fn sign_in_token(headers: &HeaderMap, body: &[u8]) -> Result<AccessToken, ApiError> {
    let from_body = if body.iter().all(u8::is_ascii_whitespace) {
        None
    } else {
        let value: serde_json::Value = serde_json::from_slice(body).map_err(|e| {
            ApiError::bad_request(
                "invalid_json",
                format!("the body is not valid JSON ({e}); send {{\"accessToken\": \"<token from Pi.authenticate()>\"}}"),
            )
        })?;
        let field = value
            .get("accessToken")
            .or_else(|| value.get("access_token"));
        match field {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(t)) if t.len() <= MAX_TOKEN_LEN => AccessToken::new(t),
            Some(_) => {
                return Err(ApiError::bad_request(
                    "invalid_access_token",
                    format!(
                        "accessToken must be a string of at most {MAX_TOKEN_LEN} characters, as Pi.authenticate() returned it"
                    ),
                ));
            }
        }
    };
    match from_body {
        Some(t) => Ok(t),
        None => bearer_from_headers(headers)?.ok_or_else(|| {
            ApiError::unauthorized(
                "missing_token",
                "send {\"accessToken\": \"<token from Pi.authenticate()>\"} or `Authorization: Bearer <token>`",
            )
        }),
    }
}

/// Sign a Pioneer in with their Pi access token.
///
/// The token is verified with Pi's /v2/me (a `uid` in the body is ignored); the answer sets
/// the session cookie and names the Pioneer. A cookie from an earlier sign-in is replaced.
#[utoipa::path(
    post,
    path = "/auth/pi",
    tag = "pioneers",
    operation_id = "sign_in",
    request_body = SignInRequest,
    security((), ("pioneer_token" = [])),
    responses(
        (status = 200, description = "Signed in; `Set-Cookie` carries the session", body = PioneerBody),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "No token, or Pi refused it", body = ErrorBody),
        (status = 403, description = "A browser request from an origin that is not allowed", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Pi or the ledger unreachable; retry (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn sign_in(
    State(auth): State<AuthState>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body =
        body.map_err(|e| body_error(&e, ApiError::too_large(BODY_LIMIT, FIELDS_SIZE_ADVICE)))?;
    let token = sign_in_token(&headers, &body)?;
    let signed = auth.pioneers.sign_in(&token).await?;
    // A cookie from an earlier sign-in is replaced, and its session ended.
    if let Some(old) = session::session_from_headers(&headers, &auth.config.cookie_name)
        && let Err(e) = auth.pioneers.sign_out(&old).await
    {
        tracing::warn!(error = %e, "could not end the replaced session");
    }
    let max_age_ms = signed.expires_at_ms.saturating_sub(now_ms()).max(0);
    let max_age = Duration::from_millis(u64::try_from(max_age_ms).unwrap_or(0));
    let cookie = session::session_cookie(&auth.config.cookie_name, &signed.session, max_age);
    let mut response = Json(pioneer_body(&signed.pioneer)).into_response();
    response.headers_mut().insert(header::SET_COOKIE, cookie);
    Ok(no_store(response))
}

/// The signed-in Pioneer.
#[utoipa::path(
    get,
    path = "/me",
    tag = "pioneers",
    operation_id = "me",
    security(("pioneer_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Who the credential names", body = PioneerBody),
        (status = 401, description = "No credential, an expired session, or a token Pi refused", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Pi or the ledger unreachable; retry (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn me(who: AuthenticatedPioneer) -> Response {
    no_store(Json(pioneer_body(&who.pioneer)).into_response())
}

/// End the session of the request's cookie (if any) and clear the cookie.
#[utoipa::path(
    post,
    path = "/auth/logout",
    tag = "pioneers",
    operation_id = "sign_out",
    security((), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Signed out; `Set-Cookie` clears the session", body = SignedOut),
        (status = 403, description = "A browser request from an origin that is not allowed", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable; retry (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn sign_out(
    State(auth): State<AuthState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    if let Some(s) = session::session_from_headers(&headers, &auth.config.cookie_name) {
        auth.pioneers.sign_out(&s).await?;
    }
    let mut response = Json(SignedOut {
        status: "signed_out",
    })
    .into_response();
    response.headers_mut().insert(
        header::SET_COOKIE,
        session::clear_session_cookie(&auth.config.cookie_name),
    );
    Ok(no_store(response))
}

#[cfg(test)]
mod tests {
    use crate::auth::*;
    use axum::http::StatusCode;

    #[test]
    fn sign_in_token_sources() {
        let mut h = HeaderMap::new();
        let t = sign_in_token(&h, br#"{"accessToken": "tok", "uid": "someone-else"}"#).unwrap();
        assert_eq!(t.expose(), "tok");
        assert_eq!(
            sign_in_token(&h, b"").unwrap_err().status(),
            StatusCode::UNAUTHORIZED
        );
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer hdr"),
        );
        assert_eq!(sign_in_token(&h, b"").unwrap().expose(), "hdr");
        assert_eq!(sign_in_token(&h, b"{}").unwrap().expose(), "hdr");
        assert_eq!(
            sign_in_token(&h, br#"{"accessToken": 5}"#)
                .unwrap_err()
                .code(),
            "invalid_access_token"
        );
        assert_eq!(
            sign_in_token(&h, b"nope").unwrap_err().code(),
            "invalid_json"
        );
    }
}
