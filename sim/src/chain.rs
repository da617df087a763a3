//! The simulated Pi blockchain: accounts, the transaction queue, ledger closing and the
//! record of applied transactions. OWNER: helper "sim-chain". The public items below are the
//! interface agreed with helper "sim-platform"; add to it freely, change it only on both sides.

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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug)]
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
#[derive(Clone, Debug, serde::Serialize)]
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

pub use crate::chain_xdr::{BuildError, build_payment_envelope};

use crate::chain_xdr::{self as xdr, DecodeError, Decoded};
use crate::keys::{encode_account_id, hint_of, verify};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use stellar_xdr::{
    Asset, CreateAccountResult, DecoratedSignature, OperationBody, OperationResult,
    OperationResultTr, PaymentResult, PublicKey, TransactionResultResult,
};
use tokio::sync::{Notify, oneshot};

/// How long a transaction built by [`Chain::pay`] stays valid (its `maxTime` = now + this).
const PAY_VALIDITY_SECS: u64 = 300;

/// The chain; cheap to clone (shared state inside).
#[derive(Clone)]
pub struct Chain {
    inner: Arc<Inner>,
}

struct Inner {
    state: Mutex<State>,
    /// Wakes the ledger-closing task when `ledger_seconds` changes.
    wake: Arc<Notify>,
    task_started: AtomicBool,
}

/// An account as the ledger holds it.
#[derive(Clone, Debug)]
struct Account {
    balance: Stroops,
    sequence: i64,
    last_modified: u32,
}

/// An accepted transaction waiting for its ledger.
struct Pending {
    hash: String,
    decoded: Decoded,
    source: [u8; 32],
}

struct State {
    config: ChainConfig,
    network_id: [u8; 32],
    accounts: HashMap<[u8; 32], Account>,
    /// `ledgers[i].sequence == i + 1`; ledger 1 is the genesis ledger.
    ledgers: Vec<LedgerInfo>,
    txs: Vec<TxRecord>,
    by_hash: HashMap<String, usize>,
    /// Account id → indices into `txs` of the transactions it took part in, oldest first.
    by_account: HashMap<String, Vec<usize>>,
    queue: VecDeque<Pending>,
    /// Submitters waiting for a queued hash to land.
    waiters: HashMap<String, Vec<oneshot::Sender<TxRecord>>>,
}

/// What an acceptance attempt led to: a final answer now, or a wait for a ledger.
enum Accept {
    Done(Box<SubmitOutcome>),
    Wait {
        hash: String,
        rx: oneshot::Receiver<TxRecord>,
        timeout: Duration,
    },
}

fn now_unix() -> u64 {
    u64::try_from(chrono::Utc::now().timestamp()).unwrap_or(0)
}

impl State {
    fn new(config: ChainConfig) -> State {
        let network_id: [u8; 32] = Sha256::digest(config.passphrase.as_bytes()).into();
        let mut state = State {
            config,
            network_id,
            accounts: HashMap::new(),
            ledgers: Vec::new(),
            txs: Vec::new(),
            by_hash: HashMap::new(),
            by_account: HashMap::new(),
            queue: VecDeque::new(),
            waiters: HashMap::new(),
        };
        state.push_ledger(&[], 0, 0, 0);
        state
    }

    fn latest_sequence(&self) -> u32 {
        self.ledgers.last().map(|l| l.sequence).unwrap_or(0)
    }

    fn push_ledger(&mut self, tx_hashes: &[String], ok: u32, failed: u32, ops: u32) {
        let sequence = self.latest_sequence() + 1;
        let mut h = Sha256::new();
        if let Some(prev) = self.ledgers.last() {
            h.update(prev.hash.as_bytes());
        }
        h.update(sequence.to_be_bytes());
        for t in tx_hashes {
            h.update(t.as_bytes());
        }
        self.ledgers.push(LedgerInfo {
            sequence,
            hash: hex::encode(h.finalize()),
            closed_at: chrono::Utc::now(),
            successful_transaction_count: ok,
            failed_transaction_count: failed,
            operation_count: ops,
            base_fee_in_stroops: BASE_FEE,
        });
    }

