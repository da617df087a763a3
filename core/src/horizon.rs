//! Horizon (the Pi blockchain's HTTP API) client: accounts and sequence numbers, the base fee,
//! submitting envelopes, and reading transactions back, both to confirm our payouts and to verify
//! the Pioneers' U2A payments.
//!
//! Submission results are classified for the payout state machine: [`SubmitError::Failed`] is a
//! verdict (see [`TxFailure::is_definite`]), while [`SubmitError::Timeout`] and
//! [`SubmitError::Transport`] mean "unknown, the transaction may still land: resubmit the same
//! envelope". Amounts are parsed from Horizon's `"2.5000000"` text exactly, never through a float.

use crate::amount::{PiAmount, STROOPS_PER_PI};
use crate::ids::Txid;
use crate::stellar::TxFailure;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use std::time::Duration;
use url::Url;

/// Most records Horizon returns per page.
pub const MAX_PAGE_LIMIT: u32 = 200;
/// How many of a wallet's most recent transactions [`HorizonClient::find_transaction_by_memo`]
/// scans when it is given no cursor.
pub const FIND_BY_MEMO_SCAN_LIMIT: usize = 2_000;

/// Errors talking to Horizon (other than submission, see [`SubmitError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HorizonError {
    /// The request did not get an answer (connection refused/reset, DNS, TLS, dropped).
    #[error(
        "could not reach Horizon at {url} ({detail}): check PI_HORIZON_URL and that Horizon is up, then retry"
    )]
    Transport {
        /// The URL requested.
        url: String,
        /// What failed.
        detail: String,
    },
    /// No answer within the client's timeout.
    #[error("Horizon did not answer {url} in time: retry later")]
    Timeout {
        /// The URL requested.
        url: String,
    },
    /// An unexpected HTTP status.
    #[error("Horizon answered {status} to {url}: {detail}")]
    Status {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// Problem title/detail or the start of the body.
        detail: String,
    },
    /// The answer was not the JSON we expect.
    #[error(
        "Horizon's answer to {url} could not be read ({detail}): check that PI_HORIZON_URL points at a Horizon server"
    )]
    Decode {
        /// The URL requested.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// An argument cannot be put in a Horizon URL.
    #[error("invalid Horizon request: {0}")]
    BadInput(String),
}

impl HorizonError {
    /// Whether retrying the same request later may succeed (transport, timeouts, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            HorizonError::Transport { .. } | HorizonError::Timeout { .. } => true,
            HorizonError::Status { status, .. } => *status == 429 || *status >= 500,
            HorizonError::Decode { .. } | HorizonError::BadInput(_) => false,
        }
    }
}

/// Why `POST /transactions` did not confirm the transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Horizon's verdict `400 transaction_failed` with its result codes.
    #[error("Horizon refused the transaction: {failure}")]
    Failed {
        /// The parsed result codes.
        failure: TxFailure,
        /// `extras.result_xdr`, kept for the record.
        result_xdr: Option<String>,
    },
    /// Horizon could not decode the envelope (`transaction_malformed` or another 4xx).
    #[error(
        "Horizon says the envelope is malformed ({0}): it will never land; rebuild it only after checking the chain for the payment's memo"
    )]
    Malformed(String),
    /// 504 or client timeout: the transaction may still land.
    #[error(
        "Horizon timed out waiting for the ledger: the transaction may still land; resubmit the same envelope until its max time"
    )]
    Timeout,
    /// Connection failure, dropped answer, 429 or 5xx: the transaction may have landed.
    #[error(
        "submitting to Horizon failed ({0}): the transaction may have landed; resubmit the same envelope until its max time"
    )]
    Transport(String),
}

impl SubmitError {
    /// Whether the transaction may have landed or still land: resubmit the same envelope (never a
    /// new one) until its `max_time`, then look it up by hash.
    pub fn may_have_landed(&self) -> bool {
        match self {
            SubmitError::Timeout | SubmitError::Transport(_) => true,
            SubmitError::Failed { failure, .. } => !failure.is_definite(),
            SubmitError::Malformed(_) => false,
        }
    }
}

/// A successful submission.
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
    fn as_str(self) -> &'static str {
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

/// A Horizon client. Cheap to clone (the connection pool is shared).
#[derive(Clone, Debug)]
pub struct HorizonClient {
    base: Url,
    http: reqwest::Client,
}

// ---- wire shapes (private) ----

#[derive(Deserialize)]
struct AccountJson {
    // Horizon sends both; either identifies the account.
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    account_id: Option<String>,
    sequence: String,
    #[serde(default)]
    balances: Vec<BalanceJson>,
}

#[derive(Deserialize)]
struct BalanceJson {
    balance: String,
    asset_type: String,
}

