//! [`PayoutProcessor`] and its step loop, [`PayoutProcessor::step`]: advance one payout from its
//! stored step (pi-platform.md §5). The state handlers live beside it, one file per stage:
//! `create` (requested), `submit` (created, signed), `complete` (confirmed, cancelled), and
//! `channels` funds channel accounts; this file holds what they share (how a step records a
//! retry, a wait, a give-up or a failure).
//!
//! Every step reads the payout from the ledger, does the one external thing its state calls for,
//! and records the result through a conditional transition before anything else happens. So a
//! step that runs twice, or on two workers at once, or again after a crash at any point, repeats
//! at most an idempotent call (a Pi GET, a `/complete` with the same txid, a resubmission of the
//! SAME envelope), never a new payment:
//!
//! | state | what the step does |
//! |---|---|
//! | `requested` | `POST /v2/payments` with `metadata.payout_id`; store the identifier first. On `ongoing_payment_found`: adopt it if it carries our payout id; if it is another payout of ours, step that one; if unknown, wait (and report) |
//! | `created` | take a sequence lane, build and sign the envelope, STORE it (envelope, hash, max time), then submit it |
//! | `signed` | resubmit the stored envelope until Horizon answers or it is proven dead: `tx_bad_seq` with the sequence consumed and the hash unknown, or past `max_time` (+ margin) with the hash unknown, or `tx_insufficient_fee`; then scan the app wallet's transactions for the memo and only then go back to `created` |
//! | `confirmed` | `POST …/complete {txid}`; `already_completed` counts only after a GET shows our txid |
//!
//! Definite business failures (`missing_scope`, `user_not_found`, `op_underfunded`,
//! `op_no_destination`, …) end as `failed` with a readable reason and a `payout.failed` event;
//! after an in-ledger failure the Pi payment is cancelled so the Pioneer is not blocked. Transient
//! failures come back as [`StepOutcome::RetryAt`] with exponential backoff; after
//! [`PayoutConfig::max_attempts`] of them in one step the payout goes to `needs_attention`.
//! Throttling (429, 503, a timeout from Pi or Horizon) is not a failure: it is a
//! [`StepOutcome::RetryAt`] after the `Retry-After` (or a backoff) that never counts towards
//! that cap (`retry_later_on`, see [`crate::throttle`]).

use super::chain_clock::ChainClock;
use super::config::PayoutConfig;
use super::error::PayoutError;
use super::fault::CrashPoint;
use super::lane::Lanes;
use super::lane_lease::LaneLeases;
use super::outcome::{Flow, StepOutcome};
use crate::horizon::{HorizonClient, HorizonError};
use crate::ids::{PaymentId, PayoutId};
use crate::jobs::{Job, JobQueue};
use crate::ledger::{
    Ledger, LedgerError, PayoutApplied, PayoutNote, PayoutPatch, PayoutRow, Swept, now_ms,
};
use crate::pi_client::{PiClient, PiError};
use crate::state::{PayoutState, PayoutTransition};
use crate::stellar::{Network, PI_BASE_FEE_STROOPS, Wallet};
use crate::throttle::Throttling;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How many state moves one [`PayoutProcessor::step`] call makes at most before it hands back
/// [`StepOutcome::Again`] (so one payout cannot monopolise a worker slot).
const MAX_MOVES_PER_STEP: usize = 12;
type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<StepOutcome, PayoutError>> + Send + 'a>>;

