//! Verifying a Pioneer's U2A transaction against its Pi payment (memo, single native payment,
//! destination, exact amount), with the failure named as Pi's `verification_error` does.

use super::client::HorizonClient;
use super::error::HorizonError;
use super::records::{PaymentOp, TxInfo};
use crate::amount::PiAmount;
use crate::ids::Txid;
use crate::throttle::{Throttle, Throttling};

/// A U2A transaction that passed [`HorizonClient::verify_payment`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VerifiedTx {
    /// The transaction.
    pub tx: TxInfo,
    /// Its single native payment.
    pub payment: PaymentOp,
}

/// Why a transaction does not pay a Pi payment. `code()` uses Pi's `verification_error` names.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerificationProblem {
    /// Horizon does not know the txid (not yet applied, or never).
    #[error(
        "transaction {0} is not on the chain (yet): retry shortly; if it stays absent the payment was not made"
    )]
    NotFound(String),
    /// It was applied but failed: nothing was paid.
    #[error("transaction {0} failed on chain: nothing was paid")]
    Failed(String),
    /// The memo is not the payment identifier.
    #[error(
        "transaction memo is {memo_type} {found:?}, expected text {expected:?}: it pays another payment"
    )]
    MemoMismatch {
        /// The identifier expected.
        expected: String,
        /// The memo found.
        found: Option<String>,
        /// The memo type found.
        memo_type: String,
    },
    /// Not exactly one payment operation.
    #[error("transaction has {0} payment operations, expected exactly one native payment")]
    PaymentCount(usize),
    /// The payment is not in Pi.
    #[error("the payment is in asset {0}, not native Pi")]
    NotNative(String),
    /// Paid to another account.
    #[error("the payment goes to {found}, expected {expected}")]
    DestinationMismatch {
        /// The app wallet expected.
        expected: String,
        /// The recipient found.
        found: String,
    },
    /// Paid another amount.
    #[error("the payment is {found} stroops, expected {expected} stroops")]
    AmountMismatch {
        /// Expected stroops.
        expected: i64,
        /// Stroops found.
        found: i64,
    },
    /// Horizon could not be asked: retry if [`HorizonError::is_transient`].
    #[error(transparent)]
    Horizon(#[from] HorizonError),
}

impl VerificationProblem {
    /// Pi's `verification_error` spelling, or `horizon_error`.
    pub fn code(&self) -> &'static str {
        match self {
            VerificationProblem::NotFound(_) => "transaction_not_found",
            VerificationProblem::Failed(_) => "transaction_failed",
            VerificationProblem::MemoMismatch { .. } => "memo_mismatch",
            VerificationProblem::PaymentCount(_) | VerificationProblem::NotNative(_) => {
                "payment_mismatch"
            }
            VerificationProblem::DestinationMismatch { .. } => "destination_mismatch",
            VerificationProblem::AmountMismatch { .. } => "amount_mismatch",
            VerificationProblem::Horizon(_) => "horizon_error",
        }
    }

    /// Whether asking again later may give another answer (Horizon trouble, or the tx not yet
    /// visible). Every other problem is final for that txid.
    pub fn is_retryable(&self) -> bool {
        match self {
            VerificationProblem::Horizon(e) => e.is_transient(),
            VerificationProblem::NotFound(_) => true,
            _ => false,
        }
    }
}

impl Throttling for VerificationProblem {
    /// Horizon throttling us while we verify (a transaction not on Horizon yet is a failure of
    /// this try, not throttling).
    fn throttle(&self) -> Option<Throttle> {
        match self {
            VerificationProblem::Horizon(e) => e.throttle(),
            _ => None,
        }
    }
}

impl HorizonClient {
    /// Verify that `txid` pays a Pi payment (U2A complete): applied and successful, memo type
    /// text equal to `expected_memo` (the identifier), and exactly one payment operation, native,
    /// to `expected_destination` (the app wallet), of exactly `expected_amount`.
    pub async fn verify_payment(
        &self,
        txid: &Txid,
        expected_memo: &str,
        expected_destination: &str,
        expected_amount: PiAmount,
    ) -> Result<VerifiedTx, VerificationProblem> {
        let tx = self
            .transaction(txid.as_str())
            .await?
            .ok_or_else(|| VerificationProblem::NotFound(txid.to_string()))?;
        let payments = self.transaction_payments(txid.as_str()).await?;
        check_payment(
            tx,
            payments,
            expected_memo,
            expected_destination,
            expected_amount,
        )
    }
}

