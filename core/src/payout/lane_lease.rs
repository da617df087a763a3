//! Payout lanes any worker process can hold: each transaction source (the app wallet, each
//! channel account) is held by exactly one process at a time through a ledger lease named
//! `payout-lane:{account}` ([`crate::ledger::leases`]). A background task renews the leases
//! this process holds and tries to take free or expired ones every [`LANE_RENEW_EVERY`]; a
//! process that dies stops renewing, its leases expire after [`LANE_LEASE_TTL`], and another
//! process takes its lanes over at its next tick: within TTL + one tick (8 s) of the crash.
//! A lane taken over reloads its sequence from Horizon (the previous holder used it).

use super::lane::{Lanes, SourceLane};
use crate::ledger::{Ledger, LedgerError};
use std::sync::Arc;
use std::time::Duration;
use tokio::task::JoinHandle;

/// How long a lane's lease lasts without renewal.
pub const LANE_LEASE_TTL: Duration = Duration::from_secs(6);
/// How often the holder renews its leases and looks for free lanes (a third of the TTL, so
/// one slow renewal does not lose a lane).
pub const LANE_RENEW_EVERY: Duration = Duration::from_secs(2);

/// The lease of the lane of `account`.
pub fn lane_lease_name(account: &str) -> String {
    format!("payout-lane:{account}")
}

/// The task that holds this process's lanes; dropping it stops the renewals (the leases then
/// expire and other processes take the lanes over).
pub struct LaneLeases {
    task: JoinHandle<()>,
    ledger: Ledger,
    lanes: Arc<Lanes>,
    holder: String,
}

impl std::fmt::Debug for LaneLeases {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LaneLeases")
            .field("holder", &self.holder)
            .field("held", &self.lanes.held_accounts())
            .finish_non_exhaustive()
    }
}

impl Drop for LaneLeases {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl LaneLeases {
    /// From now on `lanes` are used only while `holder` (unique per process) holds their
    /// leases in `ledger`: every lane starts unheld and the first tick runs at once.
    pub fn spawn(ledger: Ledger, lanes: Arc<Lanes>, holder: String) -> LaneLeases {
        for lane in lanes.all() {
            lane.set_held(false);
        }
        let (ledger2, lanes2, holder2) = (ledger.clone(), lanes.clone(), holder.clone());
        let task = tokio::spawn(async move {
            loop {
                for lane in lanes2.all() {
                    tick(&ledger2, lane, &holder2).await;
                }
                tokio::time::sleep(LANE_RENEW_EVERY).await;
            }
        });
        LaneLeases {
            task,
            ledger,
            lanes,
            holder,
        }
    }

    /// At a graceful stop: stop renewing and give every held lane back, so other processes
    /// (or this one restarted) take them at their next tick instead of after the TTL.
    pub async fn release(&self) {
        self.task.abort();
        for lane in self.lanes.all() {
            if !lane.is_held() {
                continue;
            }
            lane.set_held(false);
            let name = lane_lease_name(lane.account());
            if let Err(error) = self.ledger.release_lease(&name, &self.holder, None).await {
                tracing::warn!(account = lane.account(), %error, "could not release a payout lane; it expires on its own");
            }
        }
    }
}

/// Renew `lane`'s lease if held, else try to take it; record the result on the lane.
async fn tick(ledger: &Ledger, lane: &SourceLane, holder: &str) {
    let name = lane_lease_name(lane.account());
    let was_held = lane.is_held();
    let result: Result<bool, LedgerError> = if was_held {
        ledger.renew_lease(&name, holder, LANE_LEASE_TTL).await
    } else {
        ledger.try_lease(&name, holder, LANE_LEASE_TTL).await
    };
    let held = match result {
        Ok(held) => held,
        Err(error) => {
            // Unsure whether the lease still stands: stop using the lane; it is taken again
            // once the ledger answers and the lease is free.
            tracing::warn!(account = lane.account(), %error, "could not renew a payout lane lease");
            false
        }
    };
    if held != was_held {
        lane.set_held(held);
        if held {
            tracing::info!(account = lane.account(), "payout lane taken");
        } else {
            tracing::warn!(
                account = lane.account(),
                "payout lane lost to another process"
            );
        }
    }
}
