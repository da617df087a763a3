//! What an operator may do to stuck rows, recorded where the next operator will look:
//!
//! - retry a `needs_attention` payment: the state machine's [`Transition::Retry`] back to the
//!   step its stored data implies (completing with a txid, received without), with the
//!   operator named in the payment's history;
//! - re-arm a webhook delivery (due now, delivered or not), recorded in `operator_actions`
//!   (the outbox row has no history of its own).
//!
//! Payout retries are [`Ledger::retry_payout`]. Enqueueing the job that moves the row on is
//! the caller's (the API's) part, after the commit.

use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use super::outbox::{EVENT_COLS, EventRow, event_from_row};
use super::payments::{Applied, PaymentPatch};
use crate::ids::PaymentId;
use crate::state::{RetryStep, Transition};
use sqlx::Row;

/// `operator_actions.action` of a re-armed webhook delivery.
pub const WEBHOOK_RESEND: &str = "webhook_resend";

/// One recorded operator action.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct OperatorActionRow {
    pub id: i64,
    /// Unix milliseconds.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub at: i64,
    /// e.g. [`WEBHOOK_RESEND`].
    pub action: String,
    /// What kind of row it touched (`event`).
    pub subject_kind: String,
    pub subject_id: String,
    pub detail: Option<String>,
}

impl Ledger {
    /// Send a `needs_attention` payment back to work: to `completing` when a txid is stored
    /// (verification and `/complete` run again), else to `received` (approval runs again).
    /// `detail` (who asked, from where) goes into the history line. A payment in another
    /// state is [`LedgerError::InvalidTransition`] (or [`Applied::AlreadyThere`] when it is
    /// already back at that step). Enqueue the step's job after this.
    pub async fn retry_payment(
        &self,
        id: &PaymentId,
        detail: &str,
    ) -> Result<(Applied, RetryStep), LedgerError> {
        let row = self
            .payment(id)
            .await?
            .ok_or_else(|| LedgerError::PaymentNotFound(id.clone()))?;
        let step = if row.txid.is_some() {
            RetryStep::Complete
        } else {
            RetryStep::Approve
        };
        let applied = self
            .apply(
                id,
                Transition::Retry(step),
                Some(detail),
                0,
                PaymentPatch::default(),
            )
            .await?;
        Ok((applied, step))
    }

    /// Make outbox event `id` due for delivery now (again, if it was delivered: apps dedupe by
    /// event id), keeping its attempt count and last error, and record who asked in
    /// `operator_actions`, in one transaction. `None` when no such event exists.
    pub async fn resend_delivery(
        &self,
        id: i64,
        detail: &str,
    ) -> Result<Option<EventRow>, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let sql = format!(
            "UPDATE events SET delivered_at = NULL, next_attempt_at = $2 WHERE id = $1 \
             RETURNING {EVENT_COLS}"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .bind(now)
            .fetch_optional(&mut *tx)
            .await?;
        let Some(row) = row else {
            tx.rollback().await?;
            return Ok(None);
        };
        let event = event_from_row(&row)?;
        sqlx::query(
            "INSERT INTO operator_actions (at, action, subject_kind, subject_id, detail) \
             VALUES ($1, $2, 'event', $3, $4)",
        )
        .bind(now)
        .bind(WEBHOOK_RESEND)
        .bind(id.to_string())
        .bind(detail)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(event))
    }

    /// The operator actions on one row (`subject_kind` e.g. `event`), newest first, at most
    /// `limit` (itself at most 100).
    pub async fn operator_actions(
        &self,
        subject_kind: &str,
        subject_id: &str,
        limit: i64,
    ) -> Result<Vec<OperatorActionRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, at, action, subject_kind, subject_id, detail FROM operator_actions \
             WHERE subject_kind = $1 AND subject_id = $2 ORDER BY id DESC LIMIT $3",
        )
        .bind(subject_kind)
        .bind(subject_id)
        .bind(limit.clamp(1, 100))
        .fetch_all(self.pool())
        .await?;
        rows.iter()
            .map(|r| {
                Ok(OperatorActionRow {
                    id: r.try_get(0)?,
                    at: r.try_get(1)?,
                    action: r.try_get(2)?,
                    subject_kind: r.try_get(3)?,
                    subject_id: r.try_get(4)?,
                    detail: r.try_get(5)?,
                })
            })
            .collect()
    }
}
