//! [`U2aProcessor::run`]: one step of one U2A payment, and what the job that asked for it
//! should do next.
//!
//! Every step may run twice or concurrently with itself (queues deliver at least once): it
//! first reads the ledger row, and the state machine decides whether the step is still due.
//! What the frontend claimed is never trusted; the steps re-read the payment at Pi
//! (`GET /v2/payments/{id}`), the Pioneer at Pi (`GET /v2/me`) and the transaction on Horizon.
//!
//! Failures come in two kinds. Transient ones (429, 5xx, timeouts, a transaction Horizon does
//! not show yet, a busy ledger) become [`U2aOutcome::Retry`] until the attempt cap, then the
//! payment moves to `needs_attention`. Throttling (429, 503, a timeout from Pi or Horizon) is
//! neither: it becomes [`U2aOutcome::Throttled`], the same attempt runs again after the wait, and
//! it never counts towards the cap (see [`crate::throttle`]). Definite ones (a wrong txid, a failed on-chain check) go
//! to `needs_attention` at once ([`U2aOutcome::GaveUp`]). Either way the final word is in the
//! ledger, where a person can see and act on it.

use super::approve::approve;
use super::complete::complete;
use super::deps::U2aDeps;
use super::incomplete::incomplete;
use super::outcome::{StepError, StepResult, U2aOutcome};
use super::reread::reread;
use super::step::{StepInput, U2aStep};
use crate::ids::PaymentId;
use crate::jobs::ApproveCredential;
use crate::ledger::{LedgerError, PaymentPatch, Swept, now_ms};
use crate::state::Transition;
use crate::throttle::Throttle;
use std::time::Duration;
use tracing::Instrument;

/// Runs U2A steps. Cheap to clone; the worker holds one per process.
#[derive(Clone, Debug)]
pub struct U2aProcessor {
    deps: U2aDeps,
    max_attempts: u32,
    /// First and longest wait after throttling without a `Retry-After`.
    throttle_backoff: (Duration, Duration),
}

impl U2aProcessor {
    /// A processor over `deps` whose jobs are tried `max_attempts` times in all (the first
    /// included): a transient failure at the last one flags the payment `needs_attention`.
    pub fn new(deps: U2aDeps, max_attempts: u32) -> U2aProcessor {
        U2aProcessor {
            deps,
            max_attempts,
            throttle_backoff: (Duration::from_secs(1), Duration::from_secs(30)),
        }
    }

    /// Wait from `base` doubling to `max` (with jitter) between throttled tries when the server
    /// sends no `Retry-After` (default 1 s to 30 s).
    pub fn with_throttle_backoff(mut self, base: Duration, max: Duration) -> U2aProcessor {
        self.throttle_backoff = (base, max);
        self
    }

    /// Run `step` for payment `id` as try number `attempt` (counted from 1; 0 reads as 1), in
    /// a tracing span carrying the step, the payment id and the attempt, and say what the job
    /// should do next. A failed try is noted in the payment's history; a payment given up on
    /// is moved to `needs_attention` here.
    pub async fn run(&self, step: U2aStep, id: &PaymentId, attempt: usize) -> U2aOutcome {
        self.run_after_throttles(step, id, attempt, 0).await
    }

    /// [`run`](Self::run) for a try that follows `throttles` throttled tries in a row of the same
    /// attempt (they set how long the next throttle waits when there is no `Retry-After`).
    pub async fn run_after_throttles(
        &self,
        step: U2aStep,
        id: &PaymentId,
        attempt: usize,
        throttles: u32,
    ) -> U2aOutcome {
        self.run_with(step, id, StepInput::default(), attempt, throttles)
            .await
    }

    /// The approve step with what its callback said about who pays (the job's
    /// [`ApproveCredential`]); `None` as a job the sweeper made.
    pub async fn run_approve(
        &self,
        id: &PaymentId,
        credential: Option<&ApproveCredential>,
        attempt: usize,
        throttles: u32,
    ) -> U2aOutcome {
        let input = StepInput {
            credential,
            txid_hint: None,
        };
        self.run_with(U2aStep::Approve, id, input, attempt, throttles)
            .await
    }

