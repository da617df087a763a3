//! Exact Pi amounts. Pi has 7 decimals (1 Pi = 10,000,000 stroops); money is never an `f64`
//! here, and amounts from Pi's JSON are parsed from the number's text, not through a float.

use serde::de::Error as _;
use serde_json::value::RawValue;
use std::fmt;
use std::str::FromStr;

/// Stroops in one Pi.
pub const STROOPS_PER_PI: i64 = 10_000_000;

/// The longest amount text accepted. The largest amount (922337203685.4775807) has 20
/// characters; the rest leaves room for leading and trailing zeros, a sign and an exponent, and
/// bounds what parsing may allocate whatever a client sends.
pub const MAX_AMOUNT_TEXT_LEN: usize = 64;

/// The largest exponent magnitude accepted (`1e-7`, `5e3`): with at most
/// [`MAX_AMOUNT_TEXT_LEN`] digits, any exact amount is reachable within it, and refusing larger
/// ones before shifting keeps `1e-2147483648` from allocating gigabytes of zeros.
pub const MAX_AMOUNT_EXPONENT: u32 = 100;

/// A strictly positive amount of Pi, held as whole stroops.
///
/// The invariant (> 0, fits in i64, at most 7 decimals) is checked on every way in, so code
/// holding a `PiAmount` never re-validates it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PiAmount(i64);

/// Why a text is not a valid Pi amount.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    #[error("amount {0:?} is not a decimal number: write it like 3.14 (at most 7 decimals)")]
    NotANumber(String),
    #[error("amount {0:?} has more than 7 decimals: Pi amounts stop at 0.0000001")]
    TooPrecise(String),
    #[error("amount {0:?} must be greater than zero")]
    NotPositive(String),
    #[error("amount {0:?} is too large")]
    TooLarge(String),
    #[error(
        "amount text is {0} characters long; write it with at most {MAX_AMOUNT_TEXT_LEN}, like 3.14"
    )]
    TooLong(usize),
    #[error(
        "amount {0:?} has an exponent beyond ±{MAX_AMOUNT_EXPONENT}; write it as a plain decimal like 3.14"
    )]
    ExponentOutOfRange(String),
}

impl PiAmount {
    /// From whole stroops; `None` unless positive.
    pub fn from_stroops(stroops: i64) -> Option<PiAmount> {
        (stroops > 0).then_some(PiAmount(stroops))
    }

    /// The amount in stroops (always > 0).
    pub fn stroops(self) -> i64 {
        self.0
    }

    /// Parse a plain decimal such as `3.14`, `1`, `0.0000001` or a JSON number's text
    /// (`1e2` exponent forms are accepted when they are exact).
    /// Texts longer than [`MAX_AMOUNT_TEXT_LEN`] and exponents beyond [`MAX_AMOUNT_EXPONENT`]
    /// are refused before anything is allocated for them.
    pub fn parse(text: &str) -> Result<PiAmount, AmountError> {
        let text = text.trim();
        if text.len() > MAX_AMOUNT_TEXT_LEN {
            return Err(AmountError::TooLong(text.len()));
        }
        let stroops = parse_stroops(text)?;
        PiAmount::from_stroops(stroops).ok_or_else(|| AmountError::NotPositive(text.to_string()))
    }

    /// Parse the raw text of a JSON value: a number, or a string holding a number.
    pub fn from_json_text(raw: &str) -> Result<PiAmount, AmountError> {
        let raw = raw.trim();
        let inner = raw
            .strip_prefix('"')
            .and_then(|s| s.strip_suffix('"'))
            .unwrap_or(raw);
        PiAmount::parse(inner)
    }

    /// Horizon's form: always 7 decimals, e.g. `2.5000000`.
    pub fn to_fixed7(self) -> String {
        format!("{}.{:07}", self.0 / STROOPS_PER_PI, self.0 % STROOPS_PER_PI)
    }

    /// Checked sum, for totals.
    pub fn checked_add(self, other: PiAmount) -> Option<PiAmount> {
        self.0.checked_add(other.0).map(PiAmount)
    }

    /// Checked multiplication by a quantity (order lines).
    pub fn checked_mul(self, n: u32) -> Option<PiAmount> {
        self.0
            .checked_mul(i64::from(n))
            .and_then(PiAmount::from_stroops)
    }
}

