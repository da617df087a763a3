//! The Pi Platform API v2 (pi-platform.md §3): the typed client [`PiClient`] (in `client`), its
//! errors [`PiError`] (in `error`) and the bounded retries of transient failures ([`retry`]).
//!
//! Every call goes through the process-wide
//! [`PiRateLimiter`](crate::rate_limit::PiRateLimiter) (one permit per attempt,
//! retries included) and is retried under a [`RetryPolicy`] when the failure is transient.
//! Errors are [`PiError`]s: one variant per Pi error code, plus transport failures; bodies are
//! never assumed to be JSON.
//!
//! # Retried POSTs and `already_*` answers
//! Pi's POSTs are not idempotent in their *answers*: if `approve`/`complete`/`cancel` reaches Pi
//! but the response is lost (timeout, dropped connection, 5xx from a proxy), the retry gets
//! [`PiError::AlreadyApproved`] / [`PiError::AlreadyCompleted`] even though the first attempt
//! succeeded. Likewise a retried `create_payment` may answer
//! [`PiError::OngoingPaymentFound`] carrying the payment the first attempt created. These are
//! surfaced as-is (never swallowed): the caller confirms with [`PiClient::get_payment`] (and,
//! for complete, that the linked txid is its own) and then treats the step as done.
//!
//! The API key and access tokens never appear in errors, `Debug` output or logs: the
//! `Authorization` header values are marked sensitive and the `Debug` impls redact them.

mod bad_tokens;
mod client;
mod error;
pub mod retry;

pub use bad_tokens::BAD_TOKEN_TTL;
pub use client::{
    DEFAULT_TIMEOUT, PiClient, PiClientConfig, PiConfigError, install_crypto_provider,
};
pub use error::{PiError, VerificationError};
pub use retry::RetryPolicy;
