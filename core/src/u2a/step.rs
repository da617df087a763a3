//! [`U2aStep`]: which step of a U2A payment a job asks for, and [`StepInput`]: what the
//! callback behind the job said (who sent it, which txid it claimed).

use crate::ids::Txid;
use crate::jobs::ApproveCredential;

/// What a job carries from its callback besides the payment id. Both are claims to check
/// against Pi, never facts.
#[derive(Clone, Copy, Debug, Default)]
pub struct StepInput<'a> {
    /// Who sent the callback (approve and incomplete jobs); `None` for a job no callback made
    /// or an anonymous one.
    pub credential: Option<&'a ApproveCredential>,
    /// The txid a complete (or incomplete) callback claimed.
    pub txid_hint: Option<&'a Txid>,
}

/// One step of a U2A payment, as a job asks for it (one job kind per step).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum U2aStep {
    /// Verify the Pioneer and the payment at Pi, then approve or refuse (cancel) it.
    Approve,
    /// Bind the txid Pi linked, verify it on chain, then complete the payment at Pi.
    Complete,
    /// The Pioneer cancelled: re-read the payment at Pi and record what Pi says.
    Cancel,
    /// The frontend reported an error: re-read the payment at Pi and record what Pi says.
    RecordError,
    /// An incomplete payment reported at sign-in: complete it, or cancel an abandoned one.
    Incomplete,
}

impl U2aStep {
    /// The step's name in logs (the `job` field of its tracing span).
    pub fn name(self) -> &'static str {
        match self {
            U2aStep::Approve => "approve",
            U2aStep::Complete => "complete",
            U2aStep::Cancel => "cancel",
            U2aStep::RecordError => "record-error",
            U2aStep::Incomplete => "incomplete",
        }
    }
}
