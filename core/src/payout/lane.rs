//! Sequence lanes: per source account, ONE in-process allocator of sequence numbers, so
//! concurrent payouts never race each other into `tx_bad_seq`.
//!
//! A lane is a tokio mutex around the account's last used sequence (`None` = load it from
//! Horizon). A payout holds its lane from allocating the sequence, through storing the signed
//! envelope, to Horizon's answer to the submission. So each source account has at most one
//! transaction in flight from this process: without channels that is one payout per ledger
//! (Stellar's own bound for one account submitting synchronously); with N channel accounts,
//! N lanes, so up to N payouts land in one ledger. The sequence is incremented locally and
//! re-synced from Horizon (`invalidate`) whenever it may be wrong: a rejection before the ledger
//! (nothing consumed), `tx_bad_seq`, or an envelope that lost the race to be stored.
//!
//! **Several worker processes sharing one wallet.** Two processes paying from the same account
//! would each allocate the same sequence numbers: nothing is ever paid twice (the loser gets
//! `tx_bad_seq`, proves its envelope dead and rebuilds), but the churn wastes ledgers and
//! submissions. So each lane is held by ONE process at a time through a ledger lease
//! ([`super::lane_lease`]): a process builds envelopes only from the lanes it holds, and a
//! payout that finds none waits without counting an attempt. Without leases (a single process,
//! the CLI) every lane is held locally.

use crate::horizon::{HorizonClient, HorizonError, SubmitError, SubmitOk};
use crate::stellar::Wallet;
use crate::throttle::{Throttle, Throttling};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// One source account and its sequence.
pub(super) struct SourceLane {
    wallet: Wallet,
    account: String,
    /// The last sequence number this process used (or Horizon's current one), `None` to reload.
    sequence: Arc<Mutex<Option<i64>>>,
    /// Whether this process holds the lane (always, without lane leases).
    held: AtomicBool,
    /// Set when the lane was (re)taken: another process may have used the account meanwhile,
    /// so the next holder of the mutex reloads the sequence.
    resync: AtomicBool,
}

impl SourceLane {
    pub(super) fn account(&self) -> &str {
        &self.account
    }

    pub(super) fn is_held(&self) -> bool {
        self.held.load(Ordering::Acquire)
    }

    /// Record that this process took (`true`, sequence to reload) or lost the lane.
    pub(super) fn set_held(&self, held: bool) {
        if held {
            self.resync.store(true, Ordering::Release);
        }
        self.held.store(held, Ordering::Release);
    }
}

/// Why a sequence number could not be allocated.
#[derive(Debug, thiserror::Error)]
pub enum SequenceError {
    /// Horizon could not be asked for the account.
    #[error(transparent)]
    Horizon(#[from] HorizonError),
    /// The source account does not exist on chain.
    #[error(
        "source account {0} does not exist on chain: fund it (the app wallet) or recreate the channel with `pi-payments channels create`"
    )]
    NoAccount(String),
}

impl Throttling for SequenceError {
    /// Horizon throttling the account read.
    fn throttle(&self) -> Option<Throttle> {
        match self {
            SequenceError::Horizon(e) => e.throttle(),
            SequenceError::NoAccount(_) => None,
        }
    }
}

/// Exclusive use of one source account until dropped.
pub struct LaneGuard {
    lane: Arc<SourceLane>,
    guard: OwnedMutexGuard<Option<i64>>,
}

impl LaneGuard {
    /// The source account (`G…`).
    pub fn account(&self) -> &str {
        &self.lane.account
    }

    /// Its wallet (to sign as the transaction source).
    pub fn wallet(&self) -> &Wallet {
        &self.lane.wallet
    }

    /// The next sequence number of this account (loaded from Horizon when not known).
    pub async fn next_sequence(&mut self, horizon: &HorizonClient) -> Result<i64, SequenceError> {
        let current = match *self.guard {
            Some(s) => s,
            None => {
                horizon
                    .account(&self.lane.account)
                    .await?
                    .ok_or_else(|| SequenceError::NoAccount(self.lane.account.clone()))?
                    .sequence
            }
        };
        let next = current.saturating_add(1);
        *self.guard = Some(next);
        Ok(next)
    }

