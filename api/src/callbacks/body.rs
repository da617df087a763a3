//! Reading the five Pi frontend callbacks from every body spelling that real frontends send
//! (pi-platform.md §2), keeping only what we may trust: a payment id, perhaps an access
//! token, perhaps a txid, and for `error` what the SDK reported. Everything else is re-read
//! from Pi by the worker.

use crate::error::ApiError;
use crate::extract::{AccessToken, MAX_TOKEN_LEN};
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::ledger::Callback;
use pi_payments_core::{PaymentId, Txid};
use serde_json::{Map, Value};
use std::fmt;

/// Which frontend callback arrived; the last segment of `/pi_payment/<kind>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CallbackKind {
    /// `onReadyForServerApproval`.
    Approve,
    /// `onReadyForServerCompletion`.
    Complete,
    /// `onCancel`.
    Cancel,
    /// `onError`.
    Error,
    /// `onIncompletePaymentFound`.
    Incomplete,
}

impl CallbackKind {
    /// All kinds, in the order the routes are listed.
    pub const ALL: [CallbackKind; 5] = [
        CallbackKind::Approve,
        CallbackKind::Complete,
        CallbackKind::Cancel,
        CallbackKind::Error,
        CallbackKind::Incomplete,
    ];

    /// The path segment and log name.
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackKind::Approve => "approve",
            CallbackKind::Complete => "complete",
            CallbackKind::Cancel => "cancel",
            CallbackKind::Error => "error",
            CallbackKind::Incomplete => "incomplete",
        }
    }

    /// What a correct body for this callback looks like, for error messages.
    fn example(self) -> &'static str {
        match self {
            CallbackKind::Approve => r#"{"paymentId": "<id>", "accessToken": "<Pi access token>"}"#,
            CallbackKind::Complete => r#"{"paymentId": "<id>", "txid": "<64 hex digits>"}"#,
            CallbackKind::Cancel => r#"{"paymentId": "<id>"}"#,
            CallbackKind::Error => r#"{"paymentId": "<id>", "error": <what the SDK reported>}"#,
            CallbackKind::Incomplete => {
                r#"{"paymentId": "<id>", "transactionId": "<txid>" or null} or {"payment": <PaymentDTO>}"#
            }
        }
    }
}

impl fmt::Display for CallbackKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The largest `error` report we keep from an `error` callback, in bytes of compact JSON.
pub const MAX_ERROR_REPORT: usize = 2048;

/// Check a callback body and reduce it to what we may trust: the ledger's [`Callback`].
/// `bearer` is the token of the `Authorization` header, if any; a body `accessToken` wins.
pub fn parse_callback(
    kind: CallbackKind,
    body: &Value,
    bearer: Option<AccessToken>,
) -> Result<Callback, ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!(
                "the body of /pi_payment/{kind} must be a JSON object like {}",
                kind.example()
            ),
        ));
    };
    let body_token = match optional_string(obj, "accessToken", kind)? {
        Some(t) if t.len() > MAX_TOKEN_LEN => {
            return Err(bad_field(
                kind,
                "accessToken",
                "is too long to be a Pi access token",
            ));
        }
        Some(t) => AccessToken::new(t),
        None => None,
    };
    let access_token = body_token.or(bearer);

    Ok(match kind {
        CallbackKind::Approve => Callback::Approve {
            payment_id: payment_id(obj, kind)?,
            credential: ApproveCredential::from_token(access_token),
        },
        CallbackKind::Cancel => Callback::Cancel {
            payment_id: payment_id(obj, kind)?,
        },
        CallbackKind::Complete => {
            let payment_id = payment_id(obj, kind)?;
            let txid = flat_txid(obj, kind)?.ok_or_else(|| {
                ApiError::bad_request(
                    "missing_txid",
                    format!(
                        "complete needs the transaction id Pi's SDK passed to onReadyForServerCompletion: send {}",
                        kind.example()
                    ),
                )
            })?;
            Callback::Complete { payment_id, txid }
        }
        CallbackKind::Error => {
            let payment_id = payment_id(obj, kind)?;
            let error = obj.get("error").map(error_report).unwrap_or_default();
            Callback::Error { payment_id, error }
        }
        CallbackKind::Incomplete => {
            let (payment_id, txid) = incomplete(obj)?;
            Callback::Incomplete {
                payment_id,
                txid,
                credential: ApproveCredential::from_token(access_token),
            }
        }
    })
}

fn bad_field(kind: CallbackKind, field: &str, problem: &str) -> ApiError {
    ApiError::bad_request(
        "invalid_body",
        format!("{field} {problem}; send {}", kind.example()),
    )
}

/// A field that may be absent or null, and otherwise must be a string.
fn optional_string<'a>(
    obj: &'a Map<String, Value>,
    field: &str,
    kind: CallbackKind,
) -> Result<Option<&'a str>, ApiError> {
    match obj.get(field) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(_) => Err(bad_field(kind, field, "must be a string")),
    }
}

