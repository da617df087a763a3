//! Everything a call to the Pi Platform API can end in, one variant per error code of
//! pi-platform.md §3, plus transport failures. Decoding never assumes a JSON body.

use crate::dto::PaymentDto;
use crate::throttle::{Throttle, Throttling, is_throttling_status};
use std::fmt;
use std::time::Duration;

/// Why Pi refused to complete a payment (`verification_failed`'s `verification_error`).
///
/// Pi documents no list of these. Two values have been seen from the real API (pi-apps/pi-ruby
/// issue 4) and mean something we can act on; every other value is Pi's own words, kept
/// verbatim and never branched on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum VerificationError {
    /// `tx_memo_payment_identifier_mismatch`: the transaction's memo is not the payment's
    /// identifier.
    MemoMismatch,
    /// `payment_already_linked_with_a_tx`: Pi already linked a transaction to the payment.
    AlreadyLinked,
    /// Anything else (verbatim), including a missing or unreadable `verification_error`.
    Other(String),
}

impl VerificationError {
    /// Map Pi's code text to a variant.
    pub fn from_code(code: &str) -> VerificationError {
        match code {
            "tx_memo_payment_identifier_mismatch" => VerificationError::MemoMismatch,
            "payment_already_linked_with_a_tx" => VerificationError::AlreadyLinked,
            other => VerificationError::Other(other.to_string()),
        }
    }

    /// Pi's code text.
    pub fn code(&self) -> &str {
        match self {
            VerificationError::MemoMismatch => "tx_memo_payment_identifier_mismatch",
            VerificationError::AlreadyLinked => "payment_already_linked_with_a_tx",
            VerificationError::Other(s) => s,
        }
    }

    /// Whether completing again later cannot change Pi's answer: the two values known to
    /// describe the payment itself. An unknown one may be Pi not having indexed a transaction
    /// that landed moments ago, so it is retried for a bounded time.
    pub fn is_final(&self) -> bool {
        !matches!(self, VerificationError::Other(_))
    }
}

impl fmt::Display for VerificationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())
    }
}

