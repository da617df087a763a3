//! What Horizon tells us, typed: accounts, transactions, payment operations, pages of a
//! listing and a successful submission. Amounts are exact stroops, never floats.

/// A successful submission.
/// The latest closed ledger: the chain's own clock. Time bounds are checked against ledger
/// close times, never against this server's clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LedgerHead {
    /// Its sequence number.
    pub sequence: u32,
    /// When it closed, in Unix seconds (the validators' clock).
    pub closed_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubmitOk {
    /// The transaction hash.
    pub hash: String,
    /// The ledger it landed in.
    pub ledger: u32,
    /// Whether it succeeded (Horizon answers 200 only for successful transactions).
    pub successful: bool,
}

/// An account as Horizon sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Account {
    /// `G…` address.
    pub id: String,
    /// Current sequence number: the next transaction uses `sequence + 1`.
    pub sequence: i64,
    /// Native balance in stroops (may be 0).
    pub balance_stroops: i64,
}

/// A transaction as Horizon records it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxInfo {
    /// Hash (txid).
    pub hash: String,
    /// Ledger it was applied in.
    pub ledger: u32,
    /// Whether it succeeded (false: `tx_failed`, sequence and fee consumed, nothing paid).
    pub successful: bool,
    /// `none`, `text`, `id`, `hash` or `return`.
    pub memo_type: String,
    /// The memo (text for `text`, absent for `none`).
    pub memo: Option<String>,
    /// Transaction source account.
    pub source_account: String,
    /// ISO 8601 close time of its ledger.
    pub created_at: String,
    /// Cursor for paging past this record.
    pub paging_token: String,
}

/// A payment-like operation of a transaction (`payment`, or `create_account`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentOp {
    /// `payment` or `create_account`.
    pub kind: String,
    /// Paying account (`funder` for create_account).
    pub from: String,
    /// Receiving account (`account` for create_account).
    pub to: String,
    /// Exact amount in stroops.
    pub amount_stroops: i64,
    /// `native` for Pi.
    pub asset_type: String,
}

/// Sort order of a listing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Order {
    /// Oldest first.
    Asc,
    /// Newest first.
    Desc,
}

impl Order {
    /// The `order=` query value.
    pub(super) fn as_str(self) -> &'static str {
        match self {
            Order::Asc => "asc",
            Order::Desc => "desc",
        }
    }
}

/// One page of a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The records, in the requested order.
    pub records: Vec<T>,
    /// Cursor for the next page (the last record's paging token), `None` on an empty page.
    pub next_cursor: Option<String>,
}
