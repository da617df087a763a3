//! The drift report's shape: what kinds of disagreement there are, one item per disagreement,
//! the rows waiting for a person, and what was looked at. Serialized as is by
//! `GET /admin/drift` and `pi-payments reconcile --report --json`.

use crate::ledger::RunRow;

/// What kind of disagreement an item is.
#[derive(
    Clone,
    Copy,
    Debug,
    PartialEq,
    Eq,
    Hash,
    PartialOrd,
    Ord,
    serde::Serialize,
    serde::Deserialize,
    utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The ledger and Pi disagree on where a payment or payout stands.
    StateMismatch,
    /// The ledger's amount differs from Pi's or the chain's.
    AmountMismatch,
    /// The ledger's transaction differs from the one Pi linked (or a second one paid it).
    TxidMismatch,
    /// The ledger has a payment Pi does not know.
    MissingAtPi,
    /// The app wallet paid someone and no payout has that memo.
    ChainPaymentWithoutPayout,
    /// A chain payment belongs to a payout but pays another amount or destination.
    ChainPaymentMismatch,
    /// One payout was paid by more than one transaction.
    DuplicateChainPayment,
    /// Someone paid the app wallet with a memo no ledger payment has.
    UnknownIncomingPayment,
    /// Pi lists an incomplete server payment that is not one of our payouts.
    UnknownIncompleteServerPayment,
}

impl DriftKind {
    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::StateMismatch => "state_mismatch",
            DriftKind::AmountMismatch => "amount_mismatch",
            DriftKind::TxidMismatch => "txid_mismatch",
            DriftKind::MissingAtPi => "missing_at_pi",
            DriftKind::ChainPaymentWithoutPayout => "chain_payment_without_payout",
            DriftKind::ChainPaymentMismatch => "chain_payment_mismatch",
            DriftKind::DuplicateChainPayment => "duplicate_chain_payment",
            DriftKind::UnknownIncomingPayment => "unknown_incoming_payment",
            DriftKind::UnknownIncompleteServerPayment => "unknown_incomplete_server_payment",
        }
    }
}

/// One disagreement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DriftItem {
    pub kind: DriftKind,
    /// `payment`, `payout`, `transaction` or `pi_payment`.
    pub subject_type: String,
    /// Its id (payment id, payout id, transaction hash).
    pub subject: String,
    /// What the ledger says, if it says anything.
    pub ledger: Option<String>,
    /// What Pi says.
    pub pi: Option<String>,
    /// What the chain says.
    pub chain: Option<String>,
    /// The disagreement in words, and what to look at.
    pub detail: String,
}

/// A row waiting for a person.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct AttentionItem {
    /// `payment` or `payout`.
    pub subject_type: String,
    pub subject: String,
    pub reason: Option<String>,
    /// Unix milliseconds of its last change (an RFC 3339 time in JSON).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub since: i64,
    /// What Pi says about it, when it was read.
    pub pi: Option<String>,
}

/// How much was looked at.
#[derive(
    Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Checked {
    pub payments: u64,
    pub payouts: u64,
    pub chain_transactions: u64,
    pub incomplete_server_payments: u64,
    /// Settled rows older than this (unix ms) were not compared (an RFC 3339 time in JSON).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub settled_since: i64,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct DriftReport {
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub generated_at: i64,
    /// No drift and every source could be read.
    pub clean: bool,
    pub checked: Checked,
    pub drift: Vec<DriftItem>,
    pub needs_attention: Vec<AttentionItem>,
    /// Sources that could not be read: the report is incomplete.
    pub errors: Vec<String>,
    /// The latest reconcile run.
    pub last_run: Option<RunRow>,
}

/// Most errors listed; the rest are counted.
const MAX_ERRORS: usize = 20;

impl DriftReport {
    /// Add a disagreement, once per kind and subject.
    pub(crate) fn push(&mut self, item: DriftItem) {
        let dup = self
            .drift
            .iter()
            .any(|d| d.kind == item.kind && d.subject == item.subject);
        if !dup {
            self.drift.push(item);
        }
    }

    /// List a source that could not be read (at most [`MAX_ERRORS`] lines).
    pub(crate) fn error(&mut self, text: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(text);
        } else if self.errors.len() == MAX_ERRORS {
            self.errors
                .push("more sources failed; see the service logs".to_string());
        }
    }
}
