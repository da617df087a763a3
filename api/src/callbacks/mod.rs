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

use crate::access_log::RequestId;
use crate::auth;
use crate::error::{ApiError, ErrorBody};
use crate::extract::{Bearer, JsonBody};
use crate::state::ApiState;
use axum::Extension;
use axum::Json;
use axum::Router;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use pi_payments_core::PaymentId;
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::ledger::Callback;
use pi_payments_core::state::PaymentState;
use tracing::Instrument;

/// The callback routes, under both prefixes the frontend wrappers use (the OpenAPI document
/// describes `/pi_payment/*` and repeats each operation under `/api/pi_payment/*`).
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

/// The path prefixes the callbacks are mounted under, the first being the documented one.
pub const PREFIXES: [&str; 2] = ["/pi_payment", "/api/pi_payment"];

/// The answer to an accepted callback: the payment and where the ledger has it. Pi is asked
/// afterwards, by the callback's job.
#[derive(Debug, serde::Serialize, utoipa::ToSchema)]
pub struct CallbackAccepted {
    /// Pi's payment identifier.
    pub payment_id: PaymentId,
    /// Where the payment stands in the ledger now.
    pub state: PaymentState,
}

/// `onReadyForServerApproval`: `{paymentId, accessToken?}`. Without `accessToken` the
/// `Authorization: Bearer` header, else the session cookie, names the Pioneer.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; body::parse_callback reads it.
pub struct ApproveCallback {
    /// The id Pi's SDK passed to the callback (28 letters and digits).
    payment_id: String,
    /// The Pioneer's access token from `Pi.authenticate()`.
    access_token: Option<String>,
}

/// `onReadyForServerCompletion`: `{paymentId, txid}` (`transactionId` is read too; if both are
/// sent they must agree).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; body::parse_callback reads it.
pub struct CompleteCallback {
    /// The id Pi's SDK passed to the callback.
    payment_id: String,
    /// The blockchain transaction id (64 hex digits) Pi's SDK passed to the callback.
    txid: Option<String>,
    /// Another spelling of `txid`.
    transaction_id: Option<String>,
}

/// `onCancel`: `{paymentId}`.
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; body::parse_callback reads it.
pub struct CancelCallback {
    /// The id Pi's SDK passed to the callback.
    payment_id: String,
}

/// `onError`: `{paymentId, error?}`; the report is kept (at most 2 KiB of compact JSON).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; body::parse_callback reads it.
pub struct ErrorCallback {
    /// The id Pi's SDK passed to the callback.
    payment_id: String,
    /// What the SDK reported, as it reported it (any JSON).
    error: Option<serde_json::Value>,
}

/// `onIncompletePaymentFound`: `{paymentId, transactionId?}` or `{payment: PaymentDTO}` (only
/// `identifier` and `transaction.txid` are read from the DTO; the rest is re-read from Pi).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; body::parse_callback reads it.
pub struct IncompleteCallback {
    /// The incomplete payment's id (or send `payment`).
    payment_id: Option<String>,
    /// Its transaction id, if it has one.
    transaction_id: Option<String>,
    /// The PaymentDTO the SDK passed to `onIncompletePaymentFound`.
    payment: Option<serde_json::Value>,
    /// The Pioneer's access token: only their own abandoned payment is cancelled at once.
    access_token: Option<String>,
}

/// Approve a payment (`onReadyForServerApproval`).
///
/// Records the callback and answers 202 at once; the approve job then checks the Pioneer and
/// the payment at Pi (amount, order) and approves or refuses it. Pi's SDK retries the callback
/// until it gets an answer, and a repeat is answered from the ledger.
#[utoipa::path(
    post,
    path = "/pi_payment/approve",
    tag = "callbacks",
    request_body = ApproveCallback,
    security((), ("pioneer_token" = []), ("session_cookie" = [])),
    responses(
        (status = 202, description = "Recorded; the approve job asks Pi next", body = CallbackAccepted),
        (status = 400, description = "Bad body or payment id", body = ErrorBody),
        (status = 409, description = "The ledger holds something else for this payment", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable or shutting down; retry", body = ErrorBody),
    )
)]
pub(crate) async fn approve(
    State(state): State<ApiState>,
    request_id: Option<Extension<RequestId>>,
    bearer: Bearer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<(StatusCode, Json<CallbackAccepted>), ApiError> {
    let request = Request::new(CallbackKind::Approve, request_id, Some(headers));
    handle(state, request, bearer, body).await
}

/// Ask for completion (`onReadyForServerCompletion`).
///
/// Records the claimed txid as a hint; the complete job verifies the transaction Pi linked on
/// chain and then completes the payment at Pi.
#[utoipa::path(
    post,
    path = "/pi_payment/complete",
    tag = "callbacks",
    request_body = CompleteCallback,
    responses(
        (status = 202, description = "Recorded; the complete job checks the chain and Pi next", body = CallbackAccepted),
        (status = 400, description = "Bad body, payment id or txid", body = ErrorBody),
        (status = 409, description = "Another txid is bound to this payment, or the payment cannot complete", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable or shutting down; retry", body = ErrorBody),
    )
)]
pub(crate) async fn complete(
    State(state): State<ApiState>,
    request_id: Option<Extension<RequestId>>,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<CallbackAccepted>), ApiError> {
    let request = Request::new(CallbackKind::Complete, request_id, None);
    handle(state, request, bearer, body).await
}

