//! Identifiers we mint for payouts and their batches. Like [`crate::ids`], a string from a
//! request becomes one of these at the edge or is refused with a clear error.

use crate::ids::{IdError, random_alnum};
use std::fmt;

fn prefixed_alnum(text: &str, prefix: &str) -> bool {
    text.strip_prefix(prefix)
        .is_some_and(|r| r.len() == 20 && r.bytes().all(|b| b.is_ascii_alphanumeric()))
}

macro_rules! minted_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal, $kind:literal, $expected:literal) => {
        $(#[$doc])*
        #[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            /// A fresh random id.
            pub fn generate() -> $name {
                $name(format!("{}{}", $prefix, random_alnum(20)))
            }

            /// Validate `text`; the error says what a valid one looks like.
            pub fn parse(text: &str) -> Result<$name, IdError> {
                if prefixed_alnum(text, $prefix) {
                    Ok($name(text.to_string()))
                } else {
                    Err(IdError {
                        kind: $kind,
                        value: text.chars().take(80).collect(),
                        expected: $expected,
                    })
                }
            }

            /// The id's text.
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

minted_id!(
    /// Our payout id, `po_` + 20 alphanumerics. It also travels in the Pi payment's metadata
    /// (`payout_id`), so a payment whose create answer was lost is recognised as ours.
    PayoutId,
    "po_",
    "payoutId",
    "payout ids look like po_ followed by 20 letters and digits, as POST /payouts returned them"
);

minted_id!(
    /// A bulk import's id, `bat_` + 20 alphanumerics.
    BatchId,
    "bat_",
    "batchId",
    "batch ids look like bat_ followed by 20 letters and digits, as POST /payouts/bulk returned them"
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let id = PayoutId::generate();
        assert_eq!(PayoutId::parse(id.as_str()).unwrap(), id);
        assert!(PayoutId::parse("po_short").is_err());
        assert!(PayoutId::parse(&format!("bat_{}", "a".repeat(20))).is_err());
        let b = BatchId::generate();
        assert!(b.as_str().starts_with("bat_"));
        assert!(serde_json::from_str::<PayoutId>("\"po_../../etc/passwd00000\"").is_err());
    }
}
