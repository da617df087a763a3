//! Payout state changes: every one goes through [`Ledger::apply_payout`], which asks
//! [`crate::state::next_payout`] and then runs ONE conditional UPDATE (`WHERE state = <read>`)
//! in a write transaction (BEGIN IMMEDIATE on SQLite, `FOR UPDATE` on Postgres): whoever
//! commits first decides, the loser sees [`PayoutApplied::AlreadyThere`] and re-reads. The
//! outbox events `payout.completed` / `payout.failed` are written in the same transaction, once
//! per payout (the outbox's `UNIQUE (event_type, subject_id)`). Notes record attempts without a
//! state change, in the same append-only history.

use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use super::payouts::{PayoutRow, lock_payout, payout_cols, payout_from_row};
use crate::events::event_type::EventType;
use crate::ids::{PaymentId, PayoutId};
use crate::state::{self, PayoutState, PayoutTransition};
use sqlx::AnyConnection;

/// Facts a step learned, stored with a transition (each `None` leaves the column as it is).
/// An [`PayoutTransition::Expired`] transition clears the envelope columns itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutPatch {
    pub pi_payment_id: Option<PaymentId>,
    pub to_address: Option<String>,
    pub from_address: Option<String>,
    pub tx_source: Option<String>,
    pub sequence: Option<i64>,
    pub envelope_b64: Option<String>,
    pub tx_hash: Option<String>,
    pub max_time: Option<i64>,
    pub ledger: Option<i64>,
    /// When the sweeper may look again (unix ms); `None` clears it.
    pub next_check_at: Option<i64>,
    /// Submissions to Horizon to add to `submit_attempts` (the one whose answer caused this).
    pub submits: i64,
}

/// A note on a payout without a state change (a failed attempt, a submission, a wait).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutNote<'a> {
    /// Stored as the history line's cause.
    pub cause: &'a str,
    pub detail: Option<&'a str>,
    /// The new value of `attempts` (failed attempts of the current step).
    pub attempts: i64,
    /// When the payout should be looked at again (unix ms).
    pub next_check_at: Option<i64>,
    /// Replaces `reason` when set (e.g. why the payout waits).
    pub reason: Option<&'a str>,
    /// Count one more submission to Horizon.
    pub submitted: bool,
}

/// What [`Ledger::apply_payout`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutApplied {
    /// The payout moved from `from` to `row.state`; history (and outbox) were written.
    Moved { from: PayoutState, row: PayoutRow },
    /// Already in (or past) the target, or a newer envelope is stored: nothing was written.
    AlreadyThere(PayoutRow),
}

impl PayoutApplied {
    /// The payout after the call.
    pub fn row(&self) -> &PayoutRow {
        match self {
            PayoutApplied::Moved { row, .. } | PayoutApplied::AlreadyThere(row) => row,
        }
    }

    /// Whether this call changed the state.
    pub fn moved(&self) -> bool {
        matches!(self, PayoutApplied::Moved { .. })
    }

    /// The payout after the call, by value.
    pub fn into_row(self) -> PayoutRow {
        match self {
            PayoutApplied::Moved { row, .. } | PayoutApplied::AlreadyThere(row) => row,
        }
    }
}

