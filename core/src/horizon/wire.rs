//! Horizon's JSON as it arrives (the serde shapes, private to the client) and its reading into
//! our records: amounts parsed from Horizon's `"2.5000000"` text exactly, never through a float,
//! and the answer to `POST /transactions` classified into a verdict.

use super::error::SubmitError;
use super::records::{SubmitOk, TxInfo};
use crate::amount::STROOPS_PER_PI;
use crate::stellar::TxFailure;
use serde::Deserialize;

/// `GET /accounts/{id}`.
#[derive(Deserialize)]
pub(super) struct AccountJson {
    // Horizon sends both; either identifies the account.
    #[serde(default)]
    pub(super) id: Option<String>,
    #[serde(default)]
    pub(super) account_id: Option<String>,
    pub(super) sequence: String,
    #[serde(default)]
    pub(super) balances: Vec<BalanceJson>,
}

/// One entry of an account's `balances`.
#[derive(Deserialize)]
pub(super) struct BalanceJson {
    pub(super) balance: String,
    pub(super) asset_type: String,
}

/// `GET /fee_stats` (only the field we use).
#[derive(Deserialize)]
pub(super) struct FeeStatsJson {
    pub(super) last_ledger_base_fee: NumOrString,
}

/// A ledger record of `GET /ledgers` (only the fields we use).
#[derive(Deserialize)]
pub(super) struct LedgerJson {
    pub(super) sequence: u32,
    pub(super) closed_at: String,
}

/// A number Horizon may send as a JSON number or as text.
#[derive(Deserialize)]
#[serde(untagged)]
pub(super) enum NumOrString {
    Num(i64),
    Str(String),
}

/// A transaction record.
#[derive(Deserialize)]
pub(super) struct TxJson {
    pub(super) hash: String,
    pub(super) ledger: u32,
    #[serde(default = "yes")]
    pub(super) successful: bool,
    #[serde(default)]
    pub(super) memo_type: Option<String>,
    #[serde(default)]
    pub(super) memo: Option<String>,
    #[serde(default)]
    pub(super) source_account: String,
    #[serde(default)]
    pub(super) created_at: String,
    #[serde(default)]
    pub(super) paging_token: String,
}

/// serde default of `successful` when a record omits it: successful.
fn yes() -> bool {
    true
}

/// An operation record of `/transactions/{hash}/payments` (payment or create_account fields).
#[derive(Deserialize)]
pub(super) struct OpJson {
    #[serde(rename = "type")]
    pub(super) kind: String,
    #[serde(default)]
    pub(super) from: Option<String>,
    #[serde(default)]
    pub(super) to: Option<String>,
    #[serde(default)]
    pub(super) amount: Option<String>,
    #[serde(default)]
    pub(super) asset_type: Option<String>,
    #[serde(default)]
    pub(super) funder: Option<String>,
    #[serde(default)]
    pub(super) account: Option<String>,
    #[serde(default)]
    pub(super) starting_balance: Option<String>,
}

/// A HAL listing: `{"_embedded": {"records": [...]}}`.
#[derive(Deserialize)]
pub(super) struct Embedded<T> {
    #[serde(rename = "_embedded")]
    pub(super) embedded: Records<T>,
}

/// The records of a listing.
#[derive(Deserialize)]
pub(super) struct Records<T> {
    pub(super) records: Vec<T>,
}

impl From<TxJson> for TxInfo {
    fn from(t: TxJson) -> TxInfo {
        TxInfo {
            hash: t.hash,
            ledger: t.ledger,
            successful: t.successful,
            memo_type: t.memo_type.unwrap_or_else(|| "none".to_string()),
            memo: t.memo,
            source_account: t.source_account,
            created_at: t.created_at,
            paging_token: t.paging_token,
        }
    }
}

/// Parse Horizon's amount text (`"2.5000000"`, `"0"`, `"100"`) into stroops exactly.
pub fn parse_stroops(text: &str) -> Option<i64> {
    let (whole, frac) = match text.split_once('.') {
        Some((_, "")) => return None,
        Some(parts) => parts,
        None => (text, ""),
    };
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if whole.is_empty() || !digits(whole) || !digits(frac) || frac.len() > 7 {
        return None;
    }
    let whole: i64 = whole.parse().ok()?;
    let frac_stroops: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<7}").parse().ok()?
    };
    whole
        .checked_mul(STROOPS_PER_PI)
        .and_then(|w| w.checked_add(frac_stroops))
}

