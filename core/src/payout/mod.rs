//! A2U payouts: the app pays Pioneers exactly once (pi-platform.md §5).
//!
//! - [`processor`]: [`PayoutProcessor::step`], the pipeline as persisted steps, with one file per
//!   stage: `create` (requested), `submit` (created, signed), `complete` (confirmed, cancelled);
//!   `channels` funds channel accounts. The payout state machine itself is
//!   [`crate::state::next_payout`] and its rows live in [`crate::ledger::payouts`].
//! - [`config`], [`outcome`], [`error`], [`fault`]: the pipeline's tunables, what a step
//!   decided, why it could not run, and the test-only crash points.
//! - [`chain_clock`]: the chain's time (latest ledger close) for `max_time` and expiry.
//! - [`lane`]: per-source-account sequence lanes and channel accounts; [`lane_lease`]: which
//!   worker process holds each lane.
//!
//! The worker drives payouts by calling `step` for a `Job::Payout` and acting on the
//! [`StepOutcome`]: `Again` → enqueue now, `RetryAt(d)` → enqueue after `d`, anything else →
//! done. The API only records requests (`Ledger::request_payout`) and enqueues the job.

pub mod chain_clock;
mod channels;
mod complete;
pub mod config;
mod create;
pub mod error;
pub mod fault;
pub mod lane;
pub mod lane_lease;
pub mod outcome;
pub mod processor;
mod submit;

/// Payout and batch ids live in [`crate::ids`]; re-exported here for existing users.
pub use crate::ids::{BatchId, PayoutId};
pub use config::PayoutConfig;
pub use error::PayoutError;
pub use fault::CrashPoint;
pub use outcome::StepOutcome;
pub use processor::PayoutProcessor;
