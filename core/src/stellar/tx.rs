//! Building and signing the one kind of transaction pi-payments sends: native payments (and
//! `create_account` to fund channel accounts), with a text memo and an expiry.

use super::error::StellarError;
use super::keys::{Network, Wallet, parse_account};
use crate::amount::PiAmount;
use std::collections::BTreeSet;
use std::time::{SystemTime, UNIX_EPOCH};
use stellar_xdr::{
    AccountId, Asset, CreateAccountOp, Limits, Memo, MuxedAccount, Operation, OperationBody,
    PaymentOp, Preconditions, PublicKey, SequenceNumber, StringM, TimeBounds, TimePoint,
    Transaction, TransactionEnvelope, TransactionExt, TransactionV1Envelope, Uint256, VecM,
    WriteXdr,
};

/// Pi's base fee per operation: 0.01 Pi. Horizon's `/fee_stats` may say more, never less.
pub const PI_BASE_FEE_STROOPS: i64 = 100_000;
/// A Stellar text memo holds at most 28 bytes (a Pi identifier is 28 alphanumerics).
pub const MEMO_TEXT_MAX_BYTES: usize = 28;
/// Stellar's limit of operations per transaction.
pub const MAX_OPS_PER_TX: usize = 100;

/// Seconds since the Unix epoch, for time bounds (0 if the clock is before 1970).
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// One operation of a [`PaymentTx`]. `source: None` means the transaction's source.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TxOp {
    /// A native (Pi) payment of an exact amount.
    Payment {
        /// The account paying, if not the transaction source (the app wallet behind a channel).
        source: Option<String>,
        /// The `G…` recipient.
        destination: String,
        /// Exact amount.
        amount: PiAmount,
    },
    /// Create and fund a new account (channel accounts). Pi's minimum balance is 1 Pi.
    CreateAccount {
        /// The funding account, if not the transaction source.
        source: Option<String>,
        /// The new account's `G…` address.
        destination: String,
        /// Its starting balance.
        starting_balance: PiAmount,
    },
}

/// A transaction being built. Each payout is one of these with one payment op; set the source
/// account (the app wallet, or a channel account with the op's source = the app wallet), the
/// sequence (account sequence + 1), the fee, the memo (the Pi payment identifier) and the expiry,
/// then [`PaymentTx::sign`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PaymentTx {
    source: String,
    sequence: i64,
    fee_per_op: i64,
    ops: Vec<TxOp>,
    memo: Option<String>,
    min_time: u64,
    max_time: u64,
}

/// A signed transaction, ready to submit and to store **before** submitting: resubmitting the same
/// `envelope_b64` is safe until `max_time`, building a new one is not.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SignedTx {
    /// The transaction hash (lowercase hex): the txid Pi's `/complete` expects.
    pub hash_hex: String,
    /// The base64 XDR `TransactionEnvelope`, form field `tx` of Horizon's `POST /transactions`.
    pub envelope_b64: String,
    /// Unix time after which the transaction can no longer land (`tx_too_late`).
    pub max_time: u64,
    /// The sequence number it consumes on `source`.
    pub sequence: i64,
    /// The transaction source account (`G…`; the channel account when one is used).
    pub source: String,
}

impl PaymentTx {
    /// Start a transaction from `source_account` (`G…`) with `sequence` = its current sequence
    /// + 1. The fee starts at [`PI_BASE_FEE_STROOPS`]; no memo, no operations, no expiry yet.
    pub fn new(source_account: impl Into<String>, sequence: i64) -> PaymentTx {
        PaymentTx {
            source: source_account.into(),
            sequence,
            fee_per_op: PI_BASE_FEE_STROOPS,
            ops: Vec::new(),
            memo: None,
            min_time: 0,
            max_time: 0,
        }
    }

    /// Fee per operation in stroops (use `max(base_fee, PI_BASE_FEE_STROOPS)`).
    pub fn fee_per_op(mut self, stroops: i64) -> PaymentTx {
        self.fee_per_op = stroops;
        self
    }