/// Turn Horizon's answer to `POST /transactions` into our verdict.
pub(super) fn classify_submit(status: u16, body: &[u8]) -> Result<SubmitOk, SubmitError> {
    let json: Option<serde_json::Value> = serde_json::from_slice(body).ok();
    if (200..300).contains(&status) {
        let Some(v) = json else {
            return Err(SubmitError::Transport(format!(
                "Horizon answered {status} with a body that is not JSON"
            )));
        };
        let hash = v["hash"].as_str().unwrap_or_default().to_string();
        let ledger = v["ledger"]
            .as_u64()
            .and_then(|l| u32::try_from(l).ok())
            .unwrap_or(0);
        if hash.is_empty() {
            return Err(SubmitError::Transport(format!(
                "Horizon answered {status} without a transaction hash (async submission?)"
            )));
        }
        return Ok(SubmitOk {
            hash,
            ledger,
            successful: v["successful"].as_bool().unwrap_or(true),
        });
    }
    let v = json.unwrap_or(serde_json::Value::Null);
    let kind = v["type"]
        .as_str()
        .and_then(|t| t.rsplit('/').next())
        .unwrap_or("")
        .to_string();
    let detail = problem_detail(body);
    match status {
        504 => Err(SubmitError::Timeout),
        400 if kind == "transaction_failed" || !v["extras"]["result_codes"].is_null() => {
            let extras = &v["extras"];
            match TxFailure::from_horizon_extras(extras) {
                Some(failure) => Err(SubmitError::Failed {
                    failure,
                    result_xdr: extras["result_xdr"].as_str().map(str::to_string),
                }),
                None => Err(SubmitError::Malformed(detail)),
            }
        }
        429 => Err(SubmitError::Transport(format!(
            "rate limited (429): {detail}"
        ))),
        400..=499 => Err(SubmitError::Malformed(format!("{status} {detail}"))),
        _ => Err(SubmitError::Transport(format!("HTTP {status}: {detail}"))),
    }
}

/// A short description of a problem body: `title: detail`, or the start of the text.
pub(super) fn problem_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let title = v["title"].as_str().unwrap_or("");
        let detail = v["detail"].as_str().unwrap_or("");
        if !title.is_empty() || !detail.is_empty() {
            return format!("{title}: {detail}");
        }
    }
    String::from_utf8_lossy(body).chars().take(200).collect()
}

#[cfg(test)]
mod tests {
    use crate::horizon::error::SubmitError;
    use crate::horizon::records::SubmitOk;
    use crate::horizon::wire::{classify_submit, parse_stroops};
    use crate::stellar::TxFailure;
    use serde_json::json;

    #[test]
    fn amounts_are_exact() {
        assert_eq!(parse_stroops("2.5000000"), Some(25_000_000));
        assert_eq!(parse_stroops("0.0000001"), Some(1));
        assert_eq!(parse_stroops("100"), Some(1_000_000_000));
        assert_eq!(parse_stroops("0"), Some(0));
        assert_eq!(parse_stroops("0.1"), Some(1_000_000));
        assert_eq!(parse_stroops("922337203685.4775807"), Some(i64::MAX));
        for bad in [
            "",
            ".5",
            "1.",
            "-1",
            "1e7",
            "0.00000001",
            "1,5",
            "922337203685.4775808",
        ] {
            assert_eq!(parse_stroops(bad), None, "{bad}");
        }
        assert_eq!(parse_stroops("1.0"), Some(10_000_000));
    }

    #[test]
    fn classifies_submit_answers() {
        let ok = json!({"hash": "ab", "ledger": 7, "successful": true}).to_string();
        assert_eq!(
            classify_submit(200, ok.as_bytes()),
            Ok(SubmitOk {
                hash: "ab".into(),
                ledger: 7,
                successful: true
            })
        );
        let failed = json!({"type": "https://stellar.org/horizon-errors/transaction_failed",
            "title": "Transaction Failed", "status": 400,
            "extras": {"envelope_xdr": "x", "result_xdr": "AAAA",
                "result_codes": {"transaction": "tx_failed", "operations": ["op_underfunded"]}}})
        .to_string();
        let err = classify_submit(400, failed.as_bytes()).unwrap_err();
        assert_eq!(
            err,
            SubmitError::Failed {
                failure: TxFailure::Failed {
                    ops: vec!["op_underfunded".into()]
                },
                result_xdr: Some("AAAA".into())
            }
        );
        assert!(!err.may_have_landed());
        let too_early = json!({"type": "transaction_failed",
            "extras": {"result_codes": {"transaction": "tx_too_early"}}})
        .to_string();
        assert!(
            classify_submit(400, too_early.as_bytes())
                .unwrap_err()
                .may_have_landed()
        );
        let malformed = json!({"type": "https://stellar.org/horizon-errors/transaction_malformed",
            "title": "Transaction Malformed", "detail": "bad xdr"})
        .to_string();
        assert!(matches!(
            classify_submit(400, malformed.as_bytes()),
            Err(SubmitError::Malformed(_))
        ));
        assert_eq!(classify_submit(504, b"{}"), Err(SubmitError::Timeout));
        for status in [500, 502, 503, 429] {
            let e = classify_submit(status, b"<html>oops</html>").unwrap_err();
            assert!(matches!(e, SubmitError::Transport(_)), "{status}");
            assert!(e.may_have_landed());
        }
    }
}