/// Append one history line.
#[allow(clippy::too_many_arguments)]
pub(super) async fn insert_history(
    conn: &mut AnyConnection,
    payout_id: &PayoutId,
    from: Option<PayoutState>,
    to: PayoutState,
    cause: &str,
    detail: Option<&str>,
    attempt: i64,
    at: i64,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO payout_events (payout_id, from_state, to_state, cause, detail, attempt, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(payout_id.as_str())
    .bind(from.map(PayoutState::as_str))
    .bind(to.as_str())
    .bind(cause)
    .bind(detail)
    .bind(attempt)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outbox event a payout entering `state` produces, if any.
fn event_for(state: PayoutState) -> Option<EventType> {
    match state {
        PayoutState::Completed => Some(EventType::PayoutCompleted),
        PayoutState::Failed => Some(EventType::PayoutFailed),
        _ => None,
    }
}

/// The `data` of a payout event.
pub fn payout_event_data(payout: &PayoutRow) -> serde_json::Value {
    serde_json::json!({ "payout": payout })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

impl Ledger {
    /// Apply `transition` in ONE transaction: the state machine decides, then the conditional
    /// UPDATE with `patch`, a history line and (completed/failed) the outbox event.
    ///
    /// Refusals: a different Pi payment or txid than the stored one →
    /// [`LedgerError::PayoutConflict`]; `Expired` for a hash that is no longer the stored one
    /// (someone already rebuilt) → `AlreadyThere`.
    pub async fn apply_payout(
        &self,
        id: &PayoutId,
        transition: PayoutTransition,
        detail: Option<&str>,
        attempt: i64,
        patch: PayoutPatch,
    ) -> Result<PayoutApplied, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = lock_payout(&mut tx, self.is_pg(), id)
            .await?
            .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()))?;
        let to = state::next_payout(row.state, &transition)?;
        let conflict = |detail: String| LedgerError::PayoutConflict {
            payout_id: id.clone(),
            detail,
        };
        if let (Some(stored), Some(new)) = (&row.pi_payment_id, &patch.pi_payment_id)
            && stored != new
        {
            return Err(conflict(format!(
                "it is bound to Pi payment {stored}, not {new}"
            )));
        }
        if let PayoutTransition::Expired { tx_hash, .. } = &transition
            && row.tx_hash.as_deref() != Some(tx_hash.as_str())
        {
            tx.rollback().await?;
            return Ok(PayoutApplied::AlreadyThere(row));
        }
        if transition == PayoutTransition::Confirmed
            && to == row.state
            && let (Some(stored), Some(new)) = (&row.tx_hash, &patch.tx_hash)
            && stored != new
        {
            return Err(conflict(format!(
                "it is confirmed with transaction {stored}, not {new}"
            )));
        }
        if to == row.state {
            tx.rollback().await?;
            return Ok(PayoutApplied::AlreadyThere(row));
        }
        let clear = matches!(transition, PayoutTransition::Expired { .. });
        let metadata_detail = detail;
        let updated = sqlx::query(concat!(
            "UPDATE payouts SET state = $3, updated_at = $4, attempts = $5, reason = $6, ",
            "pi_payment_id = COALESCE($7, pi_payment_id), ",
            "to_address = COALESCE($8, to_address), from_address = COALESCE($9, from_address), ",
            // An expired envelope keeps its source and sequence: the rebuild reuses them.
            "tx_source = COALESCE($11, tx_source), sequence = COALESCE($12, sequence), ",
            "envelope_b64 = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($13, envelope_b64) END, ",
            "tx_hash = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($14, tx_hash) END, ",
            "max_time = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($15, max_time) END, ",
            "ledger = COALESCE($16, ledger), next_check_at = $17, ",
            "submit_attempts = submit_attempts + $18 ",
            "WHERE id = $1 AND state = $2 RETURNING ",
            payout_cols!()
        ))
        .bind(id.as_str())
        .bind(row.state.as_str())
        .bind(to.as_str())
        .bind(now)
        .bind(attempt)
        .bind(transition.reason())
        .bind(patch.pi_payment_id.as_ref().map(PaymentId::as_str))
        .bind(patch.to_address.as_deref())
        .bind(patch.from_address.as_deref())
        .bind(i64::from(clear))
        .bind(patch.tx_source.as_deref())
        .bind(patch.sequence)
        .bind(patch.envelope_b64.as_deref())
        .bind(patch.tx_hash.as_deref())
        .bind(patch.max_time)
        .bind(patch.ledger)
        .bind(patch.next_check_at)
        .bind(patch.submits)
        .fetch_optional(&mut *tx)
        .await;
        let updated = match updated {
            Ok(u) => u,
            Err(e) if is_unique_violation(&e) => {
                return Err(conflict(
                    "its Pi payment or transaction already belongs to another payout".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(updated) = updated else {
            return Err(LedgerError::PayoutConflict {
                payout_id: id.clone(),
                detail: "it changed while this update ran; retry (it will see the new state)"
                    .into(),
            });
        };
        let new_row = payout_from_row(&updated)?;
        let history_detail = match &transition {
            PayoutTransition::Expired { tx_hash, reason } => Some(format!(
                "envelope {tx_hash} is dead ({reason}){}",
                metadata_detail
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            )),
            PayoutTransition::Signed => Some(format!(
                "envelope {} (source {}, sequence {}, max_time {})",
                new_row.tx_hash.as_deref().unwrap_or("?"),
                new_row.tx_source.as_deref().unwrap_or("?"),
                new_row.sequence.unwrap_or_default(),
                new_row.max_time.unwrap_or_default()
            )),
            _ => metadata_detail.map(str::to_string),
        };
        insert_history(
            &mut tx,
            id,
            Some(row.state),
            to,
            transition.cause(),
            history_detail.as_deref(),
            attempt,
            now,
        )
        .await?;
        if let Some(event_type) = event_for(to) {
            super::outbox::insert_event_once(
                &mut tx,
                self.is_pg(),
                event_type,
                new_row.id.as_str(),
                &payout_event_data(&new_row),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(PayoutApplied::Moved {
            from: row.state,
            row: new_row,
        })
    }

    /// Record an attempt or a wait without changing the state (the history shows every try
    /// that led to `needs_attention`).
    pub async fn note_payout(
        &self,
        id: &PayoutId,
        note: PayoutNote<'_>,
    ) -> Result<PayoutRow, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE payouts SET attempts = $2, next_check_at = $3, reason = COALESCE($4, reason), ",
            "submit_attempts = submit_attempts + $5 WHERE id = $1 RETURNING ",
            payout_cols!()
        ))
        .bind(id.as_str())
        .bind(note.attempts)
        .bind(note.next_check_at)
        .bind(note.reason)
        .bind(i64::from(note.submitted))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()))?;
        let row = payout_from_row(&row)?;
        insert_history(
            &mut tx,
            id,
            Some(row.state),
            row.state,
            note.cause,
            note.detail.or(note.reason),
            note.attempts,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Withdraw a payout before any envelope was stored (`requested` or `created`). A payout
    /// that may be on its way to the chain cannot be cancelled
    /// ([`LedgerError::InvalidPayoutTransition`]). If a Pi payment exists, the next step of the
    /// payout cancels it at Pi: enqueue the payout job after this.
    pub async fn cancel_payout(
        &self,
        id: &PayoutId,
        reason: Option<&str>,
    ) -> Result<PayoutApplied, LedgerError> {
        self.apply_payout(
            id,
            PayoutTransition::Cancelled {
                reason: reason.unwrap_or("cancelled by the operator").to_string(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
    }

    /// Send a `needs_attention` payout back to the step its stored data implies: confirmed if a
    /// landed transaction is recorded, signed if an envelope is stored (it is resubmitted, never
    /// replaced blindly), created if a Pi payment exists, else requested.
    pub async fn retry_payout(
        &self,
        id: &PayoutId,
        detail: Option<&str>,
    ) -> Result<PayoutApplied, LedgerError> {
        let row = self
            .payout(id)
            .await?
            .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()))?;
        let target = if row.ledger.is_some() && row.tx_hash.is_some() {
            PayoutState::Confirmed
        } else if row.envelope_b64.is_some() {
            PayoutState::Signed
        } else if row.pi_payment_id.is_some() {
            PayoutState::Created
        } else {
            PayoutState::Requested
        };
        self.apply_payout(
            id,
            PayoutTransition::Retry(target),
            detail,
            0,
            PayoutPatch::default(),
        )
        .await
    }
}
