//! Errors: why the simulator could not start ([`SimError`]) and the Platform API's error answers
//! ([`ApiError`], `{error, error_message}` plus `payment` / `verification_error`).

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use serde_json::value::RawValue;

/// Why [`crate::start`] failed; each message says what to change.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// A listener could not be bound.
    #[error("cannot listen on {addr}: {source}; pick another port, or 0 for a free one")]
    Bind {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    /// `--app-wallet-seed` is not a Stellar secret seed.
    #[error(
        "the app wallet seed is not a valid Stellar secret seed (S…, 56 characters); pass a valid one or omit it for a random wallet"
    )]
    InvalidSeed,
    /// A flag or field has a value the simulator cannot use.
    #[error("invalid configuration: {0}")]
    Config(String),
}

/// Marks a response as belonging to a payment, so the request log can count it per payment
/// (needed for creates, whose identifier is unknown before the handler runs).
#[derive(Clone, Debug)]
pub struct PaymentRef(pub String);

/// An error answer shaped like Pi's: `{"error": code, "error_message": text}`, sometimes with
/// the `payment` in question or a `verification_error`.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    // Boxed: errors travel through many Results; keep them small.
    payment: Option<Box<AttachedPayment>>,
    verification_error: Option<&'static str>,
}

/// The payment an error answer is about: its identifier (for the request log) and its
/// `PaymentDTO`, serialized by the caller, so that errors need not know the payment's shape.
#[derive(Debug)]
struct AttachedPayment {
    identifier: String,
    dto: Box<RawValue>,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    error_message: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    payment: Option<&'a RawValue>,
    #[serde(skip_serializing_if = "Option::is_none")]
    verification_error: Option<&'a str>,
}

impl ApiError {
    /// An error with a status, a machine code and a human message.
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
            payment: None,
            verification_error: None,
        }
    }

    /// 400 with the given code: the usual business-rule refusal.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `unauthorized`: the server API key is wrong or missing.
    pub fn unauthorized() -> ApiError {
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "Missing or invalid server API key: send `Authorization: Key <api_key>` with the key the simulator printed",
        )
    }

    /// 404 `payment_not_found`.
    pub fn payment_not_found(id: &str) -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "payment_not_found",
            format!("No payment with identifier {id:?}; check the identifier returned at creation"),
        )
    }

    /// 404 `not_found` for unknown paths.
    pub fn not_found() -> ApiError {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "No such route; see the Platform API v2 reference for the supported paths",
        )
    }

    /// Attaches the payment the error is about: its identifier and its `PaymentDTO`.
    pub fn with_payment(mut self, identifier: &str, dto: &impl Serialize) -> ApiError {
        // Serializing our own DTO cannot fail; if it somehow did, the answer goes without it.
        self.payment = serde_json::value::to_raw_value(dto).ok().map(|dto| {
            Box::new(AttachedPayment {
                identifier: identifier.to_owned(),
                dto,
            })
        });
        self
    }

    /// Attaches the reason a completion failed verification.
    pub fn with_verification(mut self, reason: &'static str) -> ApiError {
        self.verification_error = Some(reason);
        self
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: self.code,
            error_message: &self.message,
            payment: self.payment.as_deref().map(|p| p.dto.as_ref()),
            verification_error: self.verification_error,
        };
        let mut response = crate::response::json_response(self.status, &body);
        if let Some(payment) = &self.payment {
            response
                .extensions_mut()
                .insert(PaymentRef(payment.identifier.clone()));
        }
        response
    }
}
