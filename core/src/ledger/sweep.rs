//! What the sweeper reads and writes in the ledger: rows that should be moving and are not, and
//! the per-row counters of how many sweeps found a row unchanged (migration `0004_reconcile.sql`).
//! Which states count as "should be moving" comes from the state machine
//! ([`PaymentState::IN_FLIGHT`], [`PayoutState::IN_FLIGHT`]).
//!
//! A row whose job was throttled ([`Ledger::throttled`]) is waiting on a limit, not stuck: its
//! `next_check_at` holds the sweeper off until the job runs again, and its counter starts over,
//! so time spent throttled never adds up to "sweeps without movement".

use super::callback_step::CallbackStep;
use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use super::payments::{Direction, PaymentRow, payment_cols, payment_from_row};
use super::payouts::{PayoutRow, payout_cols, payout_from_row};
use super::sql_list::sql_list;
use crate::state::{PaymentState, PayoutState};
use sqlx::any::AnyRow;
use std::sync::LazyLock;

/// How many times the wait before enqueueing a still-queued row again doubles, at most
/// (4 × `STUCK_AFTER` × 2^6: about 8.5 hours at the default 120 s).
const MAX_QUEUED_DOUBLINGS: i64 = 6;

/// What one sweep of an unchanged row found (see [`Ledger::count_sweep`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SweepCount {
    /// A job finished on the row since it was last re-enqueued and the row did not move: this many
    /// sweeps in a row found it so (1 the first time, or after the row moved).
    Unmoved(i64),
    /// No job finished on the row since the last re-enqueue: it is queued or running (perhaps
    /// waiting on a rate limit), not stuck. `requeue`:
    /// `Some(wait)` when `wait` ms passed since then, so the queue may have lost it and it is
    /// enqueued once more.
    Queued { requeue: Option<i64> },
}

/// The rows the sweeper watches (the `kind` of its counters).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Swept {
    /// A U2A payment (`payments`).
    Payment,
    /// An A2U payout (`payouts`).
    Payout,
}

impl Swept {
    /// The counter's `kind`.
    fn kind(self) -> &'static str {
        match self {
            Swept::Payment => "payment",
            Swept::Payout => "payout",
        }
    }

    /// Push the row's `next_check_at` out to `$2` (never earlier than it already is).
    fn postpone_sql(self) -> &'static str {
        match self {
            Swept::Payment => {
                "UPDATE payments SET next_check_at = CASE WHEN next_check_at > $2 \
                 THEN next_check_at ELSE $2 END WHERE id = $1 RETURNING next_check_at"
            }
            Swept::Payout => {
                "UPDATE payouts SET next_check_at = CASE WHEN next_check_at > $2 \
                 THEN next_check_at ELSE $2 END WHERE id = $1 RETURNING next_check_at"
            }
        }
    }
}

/// The rows of `table` in `states` unchanged since `$1` and not postponed past `$2` (its
/// `next_check_at`), oldest first, at most `$3`; `cols` are the columns its decoder reads.
fn stuck_rows_sql(cols: &str, table: &str, states: String) -> String {
    format!(
        "SELECT {cols} FROM {table} WHERE state IN {states} \
         AND updated_at <= $1 AND (next_check_at IS NULL OR next_check_at <= $2) \
         ORDER BY updated_at LIMIT $3"
    )
}

static STUCK_PAYMENTS: LazyLock<String> = LazyLock::new(|| {
    stuck_rows_sql(
        payment_cols!(),
        "payments",
        sql_list(PaymentState::IN_FLIGHT.map(PaymentState::as_str)),
    )
});

static STUCK_PAYOUTS: LazyLock<String> = LazyLock::new(|| {
    stuck_rows_sql(
        payout_cols!(),
        "payouts",
        sql_list(PayoutState::IN_FLIGHT.map(PayoutState::as_str)),
    )
});