    /// Add a native payment from the transaction source.
    pub fn payment(self, destination: impl Into<String>, amount: PiAmount) -> PaymentTx {
        self.push(TxOp::Payment {
            source: None,
            destination: destination.into(),
            amount,
        })
    }

    /// Add a native payment whose source is `from` (the app wallet when the transaction source
    /// is a channel account; both must then sign).
    pub fn payment_from(
        self,
        from: impl Into<String>,
        destination: impl Into<String>,
        amount: PiAmount,
    ) -> PaymentTx {
        self.push(TxOp::Payment {
            source: Some(from.into()),
            destination: destination.into(),
            amount,
        })
    }

    /// Add a `create_account` funded by the transaction source (to create channel accounts).
    pub fn create_account(
        self,
        destination: impl Into<String>,
        starting_balance: PiAmount,
    ) -> PaymentTx {
        self.push(TxOp::CreateAccount {
            source: None,
            destination: destination.into(),
            starting_balance,
        })
    }

    /// Add any operation.
    pub fn push(mut self, op: TxOp) -> PaymentTx {
        self.ops.push(op);
        self
    }

    /// Memo text: the Pi payment identifier (at most 28 bytes, checked when signing).
    pub fn memo_text(mut self, memo: impl Into<String>) -> PaymentTx {
        self.memo = Some(memo.into());
        self
    }

    /// The transaction cannot land after this Unix time.
    pub fn max_time(mut self, unix_secs: u64) -> PaymentTx {
        self.max_time = unix_secs;
        self
    }

    /// The transaction cannot land after now + `secs` (Pi: 30..180 s).
    pub fn expires_in(self, secs: u64) -> PaymentTx {
        self.max_time(unix_now().saturating_add(secs))
    }

    /// The transaction cannot land before this Unix time (default 0: no lower bound).
    pub fn min_time(mut self, unix_secs: u64) -> PaymentTx {
        self.min_time = unix_secs;
        self
    }

    /// The operations added so far.
    pub fn operations(&self) -> &[TxOp] {
        &self.ops
    }

    /// The accounts whose signatures the transaction needs: its source, then every distinct
    /// operation source.
    pub fn required_signers(&self) -> Vec<String> {
        let mut out = vec![self.source.clone()];
        for op in &self.ops {
            let (TxOp::Payment { source, .. } | TxOp::CreateAccount { source, .. }) = op;
            if let Some(s) = source
                && !out.contains(s)
            {
                out.push(s.clone());
            }
        }
        out
    }

