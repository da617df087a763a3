//! What the drift report reads from the ledger: the rows it compares with Pi, those still open
//! and those settled recently. "Settled" is the state machine's terminal states
//! ([`PaymentState::TERMINAL`], [`PayoutState::TERMINAL`]).

use super::connection::Ledger;
use super::error::LedgerError;
use super::payments::{Direction, PaymentRow, payment_cols, payment_from_row};
use super::payouts::{PayoutRow, payout_cols, payout_from_row};
use super::sql_list::sql_list;
use crate::state::{PaymentState, PayoutState};
use std::sync::LazyLock;

/// U2A payments not settled, or changed since `$1`; newest first, at most `$2`.
static PAYMENTS_FOR_DRIFT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {cols} FROM payments WHERE direction = '{u2a}' \
         AND (state NOT IN {settled} OR updated_at >= $1) \
         ORDER BY updated_at DESC LIMIT $2",
        cols = payment_cols!(),
        u2a = Direction::UserToApp.as_str(),
        settled = sql_list(PaymentState::TERMINAL.map(PaymentState::as_str)),
    )
});

/// Payouts not settled, or changed since `$1`; newest first, at most `$2`.
static PAYOUTS_FOR_DRIFT: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {cols} FROM payouts WHERE (state NOT IN {settled} OR updated_at >= $1) \
         ORDER BY updated_at DESC LIMIT $2",
        cols = payout_cols!(),
        settled = sql_list(PayoutState::TERMINAL.map(PayoutState::as_str)),
    )
});

impl Ledger {
    /// U2A payments the drift report compares with Pi: every open one, and the settled ones
    /// changed since `since` (unix ms); newest first, at most `limit`.
    pub(crate) async fn payments_for_drift(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        let rows = sqlx::query(PAYMENTS_FOR_DRIFT.as_str())
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(payment_from_row).collect()
    }

    /// Payouts the drift report compares with Pi: every open one, and the settled ones changed
    /// since `since` (unix ms); newest first, at most `limit`.
    pub(crate) async fn payouts_for_drift(
        &self,
        since: i64,
        limit: i64,
    ) -> Result<Vec<PayoutRow>, LedgerError> {
        let rows = sqlx::query(PAYOUTS_FOR_DRIFT.as_str())
            .bind(since)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(payout_from_row).collect()
    }
}
