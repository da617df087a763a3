//! Scheduled reconciliation: an apalis-cron worker that ticks every `RECONCILE_EVERY` seconds
//! and runs core's [`Reconciler::run_once`] (the sweeper and Pi's incomplete server payments).
//!
//! Ticks are aligned to multiples of the interval since the unix epoch, so every worker process
//! ticks at the same instants; the ledger lease lets exactly one of them run, and its cool-down
//! makes the others skip that tick instead of repeating it. The tick stream is in memory: a tick
//! missed while no worker ran is harmless, because the next run sweeps everything that is still
//! stuck.

use crate::context::HandlerCtx;
use apalis::prelude::{BoxDynError, Data};
use apalis_cron::{Schedule, Tick};
use pi_payments_core::reconcile::{ReconcileConfig, Reconciler, RunOutcome};
use pi_payments_core::telemetry::{self, ReconcileTick};
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};
use tracing::Instrument;

/// When and how reconciliation runs in this process.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScheduleConfig {
    /// The reconciler's tunables; `reconcile.every` is the tick interval (`RECONCILE_EVERY`).
    pub reconcile: ReconcileConfig,
}

/// A schedule firing every `secs` seconds, at multiples of `secs` since the epoch (cron cannot
/// say "every 90 seconds").
#[derive(Clone, Debug)]
pub(crate) struct Every {
    secs: u64,
    last: u64,
}

impl Every {
    pub(crate) fn new(interval: Duration) -> Every {
        Every {
            secs: interval.as_secs().max(1),
            last: 0,
        }
    }
}

impl<Tz> Schedule<Tz> for Every {
    fn next_tick(&mut self, _tz: &Tz) -> Option<Tick<Tz>> {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        // Strictly after now and after the previous tick: never the same tick twice.
        let next = (now / self.secs + 1) * self.secs;
        let next = next.max(self.last + self.secs);
        self.last = next;
        Some(Tick::new(next))
    }
}

/// What the cron handler needs.
pub(crate) struct ScheduleCtx {
    pub(crate) reconciler: Reconciler,
    /// This process' worker id (the lease holder's name).
    pub(crate) holder: String,
}

impl ScheduleCtx {
    pub(crate) fn new(ctx: &HandlerCtx, cfg: &ScheduleConfig, holder: String) -> ScheduleCtx {
        let deps = &ctx.deps;
        ScheduleCtx {
            reconciler: Reconciler::new(
                deps.ledger.clone(),
                deps.pi.clone(),
                deps.horizon.clone(),
                deps.app_wallet.clone(),
                Arc::new(ctx.queue.clone()),
                cfg.reconcile.clone(),
            ),
            holder,
        }
    }
}

/// apalis-cron handler: one reconcile run, unless another process holds the lease.
pub(crate) async fn reconcile_tick(
    tick: Tick,
    ctx: Data<Arc<ScheduleCtx>>,
) -> Result<(), BoxDynError> {
    let span = tracing::info_span!("reconcile", tick = tick.get_timestamp());
    match ctx.reconciler.run_once(&ctx.holder).instrument(span).await {
        Ok(RunOutcome::Ran(summary)) => {
            telemetry::record_reconcile(ReconcileTick::Ran(&summary.findings()));
            tracing::debug!(run_id = summary.run_id, "reconcile tick ran");
            Ok(())
        }
        Ok(RunOutcome::Skipped { holder }) => {
            telemetry::record_reconcile(ReconcileTick::Skipped);
            tracing::debug!(
                ?holder,
                "reconcile tick skipped: another run holds the lease"
            );
            Ok(())
        }
        Err(error) => {
            telemetry::record_reconcile(ReconcileTick::Failed);
            // Not retried: the next tick is the retry.
            tracing::warn!(%error, "reconcile run failed; the next tick tries again");
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::schedule::Every;
    use apalis_cron::{Schedule, Tick};
    use std::time::Duration;

    #[test]
    fn ticks_are_aligned_and_strictly_increasing() {
        let mut every = Every::new(Duration::from_secs(7));
        let a: Tick = Schedule::<apalis_cron::timezone::Utc>::next_tick(&mut every, &chrono::Utc)
            .expect("tick");
        let b: Tick = Schedule::<apalis_cron::timezone::Utc>::next_tick(&mut every, &chrono::Utc)
            .expect("tick");
        assert_eq!(a.get_timestamp() % 7, 0);
        assert_eq!(b.get_timestamp(), a.get_timestamp() + 7);
    }
}