    /// Number of queued txs and the sum of their fee bids, for one source account.
    fn queued_for(&self, source: &[u8; 32]) -> (i64, Stroops) {
        self.queue
            .iter()
            .filter(|p| &p.source == source)
            .fold((0, 0), |(n, fees), p| {
                (n + 1, fees + i64::from(p.decoded.tx.fee))
            })
    }

    /// The sequence number the next transaction of `source` must carry.
    fn next_sequence(&self, source: &[u8; 32]) -> Option<i64> {
        let account = self.accounts.get(source)?;
        Some(account.sequence + self.queued_for(source).0 + 1)
    }

    /// stellar-core's checks before a transaction may enter the queue, in its order. Nothing
    /// is consumed by a rejection.
    fn validate(&self, d: &Decoded, now: u64) -> Result<(), TransactionResultResult> {
        use TransactionResultResult as R;
        let tx = &d.tx;
        if tx.operations.is_empty() {
            return Err(R::TxMissingOperation);
        }
        if let Some(tb) = xdr::time_bounds(&tx.cond) {
            if tb.min_time.0 > now {
                return Err(R::TxTooEarly);
            }
            if tb.max_time.0 != 0 && now > tb.max_time.0 {
                return Err(R::TxTooLate);
            }
        }
        let ops = tx.operations.len() as i64;
        if i64::from(tx.fee) < BASE_FEE * ops {
            return Err(R::TxInsufficientFee);
        }
        let source = xdr::muxed_key(&tx.source_account);
        let Some(account) = self.accounts.get(&source) else {
            return Err(R::TxNoAccount);
        };
        let (queued, queued_fees) = self.queued_for(&source);
        if Some(tx.seq_num.0) != account.sequence.checked_add(queued + 1) {
            return Err(R::TxBadSeq);
        }
        let mut used = vec![false; d.signatures.len()];
        if !check_signer(&source, &d.hash, &d.signatures, &mut used) {
            return Err(R::TxBadAuth);
        }
        if account.balance - MIN_BALANCE - queued_fees < i64::from(tx.fee) {
            return Err(R::TxInsufficientBalance);
        }
        // Per-operation checks (source account, its signature, well-formedness).
        let mut results = Vec::with_capacity(tx.operations.len());
        let mut all_ok = true;
        for op in tx.operations.iter() {
            let op_source = op.source_account.as_ref().map(xdr::muxed_key);
            let result = match op_source {
                Some(k) if k != source && !self.accounts.contains_key(&k) => {
                    OperationResult::OpNoAccount
                }
                Some(k) if k != source && !check_signer(&k, &d.hash, &d.signatures, &mut used) => {
                    OperationResult::OpBadAuth
                }
                _ => check_op_body(&op.body, op_source.unwrap_or(source)),
            };
            all_ok &= is_success(&result);
            results.push(result);
        }
        if !all_ok {
            return Err(R::TxFailed(results.try_into().unwrap_or_default()));
        }
        if used.iter().any(|u| !u) {
            return Err(R::TxBadAuthExtra);
        }
        Ok(())
    }

    /// Validates and queues an envelope, or answers at once (malformed, rejected, known hash).
    fn accept(&mut self, envelope_b64: &str) -> Accept {
        let timeout = self.config.submit_timeout;
        let decoded = match xdr::decode(envelope_b64, self.network_id) {
            Ok(d) => d,
            Err(DecodeError::Malformed(m)) => {
                return Accept::Done(Box::new(SubmitOutcome::Malformed(m)));
            }
            Err(DecodeError::FeeBump { hash, envelope_b64 }) => {
                let hash = hex::encode(hash);
                if let Some(&i) = self.by_hash.get(&hash) {
                    return Accept::Done(Box::new(SubmitOutcome::Applied(self.txs[i].clone())));
                }
                let result = TransactionResultResult::TxNotSupported;
                return Accept::Done(Box::new(rejected(hash, envelope_b64, result)));
            }
        };
        let hash = hex::encode(decoded.hash);
        // A known envelope answers its recorded result (Horizon looks it up before core).
        if let Some(&i) = self.by_hash.get(&hash) {
            return Accept::Done(Box::new(SubmitOutcome::Applied(self.txs[i].clone())));
        }
        if self.queue.iter().any(|p| p.hash == hash) {
            let (tx, rx) = oneshot::channel();
            self.waiters.entry(hash.clone()).or_default().push(tx);
            return Accept::Wait { hash, rx, timeout };
        }
        if let Err(result) = self.validate(&decoded, now_unix()) {
            return Accept::Done(Box::new(rejected(hash, decoded.envelope_b64, result)));
        }
        let (tx, rx) = oneshot::channel();
        self.waiters.entry(hash.clone()).or_default().push(tx);
        let source = xdr::muxed_key(&decoded.tx.source_account);
        self.queue.push_back(Pending {
            hash: hash.clone(),
            decoded,
            source,
        });
        if self.config.ledger_seconds <= 0.0 {
            // One ledger per submission: close until this one is in (or dropped).
            while self.queue.iter().any(|p| p.hash == hash) {
                self.close_ledger();
            }
        }
        Accept::Wait { hash, rx, timeout }
    }

