//! Payment ids Pi does not know, and the small reads and resets the U2A steps need to treat
//! callbacks as hints: a made-up id costs one Pi call ever ([`Ledger::mark_unknown_at_pi`]),
//! an abandoned payment's approval time decides whether a stranger may have it cancelled
//! ([`Ledger::approved_at`]), and a complete callback that found no transaction at Pi leaves
//! the step open for the next one ([`Ledger::rearm_callback`]).

use super::callback_step::CallbackStep;
use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use crate::ids::PaymentId;
use crate::state::PaymentState;
use sqlx::AnyConnection;

/// `next_check_at` of a payment Pi does not know: never (the sweeper leaves it alone).
const NEVER: i64 = i64::MAX / 4;

/// Whether Pi answered 404 for `id` before (inside the caller's transaction).
pub(super) async fn is_unknown(
    conn: &mut AnyConnection,
    id: &PaymentId,
) -> Result<bool, LedgerError> {
    let found: Option<i64> = sqlx::query_scalar("SELECT 1 FROM unknown_payment_ids WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(conn)
        .await?;
    Ok(found.is_some())
}

impl Ledger {
    /// Pi answered 404 `payment_not_found` for `id`: remember it (later callbacks naming it are
    /// refused without asking Pi), note it in the payment's history, and hold the row off the
    /// sweeper for good. Not `needs_attention`: nobody has anything to do about a made-up id.
    pub async fn mark_unknown_at_pi(
        &self,
        id: &PaymentId,
        attempt: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query("INSERT INTO unknown_payment_ids (id, seen_at) VALUES ($1, $2) ON CONFLICT (id) DO NOTHING")
            .bind(id.as_str())
            .bind(now_ms())
            .execute(self.pool())
            .await?;
        match self
            .note(
                id,
                "unknown_at_pi",
                Some("Pi does not know this payment (404 payment_not_found); callbacks naming it are refused from now on"),
                attempt,
                Some(NEVER),
            )
            .await
        {
            Ok(_) | Err(LedgerError::PaymentNotFound(_)) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Whether Pi answered 404 for `id` before.
    pub async fn is_unknown_at_pi(&self, id: &PaymentId) -> Result<bool, LedgerError> {
        let mut conn = self.pool().acquire().await?;
        is_unknown(&mut conn, id).await
    }

    /// When the ledger first recorded the payment `approved` (unix ms), if it ever did.
    pub async fn approved_at(&self, id: &PaymentId) -> Result<Option<i64>, LedgerError> {
        let at: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(at) FROM payment_events \
             WHERE payment_seq = (SELECT seq FROM payments WHERE id = $1) AND to_state = $2",
        )
        .bind(id.as_str())
        .bind(PaymentState::Approved.as_str())
        .fetch_one(self.pool())
        .await?;
        Ok(at)
    }

    /// Forget the arrivals of `step` for `id`, so the next such callback counts as the first
    /// and enqueues its job again.
    pub async fn rearm_callback(
        &self,
        id: &PaymentId,
        step: CallbackStep,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "DELETE FROM payment_callbacks \
             WHERE payment_seq = (SELECT seq FROM payments WHERE id = $1) AND step = $2",
        )
        .bind(id.as_str())
        .bind(step.as_str())
        .execute(self.pool())
        .await?;
        Ok(())
    }
}
