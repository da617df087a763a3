//! What can go wrong in the ledger. Every message says what to do next, so an operator reading a
//! log line or an API error knows where to look.

use crate::ids::{BatchId, OrderId, PaymentId, PayoutId, Txid};
use crate::state::{InvalidPayoutTransition, InvalidTransition};

/// Everything that can go wrong in the ledger; each message says what to do next.
#[derive(Debug, thiserror::Error)]
pub enum LedgerError {
    #[error(
        "DATABASE_URL scheme {scheme:?} is not supported: use sqlite://path/to/file.db or postgres://user@host/database"
    )]
    UnsupportedUrl { scheme: String },
    #[error(
        "cannot open the ledger database ({0}): check DATABASE_URL, that the server is running, or that the file's directory exists and is writable"
    )]
    Connect(#[source] sqlx::Error),
    #[error(
        "applying the ledger migrations failed ({0}): run `pi-payments migrate` against this DATABASE_URL to see the failing migration"
    )]
    Migrate(#[source] sqlx::migrate::MigrateError),
    #[error(
        "ledger database error ({0}): if it persists, check that the database is reachable and not full"
    )]
    Db(#[from] sqlx::Error),
    #[error("payment {0} is not in the ledger: it was never received by a callback")]
    PaymentNotFound(PaymentId),
    #[error(
        "Pi does not know payment {0} (it answered 404 payment_not_found): check the paymentId Pi's SDK passed to the callback"
    )]
    UnknownAtPi(PaymentId),
    #[error("order {0} does not exist: create orders with POST /orders")]
    OrderNotFound(OrderId),
    #[error(transparent)]
    InvalidTransition(#[from] InvalidTransition),
    #[error(
        "payment {payment_id} already has txid {stored}; the different txid {got} was refused (check which transaction the Pioneer really submitted)"
    )]
    TxidConflict {
        payment_id: PaymentId,
        stored: Txid,
        got: Txid,
    },
    #[error(
        "txid {txid} already belongs to payment {other}: one transaction cannot pay two payments"
    )]
    TxidTaken { txid: Txid, other: PaymentId },
    #[error(
        "payment {0} has no txid, so it cannot go back to completing: wait for the complete callback or retry the approve step"
    )]
    MissingTxid(PaymentId),
    #[error("order {order_id} cannot be paid by payment {payment_id}: {why}")]
    OrderUnavailable {
        order_id: OrderId,
        payment_id: PaymentId,
        why: String,
    },
    #[error(
        "payment {0} changed while this update ran: retry the operation (it will see the new state)"
    )]
    Concurrent(PaymentId),
    #[error(
        "the ledger holds a value it cannot read ({0}): the database was edited by hand or by a newer version"
    )]
    Corrupt(String),
    #[error("payout {0} does not exist: check the id returned by POST /payouts")]
    PayoutNotFound(PayoutId),
    #[error(
        "idempotency key {key:?} was already used for payout {existing} with a different body: send the same body to get that payout back, or use a new key for a new payout"
    )]
    IdempotencyConflict { key: String, existing: PayoutId },
    #[error("payout {payout_id} refused the update: {detail}")]
    PayoutConflict { payout_id: PayoutId, detail: String },
    #[error(transparent)]
    InvalidPayoutTransition(#[from] InvalidPayoutTransition),
    #[error("invalid payout request: {0}")]
    BadPayoutRequest(String),
    #[error("batch {0} does not exist: create it first (POST /payouts/bulk creates one per file)")]
    BatchNotFound(BatchId),
}
