//! Why a reconcile run stopped early.

use crate::jobs::QueueError;
use crate::ledger::LedgerError;
use crate::pi_client::PiError;

/// Why a run stopped early.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    #[error("reading incomplete server payments at Pi failed ({0}); the next run tries again")]
    Pi(#[from] PiError),
    #[error(transparent)]
    Queue(#[from] QueueError),
    #[error(
        "the reconcile lease was lost during the run (it took longer than its lease): another process took over; if this repeats, raise the lease time or lower the batch"
    )]
    LeaseLost,
}
