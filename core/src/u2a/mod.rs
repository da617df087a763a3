//! U2A payments: the steps that take a Pioneer's payment from the callbacks to `completed` (or
//! `cancelled`, `refused`, `needs_attention`), decided here as [`crate::payout`] decides A2U
//! payouts, so that the worker's job handlers only adapt a job to a call.
//!
//! - [`processor`]: [`U2aProcessor::run`], one step of one payment, and what the job should do
//!   next ([`U2aOutcome`]): finish, try again, or stop with the payment flagged.
//! - [`step`]: [`U2aStep`], which step a job asks for.
//! - `approve`, `refusal`: verify the Pioneer and the order, then approve or refuse.
//! - `complete`: verify the transaction on Horizon, then complete at Pi.
//! - `reread`: the cancel and error callbacks, which record what Pi says.
//! - `incomplete`: an incomplete payment reported at sign-in.
//! - [`deps`]: what every step reads and writes through (the ledger, Pi, Horizon).
//! - [`outcome`]: how a step failed (worth retrying, or for a person to look at).

mod approve;
mod complete;
pub mod deps;
mod incomplete;
pub mod outcome;
pub mod processor;
mod refusal;
mod reread;
pub mod step;

pub use approve::AWAITING_APPROVE_CALLBACK;
pub use deps::{DEFAULT_ANONYMOUS_CANCEL_GRACE, U2aDeps};
pub use outcome::U2aOutcome;
pub use processor::U2aProcessor;
pub use step::{StepInput, U2aStep};