    /// Validate and turn into the XDR transaction.
    pub fn to_transaction(&self) -> Result<Transaction, StellarError> {
        let source = parse_account("source account", &self.source)?;
        if self.sequence <= 0 {
            return Err(StellarError::BadSequence(self.sequence));
        }
        if self.fee_per_op < PI_BASE_FEE_STROOPS {
            return Err(StellarError::FeeTooLow(self.fee_per_op));
        }
        if self.ops.is_empty() {
            return Err(StellarError::NoOperations);
        }
        if self.ops.len() > MAX_OPS_PER_TX {
            return Err(StellarError::TooManyOperations(self.ops.len()));
        }
        let fee = i64::try_from(self.ops.len())
            .ok()
            .and_then(|n| self.fee_per_op.checked_mul(n))
            .and_then(|f| u32::try_from(f).ok())
            .ok_or(StellarError::FeeTooHigh {
                fee_per_op: self.fee_per_op,
                ops: self.ops.len(),
            })?;
        if self.max_time == 0 {
            return Err(StellarError::NoTimeBounds);
        }
        if self.min_time > self.max_time {
            return Err(StellarError::BadTimeBounds {
                min: self.min_time,
                max: self.max_time,
            });
        }
        let memo = match &self.memo {
            None => Memo::None,
            Some(text) => {
                let too_long = || StellarError::MemoTooLong {
                    memo: text.clone(),
                    len: text.len(),
                };
                if text.len() > MEMO_TEXT_MAX_BYTES {
                    return Err(too_long());
                }
                Memo::Text(StringM::<28>::try_from(text.as_str()).map_err(|_| too_long())?)
            }
        };
        let operations = self
            .ops
            .iter()
            .map(to_xdr_op)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Transaction {
            source_account: MuxedAccount::Ed25519(Uint256(source)),
            fee,
            seq_num: SequenceNumber(self.sequence),
            cond: Preconditions::Time(TimeBounds {
                min_time: TimePoint(self.min_time),
                max_time: TimePoint(self.max_time),
            }),
            memo,
            operations: VecM::try_from(operations)
                .map_err(|_| StellarError::TooManyOperations(self.ops.len()))?,
            ext: TransactionExt::V0,
        })
    }

    /// Sign with exactly the wallets the transaction needs (source and op sources) under
    /// `network`. hash = sha256(XDR of TransactionSignaturePayload{network id, Tx(tx)}); each
    /// signature is ed25519 over that hash with the key's last 4 bytes as hint.
    pub fn sign(&self, signers: &[&Wallet], network: &Network) -> Result<SignedTx, StellarError> {
        let tx = self.to_transaction()?;
        let required = self.required_signers();
        let mut seen = BTreeSet::new();
        let mut wallets = Vec::new();
        for w in signers {
            let key = w.public_key();
            if !required.contains(&key) {
                return Err(StellarError::ExtraSigner(key));
            }
            if seen.insert(key) {
                wallets.push(*w);
            }
        }
        if let Some(missing) = required.iter().find(|k| !seen.contains(*k)) {
            return Err(StellarError::MissingSigner(missing.clone()));
        }
        let hash = tx
            .hash(network.id())
            .map_err(|e| StellarError::Xdr(e.to_string()))?;
        let signatures = wallets
            .iter()
            .map(|w| w.sign_hash(&hash))
            .collect::<Result<Vec<_>, _>>()?;
        let envelope = TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: VecM::try_from(signatures).map_err(|e| StellarError::Xdr(e.to_string()))?,
        });
        let envelope_b64 = envelope
            .to_xdr_base64(Limits::none())
            .map_err(|e| StellarError::Xdr(e.to_string()))?;
        Ok(SignedTx {
            hash_hex: hex::encode(hash),
            envelope_b64,
            max_time: self.max_time,
            sequence: self.sequence,
            source: self.source.clone(),
        })
    }
}

fn to_xdr_op(op: &TxOp) -> Result<Operation, StellarError> {
    let muxed = |what, s: &str| parse_account(what, s).map(|k| MuxedAccount::Ed25519(Uint256(k)));
    Ok(match op {
        TxOp::Payment {
            source,
            destination,
            amount,
        } => Operation {
            source_account: source
                .as_deref()
                .map(|s| muxed("payment source", s))
                .transpose()?,
            body: OperationBody::Payment(PaymentOp {
                destination: muxed("destination", destination)?,
                asset: Asset::Native,
                amount: amount.stroops(),
            }),
        },
        TxOp::CreateAccount {
            source,
            destination,
            starting_balance,
        } => Operation {
            source_account: source
                .as_deref()
                .map(|s| muxed("create_account source", s))
                .transpose()?,
            body: OperationBody::CreateAccount(CreateAccountOp {
                destination: AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(parse_account(
                    "new account",
                    destination,
                )?))),
                starting_balance: starting_balance.stroops(),
            }),
        },
    })
}

#[cfg(test)]
mod tests {
    use crate::stellar::decode::{DecodedMemo, DecodedOpBody, decode_envelope};
    use crate::stellar::tx::*;

