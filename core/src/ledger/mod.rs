//! The ledger: the exact record of every payment, order and app-facing event, in SQLite (the
//! default, one file) or Postgres, chosen by the URL's scheme.
//!
//! Built on `sqlx::any` so one set of queries serves both databases: `$1` placeholders (valid in
//! both), amounts as BIGINT stroops, timestamps as BIGINT unix milliseconds, JSON as TEXT. The
//! database enforces what must never be violated: one row per payment id, a txid belongs to at
//! most one payment, an order is paid by at most one payment, one outbox event per
//! (type, subject).
//!
//! Concurrency: every write transaction starts with `BEGIN IMMEDIATE` on SQLite (in WAL a
//! read-then-write transaction cannot wait for the write lock, it fails with SQLITE_BUSY; taking
//! the lock up front makes `busy_timeout` apply), and reads the rows it changes `FOR UPDATE` on
//! Postgres. Concurrent writers of the same payment therefore serialize, and the state machine
//! turns the loser's repeat into a no-op. On a SQLite file, write transactions share ONE
//! pooled connection (writers queue in-process instead of polling SQLite's lock), and the API's
//! callback batcher writes on a connection of its own ([`callbacks`]); a background task
//! checkpoints the WAL ([`Ledger::spawn_checkpointer`]).
//!
//! Split by concern: [`connection`] (pools, migrations, write transactions), [`payments`] (rows,
//! transitions), [`callbacks`] (what the HTTP API records), [`orders`], [`outbox`], and the
//! ledger side of payouts and reconciliation.

pub mod ad_claims;
pub mod callback_batch;
mod callback_step;
pub mod callbacks;
mod clock;
pub mod connection;
mod decode;
pub mod drift;
mod error;
pub mod lease_keeper;
pub mod leases;
pub mod operator_actions;
pub mod operator_views;
pub mod orders;
pub mod outbox;
pub mod payments;
pub mod payout_batches;
pub mod payout_requests;
pub mod payout_transitions;
mod payout_waits;
pub mod payouts;
pub mod pioneers;
pub mod reconcile;
pub mod scratch;
pub mod sessions;
mod sql_list;
pub mod sweep;
pub mod unknown_ids;
mod webhook_body;

pub use ad_claims::{AdBinding, AdClaimRow, AdClaimStatus, AdObservation, AdUpdate};
pub use callbacks::{Callback, CallbackStep, Recorded};
pub use clock::now_ms;
pub use connection::{DbKind, Ledger, WAL_SIZE_LIMIT};
pub use error::LedgerError;
pub use lease_keeper::KeptLease;
pub use leases::LeaseRow;
pub use operator_actions::OperatorActionRow;
pub use operator_views::{BatchProgress, DeliveryQuery, PageCursor, PaymentQuery, PayoutQuery};
pub use orders::{Order, OrderState};
pub use outbox::EventRow;
pub use payments::{Applied, Direction, PaymentEventRow, PaymentPatch, PaymentRow};
pub use payout_batches::BatchRow;
pub use payout_requests::PayoutRequest;
pub use payout_transitions::{PayoutApplied, PayoutNote, PayoutPatch};
pub use payouts::{PayoutEventRow, PayoutFilter, PayoutRow};
pub use pioneers::PioneerRow;
pub use reconcile::{FindingRow, RunRow};
pub use sessions::{MAX_SESSIONS_PER_PIONEER, NewSession, SessionRow};
pub(crate) use sweep::SweepCount;
pub use sweep::Swept;