    /// Closes one ledger: takes queued txs in order (at most `max_tx_per_ledger` per source),
    /// drops the expired ones (and the later txs of their source, whose sequence can no longer
    /// match), applies the rest and wakes their submitters.
    fn close_ledger(&mut self) {
        let sequence = self.latest_sequence() + 1;
        let now = now_unix();
        let max = self.config.max_tx_per_ledger.map(|m| m.max(1));
        let mut taken = Vec::new();
        let mut remaining = VecDeque::new();
        let mut per_source: HashMap<[u8; 32], u32> = HashMap::new();
        let mut dropped: HashSet<[u8; 32]> = HashSet::new();
        for p in std::mem::take(&mut self.queue) {
            let expired = xdr::time_bounds(&p.decoded.tx.cond)
                .is_some_and(|tb| tb.max_time.0 != 0 && now > tb.max_time.0);
            if dropped.contains(&p.source) || expired {
                dropped.insert(p.source);
                // Dropping the senders answers the submitters with a timeout, as Horizon does.
                self.waiters.remove(&p.hash);
                continue;
            }
            let count = per_source.entry(p.source).or_insert(0);
            if max.is_some_and(|m| *count >= m) {
                remaining.push_back(p);
            } else {
                *count += 1;
                taken.push(p);
            }
        }
        self.queue = remaining;
        let closed_at = chrono::Utc::now();
        let (mut ok, mut failed, mut ops) = (0, 0, 0);
        let mut hashes = Vec::with_capacity(taken.len());
        for (i, p) in taken.into_iter().enumerate() {
            let record = self.apply(p, sequence, i as u32 + 1, closed_at);
            if record.successful {
                ok += 1;
            } else {
                failed += 1;
            }
            ops += record.operation_count;
            hashes.push(record.hash.clone());
            if let Some(waiters) = self.waiters.remove(&record.hash) {
                for w in waiters {
                    // A submitter that gave up (timeout) is fine: the record stays.
                    let _ = w.send(record.clone());
                }
            }
        }
        self.push_ledger(&hashes, ok, failed, ops);
    }

