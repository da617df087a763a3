//! pi-payments-core: the parts of pi-payments that do not depend on how they are served.
//! Domain types, the payment state machine, the ledger, the Pi and Horizon clients, Stellar
//! signing, job definitions and app-facing events. `api/` and `worker/` depend on this crate;
//! it depends on neither.

pub mod ads;
pub mod amount;
pub mod call_window;
pub mod dto;
pub mod events;
#[cfg(test)]
mod fuzzing;
pub mod horizon;
pub mod ids;
pub mod jobs;
pub mod ledger;
pub mod payout;
pub mod payout_import;
pub mod pi_client;
pub mod pioneer;
pub mod products;
pub mod rate_limit;
pub mod reconcile;
pub mod secret;
pub mod shared_strikes;
pub mod state;
pub mod stellar;
pub mod telemetry;
pub mod throttle;
pub mod timestamp;
pub mod u2a;
pub mod wal_checkpoint;

pub use amount::PiAmount;
pub use ids::{OrderId, PaymentId, Txid, Uid};
/// The Pi client's retry policy at its former path (`pi_payments_core::retry`), which the api
/// and worker crates and their tests still name.
pub use pi_client::retry;