#[derive(Deserialize)]
struct FeeStatsJson {
    last_ledger_base_fee: NumOrString,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum NumOrString {
    Num(i64),
    Str(String),
}

#[derive(Deserialize)]
struct TxJson {
    hash: String,
    ledger: u32,
    #[serde(default = "yes")]
    successful: bool,
    #[serde(default)]
    memo_type: Option<String>,
    #[serde(default)]
    memo: Option<String>,
    #[serde(default)]
    source_account: String,
    #[serde(default)]
    created_at: String,
    #[serde(default)]
    paging_token: String,
}

fn yes() -> bool {
    true
}

#[derive(Deserialize)]
struct OpJson {
    #[serde(rename = "type")]
    kind: String,
    #[serde(default)]
    from: Option<String>,
    #[serde(default)]
    to: Option<String>,
    #[serde(default)]
    amount: Option<String>,
    #[serde(default)]
    asset_type: Option<String>,
    #[serde(default)]
    funder: Option<String>,
    #[serde(default)]
    account: Option<String>,
    #[serde(default)]
    starting_balance: Option<String>,
}

#[derive(Deserialize)]
struct Embedded<T> {
    #[serde(rename = "_embedded")]
    embedded: Records<T>,
}

#[derive(Deserialize)]
struct Records<T> {
    records: Vec<T>,
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

impl HorizonClient {
    /// A client for the Horizon at `base_url` (e.g. `https://api.testnet.minepi.com` or pi-sim's
    /// `horizon_url`); every request gives up after `timeout`. If the process has not installed a
    /// rustls crypto provider yet, this installs ring's (reqwest is built without one).
    pub fn new(base_url: &str, timeout: Duration) -> Result<HorizonClient, HorizonError> {
        let mut base = Url::parse(base_url).map_err(|e| {
            HorizonError::BadInput(format!(
                "PI_HORIZON_URL {base_url:?} is not a URL ({e}): use e.g. https://api.testnet.minepi.com"
            ))
        })?;
        if !base.path().ends_with('/') {
            let path = format!("{}/", base.path());
            base.set_path(&path);
        }
        if rustls::crypto::CryptoProvider::get_default().is_none() {
            // Losing a race with another installer is fine: either provider works.
            let _ = rustls::crypto::ring::default_provider().install_default();
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| HorizonError::Transport {
                url: base.to_string(),
                detail: format!("building the HTTP client: {e}"),
            })?;
        Ok(HorizonClient { base, http })
    }

    /// The base URL (with a trailing slash).
    pub fn base_url(&self) -> &str {
        self.base.as_str()
    }

    /// `base + segments`, each segment percent-encoded.
    fn url(&self, segments: &[&str]) -> Result<Url, HorizonError> {
        let mut url = self.base.clone();
        {
            let mut path = url.path_segments_mut().map_err(|_| {
                HorizonError::BadInput(format!("{} cannot be a base URL", self.base))
            })?;
            path.pop_if_empty();
            path.extend(segments);
        }
        Ok(url)
    }

    /// GET `url`, `None` on 404, JSON otherwise.
    async fn get_json<T: DeserializeOwned>(&self, url: Url) -> Result<Option<T>, HorizonError> {
        let shown = url.to_string();
        let resp = self
            .http
            .get(url)
            .header("accept", "application/json")
            .send()
            .await
            .map_err(|e| transport_error(&shown, &e))?;
        let status = resp.status();
        let body = resp
            .bytes()
            .await
            .map_err(|e| transport_error(&shown, &e))?;
        if status == reqwest::StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            return Err(HorizonError::Status {
                url: shown,
                status: status.as_u16(),
                detail: problem_detail(&body),
            });
        }
        serde_json::from_slice(&body)
            .map(Some)
            .map_err(|e| HorizonError::Decode {
                url: shown,
                detail: e.to_string(),
            })
    }

    /// `GET /accounts/{id}`: the sequence and native balance, `None` if the account does not
    /// exist (never funded).
    pub async fn account(&self, account_id: &str) -> Result<Option<Account>, HorizonError> {
        let url = self.url(&["accounts", account_id])?;
        let shown = url.to_string();
        let Some(a) = self.get_json::<AccountJson>(url).await? else {
            return Ok(None);
        };
        let decode = |detail: String| HorizonError::Decode {
            url: shown.clone(),
            detail,
        };
        let sequence = a
            .sequence
            .parse::<i64>()
            .map_err(|_| decode(format!("sequence {:?} is not an integer", a.sequence)))?;
        let balance_stroops = match a.balances.iter().find(|b| b.asset_type == "native") {
            Some(b) => parse_stroops(&b.balance)
                .ok_or_else(|| decode(format!("balance {:?} is not an amount", b.balance)))?,
            None => 0,
        };
        Ok(Some(Account {
            id: a
                .account_id
                .or(a.id)
                .unwrap_or_else(|| account_id.to_string()),
            sequence,
            balance_stroops,
        }))
    }