    /// Applies one transaction in ledger `ledger`: fee and sequence always; the operations all
    /// or nothing.
    fn apply(
        &mut self,
        p: Pending,
        ledger: u32,
        index: u32,
        closed_at: chrono::DateTime<chrono::Utc>,
    ) -> TxRecord {
        let tx = &p.decoded.tx;
        let op_count = tx.operations.len() as u32;
        let fee = (BASE_FEE * i64::from(op_count)).min(i64::from(tx.fee));
        let source_id = encode_account_id(&p.source);
        let fee_charged = match self.accounts.get_mut(&p.source) {
            Some(acc) => {
                let charged = fee.min(acc.balance.max(0));
                acc.balance -= charged;
                acc.sequence = tx.seq_num.0;
                acc.last_modified = ledger;
                charged
            }
            None => 0,
        };
        // Operations run against an overlay, committed only if every one succeeds.
        let mut overlay: HashMap<[u8; 32], Account> = HashMap::new();
        let mut results = Vec::with_capacity(op_count as usize);
        let mut op_records = Vec::with_capacity(op_count as usize);
        let tx_toid = (i64::from(ledger) << 32) | (i64::from(index) << 12);
        let mut participants: Vec<String> = vec![source_id.clone()];
        for (n, op) in tx.operations.iter().enumerate() {
            let op_source = op
                .source_account
                .as_ref()
                .map(xdr::muxed_key)
                .unwrap_or(p.source);
            let (result, kind, to, amount) =
                self.apply_op(&mut overlay, &op.body, op_source, ledger);
            let from = encode_account_id(&op_source);
            let to = encode_account_id(&to);
            participants.push(from.clone());
            participants.push(to.clone());
            let token = (tx_toid | (n as i64 + 1)).to_string();
            op_records.push(OpRecord {
                id: token.clone(),
                paging_token: token,
                kind: kind.to_owned(),
                from,
                to,
                amount,
                tx_hash: p.hash.clone(),
                transaction_successful: false,
                created_at: closed_at,
            });
            results.push(result);
        }
        let successful = results.iter().all(is_success);
        if successful {
            for (k, acc) in overlay {
                self.accounts.insert(k, acc);
            }
        }
        for r in &mut op_records {
            r.transaction_successful = successful;
        }
        let result_codes = (!successful).then(|| ResultCodes {
            transaction: "tx_failed".into(),
            operations: results
                .iter()
                .map(|r| xdr::op_code_name(r).to_owned())
                .collect(),
        });
        let ops: stellar_xdr::VecM<OperationResult> = results.try_into().unwrap_or_default();
        let result = if successful {
            TransactionResultResult::TxSuccess(ops)
        } else {
            TransactionResultResult::TxFailed(ops)
        };
        let (memo_type, memo) = xdr::memo_fields(&tx.memo);
        let record = TxRecord {
            hash: p.hash.clone(),
            ledger,
            created_at: closed_at,
            source_account: source_id.clone(),
            source_account_sequence: tx.seq_num.0,
            fee_account: source_id,
            fee_charged,
            max_fee: i64::from(tx.fee),
            operation_count: op_count,
            memo_type,
            memo,
            successful,
            envelope_xdr: p.decoded.envelope_b64.clone(),
            result_xdr: xdr::result_xdr(fee_charged, result),
            paging_token: tx_toid.to_string(),
            ops: op_records,
            result_codes,
        };
        let idx = self.txs.len();
        self.by_hash.insert(record.hash.clone(), idx);
        participants.sort();
        participants.dedup();
        for a in participants {
            self.by_account.entry(a).or_default().push(idx);
        }
        self.txs.push(record.clone());
        record
    }

    /// Looks an account up through the overlay of the transaction being applied.
    fn overlay_get(&self, overlay: &HashMap<[u8; 32], Account>, k: &[u8; 32]) -> Option<Account> {
        overlay
            .get(k)
            .cloned()
            .or_else(|| self.accounts.get(k).cloned())
    }

    /// Applies one operation into `overlay`; returns (result, kind, counterparty, amount).
    fn apply_op(
        &self,
        overlay: &mut HashMap<[u8; 32], Account>,
        body: &OperationBody,
        source: [u8; 32],
        ledger: u32,
    ) -> (OperationResult, &'static str, [u8; 32], Stroops) {
        let inner = OperationResult::OpInner;
        match body {
            OperationBody::Payment(pay) => {
                let to = xdr::muxed_key(&pay.destination);
                let r = |p| inner(OperationResultTr::Payment(p));
                let result = (|| {
                    if pay.amount <= 0 {
                        return PaymentResult::Malformed;
                    }
                    if !matches!(pay.asset, Asset::Native) {
                        // No trustlines exist on this chain.
                        return PaymentResult::SrcNoTrust;
                    }
                    let Some(mut dest) = self.overlay_get(overlay, &to) else {
                        return PaymentResult::NoDestination;
                    };
                    let Some(mut src) = self.overlay_get(overlay, &source) else {
                        return PaymentResult::Underfunded;
                    };
                    if src.balance - pay.amount < MIN_BALANCE {
                        return PaymentResult::Underfunded;
                    }
                    if to != source {
                        src.balance -= pay.amount;
                        dest.balance += pay.amount;
                        src.last_modified = ledger;
                        dest.last_modified = ledger;
                        overlay.insert(source, src);
                        overlay.insert(to, dest);
                    }
                    PaymentResult::Success
                })();
                (r(result), "payment", to, pay.amount)
            }
            OperationBody::CreateAccount(c) => {
                let PublicKey::PublicKeyTypeEd25519(stellar_xdr::Uint256(to)) = c.destination.0;
                let r = |p| inner(OperationResultTr::CreateAccount(p));
                let result = (|| {
                    if c.starting_balance < 0 || to == source {
                        return CreateAccountResult::Malformed;
                    }
                    if self.overlay_get(overlay, &to).is_some() {
                        return CreateAccountResult::AlreadyExist;
                    }
                    if c.starting_balance < MIN_BALANCE {
                        return CreateAccountResult::LowReserve;
                    }
                    let Some(mut src) = self.overlay_get(overlay, &source) else {
                        return CreateAccountResult::Underfunded;
                    };
                    if src.balance - c.starting_balance < MIN_BALANCE {
                        return CreateAccountResult::Underfunded;
                    }
                    src.balance -= c.starting_balance;
                    src.last_modified = ledger;
                    overlay.insert(source, src);
                    overlay.insert(
                        to,
                        Account {
                            balance: c.starting_balance,
                            sequence: i64::from(ledger) << 32,
                            last_modified: ledger,
                        },
                    );
                    CreateAccountResult::Success
                })();
                (r(result), "create_account", to, c.starting_balance)
            }
            _ => (OperationResult::OpNotSupported, "unsupported", source, 0),
        }
    }
}