/// Runs the payout pipeline. Cheap to clone; share one per process so the sequence lanes are
/// shared (see [`crate::payout::lane`]).
#[derive(Clone)]
pub struct PayoutProcessor {
    pub(super) ledger: Ledger,
    pub(super) pi: PiClient,
    pub(super) horizon: HorizonClient,
    pub(super) app: Wallet,
    pub(super) app_address: String,
    pub(super) network: Network,
    pub(super) lanes: Arc<Lanes>,
    pub(super) config: PayoutConfig,
    pub(super) crash: Option<CrashPoint>,
    /// The base fee and when it was read: one `/fee_stats` read per [`PayoutConfig::fee_cache`]
    /// for all payouts of the process (an async mutex, so a burst of payouts waits for the one
    /// read in flight instead of each reading it).
    pub(super) fee: Arc<tokio::sync::Mutex<Option<(Instant, i64)>>>,
    /// The chain's clock (latest ledger close), for `max_time` and expiry.
    pub(super) chain_clock: ChainClock,
    /// With [`PayoutProcessor::with_lane_leases`]: the task holding this process's lanes.
    pub(super) lane_leases: Option<Arc<LaneLeases>>,
    /// With [`PayoutProcessor::with_queue`]: where a settled payout wakes the payout waiting
    /// behind it (without one, waiters find out on their own after `max_backoff`).
    pub(super) queue: Option<Arc<dyn JobQueue>>,
}

impl std::fmt::Debug for PayoutProcessor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PayoutProcessor")
            .field("app", &self.app_address)
            .field("network", &self.network.passphrase())
            .field("channels", &self.lanes.channel_count())
            .field("config", &self.config)
            .finish()
    }
}

impl PayoutProcessor {
    /// A processor paying from `wallet` (the app wallet, `PI_WALLET_SEED`) on `network`, with
    /// optional channel accounts (`PI_CHANNEL_SEEDS`) as transaction sources.
    pub fn new(
        ledger: Ledger,
        pi: PiClient,
        horizon: HorizonClient,
        wallet: Wallet,
        network: Network,
        channels: Vec<Wallet>,
    ) -> PayoutProcessor {
        let app_address = wallet.public_key();
        PayoutProcessor {
            lanes: Arc::new(Lanes::new(wallet.clone(), channels)),
            ledger,
            pi,
            horizon,
            app: wallet,
            app_address,
            network,
            config: PayoutConfig::default(),
            crash: None,
            fee: Arc::new(tokio::sync::Mutex::new(None)),
            chain_clock: ChainClock::new(PayoutConfig::default().fee_cache),
            lane_leases: None,
            queue: None,
        }
    }

    /// Share the payout lanes with other worker processes on the same ledger: from now on
    /// this processor builds and submits envelopes only from the sources whose lane lease
    /// `holder` (unique per process) holds ([`crate::payout::lane_lease`]); payouts whose
    /// source is held elsewhere wait without counting an attempt. Call inside the runtime.
    pub fn with_lane_leases(mut self, holder: &str) -> PayoutProcessor {
        self.lane_leases = Some(Arc::new(LaneLeases::spawn(
            self.ledger.clone(),
            self.lanes.clone(),
            holder.to_owned(),
        )));
        self
    }

    /// At a graceful stop: give back the lanes this process holds (no-op without lane leases).
    pub async fn release_lanes(&self) {
        if let Some(leases) = &self.lane_leases {
            leases.release().await;
        }
    }

    /// The transaction sources whose lanes this process holds now.
    pub fn held_lanes(&self) -> Vec<String> {
        self.lanes.held_accounts()
    }

    /// Wake payouts through `queue`: when a payout settles, the one waiting behind it for
    /// Pi's open-payment slot gets its job at once instead of polling creates.
    pub fn with_queue(mut self, queue: Arc<dyn JobQueue>) -> PayoutProcessor {
        self.queue = Some(queue);
        self
    }

    /// Replace the tunables.
    pub fn with_config(mut self, config: PayoutConfig) -> PayoutProcessor {
        self.chain_clock = ChainClock::new(config.fee_cache);
        self.config = config;
        self
    }

    /// Test fault injection: every step stops with [`PayoutError::SimulatedCrash`] at `point`.
    #[doc(hidden)]
    pub fn crash_at(mut self, point: CrashPoint) -> PayoutProcessor {
        self.crash = Some(point);
        self
    }

    /// The app wallet's address (`G…`).
    pub fn app_address(&self) -> &str {
        &self.app_address
    }

    /// The channel accounts in use.
    pub fn channel_accounts(&self) -> Vec<String> {
        self.lanes.channel_accounts()
    }

