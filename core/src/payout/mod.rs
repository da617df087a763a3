//! A2U payouts: the app pays Pioneers exactly once (pi-platform.md §5).
//!
//! - [`processor`]: [`PayoutProcessor::step`], the pipeline as persisted steps; the payout
//!   state machine itself is [`crate::state::next_payout`] and its rows live in
//!   [`crate::ledger::payouts`].
//! - [`lane`]: per-source-account sequence lanes and channel accounts.
//!
//! The worker drives payouts by calling `step` for a `Job::Payout` and acting on the
//! [`StepOutcome`]: `Again` → enqueue now, `RetryAt(d)` → enqueue after `d`, anything else →
//! done. The API only records requests (`Ledger::request_payout`) and enqueues the job.

pub mod lane;
pub mod processor;

/// Payout and batch ids live in [`crate::ids`]; re-exported here for existing users.
pub use crate::ids::{BatchId, PayoutId};
pub use processor::{CrashPoint, PayoutConfig, PayoutError, PayoutProcessor, StepOutcome};
