//! pi-sim's integration tests in one binary (one link instead of eight): the Platform API, the
//! control API, faults and the audit, the chain and its Horizon, the cross-checks with Python's
//! stellar-sdk, and the `pi-sim` binary itself. `support` is the harness they share.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod support;

mod audit;
mod binary;
mod chain;
mod control;
mod cross_check;
mod faults;
mod horizon;
mod platform;
mod state_file;