/// The lengths a callback's payment id may have: Pi's are 28 letters and digits; a little
/// leeway either side in case Pi changes them, none for other characters.
pub const PI_ID_LENGTHS: std::ops::RangeInclusive<usize> = 20..=40;

fn parse_payment_id(text: &str, field: &str, kind: CallbackKind) -> Result<PaymentId, ApiError> {
    let id = PaymentId::parse(text).map_err(|err| {
        ApiError::bad_request(
            "invalid_payment_id",
            format!("{field}: {err}; send {}", kind.example()),
        )
    })?;
    if !PI_ID_LENGTHS.contains(&text.len()) {
        return Err(ApiError::bad_request(
            "invalid_payment_id",
            format!(
                "{field} is not a Pi payment identifier (those are 28 letters and digits); send the id Pi's SDK passed to the callback: {}",
                kind.example()
            ),
        ));
    }
    Ok(id)
}

fn payment_id(obj: &Map<String, Value>, kind: CallbackKind) -> Result<PaymentId, ApiError> {
    match optional_string(obj, "paymentId", kind)? {
        Some(text) => parse_payment_id(text, "paymentId", kind),
        None => Err(ApiError::bad_request(
            "missing_payment_id",
            format!(
                "paymentId is missing; send the id Pi's SDK passed to the callback: {}",
                kind.example()
            ),
        )),
    }
}

fn parse_txid(text: &str, field: &str, kind: CallbackKind) -> Result<Txid, ApiError> {
    Txid::parse_lenient(text.trim()).map_err(|err| {
        ApiError::bad_request(
            "invalid_txid",
            format!("{field}: {err}; send {}", kind.example()),
        )
    })
}

/// `transactionId` or `txid` (both accepted; if both are sent they must agree).
fn flat_txid(obj: &Map<String, Value>, kind: CallbackKind) -> Result<Option<Txid>, ApiError> {
    let a = optional_string(obj, "transactionId", kind)?
        .map(|t| parse_txid(t, "transactionId", kind))
        .transpose()?;
    let b = optional_string(obj, "txid", kind)?
        .map(|t| parse_txid(t, "txid", kind))
        .transpose()?;
    match (a, b) {
        (Some(a), Some(b)) if a != b => Err(ApiError::bad_request(
            "conflicting_txid",
            "transactionId and txid differ; send one transaction id".to_string(),
        )),
        (a, b) => Ok(a.or(b)),
    }
}

/// `{paymentId, transactionId}` or `{payment: PaymentDTO}`; from a DTO only `identifier`
/// and `transaction.txid` are read: the rest is the client's word and is re-read from Pi.
fn incomplete(obj: &Map<String, Value>) -> Result<(PaymentId, Option<Txid>), ApiError> {
    let kind = CallbackKind::Incomplete;
    let flat_id = optional_string(obj, "paymentId", kind)?
        .map(|t| parse_payment_id(t, "paymentId", kind))
        .transpose()?;
    let flat_tx = flat_txid(obj, kind)?;
    let (dto_id, dto_tx) = match obj.get("payment") {
        None | Some(Value::Null) => (None, None),
        Some(Value::Object(dto)) => {
            let id = match dto.get("identifier") {
                Some(Value::String(s)) => Some(parse_payment_id(s, "payment.identifier", kind)?),
                None | Some(Value::Null) => None,
                Some(_) => return Err(bad_field(kind, "payment.identifier", "must be a string")),
            };
            let tx = match dto.get("transaction") {
                None | Some(Value::Null) => None,
                Some(Value::Object(tx)) => match tx.get("txid") {
                    Some(Value::String(s)) => {
                        Some(parse_txid(s, "payment.transaction.txid", kind)?)
                    }
                    None | Some(Value::Null) => None,
                    Some(_) => {
                        return Err(bad_field(
                            kind,
                            "payment.transaction.txid",
                            "must be a string",
                        ));
                    }
                },
                Some(_) => {
                    return Err(bad_field(
                        kind,
                        "payment.transaction",
                        "must be an object or null",
                    ));
                }
            };
            (id, tx)
        }
        Some(_) => return Err(bad_field(kind, "payment", "must be a PaymentDTO object")),
    };
    let id = match (flat_id, dto_id) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(
                "conflicting_payment_id",
                "paymentId and payment.identifier differ; send one payment",
            ));
        }
        (Some(a), _) => a,
        (None, Some(b)) => b,
        (None, None) => {
            return Err(ApiError::bad_request(
                "missing_payment_id",
                format!(
                    "incomplete needs the payment Pi's SDK passed to onIncompletePaymentFound: send {}",
                    kind.example()
                ),
            ));
        }
    };
    let tx = match (flat_tx, dto_tx) {
        (Some(a), Some(b)) if a != b => {
            return Err(ApiError::bad_request(
                "conflicting_txid",
                "transactionId and payment.transaction.txid differ; send one transaction id",
            ));
        }
        (a, b) => a.or(b),
    };
    Ok((id, tx))
}