    /// `GET /fee_stats` `last_ledger_base_fee`, in stroops. Use `max(this, PI_BASE_FEE_STROOPS)`.
    pub async fn base_fee(&self) -> Result<i64, HorizonError> {
        let url = self.url(&["fee_stats"])?;
        let shown = url.to_string();
        let stats: FeeStatsJson =
            self.get_json(url)
                .await?
                .ok_or_else(|| HorizonError::Status {
                    url: shown.clone(),
                    status: 404,
                    detail: "no /fee_stats".to_string(),
                })?;
        match stats.last_ledger_base_fee {
            NumOrString::Num(n) => Ok(n),
            NumOrString::Str(s) => s.parse().map_err(|_| HorizonError::Decode {
                url: shown,
                detail: format!("last_ledger_base_fee {s:?} is not an integer"),
            }),
        }
    }

    /// `POST /transactions` with form field `tx`. Horizon answers once the ledger closes.
    /// Resubmitting the same envelope is safe and answers the same hash.
    pub async fn submit(&self, envelope_b64: &str) -> Result<SubmitOk, SubmitError> {
        let url = self
            .url(&["transactions"])
            .map_err(|e| SubmitError::Transport(e.to_string()))?;
        let resp = self
            .http
            .post(url)
            .header("accept", "application/json")
            .form(&[("tx", envelope_b64)])
            .send()
            .await
            .map_err(|e| {
                if e.is_timeout() {
                    SubmitError::Timeout
                } else {
                    SubmitError::Transport(error_chain(&e))
                }
            })?;
        let status = resp.status();
        let body = resp.bytes().await.map_err(|e| {
            if e.is_timeout() {
                SubmitError::Timeout
            } else {
                SubmitError::Transport(error_chain(&e))
            }
        })?;
        classify_submit(status.as_u16(), &body)
    }

    /// `GET /transactions/{hash}`; `None` if Horizon does not know it (not applied yet, or never).
    pub async fn transaction(&self, hash: &str) -> Result<Option<TxInfo>, HorizonError> {
        let url = self.url(&["transactions", hash])?;
        Ok(self.get_json::<TxJson>(url).await?.map(TxInfo::from))
    }

    /// `GET /transactions/{hash}/payments`: the payment and create_account operations of a
    /// transaction, amounts exact. Empty if the transaction is unknown.
    pub async fn transaction_payments(&self, hash: &str) -> Result<Vec<PaymentOp>, HorizonError> {
        let mut url = self.url(&["transactions", hash, "payments"])?;
        url.query_pairs_mut()
            .append_pair("limit", &MAX_PAGE_LIMIT.to_string());
        let shown = url.to_string();
        let Some(page) = self.get_json::<Embedded<OpJson>>(url).await? else {
            return Ok(Vec::new());
        };
        let mut out = Vec::new();
        for op in page.embedded.records {
            let bad = |what: &str| HorizonError::Decode {
                url: shown.clone(),
                detail: format!("{} record without a valid {what}", op.kind),
            };
            let payment = match op.kind.as_str() {
                "payment" => PaymentOp {
                    from: op.from.clone().ok_or_else(|| bad("from"))?,
                    to: op.to.clone().ok_or_else(|| bad("to"))?,
                    amount_stroops: op
                        .amount
                        .as_deref()
                        .and_then(parse_stroops)
                        .ok_or_else(|| bad("amount"))?,
                    asset_type: op.asset_type.clone().ok_or_else(|| bad("asset_type"))?,
                    kind: op.kind.clone(),
                },
                "create_account" => PaymentOp {
                    from: op.funder.clone().ok_or_else(|| bad("funder"))?,
                    to: op.account.clone().ok_or_else(|| bad("account"))?,
                    amount_stroops: op
                        .starting_balance
                        .as_deref()
                        .and_then(parse_stroops)
                        .ok_or_else(|| bad("starting_balance"))?,
                    asset_type: "native".to_string(),
                    kind: op.kind.clone(),
                },
                // Path payments, merges…: pi-payments never sends them; keep them visible.
                _ => PaymentOp {
                    from: op.from.clone().or(op.funder.clone()).unwrap_or_default(),
                    to: op.to.clone().or(op.account.clone()).unwrap_or_default(),
                    amount_stroops: op.amount.as_deref().and_then(parse_stroops).unwrap_or(0),
                    asset_type: op.asset_type.clone().unwrap_or_default(),
                    kind: op.kind.clone(),
                },
            };
            out.push(payment);
        }
        Ok(out)
    }