/// A failed call to the Pi Platform API.
///
/// Pi's business errors (4xx with a known `error` code) map to one variant each; `already_*`
/// answers carry Pi's `payment` when it sent one. None of them changed Pi's state. Transport
/// failures (`Server`, `NonJson` with a 5xx/429 status, `Timeout`, `Connection`,
/// `TooManyRequests`) are [`retryable`](PiError::is_retryable); when the client's retries run
/// out it returns [`PiError::RetriesExhausted`] with the attempts made and the last error.
///
/// No variant ever holds the API key or an access token.
#[derive(Debug, thiserror::Error)]
pub enum PiError {
    /// 401 `unauthorized` on a server call.
    #[error(
        "Pi rejected the server API key (401 unauthorized): check PI_API_KEY is the key of this app on the Pi Developer Portal and matches PI_NETWORK"
    )]
    Unauthorized,
    /// 401 `missing_scope`.
    #[error(
        "Pi refused: the Pioneer has not granted the scope this call needs (401 missing_scope); A2U payouts need `wallet_address`: ask the Pioneer to sign in again with that scope"
    )]
    MissingScope,
    /// 401 on `GET /me`: the access token is invalid, tampered or expired.
    #[error(
        "Pi rejected the access token (401 on /me): it is invalid or expired; the frontend must call Pi.authenticate again and send the new token"
    )]
    InvalidToken,
    /// 404 `payment_not_found`.
    #[error(
        "Pi does not know this payment (404 payment_not_found): check the paymentId and that PI_API_KEY belongs to the app and network that created it"
    )]
    PaymentNotFound,
    /// 429 `too_many_requests`.
    #[error("Pi is rate limiting us (429){}: lower PI_RATE_LIMIT or retry later", fmt_retry_after(*.retry_after))]
    TooManyRequests {
        /// From the `Retry-After` header, when present and readable.
        retry_after: Option<Duration>,
    },
    /// `invalid_amount` on create.
    #[error("Pi refused the amount ({message}): use a positive amount with at most 7 decimals")]
    InvalidAmount { message: String },
    /// `invalid_arguments` on create.
    #[error("Pi refused the payment's arguments ({message}): check uid, memo and metadata")]
    InvalidArguments { message: String },
    /// `invalid_metadata` on create.
    #[error("Pi refused the metadata ({message}): send a small JSON object")]
    InvalidMetadata { message: String },
    /// `ongoing_payment_found` on create: the user already has an open A2U payment.
    #[error("Pi refused to create a payment: the Pioneer has an open one{}; resolve it first (finish or cancel it), never create blindly", fmt_payment(.payment.as_deref()))]
    OngoingPaymentFound {
        /// The open payment, when Pi sent it; otherwise list incomplete_server_payments.
        payment: Option<Box<PaymentDto>>,
    },
    /// `user_not_found` on create.
    #[error(
        "Pi does not know this uid (user_not_found): the uid must come from /v2/me for this app"
    )]
    UserNotFound,
    /// `too_many_payments` on create.
    #[error(
        "Pi refused: too many payments for this user (too_many_payments); wait and retry later"
    )]
    TooManyPayments,
    /// `too_many_cancelled_payments` on create.
    #[error(
        "Pi refused: too many cancelled payments for this user (too_many_cancelled_payments); wait before creating more"
    )]
    TooManyCancelledPayments,
    /// `already_approved` on approve. After a retried approve this usually means the first
    /// attempt succeeded: confirm with `get_payment` and treat it as done.
    #[error("Pi says the payment is already approved{}: confirm with GET /payments/{{id}} and treat it as approved", fmt_payment(.payment.as_deref()))]
    AlreadyApproved {
        /// The payment, when Pi sent it.
        payment: Option<Box<PaymentDto>>,
    },
    /// `cancelled_payment`: the payment was cancelled; nothing more can happen to it.
    #[error(
        "Pi says the payment is cancelled (cancelled_payment): record it as cancelled; do not deliver"
    )]
    CancelledPayment,
    /// `missing_txid` on complete.
    #[error("Pi refused to complete: no txid was sent (missing_txid); pass the transaction hash")]
    MissingTxid,
    /// `already_completed` on complete/cancel. After a retried complete this usually means the
    /// first attempt succeeded: confirm with `get_payment` (same txid) and treat it as done.
    #[error("Pi says the payment is already completed{}: confirm with GET /payments/{{id}} that the txid is ours and treat it as completed", fmt_payment(.payment.as_deref()))]
    AlreadyCompleted {
        /// The payment, when Pi sent it.
        payment: Option<Box<PaymentDto>>,
    },
    /// `txid_mismatch` on complete: Pi linked a different transaction.
    #[error(
        "Pi refused to complete: the txid differs from the one linked to the payment (txid_mismatch); re-read the payment and use its transaction"
    )]
    TxidMismatch,
    /// `not_verified` on complete: Pi has not verified the transaction yet.
    #[error("Pi has not verified the transaction yet (not_verified): retry completion later")]
    NotVerified,
    /// `verification_failed` on complete.
    #[error(
        "Pi could not verify the transaction (verification_failed: {verification_error}): check it on Horizon"
    )]
    VerificationFailed {
        verification_error: VerificationError,
    },
    /// `payment_tx_present` on cancel: a U2A transaction is linked.
    #[error(
        "Pi refused to cancel: a transaction is linked (payment_tx_present); complete the payment instead"
    )]
    PaymentTxPresent,
    /// 404 `ad_not_found`.
    #[error(
        "Pi does not know this ad (ad_not_found): the adId must come from the SDK's AD_REWARDED result"
    )]
    AdNotFound,
    /// Any other JSON error answer.
    #[error("Pi answered {status} {code}: {message}; see Pi's Platform API docs for this code")]
    Other {
        status: u16,
        code: String,
        message: String,
    },
    /// 5xx from Pi (with a JSON or empty body).
    #[error("Pi had a server error ({status}{}): it is retried; if it persists check Pi's status", fmt_detail(.detail))]
    Server { status: u16, detail: String },
    /// A body that is not JSON (e.g. an HTML error page from a proxy).
    #[error(
        "Pi answered {status} with a non-JSON body ({snippet:?}): if this persists, check PI_API_BASE_URL points at Pi's API (the client appends /v2)"
    )]
    NonJson { status: u16, snippet: String },
    /// No answer within the configured timeout.
    #[error(
        "Pi did not answer in time: it is retried; if it persists check connectivity to PI_API_BASE_URL or raise the timeout"
    )]
    Timeout,
    /// Could not connect, or the connection dropped before a full answer.
    #[error(
        "the connection to Pi failed or dropped ({detail}): it is retried; if it persists check PI_API_BASE_URL and the network"
    )]
    Connection { detail: String },
    /// A 2xx answer in JSON that does not have the expected shape.
    #[error(
        "Pi's answer could not be read ({detail}): Pi's API may have changed; the payment needs attention"
    )]
    Decode { detail: String },
    /// The request could not be built (e.g. an unusable base URL).
    #[error("the request to Pi could not be built ({detail}): check PI_API_BASE_URL")]
    Request { detail: String },
    /// Transient failures continued until the retry budget ran out.
    #[error("gave up after {attempts} attempt(s): {last}")]
    RetriesExhausted { attempts: u32, last: Box<PiError> },
}

