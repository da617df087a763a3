//! Identifiers with invariants. A string from a request becomes one of these at the edge, or
//! the request is refused with a clear error; inside, code never re-checks them.

use rand::Rng;
use std::fmt;

/// Why a text is not a valid identifier of the named kind.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} {value:?} is invalid: {expected}")]
pub struct IdError {
    pub kind: &'static str,
    pub value: String,
    pub expected: &'static str,
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $expected:literal, $check:expr) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// Validate `text`; the error names the field and says what a valid one looks like.
            pub fn parse(text: &str) -> Result<$name, IdError> {
                let check: fn(&str) -> bool = $check;
                if check(text) {
                    Ok($name(text.to_string()))
                } else {
                    // Cap what we echo back: ids arrive from untrusted clients.
                    let value: String = text.chars().take(80).collect();
                    Err(IdError { kind: $kind, value, expected: $expected })
                }
            }

            /// The identifier's text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = IdError;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                $name::parse(s)
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = String::deserialize(d)?;
                $name::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

fn is_alnum(s: &str, min: usize, max: usize) -> bool {
    (min..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

string_id!(
    /// Pi's payment identifier (28 alphanumerics today; up to 64 accepted). It is also the
    /// text memo of the payment's blockchain transaction.
    PaymentId,
    "paymentId",
    "Pi payment identifiers are 1 to 64 letters and digits, as Pi's SDK hands them to onReadyForServerApproval",
    |s| is_alnum(s, 1, 64)
);

string_id!(
    /// A Stellar transaction hash: 64 hex digits (kept lowercase).
    Txid,
    "txid",
    "a transaction id is the 64-hex-digit hash Pi's SDK passes to onReadyForServerCompletion",
    |s| s.len() == 64 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
);

string_id!(
    /// A Pioneer's app-scoped user id, as `/v2/me` returns it.
    Uid,
    "uid",
    "a Pi uid is 1 to 128 printable characters",
    |s| (1..=128).contains(&s.len()) && !s.chars().any(char::is_control)
);

string_id!(
    /// Our order id, `ord_` + 20 alphanumerics.
    OrderId,
    "orderId",
    "order ids look like ord_ followed by 20 letters and digits, as POST /orders returned them",
    |s| s.strip_prefix("ord_").is_some_and(|r| is_alnum(r, 20, 20))
);

impl Txid {
    /// Like [`Txid::parse`] but accepting uppercase hex, which some clients send.
    pub fn parse_lenient(text: &str) -> Result<Txid, IdError> {
        Txid::parse(&text.to_ascii_lowercase())
    }
}

impl OrderId {
    /// A fresh random order id.
    pub fn generate() -> OrderId {
        OrderId(format!("ord_{}", random_alnum(20)))
    }
}

/// `n` random ASCII letters and digits, for ids we mint.
pub fn random_alnum(n: usize) -> String {
    rand::thread_rng()
        .sample_iter(rand::distributions::Alphanumeric)
        .take(n)
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use crate::ids::*;

    #[test]
    fn payment_ids() {
        assert!(PaymentId::parse("abcDEF0123456789abcdef012345").is_ok());
        for bad in ["", "has space", "../etc/passwd", "ünïcode", &"a".repeat(65)] {
            let err = PaymentId::parse(bad).unwrap_err();
            assert_eq!(err.kind, "paymentId");
        }
    }

    #[test]
    fn txids() {
        let hex = "a".repeat(64);
        assert!(Txid::parse(&hex).is_ok());
        assert!(Txid::parse(&"A".repeat(64)).is_err());
        assert_eq!(Txid::parse_lenient(&"A".repeat(64)).unwrap().as_str(), hex);
        assert!(Txid::parse("abc").is_err());
    }

    #[test]
    fn order_ids_round_trip() {
        let id = OrderId::generate();
        assert_eq!(OrderId::parse(id.as_str()).unwrap(), id);
        assert!(OrderId::parse("ord_short").is_err());
    }

    #[test]
    fn deserialize_validates() {
        assert!(serde_json::from_str::<PaymentId>("\"bad id\"").is_err());
        assert!(serde_json::from_str::<Uid>("\"user-1\"").is_ok());
    }
}
