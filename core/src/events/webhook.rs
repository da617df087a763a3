//! The JSON body a webhook carries, and the webhook signature.
//!
//! Signature (header `Pi-Payments-Signature`): `t=<unix seconds>,v1=<hex HMAC-SHA256>` over
//! `"{t}.{body}"` with `APP_WEBHOOK_SECRET`. The timestamp inside the MAC lets the app reject
//! replays older than a tolerance; `v1` leaves room for a future scheme.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// The HTTP header carrying the signature.
pub const SIGNATURE_HEADER: &str = "Pi-Payments-Signature";

/// The JSON body POSTed to `APP_WEBHOOK_URL` (and listed by `GET /events`); built from an
/// outbox row by `WebhookBody::from_row` (in `ledger::webhook_body`, so that this module does
/// not depend on the ledger, which depends on it).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct WebhookBody {
    /// The outbox id: unique and increasing; apps dedupe deliveries by it.
    pub id: i64,
    /// e.g. `payment.completed`.
    #[serde(rename = "type")]
    pub event_type: String,
    /// RFC 3339, UTC.
    pub created_at: String,
    /// The subject's snapshot (`{"payment": …, "order": …}` for payment events).
    pub data: serde_json::Value,
}

type HmacSha256 = Hmac<Sha256>;

fn mac(secret: &[u8], unix_ts: i64, body: &[u8]) -> HmacSha256 {
    // HMAC accepts keys of any length, so this cannot fail.
    let mut mac = match HmacSha256::new_from_slice(secret) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC takes keys of any length"),
    };
    mac.update(unix_ts.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    mac
}

/// The `Pi-Payments-Signature` value for `body` sent at `unix_ts` (seconds).
pub fn sign_webhook(secret: &[u8], unix_ts: i64, body: &[u8]) -> String {
    let tag = mac(secret, unix_ts, body).finalize().into_bytes();
    format!("t={unix_ts},v1={}", hex::encode(tag))
}

/// Why a webhook signature was refused (for apps using this crate, and for our tests).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignatureError {
    #[error("the signature header is not `t=<unix>,v1=<hex>`: send the header exactly as received")]
    Malformed,
    #[error(
        "the signature timestamp is {age_secs} s away from now, beyond the tolerance: check the clocks, or this is a replay"
    )]
    Expired { age_secs: i64 },
    #[error(
        "the signature does not match the body: check APP_WEBHOOK_SECRET and that the raw body is verified unmodified"
    )]
    Mismatch,
}

/// Check a `Pi-Payments-Signature` header against the raw body at `now_unix`, accepting a
/// timestamp at most `tolerance_secs` away. Compares in constant time; any `v1` entry may match
/// (several allow secret rotation).
pub fn verify_webhook(
    secret: &[u8],
    header: &str,
    body: &[u8],
    now_unix: i64,
    tolerance_secs: i64,
) -> Result<(), SignatureError> {
    let mut ts: Option<i64> = None;
    let mut sigs: Vec<Vec<u8>> = Vec::new();
    for part in header.split(',') {
        let (k, v) = part
            .trim()
            .split_once('=')
            .ok_or(SignatureError::Malformed)?;
        match k {
            "t" => ts = Some(v.parse().map_err(|_| SignatureError::Malformed)?),
            "v1" => sigs.push(hex::decode(v).map_err(|_| SignatureError::Malformed)?),
            _ => {} // unknown schemes are ignored
        }
    }
    let ts = ts.ok_or(SignatureError::Malformed)?;
    if sigs.is_empty() {
        return Err(SignatureError::Malformed);
    }
    let age = now_unix.saturating_sub(ts);
    if age.saturating_abs() > tolerance_secs {
        return Err(SignatureError::Expired { age_secs: age });
    }
    let expected = mac(secret, ts, body);
    // verify_slice compares in constant time.
    if sigs
        .iter()
        .any(|s| expected.clone().verify_slice(s).is_ok())
    {
        Ok(())
    } else {
        Err(SignatureError::Mismatch)
    }
}

#[cfg(test)]
mod tests {
    use crate::events::webhook::*;

    // Computed independently:
    // python3 -c 'import hmac,hashlib;print(hmac.new(b"whsec_test",b"1700000000.{\"id\":1}",hashlib.sha256).hexdigest())'
    const VECTOR: &str = "2f441ba4b3b2d50d28a9ab9d9fd8880376ecd1eb5d0435401553f5d8d0a5dcf8";

    #[test]
    fn signs_the_known_vector() {
        let sig = sign_webhook(b"whsec_test", 1_700_000_000, br#"{"id":1}"#);
        assert_eq!(sig, format!("t=1700000000,v1={VECTOR}"));
    }

    #[test]
    fn verifies_and_refuses() {
        let body = br#"{"id":1}"#;
        let header = sign_webhook(b"whsec_test", 1_700_000_000, body);
        assert_eq!(
            verify_webhook(b"whsec_test", &header, body, 1_700_000_100, 300),
            Ok(())
        );
        assert_eq!(
            verify_webhook(b"other", &header, body, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert_eq!(
            verify_webhook(b"whsec_test", &header, br#"{"id":2}"#, 1_700_000_000, 300),
            Err(SignatureError::Mismatch)
        );
        assert!(matches!(
            verify_webhook(b"whsec_test", &header, body, 1_700_001_000, 300),
            Err(SignatureError::Expired { .. })
        ));
        for bad in ["", "t=1", "v1=00", "t=x,v1=00", "t=1,v1=zz", "nonsense"] {
            assert_eq!(
                verify_webhook(b"whsec_test", bad, body, 1, 300),
                Err(SignatureError::Malformed),
                "{bad}"
            );
        }
        // A rotated secret: the second v1 matches.
        let rotated = format!("{header},v1={}", "00".repeat(32));
        assert_eq!(
            verify_webhook(b"whsec_test", &rotated, body, 1_700_000_000, 300),
            Ok(())
        );
    }
}
