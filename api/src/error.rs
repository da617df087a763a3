//! The one error type every handler, extractor and middleware returns (payments, callbacks,
//! sign-in, ads, operator and CSRF refusals alike), so that every failure a client sees is JSON
//! `{"error": code, "message": text}` and the message says what to do next.

use axum::Json;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pi_payments_core::ledger::LedgerError;
use serde::Serialize;
use std::fmt;

/// What a 413 from the Pi callback and payment routes advises.
pub const CALLBACK_SIZE_ADVICE: &str = "Pi callbacks are far smaller, so check what is being sent";

/// What a 413 from the sign-in and ad routes advises (their bodies are a field or two).
pub const FIELDS_SIZE_ADVICE: &str = "send only the JSON fields this route reads";

/// The `Retry-After` (seconds) of the 503s that Pioneer-facing routes (sign-in, ads) answer.
const RETRY_AFTER_SECS: u32 = 5;

/// A request that could not be served, with the status and the text the client gets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ApiError {
    /// The request itself is wrong (bad JSON, missing or invalid field): 400.
    #[error("{message}")]
    BadRequest { code: &'static str, message: String },
    /// No credential, or one that is not accepted (Pioneer token, session, admin token): 401,
    /// with `WWW-Authenticate: Bearer`.
    #[error("{message}")]
    Unauthorized { code: &'static str, message: String },
    /// Authenticated or not, this request may not do this (another Pioneer's ad, a
    /// cookie-authenticated change from an untrusted origin): 403.
    #[error("{message}")]
    Forbidden { code: &'static str, message: String },
    /// The named thing does not exist: 404.
    #[error("{message}")]
    NotFound { code: &'static str, message: String },
    /// Well-formed but refused (e.g. an order for a quantity that overflows): 422.
    #[error("{message}")]
    Unprocessable { code: &'static str, message: String },
    /// The request conflicts with what the ledger holds (e.g. a second txid for a payment): 409.
    #[error("{message}")]
    Conflict { code: &'static str, message: String },
    /// The body is larger than the limit: 413. `advice` ends the message (what to send instead).
    #[error("request body is larger than {limit} bytes")]
    TooLarge { limit: usize, advice: &'static str },
    /// The route exists but not for this method: 405.
    #[error("{method} is not allowed here")]
    MethodNotAllowed { method: String },
    /// A dependency (ledger, queue, Pi) is down or overloaded: 503. Clients may retry; with
    /// `retry_after_secs` the answer says when (`Retry-After`).
    #[error("{message}")]
    Unavailable {
        code: &'static str,
        message: String,
        retry_after_secs: Option<u32>,
    },
    /// The client sent more requests than its limit (`CLIENT_RATE_LIMIT`): 429 with
    /// `Retry-After`.
    #[error(
        "too many requests from this client address; retry in {retry_after_secs} s (each client address may send CLIENT_RATE_LIMIT requests per second to the public routes)"
    )]
    TooManyRequests { retry_after_secs: u32 },
    /// This client presented too many wrong operator tokens lately ([`crate::token_guesses`]):
    /// 429 with `Retry-After`, whatever it presents now.
    #[error(
        "too many wrong operator tokens from this client address; retry in {retry_after_secs} s with the server's ADMIN_TOKEN (each address may present {per_window} wrong ones per minute)"
    )]
    TooManyWrongTokens {
        retry_after_secs: u32,
        per_window: u32,
    },
    /// Our bug or an unexpected storage failure: 500. Details go to the log, not the client.
    #[error("internal error")]
    Internal,
}

/// The JSON body of every error answer (`Error` in the OpenAPI document).
#[derive(Debug, Serialize, utoipa::ToSchema)]
#[schema(as = Error, example = json!({"error": "invalid_payment_id", "message": "paymentId is not a Pi payment identifier (those are 28 letters and digits); send the id Pi's SDK passed to the callback"}))]
pub struct ErrorBody<'a> {
    /// A stable, machine-readable code (e.g. `payment_not_found`, `not_found` for an unknown
    /// route, `method_not_allowed`).
    error: &'a str,
    /// What went wrong and what to do next, for a person.
    message: String,
}

impl ApiError {
    /// A 400 with a stable machine-readable code and a message saying what to send instead.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::BadRequest {
            code,
            message: message.into(),
        }
    }

    /// A 401 (no or refused credential); the answer carries `WWW-Authenticate: Bearer`.
    pub fn unauthorized(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unauthorized {
            code,
            message: message.into(),
        }
    }

    /// A 403: the request may not do this.
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Forbidden {
            code,
            message: message.into(),
        }
    }

    /// A 413 for a body over `limit` bytes, ending with `advice`.
    pub fn too_large(limit: usize, advice: &'static str) -> ApiError {
        ApiError::TooLarge { limit, advice }
    }

    /// A 404 for something the client named.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::NotFound {
            code,
            message: message.into(),
        }
    }

    /// A 503 naming what is unavailable.
    pub fn unavailable(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unavailable {
            code,
            message: message.into(),
            retry_after_secs: None,
        }
    }

    /// A 503 that tells the client to retry in a few seconds (`Retry-After`): what the
    /// Pioneer-facing routes answer when Pi or the ledger cannot be reached.
    pub fn retry_later(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::Unavailable {
            code,
            message: message.into(),
            retry_after_secs: Some(RETRY_AFTER_SECS),
        }
    }

    /// The ledger failed under a Pioneer-facing route: 503 with `Retry-After`, whatever the
    /// failure (details in the log only).
    pub fn ledger_retry_later(err: &dyn fmt::Display) -> ApiError {
        tracing::error!(error = %err, "ledger failure");
        ApiError::retry_later(
            "ledger_unavailable",
            "the payments ledger is not reachable right now; retry in a few seconds",
        )
    }

    /// The HTTP status of this error.
    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            ApiError::Unauthorized { .. } => StatusCode::UNAUTHORIZED,
            ApiError::Forbidden { .. } => StatusCode::FORBIDDEN,
            ApiError::NotFound { .. } => StatusCode::NOT_FOUND,
            ApiError::Unprocessable { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::Conflict { .. } => StatusCode::CONFLICT,
            ApiError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::MethodNotAllowed { .. } => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::Unavailable { .. } => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::TooManyRequests { .. } | ApiError::TooManyWrongTokens { .. } => {
                StatusCode::TOO_MANY_REQUESTS
            }
            ApiError::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable code in the `error` field.
    pub fn code(&self) -> &'static str {
        match self {
            ApiError::BadRequest { code, .. }
            | ApiError::Unauthorized { code, .. }
            | ApiError::Forbidden { code, .. }
            | ApiError::NotFound { code, .. }
            | ApiError::Unprocessable { code, .. }
            | ApiError::Conflict { code, .. }
            | ApiError::Unavailable { code, .. } => code,
            ApiError::TooLarge { .. } => "payload_too_large",
            ApiError::MethodNotAllowed { .. } => "method_not_allowed",
            ApiError::TooManyRequests { .. } => "too_many_requests",
            ApiError::TooManyWrongTokens { .. } => "too_many_wrong_tokens",
            ApiError::Internal => "internal_error",
        }
    }

    fn client_message(&self) -> String {
        match self {
            ApiError::TooLarge { limit, advice } => {
                format!("request bodies are limited to {limit} bytes; {advice}")
            }
            ApiError::MethodNotAllowed { method } => format!(
                "{method} is not allowed on this path; see the API's routes (callbacks are POST, reads are GET)"
            ),
            ApiError::Internal => {
                "something went wrong on our side; retry later, and if it persists look at the server log".to_string()
            }
            other => other.to_string(),
        }
    }
}

