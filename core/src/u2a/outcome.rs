//! How a U2A step ended: [`StepError`] says why a step did not finish (the processor's input),
//! [`U2aOutcome`] what the job should do about it (the processor's answer to the worker).

use crate::ledger::LedgerError;
use crate::pi_client::PiError;
use crate::throttle::{Throttle, Throttling};
use std::time::Duration;

/// What the job that ran a step should do next.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum U2aOutcome {
    /// The step finished, or had nothing left to do: the job is done.
    Done,
    /// The step failed in a way that may work later, below the attempt cap: fail this attempt
    /// (the queue retries it with backoff). The failed attempt is already noted in the ledger.
    Retry {
        /// What failed, for the queue's record of the attempt.
        reason: String,
    },
    /// Pi or Horizon asked us to slow down (429, 503, a timeout): run the step again after
    /// `delay` as the SAME attempt. Throttling is waiting, not failing: it is never counted
    /// towards the attempt cap, and the payment's `next_check_at` keeps the sweeper off it
    /// meanwhile.
    Throttled {
        /// What was throttled, for the log.
        reason: String,
        /// How long to wait: the server's `Retry-After`, or a backoff.
        delay: Duration,
    },
    /// Retrying will not help (a definite problem, or the attempt cap was reached): stop the
    /// job for good. The payment was moved to `needs_attention` with `reason`, unless it had
    /// settled meanwhile.
    GaveUp {
        /// Why the payment needs a person.
        reason: String,
        /// Whether `needs_attention` was recorded now (a new event may be due); `false` when
        /// another run had completed or cancelled the payment first.
        flagged: bool,
    },
}

/// Why a step did not finish.
#[derive(Debug)]
pub(crate) enum StepError {
    /// May work later: retry with backoff, give up at the attempt cap.
    Transient(String),
    /// Will not work by retrying: the payment needs a person now.
    Attention(String),
    /// The server asked us to slow down: wait and run the step again, uncounted.
    Throttled(String, Throttle),
}

impl From<LedgerError> for StepError {
    fn from(e: LedgerError) -> Self {
        match e {
            // A busy or briefly unreachable database, or a concurrent update: try again.
            LedgerError::Db(_) | LedgerError::Concurrent(_) | LedgerError::Connect(_) => {
                StepError::Transient(e.to_string())
            }
            other => StepError::Attention(other.to_string()),
        }
    }
}

/// What a step returns: `Ok` when it finished or had nothing to do.
pub(crate) type StepResult = Result<(), StepError>;

/// Classify a Pi error that the step has no specific answer for.
pub(crate) fn pi_failure(what: &str, e: PiError) -> StepError {
    if let Some(throttle) = e.throttle() {
        StepError::Throttled(format!("{what}: {e}"), throttle)
    } else if e.is_retryable() {
        StepError::Transient(format!("{what}: {e}"))
    } else {
        StepError::Attention(format!("{what}: {e}"))
    }
}
