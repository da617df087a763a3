//! Reconciliation (pi-platform.md §6): the service finds and finishes what got stuck, and tells
//! the operator what it could not.
//!
//! - [`sweep`]: our own rows. A payment or payout in an intermediate state for longer than
//!   `STUCK_AFTER` gets its job again (the queue may have lost it: Redis flushed, a process
//!   killed between the ledger write and the enqueue). An approved U2A payment with no
//!   transaction, older than `ABANDON_AFTER`, gets the incomplete job: re-read at Pi, cancelled
//!   there if still without a transaction (the Pioneer is unblocked), completed if one is linked.
//!   A row the sweeper re-enqueued [`ReconcileConfig::max_sweeps`] times without progress goes
//!   to `needs_attention`; its history shows every sweep.
//! - [`server`]: `GET /v2/payments/incomplete_server_payments`. Each one that belongs to one of
//!   our payouts (by identifier, or by the payout id in its metadata) is resumed from its stored
//!   step by the payout job; one we do not know is recorded as a finding and never paid.
//! - [`drift`]: the drift report, ledger vs Pi vs chain, for `pi-payments reconcile --report`
//!   and `GET /admin/drift` ([`drift_report`]: its shape; [`drift_compare`]: a ledger row vs
//!   its Pi payment).
//! - [`run`]: one run ([`Reconciler::run_once`]); [`reconciler`]: what it works with;
//!   [`config`]: its tunables. What runs record lives in the ledger
//!   ([`crate::ledger::reconcile`], [`crate::ledger::sweep`]).
//!
//! [`Reconciler::run_once`] runs the sweep and the server check under the ledger lease
//! [`RECONCILE_LEASE`], so with several worker processes exactly one run happens at a time; after
//! a run the lease is kept for half an interval, so processes ticking at the same moment do not
//! repeat it.

pub mod config;
pub mod drift;
pub mod drift_compare;
pub mod drift_report;
pub mod error;
pub mod reconciler;
pub mod run;
pub mod server;
pub mod summary;
pub mod sweep;

pub use crate::ledger::reconcile::{FindingRow, RunRow};
pub use config::{
    DEFAULT_ABANDON_AFTER, DEFAULT_RECONCILE_EVERY, DEFAULT_STUCK_AFTER, ReconcileConfig,
};
pub use drift::{DriftChecker, DriftOptions};
pub use drift_report::{AttentionItem, Checked, DriftItem, DriftKind, DriftReport};
pub use error::ReconcileError;
pub use reconciler::Reconciler;
pub use run::{RECONCILE_LEASE, RunOutcome};
pub use server::{SETTLED_BUT_OPEN_AT_PI, UNKNOWN_SERVER_PAYMENT, UNREADABLE_SERVER_PAYMENT};
pub use summary::RunSummary;
pub use sweep::QUEUED_REQUEUE_FACTOR;