/// Property tests: whatever Horizon (or something in its place) answers, reading it gives a
/// record or an error, never a panic; amounts are read exactly or not at all.
#[cfg(test)]
mod fuzz {
    use crate::fuzzing::{body_bytes, config, json_value, weird_text};
    use crate::horizon::error::SubmitError;
    use crate::horizon::wire::*;
    use crate::stellar::TxFailure;
    use base64::Engine;
    use proptest::prelude::*;
    use serde_json::{Map, Value, json};

    /// An object with the keys Horizon's answers have, each holding anything.
    fn horizon_shaped() -> impl Strategy<Value = Value> {
        let keys = prop::sample::select(vec![
            "hash",
            "ledger",
            "successful",
            "type",
            "title",
            "detail",
            "extras",
            "result_codes",
            "transaction",
            "operations",
            "result_xdr",
            "sequence",
            "balances",
            "balance",
            "asset_type",
            "id",
            "account_id",
            "last_ledger_base_fee",
            "closed_at",
            "_embedded",
            "records",
            "from",
            "to",
            "amount",
            "funder",
            "account",
            "starting_balance",
            "memo",
            "memo_type",
            "paging_token",
            "created_at",
        ]);
        let field = (
            keys,
            prop_oneof![json_value(), weird_text().prop_map(Value::String)],
        );
        prop::collection::vec(field, 0..10).prop_flat_map(|fields| {
            let mut obj = Map::new();
            for (k, v) in fields {
                obj.insert(k.to_string(), v);
            }
            // Sometimes one level down, where listings and problems keep their fields.
            prop_oneof![
                Just(Value::Object(obj.clone())),
                Just(json!({"_embedded": {"records": [Value::Object(obj.clone())]}})),
                Just(json!({"type": "transaction_failed", "extras": Value::Object(obj)})),
            ]
        })
    }

    fn answer_bytes() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            body_bytes(),
            horizon_shaped().prop_map(|v| v.to_string().into_bytes()),
        ]
    }

    proptest! {
        #![proptest_config(config())]

        #[test]
        fn fuzz_submit_answers_are_classified(status in any::<u16>(), body in answer_bytes()) {
            let verdict = classify_submit(status, &body);
            if let Ok(ok) = &verdict {
                prop_assert!((200..300).contains(&status));
                prop_assert!(!ok.hash.is_empty());
            }
            if (200..300).contains(&status)
                && serde_json::from_slice::<serde_json::Value>(&body).is_err()
            {
                prop_assert!(matches!(verdict, Err(SubmitError::Transport(_))));
            }
            if status == 504 {
                prop_assert_eq!(verdict, Err(SubmitError::Timeout));
            }
            let _ = problem_detail(&body);
        }

        #[test]
        fn fuzz_records_decode_or_fail(body in answer_bytes()) {
            let _ = serde_json::from_slice::<AccountJson>(&body);
            let _ = serde_json::from_slice::<FeeStatsJson>(&body);
            let _ = serde_json::from_slice::<Embedded<LedgerJson>>(&body);
            let _ = serde_json::from_slice::<Embedded<OpJson>>(&body);
            if let Ok(tx) = serde_json::from_slice::<TxJson>(&body) {
                let _ = crate::horizon::records::TxInfo::from(tx);
            }
            if let Ok(v) = serde_json::from_slice::<Value>(&body) {
                let _ = TxFailure::from_horizon_extras(&v);
                let _ = TxFailure::from_horizon_extras(&v["extras"]);
            }
        }

        #[test]
        fn fuzz_result_xdr_decodes_or_fails(
            bytes in prop::collection::vec(any::<u8>(), 0..300),
            text in weird_text(),
        ) {
            let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
            let _ = TxFailure::from_result_xdr(&b64);
            let _ = TxFailure::from_result_xdr(&text);
        }

        #[test]
        fn fuzz_amount_text_is_exact_or_refused(text in weird_text()) {
            if let Some(stroops) = parse_stroops(&text) {
                prop_assert!(stroops >= 0);
                let fixed = format!("{}.{:07}", stroops / STROOPS_PER_PI, stroops % STROOPS_PER_PI);
                prop_assert_eq!(parse_stroops(&fixed), Some(stroops));
            }
        }

        #[test]
        fn fuzz_every_balance_reads_back(stroops in 0i64..=i64::MAX) {
            let fixed = format!("{}.{:07}", stroops / STROOPS_PER_PI, stroops % STROOPS_PER_PI);
            prop_assert_eq!(parse_stroops(&fixed), Some(stroops));
        }
    }
}