/// Turn a decimal text into stroops without floats. Accepts an optional sign, digits, an
/// optional fraction and an optional exponent (JSON allows `1.5e1`).
fn parse_stroops(text: &str) -> Result<i64, AmountError> {
    let bad = || AmountError::NotANumber(text.to_string());
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(i) => {
            let exp: i32 = text[i + 1..].parse().map_err(|_| bad())?;
            if exp.unsigned_abs() > MAX_AMOUNT_EXPONENT {
                return Err(AmountError::ExponentOutOfRange(text.to_string()));
            }
            (&text[..i], exp)
        }
        None => (text, 0),
    };
    let (negative, digits) = match mantissa.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, mantissa.strip_prefix('+').unwrap_or(mantissa)),
    };
    let (int_part, frac_part) = digits.split_once('.').unwrap_or((digits, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (int_part.is_empty() && frac_part.is_empty())
        || !all_digits(int_part)
        || !all_digits(frac_part)
    {
        return Err(bad());
    }
    // Shift the decimal point by the exponent, then by 7 places to reach stroops.
    let mut all: String = format!("{int_part}{frac_part}");
    let mut point = i64::try_from(int_part.len()).map_err(|_| bad())? + i64::from(exponent) + 7;
    if point < 0 {
        all.insert_str(0, &"0".repeat(usize::try_from(-point).map_err(|_| bad())?));
        point = 0;
    }
    let point = usize::try_from(point).map_err(|_| bad())?;
    if point > 40 {
        return Err(AmountError::TooLarge(text.to_string()));
    }
    if all.len() < point {
        all.push_str(&"0".repeat(point - all.len()));
    }
    let (whole, rest) = all.split_at(point);
    if rest.bytes().any(|b| b != b'0') {
        return Err(AmountError::TooPrecise(text.to_string()));
    }
    let whole = whole.trim_start_matches('0');
    let value: i64 = if whole.is_empty() {
        0
    } else {
        whole
            .parse()
            .map_err(|_| AmountError::TooLarge(text.to_string()))?
    };
    if negative && value != 0 {
        return Err(AmountError::NotPositive(text.to_string()));
    }
    Ok(value)
}

impl FromStr for PiAmount {
    type Err = AmountError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        PiAmount::parse(s)
    }
}

/// The shortest exact decimal: `2.5`, `1`, `0.0000001`.
impl fmt::Display for PiAmount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let fixed = self.to_fixed7();
        let trimmed = fixed.trim_end_matches('0').trim_end_matches('.');
        f.write_str(trimmed)
    }
}

/// Serialized as a decimal string (`"2.5"`): every answer and webhook of ours carries amounts
/// as strings, because a JSON number near the i64 limit loses digits in JavaScript and in
/// `serde_json::Value`. Pi's own wire format wants numbers: see [`as_json_number`].
impl serde::Serialize for PiAmount {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// Serialize an amount as a JSON number with its exact decimal text, the form Pi's Platform
/// API uses (`POST /v2/payments`, `PaymentDTO`); `#[serde(serialize_with = "…")]` on Pi's DTOs
/// only. Works with serde_json.
pub fn as_json_number<S: serde::Serializer>(amount: &PiAmount, s: S) -> Result<S::Ok, S::Error> {
    let raw = RawValue::from_string(amount.to_string()).map_err(serde::ser::Error::custom)?;
    serde::Serialize::serialize(&raw, s)
}

/// In the API's OpenAPI document: a decimal string, as [`Serialize`](serde::Serialize) writes it.
impl utoipa::PartialSchema for PiAmount {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .description(Some(
                "An exact amount of Pi as a decimal string (at most 7 decimals), e.g. \"3.14\"",
            ))
            .examples(["3.14"])
            .into()
    }
}

impl utoipa::ToSchema for PiAmount {}

/// Deserialized from a JSON number (or numeric string) by its text, never through a float.
/// Works with serde_json; other formats should carry amounts as strings.
impl<'de> serde::Deserialize<'de> for PiAmount {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let raw: Box<RawValue> = serde::Deserialize::deserialize(d)?;
        PiAmount::from_json_text(raw.get()).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use crate::amount::*;