    /// Forget the sequence: the next allocation re-reads it from Horizon.
    pub fn invalidate(&mut self) {
        *self.guard = None;
    }

    /// After submitting a transaction from this lane: keep the sequence only when the
    /// submission may have used it (landed, may still land, or failed in a ledger); otherwise
    /// Horizon rejected it before the ledger and the sequence is re-read.
    pub fn after_submit(&mut self, outcome: &Result<SubmitOk, SubmitError>) {
        match outcome {
            Ok(_) | Err(SubmitError::Timeout | SubmitError::Transport(_)) => {}
            Err(SubmitError::Failed { failure, .. }) if failure.consumed_sequence() => {}
            Err(_) => self.invalidate(),
        }
    }
}

/// The lanes of the app wallet and of the channel accounts.
pub struct Lanes {
    app: Arc<SourceLane>,
    channels: Vec<Arc<SourceLane>>,
    next: AtomicUsize,
}

impl Lanes {
    /// Lanes for `app` and `channels` (a channel equal to the app wallet, or repeated, is ignored).
    pub fn new(app: Wallet, channels: Vec<Wallet>) -> Lanes {
        let lane = |wallet: Wallet| {
            Arc::new(SourceLane {
                account: wallet.public_key(),
                wallet,
                sequence: Arc::new(Mutex::new(None)),
                held: AtomicBool::new(true),
                resync: AtomicBool::new(false),
            })
        };
        let app = lane(app);
        let mut seen = vec![app.account.clone()];
        let mut lanes = Vec::new();
        for c in channels {
            let key = c.public_key();
            if !seen.contains(&key) {
                seen.push(key);
                lanes.push(lane(c));
            }
        }
        Lanes {
            app,
            channels: lanes,
            next: AtomicUsize::new(0),
        }
    }

    /// Whether payouts use channel accounts as transaction sources.
    pub fn uses_channels(&self) -> bool {
        !self.channels.is_empty()
    }

    /// How many channels.
    pub fn channel_count(&self) -> usize {
        self.channels.len()
    }

    /// The channel accounts' addresses.
    pub fn channel_accounts(&self) -> Vec<String> {
        self.channels.iter().map(|c| c.account.clone()).collect()
    }

    /// A source for a new payout envelope among the lanes this process holds: a free channel
    /// (round-robin start, so work spreads), else wait for the next held one in turn; the app
    /// wallet when there are no channels. `None` when another process holds every source.
    pub async fn acquire_for_payment(&self) -> Option<LaneGuard> {
        if self.channels.is_empty() {
            return Self::lock_held(&self.app).await;
        }
        let n = self.channels.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let held: Vec<&Arc<SourceLane>> = (0..n)
            .map(|i| &self.channels[(start + i) % n])
            .filter(|l| l.is_held())
            .collect();
        for lane in &held {
            if let Ok(guard) = lane.sequence.clone().try_lock_owned() {
                return Some(Self::guard(lane, guard));
            }
        }
        Self::lock_held(held.first()?).await
    }

    /// The app wallet's lane (channel creation, or payouts without channels).
    pub async fn acquire_app(&self) -> LaneGuard {
        Self::lock(&self.app).await
    }

    /// The lane of `account` (to resubmit a stored envelope in order): `Ok(None)` when the
    /// account is not one of ours, `Err` when another process holds its lane.
    pub async fn acquire_account(&self, account: &str) -> Result<Option<LaneGuard>, HeldElsewhere> {
        let Some(lane) = self.all().find(|l| l.account == account) else {
            return Ok(None);
        };
        Self::lock_held(lane).await.map(Some).ok_or(HeldElsewhere)
    }

    /// Every lane: the app wallet's, then the channels'.
    pub(super) fn all(&self) -> impl Iterator<Item = &Arc<SourceLane>> {
        std::iter::once(&self.app).chain(self.channels.iter())
    }

