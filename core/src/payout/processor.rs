//! [`PayoutProcessor::step`]: advance one payout from its stored step (pi-platform.md §5).
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
//! [`PayoutConfig::max_attempts`] the payout goes to `needs_attention` with its reason.

use super::lane::{LaneGuard, Lanes, SequenceError};
use crate::amount::PiAmount;
use crate::dto::{CreatePaymentRequest, Direction as PiDirection, PaymentDto};
use crate::horizon::{HorizonClient, HorizonError, SubmitError};
use crate::ids::{PayoutId, Txid, Uid};
use crate::ledger::payouts::PAYOUT_ID_METADATA_KEY;
use crate::ledger::{
    Ledger, LedgerError, PayoutApplied, PayoutNote, PayoutPatch, PayoutRow, now_ms,
};
use crate::pi_client::{PiClient, PiError, VerificationError};
use crate::state::{PayoutState, PayoutTransition};
use crate::stellar::{
    MAX_OPS_PER_TX, Network, PI_BASE_FEE_STROOPS, PaymentTx, StellarError, TxFailure, Wallet,
    unix_now,
};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// How many state moves one [`PayoutProcessor::step`] call makes at most before it hands back
/// [`StepOutcome::Again`] (so one payout cannot monopolise a worker slot).
const MAX_MOVES_PER_STEP: usize = 12;

/// Tunables of the pipeline. `Default` is what production uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutConfig {
    /// `max_time = now + tx_validity` on every envelope (keep it within 60..180 s on Pi: long
    /// enough to land under load, short enough that a lost envelope is rebuilt soon).
    pub tx_validity: Duration,
    /// After `max_time + expiry_margin` an envelope Horizon does not know is dead (a ledger
    /// closed after `max_time` and Horizon ingested it).
    pub expiry_margin: Duration,
    /// Failed attempts of one step before the payout goes to `needs_attention`.
    pub max_attempts: i64,
    /// First backoff after a transient failure (doubles per attempt).
    pub base_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Pause before resubmitting the same envelope after an unknown outcome.
    pub resubmit_delay: Duration,
    /// How long `/fee_stats` is cached.
    pub fee_cache: Duration,
}

impl Default for PayoutConfig {
    fn default() -> PayoutConfig {
        PayoutConfig {
            tx_validity: Duration::from_secs(120),
            expiry_margin: Duration::from_secs(15),
            max_attempts: 8,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            resubmit_delay: Duration::from_secs(1),
            fee_cache: Duration::from_secs(10),
        }
    }
}

/// What the caller (the payout job) should do after a step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StepOutcome {
    /// Completed (or cancelled and closed at Pi): nothing more to do.
    Done,
    /// More to do right away: enqueue the job again now.
    Again,
    /// Run the step again after this delay (also stored as `next_check_at` for the sweeper).
    RetryAt(Duration),
    /// Definitely not paid; the reason is stored and `payout.failed` was emitted.
    Failed { reason: String },
    /// A person must look (`needs_attention`, reason stored); stop retrying.
    NeedsAttention { reason: String },
}

/// A point where a test makes the step stop as if the process died there (fault injection for
/// the crash-safety tests; production never sets one).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CrashPoint {
    /// Pi created the payment; its identifier was NOT stored.
    AfterPiCreate,
    /// The envelope is stored; it was NOT submitted.
    AfterEnvelopeStored,
    /// Horizon accepted the transaction; the confirmation was NOT recorded.
    AfterSubmit,
    /// Pi completed the payment; the completion was NOT recorded.
    AfterComplete,
}

/// Why a step could not run (the job should be retried later); business outcomes are
/// [`StepOutcome`]s, not errors.
#[derive(Debug, thiserror::Error)]
pub enum PayoutError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("payout {0} does not exist: it may have been requested on another database")]
    NotFound(PayoutId),
    #[error("simulated crash at {0:?} (test fault injection)")]
    SimulatedCrash(CrashPoint),
    #[error(transparent)]
    Horizon(#[from] HorizonError),
    #[error(transparent)]
    Stellar(#[from] StellarError),
    #[error(transparent)]
    Sequence(#[from] SequenceError),
    #[error(
        "funding the channel accounts failed ({0}): run the command again; existing channels are skipped"
    )]
    ChannelFunding(String),
}

/// What a state handler decided.
enum Flow {
    /// The payout moved (or someone else moved it): read it again and go on.
    Continue,
    /// Hand this outcome to the caller.
    Stop(StepOutcome),
}

type StepFuture<'a> = Pin<Box<dyn Future<Output = Result<StepOutcome, PayoutError>> + Send + 'a>>;

