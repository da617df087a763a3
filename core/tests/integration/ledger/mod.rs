//! The ledger: the U2A and payout scenarios written once and run on SQLite and on Postgres, the
//! reconcile lease, and what only one database does.

mod lease;
mod operator_scenarios;
mod payout_scenarios;
mod postgres;
mod recovery;
mod sqlite;
mod tokens_at_rest;
mod u2a_scenarios;
