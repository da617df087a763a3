//! What the simulated chain records and answers: its settings, accounts, closed ledgers,
//! applied transactions and their operations, and the outcome of a submission. Plain data,
//! shared by the ledger rules, the [`super::handle::Chain`] handle, Horizon and the audit.

use std::time::Duration;

/// 1 Pi = 10,000,000 stroops.
pub type Stroops = i64;
/// Base fee per operation: 0.01 Pi.
pub const BASE_FEE: Stroops = 100_000;
/// Minimum balance an account must keep: 1 Pi.
pub const MIN_BALANCE: Stroops = 10_000_000;

/// How the chain is set up.
#[derive(Clone, Debug)]
pub struct ChainConfig {
    /// Network passphrase, e.g. `Pi Testnet`; network id = sha256(passphrase).
    pub passphrase: String,
    /// Seconds between ledger closes; 0 = one ledger per submission.
    pub ledger_seconds: f64,
    /// Per source account, at most this many txs in one ledger (the rest wait for later ones).
    pub max_tx_per_ledger: Option<u32>,
    /// After this long a submission answers 504 (the tx still lands later).
    pub submit_timeout: Duration,
    /// The chain's clock minus the real clock, in seconds: ledger close times and time-bound
    /// checks use the chain's clock, which on a real network is the validators' and need not
    /// agree with the app server's.
    pub clock_offset_seconds: i64,
}

/// What Horizon knows of an account.
#[derive(Clone, Debug)]
pub struct AccountInfo {
    pub account_id: String,
    pub sequence: i64,
    pub balance: Stroops,
    pub last_modified_ledger: u32,
}

/// A closed ledger.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct LedgerInfo {
    pub sequence: u32,
    pub hash: String,
    pub closed_at: chrono::DateTime<chrono::Utc>,
    pub successful_transaction_count: u32,
    pub failed_transaction_count: u32,
    pub operation_count: u32,
    pub base_fee_in_stroops: Stroops,
}

/// One operation of an applied transaction (only `payment` and `create_account` exist here).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct OpRecord {
    pub id: String,
    pub paging_token: String,
    /// `payment` or `create_account`.
    pub kind: String,
    pub from: String,
    pub to: String,
    pub amount: Stroops,
    pub tx_hash: String,
    pub transaction_successful: bool,
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// A transaction that made it into a ledger (successful or failed in-ledger).
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct TxRecord {
    pub hash: String,
    pub ledger: u32,
    pub created_at: chrono::DateTime<chrono::Utc>,
    pub source_account: String,
    pub source_account_sequence: i64,
    pub fee_account: String,
    pub fee_charged: Stroops,
    pub max_fee: Stroops,
    pub operation_count: u32,
    /// `none`, `text`, `id`, `hash` or `return`.
    pub memo_type: String,
    /// The memo as Horizon shows it (text as is; id as decimal; hash/return as base64).
    pub memo: Option<String>,
    pub successful: bool,
    pub envelope_xdr: String,
    pub result_xdr: String,
    pub paging_token: String,
    pub ops: Vec<OpRecord>,
    /// Result codes when `successful` is false, e.g. `tx_failed` + [`op_underfunded`].
    pub result_codes: Option<ResultCodes>,
}

/// Horizon's `extras.result_codes`.
#[derive(Clone, Debug, serde::Serialize, serde::Deserialize)]
pub struct ResultCodes {
    pub transaction: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub operations: Vec<String>,
}

/// The answer to a submission.
#[derive(Clone, Debug)]
pub enum SubmitOutcome {
    /// In a closed ledger (check `successful`). Also the answer to a known envelope resubmitted.
    Applied(TxRecord),
    /// Refused before the ledger; nothing consumed.
    Rejected {
        hash: String,
        envelope_xdr: String,
        result_xdr: String,
        codes: ResultCodes,
    },
    /// Not decodable as a TransactionEnvelope (Horizon's 400 `transaction_malformed`).
    Malformed(String),
    /// Accepted, but its ledger did not close within `submit_timeout` (Horizon's 504).
    Timeout { hash: String },
}
