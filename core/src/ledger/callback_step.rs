//! [`CallbackStep`]: which of Pi's frontend callbacks arrived, as the ledger stores and counts
//! it (its own module so that the callback recorder and the stores it consults can all name it).

/// Which callback arrived.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CallbackStep {
    Approve,
    Complete,
    Cancel,
    Error,
    Incomplete,
}

impl CallbackStep {
    /// The stored name (`payment_callbacks.step`).
    pub fn as_str(self) -> &'static str {
        match self {
            CallbackStep::Approve => "approve",
            CallbackStep::Complete => "complete",
            CallbackStep::Cancel => "cancel",
            CallbackStep::Error => "error",
            CallbackStep::Incomplete => "incomplete",
        }
    }

    /// The `payment_events.cause` for this callback.
    pub(super) fn cause(self) -> &'static str {
        match self {
            CallbackStep::Approve => "approve_callback",
            CallbackStep::Complete => "complete_callback",
            CallbackStep::Cancel => "cancel_callback",
            CallbackStep::Error => "error_callback",
            CallbackStep::Incomplete => "incomplete_callback",
        }
    }
}
