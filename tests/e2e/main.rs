//! The root package's end-to-end tests in one binary (one link of the whole service instead of
//! fourteen): the service started from a `Config` as `main` does, or the real binary, against
//! pi-sim — U2A payments, refusals and faults, webhooks, sign-in and ads, A2U payouts from the
//! API and the command line, reconciliation, logs without secrets, metrics and worker probes,
//! the CLI and the compose file, and the demo page and operator dashboard in a browser.
//! `support` is the harness they share.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod support;

mod abuse;
mod auth_e2e;
mod chaos;
mod cli;
mod compose;
mod dashboard_browser;
mod demo_browser;
mod demo_routes;
mod deployment;
mod e2e_u2a;
mod e2e_u2a_faults;
mod e2e_u2a_refusals;
mod e2e_webhooks;
mod embedded;
mod logs;
mod metrics;
mod payouts_api;
mod payouts_cli;
mod payouts_faults;
mod payouts_kill;
mod rate_limit_deployment;
mod readme_snippets;
mod reconcile_cli;
mod secrets_in_logs;