/// U2A payments the sweeper re-enqueues (see [`crate::reconcile::sweep`]): in flight, unchanged
/// since `$1`, not postponed past `$2`; an `approved` one only once older than `$3` or after a
/// cancel, error or complete callback (a complete callback's txid is only a claim, so the
/// payment stays `approved` until its job binds Pi's). Oldest first, at most `$4`.
static U2A_PAYMENTS_TO_SWEEP: LazyLock<String> = LazyLock::new(|| {
    format!(
        "SELECT {cols} FROM payments WHERE direction = '{u2a}' AND state IN {in_flight} \
         AND updated_at <= $1 AND (next_check_at IS NULL OR next_check_at <= $2) \
         AND (state <> '{approved}' OR updated_at <= $3 OR EXISTS ( \
           SELECT 1 FROM payment_callbacks c WHERE c.payment_seq = payments.seq \
           AND c.step IN {look_again_steps})) \
         ORDER BY updated_at LIMIT $4",
        cols = payment_cols!(),
        u2a = Direction::UserToApp.as_str(),
        in_flight = sql_list(PaymentState::IN_FLIGHT.map(PaymentState::as_str)),
        approved = PaymentState::Approved.as_str(),
        look_again_steps = sql_list(
            [
                CallbackStep::Cancel,
                CallbackStep::Error,
                CallbackStep::Complete,
            ]
            .map(CallbackStep::as_str)
        ),
    )
});

impl Ledger {
    /// Rows of a [`stuck_rows_sql`] query unchanged for `older_than_ms`, decoded.
    async fn stuck_rows<T>(
        &self,
        sql: &'static str,
        older_than_ms: i64,
        limit: i64,
        decode: fn(&AnyRow) -> Result<T, LedgerError>,
    ) -> Result<Vec<T>, LedgerError> {
        let now = now_ms();
        let rows = sqlx::query(sql)
            .bind(now.saturating_sub(older_than_ms))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(decode).collect()
    }

    /// Payments a job should be working on (`received`, `approved`, `completing`) that have
    /// not changed for `older_than_ms` and are not postponed by `next_check_at`: the sweeper
    /// re-enqueues them (a job may have been lost). Oldest first.
    pub async fn payments_stuck(
        &self,
        older_than_ms: i64,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        self.stuck_rows(
            STUCK_PAYMENTS.as_str(),
            older_than_ms,
            limit,
            payment_from_row,
        )
        .await
    }

    /// Payouts a job should be working on (`requested`, `created`, `signed`, `confirmed`) that
    /// have not changed for `older_than_ms` and are not postponed by `next_check_at`: the
    /// sweeper re-enqueues them. Oldest first.
    pub async fn payouts_stuck(
        &self,
        older_than_ms: i64,
        limit: i64,
    ) -> Result<Vec<PayoutRow>, LedgerError> {
        self.stuck_rows(
            STUCK_PAYOUTS.as_str(),
            older_than_ms,
            limit,
            payout_from_row,
        )
        .await
    }

    /// U2A payments whose job may have been lost, oldest first: in flight and unchanged since
    /// `stuck_before` (unix ms), not postponed past `now`; an approved one without a
    /// transaction only once older than `abandon_before` or after a cancel/error callback.
    pub(crate) async fn u2a_payments_to_sweep(
        &self,
        now: i64,
        stuck_before: i64,
        abandon_before: i64,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        let rows = sqlx::query(U2A_PAYMENTS_TO_SWEEP.as_str())
            .bind(stuck_before)
            .bind(now)
            .bind(abandon_before)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(payment_from_row).collect()
    }

