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
//! **Several worker processes sharing one wallet.** The lanes live in one process. Two processes
//! paying from the same accounts would each allocate the same sequence numbers: nothing is ever
//! paid twice (the loser gets `tx_bad_seq`, proves its envelope dead and rebuilds), but the
//! `tx_bad_seq` churn wastes ledgers. pi-payments therefore runs the payout queue in ONE worker
//! process (with as much in-process concurrency as wanted); other workers may serve the other
//! queues. Scaling payouts across processes means giving each process its own channel accounts
//! (`PI_CHANNEL_SEEDS` differ per process), which keeps every lane in one process.

use crate::horizon::{HorizonClient, HorizonError, SubmitError, SubmitOk};
use crate::stellar::Wallet;
use crate::throttle::{Throttle, Throttling};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use tokio::sync::{Mutex, OwnedMutexGuard};

/// One source account and its sequence.
struct SourceLane {
    wallet: Wallet,
    account: String,
    /// The last sequence number this process used (or Horizon's current one), `None` to reload.
    sequence: Arc<Mutex<Option<i64>>>,
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

    /// A source for a new payout envelope: a free channel (round-robin start, so work spreads),
    /// else wait for the next one in turn; the app wallet when there are no channels.
    pub async fn acquire_for_payment(&self) -> LaneGuard {
        if self.channels.is_empty() {
            return Self::lock(&self.app).await;
        }
        let n = self.channels.len();
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        for i in 0..n {
            let lane = &self.channels[(start + i) % n];
            if let Ok(guard) = lane.sequence.clone().try_lock_owned() {
                return LaneGuard {
                    lane: lane.clone(),
                    guard,
                };
            }
        }
        Self::lock(&self.channels[start % n]).await
    }

    /// The app wallet's lane (channel creation, or payouts without channels).
    pub async fn acquire_app(&self) -> LaneGuard {
        Self::lock(&self.app).await
    }

    /// The lane of `account`, if it is one of ours (to resubmit a stored envelope in order).
    pub async fn acquire_account(&self, account: &str) -> Option<LaneGuard> {
        let lane = std::iter::once(&self.app)
            .chain(self.channels.iter())
            .find(|l| l.account == account)?;
        Some(Self::lock(lane).await)
    }

    async fn lock(lane: &Arc<SourceLane>) -> LaneGuard {
        LaneGuard {
            lane: lane.clone(),
            guard: lane.sequence.clone().lock_owned().await,
        }
    }
}

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
        let a = lanes.acquire_for_payment().await;
        let b = lanes.acquire_for_payment().await;
        assert_ne!(a.account(), b.account(), "a free channel is preferred");
        assert_ne!(a.account(), app.public_key());
        drop(a);
        let c = lanes.acquire_for_payment().await;
        assert_ne!(c.account(), b.account());
        assert!(lanes.acquire_account(&app.public_key()).await.is_some());
        assert!(lanes.acquire_account("GUNKNOWN").await.is_none());
    }

    #[tokio::test]
    async fn without_channels_the_app_wallet_is_the_lane() {
        let app = Wallet::generate();
        let lanes = Lanes::new(app.clone(), Vec::new());
        assert!(!lanes.uses_channels());
        let mut g = lanes.acquire_for_payment().await;
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