/// Marks and reports whether some signature is a valid signature of `hash` by `key`.
fn check_signer(
    key: &[u8; 32],
    hash: &[u8; 32],
    signatures: &[DecoratedSignature],
    used: &mut [bool],
) -> bool {
    let hint = hint_of(key);
    for (i, s) in signatures.iter().enumerate() {
        if s.hint.0 == hint && verify(key, hash, s.signature.0.as_slice()) {
            used[i] = true;
            return true;
        }
    }
    false
}

/// stellar-core's `doCheckValid` for the operations the simulator runs.
fn check_op_body(body: &OperationBody, source: [u8; 32]) -> OperationResult {
    let inner = OperationResult::OpInner;
    match body {
        OperationBody::Payment(p) if p.amount <= 0 => {
            inner(OperationResultTr::Payment(PaymentResult::Malformed))
        }
        OperationBody::Payment(_) => inner(OperationResultTr::Payment(PaymentResult::Success)),
        OperationBody::CreateAccount(c) => {
            let PublicKey::PublicKeyTypeEd25519(stellar_xdr::Uint256(to)) = c.destination.0;
            if c.starting_balance < 0 || to == source {
                inner(OperationResultTr::CreateAccount(
                    CreateAccountResult::Malformed,
                ))
            } else {
                inner(OperationResultTr::CreateAccount(
                    CreateAccountResult::Success,
                ))
            }
        }
        _ => OperationResult::OpNotSupported,
    }
}

fn is_success(r: &OperationResult) -> bool {
    xdr::op_code_name(r) == "op_success"
}

fn rejected(hash: String, envelope_xdr: String, result: TransactionResultResult) -> SubmitOutcome {
    let operations = match &result {
        TransactionResultResult::TxFailed(ops) => ops
            .iter()
            .map(|r| xdr::op_code_name(r).to_owned())
            .collect(),
        _ => Vec::new(),
    };
    let codes = ResultCodes {
        transaction: xdr::tx_code_name(&result).to_owned(),
        operations,
    };
    SubmitOutcome::Rejected {
        hash,
        envelope_xdr,
        result_xdr: xdr::result_xdr(0, result),
        codes,
    }
}

/// Closes a ledger every `ledger_seconds` while the chain lives; idles while it is 0.
async fn ledger_loop(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let seconds = match weak.upgrade() {
            Some(inner) => lock(&inner.state).config.ledger_seconds,
            None => return,
        };
        let wait = if seconds > 0.0 {
            Duration::from_secs_f64(seconds)
        } else {
            // Idle; wake now and then to notice the chain was dropped.
            Duration::from_secs(1)
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                if seconds > 0.0 {
                    let Some(inner) = weak.upgrade() else { return };
                    lock(&inner.state).close_ledger();
                }
            }
            _ = wake.notified() => {}
        }
    }
}

