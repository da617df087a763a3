//! The chain's state and stellar-core's rules over it: which submissions enter the queue (and
//! why the others are refused, with Horizon's result codes), how a ledger closes, and how a
//! transaction is applied (fee and sequence always, its operations all or nothing).

use super::records::{
    BASE_FEE, ChainConfig, LedgerInfo, MIN_BALANCE, OpRecord, ResultCodes, Stroops, SubmitOutcome,
    TxRecord,
};
use crate::chain_xdr::{self as xdr, DecodeError, Decoded};
use crate::keys::{encode_account_id, hint_of, verify};
use sha2::{Digest, Sha256};
use std::collections::{HashMap, HashSet, VecDeque};
use std::time::Duration;
use stellar_xdr::{
    Asset, CreateAccountResult, DecoratedSignature, OperationBody, OperationResult,
    OperationResultTr, PaymentResult, PublicKey, TransactionResultResult,
};
use tokio::sync::oneshot;

/// An account as the ledger holds it.
#[derive(Clone, Debug)]
pub(super) struct Account {
    pub(super) balance: Stroops,
    pub(super) sequence: i64,
    pub(super) last_modified: u32,
}

/// An accepted transaction waiting for its ledger.
pub(super) struct Pending {
    pub(super) hash: String,
    decoded: Decoded,
    source: [u8; 32],
}

/// Everything the chain holds, behind the handle's one lock.
pub(super) struct State {
    pub(super) config: ChainConfig,
    pub(super) network_id: [u8; 32],
    pub(super) accounts: HashMap<[u8; 32], Account>,
    /// `ledgers[i].sequence == i + 1`; ledger 1 is the genesis ledger.
    pub(super) ledgers: Vec<LedgerInfo>,
    pub(super) txs: Vec<TxRecord>,
    pub(super) by_hash: HashMap<String, usize>,
    /// Account id → indices into `txs` of the transactions it took part in, oldest first.
    pub(super) by_account: HashMap<String, Vec<usize>>,
    pub(super) queue: VecDeque<Pending>,
    /// Submitters waiting for a queued hash to land.
    pub(super) waiters: HashMap<String, Vec<oneshot::Sender<TxRecord>>>,
}

/// What an acceptance attempt led to: a final answer now, or a wait for a ledger.
pub(super) enum Accept {
    Done(Box<SubmitOutcome>),
    Wait {
        hash: String,
        rx: oneshot::Receiver<TxRecord>,
        timeout: Duration,
    },
}

impl State {
    /// The chain's clock (ledger close times).
    pub(super) fn now(&self) -> chrono::DateTime<chrono::Utc> {
        chrono::Utc::now() + chrono::Duration::seconds(self.config.clock_offset_seconds)
    }

    /// The chain's clock in seconds since the Unix epoch (time bounds are in these).
    pub(super) fn now_unix(&self) -> u64 {
        u64::try_from(self.now().timestamp()).unwrap_or(0)
    }

    pub(super) fn new(config: ChainConfig) -> State {
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

    pub(super) fn latest_sequence(&self) -> u32 {
        self.ledgers.last().map(|l| l.sequence).unwrap_or(0)
    }

    /// Whether the latest ledger closed at least `every` ago (by the chain's clock).
    pub(super) fn heartbeat_due(&self, every: std::time::Duration) -> bool {
        let every = chrono::Duration::from_std(every).unwrap_or(chrono::Duration::MAX);
        self.ledgers
            .last()
            .is_none_or(|l| self.now() - l.closed_at >= every)
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
            closed_at: self.now(),
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
    pub(super) fn next_sequence(&self, source: &[u8; 32]) -> Option<i64> {
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
    pub(super) fn accept(&mut self, envelope_b64: &str) -> Accept {
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
        if let Err(result) = self.validate(&decoded, self.now_unix()) {
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
    pub(super) fn close_ledger(&mut self) {
        let sequence = self.latest_sequence() + 1;
        let now = self.now_unix();
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
        let closed_at = self.now();
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
        self.record(record.clone());
        record
    }

    /// Adds an applied transaction to the record and its indexes (by hash; by every account
    /// that took part: source, and each operation's payer and payee).
    pub(super) fn record(&mut self, record: TxRecord) {
        let idx = self.txs.len();
        self.by_hash.insert(record.hash.clone(), idx);
        let mut participants: Vec<String> = vec![record.source_account.clone()];
        for op in &record.ops {
            participants.push(op.from.clone());
            participants.push(op.to.clone());
        }
        participants.sort();
        participants.dedup();
        for a in participants {
            self.by_account.entry(a).or_default().push(idx);
        }
        self.txs.push(record);
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
