//! Horizon (the Pi blockchain's HTTP API): the client ([`HorizonClient`]), the records it
//! returns, its errors, Horizon's JSON on the wire, and the verification of a Pioneer's U2A
//! transaction.
//!
//! - [`client`]: the HTTP calls (accounts, fee, submit, transactions, find by memo).
//! - [`records`]: typed answers ([`Account`], [`TxInfo`], [`PaymentOp`], [`Page`], [`SubmitOk`]).
//! - [`error`]: [`HorizonError`] and [`SubmitError`] (submission results classified for the
//!   payout state machine; see [`TxFailure::is_definite`](crate::stellar::TxFailure::is_definite)).
//! - `wire`: Horizon's JSON shapes and their exact reading (private).
//! - [`verify`]: [`HorizonClient::verify_payment`] and [`check_payment`].

pub mod client;
pub mod error;
pub mod records;
pub mod verify;
mod wire;

pub use client::{FIND_BY_MEMO_SCAN_LIMIT, HorizonClient, MAX_PAGE_LIMIT};
pub use error::{HorizonError, SubmitError};
pub use records::{Account, LedgerHead, Order, Page, PaymentOp, SubmitOk, TxInfo};
pub use verify::{VerificationProblem, VerifiedTx, check_payment};
pub use wire::parse_stroops;
