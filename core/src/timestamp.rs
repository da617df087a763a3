//! How our JSON writes times: RFC 3339 in UTC with milliseconds (`2026-11-24T10:00:00.000Z`),
//! in every API answer and webhook. It is the form webhook envelopes and Pi's own `created_at`
//! already use, and it cannot be mistaken for seconds or milliseconds. The ledger keeps unix
//! milliseconds; these serde adapters convert at the JSON edge (`#[serde(with = "…")]`).
//!
//! Reading accepts the string or a bare integer of unix milliseconds, so that JSON written
//! before this format (stored reports, old outbox rows) still reads.

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serializer};

/// `ms` (unix milliseconds) as RFC 3339 UTC with milliseconds; out-of-range values (never
/// written by the ledger) come out as the epoch rather than failing an answer.
pub fn rfc3339_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Unix milliseconds from the RFC 3339 text (any offset) or an integer of milliseconds.
fn parse_ms<E: serde::de::Error>(value: serde_json::Value) -> Result<i64, E> {
    match value {
        serde_json::Value::String(text) => chrono::DateTime::parse_from_rfc3339(&text)
            .map(|t| t.timestamp_millis())
            .map_err(|e| E::custom(format!("time {text:?} is not RFC 3339: {e}"))),
        serde_json::Value::Number(n) => n
            .as_i64()
            .ok_or_else(|| E::custom(format!("time {n} is not whole unix milliseconds"))),
        other => Err(E::custom(format!(
            "time must be an RFC 3339 string, not {other}"
        ))),
    }
}

/// A required time in unix milliseconds (`#[serde(with = "crate::timestamp::unix_ms")]`).
pub mod unix_ms {
    use super::*;

    /// Write `ms` as RFC 3339.
    pub fn serialize<S: Serializer>(ms: &i64, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_ms(*ms))
    }

    /// Read RFC 3339 (or legacy integer milliseconds).
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<i64, D::Error> {
        parse_ms(serde_json::Value::deserialize(d)?)
    }
}

/// An optional time in unix milliseconds; `None` stays `null`.
pub mod unix_ms_opt {
    use super::*;

    /// Write `ms` as RFC 3339, or `null`.
    pub fn serialize<S: Serializer>(ms: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match ms {
            Some(ms) => s.serialize_str(&rfc3339_ms(*ms)),
            None => s.serialize_none(),
        }
    }

    /// Read RFC 3339 (or legacy integer milliseconds), or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Null => Ok(None),
            value => parse_ms(value).map(Some),
        }
    }
}

/// An optional time in unix **seconds** (a Stellar transaction's `max_time`); written as
/// RFC 3339 like every other time.
pub mod unix_s_opt {
    use super::*;

    /// Write `secs` as RFC 3339, or `null`.
    pub fn serialize<S: Serializer>(secs: &Option<i64>, s: S) -> Result<S::Ok, S::Error> {
        match secs {
            Some(secs) => s.serialize_str(&rfc3339_ms(secs.saturating_mul(1000))),
            None => s.serialize_none(),
        }
    }

    /// Read RFC 3339 (or legacy integer seconds), or `null`.
    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<i64>, D::Error> {
        match serde_json::Value::deserialize(d)? {
            serde_json::Value::Null => Ok(None),
            serde_json::Value::Number(n) => n
                .as_i64()
                .map(Some)
                .ok_or_else(|| D::Error::custom(format!("time {n} is not whole seconds"))),
            value => parse_ms::<D::Error>(value).map(|ms| Some(ms.div_euclid(1000))),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::timestamp::*;

    #[derive(serde::Serialize, serde::Deserialize, PartialEq, Debug)]
    struct T {
        #[serde(with = "unix_ms")]
        at: i64,
        #[serde(with = "unix_ms_opt")]
        maybe: Option<i64>,
    }

    #[test]
    fn times_are_rfc3339_utc_with_millis_and_read_back() {
        let t = T {
            at: 1_700_000_000_123,
            maybe: None,
        };
        let json = serde_json::to_value(&t).unwrap();
        assert_eq!(
            json,
            serde_json::json!({"at": "2023-11-14T22:13:20.123Z", "maybe": null})
        );
        assert_eq!(serde_json::from_value::<T>(json).unwrap(), t);
        let legacy: T = serde_json::from_str(r#"{"at": 1700000000123, "maybe": 5}"#).unwrap();
        assert_eq!(legacy.maybe, Some(5));
        assert!(serde_json::from_str::<T>(r#"{"at": "yesterday", "maybe": null}"#).is_err());
    }
}
