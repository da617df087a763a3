//! The five Pi frontend callbacks (`/pi_payment/{approve,complete,cancel,error,incomplete}`
//! and the same under `/api/pi_payment/`). Each is checked, recorded in the ledger through
//! the group-commit pipeline ([`batch`]), its job enqueued on first arrival, and answered
//! 202 `{"payment_id", "state"}` without waiting for Pi.
//!
//! An approve callback carries the Pioneer's access token in its body, else in an
//! `Authorization: Bearer` header, else (inside Pi's iframe, with a signed-in frontend) the
//! session cookie names the Pioneer: the approve job then accepts the payment only if Pi's
//! `user_uid` for it is the session's uid. Tokens go to the job, never to the ledger. An
//! incomplete callback is read the same way: only its Pioneer may have an abandoned payment
//! cancelled at once. Complete, cancel and error need nothing: they are hints the jobs check
//! against Pi. A `paymentId` that does not look like Pi's (see [`body::PI_ID_LENGTHS`]) is 400.

pub mod batch;
pub mod body;

pub use batch::{BatchConfig, CallbackBatcher};
pub use body::{CallbackKind, parse_callback};

use crate::auth;
use crate::error::ApiError;
use crate::extract::{Bearer, JsonBody};
use crate::state::ApiState;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::ledger::Callback;
use serde_json::json;
use tracing::Instrument;

/// The callback routes, under both prefixes the frontend wrappers use.
pub fn routes() -> Router<ApiState> {
    let mut router = Router::new();
    for prefix in ["/pi_payment", "/api/pi_payment"] {
        router = router
            .route(&format!("{prefix}/approve"), post(approve))
            .route(&format!("{prefix}/complete"), post(complete))
            .route(&format!("{prefix}/cancel"), post(cancel))
            .route(&format!("{prefix}/error"), post(error))
            .route(&format!("{prefix}/incomplete"), post(incomplete));
    }
    router
}

async fn approve(
    State(state): State<ApiState>,
    bearer: Bearer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    handle_with_headers(state, CallbackKind::Approve, bearer, Some(headers), body).await
}

async fn complete(
    State(state): State<ApiState>,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    handle(state, CallbackKind::Complete, bearer, body).await
}

async fn cancel(
    State(state): State<ApiState>,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    handle(state, CallbackKind::Cancel, bearer, body).await
}

async fn error(
    State(state): State<ApiState>,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    handle(state, CallbackKind::Error, bearer, body).await
}

async fn incomplete(
    State(state): State<ApiState>,
    bearer: Bearer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    handle_with_headers(state, CallbackKind::Incomplete, bearer, Some(headers), body).await
}

/// Check, record (group commit), answer. The span carries the step and the payment id, never
/// the token.
async fn handle(
    state: ApiState,
    kind: CallbackKind,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    handle_with_headers(state, kind, bearer, None, body).await
}

/// [`handle`], with the request's headers for an approve callback that may need its cookie
/// session's uid.
async fn handle_with_headers(
    state: ApiState,
    kind: CallbackKind,
    Bearer(bearer): Bearer,
    headers: Option<HeaderMap>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let span = tracing::info_span!(
        "callback",
        step = kind.as_str(),
        payment_id = tracing::field::Empty
    );
    async move {
        let mut callback = parse_callback(kind, &body, bearer).inspect_err(|err| {
            tracing::debug!(error = %err, "callback refused: bad body");
        })?;
        tracing::Span::current()
            .record("payment_id", tracing::field::display(callback.payment_id()));
        // Resolved here, before the batcher: it is a ledger read, and the group commit must
        // not wait on one request's lookup.
        if let (
            Some(headers),
            Callback::Approve {
                credential: credential @ ApproveCredential::Missing,
                ..
            }
            | Callback::Incomplete {
                credential: credential @ ApproveCredential::Missing,
                ..
            },
        ) = (&headers, &mut callback)
        {
            *credential = credential_from_session(&state, headers).await?;
            tracing::debug!(
                from_session = matches!(credential, ApproveCredential::Session(_)),
                "callback without a token"
            );
        }
        let recorded = state.callbacks.submit(callback).await?;
        tracing::debug!(
            state = %recorded.payment.state,
            created = recorded.created,
            enqueued = recorded.job.is_some(),
            "callback recorded"
        );
        Ok((
            StatusCode::ACCEPTED,
            Json(json!({
                "payment_id": recorded.payment.id,
                "state": recorded.payment.state,
            })),
        ))
    }
    .instrument(span)
    .await
}

/// Who the request's cookie session is (the Bearer header was already read), or
/// [`ApproveCredential::Missing`] without a live session or when sign-in is not wired.
async fn credential_from_session(
    state: &ApiState,
    headers: &HeaderMap,
) -> Result<ApproveCredential, ApiError> {
    let Some(pioneers) = &state.pioneers else {
        return Ok(ApproveCredential::Missing);
    };
    auth::approve_credential_for_request(&pioneers.auth, headers).await
}