    /// The ledger this processor records into.
    pub fn ledger(&self) -> &Ledger {
        &self.ledger
    }

    /// Advance payout `id` from its stored step as far as it can go now. Safe to run twice or
    /// concurrently for the same payout.
    pub async fn step(&self, id: &PayoutId) -> Result<StepOutcome, PayoutError> {
        self.step_with(id, true).await
    }

    pub(super) fn step_with<'a>(
        &'a self,
        id: &'a PayoutId,
        resolve_others: bool,
    ) -> StepFuture<'a> {
        Box::pin(async move {
            for _ in 0..MAX_MOVES_PER_STEP {
                let row = self
                    .ledger
                    .payout(id)
                    .await?
                    .ok_or_else(|| PayoutError::NotFound(id.clone()))?;
                let flow = match row.state {
                    PayoutState::Requested => self.create_at_pi(&row, resolve_others).await?,
                    PayoutState::Created => self.sign_and_submit(&row).await?,
                    PayoutState::Signed => self.resubmit(&row).await?,
                    PayoutState::Confirmed => self.complete_at_pi(&row).await?,
                    PayoutState::Completed => Flow::Stop(StepOutcome::Done),
                    PayoutState::Cancelled => self.close_withdrawn(&row).await?,
                    PayoutState::Failed => Flow::Stop(StepOutcome::Failed {
                        reason: row.reason.clone().unwrap_or_default(),
                    }),
                    PayoutState::NeedsAttention => Flow::Stop(StepOutcome::NeedsAttention {
                        reason: row.reason.clone().unwrap_or_default(),
                    }),
                };
                if let Flow::Stop(outcome) = flow {
                    if matches!(
                        outcome,
                        StepOutcome::Done
                            | StepOutcome::Failed { .. }
                            | StepOutcome::NeedsAttention { .. }
                    ) {
                        self.wake_next_behind(id).await;
                    }
                    return Ok(outcome);
                }
            }
            Ok(StepOutcome::Again)
        })
    }

    /// Payout `id` settled: wake the oldest payout waiting behind it (best effort: a lost wake
    /// costs the waiter its fallback wait, never a payment).
    async fn wake_next_behind(&self, id: &PayoutId) {
        let next = match self.ledger.next_behind(id).await {
            Ok(Some(next)) => next,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(payout_id = %id, "finding the payout waiting behind this one failed: {e}");
                return;
            }
        };
        tracing::info!(payout_id = %id, next = %next, "waking the payout waiting behind this one");
        if let Some(queue) = &self.queue
            && let Err(e) = queue.enqueue(Job::payout(next.clone())).await
        {
            tracing::warn!(payout_id = %next, "waking a waiting payout failed: {e}; it retries after its fallback wait");
        }
    }

    pub(super) fn crash_if(&self, point: CrashPoint) -> Result<(), PayoutError> {
        if self.crash == Some(point) {
            return Err(PayoutError::SimulatedCrash(point));
        }
        Ok(())
    }

    // ---- ledger helpers ---------------------------------------------------------------------

    /// Apply a transition; `None` when the payout moved elsewhere meanwhile (re-read it).
    pub(super) async fn apply(
        &self,
        row: &PayoutRow,
        transition: PayoutTransition,
        detail: Option<&str>,
        patch: PayoutPatch,
    ) -> Result<Option<PayoutApplied>, PayoutError> {
        match self
            .ledger
            .apply_payout(&row.id, transition, detail, 0, patch)
            .await
        {
            Ok(applied) => Ok(Some(applied)),
            Err(LedgerError::InvalidPayoutTransition(e)) => {
                tracing::info!(payout_id = %row.id, "payout moved meanwhile: {e}");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Stop with `outcome` if the transition moved the payout; otherwise re-read.
    pub(super) fn moved_then(applied: Option<PayoutApplied>, outcome: StepOutcome) -> Flow {
        match applied {
            Some(PayoutApplied::Moved { .. }) => Flow::Stop(outcome),
            _ => Flow::Continue,
        }
    }

    pub(super) fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.config
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.max_backoff)
    }

    /// A transient failure of the current step: count it, and retry later, or give up after
    /// [`PayoutConfig::max_attempts`].
    pub(super) async fn retry_later(
        &self,
        row: &PayoutRow,
        cause: &str,
        detail: &str,
        retry_after: Option<Duration>,
    ) -> Result<Flow, PayoutError> {
        let attempts = row.attempts.saturating_add(1);
        if attempts >= self.config.max_attempts {
            return self
                .give_up(row, format!("{detail} (gave up after {attempts} attempts)"))
                .await;
        }
        let delay = retry_after
            .unwrap_or_else(|| self.backoff(attempts))
            .min(self.config.max_backoff.max(Duration::from_secs(1)));
        tracing::warn!(payout_id = %row.id, attempts, ?delay, "{cause}: {detail}");
        self.pause(row, cause, detail, delay, Pause::Failed { attempts })
            .await
    }

    /// A failure of the current step caused by `e`: when it only asks us to slow down (429,
    /// 503, a timeout from Pi or Horizon) wait, uncounted, for its `Retry-After` or a backoff
    /// (throttling is waiting, not failing; see [`crate::throttle`]); otherwise
    /// [`retry_later`](Self::retry_later).
    pub(super) async fn retry_later_on<E: Throttling>(
        &self,
        row: &PayoutRow,
        cause: &str,
        e: &E,
    ) -> Result<Flow, PayoutError> {
        let Some(throttle) = e.throttle() else {
            return self.retry_later(row, cause, &e.to_string(), None).await;
        };
        let delay = throttle.delay(0, self.config.base_backoff, self.config.max_backoff);
        let until = now_ms().saturating_add(millis(delay));
        tracing::info!(payout_id = %row.id, ?delay, "{cause}: throttled, waiting: {e}");
        // Held off the sweeper like any wait, and its sweep count starts over.
        self.ledger
            .throttled(Swept::Payout, row.id.as_str(), until)
            .await?;
        self.wait(row, "throttled", &format!("{cause}: {e}"), delay, false)
            .await
    }

    /// Wait on something outside this payout that is moving (a payout of ours ahead, a lane
    /// another process holds): like a throttled step, the row is held off the sweeper until
    /// then and its count of sweeps without movement starts over, so waiting behind others
    /// never adds up to `needs_attention`.
    pub(super) async fn wait_behind(
        &self,
        row: &PayoutRow,
        cause: &str,
        detail: &str,
        delay: Duration,
    ) -> Result<Flow, PayoutError> {
        let until = now_ms().saturating_add(millis(delay));
        self.ledger
            .throttled(Swept::Payout, row.id.as_str(), until)
            .await?;
        self.wait(row, cause, detail, delay, false).await
    }

    /// Wait without counting a failure (an envelope in flight, a payout of ours ahead).
    pub(super) async fn wait(
        &self,
        row: &PayoutRow,
        cause: &str,
        detail: &str,
        delay: Duration,
        submitted: bool,
    ) -> Result<Flow, PayoutError> {
        self.pause(row, cause, detail, delay, Pause::Wait { submitted })
            .await
    }

    /// Record why the step stops and that it runs again `delay` from now (for the sweeper),
    /// then stop with [`StepOutcome::RetryAt`].
    async fn pause(
        &self,
        row: &PayoutRow,
        cause: &str,
        detail: &str,
        delay: Duration,
        pause: Pause,
    ) -> Result<Flow, PayoutError> {
        let (attempts, reason, submitted) = match pause {
            Pause::Failed { attempts } => (attempts, Some(detail), false),
            Pause::Wait { submitted } => (row.attempts, None, submitted),
        };
        self.ledger
            .note_payout(
                &row.id,
                PayoutNote {
                    cause,
                    detail: Some(detail),
                    attempts,
                    next_check_at: Some(now_ms().saturating_add(millis(delay))),
                    reason,
                    submitted,
                },
            )
            .await?;
        Ok(Flow::Stop(StepOutcome::RetryAt(delay)))
    }

    pub(super) async fn give_up(
        &self,
        row: &PayoutRow,
        reason: String,
    ) -> Result<Flow, PayoutError> {
        tracing::error!(payout_id = %row.id, "payout needs attention: {reason}");
        let applied = self
            .apply(
                row,
                PayoutTransition::GaveUp {
                    reason: reason.clone(),
                },
                None,
                PayoutPatch::default(),
            )
            .await?;
        Ok(Self::moved_then(
            applied,
            StepOutcome::NeedsAttention { reason },
        ))
    }

    /// End the payout as `failed` (after cancelling its Pi payment when asked, so the Pioneer
    /// is not blocked by an open payment).
    pub(super) async fn fail(
        &self,
        row: &PayoutRow,
        reason: String,
        cancel_pi: bool,
        submits: i64,
    ) -> Result<Flow, PayoutError> {
        if cancel_pi
            && let Some(pid) = &row.pi_payment_id
            && let Err(e) = self.cancel_at_pi(row, pid).await
        {
            if let PiError::AlreadyCompleted { .. } = e.root() {
                return self
                    .give_up(
                        row,
                        format!(
                            "{reason}; but Pi says payment {pid} is completed: check it on Pi and Horizon"
                        ),
                    )
                    .await;
            }
            if e.throttle().is_some() {
                return self.retry_later_on(row, "pi_cancel_failed", &e).await;
            }
            return self
                .retry_later(
                    row,
                    "pi_cancel_failed",
                    &format!("cancelling Pi payment {pid} after: {reason}: {e}"),
                    e.retry_after(),
                )
                .await;
        }
        tracing::warn!(payout_id = %row.id, "payout failed: {reason}");
        let applied = self
            .apply(
                row,
                PayoutTransition::Failed {
                    reason: reason.clone(),
                },
                None,
                PayoutPatch {
                    submits,
                    ..PayoutPatch::default()
                },
            )
            .await?;
        Ok(Self::moved_then(applied, StepOutcome::Failed { reason }))
    }

    /// Cancel Pi payment `pid` of `row`. `Ok` when it is closed now (or already was, or Pi
    /// refuses for good: logged, nothing more to do); `Err` when the caller must decide: Pi says
    /// it is completed ([`PiError::AlreadyCompleted`]), or a retryable failure.
    pub(super) async fn cancel_at_pi(
        &self,
        row: &PayoutRow,
        pid: &PaymentId,
    ) -> Result<(), PiError> {
        let Err(e) = self.pi.cancel(pid).await else {
            return Ok(());
        };
        match e.root() {
            PiError::CancelledPayment | PiError::PaymentNotFound => Ok(()),
            PiError::AlreadyCompleted { .. } => Err(e),
            _ if e.is_retryable() => Err(e),
            _ => {
                tracing::warn!(payout_id = %row.id, "cancelling Pi payment {pid} failed: {e}");
                Ok(())
            }
        }
    }

    /// The base fee per operation: `max(/fee_stats, Pi's minimum)`, read at most once per
    /// [`PayoutConfig::fee_cache`] (about a ledger) for the whole process.
    pub(super) async fn base_fee(&self) -> Result<i64, HorizonError> {
        // Held across the read: concurrent payouts share one `/fee_stats` call.
        let mut cached = self.fee.lock().await;
        if let Some((at, fee)) = *cached
            && at.elapsed() < self.config.fee_cache
        {
            return Ok(fee);
        }
        let fee = self.horizon.base_fee().await?.max(PI_BASE_FEE_STROOPS);
        *cached = Some((Instant::now(), fee));
        Ok(fee)
    }
}

/// How [`PayoutProcessor::pause`] records a pause.
enum Pause {
    /// A failed attempt: counted (`attempts` is the new count) and its detail kept as the reason.
    Failed { attempts: i64 },
    /// A plain wait: not counted; `submitted` says whether the envelope was just submitted.
    Wait { submitted: bool },
}

/// `d` in whole milliseconds, saturating (for `next_check_at` timestamps).
fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