fn fmt_retry_after(d: Option<Duration>) -> String {
    d.map(|d| format!(", retry after {} s", d.as_secs_f64().ceil()))
        .unwrap_or_default()
}

fn fmt_payment(p: Option<&PaymentDto>) -> String {
    p.map(|p| format!(" ({})", p.identifier))
        .unwrap_or_default()
}

fn fmt_detail(d: &str) -> String {
    if d.is_empty() {
        String::new()
    } else {
        format!(": {d}")
    }
}

impl PiError {
    /// True for failures that may succeed if the same call is sent again later: 429, 5xx,
    /// non-JSON 5xx/429 pages, timeouts and connection failures (and `RetriesExhausted` of
    /// those). Pi's 4xx business errors are not retryable.
    pub fn is_retryable(&self) -> bool {
        match self {
            PiError::TooManyRequests { .. }
            | PiError::Server { .. }
            | PiError::Timeout
            | PiError::Connection { .. }
            | PiError::RetriesExhausted { .. } => true,
            PiError::NonJson { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        }
    }

    /// How long Pi asked us to wait (429 `Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            PiError::TooManyRequests { retry_after } => *retry_after,
            PiError::RetriesExhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// Attempts made: the count in `RetriesExhausted`, otherwise 1 (a business error that
    /// followed transient failures does not count them).
    pub fn attempts(&self) -> u32 {
        match self {
            PiError::RetriesExhausted { attempts, .. } => *attempts,
            _ => 1,
        }
    }

    /// The underlying error, looking through `RetriesExhausted`.
    pub fn root(&self) -> &PiError {
        match self {
            PiError::RetriesExhausted { last, .. } => last.root(),
            other => other,
        }
    }

    /// Pi's error code for this error, when it is one of Pi's (for records and metrics).
    pub fn code(&self) -> Option<&str> {
        Some(match self.root() {
            PiError::Unauthorized => "unauthorized",
            PiError::MissingScope => "missing_scope",
            PiError::PaymentNotFound => "payment_not_found",
            PiError::TooManyRequests { .. } => "too_many_requests",
            PiError::InvalidAmount { .. } => "invalid_amount",
            PiError::InvalidArguments { .. } => "invalid_arguments",
            PiError::InvalidMetadata { .. } => "invalid_metadata",
            PiError::OngoingPaymentFound { .. } => "ongoing_payment_found",
            PiError::UserNotFound => "user_not_found",
            PiError::TooManyPayments => "too_many_payments",
            PiError::TooManyCancelledPayments => "too_many_cancelled_payments",
            PiError::AlreadyApproved { .. } => "already_approved",
            PiError::CancelledPayment => "cancelled_payment",
            PiError::MissingTxid => "missing_txid",
            PiError::AlreadyCompleted { .. } => "already_completed",
            PiError::TxidMismatch => "txid_mismatch",
            PiError::NotVerified => "not_verified",
            PiError::VerificationFailed { .. } => "verification_failed",
            PiError::PaymentTxPresent => "payment_tx_present",
            PiError::AdNotFound => "ad_not_found",
            PiError::Other { code, .. } => code,
            _ => return None,
        })
    }
}

impl Throttling for PiError {
    /// 429, 503/504 and timeouts (also as the last error of `RetriesExhausted`) only ask us to
    /// slow down; other 5xx, dropped connections and business errors are failures.
    fn throttle(&self) -> Option<Throttle> {
        match self.root() {
            PiError::TooManyRequests { retry_after } => Some(Throttle {
                retry_after: *retry_after,
            }),
            PiError::Timeout => Some(Throttle { retry_after: None }),
            PiError::Server { status, .. } | PiError::NonJson { status, .. }
                if is_throttling_status(*status) =>
            {
                Some(Throttle { retry_after: None })
            }
            _ => None,
        }
    }
}

/// Pi's JSON error body; every field optional because error bodies vary.
#[derive(serde::Deserialize)]
struct ErrorBody {
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_message: Option<String>,
    #[serde(default)]
    payment: Option<serde_json::Value>,
    #[serde(default)]
    verification_error: Option<serde_json::Value>,
}

/// Which kind of call produced the answer: `/me` answers 401 for bad tokens, not bad keys.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Auth {
    Key,
    Bearer,
}

