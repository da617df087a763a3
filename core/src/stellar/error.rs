//! [`StellarError`]: why a key, a transaction or an envelope could not be used (shared by keys,
//! building and decoding).

/// Why a key, a transaction or an envelope could not be used. Messages say what to fix; none of
/// them ever contains a secret seed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StellarError {
    /// The seed text is not an `S…` Stellar secret seed (its text is deliberately not echoed).
    #[error(
        "the wallet seed is not a valid Stellar secret seed (56 characters starting with S): \
         check PI_WALLET_SEED / PI_CHANNEL_SEEDS (the seed itself is not shown)"
    )]
    BadSeed,
    /// An address is not a `G…` public key.
    #[error(
        "{what} {value:?} is not a Stellar public key: Pi wallet addresses are 56 characters starting with G"
    )]
    BadAddress {
        /// Which field held it (destination, source, …).
        what: &'static str,
        /// The offending text (public data; capped).
        value: String,
    },
    /// The memo does not fit Stellar's 28-byte text memo.
    #[error(
        "memo {memo:?} is {len} bytes but a Stellar text memo holds at most 28: \
         use the Pi payment identifier as the memo"
    )]
    MemoTooLong {
        /// The memo given.
        memo: String,
        /// Its length in bytes.
        len: usize,
    },
    /// The fee per operation is below Pi's base fee.
    #[error(
        "fee per operation {0} stroops is below the Pi base fee of 100000 stroops (0.01 Pi): \
         use max(GET /fee_stats last_ledger_base_fee, 100000)"
    )]
    FeeTooLow(i64),
    /// The total fee does not fit the transaction's 32-bit fee field.
    #[error(
        "fee of {fee_per_op} stroops per operation × {ops} operations exceeds the 32-bit fee field: lower the fee"
    )]
    FeeTooHigh {
        /// Requested fee per operation.
        fee_per_op: i64,
        /// Number of operations.
        ops: usize,
    },
    /// The sequence number cannot be a next sequence.
    #[error("sequence number {0} is invalid: use the source account's sequence from Horizon + 1")]
    BadSequence(i64),
    /// Nothing to do.
    #[error("the transaction has no operations: add a payment")]
    NoOperations,
    /// More operations than Stellar allows.
    #[error("the transaction has {0} operations; Stellar allows at most 100: split it")]
    TooManyOperations(usize),
    /// No expiry was set.
    #[error(
        "the transaction has no max time: set one (now + 30..180 s) so a lost submission can be \
         resubmitted until it expires and only then rebuilt"
    )]
    NoTimeBounds,
    /// min_time after max_time.
    #[error(
        "time bounds are inverted (min {min} > max {max}): set min time 0 and max time now + N s"
    )]
    BadTimeBounds {
        /// Requested min time.
        min: u64,
        /// Requested max time.
        max: u64,
    },
    /// A required signer's wallet was not passed to `sign`.
    #[error("the transaction needs a signature from {0}: pass that account's wallet to sign()")]
    MissingSigner(String),
    /// A wallet was passed that the transaction does not need.
    #[error(
        "wallet {0} is neither the transaction source nor an operation source: its signature \
         would make Horizon reject the transaction (tx_bad_auth_extra); do not pass it to sign()"
    )]
    ExtraSigner(String),
    /// The text is not a base64 XDR `TransactionEnvelope`.
    #[error(
        "the envelope is not base64 XDR of a Stellar TransactionEnvelope ({0}): pass the envelope_b64 stored with the payout"
    )]
    BadEnvelope(String),
    /// A fee-bump envelope, which pi-payments never builds.
    #[error(
        "fee-bump envelopes are not supported: pi-payments only builds and checks plain transactions"
    )]
    UnsupportedEnvelope,
    /// XDR encoding failed (cannot happen for transactions this module validated).
    #[error("encoding the transaction as XDR failed ({0}): this is a bug, report it")]
    Xdr(String),
}
