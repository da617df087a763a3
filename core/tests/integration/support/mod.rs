//! The one harness of pi-payments-core's integration tests, shared by every test binary:
//! fresh ledgers (a SQLite file or a Postgres database of their own, see [`ledger`]) and a
//! running pi-sim with its control client and our clients wired to it (see [`sim`]).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod ledger;
pub mod payouts;
pub mod sim;
