//! [`CrashPoint`]: where a test makes a step stop as if the process died, so the crash-safety
//! tests can prove every step is safe to run again (production never sets one).

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
