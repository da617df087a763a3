//! The tunables of reconciliation and their production defaults.

use std::time::Duration;

/// `RECONCILE_EVERY`'s default.
pub const DEFAULT_RECONCILE_EVERY: Duration = Duration::from_secs(60);
/// `STUCK_AFTER`'s default.
pub const DEFAULT_STUCK_AFTER: Duration = Duration::from_secs(120);
/// `ABANDON_AFTER`'s default: well past the Pi SDK's own timers, so a Pioneer still signing in
/// the wallet is not cut off.
pub const DEFAULT_ABANDON_AFTER: Duration = Duration::from_secs(300);
/// The shortest reconcile lease, whatever `RECONCILE_EVERY` is: a renewal every third of it
/// must not be a busy loop.
const MIN_LEASE_TTL: Duration = Duration::from_secs(2);

/// Tunables of reconciliation. `Default` is what production uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReconcileConfig {
    /// `RECONCILE_EVERY`: how often a run is due (the lease's cool-down is half of it).
    pub every: Duration,
    /// `STUCK_AFTER`: an in-flight row unchanged this long gets its job again.
    pub stuck_after: Duration,
    /// `ABANDON_AFTER`: an approved U2A payment without a transaction this old is re-read at
    /// Pi and cancelled there if still without one.
    pub abandon_after: Duration,
    /// Sweeps in a row without progress before a row goes to `needs_attention`.
    pub max_sweeps: i64,
    /// Rows of each kind one sweep looks at, at most (the next run takes the rest).
    pub batch: i64,
    /// How long the lease lasts without renewal: a run renews it every third of this while it
    /// runs, so only a dead holder lets it expire and blocks the next run this long at most.
    /// About two `every` ([`ReconcileConfig::lease_ttl_for`]).
    pub lease_ttl: Duration,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            every: DEFAULT_RECONCILE_EVERY,
            stuck_after: DEFAULT_STUCK_AFTER,
            abandon_after: DEFAULT_ABANDON_AFTER,
            max_sweeps: 5,
            batch: 500,
            lease_ttl: ReconcileConfig::lease_ttl_for(DEFAULT_RECONCILE_EVERY),
        }
    }
}

impl ReconcileConfig {
    /// The lease's time to live for runs due every `every`: two intervals (at least
    /// [`MIN_LEASE_TTL`]), so a process that died holding it delays reconciliation by about
    /// one missed run, not by a fixed five minutes.
    pub fn lease_ttl_for(every: Duration) -> Duration {
        every.saturating_mul(2).max(MIN_LEASE_TTL)
    }
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}