/// First characters of a body for an error message, with secrets cut out (a misbehaving proxy
/// might echo request headers back).
pub(crate) fn snippet(body: &[u8], secrets: &[&str]) -> String {
    let mut text = String::from_utf8_lossy(body).into_owned();
    // Redact before cutting, so a secret straddling the cut cannot leak its first half.
    for s in secrets.iter().filter(|s| !s.is_empty()) {
        text = text.replace(s, "[redacted]");
    }
    let cut: String = text.chars().take(200).collect();
    cut.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Turn a non-2xx answer into a [`PiError`]. Never assumes JSON.
pub(crate) fn decode_error(
    status: u16,
    retry_after: Option<Duration>,
    body: &[u8],
    auth: Auth,
    secrets: &[&str],
) -> PiError {
    if status == 429 {
        return PiError::TooManyRequests { retry_after };
    }
    if auth == Auth::Bearer && status == 401 {
        return PiError::InvalidToken;
    }
    let parsed: Option<ErrorBody> = serde_json::from_slice(body).ok();
    let Some(parsed) = parsed else {
        if body.iter().all(u8::is_ascii_whitespace) && status >= 500 {
            return PiError::Server {
                status,
                detail: String::new(),
            };
        }
        if status == 401 {
            return PiError::Unauthorized;
        }
        return PiError::NonJson {
            status,
            snippet: snippet(body, secrets),
        };
    };
    // Pi's words go into errors that are logged: cut and redacted like any other body text
    // (a proxy may echo the request's credentials in them).
    let message = snippet(
        parsed
            .error_message
            .as_deref()
            .unwrap_or_default()
            .as_bytes(),
        secrets,
    );
    let code = snippet(
        parsed.error.as_deref().unwrap_or_default().as_bytes(),
        secrets,
    );
    if status >= 500 {
        let detail = [code.as_str(), message.as_str()]
            .iter()
            .filter(|s| !s.is_empty())
            .copied()
            .collect::<Vec<_>>()
            .join(": ");
        return PiError::Server { status, detail };
    }
    let payment = || {
        parsed
            .payment
            .clone()
            .and_then(|v| serde_json::from_value::<PaymentDto>(v).ok())
            .map(Box::new)
    };
    match code.as_str() {
        "unauthorized" => PiError::Unauthorized,
        "missing_scope" => PiError::MissingScope,
        "payment_not_found" => PiError::PaymentNotFound,
        "too_many_requests" => PiError::TooManyRequests { retry_after },
        "invalid_amount" => PiError::InvalidAmount { message },
        "invalid_arguments" => PiError::InvalidArguments { message },
        "invalid_metadata" => PiError::InvalidMetadata { message },
        "ongoing_payment_found" => PiError::OngoingPaymentFound { payment: payment() },
        "user_not_found" => PiError::UserNotFound,
        "too_many_payments" => PiError::TooManyPayments,
        "too_many_cancelled_payments" => PiError::TooManyCancelledPayments,
        "already_approved" => PiError::AlreadyApproved { payment: payment() },
        "cancelled_payment" => PiError::CancelledPayment,
        "missing_txid" => PiError::MissingTxid,
        "already_completed" => PiError::AlreadyCompleted { payment: payment() },
        "txid_mismatch" => PiError::TxidMismatch,
        "not_verified" => PiError::NotVerified,
        "verification_failed" => PiError::VerificationFailed {
            verification_error: verification_error(parsed.verification_error.as_ref(), secrets),
        },
        "payment_tx_present" => PiError::PaymentTxPresent,
        "ad_not_found" => PiError::AdNotFound,
        "" if status == 401 => PiError::Unauthorized,
        _ => PiError::Other {
            status,
            code: if code.is_empty() {
                "unknown".into()
            } else {
                code
            },
            message,
        },
    }
}

/// `verification_error` is documented only by its codes: accept a string, or an object with
/// an `error`/`code` field. Unknown ones are kept as a redacted snippet.
fn verification_error(v: Option<&serde_json::Value>, secrets: &[&str]) -> VerificationError {
    let code = match v {
        Some(serde_json::Value::String(s)) => Some(s.as_str()),
        Some(serde_json::Value::Object(o)) => o
            .get("error")
            .or_else(|| o.get("code"))
            .and_then(serde_json::Value::as_str),
        _ => None,
    };
    match (code, v) {
        (Some(c), _) => VerificationError::from_code(&snippet(c.as_bytes(), secrets)),
        (None, Some(other)) => {
            VerificationError::Other(snippet(other.to_string().as_bytes(), secrets))
        }
        (None, None) => VerificationError::Other("unspecified".into()),
    }
}

/// Parse `Retry-After`: delay-seconds or an HTTP date.
pub(crate) fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    let wait = when.with_timezone(&chrono::Utc) - chrono::Utc::now();
    Some(wait.to_std().unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use crate::pi_client::error::*;

    #[test]
    fn only_429_503_504_and_timeouts_are_throttling() {
        let throttled = |e: PiError| e.throttle().is_some();
        let wait = Some(Duration::from_secs(2));
        let e = PiError::TooManyRequests { retry_after: wait };
        assert_eq!(e.throttle().and_then(|t| t.retry_after), wait);
        let server = |status| PiError::Server {
            status,
            detail: String::new(),
        };
        assert!(throttled(server(503)) && throttled(server(504)));
        assert!(throttled(PiError::RetriesExhausted {
            attempts: 5,
            last: Box::new(PiError::Timeout),
        }));
        assert!(!throttled(server(500)));
        assert!(!throttled(PiError::Connection {
            detail: "reset".into()
        }));
        assert!(!throttled(PiError::PaymentNotFound));
    }

    #[test]
    fn retry_after_forms() {
        assert_eq!(parse_retry_after("3"), Some(Duration::from_secs(3)));
        assert_eq!(
            parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT"),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon"), None);
    }

    #[test]
    fn snippets_redact_secrets() {
        let s = snippet(b"<html>echo: Key sekrit-key\n</html>", &["sekrit-key"]);
        assert_eq!(s, "<html>echo: Key [redacted] </html>");
    }

    /// Found by fuzzing: Pi's `error` code, `error_message` and `verification_error` reached
    /// the error's text (and the logs) verbatim, echoed credentials included.
    #[test]
    fn echoed_secrets_never_reach_the_error_text() {
        let key = "Aa0-_aA_aA0_A00a";
        let answers = [
            format!(r#"{{"error":"{key}"}}"#),
            format!(r#"{{"error":"invalid_amount","error_message":"{key}"}}"#),
            format!(r#"{{"error":"verification_failed","verification_error":"{key}"}}"#),
            format!(r#"{{"error":"verification_failed","verification_error":[{{"x":"{key}"}}]}}"#),
        ];
        for body in answers {
            let err = decode_error(400, None, body.as_bytes(), Auth::Key, &[key]);
            assert!(!err.to_string().contains(key), "{err}");
            assert!(err.to_string().contains("[redacted]"), "{err}");
        }
    }
}

/// Property tests: whatever Pi (or a proxy in its place) answers with an error status, it
/// becomes a `PiError` without a panic, and no secret it echoes reaches the error's text.
#[cfg(test)]
pub(crate) mod fuzz {
    use crate::fuzzing::{body_bytes, config, json_value, weird_text};
    use crate::pi_client::error::*;
    use proptest::prelude::*;
    use serde_json::{Value, json};

    /// Where a generated answer echoes the secret; [`with_secret`] puts it in.
    const ECHO: &str = "@ECHO@";

    /// A credential as the client holds them (API keys and access tokens are long and random).
    pub(crate) fn secret() -> impl Strategy<Value = String> {
        "[A-Z][a-z][0-9][A-Za-z0-9_-]{13,40}"
    }

    /// `answer` with every echo replaced by `secret`.
    pub(crate) fn with_secret(answer: &[u8], secret: &str) -> Vec<u8> {
        String::from_utf8_lossy(answer)
            .replace(ECHO, secret)
            .into_bytes()
    }

    /// Text that echoes the secret somewhere, or not at all.
    fn echoing_text() -> impl Strategy<Value = String> {
        (weird_text(), weird_text(), any::<bool>()).prop_map(|(a, b, echo)| {
            if echo {
                format!("{a}{ECHO}{b}")
            } else {
                format!("{a}{b}")
            }
        })
    }

    /// An error body (Pi's shape, a proxy's page, or anything) that may echo the secret.
    pub(crate) fn answer() -> impl Strategy<Value = Vec<u8>> {
        let code = prop_oneof![
            prop::sample::select(vec![
                "unauthorized",
                "missing_scope",
                "payment_not_found",
                "too_many_requests",
                "invalid_amount",
                "invalid_arguments",
                "invalid_metadata",
                "ongoing_payment_found",
                "user_not_found",
                "already_approved",
                "already_completed",
                "verification_failed",
                "ad_not_found",
                "",
            ])
            .prop_map(str::to_string),
            echoing_text(),
        ];
        let value = prop_oneof![
            json_value(),
            echoing_text().prop_map(Value::String),
            echoing_text().prop_map(|t| json!({"error": t, "code": t})),
        ];
        let pi_shaped = (code, echoing_text(), value.clone(), value).prop_map(
            |(code, message, payment, verification)| {
                json!({
                    "error": code,
                    "error_message": message,
                    "payment": payment,
                    "verification_error": verification,
                })
                .to_string()
                .into_bytes()
            },
        );
        // A 2xx whose fields hold the echo where Pi's DTOs expect ids, amounts or objects.
        let dto_shaped = (echoing_text(), any::<bool>()).prop_map(|(t, strip)| {
            let v = json!({"identifier": t, "user_uid": t, "amount": t, "uid": t,
                "credentials": t, "status": t, "incomplete_server_payments": [t]});
            let v = if strip { Value::String(t) } else { v };
            v.to_string().into_bytes()
        });
        prop_oneof![
            body_bytes(),
            echoing_text().prop_map(String::into_bytes),
            pi_shaped,
            dto_shaped,
        ]
    }

    fn status() -> impl Strategy<Value = u16> {
        prop_oneof![
            prop::sample::select(vec![
                400u16, 401, 403, 404, 409, 422, 429, 500, 502, 503, 504
            ]),
            any::<u16>(),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_error_answers_decode_without_leaking_secrets(
            key in secret(),
            token in secret(),
            answer in answer(),
            status in status(),
            bearer in any::<bool>(),
            retry in prop::option::of(any::<u32>()),
        ) {
            let body = with_secret(&answer, &key);
            let auth = if bearer { Auth::Bearer } else { Auth::Key };
            let retry_after = retry.map(|s| Duration::from_secs(u64::from(s)));
            let err = decode_error(status, retry_after, &body, auth, &[&key, &token]);
            let text = err.to_string();
            prop_assert!(!text.contains(&key), "{text}");
            prop_assert!(!err.code().unwrap_or("").contains(&key), "{err:?}");
            if status == 429 {
                prop_assert!(matches!(err, PiError::TooManyRequests { .. }), "{err:?}");
            }
            if status == 401 && bearer {
                prop_assert!(matches!(err, PiError::InvalidToken), "{err:?}");
            }
            let _ = (err.is_retryable(), err.retry_after(), err.throttle());
        }

        #[test]
        fn fuzz_retry_after_is_a_duration_or_nothing(text in weird_text()) {
            let _ = parse_retry_after(&text);
        }
    }
}
