//! Exact Pi amounts: JSON number text and Horizon's seven-decimal text ⇄ integer stroops.
//! Money never goes through `f64` here, because a simulator that rounds would hide exactly the
//! bugs it exists to expose.

/// 1 Pi = 10,000,000 stroops.
pub const STROOPS_PER_PI: i64 = 10_000_000;

/// The number of decimals Pi amounts may have.
const DECIMALS: i64 = 7;

/// Parses the text of a JSON number (or a plain decimal such as a CLI flag) exactly into stroops.
///
/// Accepts `12`, `2.5`, `0.0000001`, `1e-7`, `2.50000000` (trailing zeros beyond 7 places are
/// exact, so they are fine). Returns `None` for negatives, for values with more than 7 significant
/// decimal places, for values that do not fit in an `i64` of stroops and for anything that is not
/// a number. Zero is returned as `Some(0)`; callers that need a positive amount check that.
pub fn parse_stroops(text: &str) -> Option<i64> {
    let text = text.trim();
    if text.starts_with('-') || text.starts_with('+') {
        return None;
    }
    let (mantissa, exponent) = match text.find(['e', 'E']) {
        Some(at) => (&text[..at], parse_exponent(&text[at + 1..])?),
        None => (text, 0),
    };
    let (int_part, frac_part) = match mantissa.split_once('.') {
        Some((i, f)) => (i, f),
        None => (mantissa, ""),
    };
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int_part.is_empty() || !all_digits(int_part) || !all_digits(frac_part) {
        return None;
    }
    if mantissa.contains('.') && frac_part.is_empty() {
        return None;
    }
    // value = digits × 10^(exponent − frac_len); stroops = value × 10^7.
    let digits = format!("{int_part}{frac_part}");
    let frac_len = i64::try_from(frac_part.len()).ok()?;
    let shift = DECIMALS + exponent - frac_len;
    let digits = digits.trim_start_matches('0');
    if digits.is_empty() {
        return Some(0);
    }
    let (kept, shift) = if shift < 0 {
        // Dropping digits is exact only if they are all zeros.
        let drop = usize::try_from(-shift).ok()?;
        if drop >= digits.len() {
            return None;
        }
        let (kept, dropped) = digits.split_at(digits.len() - drop);
        if dropped.bytes().any(|b| b != b'0') {
            return None;
        }
        (kept, 0)
    } else {
        (digits, shift)
    };
    if kept.len() > 19 || shift > 19 {
        return None;
    }
    let mut value: i64 = kept.parse().ok()?;
    for _ in 0..shift {
        value = value.checked_mul(10)?;
    }
    Some(value)
}

fn parse_exponent(text: &str) -> Option<i64> {
    let digits = text.strip_prefix(['+', '-']).unwrap_or(text);
    if digits.is_empty() || digits.len() > 4 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let value: i64 = digits.parse().ok()?;
    Some(if text.starts_with('-') { -value } else { value })
}

/// Formats stroops as the shortest exact decimal: `25000000` → `2.5`, `10000000` → `1`.
/// Used as the JSON number text of `PaymentDTO.amount`.
pub fn format_decimal(stroops: i64) -> String {
    let (sign, int, frac) = split_pi(stroops);
    if frac == 0 {
        return format!("{sign}{int}");
    }
    let frac = format!("{frac:07}");
    format!("{sign}{int}.{}", frac.trim_end_matches('0'))
}

/// Horizon's amount text, always seven decimals: `25000000` → `"2.5000000"`.
pub fn format_amount(stroops: i64) -> String {
    let (sign, int, frac) = split_pi(stroops);
    format!("{sign}{int}.{frac:07}")
}

/// The sign, whole Pi and remaining stroops of an amount, for the two text forms above.
fn split_pi(stroops: i64) -> (&'static str, u64, u64) {
    let sign = if stroops < 0 { "-" } else { "" };
    let abs = stroops.unsigned_abs();
    let per = STROOPS_PER_PI.unsigned_abs();
    (sign, abs / per, abs % per)
}

/// Horizon's amount text back to stroops: `"2.5"` → `25000000`; `None` for anything but a positive-or-zero decimal with ≤ 7 places.
pub fn parse_amount(text: &str) -> Option<i64> {
    let (int, frac) = match text.split_once('.') {
        Some((i, f)) => (i, f),
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if int.is_empty() || !digits(int) || !digits(frac) || frac.len() > 7 {
        return None;
    }
    if text.contains('.') && frac.is_empty() {
        return None;
    }
    let whole: i64 = int.parse().ok()?;
    let mut frac_value: i64 = if frac.is_empty() {
        0
    } else {
        frac.parse().ok()?
    };
    for _ in frac.len()..7 {
        frac_value *= 10;
    }
    whole.checked_mul(STROOPS_PER_PI)?.checked_add(frac_value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_exactly() {
        assert_eq!(parse_stroops("2.5"), Some(25_000_000));
        assert_eq!(parse_stroops("1"), Some(10_000_000));
        assert_eq!(parse_stroops("0.0000001"), Some(1));
        assert_eq!(parse_stroops("1e-7"), Some(1));
        assert_eq!(parse_stroops("1.5E2"), Some(1_500_000_000));
        assert_eq!(parse_stroops("2.50000000"), Some(25_000_000));
        assert_eq!(parse_stroops("0"), Some(0));
        assert_eq!(parse_stroops("0.00000001"), None);
        assert_eq!(parse_stroops("-1"), None);
        assert_eq!(parse_stroops("1."), None);
        assert_eq!(parse_stroops(".5"), None);
        assert_eq!(parse_stroops("\"1\""), None);
        assert_eq!(parse_stroops("99999999999999999999"), None);
        assert_eq!(parse_stroops("922337203685.4775807"), Some(i64::MAX));
        assert_eq!(parse_stroops("922337203685.4775808"), None);
    }

    #[test]
    fn formats_shortest() {
        assert_eq!(format_decimal(25_000_000), "2.5");
        assert_eq!(format_decimal(10_000_000), "1");
        assert_eq!(format_decimal(1), "0.0000001");
        assert_eq!(format_decimal(31_400_000), "3.14");
    }

    #[test]
    fn amounts_format_and_parse() {
        assert_eq!(format_amount(25_000_000), "2.5000000");
        assert_eq!(format_amount(1), "0.0000001");
        assert_eq!(format_amount(-15), "-0.0000015");
        assert_eq!(parse_amount("2.5"), Some(25_000_000));
        assert_eq!(parse_amount("0.0000001"), Some(1));
        assert_eq!(parse_amount("3"), Some(30_000_000));
        for bad in [
            "",
            "-1",
            "1.",
            ".5",
            "1.00000001",
            "1e3",
            "abc",
            " 1",
            "99999999999999",
        ] {
            assert_eq!(parse_amount(bad), None, "{bad}");
        }
    }
}