/// Runs the payout pipeline. Cheap to clone; share one per process so the sequence lanes are
/// shared (see [`super::lane`]).
#[derive(Clone)]
pub struct PayoutProcessor {
    ledger: Ledger,
    pi: PiClient,
    horizon: HorizonClient,
    app: Wallet,
    app_address: String,
    network: Network,
    lanes: Arc<Lanes>,
    config: PayoutConfig,
    crash: Option<CrashPoint>,
    fee: Arc<Mutex<Option<(Instant, i64)>>>,
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
            fee: Arc::new(Mutex::new(None)),
        }
    }

    /// Replace the tunables.
    pub fn with_config(mut self, config: PayoutConfig) -> PayoutProcessor {
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

    fn step_with<'a>(&'a self, id: &'a PayoutId, resolve_others: bool) -> StepFuture<'a> {
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
                    return Ok(outcome);
                }
            }
            Ok(StepOutcome::Again)
        })
    }

    fn crash_if(&self, point: CrashPoint) -> Result<(), PayoutError> {
        if self.crash == Some(point) {
            return Err(PayoutError::SimulatedCrash(point));
        }
        Ok(())
    }

    // ---- ledger helpers ---------------------------------------------------------------------

    /// Apply a transition; `None` when the payout moved elsewhere meanwhile (re-read it).
    async fn apply(
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
    fn moved_then(applied: Option<PayoutApplied>, outcome: StepOutcome) -> Flow {
        match applied {
            Some(PayoutApplied::Moved { .. }) => Flow::Stop(outcome),
            _ => Flow::Continue,
        }
    }

    fn backoff(&self, attempts: i64) -> Duration {
        let exp = u32::try_from(attempts.saturating_sub(1).clamp(0, 20)).unwrap_or(20);
        self.config
            .base_backoff
            .saturating_mul(2u32.saturating_pow(exp))
            .min(self.config.max_backoff)
    }

    /// A transient failure of the current step: count it, and retry later, or give up after
    /// [`PayoutConfig::max_attempts`].
    async fn retry_later(
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
        self.ledger
            .note_payout(
                &row.id,
                PayoutNote {
                    cause,
                    detail: Some(detail),
                    attempts,
                    next_check_at: Some(now_ms().saturating_add(millis(delay))),
                    reason: Some(detail),
                    submitted: false,
                },
            )
            .await?;
        Ok(Flow::Stop(StepOutcome::RetryAt(delay)))
    }

    /// Wait without counting a failure (an envelope in flight, a payout of ours ahead).
    async fn wait(
        &self,
        row: &PayoutRow,
        cause: &str,
        detail: &str,
        delay: Duration,
        submitted: bool,
    ) -> Result<Flow, PayoutError> {
        self.ledger
            .note_payout(
                &row.id,
                PayoutNote {
                    cause,
                    detail: Some(detail),
                    attempts: row.attempts,
                    next_check_at: Some(now_ms().saturating_add(millis(delay))),
                    reason: None,
                    submitted,
                },
            )
            .await?;
        Ok(Flow::Stop(StepOutcome::RetryAt(delay)))
    }

    async fn give_up(&self, row: &PayoutRow, reason: String) -> Result<Flow, PayoutError> {
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
    async fn fail(
        &self,
        row: &PayoutRow,
        reason: String,
        cancel_pi: bool,
        submits: i64,
    ) -> Result<Flow, PayoutError> {
        if cancel_pi && let Some(pid) = &row.pi_payment_id {
            match self.pi.cancel(pid).await {
                Ok(_) => {}
                Err(e) => match e.root() {
                    PiError::CancelledPayment | PiError::PaymentNotFound => {}
                    PiError::AlreadyCompleted { .. } => {
                        return self
                            .give_up(
                                row,
                                format!(
                                    "{reason}; but Pi says payment {pid} is completed: check it on Pi and Horizon"
                                ),
                            )
                            .await;
                    }
                    _ if e.is_retryable() => {
                        return self
                            .retry_later(
                                row,
                                "pi_cancel_failed",
                                &format!("cancelling Pi payment {pid} after: {reason}: {e}"),
                                e.retry_after(),
                            )
                            .await;
                    }
                    _ => {
                        tracing::warn!(payout_id = %row.id, "cancelling Pi payment {pid} failed: {e}");
                    }
                },
            }
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

    async fn base_fee(&self) -> Result<i64, HorizonError> {
        let cached = self.fee.lock().ok().and_then(|g| *g);
        if let Some((at, fee)) = cached
            && at.elapsed() < self.config.fee_cache
        {
            return Ok(fee);
        }
        let fee = self.horizon.base_fee().await?.max(PI_BASE_FEE_STROOPS);
        if let Ok(mut g) = self.fee.lock() {
            *g = Some((Instant::now(), fee));
        }
        Ok(fee)
    }

    // ---- requested: create the Pi payment -------------------------------------------------

    async fn create_at_pi(
        &self,
        row: &PayoutRow,
        resolve_others: bool,
    ) -> Result<Flow, PayoutError> {
        let mut metadata = serde_json::Map::new();
        if let serde_json::Value::Object(user) = &row.metadata {
            metadata.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        metadata.insert(
            PAYOUT_ID_METADATA_KEY.to_string(),
            serde_json::Value::String(row.id.to_string()),
        );
        let req = CreatePaymentRequest {
            amount: row.amount,
            memo: row.memo.clone(),
            metadata: serde_json::Value::Object(metadata),
            uid: row.uid.clone(),
        };
        match self.pi.create_payment(&req).await {
            Ok(dto) => {
                self.crash_if(CrashPoint::AfterPiCreate)?;
                self.adopt(row, dto).await
            }
            Err(e) => self.create_failed(row, e, resolve_others).await,
        }
    }

    /// Bind the Pi payment `dto` to the payout (its identifier is the first thing stored).
    async fn adopt(&self, row: &PayoutRow, dto: PaymentDto) -> Result<Flow, PayoutError> {
        let pid = dto.identifier.clone();
        if dto.user_uid != row.uid
            || dto.amount != row.amount
            || matches!(dto.direction, Some(PiDirection::UserToApp))
        {
            return self
                .give_up(
                    row,
                    format!(
                        "Pi payment {pid} carries this payout's id but is for {} {} (payout: {} {}): it was not created by this payout; cancel it at Pi",
                        dto.user_uid,
                        dto.amount.to_fixed7(),
                        row.uid,
                        row.amount.to_fixed7()
                    ),
                )
                .await;
        }
        if !dto.is_open() {
            return self
                .give_up(
                    row,
                    format!("Pi payment {pid} of this payout is already closed at Pi (completed or cancelled) but the payout never stored it: check it on Pi and Horizon"),
                )
                .await;
        }
        let Some(to) = dto.to_address.clone() else {
            return self
                .retry_later(
                    row,
                    "pi_no_to_address",
                    &format!("Pi payment {pid} has no to_address yet"),
                    None,
                )
                .await;
        };
        if let Some(from) = &dto.from_address
            && from != &self.app_address
        {
            return self
                .give_up(
                    row,
                    format!(
                        "Pi expects payment {pid} from wallet {from}, but PI_WALLET_SEED is the key of {}: configure the app wallet's seed of this app",
                        self.app_address
                    ),
                )
                .await;
        }
        let patch = PayoutPatch {
            pi_payment_id: Some(pid.clone()),
            to_address: Some(to),
            from_address: dto.from_address.clone(),
            ..PayoutPatch::default()
        };
        match self
            .ledger
            .apply_payout(&row.id, PayoutTransition::PiCreated, None, 0, patch)
            .await
        {
            Ok(_) => Ok(Flow::Continue),
            Err(LedgerError::InvalidPayoutTransition(_)) => {
                // Withdrawn while Pi created the payment: close the payment we hold.
                if let Some(now) = self.ledger.payout(&row.id).await?
                    && now.state == PayoutState::Cancelled
                    && now.pi_payment_id.is_none()
                    && let Err(e) = self.pi.cancel(&pid).await
                {
                    tracing::warn!(payout_id = %row.id, "cancelling Pi payment {pid} of a withdrawn payout failed: {e}");
                }
                Ok(Flow::Continue)
            }
            Err(LedgerError::PayoutConflict { detail, .. }) => {
                self.give_up(row, format!("cannot bind Pi payment {pid}: {detail}"))
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    async fn create_failed(
        &self,
        row: &PayoutRow,
        e: PiError,
        resolve_others: bool,
    ) -> Result<Flow, PayoutError> {
        let uid = &row.uid;
        match e.root() {
            PiError::OngoingPaymentFound { payment } => {
                let open = match payment {
                    Some(p) => Some((**p).clone()),
                    None => match self.open_payment_of(uid).await {
                        Ok(p) => p,
                        Err(e) => {
                            return self
                                .retry_later(row, "pi_list_failed", &e.to_string(), e.retry_after())
                                .await;
                        }
                    },
                };
                match open {
                    Some(p) => self.resolve_ongoing(row, p, resolve_others).await,
                    None => {
                        self.retry_later(
                            row,
                            "ongoing_payment_unlisted",
                            &format!("Pi reports an open payment for uid {uid} but does not list it yet"),
                            None,
                        )
                        .await
                    }
                }
            }
            PiError::MissingScope => {
                self.fail(
                    row,
                    format!(
                        "missing_scope: Pioneer {uid} has not granted the wallet_address scope to this app; ask them to sign in again (Pi.authenticate with wallet_address), then request a new payout"
                    ),
                    false,
                    0,
                )
                .await
            }
            PiError::UserNotFound => {
                self.fail(
                    row,
                    format!(
                        "user_not_found: Pi does not know uid {uid} for this app; use the uid /v2/me returned for this app (it changes if the Pioneer revokes the app)"
                    ),
                    false,
                    0,
                )
                .await
            }
            PiError::InvalidAmount { message }
            | PiError::InvalidArguments { message }
            | PiError::InvalidMetadata { message } => {
                let code = e.code().unwrap_or("invalid_arguments").to_string();
                self.fail(
                    row,
                    format!("{code}: Pi refused the payout ({message}); fix it and request a new payout"),
                    false,
                    0,
                )
                .await
            }
            PiError::Unauthorized => {
                self.give_up(row, format!("creating the Pi payment failed: {e}"))
                    .await
            }
            PiError::TooManyPayments | PiError::TooManyCancelledPayments => {
                self.retry_later(row, "pi_too_many", &e.to_string(), e.retry_after())
                    .await
            }
            _ if e.is_retryable() => {
                self.retry_later(row, "pi_create_failed", &e.to_string(), e.retry_after())
                    .await
            }
            _ => {
                self.give_up(row, format!("creating the Pi payment failed: {e}"))
                    .await
            }
        }
    }

    /// The open A2U payment of `uid` at Pi, if it lists one.
    async fn open_payment_of(&self, uid: &Uid) -> Result<Option<PaymentDto>, PiError> {
        Ok(self
            .pi
            .incomplete_server_payments()
            .await?
            .into_iter()
            .find(|p| &p.user_uid == uid && p.is_open()))
    }

    /// `ongoing_payment_found`: never create blindly. Ours → adopt; another payout of ours →
    /// step it first; unknown → wait, with the reason visible, until someone closes it.
    async fn resolve_ongoing(
        &self,
        row: &PayoutRow,
        open: PaymentDto,
        resolve_others: bool,
    ) -> Result<Flow, PayoutError> {
        let tagged = open
            .metadata
            .get(PAYOUT_ID_METADATA_KEY)
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if tagged.as_deref() == Some(row.id.as_str()) {
            tracing::info!(payout_id = %row.id, pi_payment_id = %open.identifier, "adopting the open Pi payment created for this payout");
            return self.adopt(row, open).await;
        }
        let mut other = self.ledger.payout_by_pi_payment(&open.identifier).await?;
        if other.is_none()
            && let Some(id) = tagged.as_deref().and_then(|t| PayoutId::parse(t).ok())
        {
            other = self.ledger.payout(&id).await?;
        }
        let pid = &open.identifier;
        match other {
            Some(o) if o.id != row.id => {
                let mut other_state = o.state;
                if resolve_others && o.state.is_in_flight() {
                    match self.step_with(&o.id, false).await {
                        Ok(outcome) => {
                            tracing::info!(payout_id = %row.id, other = %o.id, ?outcome, "stepped the payout holding the Pioneer's open Pi payment");
                        }
                        Err(e) => {
                            tracing::warn!(payout_id = %row.id, other = %o.id, "stepping the payout ahead failed: {e}");
                        }
                    }
                    if let Some(now) = self.ledger.payout(&o.id).await? {
                        other_state = now.state;
                    }
                }
                let detail = format!(
                    "uid {} has an open Pi payment {pid} of payout {} ({other_state}); this payout is created when that one finishes",
                    row.uid, o.id
                );
                if other_state.is_in_flight() || other_state.is_terminal() {
                    // Ahead of us and moving (or just finished): a short, uncounted wait.
                    self.wait(row, "waiting_for_payout", &detail, self.config.base_backoff, false)
                        .await
                } else {
                    self.retry_later(row, "blocked_by_payout", &detail, None)
                        .await
                }
            }
            _ => {
                self.retry_later(
                    row,
                    "blocked_by_unknown_payment",
                    &format!(
                        "uid {} has an open Pi payment {pid} that pi-payments did not create; it is never paid blindly: finish or cancel it (see incomplete_server_payments), then this payout proceeds",
                        row.uid
                    ),
                    None,
                )
                .await
            }
        }
    }

    // ---- created: build, sign, STORE, submit ------------------------------------------------

    async fn sign_and_submit(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(pid), Some(to)) = (&row.pi_payment_id, &row.to_address) else {
            return self
                .give_up(
                    row,
                    "payout is created but has no Pi payment or destination stored".into(),
                )
                .await;
        };
        if let Some(from) = &row.from_address
            && from != &self.app_address
        {
            return self
                .give_up(
                    row,
                    format!(
                        "Pi expects payment {pid} from wallet {from}, but PI_WALLET_SEED is the key of {}",
                        self.app_address
                    ),
                )
                .await;
        }
        let fee = match self.base_fee().await {
            Ok(f) => f,
            Err(e) => {
                return self
                    .retry_later(row, "horizon_fee_failed", &e.to_string(), None)
                    .await;
            }
        };
        let mut lane = self.lanes.acquire_for_payment().await;
        let sequence = match lane.next_sequence(&self.horizon).await {
            Ok(s) => s,
            Err(SequenceError::NoAccount(a)) => {
                drop(lane);
                return self
                    .give_up(row, SequenceError::NoAccount(a).to_string())
                    .await;
            }
            Err(e) => {
                drop(lane);
                return self
                    .retry_later(row, "horizon_account_failed", &e.to_string(), None)
                    .await;
            }
        };
        let source = lane.account().to_string();
        let via_channel = source != self.app_address;
        let tx = if via_channel {
            PaymentTx::new(&source, sequence).payment_from(&self.app_address, to, row.amount)
        } else {
            PaymentTx::new(&source, sequence).payment(to, row.amount)
        };
        let tx = tx
            .fee_per_op(fee)
            .memo_text(pid.as_str())
            .max_time(unix_now().saturating_add(self.config.tx_validity.as_secs().max(1)));
        let signers: Vec<&Wallet> = if via_channel {
            vec![lane.wallet(), &self.app]
        } else {
            vec![&self.app]
        };
        let signed = match tx.sign(&signers, &self.network) {
            Ok(s) => s,
            Err(e) => {
                lane.invalidate();
                drop(lane);
                return self
                    .give_up(
                        row,
                        format!("the payout's transaction cannot be built: {e}"),
                    )
                    .await;
            }
        };
        let patch = PayoutPatch {
            tx_source: Some(signed.source.clone()),
            sequence: Some(signed.sequence),
            envelope_b64: Some(signed.envelope_b64.clone()),
            tx_hash: Some(signed.hash_hex.clone()),
            max_time: Some(i64::try_from(signed.max_time).unwrap_or(i64::MAX)),
            ..PayoutPatch::default()
        };
        // STORE before submitting: after a crash the step resubmits exactly this envelope.
        let stored = match self
            .apply(row, PayoutTransition::Signed, None, patch)
            .await?
        {
            Some(PayoutApplied::Moved { row: stored, .. }) => stored,
            _ => {
                // Another worker stored its envelope first (or the payout was withdrawn): this
                // one is never submitted, and its sequence number was not used.
                lane.invalidate();
                return Ok(Flow::Continue);
            }
        };
        self.crash_if(CrashPoint::AfterEnvelopeStored)?;
        let outcome = self.horizon.submit(&signed.envelope_b64).await;
        after_submit(&mut lane, &outcome);
        drop(lane);
        self.handle_submit(&stored, outcome).await
    }

    // ---- signed: resubmit the SAME envelope until it lands or is proven dead ---------------

    async fn resubmit(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(envelope), Some(hash), Some(max_time)) =
            (&row.envelope_b64, &row.tx_hash, row.max_time)
        else {
            return self
                .give_up(
                    row,
                    "payout is signed but its envelope is not stored".into(),
                )
                .await;
        };
        if self.past_expiry(max_time) {
            // The envelope can no longer land; had it landed, Horizon would know it by now.
            match self.horizon.transaction(hash).await {
                Ok(Some(tx)) if tx.successful => {
                    return self.confirm(row, hash, i64::from(tx.ledger), 0).await;
                }
                // Failed in a ledger: resubmitting answers its recorded result codes.
                Ok(Some(_)) => {}
                Ok(None) => {
                    return self
                        .envelope_dead(
                            row,
                            "expired: max_time passed and Horizon does not know the transaction",
                            0,
                        )
                        .await;
                }
                Err(e) => {
                    return self
                        .retry_later(row, "horizon_lookup_failed", &e.to_string(), None)
                        .await;
                }
            }
        }
        let mut lane = match &row.tx_source {
            Some(source) => self.lanes.acquire_account(source).await,
            None => None,
        };
        let outcome = self.horizon.submit(envelope).await;
        if let Some(lane) = lane.as_mut() {
            after_submit(lane, &outcome);
        }
        drop(lane);
        self.handle_submit(row, outcome).await
    }

    fn past_expiry(&self, max_time: i64) -> bool {
        let now = i64::try_from(unix_now()).unwrap_or(i64::MAX);
        let margin = i64::try_from(self.config.expiry_margin.as_secs()).unwrap_or(15);
        now > max_time.saturating_add(margin)
    }

    /// Act on Horizon's answer to a submission of `row`'s stored envelope.
    async fn handle_submit(
        &self,
        row: &PayoutRow,
        outcome: Result<crate::horizon::SubmitOk, SubmitError>,
    ) -> Result<Flow, PayoutError> {
        let hash = row.tx_hash.clone().unwrap_or_default();
        let max_time = row.max_time.unwrap_or(0);
        match outcome {
            Ok(ok) => {
                self.crash_if(CrashPoint::AfterSubmit)?;
                if ok.hash != hash {
                    return self
                        .give_up(
                            row,
                            format!("Horizon confirmed transaction {} but the stored envelope is {hash}", ok.hash),
                        )
                        .await;
                }
                self.confirm(row, &hash, i64::from(ok.ledger), 1).await
            }
            Err(SubmitError::Failed { failure, .. }) => match &failure {
                f if f.consumed_sequence() => self.in_ledger_failure(row, f).await,
                TxFailure::BadSeq => self.bad_seq(row).await,
                TxFailure::InsufficientFee => {
                    self.envelope_dead(row, "tx_insufficient_fee: the base fee rose; rebuilding with the current fee", 1)
                        .await
                }
                TxFailure::TooLate | TxFailure::TooEarly => {
                    self.until_expiry(row, failure.code(), max_time).await
                }
                TxFailure::BadAuth => {
                    self.give_up(
                        row,
                        format!(
                            "tx_bad_auth: Horizon rejected the signatures; check that PI_NETWORK ({}) is the network of PI_HORIZON_URL and that the channel seeds are current",
                            self.network.passphrase()
                        ),
                    )
                    .await
                }
                TxFailure::InsufficientBalance => {
                    self.give_up(
                        row,
                        format!(
                            "tx_insufficient_balance: source account {} cannot pay the fee; top it up, then retry the payout",
                            row.tx_source.as_deref().unwrap_or("?")
                        ),
                    )
                    .await
                }
                f if f.is_definite() => {
                    self.give_up(row, format!("Horizon refused the transaction ({f}); check the payout's envelope"))
                        .await
                }
                _ => self.until_expiry(row, failure.code(), max_time).await,
            },
            Err(SubmitError::Malformed(detail)) => {
                self.give_up(row, format!("Horizon says the envelope is malformed: {detail}"))
                    .await
            }
            Err(e @ (SubmitError::Timeout | SubmitError::Transport(_))) => {
                self.until_expiry(row, &e.to_string(), max_time).await
            }
        }
    }

    /// The outcome is unknown (or not final): resubmit the same envelope after a pause, until
    /// `max_time` (+ margin) passes; then the `signed` step checks Horizon by hash.
    async fn until_expiry(
        &self,
        row: &PayoutRow,
        why: &str,
        max_time: i64,
    ) -> Result<Flow, PayoutError> {
        let delay = if self.past_expiry(max_time) {
            Duration::ZERO
        } else {
            self.config.resubmit_delay
        };
        self.wait(
            row,
            "submit_unknown",
            &format!("{why}; resubmitting the same envelope until its max_time"),
            delay,
            true,
        )
        .await
    }

    /// `tx_bad_seq`: dead only if the sequence is consumed and not by this envelope.
    async fn bad_seq(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(source), Some(sequence), Some(hash)) =
            (&row.tx_source, row.sequence, &row.tx_hash)
        else {
            return self
                .give_up(
                    row,
                    "tx_bad_seq on a payout without a stored envelope".into(),
                )
                .await;
        };
        let account = match self.horizon.account(source).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return self
                    .give_up(row, SequenceError::NoAccount(source.clone()).to_string())
                    .await;
            }
            Err(e) => {
                return self
                    .retry_later(row, "horizon_account_failed", &e.to_string(), None)
                    .await;
            }
        };
        if account.sequence < sequence {
            // Ahead of the account: it may still become valid. Keep resubmitting until expiry.
            return self
                .until_expiry(
                    row,
                    "tx_bad_seq (sequence ahead of the account)",
                    row.max_time.unwrap_or(0),
                )
                .await;
        }
        match self.horizon.transaction(hash).await {
            Ok(Some(tx)) if tx.successful => self.confirm(row, hash, i64::from(tx.ledger), 1).await,
            Ok(Some(_)) => self.until_expiry(row, "tx_bad_seq after an in-ledger failure", 0).await,
            Ok(None) => {
                self.envelope_dead(
                    row,
                    &format!("tx_bad_seq: sequence {sequence} of {source} was used by another transaction"),
                    1,
                )
                .await
            }
            Err(e) => self.retry_later(row, "horizon_lookup_failed", &e.to_string(), None).await,
        }
    }

    /// The stored envelope will never land. Before a new one is built, look for ANY landed
    /// transaction of this payout (its memo) among the app wallet's transactions.
    async fn envelope_dead(
        &self,
        row: &PayoutRow,
        why: &str,
        submits: i64,
    ) -> Result<Flow, PayoutError> {
        let (Some(pid), Some(hash)) = (&row.pi_payment_id, &row.tx_hash) else {
            return self
                .give_up(row, format!("{why}; but no envelope is stored"))
                .await;
        };
        match self
            .horizon
            .find_transaction_by_memo(&self.app_address, pid.as_str(), None)
            .await
        {
            Ok(Some(tx)) => {
                tracing::warn!(payout_id = %row.id, tx = %tx.hash, "found a landed transaction of this payout by its memo; adopting it");
                self.confirm(row, &tx.hash, i64::from(tx.ledger), submits)
                    .await
            }
            Ok(None) => {
                tracing::info!(payout_id = %row.id, "envelope {hash} is dead ({why}); building a new one");
                self.apply(
                    row,
                    PayoutTransition::Expired {
                        tx_hash: hash.clone(),
                        reason: why.to_string(),
                    },
                    None,
                    PayoutPatch {
                        submits,
                        ..PayoutPatch::default()
                    },
                )
                .await?;
                Ok(Flow::Continue)
            }
            Err(e) => {
                self.retry_later(row, "horizon_scan_failed", &e.to_string(), None)
                    .await
            }
        }
    }

    /// `tx_failed`: applied in a ledger, nothing paid, the sequence consumed.
    async fn in_ledger_failure(
        &self,
        row: &PayoutRow,
        failure: &TxFailure,
    ) -> Result<Flow, PayoutError> {
        let ops = failure.failed_ops();
        let reason = if ops.contains(&"op_underfunded") {
            format!(
                "op_underfunded: the app wallet {} has too little Pi to pay {} Pi (plus fee and reserve); top it up and request a new payout",
                self.app_address,
                row.amount.to_fixed7()
            )
        } else if ops.contains(&"op_no_destination") {
            format!(
                "op_no_destination: the Pioneer's wallet {} does not exist on chain (never activated); they must activate it, then request a new payout",
                row.to_address.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "the transaction failed on chain ({failure}); nothing was paid: request a new payout"
            )
        };
        self.fail(row, reason, true, 1).await
    }

    async fn confirm(
        &self,
        row: &PayoutRow,
        hash: &str,
        ledger: i64,
        submits: i64,
    ) -> Result<Flow, PayoutError> {
        let patch = PayoutPatch {
            tx_hash: Some(hash.to_string()),
            ledger: Some(ledger),
            submits,
            ..PayoutPatch::default()
        };
        match self
            .ledger
            .apply_payout(&row.id, PayoutTransition::Confirmed, None, 0, patch)
            .await
        {
            Ok(_) | Err(LedgerError::InvalidPayoutTransition(_)) => Ok(Flow::Continue),
            Err(LedgerError::PayoutConflict { detail, .. }) => {
                self.give_up(
                    row,
                    format!("transaction {hash} landed but cannot be recorded: {detail}"),
                )
                .await
            }
            Err(e) => Err(e.into()),
        }
    }

    // ---- confirmed: complete at Pi ----------------------------------------------------------

    async fn complete_at_pi(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(pid), Some(hash)) = (&row.pi_payment_id, &row.tx_hash) else {
            return self
                .give_up(
                    row,
                    "payout is confirmed but has no Pi payment or txid stored".into(),
                )
                .await;
        };
        let Ok(txid) = Txid::parse_lenient(hash) else {
            return self
                .give_up(
                    row,
                    format!("stored txid {hash:?} is not a transaction hash"),
                )
                .await;
        };
        match self.pi.complete(pid, &txid).await {
            Ok(_) => {
                self.crash_if(CrashPoint::AfterComplete)?;
                self.completed(row).await
            }
            Err(e) => match e.root() {
                PiError::AlreadyCompleted { .. } => match self.pi.get_payment(pid).await {
                    Ok(dto) if dto.status.developer_completed && dto.txid() == Some(&txid) => {
                        self.completed(row).await
                    }
                    Ok(dto) => {
                        self.give_up(
                            row,
                            format!(
                                "Pi says payment {pid} is completed with transaction {:?}, not ours ({txid}): check both on Horizon",
                                dto.txid().map(Txid::as_str)
                            ),
                        )
                        .await
                    }
                    Err(e2) if e2.is_retryable() => {
                        self.retry_later(row, "pi_get_failed", &e2.to_string(), e2.retry_after())
                            .await
                    }
                    Err(e2) => self.give_up(row, format!("confirming completion failed: {e2}")).await,
                },
                PiError::NotVerified
                | PiError::VerificationFailed {
                    verification_error: VerificationError::TransactionNotFound,
                } => {
                    self.retry_later(row, "pi_not_verified_yet", &e.to_string(), e.retry_after())
                        .await
                }
                PiError::CancelledPayment => {
                    self.give_up(
                        row,
                        format!(
                            "the Pioneer WAS paid on chain ({txid}) but Pi payment {pid} is cancelled: settle it with Pi support; never pay again"
                        ),
                    )
                    .await
                }
                _ if e.is_retryable() => {
                    self.retry_later(row, "pi_complete_failed", &e.to_string(), e.retry_after())
                        .await
                }
                _ => {
                    self.give_up(
                        row,
                        format!("Pi refused to complete payment {pid} with {txid} (the Pioneer WAS paid on chain): {e}"),
                    )
                    .await
                }
            },
        }
    }

    async fn completed(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let applied = self
            .apply(
                row,
                PayoutTransition::PiCompleted,
                None,
                PayoutPatch::default(),
            )
            .await?;
        if applied.as_ref().is_some_and(PayoutApplied::moved) {
            tracing::info!(payout_id = %row.id, "payout completed");
        }
        Ok(Self::moved_then(applied, StepOutcome::Done))
    }

    // ---- cancelled: close the Pi payment of a withdrawn payout ------------------------------

    async fn close_withdrawn(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let Some(pid) = &row.pi_payment_id else {
            return Ok(Flow::Stop(StepOutcome::Done));
        };
        let events = self.ledger.payout_events(&row.id).await?;
        if events.iter().any(|e| e.cause == "pi_cancelled") {
            return Ok(Flow::Stop(StepOutcome::Done));
        }
        match self.pi.cancel(pid).await {
            Ok(_) => {}
            Err(e) => match e.root() {
                PiError::CancelledPayment | PiError::PaymentNotFound => {}
                _ if e.is_retryable() => {
                    return self
                        .wait(
                            row,
                            "pi_cancel_failed",
                            &e.to_string(),
                            self.backoff(row.attempts + 1),
                            false,
                        )
                        .await;
                }
                _ => {
                    tracing::warn!(payout_id = %row.id, "cancelling Pi payment {pid} failed: {e}");
                }
            },
        }
        self.ledger
            .note_payout(
                &row.id,
                PayoutNote {
                    cause: "pi_cancelled",
                    detail: Some(pid.as_str()),
                    attempts: 0,
                    next_check_at: None,
                    reason: None,
                    submitted: false,
                },
            )
            .await?;
        Ok(Flow::Stop(StepOutcome::Done))
    }

    // ---- channel accounts -------------------------------------------------------------------

    /// Create `n` channel accounts funded with `fund` each from the app wallet
    /// (`pi-payments channels create N --fund 2`). The caller must store the returned seeds
    /// (`PI_CHANNEL_SEEDS`); prefer generating them first and calling
    /// [`PayoutProcessor::fund_channels`], so a seed is saved before any Pi is sent to it.
    pub async fn create_channels(
        &self,
        n: usize,
        fund: PiAmount,
    ) -> Result<Vec<Wallet>, PayoutError> {
        let wallets: Vec<Wallet> = (0..n).map(|_| Wallet::generate()).collect();
        self.fund_channels(&wallets, fund).await?;
        Ok(wallets)
    }

    /// Create (with `create_account` operations from the app wallet, up to 100 per transaction)
    /// every account of `wallets` that does not exist yet. Idempotent: run it again after a
    /// failure; existing accounts are skipped.
    pub async fn fund_channels(
        &self,
        wallets: &[Wallet],
        fund: PiAmount,
    ) -> Result<(), PayoutError> {
        let mut missing = Vec::new();
        for w in wallets {
            if self.horizon.account(&w.public_key()).await?.is_none() {
                missing.push(w.public_key());
            }
        }
        for chunk in missing.chunks(MAX_OPS_PER_TX) {
            let fee = self.base_fee().await?;
            let mut lane: LaneGuard = self.lanes.acquire_app().await;
            let sequence = lane.next_sequence(&self.horizon).await?;
            let mut tx = PaymentTx::new(&self.app_address, sequence)
                .fee_per_op(fee)
                .max_time(unix_now().saturating_add(self.config.tx_validity.as_secs().max(1)));
            for account in chunk {
                tx = tx.create_account(account, fund);
            }
            let signed = match tx.sign(&[&self.app], &self.network) {
                Ok(s) => s,
                Err(e) => {
                    lane.invalidate();
                    return Err(e.into());
                }
            };
            loop {
                let outcome = self.horizon.submit(&signed.envelope_b64).await;
                after_submit(&mut lane, &outcome);
                match outcome {
                    Ok(_) => break,
                    Err(e)
                        if e.may_have_landed()
                            && !self.past_expiry(i64::try_from(signed.max_time).unwrap_or(0)) =>
                    {
                        tokio::time::sleep(self.config.resubmit_delay).await;
                    }
                    Err(e) => {
                        if self
                            .horizon
                            .transaction(&signed.hash_hex)
                            .await?
                            .is_some_and(|t| t.successful)
                        {
                            break;
                        }
                        return Err(PayoutError::ChannelFunding(e.to_string()));
                    }
                }
            }
        }
        Ok(())
    }
}

/// Keep the lane's sequence only when the submission may have used it.
fn after_submit(lane: &mut LaneGuard, outcome: &Result<crate::horizon::SubmitOk, SubmitError>) {
    match outcome {
        Ok(_) | Err(SubmitError::Timeout | SubmitError::Transport(_)) => {}
        Err(SubmitError::Failed { failure, .. }) if failure.consumed_sequence() => {}
        Err(_) => lane.invalidate(),
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

#[cfg(test)]
mod tests {
    use crate::payout::processor::*;

    #[test]
    fn defaults_respect_pi_time_bounds() {
        let c = PayoutConfig::default();
        assert!((60..=180).contains(&c.tx_validity.as_secs()));
        assert!(c.max_attempts > 1);
    }
}