    #[test]
    fn parses_exact_decimals() {
        assert_eq!(PiAmount::parse("3.14").unwrap().stroops(), 31_400_000);
        assert_eq!(PiAmount::parse("1").unwrap().stroops(), 10_000_000);
        assert_eq!(PiAmount::parse("0.0000001").unwrap().stroops(), 1);
        assert_eq!(PiAmount::parse("0.10000000").unwrap().stroops(), 1_000_000);
        assert_eq!(PiAmount::parse("1.5e1").unwrap().stroops(), 150_000_000);
        assert_eq!(PiAmount::parse("25e-7").unwrap().stroops(), 25);
        assert_eq!(PiAmount::parse(".5").unwrap().stroops(), 5_000_000);
    }

    #[test]
    fn rejects_what_is_not_an_amount() {
        for bad in ["", ".", "abc", "1.2.3", "1,5", "0x10", "NaN", "1e", "- 1"] {
            assert!(
                matches!(PiAmount::parse(bad), Err(AmountError::NotANumber(_))),
                "{bad}"
            );
        }
        assert!(matches!(
            PiAmount::parse("0.00000001"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            PiAmount::parse("1e-8"),
            Err(AmountError::TooPrecise(_))
        ));
        assert!(matches!(
            PiAmount::parse("0"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            PiAmount::parse("-1"),
            Err(AmountError::NotPositive(_))
        ));
        assert!(matches!(
            PiAmount::parse("1e40"),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(
            PiAmount::parse("99999999999999999999"),
            Err(AmountError::TooLarge(_))
        ));
    }

    /// `1e-2147483648` once took 11 s and 4.6 GB: absurd exponents and lengths are refused
    /// before the decimal point is shifted.
    #[test]
    fn refuses_absurd_exponents_and_lengths_before_allocating() {
        for absurd in [
            "1e-2147483648",
            "1e2147483647",
            "0e-999999",
            "1e-101",
            "1E+101",
        ] {
            let err = PiAmount::parse(absurd).unwrap_err();
            assert!(
                matches!(err, AmountError::ExponentOutOfRange(_)),
                "{absurd}: {err:?}"
            );
            assert!(err.to_string().contains("plain decimal"), "{err}");
        }
        let long = format!("1.{}", "0".repeat(10_000_000));
        let started = std::time::Instant::now();
        assert_eq!(
            PiAmount::parse(&long),
            Err(AmountError::TooLong(long.len()))
        );
        let err = PiAmount::from_json_text(&format!("1{}", "0".repeat(100))).unwrap_err();
        assert!(matches!(err, AmountError::TooLong(101)), "{err:?}");
        assert!(!err.to_string().contains("0000000000"), "{err}");
        // Generous: the refusal itself is instant.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
        // Still exact within the bounds.
        assert_eq!(PiAmount::parse("1e-7").unwrap().stroops(), 1);
        assert_eq!(PiAmount::parse("1000e-10").unwrap().stroops(), 1);
        assert_eq!(PiAmount::parse("0.0001e4").unwrap().stroops(), 10_000_000);
        assert!(matches!(
            PiAmount::parse("1e100"),
            Err(AmountError::TooLarge(_))
        ));
        assert!(matches!(
            PiAmount::parse("1e-100"),
            Err(AmountError::TooPrecise(_))
        ));
    }

    #[test]
    fn formats_both_ways() {
        let a = PiAmount::from_stroops(25_000_000).unwrap();
        assert_eq!(a.to_string(), "2.5");
        assert_eq!(a.to_fixed7(), "2.5000000");
        assert_eq!(PiAmount::from_stroops(1).unwrap().to_string(), "0.0000001");
        assert_eq!(PiAmount::from_stroops(30_000_000).unwrap().to_string(), "3");
    }

    #[test]
    fn json_round_trip_is_exact() {
        #[derive(serde::Serialize, serde::Deserialize)]
        struct P {
            amount: PiAmount,
        }
        // 0.1 + 0.2 style values survive because no float is involved.
        let p: P = serde_json::from_str(r#"{"amount": 0.3000001}"#).unwrap();
        assert_eq!(p.amount.stroops(), 3_000_001);
        assert_eq!(
            serde_json::to_string(&p).unwrap(),
            r#"{"amount":"0.3000001"}"#
        );
        let s: P = serde_json::from_str(r#"{"amount": "4.2"}"#).unwrap();
        assert_eq!(s.amount.stroops(), 42_000_000);
        assert!(serde_json::from_str::<P>(r#"{"amount": 1.00000001}"#).is_err());
        assert!(serde_json::from_str::<P>(r#"{"amount": true}"#).is_err());
    }

    #[test]
    fn the_largest_amount_round_trips_exactly_through_json_values() {
        let max = PiAmount::from_stroops(i64::MAX).unwrap();
        assert_eq!(max.to_string(), "922337203685.4775807");
        // Through serde_json::Value (what json! answers are built from) as well as text.
        let value = serde_json::to_value(max).unwrap();
        assert_eq!(value, serde_json::json!("922337203685.4775807"));
        let back: PiAmount = serde_json::from_value(value).unwrap();
        assert_eq!(back, max);
        let text = serde_json::to_string(&max).unwrap();
        assert_eq!(serde_json::from_str::<PiAmount>(&text).unwrap(), max);
    }
}

/// Property tests: whatever text or JSON arrives, parsing answers quickly with an amount or an
/// error, and every amount survives its own decimal and JSON forms exactly.
#[cfg(test)]
mod fuzz {
    use crate::amount::*;
    use crate::fuzzing::{config, json_value, weird_text};
    use proptest::prelude::*;

    /// Texts shaped like numbers, with exponents far beyond any amount.
    fn numberish() -> impl Strategy<Value = String> {
        prop_oneof![
            weird_text(),
            "[-+]?[0-9]{0,30}\\.?[0-9]{0,30}[eE][-+]?[0-9]{1,20}",
            (any::<i64>(), any::<i32>()).prop_map(|(m, e)| format!("{m}e{e}")),
            (1i64..=i64::MAX, -120i32..120).prop_map(|(m, e)| format!("{m}e{e}")),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_any_text_is_an_amount_or_an_error(text in numberish()) {
            for amount in [PiAmount::parse(&text), PiAmount::from_json_text(&text)]
                .into_iter()
                .flatten()
            {
                prop_assert!(amount.stroops() > 0, "{text:?} gave {amount:?}");
            }
        }

        /// What the parser accepts it reads exactly: parsing its own output gives it back.
        #[test]
        fn fuzz_accepted_text_means_what_it_says(text in numberish()) {
            if let Ok(amount) = PiAmount::parse(&text) {
                prop_assert_eq!(PiAmount::parse(&amount.to_string()), Ok(amount));
            }
        }

        #[test]
        fn fuzz_every_amount_round_trips_exactly(stroops in 1i64..=i64::MAX) {
            let amount = PiAmount::from_stroops(stroops).unwrap();
            prop_assert_eq!(PiAmount::parse(&amount.to_string()), Ok(amount));
            prop_assert_eq!(PiAmount::parse(&amount.to_fixed7()), Ok(amount));
            // The same value in stroops with an exponent, as a JSON number may spell it.
            prop_assert_eq!(PiAmount::parse(&format!("{stroops}e-7")), Ok(amount));
            // Our JSON (a string), Pi's JSON (a number) and a serde_json::Value all keep it.
            let ours = serde_json::to_string(&amount).unwrap();
            prop_assert_eq!(serde_json::from_str::<PiAmount>(&ours).unwrap(), amount);
            let mut pis = Vec::new();
            as_json_number(&amount, &mut serde_json::Serializer::new(&mut pis)).unwrap();
            prop_assert_eq!(serde_json::from_slice::<PiAmount>(&pis).unwrap(), amount);
            let value = serde_json::to_value(amount).unwrap();
            prop_assert_eq!(serde_json::from_value::<PiAmount>(value).unwrap(), amount);
        }

        #[test]
        fn fuzz_any_json_deserializes_to_an_amount_or_an_error(value in json_value()) {
            let text = value.to_string();
            if let Ok(amount) = serde_json::from_str::<PiAmount>(&text) {
                prop_assert!(amount.stroops() > 0);
            }
            if let Ok(amount) = serde_json::from_value::<PiAmount>(value) {
                prop_assert!(amount.stroops() > 0);
            }
        }

        #[test]
        fn fuzz_any_bytes_deserialize_to_an_amount_or_an_error(
            bytes in prop::collection::vec(any::<u8>(), 0..200)
        ) {
            if let Ok(amount) = serde_json::from_slice::<PiAmount>(&bytes) {
                prop_assert!(amount.stroops() > 0);
            }
        }
    }
}