    /// [`run_after_throttles`](Self::run_after_throttles) with what the job carries from its
    /// callback (credential, txid claim).
    pub async fn run_with(
        &self,
        step: U2aStep,
        id: &PaymentId,
        input: StepInput<'_>,
        attempt: usize,
        throttles: u32,
    ) -> U2aOutcome {
        let n = attempt.max(1);
        let span = tracing::info_span!("job", job = step.name(), payment_id = %id, attempt = n);
        async move {
            let error = match self.step(step, id, input, n).await {
                Ok(()) => return U2aOutcome::Done,
                Err(e) => e,
            };
            let last = u32::try_from(n).unwrap_or(u32::MAX) >= self.max_attempts;
            match error {
                StepError::Transient(reason) if !last => self.retry(id, reason, n).await,
                StepError::Transient(reason) => {
                    let reason = format!("gave up after {n} attempts: {reason}");
                    self.give_up(id, reason, n).await
                }
                StepError::Attention(reason) => self.give_up(id, reason, n).await,
                StepError::Throttled(reason, throttle) => {
                    self.throttled(id, reason, throttle, n, throttles).await
                }
            }
        }
        .instrument(span)
        .await
    }

    /// The step itself.
    async fn step(
        &self,
        step: U2aStep,
        id: &PaymentId,
        input: StepInput<'_>,
        attempt: usize,
    ) -> StepResult {
        let deps = &self.deps;
        match step {
            U2aStep::Approve => approve(deps, id, input.credential, attempt).await,
            U2aStep::Complete => complete(deps, id, input.txid_hint, attempt).await,
            U2aStep::Cancel => reread(deps, id, attempt, "cancel_callback").await,
            U2aStep::RecordError => reread(deps, id, attempt, "error_callback").await,
            U2aStep::Incomplete => incomplete(deps, id, input.credential, attempt).await,
        }
    }

    /// A transient failure below the cap: note it and let the queue try again.
    async fn retry(&self, id: &PaymentId, reason: String, attempt: usize) -> U2aOutcome {
        tracing::warn!(%reason, "step failed; will retry");
        // Best effort: the history shows every try. A ledger error here changes nothing.
        if let Err(e) = self
            .deps
            .ledger
            .note(id, "attempt_failed", Some(&reason), attempt as i64, None)
            .await
        {
            tracing::debug!(error = %e, "could not note the failed attempt");
        }
        U2aOutcome::Retry { reason }
    }

    /// Throttled: not a failed attempt. Note it with the time the step runs again (the sweeper
    /// leaves the payment alone until then) and say how long to wait.
    async fn throttled(
        &self,
        id: &PaymentId,
        reason: String,
        throttle: Throttle,
        attempt: usize,
        throttles: u32,
    ) -> U2aOutcome {
        let (base, max) = self.throttle_backoff;
        let delay = throttle.delay(throttles, base, max);
        tracing::info!(%reason, delay_ms = delay.as_millis() as u64, "throttled; waiting");
        let until = now_ms().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        let ledger = &self.deps.ledger;
        // Held off the sweeper (never earlier than it was) and its sweep count starts over; the
        // history shows the first throttled try of a run of them, not every one. Best effort:
        // the wait happens either way.
        let recorded = match ledger.throttled(Swept::Payment, id.as_str(), until).await {
            Ok(held) if throttles == 0 => ledger
                .note(id, "throttled", Some(&reason), attempt as i64, held)
                .await
                .map(drop),
            other => other.map(drop),
        };
        if let Err(e) = recorded {
            tracing::debug!(error = %e, "could not record the throttled try");
        }
        U2aOutcome::Throttled { reason, delay }
    }

    /// Move the payment to `needs_attention` and stop the job for good.
    async fn give_up(&self, id: &PaymentId, reason: String, attempt: usize) -> U2aOutcome {
        tracing::error!(%reason, "payment needs attention");
        let applied = self
            .deps
            .ledger
            .apply(
                id,
                Transition::GaveUp {
                    reason: reason.clone(),
                },
                Some(&reason),
                attempt as i64,
                PaymentPatch::default(),
            )
            .await;
        let flagged = match applied {
            Ok(_) => true,
            // Completed or cancelled meanwhile (another run finished it): nothing to flag.
            Err(LedgerError::InvalidTransition(e)) => {
                tracing::info!(error = %e, "payment already settled; not flagging it");
                false
            }
            // The ledger is unreachable: let the job be retried so the outcome is not lost.
            Err(e) => {
                return U2aOutcome::Retry {
                    reason: format!("could not record needs_attention: {e}"),
                };
            }
        };
        U2aOutcome::GaveUp { reason, flagged }
    }
}
