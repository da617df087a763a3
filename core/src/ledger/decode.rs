//! Reading stored values back: a value the ledger cannot read means the row was edited by hand or
//! by a newer version, and becomes [`LedgerError::Corrupt`] instead of a panic.

use super::error::LedgerError;
use crate::state::{PaymentState, PayoutState};

/// Parse a stored state, or report the row as corrupt.
pub(crate) fn parse_state(text: &str) -> Result<PaymentState, LedgerError> {
    PaymentState::parse(text).ok_or_else(|| LedgerError::Corrupt(format!("unknown state {text:?}")))
}

/// Turn an id parse failure on stored data into [`LedgerError::Corrupt`].
pub(crate) fn corrupt<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> LedgerError {
    move |e| LedgerError::Corrupt(format!("{what}: {e}"))
}

/// Parse a stored payout state, or report the row as corrupt.
pub(crate) fn parse_payout_state(text: &str) -> Result<PayoutState, LedgerError> {
    PayoutState::parse(text)
        .ok_or_else(|| LedgerError::Corrupt(format!("unknown payout state {text:?}")))
}