    /// Count one more sweep of a row last changed at `updated_at`, found unchanged at `now`
    /// (unix ms). A sweep counts towards `needs_attention` only when a job finished on the row
    /// since the previous re-enqueue ([`Ledger::job_finished`]) and the row still did not move.
    /// If none did, the one re-enqueued is still queued or running (or the queue lost it): the row is
    /// [`SweepCount::Queued`], and enqueued again without counting only once
    /// `requeue_queued_after_ms` passed since the last re-enqueue, doubled for each such
    /// re-enqueue in a row (a long backlog is not flooded with copies). The reconcile lease keeps
    /// sweeps one at a time, so reading before writing is safe.
    pub(crate) async fn count_sweep(
        &self,
        kind: Swept,
        subject: &str,
        updated_at: i64,
        now: i64,
        requeue_queued_after_ms: i64,
    ) -> Result<SweepCount, LedgerError> {
        let seen: Option<(i64, i64, i64, Option<i64>, i64)> = sqlx::query_as(
            "SELECT seen_updated_at, sweeps, last_at, finished_at, queued_requeues \
             FROM reconcile_sweeps WHERE kind = $1 AND subject = $2",
        )
        .bind(kind.kind())
        .bind(subject)
        .fetch_optional(&self.pool)
        .await?;
        let (sweeps, queued_requeues, count) = match seen {
            Some((seen_updated_at, sweeps, last_at, finished_at, queued_requeues))
                if seen_updated_at == updated_at =>
            {
                let finished_since = finished_at.is_some_and(|done| done >= last_at);
                let wait = requeue_queued_after_ms
                    .saturating_mul(1i64 << queued_requeues.clamp(0, MAX_QUEUED_DOUBLINGS));
                if finished_since {
                    (sweeps + 1, 0, SweepCount::Unmoved(sweeps + 1))
                } else if now.saturating_sub(last_at) >= wait {
                    (
                        sweeps,
                        queued_requeues + 1,
                        SweepCount::Queued {
                            requeue: Some(wait),
                        },
                    )
                } else {
                    return Ok(SweepCount::Queued { requeue: None });
                }
            }
            _ => (1, 0, SweepCount::Unmoved(1)),
        };
        sqlx::query(
            "INSERT INTO reconcile_sweeps \
               (kind, subject, seen_updated_at, sweeps, last_at, queued_requeues) \
             VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (kind, subject) DO UPDATE SET \
               seen_updated_at = $3, sweeps = $4, last_at = $5, queued_requeues = $6",
        )
        .bind(kind.kind())
        .bind(subject)
        .bind(updated_at)
        .bind(sweeps)
        .bind(now)
        .bind(queued_requeues)
        .execute(&self.pool)
        .await?;
        Ok(count)
    }

    /// A job on row `subject` finished (whatever its outcome): the next sweep that finds the
    /// row unchanged counts as one without movement (see [`Ledger::count_sweep`]). Only rows the
    /// sweeper already re-enqueued have a counter, so for every other row this writes nothing.
    pub async fn job_finished(&self, kind: Swept, subject: &str) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE reconcile_sweeps SET finished_at = $3 WHERE kind = $1 AND subject = $2",
        )
        .bind(kind.kind())
        .bind(subject)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Hold the sweeper off row `subject` until `until` (unix ms) without touching its
    /// counter: its job is queued, so looking again sooner would only fill the sweep's batch.
    pub(crate) async fn postpone(
        &self,
        kind: Swept,
        subject: &str,
        until: i64,
    ) -> Result<(), LedgerError> {
        sqlx::query(kind.postpone_sql())
            .bind(subject)
            .bind(until)
            .fetch_optional(&self.pool)
            .await?;
        Ok(())
    }

    /// Forget a row's sweep counter (it was settled or handed to a person).
    pub(crate) async fn clear_sweep(&self, kind: Swept, subject: &str) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM reconcile_sweeps WHERE kind = $1 AND subject = $2")
            .bind(kind.kind())
            .bind(subject)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// A job for row `subject` was throttled and runs again at `until` (unix ms): the row is
    /// waiting on a limit, not stuck. The sweeper leaves it alone until then (`next_check_at`,
    /// never moved earlier) and its count of sweeps without movement starts over. Any process
    /// sees this: the ledger is the deployment's one record of it. Returns the row's
    /// `next_check_at` now (`None` for an unknown row).
    pub async fn throttled(
        &self,
        kind: Swept,
        subject: &str,
        until: i64,
    ) -> Result<Option<i64>, LedgerError> {
        let held: Option<Option<i64>> = sqlx::query_scalar(kind.postpone_sql())
            .bind(subject)
            .bind(until)
            .fetch_optional(&self.pool)
            .await?;
        self.clear_sweep(kind, subject).await?;
        Ok(held.flatten())
    }

    /// Drop sweep counters nobody touched since `before` (their rows settled long ago).
    pub(crate) async fn prune_sweeps(&self, before: i64) -> Result<(), LedgerError> {
        sqlx::query("DELETE FROM reconcile_sweeps WHERE last_at < $1")
            .bind(before)
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}