/// The state lock; a panic elsewhere must not wedge the simulator, so poisoning is ignored.
fn lock(m: &Mutex<State>) -> MutexGuard<'_, State> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl Chain {
    /// A new chain with no accounts; starts its ledger-closing task when `ledger_seconds > 0`
    /// (must be called inside a tokio runtime).
    pub fn new(config: ChainConfig) -> Chain {
        let chain = Chain {
            inner: Arc::new(Inner {
                state: Mutex::new(State::new(config)),
                wake: Arc::new(Notify::new()),
                task_started: AtomicBool::new(false),
            }),
        };
        chain.ensure_task();
        chain
    }

    /// Starts the ledger-closing task once, if a tokio runtime is at hand.
    fn ensure_task(&self) {
        if self.inner.task_started.load(Ordering::Acquire) {
            return;
        }
        let Ok(handle) = tokio::runtime::Handle::try_current() else {
            return;
        };
        if self.inner.task_started.swap(true, Ordering::AcqRel) {
            return;
        }
        handle.spawn(ledger_loop(
            Arc::downgrade(&self.inner),
            self.inner.wake.clone(),
        ));
    }

    fn state(&self) -> MutexGuard<'_, State> {
        lock(&self.inner.state)
    }

    /// The network passphrase (Horizon's `network_passphrase`).
    pub fn passphrase(&self) -> String {
        self.state().config.passphrase.clone()
    }
    /// sha256(passphrase).
    pub fn network_id(&self) -> [u8; 32] {
        self.state().network_id
    }
    /// The current configuration (with any runtime changes).
    pub fn config(&self) -> ChainConfig {
        self.state().config.clone()
    }
    /// Changes the ledger interval at once; switching to 0 closes what is queued now.
    pub fn set_ledger_seconds(&self, seconds: f64) {
        let seconds = if seconds.is_finite() {
            seconds.max(0.0)
        } else {
            0.0
        };
        {
            let mut st = self.state();
            st.config.ledger_seconds = seconds;
            if seconds <= 0.0 {
                while !st.queue.is_empty() {
                    st.close_ledger();
                }
            }
        }
        self.ensure_task();
        self.inner.wake.notify_one();
    }
    /// Changes the per-source cap of transactions in one ledger (`None` = no cap).
    pub fn set_max_tx_per_ledger(&self, max: Option<u32>) {
        self.state().config.max_tx_per_ledger = max;
    }
    /// Changes how long a submission waits for its ledger before answering a timeout.
    pub fn set_submit_timeout(&self, timeout: Duration) {
        self.state().config.submit_timeout = timeout;
    }
    /// Create (or top up) an account out of thin air, like a genesis or friendbot funding.
    /// Ignored for a string that is not a `G…` account id.
    pub fn fund_account(&self, account_id: &str, balance: Stroops) {
        let Some(key) = crate::keys::decode_account_id(account_id) else {
            return;
        };
        let mut st = self.state();
        let ledger = st.latest_sequence();
        let acc = st.accounts.entry(key).or_insert(Account {
            balance: 0,
            sequence: i64::from(ledger) << 32,
            last_modified: ledger,
        });
        acc.balance = acc.balance.saturating_add(balance);
        acc.last_modified = ledger;
    }
    /// An account as Horizon shows it; `None` if it does not exist.
    pub fn account(&self, account_id: &str) -> Option<AccountInfo> {
        let key = crate::keys::decode_account_id(account_id)?;
        let st = self.state();
        let acc = st.accounts.get(&key)?;
        Some(AccountInfo {
            account_id: encode_account_id(&key),
            sequence: acc.sequence,
            balance: acc.balance,
            last_modified_ledger: acc.last_modified,
        })
    }
    /// The sequence number the next transaction of this account must carry, counting its
    /// queued transactions; `None` if the account does not exist.
    pub fn next_sequence(&self, account_id: &str) -> Option<i64> {
        let key = crate::keys::decode_account_id(account_id)?;
        self.state().next_sequence(&key)
    }
    /// Submit a base64 `TransactionEnvelope`; resolves when its ledger closes, or on rejection,
    /// or at `submit_timeout`.
    pub async fn submit(&self, envelope_b64: &str) -> SubmitOutcome {
        self.ensure_task();
        let accepted = self.state().accept(envelope_b64);
        wait(accepted).await
    }
    /// Build, sign and submit a one-op native payment from `from` (its own source) with a text
    /// memo; used for a Pioneer paying a U2A payment. Sequence = current + queued + 1.
    pub async fn pay(
        &self,
        from: &crate::keys::Keypair,
        to: &str,
        amount: Stroops,
        memo: &str,
    ) -> SubmitOutcome {
        self.ensure_task();
        let accepted = {
            let mut st = self.state();
            // Sequence and queueing under one lock, so concurrent pays never collide.
            let sequence = st.next_sequence(&from.public_key_bytes()).unwrap_or(1);
            let max_time = now_unix() + PAY_VALIDITY_SECS;
            match build_payment_envelope(
                &st.config.passphrase,
                from,
                to,
                amount,
                memo,
                sequence,
                max_time,
            ) {
                Ok((_, b64)) => st.accept(&b64),
                Err(e) => Accept::Done(Box::new(SubmitOutcome::Malformed(e.to_string()))),
            }
        };
        wait(accepted).await
    }
    /// A transaction that made it into a closed ledger.
    pub fn transaction(&self, hash: &str) -> Option<TxRecord> {
        let st = self.state();
        let i = *st.by_hash.get(&hash.to_ascii_lowercase())?;
        Some(st.txs[i].clone())
    }
    /// Every applied transaction, oldest first (for the audit).
    pub fn transactions(&self) -> Vec<TxRecord> {
        self.state().txs.clone()
    }
    /// The transactions an account took part in (as source, op source, payer or payee),
    /// oldest first.
    pub fn account_transactions(&self, account_id: &str) -> Vec<TxRecord> {
        let st = self.state();
        st.by_account
            .get(account_id)
            .map(|ix| ix.iter().map(|&i| st.txs[i].clone()).collect())
            .unwrap_or_default()
    }
    /// Whether a hash is accepted and waiting for its ledger.
    pub fn is_queued(&self, hash: &str) -> bool {
        let hash = hash.to_ascii_lowercase();
        self.state().queue.iter().any(|p| p.hash == hash)
    }
    /// The last closed ledger.
    pub fn latest_ledger(&self) -> LedgerInfo {
        let st = self.state();
        match st.ledgers.last() {
            Some(l) => l.clone(),
            // Unreachable (genesis always exists), but a value beats a panic.
            None => LedgerInfo {
                sequence: 0,
                hash: String::new(),
                closed_at: chrono::Utc::now(),
                successful_transaction_count: 0,
                failed_transaction_count: 0,
                operation_count: 0,
                base_fee_in_stroops: BASE_FEE,
            },
        }
    }
    /// A closed ledger by sequence.
    pub fn ledger(&self, sequence: u32) -> Option<LedgerInfo> {
        let st = self.state();
        let i = usize::try_from(sequence).ok()?.checked_sub(1)?;
        st.ledgers.get(i).cloned()
    }
    /// Closes one ledger now (tests and the control API use it to step time by hand).
    pub fn close_ledger_now(&self) {
        self.state().close_ledger();
    }
    /// Forget everything (accounts, txs, ledgers) but the config.
    pub fn reset(&self) {
        let mut st = self.state();
        let config = st.config.clone();
        *st = State::new(config);
    }
}

/// Waits for an accepted transaction's ledger, up to the submit timeout.
async fn wait(accepted: Accept) -> SubmitOutcome {
    match accepted {
        Accept::Done(outcome) => *outcome,
        Accept::Wait { hash, rx, timeout } => match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(record)) => SubmitOutcome::Applied(record),
            _ => SubmitOutcome::Timeout { hash },
        },
    }
}

/// `25000000` → `"2.5000000"`.
pub fn format_amount(stroops: Stroops) -> String {
    let sign = if stroops < 0 { "-" } else { "" };
    let abs = stroops.unsigned_abs();
    format!("{sign}{}.{:07}", abs / 10_000_000, abs % 10_000_000)
}

/// `"2.5"` → `25000000`; `None` for anything but a positive-or-zero decimal with ≤ 7 places.
pub fn parse_amount(text: &str) -> Option<Stroops> {
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
    whole.checked_mul(10_000_000)?.checked_add(frac_value)
}

#[cfg(test)]
mod tests {
    use super::*;

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