impl From<LedgerError> for ApiError {
    /// Refusals the client can act on keep their message; storage failures become a 503
    /// (retry later) with the details in the log only.
    fn from(err: LedgerError) -> ApiError {
        match err {
            LedgerError::TxidConflict { .. } => ApiError::Conflict {
                code: "txid_conflict",
                message: err.to_string(),
            },
            LedgerError::TxidTaken { .. } => ApiError::Conflict {
                code: "txid_taken",
                message: err.to_string(),
            },
            LedgerError::InvalidTransition(_) => ApiError::Conflict {
                code: "invalid_transition",
                message: err.to_string(),
            },
            LedgerError::PaymentNotFound(_) => {
                ApiError::not_found("payment_not_found", err.to_string())
            }
            LedgerError::UnknownAtPi(_) => {
                ApiError::not_found("payment_not_found", err.to_string())
            }
            LedgerError::OrderNotFound(_) => {
                ApiError::not_found("order_not_found", err.to_string())
            }
            LedgerError::OrderUnavailable { .. } => ApiError::Conflict {
                code: "order_unavailable",
                message: err.to_string(),
            },
            LedgerError::IdempotencyConflict { .. } => ApiError::Conflict {
                code: "idempotency_conflict",
                message: err.to_string(),
            },
            LedgerError::PayoutNotFound(_) => {
                ApiError::not_found("payout_not_found", err.to_string())
            }
            LedgerError::BatchNotFound(_) => {
                ApiError::not_found("batch_not_found", err.to_string())
            }
            LedgerError::BadPayoutRequest(_) => {
                ApiError::bad_request("invalid_payout", err.to_string())
            }
            LedgerError::PayoutConflict { .. } => ApiError::Conflict {
                code: "payout_conflict",
                message: err.to_string(),
            },
            LedgerError::InvalidPayoutTransition(_) => ApiError::Conflict {
                code: "invalid_payout_transition",
                message: err.to_string(),
            },
            LedgerError::Corrupt(_) => {
                tracing::error!(error = %err, "the ledger holds an unreadable value");
                ApiError::Internal
            }
            other => {
                tracing::error!(error = %other, "ledger failure");
                ApiError::unavailable(
                    "ledger_unavailable",
                    "the payments ledger is not reachable right now; retry in a few seconds",
                )
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code(),
            message: self.client_message(),
        };
        let mut response = (self.status(), Json(body)).into_response();
        let headers = response.headers_mut();
        match self {
            ApiError::Unauthorized { .. } => {
                headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            ApiError::Unavailable {
                retry_after_secs: Some(secs),
                ..
            }
            | ApiError::TooManyRequests {
                retry_after_secs: secs,
            }
            | ApiError::TooManyWrongTokens {
                retry_after_secs: secs,
                ..
            } => {
                headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
            }
            _ => {}
        }
        response
    }
}
