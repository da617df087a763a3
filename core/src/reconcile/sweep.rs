//! The sweeper: our own rows that should be moving and are not.
//!
//! | row | older than | job re-enqueued |
//! |---|---|---|
//! | payment `received` | `STUCK_AFTER` | approve (re-reads Pi; records a cancellation) |
//! | payment `completing` | `STUCK_AFTER` | complete (verifies on chain, completes at Pi) |
//! | payment `approved`, no tx | `ABANDON_AFTER`, or `STUCK_AFTER` after a cancel/error callback | incomplete (re-reads Pi: linked tx → complete path; none → cancelled at Pi so the Pioneer is unblocked; cancelled at Pi → recorded) |
//! | payment `approved` after a complete callback (its txid only a claim) | `STUCK_AFTER` | complete (binds the txid Pi linked, or notes that Pi shows none yet) |
//! | payout `requested`/`created`/`signed`/`confirmed` | `STUCK_AFTER`, not postponed | payout (resumes from the stored step) |
//!
//! Every re-enqueue is a line in the row's history (`sweep_requeued`) and postpones the row by
//! `STUCK_AFTER`, so a job gets time to run. A sweep counts as one "without movement" only when
//! a job finished on the row since its last re-enqueue ([`crate::ledger::Ledger::job_finished`]) and
//! the row did not move; a row re-enqueued `max_sweeps` times so goes to `needs_attention`
//! (`gave_up`), history and all. A row whose job has not run since is queued, not stuck (a
//! backlog, a slow limit): it is not counted, and enqueued once more only after
//! [`QUEUED_REQUEUE_FACTOR`] × `STUCK_AFTER` in case the queue lost it (a Redis restart), then
//! after twice as long each time while still no job runs. A row
//! whose job was throttled is waiting on a limit: its `next_check_at` keeps it out of the sweep
//! until the job runs again, and its count starts over (see [`crate::throttle`]).

use super::config::ms;
use super::error::ReconcileError;
use super::reconciler::Reconciler;
use super::summary::RunSummary;
use crate::ids::PayoutId;
use crate::jobs::Job;
use crate::ledger::{
    LedgerError, PaymentPatch, PaymentRow, PayoutNote, PayoutPatch, SweepCount, Swept, now_ms,
};
use crate::state::{PaymentState, PayoutTransition, Transition};
use std::collections::HashSet;

/// A row whose re-enqueued job has not run yet is enqueued again after this many `STUCK_AFTER`
/// (the queue may have lost it), never sooner: each extra copy in a backlog would cost a Pi call.
pub const QUEUED_REQUEUE_FACTOR: i64 = 4;

/// Sweep counters untouched this long are dropped.
const PRUNE_AFTER_MS: i64 = 7 * 24 * 3600 * 1000;

/// The job that moves a stuck payment on.
fn job_for(row: &PaymentRow) -> Option<(Job, &'static str)> {
    match row.state {
        PaymentState::Received => Some((Job::approve(row.id.clone()), "approve")),
        PaymentState::Completing => Some((Job::complete(row.id.clone()), "complete")),
        PaymentState::Approved => Some((Job::incomplete(row.id.clone()), "incomplete")),
        _ => None,
    }
}

/// What the sweeper does with one unchanged row.
enum Counted {
    /// A job finished on it and it did not move: the n-th such sweep in a row.
    Unmoved(i64),
    /// Its job is queued: leave it (postponed by `STUCK_AFTER`).
    Queued,
    /// Its job is queued, but for so long that the queue may have lost it: enqueue it again,
    /// without counting; the text says so in the row's history.
    Requeue(String),
}

/// Count a sweep of row `subject` (see [`Counted`]).
async fn count(
    r: &Reconciler,
    kind: Swept,
    subject: &str,
    updated_at: i64,
    now: i64,
) -> Result<Counted, ReconcileError> {
    let stuck_after = ms(r.config.stuck_after);
    let requeue_after = stuck_after.saturating_mul(QUEUED_REQUEUE_FACTOR);
    match r
        .ledger
        .count_sweep(kind, subject, updated_at, now, requeue_after)
        .await?
    {
        SweepCount::Unmoved(n) => Ok(Counted::Unmoved(n)),
        SweepCount::Queued { requeue: None } => {
            r.ledger
                .postpone(kind, subject, now.saturating_add(stuck_after))
                .await?;
            Ok(Counted::Queued)
        }
        SweepCount::Queued {
            requeue: Some(waited),
        } => Ok(Counted::Requeue(format!(
            "its job has not run for {} s since it was last enqueued; enqueued again in case the queue lost it (not counted as a sweep without movement)",
            waited / 1000
        ))),
    }
}