/// The SDK's error report as compact JSON, cut to [`MAX_ERROR_REPORT`] bytes on a char boundary.
fn error_report(value: &Value) -> String {
    let mut text = match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    if text.len() > MAX_ERROR_REPORT {
        let mut cut = MAX_ERROR_REPORT;
        while !text.is_char_boundary(cut) {
            cut -= 1;
        }
        text.truncate(cut);
    }
    text
}

#[cfg(test)]
mod tests {
    use crate::callbacks::body::*;
    use serde_json::json;

    const ID: &str = "abcDEF0123456789abcdef012345";
    fn tx() -> String {
        "ab".repeat(32)
    }
    fn parse(kind: CallbackKind, body: Value) -> Result<Callback, ApiError> {
        parse_callback(kind, &body, None)
    }

    #[test]
    fn approve_takes_body_token_before_bearer() {
        let bearer = AccessToken::new("from-header");
        let body = json!({"paymentId": ID, "accessToken": "from-body"});
        let cb = parse_callback(CallbackKind::Approve, &body, bearer.clone()).unwrap();
        assert!(
            matches!(cb, Callback::Approve { credential: ApproveCredential::AccessToken(t), .. } if t.expose() == "from-body")
        );
        let cb = parse_callback(CallbackKind::Approve, &json!({"paymentId": ID}), bearer).unwrap();
        assert!(
            matches!(cb, Callback::Approve { credential: ApproveCredential::AccessToken(t), .. } if t.expose() == "from-header")
        );
        let cb = parse(
            CallbackKind::Approve,
            json!({"paymentId": ID, "accessToken": null}),
        )
        .unwrap();
        assert!(matches!(
            cb,
            Callback::Approve {
                credential: ApproveCredential::Missing,
                ..
            }
        ));
    }

    #[test]
    fn complete_accepts_both_spellings() {
        for field in ["transactionId", "txid"] {
            let cb = parse(
                CallbackKind::Complete,
                json!({"paymentId": ID, field: tx().to_uppercase()}),
            );
            assert!(
                matches!(cb.unwrap(), Callback::Complete { txid, .. } if txid.as_str() == tx())
            );
        }
        let err = parse(CallbackKind::Complete, json!({"paymentId": ID})).unwrap_err();
        assert_eq!(err.code(), "missing_txid");
        let both = json!({"paymentId": ID, "txid": tx(), "transactionId": "cd".repeat(32)});
        assert_eq!(
            parse(CallbackKind::Complete, both).unwrap_err().code(),
            "conflicting_txid"
        );
    }

    #[test]
    fn incomplete_reads_only_id_and_txid_from_dto() {
        let dto = json!({"payment": {"identifier": ID, "amount": 1000, "user_uid": "x",
            "transaction": {"txid": tx(), "verified": true, "_link": "http://x"}}});
        let cb = parse(CallbackKind::Incomplete, dto).unwrap();
        assert!(
            matches!(cb, Callback::Incomplete { payment_id, txid: Some(t), .. }
            if payment_id.as_str() == ID && t.as_str() == tx())
        );
        let null = json!({"paymentId": ID, "transactionId": null});
        assert!(matches!(
            parse(CallbackKind::Incomplete, null).unwrap(),
            Callback::Incomplete { txid: None, .. }
        ));
        let no_tx = json!({"payment": {"identifier": ID, "transaction": null}});
        assert!(matches!(
            parse(CallbackKind::Incomplete, no_tx).unwrap(),
            Callback::Incomplete { txid: None, .. }
        ));
        let err = parse(CallbackKind::Incomplete, json!({"payment": {"amount": 1}})).unwrap_err();
        assert_eq!(err.code(), "missing_payment_id");
    }

    #[test]
    fn error_keeps_any_report() {
        for report in [json!({}), json!("boom"), json!([1, 2]), json!(null)] {
            assert!(
                parse(
                    CallbackKind::Error,
                    json!({"paymentId": ID, "error": report})
                )
                .is_ok()
            );
        }
        assert!(parse(CallbackKind::Error, json!({"paymentId": ID})).is_ok());
        let long = "x".repeat(10_000);
        let cb = parse(CallbackKind::Error, json!({"paymentId": ID, "error": long})).unwrap();
        assert!(matches!(cb, Callback::Error { error, .. } if error.len() == MAX_ERROR_REPORT));
    }

    #[test]
    fn bad_bodies_say_what_to_send() {
        let cases = [
            (json!([]), "invalid_body"),
            (json!({}), "missing_payment_id"),
            (json!({"paymentId": 42}), "invalid_body"),
            (json!({"paymentId": "has space"}), "invalid_payment_id"),
            (json!({"paymentId": "short1"}), "invalid_payment_id"),
            (json!({"paymentId": "a".repeat(41)}), "invalid_payment_id"),
            (json!({"paymentId": ID, "accessToken": 7}), "invalid_body"),
        ];
        for (body, code) in cases {
            let err = parse(CallbackKind::Approve, body.clone()).unwrap_err();
            assert_eq!(err.code(), code, "{body}");
            assert!(err.to_string().contains("paymentId"), "{err}");
        }
    }
}