/// Report a cancellation (`onCancel`).
///
/// A hint: the cancel job re-reads the payment at Pi and records what Pi says.
#[utoipa::path(
    post,
    path = "/pi_payment/cancel",
    tag = "callbacks",
    request_body = CancelCallback,
    responses(
        (status = 202, description = "Recorded; the cancel job asks Pi next", body = CallbackAccepted),
        (status = 400, description = "Bad body or payment id", body = ErrorBody),
        (status = 409, description = "The payment cannot be cancelled any more", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable or shutting down; retry", body = ErrorBody),
    )
)]
pub(crate) async fn cancel(
    State(state): State<ApiState>,
    request_id: Option<Extension<RequestId>>,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<CallbackAccepted>), ApiError> {
    let request = Request::new(CallbackKind::Cancel, request_id, None);
    handle(state, request, bearer, body).await
}

/// Report an SDK error (`onError`).
///
/// A hint: the record-error job re-reads the payment at Pi and records what Pi says.
#[utoipa::path(
    post,
    path = "/pi_payment/error",
    tag = "callbacks",
    request_body = ErrorCallback,
    responses(
        (status = 202, description = "Recorded; the record-error job asks Pi next", body = CallbackAccepted),
        (status = 400, description = "Bad body or payment id", body = ErrorBody),
        (status = 409, description = "The ledger refused the report", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable or shutting down; retry", body = ErrorBody),
    )
)]
pub(crate) async fn error(
    State(state): State<ApiState>,
    request_id: Option<Extension<RequestId>>,
    bearer: Bearer,
    body: JsonBody,
) -> Result<(StatusCode, Json<CallbackAccepted>), ApiError> {
    let request = Request::new(CallbackKind::Error, request_id, None);
    handle(state, request, bearer, body).await
}

/// Report an incomplete payment (`onIncompletePaymentFound`).
///
/// With a txid the payment is completed after a chain check; without one an approved payment
/// is cancelled at once when its own Pioneer asks (token or session), else after a grace
/// period.
#[utoipa::path(
    post,
    path = "/pi_payment/incomplete",
    tag = "callbacks",
    request_body = IncompleteCallback,
    security((), ("pioneer_token" = []), ("session_cookie" = [])),
    responses(
        (status = 202, description = "Recorded; the incomplete job asks Pi next", body = CallbackAccepted),
        (status = 400, description = "Bad body, payment id or txid", body = ErrorBody),
        (status = 409, description = "The ledger holds something else for this payment", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable or shutting down; retry", body = ErrorBody),
    )
)]
pub(crate) async fn incomplete(
    State(state): State<ApiState>,
    request_id: Option<Extension<RequestId>>,
    bearer: Bearer,
    headers: HeaderMap,
    body: JsonBody,
) -> Result<(StatusCode, Json<CallbackAccepted>), ApiError> {
    let request = Request::new(CallbackKind::Incomplete, request_id, Some(headers));
    handle(state, request, bearer, body).await
}

/// What a callback handler knows about its request besides the body and the Bearer token.
struct Request {
    kind: CallbackKind,
    /// The access log's id for it: the job carries it.
    request_id: Option<RequestId>,
    /// The headers, for the callbacks that may need the cookie session's uid.
    headers: Option<HeaderMap>,
}

impl Request {
    fn new(
        kind: CallbackKind,
        request_id: Option<Extension<RequestId>>,
        headers: Option<HeaderMap>,
    ) -> Request {
        Request {
            kind,
            request_id: request_id.map(|Extension(id)| id),
            headers,
        }
    }
}

/// Check, record (group commit), answer. The span carries the step and the payment id, never
/// the token.
async fn handle(
    state: ApiState,
    request: Request,
    Bearer(bearer): Bearer,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<CallbackAccepted>), ApiError> {
    let Request {
        kind,
        request_id,
        headers,
    } = request;
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
        let recorded = state
            .callbacks
            .submit_for_request(callback, request_id)
            .await?;
        tracing::debug!(
            state = %recorded.payment.state,
            created = recorded.created,
            enqueued = recorded.job.is_some(),
            "callback recorded"
        );
        Ok((
            StatusCode::ACCEPTED,
            Json(CallbackAccepted {
                payment_id: recorded.payment.id,
                state: recorded.payment.state,
            }),
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
