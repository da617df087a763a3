//! Decoding envelopes, so we can check what we stored (or what someone else built) before
//! trusting it: its hash under a network, memo, operations, and which signatures are valid.

use super::error::StellarError;
use super::keys::{Network, encode_account, verify_hash};
use stellar_xdr::{
    Asset, Limits, Memo, MuxedAccount, OperationBody, Preconditions, PublicKey, ReadXdr,
    Transaction, TransactionEnvelope,
};

/// Envelopes larger than this are refused before decoding (a payout envelope is ~300 bytes).
const MAX_ENVELOPE_B64_LEN: usize = 64 * 1024;

/// A decoded transaction envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedTx {
    /// Transaction source (`G…`, or `M…` for a muxed account).
    pub source: String,
    /// Sequence number it consumes.
    pub sequence: i64,
    /// Total fee offered, in stroops.
    pub fee: u32,
    /// The memo.
    pub memo: DecodedMemo,
    /// Lower time bound, if the transaction has time bounds.
    pub min_time: Option<u64>,
    /// Upper time bound (0 = none), if the transaction has time bounds.
    pub max_time: Option<u64>,
    /// Its operations, in order.
    pub operations: Vec<DecodedOp>,
    /// Its signatures, as found.
    pub signatures: Vec<DecodedSignature>,
    tx: Transaction,
}

/// A transaction memo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodedMemo {
    /// No memo.
    None,
    /// Text memo (lossy UTF-8 if the bytes are not UTF-8).
    Text(String),
    /// Numeric id memo.
    Id(u64),
    /// Hash memo (hex).
    Hash(String),
    /// Return-hash memo (hex).
    Return(String),
}

/// One operation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedOp {
    /// Operation source, when it differs from the transaction's.
    pub source: Option<String>,
    /// What it does.
    pub body: DecodedOpBody,
}

/// The operation kinds pi-payments cares about; anything else is named only.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DecodedOpBody {
    /// A payment.
    Payment {
        /// Recipient (`G…`/`M…`).
        destination: String,
        /// Whether the asset is native Pi.
        native: bool,
        /// Amount in stroops.
        amount_stroops: i64,
    },
    /// An account creation.
    CreateAccount {
        /// The new account.
        destination: String,
        /// Its starting balance in stroops.
        starting_balance_stroops: i64,
    },
    /// Another operation type, by its XDR name.
    Other(String),
}

/// One signature of the envelope.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedSignature {
    /// The hint: last 4 bytes of the signer's public key.
    pub hint: [u8; 4],
    /// The 64-byte ed25519 signature.
    pub signature: Vec<u8>,
}

/// Decode a base64 XDR `TransactionEnvelope` (plain v1 or legacy v0; fee-bumps are refused).
pub fn decode_envelope(envelope_b64: &str) -> Result<DecodedTx, StellarError> {
    let text = envelope_b64.trim();
    if text.len() > MAX_ENVELOPE_B64_LEN {
        return Err(StellarError::BadEnvelope(format!(
            "{} characters is too long for a transaction",
            text.len()
        )));
    }
    let limits = Limits {
        depth: 500,
        len: text.len(),
    };
    let envelope = TransactionEnvelope::from_xdr_base64(text, limits)
        .map_err(|e| StellarError::BadEnvelope(e.to_string()))?;
    let (tx, signatures): (Transaction, _) = match envelope {
        TransactionEnvelope::Tx(e) => (e.tx, e.signatures),
        TransactionEnvelope::TxV0(e) => ((&e.tx).into(), e.signatures),
        TransactionEnvelope::TxFeeBump(_) => return Err(StellarError::UnsupportedEnvelope),
    };
    let (min_time, max_time) = match &tx.cond {
        Preconditions::None => (None, None),
        Preconditions::Time(tb) => (Some(tb.min_time.0), Some(tb.max_time.0)),
        Preconditions::V2(p) => (
            p.time_bounds.as_ref().map(|tb| tb.min_time.0),
            p.time_bounds.as_ref().map(|tb| tb.max_time.0),
        ),
    };
    let memo = match &tx.memo {
        Memo::None => DecodedMemo::None,
        Memo::Text(t) => DecodedMemo::Text(t.to_utf8_string_lossy()),
        Memo::Id(id) => DecodedMemo::Id(*id),
        Memo::Hash(h) => DecodedMemo::Hash(hex::encode(h.0)),
        Memo::Return(h) => DecodedMemo::Return(hex::encode(h.0)),
    };
    let operations = tx
        .operations
        .iter()
        .map(|op| DecodedOp {
            source: op.source_account.as_ref().map(muxed_to_string),
            body: match &op.body {
                OperationBody::Payment(p) => DecodedOpBody::Payment {
                    destination: muxed_to_string(&p.destination),
                    native: matches!(p.asset, Asset::Native),
                    amount_stroops: p.amount,
                },
                OperationBody::CreateAccount(c) => {
                    let PublicKey::PublicKeyTypeEd25519(key) = &c.destination.0;
                    DecodedOpBody::CreateAccount {
                        destination: encode_account(&key.0),
                        starting_balance_stroops: c.starting_balance,
                    }
                }
                other => DecodedOpBody::Other(other.name().to_string()),
            },
        })
        .collect();
    let signatures = signatures
        .iter()
        .map(|s| DecodedSignature {
            hint: s.hint.0,
            signature: s.signature.0.to_vec(),
        })
        .collect();
    Ok(DecodedTx {
        source: muxed_to_string(&tx.source_account),
        sequence: tx.seq_num.0,
        fee: tx.fee,
        memo,
        min_time,
        max_time,
        operations,
        signatures,
        tx,
    })
}

