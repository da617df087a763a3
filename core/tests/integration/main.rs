//! pi-payments-core's integration tests in one binary (one link instead of six): the ledger on
//! both databases, the Pi and Horizon clients, the payout pipeline and reconciliation against
//! pi-sim, and the cross-checks with Python's stellar-sdk. `support` is the harness they share.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod support;

mod call_budget;
mod fuzz_payout_import;
mod horizon_client;
mod ledger;
mod payout_import;
mod payout_lanes;
mod payout_pipeline;
mod payout_throttle;
mod pi_client;
mod rate_limit_shared;
mod reconcile_sim;
mod stellar_cross_check;
mod u2a_processor;
