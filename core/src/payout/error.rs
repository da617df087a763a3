//! [`PayoutError`]: why a step could not run at all (the job is retried later); business
//! outcomes are [`super::outcome::StepOutcome`]s, not errors.

use super::fault::CrashPoint;
use super::lane::SequenceError;
use crate::horizon::HorizonError;
use crate::ids::PayoutId;
use crate::ledger::LedgerError;
use crate::stellar::StellarError;

/// Why a step could not run (the job should be retried later); business outcomes are
/// [`StepOutcome`](super::outcome::StepOutcome)s, not errors.
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
