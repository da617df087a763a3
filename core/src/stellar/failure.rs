//! Why Horizon refused or failed a transaction, and what that means for the payout: whether the
//! same envelope could still land (resubmit it) or never will (rebuild, after checking the chain).

use std::fmt;
use stellar_xdr::{
    CreateAccountResult, Limits, OperationResult, OperationResultTr, PaymentResult, ReadXdr,
    TransactionResult, TransactionResultResult,
};

/// A transaction failure as Horizon reports it in `extras.result_codes`.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "kind", content = "detail", rename_all = "snake_case")]
pub enum TxFailure {
    /// `tx_bad_seq`: the sequence is not the account's next one (another tx used it, or it is
    /// from the future). Nothing consumed; this envelope will never land.
    BadSeq,
    /// `tx_bad_auth`: missing/invalid signatures or the wrong network passphrase.
    BadAuth,
    /// `tx_too_late`: past `max_time`. This envelope will never land.
    TooLate,
    /// `tx_too_early`: before `min_time` (clock skew): resubmit the same envelope.
    TooEarly,
    /// `tx_insufficient_fee`: fee below the base fee.
    InsufficientFee,
    /// `tx_insufficient_balance`: the source cannot pay the fee (and keep its reserve).
    InsufficientBalance,
    /// `tx_failed`: it was applied in a ledger and an operation failed (`op_underfunded`,
    /// `op_no_destination`, …). Sequence and fee are consumed; nothing was paid.
    Failed {
        /// One code per operation, in order (`op_success` for those that would have succeeded).
        ops: Vec<String>,
    },
    /// Any other `tx_*` code, verbatim.
    Other(String),
}

/// Codes that are not in a dedicated variant but also mean "this envelope can never land".
const OTHER_DEFINITE: &[&str] = &[
    "tx_missing_operation",
    "tx_no_source_account",
    "tx_no_account",
    "tx_bad_auth_extra",
    "tx_malformed",
    "tx_not_supported",
    "tx_bad_sponsorship",
    "tx_bad_minseq_age_or_gap",
    "tx_soroban_invalid",
];

impl TxFailure {
    /// From Horizon's `result_codes.transaction` and `result_codes.operations`.
    pub fn from_result_codes(transaction: &str, operations: &[String]) -> TxFailure {
        match transaction {
            "tx_bad_seq" => TxFailure::BadSeq,
            "tx_bad_auth" => TxFailure::BadAuth,
            "tx_too_late" => TxFailure::TooLate,
            "tx_too_early" => TxFailure::TooEarly,
            "tx_insufficient_fee" => TxFailure::InsufficientFee,
            "tx_insufficient_balance" => TxFailure::InsufficientBalance,
            "tx_failed" => TxFailure::Failed {
                ops: operations.to_vec(),
            },
            other => TxFailure::Other(other.to_string()),
        }
    }

    /// From a Horizon problem's `extras` object (`{"result_codes": {"transaction", "operations"}}`),
    /// falling back to decoding `extras.result_xdr`. `None` if neither is usable.
    pub fn from_horizon_extras(extras: &serde_json::Value) -> Option<TxFailure> {
        let codes = &extras["result_codes"];
        if let Some(tx) = codes["transaction"].as_str() {
            let ops: Vec<String> = codes["operations"]
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default();
            return Some(TxFailure::from_result_codes(tx, &ops));
        }
        extras["result_xdr"]
            .as_str()
            .and_then(TxFailure::from_result_xdr)
    }

    /// From a base64 XDR `TransactionResult` (Horizon's `result_xdr`). `None` if it does not decode
    /// or the result is a success.
    pub fn from_result_xdr(result_b64: &str) -> Option<TxFailure> {
        let limits = Limits {
            depth: 100,
            len: result_b64.len(),
        };
        let result = TransactionResult::from_xdr_base64(result_b64.trim(), limits).ok()?;
        let code = tx_code(&result.result);
        match &result.result {
            TransactionResultResult::TxSuccess(_)
            | TransactionResultResult::TxFeeBumpInnerSuccess(_) => None,
            TransactionResultResult::TxFailed(ops) => Some(TxFailure::Failed {
                ops: ops.iter().map(op_code).collect(),
            }),
            _ => Some(TxFailure::from_result_codes(&code, &[])),
        }
    }

