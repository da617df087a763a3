//! Stellar transactions for A2U payouts on the Pi blockchain (a Stellar network).
//!
//! Pi pays a Pioneer with one Stellar transaction per payout: one native `payment` operation of the
//! exact amount, memo text = the Pi payment identifier, signed by the app wallet under the
//! network id `sha256(passphrase)`. This module owns every byte of that: keys ([`Wallet`],
//! [`Network`]), building and signing ([`PaymentTx`] → [`SignedTx`]), decoding envelopes for our
//! own checks ([`decode_envelope`]) and reading Horizon's failure codes ([`TxFailure`]).
//! Encoding is done by the maintained `stellar-xdr`, `stellar-strkey` and `ed25519-dalek` crates;
//! nothing here hand-writes XDR.

mod decode;
mod error;
mod failure;
mod keys;
mod tx;

pub use decode::{
    DecodedMemo, DecodedOp, DecodedOpBody, DecodedSignature, DecodedTx, decode_envelope,
};
pub use error::StellarError;
pub use failure::TxFailure;
pub use keys::{Network, PI_MAINNET_PASSPHRASE, PI_TESTNET_PASSPHRASE, Wallet};
pub use tx::{
    MAX_OPS_PER_TX, MEMO_TEXT_MAX_BYTES, PI_BASE_FEE_STROOPS, PaymentTx, SignedTx, TxOp, unix_now,
};