    const APP_SEED: &str = "SAAACAQDAQCQMBYIBEFAWDANBYHRAEISCMKBKFQXDAMRUGY4DUPB6NKI";
    const CHANNEL_SEED: &str = "SAQCCIRDEQSSMJZIFEVCWLBNFYXTAMJSGM2DKNRXHA4TUOZ4HU7D7VI7";
    const PIONEER: &str = "GASUHOJP6EEVKEKHNLOIG2O3NXOJGNTFUEMXRXNBIBHOCBTMVFKZ2TC5";
    const MEMO: &str = "abcdefghijklmnopqrstuvwxyz12";

    fn amount(s: &str) -> PiAmount {
        PiAmount::parse(s).unwrap()
    }

    /// The same 2.5 Pi payment from `app` every time (sequence, fee, memo and max time fixed).
    fn sign_fixed_payment(app: &Wallet, net: &Network) -> SignedTx {
        PaymentTx::new(app.public_key(), 4242)
            .fee_per_op(150_000)
            .payment(PIONEER, amount("2.5"))
            .memo_text(MEMO)
            .max_time(1_900_000_000)
            .sign(&[app], net)
            .unwrap()
    }

    #[test]
    fn sign_then_decode_round_trip() {
        let app = Wallet::from_seed(APP_SEED).unwrap();
        let net = Network::pi_testnet();
        let signed = sign_fixed_payment(&app, &net);
        assert_eq!(signed.hash_hex.len(), 64);
        assert_eq!(signed.sequence, 4242);
        assert_eq!(signed.source, app.public_key());
        assert_eq!(signed.max_time, 1_900_000_000);

        let d = decode_envelope(&signed.envelope_b64).unwrap();
        assert_eq!(d.hash_hex(&net).unwrap(), signed.hash_hex);
        assert_ne!(d.hash_hex(&Network::pi_mainnet()).unwrap(), signed.hash_hex);
        assert_eq!(d.source, app.public_key());
        assert_eq!(d.sequence, 4242);
        assert_eq!(d.fee, 150_000);
        assert_eq!(d.min_time, Some(0));
        assert_eq!(d.max_time, Some(1_900_000_000));
        assert_eq!(d.memo, DecodedMemo::Text(MEMO.to_string()));
        assert_eq!(d.memo_text(), Some(MEMO));
        assert_eq!(d.operations.len(), 1);
        assert_eq!(d.operations[0].source, None);
        assert_eq!(
            d.operations[0].body,
            DecodedOpBody::Payment {
                destination: PIONEER.to_string(),
                native: true,
                amount_stroops: 25_000_000,
            }
        );
        assert_eq!(d.signatures.len(), 1);
        assert_eq!(d.valid_signers(&net), vec![app.public_key()]);
        assert!(d.valid_signers(&Network::pi_mainnet()).is_empty());
        assert!(d.fully_signed(&net));
        // Deterministic: ed25519 signatures and XDR are both deterministic.
        let again = sign_fixed_payment(&app, &net);
        assert_eq!(again, signed);
    }

    #[test]
    fn channel_account_pays_the_fee_and_both_sign() {
        let app = Wallet::from_seed(APP_SEED).unwrap();
        let channel = Wallet::from_seed(CHANNEL_SEED).unwrap();
        let net = Network::pi_testnet();
        let tx = PaymentTx::new(channel.public_key(), 7)
            .payment_from(app.public_key(), PIONEER, amount("0.0000001"))
            .memo_text(MEMO)
            .expires_in(60);
        assert_eq!(
            tx.required_signers(),
            vec![channel.public_key(), app.public_key()]
        );
        assert_eq!(
            tx.sign(&[&channel], &net).unwrap_err(),
            StellarError::MissingSigner(app.public_key())
        );
        assert_eq!(
            tx.sign(&[&app], &net).unwrap_err(),
            StellarError::MissingSigner(channel.public_key())
        );
        let signed = tx.sign(&[&app, &channel], &net).unwrap();
        assert_eq!(signed.source, channel.public_key());
        let d = decode_envelope(&signed.envelope_b64).unwrap();
        assert_eq!(d.source, channel.public_key());
        assert_eq!(d.operations[0].source, Some(app.public_key()));
        let mut signers = d.valid_signers(&net);
        signers.sort();
        let mut expected = vec![app.public_key(), channel.public_key()];
        expected.sort();
        assert_eq!(signers, expected);
        assert!(d.fully_signed(&net));
        assert!(signed.max_time >= unix_now() + 59);
    }