/// Sweep payments and payouts once. Payout ids re-enqueued are added to `enqueued` (the
/// server-payment phase does not enqueue them twice).
pub(crate) async fn sweep(
    r: &Reconciler,
    summary: &mut RunSummary,
    enqueued: &mut HashSet<PayoutId>,
) -> Result<(), ReconcileError> {
    let now = now_ms();
    let postpone = Some(now.saturating_add(ms(r.config.stuck_after)));
    let mut jobs = Vec::new();

    let stuck_payments = r
        .ledger
        .u2a_payments_to_sweep(
            now,
            now.saturating_sub(ms(r.config.stuck_after)),
            now.saturating_sub(ms(r.config.abandon_after)),
            r.config.batch,
        )
        .await?;
    for row in stuck_payments {
        let Some((mut job, mut name)) = job_for(&row) else {
            continue;
        };
        // An approved payment whose complete callback came: the Pioneer says they paid, so its
        // complete job looks at Pi again (it binds Pi's txid, or waits quietly), never the
        // incomplete job that cancels a payment without a transaction.
        if row.state == PaymentState::Approved
            && r.ledger
                .has_callback(&row.id, crate::ledger::CallbackStep::Complete)
                .await?
        {
            (job, name) = (Job::complete(row.id.clone()), "complete");
        }
        let unchanged_s = (now - row.updated_at) / 1000;
        let (sweeps, requeued_because) =
            match count(r, Swept::Payment, row.id.as_str(), row.updated_at, now).await? {
                Counted::Unmoved(sweeps) => (sweeps, None),
                Counted::Queued => continue,
                Counted::Requeue(why) => (0, Some(why)),
            };
        if sweeps > r.config.max_sweeps {
            let reason = format!(
                "the sweeper re-enqueued its {name} job {} times and the payment stayed {} (unchanged for {unchanged_s} s): look at its history, then retry it",
                sweeps - 1,
                row.state
            );
            tracing::error!(payment_id = %row.id, %reason, "stuck payment needs attention");
            match r
                .ledger
                .apply(
                    &row.id,
                    Transition::GaveUp {
                        reason: reason.clone(),
                    },
                    Some(&reason),
                    row.attempts,
                    PaymentPatch::default(),
                )
                .await
            {
                Ok(_) | Err(LedgerError::InvalidTransition(_)) => {}
                Err(e) => return Err(e.into()),
            }
            r.ledger
                .clear_sweep(Swept::Payment, row.id.as_str())
                .await?;
            summary.gave_up.push(format!("payment:{}", row.id));
            continue;
        }
        let why = requeued_because.unwrap_or_else(|| {
            format!(
                "re-enqueued the {name} job (sweep {sweeps} of {})",
                r.config.max_sweeps
            )
        });
        let detail = format!("{} unchanged for {unchanged_s} s: {why}", row.state);
        tracing::info!(payment_id = %row.id, %detail, "sweeper re-enqueues a payment");
        r.ledger
            .note(
                &row.id,
                "sweep_requeued",
                Some(&detail),
                row.attempts,
                postpone,
            )
            .await?;
        summary.requeued_payments.push(format!("{}:{name}", row.id));
        jobs.push(job);
    }

    for row in r
        .ledger
        .payouts_stuck(ms(r.config.stuck_after), r.config.batch)
        .await?
    {
        let unchanged_s = (now - row.updated_at) / 1000;
        let (sweeps, requeued_because) =
            match count(r, Swept::Payout, row.id.as_str(), row.updated_at, now).await? {
                Counted::Unmoved(sweeps) => (sweeps, None),
                Counted::Queued => continue,
                Counted::Requeue(why) => (0, Some(why)),
            };
        if sweeps > r.config.max_sweeps {
            let reason = format!(
                "the sweeper re-enqueued its payout job {} times and it stayed {} (unchanged for {unchanged_s} s): look at its history, then retry it",
                sweeps - 1,
                row.state
            );
            tracing::error!(payout_id = %row.id, %reason, "stuck payout needs attention");
            match r
                .ledger
                .apply_payout(
                    &row.id,
                    PayoutTransition::GaveUp {
                        reason: reason.clone(),
                    },
                    Some(&reason),
                    row.attempts,
                    PayoutPatch::default(),
                )
                .await
            {
                Ok(_) | Err(LedgerError::InvalidPayoutTransition(_)) => {}
                Err(e) => return Err(e.into()),
            }
            r.ledger.clear_sweep(Swept::Payout, row.id.as_str()).await?;
            summary.gave_up.push(format!("payout:{}", row.id));
            continue;
        }
        let why = requeued_because.unwrap_or_else(|| {
            format!(
                "re-enqueued the payout job (sweep {sweeps} of {})",
                r.config.max_sweeps
            )
        });
        let detail = format!("{} unchanged for {unchanged_s} s: {why}", row.state);
        tracing::info!(payout_id = %row.id, %detail, "sweeper re-enqueues a payout");
        r.ledger
            .note_payout(
                &row.id,
                PayoutNote {
                    cause: "sweep_requeued",
                    detail: Some(&detail),
                    attempts: row.attempts,
                    next_check_at: postpone,
                    ..PayoutNote::default()
                },
            )
            .await?;
        summary.requeued_payouts.push(row.id.to_string());
        enqueued.insert(row.id.clone());
        jobs.push(Job::payout(row.id));
    }

    if !jobs.is_empty() {
        // Noted first: if the queue is down, the rows come back after STUCK_AFTER.
        r.queue.enqueue_many(jobs).await?;
    }
    r.ledger.prune_sweeps(now - PRUNE_AFTER_MS).await?;
    Ok(())
}
