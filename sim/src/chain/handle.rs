//! [`Chain`], the handle everything else holds: it locks the ledger state for each call, runs
//! the task that closes a ledger every `ledger_seconds`, and makes a submitter wait for the
//! ledger that takes its transaction.

use super::ledger::{Accept, Account, State};
use super::records::{
    AccountInfo, BASE_FEE, ChainConfig, LedgerInfo, Stroops, SubmitOutcome, TxRecord,
};
use crate::chain_xdr::build_payment_envelope;
use crate::keys::encode_account_id;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// An account as the state file keeps it.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct AccountSnapshot {
    id: String,
    balance: Stroops,
    sequence: i64,
    last_modified: u32,
}

/// What the state file keeps of the chain.
#[derive(serde::Serialize, serde::Deserialize)]
pub(crate) struct ChainSnapshot {
    accounts: Vec<AccountSnapshot>,
    ledgers: Vec<LedgerInfo>,
    txs: Vec<TxRecord>,
}

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

/// How often an instant chain (`ledger_seconds` 0, one ledger per submission) closes an empty
/// ledger when nothing is submitted: a real network closes ledgers, empty or not, every few
/// seconds, and the chain's clock (the latest close time) must move for time bounds to expire.
const INSTANT_HEARTBEAT: Duration = Duration::from_secs(1);

/// Closes a ledger every `ledger_seconds` while the chain lives; with 0, an empty one each
/// [`INSTANT_HEARTBEAT`] unless a submission closed one meanwhile.
async fn ledger_loop(weak: Weak<Inner>, wake: Arc<Notify>) {
    loop {
        let seconds = match weak.upgrade() {
            Some(inner) => lock(&inner.state).config.ledger_seconds,
            None => return,
        };
        let wait = if seconds > 0.0 {
            Duration::from_secs_f64(seconds)
        } else {
            INSTANT_HEARTBEAT
        };
        tokio::select! {
            _ = tokio::time::sleep(wait) => {
                let Some(inner) = weak.upgrade() else { return };
                let mut st = lock(&inner.state);
                if seconds > 0.0 || st.heartbeat_due(INSTANT_HEARTBEAT) {
                    st.close_ledger();
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
    /// Moves the chain's clock to the real clock + `seconds` (validators whose time differs
    /// from the app server's).
    pub fn set_clock_offset(&self, seconds: i64) {
        self.state().config.clock_offset_seconds = seconds;
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
            let max_time = st.now_unix() + PAY_VALIDITY_SECS;
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
                closed_at: st.now(),
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
    /// What the state file keeps of the chain: accounts, closed ledgers and applied
    /// transactions (queued ones are not kept: their submitters are gone after a restart).
    pub(crate) fn snapshot(&self) -> ChainSnapshot {
        let st = self.state();
        ChainSnapshot {
            accounts: st
                .accounts
                .iter()
                .map(|(key, acc)| AccountSnapshot {
                    id: encode_account_id(key),
                    balance: acc.balance,
                    sequence: acc.sequence,
                    last_modified: acc.last_modified,
                })
                .collect(),
            ledgers: st.ledgers.clone(),
            txs: st.txs.clone(),
        }
    }

    /// Replace the chain's accounts, ledgers and transactions with a snapshot's (the config
    /// stays); `false`, changing nothing, if an account id is unreadable.
    pub(crate) fn restore(&self, snapshot: ChainSnapshot) -> bool {
        let mut accounts = std::collections::HashMap::new();
        for acc in snapshot.accounts {
            let Some(key) = crate::keys::decode_account_id(&acc.id) else {
                return false;
            };
            accounts.insert(
                key,
                Account {
                    balance: acc.balance,
                    sequence: acc.sequence,
                    last_modified: acc.last_modified,
                },
            );
        }
        let mut st = self.state();
        let config = st.config.clone();
        let mut fresh = State::new(config);
        if !snapshot.ledgers.is_empty() {
            fresh.ledgers = snapshot.ledgers;
        }
        fresh.accounts = accounts;
        for tx in snapshot.txs {
            fresh.record(tx);
        }
        *st = fresh;
        true
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