    /// Horizon's code for it (`tx_bad_seq`, `tx_failed`, …).
    pub fn code(&self) -> &str {
        match self {
            TxFailure::BadSeq => "tx_bad_seq",
            TxFailure::BadAuth => "tx_bad_auth",
            TxFailure::TooLate => "tx_too_late",
            TxFailure::TooEarly => "tx_too_early",
            TxFailure::InsufficientFee => "tx_insufficient_fee",
            TxFailure::InsufficientBalance => "tx_insufficient_balance",
            TxFailure::Failed { .. } => "tx_failed",
            TxFailure::Other(code) => code,
        }
    }

    /// The operation codes that are not `op_success` (for `tx_failed`).
    pub fn failed_ops(&self) -> Vec<&str> {
        match self {
            TxFailure::Failed { ops } => ops
                .iter()
                .map(String::as_str)
                .filter(|c| *c != "op_success")
                .collect(),
            _ => Vec::new(),
        }
    }

    /// Whether this envelope will never land as it is: stop resubmitting it. A new transaction
    /// may be built only after checking the chain for the memo (a tx of the same payout may have
    /// landed under another envelope). `tx_too_early` and unknown/internal errors are not
    /// definite: resubmit the same envelope until its `max_time`.
    pub fn is_definite(&self) -> bool {
        match self {
            TxFailure::BadSeq
            | TxFailure::BadAuth
            | TxFailure::TooLate
            | TxFailure::InsufficientFee
            | TxFailure::InsufficientBalance
            | TxFailure::Failed { .. } => true,
            TxFailure::TooEarly => false,
            TxFailure::Other(code) => OTHER_DEFINITE.contains(&code.as_str()),
        }
    }

    /// Whether the transaction was applied in a ledger (so its sequence number and fee were
    /// consumed). Only `tx_failed`; every other failure is a rejection before the ledger.
    pub fn consumed_sequence(&self) -> bool {
        matches!(self, TxFailure::Failed { .. })
    }
}

/// `tx_failed (op_underfunded)`.
impl fmt::Display for TxFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.code())?;
        let ops = self.failed_ops();
        if !ops.is_empty() {
            write!(f, " ({})", ops.join(", "))?;
        }
        Ok(())
    }
}

/// `TxBadSeq` → `tx_bad_seq`, with Horizon's spellings where they differ from the XDR names.
fn tx_code(result: &TransactionResultResult) -> String {
    match result {
        TransactionResultResult::TxNoAccount => "tx_no_source_account".to_string(),
        TransactionResultResult::TxBadMinSeqAgeOrGap => "tx_bad_minseq_age_or_gap".to_string(),
        TransactionResultResult::TxFeeBumpInnerFailed(_) => "tx_fee_bump_inner_failed".to_string(),
        other => snake(other.name()),
    }
}

/// An operation result as Horizon names it (`op_underfunded`, `op_no_destination`, …).
fn op_code(result: &OperationResult) -> String {
    match result {
        OperationResult::OpInner(OperationResultTr::Payment(p)) => match p {
            PaymentResult::Success => "op_success".to_string(),
            other => format!("op_{}", snake(other.name())),
        },
        OperationResult::OpInner(OperationResultTr::CreateAccount(c)) => match c {
            CreateAccountResult::Success => "op_success".to_string(),
            CreateAccountResult::AlreadyExist => "op_already_exists".to_string(),
            other => format!("op_{}", snake(other.name())),
        },
        OperationResult::OpInner(other) => format!("op_{}_result", snake(other.name())),
        OperationResult::OpNoAccount => "op_no_source_account".to_string(),
        other => snake(other.name()),
    }
}

