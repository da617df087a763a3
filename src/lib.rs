//! The `pi-payments` binary's library: command line ([`cli`]), configuration ([`config`]),
//! connections ([`services`]), running the service ([`startup`]), the embedded-mode storefront
//! ([`demo`]) and the benchmarks
//! ([`bench`], [`bench_payouts`]). `main.rs` only dispatches; the end-to-end tests start the
//! service in-process through [`startup::RunningApp`].

pub mod bench;
pub mod bench_payouts;
pub mod channels_cli;
pub mod check_config;
pub mod cli;
pub mod config;
pub mod demo;
pub mod payouts_cli;
pub mod reconcile;
pub mod services;
pub mod startup;
pub mod telemetry;

pub use config::Config;
pub use startup::{Role, RunningApp};