    /// `GET /accounts/{id}/transactions?cursor=&limit=&order=`: one page of an account's
    /// transactions (limit capped at 200). An unknown account gives an empty page.
    pub async fn account_transactions(
        &self,
        account_id: &str,
        cursor: Option<&str>,
        limit: u32,
        order: Order,
    ) -> Result<Page<TxInfo>, HorizonError> {
        let mut url = self.url(&["accounts", account_id, "transactions"])?;
        {
            let mut q = url.query_pairs_mut();
            if let Some(c) = cursor {
                q.append_pair("cursor", c);
            }
            q.append_pair("limit", &limit.clamp(1, MAX_PAGE_LIMIT).to_string());
            q.append_pair("order", order.as_str());
        }
        let records: Vec<TxInfo> = match self.get_json::<Embedded<TxJson>>(url).await? {
            Some(page) => page
                .embedded
                .records
                .into_iter()
                .map(TxInfo::from)
                .collect(),
            None => Vec::new(),
        };
        let next_cursor = records.last().map(|r| r.paging_token.clone());
        Ok(Page {
            records,
            next_cursor,
        })
    }

    /// Find a **successful** transaction of `account` whose text memo is `memo` (a Pi payment
    /// identifier): the check before rebuilding a payout whose envelope expired, so a payout that
    /// landed under an earlier envelope is never paid again. With `since_cursor` it scans every
    /// transaction after that cursor (oldest first); without, the newest
    /// [`FIND_BY_MEMO_SCAN_LIMIT`] transactions (newest first). Failed transactions with the memo
    /// are skipped: they paid nothing.
    pub async fn find_transaction_by_memo(
        &self,
        account_id: &str,
        memo: &str,
        since_cursor: Option<&str>,
    ) -> Result<Option<TxInfo>, HorizonError> {
        let order = if since_cursor.is_some() {
            Order::Asc
        } else {
            Order::Desc
        };
        let mut cursor = since_cursor.map(str::to_string);
        let mut scanned = 0usize;
        loop {
            let page = self
                .account_transactions(account_id, cursor.as_deref(), MAX_PAGE_LIMIT, order)
                .await?;
            let n = page.records.len();
            if let Some(hit) = page
                .records
                .into_iter()
                .find(|t| t.successful && t.memo_type == "text" && t.memo.as_deref() == Some(memo))
            {
                return Ok(Some(hit));
            }
            scanned += n;
            let short_page = n < MAX_PAGE_LIMIT as usize;
            if short_page
                || page.next_cursor.is_none()
                || page.next_cursor == cursor
                || (since_cursor.is_none() && scanned >= FIND_BY_MEMO_SCAN_LIMIT)
            {
                return Ok(None);
            }
            cursor = page.next_cursor;
        }
    }

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

/// Turn Horizon's answer to `POST /transactions` into our verdict.
fn classify_submit(status: u16, body: &[u8]) -> Result<SubmitOk, SubmitError> {
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
fn problem_detail(body: &[u8]) -> String {
    if let Ok(v) = serde_json::from_slice::<serde_json::Value>(body) {
        let title = v["title"].as_str().unwrap_or("");
        let detail = v["detail"].as_str().unwrap_or("");
        if !title.is_empty() || !detail.is_empty() {
            return format!("{title}: {detail}");
        }
    }
    String::from_utf8_lossy(body).chars().take(200).collect()
}

fn transport_error(url: &str, e: &reqwest::Error) -> HorizonError {
    if e.is_timeout() {
        HorizonError::Timeout {
            url: url.to_string(),
        }
    } else {
        HorizonError::Transport {
            url: url.to_string(),
            detail: error_chain(e),
        }
    }
}

/// The error and its sources, joined (reqwest's top-level message alone is vague).
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        out.push_str(": ");
        out.push_str(&s.to_string());
        source = s.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
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

    #[test]
    fn bad_base_url_is_refused() {
        assert!(matches!(
            HorizonClient::new("not a url", Duration::from_secs(1)),
            Err(HorizonError::BadInput(_))
        ));
        let c = HorizonClient::new("http://127.0.0.1:9/horizon", Duration::from_secs(1)).unwrap();
        assert_eq!(c.base_url(), "http://127.0.0.1:9/horizon/");
        assert_eq!(
            c.url(&["accounts", "G/..?x"]).unwrap().as_str(),
            "http://127.0.0.1:9/horizon/accounts/G%2F..%3Fx"
        );
    }

    #[tokio::test]
    async fn unreachable_horizon_is_transient() {
        // Port 9 (discard) is closed on test machines: connection refused.
        let c = HorizonClient::new("http://127.0.0.1:9", Duration::from_secs(2)).unwrap();
        let e = c
            .account("GAB2CB576PHBBPQ5ODORRZ2LYCMWPZGWGCN2KDK7DXOIMZASKUY3QZ6Q")
            .await
            .unwrap_err();
        assert!(e.is_transient(), "{e}");
        let s = c.submit("AAAA").await.unwrap_err();
        assert!(s.may_have_landed(), "{s}");
    }
}