    /// The accounts whose lanes this process holds now.
    pub fn held_accounts(&self) -> Vec<String> {
        self.all()
            .filter(|l| l.is_held())
            .map(|l| l.account.clone())
            .collect()
    }

    /// Lock `lane` if this process holds it (re-checked after the wait: it may have been lost).
    async fn lock_held(lane: &Arc<SourceLane>) -> Option<LaneGuard> {
        if !lane.is_held() {
            return None;
        }
        let guard = Self::lock(lane).await;
        lane.is_held().then_some(guard)
    }

    async fn lock(lane: &Arc<SourceLane>) -> LaneGuard {
        Self::guard(lane, lane.sequence.clone().lock_owned().await)
    }

    /// The guard of a locked lane; a lane taken over from another process reloads its sequence.
    fn guard(lane: &Arc<SourceLane>, mut guard: OwnedMutexGuard<Option<i64>>) -> LaneGuard {
        if lane.resync.swap(false, Ordering::AcqRel) {
            *guard = None;
        }
        LaneGuard {
            lane: lane.clone(),
            guard,
        }
    }
}

/// Another worker process holds the lane of this source account (its lease).
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("the source account's lane is held by another worker process")]
pub struct HeldElsewhere;

#[cfg(test)]
mod tests {
    use crate::horizon::HorizonClient;
    use crate::payout::lane::Lanes;
    use crate::stellar::Wallet;

    #[tokio::test]
    async fn channels_are_deduplicated_and_spread() {
        let app = Wallet::generate();
        let c1 = Wallet::generate();
        let c2 = Wallet::generate();
        let lanes = Lanes::new(
            app.clone(),
            vec![c1.clone(), app.clone(), c1.clone(), c2.clone()],
        );
        assert_eq!(lanes.channel_count(), 2);
        let a = lanes.acquire_for_payment().await.unwrap();
        let b = lanes.acquire_for_payment().await.unwrap();
        assert_ne!(a.account(), b.account(), "a free channel is preferred");
        assert_ne!(a.account(), app.public_key());
        drop(a);
        let c = lanes.acquire_for_payment().await.unwrap();
        assert_ne!(c.account(), b.account());
        assert!(
            lanes
                .acquire_account(&app.public_key())
                .await
                .unwrap()
                .is_some()
        );
        assert!(lanes.acquire_account("GUNKNOWN").await.unwrap().is_none());
    }

    #[tokio::test]
    async fn only_held_lanes_are_used_and_a_retaken_lane_reloads_its_sequence() {
        let app = Wallet::generate();
        let lanes = Lanes::new(app.clone(), Vec::new());
        lanes.app.set_held(false);
        assert!(lanes.acquire_for_payment().await.is_none());
        assert!(lanes.acquire_account(&app.public_key()).await.is_err());
        assert!(lanes.held_accounts().is_empty());
        lanes.app.set_held(true);
        {
            let mut g = lanes.acquire_for_payment().await.unwrap();
            assert_eq!(*g.guard, None);
            *g.guard = Some(41);
        }
        assert_eq!(
            *lanes.acquire_app().await.guard,
            Some(41),
            "kept while held"
        );
        // Lost and taken again: another process may have used the account meanwhile.
        lanes.app.set_held(false);
        lanes.app.set_held(true);
        assert_eq!(
            *lanes.acquire_app().await.guard,
            None,
            "reloaded after a takeover"
        );
    }

    #[tokio::test]
    async fn without_channels_the_app_wallet_is_the_lane() {
        let app = Wallet::generate();
        let lanes = Lanes::new(app.clone(), Vec::new());
        assert!(!lanes.uses_channels());
        let mut g = lanes.acquire_for_payment().await.unwrap();
        assert_eq!(g.account(), app.public_key());
        *g.guard = Some(41);
        let h =
            HorizonClient::new("http://127.0.0.1:9", std::time::Duration::from_millis(50)).unwrap();
        assert_eq!(g.next_sequence(&h).await.unwrap(), 42);
        assert_eq!(g.next_sequence(&h).await.unwrap(), 43);
        g.invalidate();
        assert!(g.next_sequence(&h).await.is_err(), "reloads from Horizon");
    }
}