impl DecodedTx {
    /// The transaction hash (lowercase hex) under `network`: the txid Horizon and Pi use.
    pub fn hash_hex(&self, network: &Network) -> Result<String, StellarError> {
        self.tx
            .hash(network.id())
            .map(hex::encode)
            .map_err(|e| StellarError::Xdr(e.to_string()))
    }

    /// The text memo, if the memo is text.
    pub fn memo_text(&self) -> Option<&str> {
        match &self.memo {
            DecodedMemo::Text(t) => Some(t),
            _ => None,
        }
    }

    /// The accounts whose signatures the transaction needs (source, then distinct op sources),
    /// as ed25519 `G…` addresses.
    pub fn required_signers(&self) -> Vec<String> {
        let mut out = vec![muxed_to_account(&self.tx.source_account)];
        for op in self.tx.operations.iter() {
            if let Some(src) = &op.source_account {
                let key = muxed_to_account(src);
                if !out.contains(&key) {
                    out.push(key);
                }
            }
        }
        out
    }

    /// The required signers (see [`DecodedTx::required_signers`]) that have a valid signature
    /// over this transaction's hash under `network`.
    pub fn valid_signers(&self, network: &Network) -> Vec<String> {
        let Ok(hash) = self.tx.hash(network.id()) else {
            return Vec::new();
        };
        self.required_signers()
            .into_iter()
            .filter(|account| self.has_valid_signature(account, &hash))
            .collect()
    }

    /// Whether `account` (`G…`) signed this transaction under `network`.
    pub fn signed_by(&self, account: &str, network: &Network) -> bool {
        match self.tx.hash(network.id()) {
            Ok(hash) => self.has_valid_signature(account, &hash),
            Err(_) => false,
        }
    }

    /// Whether every required signer signed validly under `network` (and nothing else signed).
    pub fn fully_signed(&self, network: &Network) -> bool {
        let required = self.required_signers();
        self.valid_signers(network).len() == required.len()
            && self.signatures.len() == required.len()
    }

    fn has_valid_signature(&self, account: &str, hash: &[u8; 32]) -> bool {
        let Ok(key) = stellar_strkey::ed25519::PublicKey::from_string(account) else {
            return false;
        };
        self.signatures
            .iter()
            .filter(|s| s.hint[..] == key.0[28..])
            .any(|s| verify_hash(&key.0, hash, &s.signature))
    }
}

fn muxed_to_string(m: &MuxedAccount) -> String {
    match m {
        MuxedAccount::Ed25519(k) => encode_account(&k.0),
        MuxedAccount::MuxedEd25519(mx) => stellar_strkey::ed25519::MuxedAccount {
            ed25519: mx.ed25519.0,
            id: mx.id,
        }
        .to_string()
        .as_str()
        .to_string(),
    }
}

/// The underlying `G…` account of a (possibly muxed) account: the key that must sign.
fn muxed_to_account(m: &MuxedAccount) -> String {
    match m {
        MuxedAccount::Ed25519(k) => encode_account(&k.0),
        MuxedAccount::MuxedEd25519(mx) => encode_account(&mx.ed25519.0),
    }
}

#[cfg(test)]
mod tests {
    use crate::stellar::decode::*;

    #[test]
    fn rejects_garbage() {
        for bad in ["", "not base64!", "AAAA", &"A".repeat(100_000)] {
            assert!(matches!(
                decode_envelope(bad),
                Err(StellarError::BadEnvelope(_))
            ));
        }
    }
}