/// The checks of [`HorizonClient::verify_payment`] on data already fetched.
pub fn check_payment(
    tx: TxInfo,
    payments: Vec<PaymentOp>,
    expected_memo: &str,
    expected_destination: &str,
    expected_amount: PiAmount,
) -> Result<VerifiedTx, VerificationProblem> {
    if !tx.successful {
        return Err(VerificationProblem::Failed(tx.hash));
    }
    if tx.memo_type != "text" || tx.memo.as_deref() != Some(expected_memo) {
        return Err(VerificationProblem::MemoMismatch {
            expected: expected_memo.to_string(),
            found: tx.memo.clone(),
            memo_type: tx.memo_type.clone(),
        });
    }
    let [payment] = <[PaymentOp; 1]>::try_from(payments)
        .map_err(|all| VerificationProblem::PaymentCount(all.len()))?;
    if payment.kind != "payment" {
        return Err(VerificationProblem::PaymentCount(0));
    }
    if payment.asset_type != "native" {
        return Err(VerificationProblem::NotNative(payment.asset_type));
    }
    if payment.to != expected_destination {
        return Err(VerificationProblem::DestinationMismatch {
            expected: expected_destination.to_string(),
            found: payment.to,
        });
    }
    if payment.amount_stroops != expected_amount.stroops() {
        return Err(VerificationProblem::AmountMismatch {
            expected: expected_amount.stroops(),
            found: payment.amount_stroops,
        });
    }
    Ok(VerifiedTx { tx, payment })
}

#[cfg(test)]
mod tests {
    use crate::amount::PiAmount;
    use crate::horizon::records::{PaymentOp, TxInfo};
    use crate::horizon::verify::check_payment;

    fn tx(memo: Option<&str>) -> TxInfo {
        TxInfo {
            hash: "h".into(),
            ledger: 3,
            successful: true,
            memo_type: if memo.is_some() { "text" } else { "none" }.into(),
            memo: memo.map(str::to_string),
            source_account: "GPIONEER".into(),
            created_at: "2026-01-01T00:00:00Z".into(),
            paging_token: "1".into(),
        }
    }

    fn pay(to: &str, stroops: i64) -> PaymentOp {
        PaymentOp {
            kind: "payment".into(),
            from: "GPIONEER".into(),
            to: to.into(),
            amount_stroops: stroops,
            asset_type: "native".into(),
        }
    }

    #[test]
    fn payment_checks() {
        let amount = PiAmount::parse("3.14").unwrap();
        let ok = check_payment(
            tx(Some("id1")),
            vec![pay("GAPP", 31_400_000)],
            "id1",
            "GAPP",
            amount,
        );
        assert!(ok.is_ok());
        let cases: Vec<(TxInfo, Vec<PaymentOp>, &str)> = vec![
            (
                TxInfo {
                    successful: false,
                    ..tx(Some("id1"))
                },
                vec![pay("GAPP", 31_400_000)],
                "transaction_failed",
            ),
            (
                tx(Some("id2")),
                vec![pay("GAPP", 31_400_000)],
                "memo_mismatch",
            ),
            (tx(None), vec![pay("GAPP", 31_400_000)], "memo_mismatch"),
            (
                tx(Some("id1")),
                vec![pay("GOTHER", 31_400_000)],
                "destination_mismatch",
            ),
            (
                tx(Some("id1")),
                vec![pay("GAPP", 31_400_001)],
                "amount_mismatch",
            ),
            (tx(Some("id1")), vec![], "payment_mismatch"),
            (
                tx(Some("id1")),
                vec![pay("GAPP", 31_400_000), pay("GAPP", 31_400_000)],
                "payment_mismatch",
            ),
            (
                tx(Some("id1")),
                vec![PaymentOp {
                    asset_type: "credit_alphanum4".into(),
                    ..pay("GAPP", 31_400_000)
                }],
                "payment_mismatch",
            ),
        ];
        for (t, p, code) in cases {
            let err = check_payment(t, p, "id1", "GAPP", amount).unwrap_err();
            assert_eq!(err.code(), code, "{err}");
            assert!(!err.is_retryable());
        }
    }
}
