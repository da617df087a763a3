//! The simulated Pi blockchain: accounts, the transaction queue, ledger closing and the
//! record of applied transactions. [`Chain`] is the handle; `records` holds what it answers,
//! `ledger` the state and stellar-core's rules over it. The public items re-exported here are
//! the interface the Platform side, Horizon and the tests use.

pub(crate) mod handle;
pub(crate) mod ledger;
pub(crate) mod records;

pub use crate::amount::{format_amount, parse_amount};
pub use crate::chain_xdr::{BuildError, build_payment_envelope};
pub use handle::Chain;
pub use records::{
    AccountInfo, BASE_FEE, ChainConfig, LedgerInfo, MIN_BALANCE, OpRecord, ResultCodes, Stroops,
    SubmitOutcome, TxRecord,
};