/// CamelCase → snake_case.
fn snake(name: &str) -> String {
    let mut out = String::with_capacity(name.len() + 4);
    for (i, c) in name.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                out.push('_');
            }
            out.push(c.to_ascii_lowercase());
        } else {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use crate::stellar::failure::*;
    use serde_json::json;
    use stellar_xdr::{TransactionResultExt, VecM, WriteXdr};

    #[test]
    fn parses_horizon_result_codes() {
        let extras = json!({"result_codes": {"transaction": "tx_bad_seq"}});
        let f = TxFailure::from_horizon_extras(&extras).unwrap();
        assert_eq!(f, TxFailure::BadSeq);
        assert!(f.is_definite());
        assert!(!f.consumed_sequence());

        let extras = json!({"result_codes": {"transaction": "tx_failed",
            "operations": ["op_underfunded"]}});
        let f = TxFailure::from_horizon_extras(&extras).unwrap();
        assert_eq!(
            f,
            TxFailure::Failed {
                ops: vec!["op_underfunded".into()]
            }
        );
        assert!(f.is_definite() && f.consumed_sequence());
        assert_eq!(f.to_string(), "tx_failed (op_underfunded)");
        assert_eq!(f.failed_ops(), vec!["op_underfunded"]);

        for (code, variant, definite) in [
            ("tx_bad_auth", TxFailure::BadAuth, true),
            ("tx_too_late", TxFailure::TooLate, true),
            ("tx_too_early", TxFailure::TooEarly, false),
            ("tx_insufficient_fee", TxFailure::InsufficientFee, true),
            (
                "tx_insufficient_balance",
                TxFailure::InsufficientBalance,
                true,
            ),
            (
                "tx_internal_error",
                TxFailure::Other("tx_internal_error".into()),
                false,
            ),
            (
                "tx_bad_auth_extra",
                TxFailure::Other("tx_bad_auth_extra".into()),
                true,
            ),
            (
                "tx_no_source_account",
                TxFailure::Other("tx_no_source_account".into()),
                true,
            ),
        ] {
            let f = TxFailure::from_result_codes(code, &[]);
            assert_eq!(f, variant);
            assert_eq!(f.code(), code);
            assert_eq!(f.is_definite(), definite, "{code}");
            assert!(!f.consumed_sequence(), "{code}");
        }
        assert_eq!(TxFailure::from_horizon_extras(&json!({})), None);
        assert_eq!(TxFailure::from_horizon_extras(&json!(null)), None);
    }

    #[test]
    fn falls_back_to_result_xdr() {
        let bad_seq = TransactionResult {
            fee_charged: 0,
            result: TransactionResultResult::TxBadSeq,
            ext: TransactionResultExt::V0,
        }
        .to_xdr_base64(Limits::none())
        .unwrap();
        assert_eq!(
            TxFailure::from_horizon_extras(&json!({"result_xdr": bad_seq})),
            Some(TxFailure::BadSeq)
        );
        let failed = TransactionResult {
            fee_charged: 100_000,
            result: TransactionResultResult::TxFailed(
                VecM::try_from(vec![
                    OperationResult::OpInner(OperationResultTr::Payment(
                        PaymentResult::NoDestination,
                    )),
                    OperationResult::OpInner(OperationResultTr::CreateAccount(
                        CreateAccountResult::AlreadyExist,
                    )),
                    OperationResult::OpInner(OperationResultTr::Payment(PaymentResult::Success)),
                ])
                .unwrap(),
            ),
            ext: TransactionResultExt::V0,
        }
        .to_xdr_base64(Limits::none())
        .unwrap();
        assert_eq!(
            TxFailure::from_result_xdr(&failed),
            Some(TxFailure::Failed {
                ops: vec![
                    "op_no_destination".into(),
                    "op_already_exists".into(),
                    "op_success".into()
                ]
            })
        );
        let no_account = TransactionResult {
            fee_charged: 0,
            result: TransactionResultResult::TxNoAccount,
            ext: TransactionResultExt::V0,
        }
        .to_xdr_base64(Limits::none())
        .unwrap();
        assert_eq!(
            TxFailure::from_result_xdr(&no_account),
            Some(TxFailure::Other("tx_no_source_account".into()))
        );
        assert_eq!(TxFailure::from_result_xdr("garbage"), None);
    }

    #[test]
    fn serializes_with_its_code() {
        let f = TxFailure::Failed {
            ops: vec!["op_underfunded".into()],
        };
        let v = serde_json::to_value(&f).unwrap();
        assert_eq!(v["kind"], "failed");
        assert_eq!(serde_json::from_value::<TxFailure>(v).unwrap(), f);
    }
}