    #[test]
    fn create_account_op() {
        let app = Wallet::from_seed(APP_SEED).unwrap();
        let new = Wallet::generate();
        let signed = PaymentTx::new(app.public_key(), 1)
            .create_account(new.public_key(), amount("2"))
            .expires_in(60)
            .sign(&[&app], &Network::pi_testnet())
            .unwrap();
        let d = decode_envelope(&signed.envelope_b64).unwrap();
        assert_eq!(d.memo, DecodedMemo::None);
        assert_eq!(
            d.operations[0].body,
            DecodedOpBody::CreateAccount {
                destination: new.public_key(),
                starting_balance_stroops: 20_000_000,
            }
        );
    }

    #[test]
    fn refuses_what_would_not_land() {
        let app = Wallet::from_seed(APP_SEED).unwrap();
        let net = Network::pi_testnet();
        let base = || {
            PaymentTx::new(app.public_key(), 5)
                .payment(PIONEER, amount("1"))
                .memo_text(MEMO)
                .expires_in(60)
        };
        assert!(base().sign(&[&app], &net).is_ok());
        let long = "x".repeat(29);
        assert_eq!(
            base().memo_text(&long).sign(&[&app], &net).unwrap_err(),
            StellarError::MemoTooLong {
                memo: long,
                len: 29
            }
        );
        // 28 bytes counted as bytes, not characters.
        assert!(matches!(
            base().memo_text("é".repeat(15)).sign(&[&app], &net),
            Err(StellarError::MemoTooLong { len: 30, .. })
        ));
        assert_eq!(
            base().fee_per_op(100).sign(&[&app], &net).unwrap_err(),
            StellarError::FeeTooLow(100)
        );
        assert!(matches!(
            base()
                .fee_per_op(i64::from(u32::MAX))
                .payment(PIONEER, amount("1"))
                .sign(&[&app], &net),
            Err(StellarError::FeeTooHigh { ops: 2, .. })
        ));
        assert_eq!(
            base().max_time(0).sign(&[&app], &net).unwrap_err(),
            StellarError::NoTimeBounds
        );
        assert!(matches!(
            base().min_time(u64::MAX).sign(&[&app], &net),
            Err(StellarError::BadTimeBounds { .. })
        ));
        assert!(matches!(
            base()
                .payment("GNOTANADDRESS", amount("1"))
                .sign(&[&app], &net),
            Err(StellarError::BadAddress {
                what: "destination",
                ..
            })
        ));
        assert_eq!(
            PaymentTx::new(app.public_key(), 0)
                .payment(PIONEER, amount("1"))
                .expires_in(60)
                .sign(&[&app], &net)
                .unwrap_err(),
            StellarError::BadSequence(0)
        );
        assert_eq!(
            PaymentTx::new(app.public_key(), 5)
                .expires_in(60)
                .sign(&[&app], &net)
                .unwrap_err(),
            StellarError::NoOperations
        );
        let stranger = Wallet::generate();
        assert_eq!(
            base().sign(&[&app, &stranger], &net).unwrap_err(),
            StellarError::ExtraSigner(stranger.public_key())
        );
        // Passing the same wallet twice signs once.
        let signed = base().sign(&[&app, &app], &net).unwrap();
        assert_eq!(
            decode_envelope(&signed.envelope_b64)
                .unwrap()
                .signatures
                .len(),
            1
        );
    }
}
