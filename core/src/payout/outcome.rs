//! What a step decided: [`StepOutcome`] for the caller (the payout job), and the internal
//! `Flow` a state handler hands back to the step loop.

use std::time::Duration;

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

/// What a state handler decided (internal to the pipeline: the step loop acts on it).
pub(super) enum Flow {
    /// The payout moved (or someone else moved it): read it again and go on.
    Continue,
    /// Hand this outcome to the caller.
    Stop(StepOutcome),
}
