//! Payouts waiting behind another payout of ours that holds Pi's one open A2U payment
//! (`payouts.blocked_by`): recorded when Pi answers `ongoing_payment_found`, handed on one at a
//! time when the payout ahead settles.

use super::{Ledger, LedgerError};
use crate::ids::PayoutId;

impl Ledger {
    /// Payout `id` waits until payout `ahead` settles.
    pub async fn block_payout_behind(
        &self,
        id: &PayoutId,
        ahead: &PayoutId,
    ) -> Result<(), LedgerError> {
        sqlx::query("UPDATE payouts SET blocked_by = $2 WHERE id = $1")
            .bind(id.as_str())
            .bind(ahead.as_str())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// Payout `settled` no longer holds Pi's open payment: the oldest payout waiting behind it,
    /// to be woken now; the others now wait behind that one (one wake per settle, not a herd
    /// of creates that all but one lose).
    pub async fn next_behind(&self, settled: &PayoutId) -> Result<Option<PayoutId>, LedgerError> {
        // One statement (one snapshot, no read-then-write upgrade for SQLite to refuse): the
        // oldest waiter gets NULL, the others point at it.
        let rows: Vec<(String, Option<String>)> = sqlx::query_as(
            "UPDATE payouts SET blocked_by = CASE WHEN id = w.first THEN NULL ELSE w.first END \
             FROM (SELECT id AS first FROM payouts WHERE blocked_by = $1 AND state = 'requested' \
                   ORDER BY created_at, id LIMIT 1) AS w \
             WHERE payouts.blocked_by = $1 AND payouts.state = 'requested' \
             RETURNING payouts.id, payouts.blocked_by",
        )
        .bind(settled.as_str())
        .fetch_all(&self.pool)
        .await?;
        Ok(rows
            .into_iter()
            .find(|(_, blocked_by)| blocked_by.is_none())
            .and_then(|(id, _)| PayoutId::parse(&id).ok()))
    }
}
