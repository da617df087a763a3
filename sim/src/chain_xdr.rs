//! XDR plumbing for the simulated chain: decoding envelopes into one normalized shape, the
//! transaction hash, result XDR, Horizon's result-code names and building signed payments.
//! Kept apart from the chain (`chain/ledger.rs`) so the ledger rules there read without XDR
//! noise.

use sha2::{Digest, Sha256};
use stellar_xdr::{
    Asset, CreateAccountResult, DecoratedSignature, Hash, Limits, Memo, MuxedAccount, Operation,
    OperationBody, OperationResult, OperationResultTr, PaymentOp, PaymentResult, Preconditions,
    ReadXdr, SequenceNumber, Signature, SignatureHint, StringM, TimeBounds, TimePoint, Transaction,
    TransactionEnvelope, TransactionExt, TransactionResult, TransactionResultExt,
    TransactionResultResult, TransactionSignaturePayload,
    TransactionSignaturePayloadTaggedTransaction, TransactionV1Envelope, Uint256, VecM, WriteXdr,
};

use crate::keys::Keypair;

/// A submitted envelope in the one shape the ledger rules need (V0 is converted to V1; the
/// hash is unchanged by that, as stellar-core defines it).
pub(crate) struct Decoded {
    /// The envelope re-encoded canonically (what Horizon shows as `envelope_xdr`).
    pub envelope_b64: String,
    pub hash: [u8; 32],
    pub tx: Transaction,
    pub signatures: Vec<DecoratedSignature>,
}

/// Why an envelope could not be taken at all.
pub(crate) enum DecodeError {
    /// Not a `TransactionEnvelope` (Horizon's `transaction_malformed`).
    Malformed(String),
    /// A fee-bump envelope: valid XDR the simulator does not support (`tx_not_supported`).
    FeeBump {
        hash: [u8; 32],
        envelope_b64: String,
    },
}

/// Decodes a base64 `TransactionEnvelope` and computes its hash for `network_id`.
pub(crate) fn decode(envelope_b64: &str, network_id: [u8; 32]) -> Result<Decoded, DecodeError> {
    let envelope = TransactionEnvelope::from_xdr_base64(envelope_b64.trim(), Limits::none())
        .map_err(|e| DecodeError::Malformed(format!("not a base64 TransactionEnvelope: {e}")))?;
    let canonical = envelope
        .to_xdr_base64(Limits::none())
        .map_err(|e| DecodeError::Malformed(format!("cannot re-encode the envelope: {e}")))?;
    let (tx, signatures) = match envelope {
        TransactionEnvelope::Tx(e) => (e.tx, e.signatures.to_vec()),
        TransactionEnvelope::TxV0(e) => (Transaction::from(e.tx), e.signatures.to_vec()),
        TransactionEnvelope::TxFeeBump(e) => {
            let hash = TransactionEnvelope::TxFeeBump(e)
                .hash(network_id)
                .map_err(|err| DecodeError::Malformed(format!("cannot hash: {err}")))?;
            return Err(DecodeError::FeeBump {
                hash,
                envelope_b64: canonical,
            });
        }
    };
    let hash = tx_hash(&tx, network_id)
        .map_err(|e| DecodeError::Malformed(format!("cannot hash the transaction: {e}")))?;
    Ok(Decoded {
        envelope_b64: canonical,
        hash,
        tx,
        signatures,
    })
}

/// sha256(network_id ‖ ENVELOPE_TYPE_TX ‖ tx), via the XDR `TransactionSignaturePayload`.
pub(crate) fn tx_hash(
    tx: &Transaction,
    network_id: [u8; 32],
) -> Result<[u8; 32], stellar_xdr::Error> {
    let payload = TransactionSignaturePayload {
        network_id: Hash(network_id),
        tagged_transaction: TransactionSignaturePayloadTaggedTransaction::Tx(tx.clone()),
    };
    let bytes = payload.to_xdr(Limits::none())?;
    Ok(Sha256::digest(bytes).into())
}

/// The raw ed25519 key behind a (possibly muxed) account.
pub(crate) fn muxed_key(account: &MuxedAccount) -> [u8; 32] {
    match account {
        MuxedAccount::Ed25519(Uint256(k)) => *k,
        MuxedAccount::MuxedEd25519(m) => m.ed25519.0,
    }
}

/// The time bounds of a transaction, whichever precondition form carries them.
pub(crate) fn time_bounds(cond: &Preconditions) -> Option<&TimeBounds> {
    match cond {
        Preconditions::None => None,
        Preconditions::Time(tb) => Some(tb),
        Preconditions::V2(v2) => v2.time_bounds.as_ref(),
    }
}

/// `(memo_type, memo)` as Horizon shows them.
pub(crate) fn memo_fields(memo: &Memo) -> (String, Option<String>) {
    use base64::Engine as _;
    let b64 = |b: &[u8; 32]| base64::engine::general_purpose::STANDARD.encode(b);
    match memo {
        Memo::None => ("none".into(), None),
        Memo::Text(t) => (
            "text".into(),
            Some(String::from_utf8_lossy(t.as_slice()).into_owned()),
        ),
        Memo::Id(id) => ("id".into(), Some(id.to_string())),
        Memo::Hash(h) => ("hash".into(), Some(b64(&h.0))),
        Memo::Return(h) => ("return".into(), Some(b64(&h.0))),
    }
}

/// A `TransactionResult` as base64 XDR.
pub(crate) fn result_xdr(fee_charged: i64, result: TransactionResultResult) -> String {
    TransactionResult {
        fee_charged,
        result,
        ext: TransactionResultExt::V0,
    }
    .to_xdr_base64(Limits::none())
    // Encoding a result we built cannot fail; an empty string is still a visible answer.
    .unwrap_or_default()
}

/// Horizon's name for a transaction result code.
pub(crate) fn tx_code_name(result: &TransactionResultResult) -> &'static str {
    use TransactionResultResult as R;
    match result {
        R::TxFeeBumpInnerSuccess(_) => "tx_fee_bump_inner_success",
        R::TxFeeBumpInnerFailed(_) => "tx_fee_bump_inner_failed",
        R::TxSuccess(_) => "tx_success",
        R::TxFailed(_) => "tx_failed",
        R::TxTooEarly => "tx_too_early",
        R::TxTooLate => "tx_too_late",
        R::TxMissingOperation => "tx_missing_operation",
        R::TxBadSeq => "tx_bad_seq",
        R::TxBadAuth => "tx_bad_auth",
        R::TxInsufficientBalance => "tx_insufficient_balance",
        R::TxNoAccount => "tx_no_source_account",
        R::TxInsufficientFee => "tx_insufficient_fee",
        R::TxBadAuthExtra => "tx_bad_auth_extra",
        R::TxInternalError => "tx_internal_error",
        R::TxNotSupported => "tx_not_supported",
        R::TxBadSponsorship => "tx_bad_sponsorship",
        R::TxBadMinSeqAgeOrGap => "tx_bad_minseq_age_or_gap",
        R::TxMalformed => "tx_malformed",
        R::TxSorobanInvalid => "tx_soroban_invalid",
        R::TxFrozenKeyAccessed => "tx_frozen_key_accessed",
    }
}

/// Horizon's name for an operation result code (only the ops the simulator runs are named
/// precisely; anything else is `op_not_supported`).
pub(crate) fn op_code_name(result: &OperationResult) -> &'static str {
    match result {
        OperationResult::OpBadAuth => "op_bad_auth",
        OperationResult::OpNoAccount => "op_no_source_account",
        OperationResult::OpNotSupported => "op_not_supported",
        OperationResult::OpTooManySubentries => "op_too_many_subentries",
        OperationResult::OpExceededWorkLimit => "op_exceeded_work_limit",
        OperationResult::OpTooManySponsoring => "op_too_many_sponsoring",
        OperationResult::OpInner(OperationResultTr::Payment(p)) => match p {
            PaymentResult::Success => "op_success",
            PaymentResult::Malformed => "op_malformed",
            PaymentResult::Underfunded => "op_underfunded",
            PaymentResult::SrcNoTrust => "op_src_no_trust",
            PaymentResult::SrcNotAuthorized => "op_src_not_authorized",
            PaymentResult::NoDestination => "op_no_destination",
            PaymentResult::NoTrust => "op_no_trust",
            PaymentResult::NotAuthorized => "op_not_authorized",
            PaymentResult::LineFull => "op_line_full",
            PaymentResult::NoIssuer => "op_no_issuer",
        },
        OperationResult::OpInner(OperationResultTr::CreateAccount(c)) => match c {
            CreateAccountResult::Success => "op_success",
            CreateAccountResult::Malformed => "op_malformed",
            CreateAccountResult::Underfunded => "op_underfunded",
            CreateAccountResult::LowReserve => "op_low_reserve",
            CreateAccountResult::AlreadyExist => "op_already_exists",
        },
        OperationResult::OpInner(_) => "op_not_supported",
    }
}

/// Why a payment envelope could not be built.
#[derive(Debug, thiserror::Error)]
pub enum BuildError {
    #[error("destination {0:?} is not a G… account id; pass the Pioneer's or app's public key")]
    BadDestination(String),
    #[error("memo text is {0} bytes; Stellar allows at most 28, shorten it")]
    MemoTooLong(usize),
    #[error("amount must be positive stroops, got {0}")]
    BadAmount(i64),
    #[error("XDR encoding failed: {0}")]
    Xdr(String),
}

/// Builds and signs a one-op native payment envelope (source = `from`, fee = base fee, text
/// memo, time bounds `0..max_time`). Returns `(hash_hex, envelope_base64)`. This is the path
/// a Pioneer's wallet takes in the simulator, exposed so a second Stellar implementation can
/// check it.
pub fn build_payment_envelope(
    passphrase: &str,
    from: &Keypair,
    to: &str,
    amount: i64,
    memo: &str,
    sequence: i64,
    max_time: u64,
) -> Result<(String, String), BuildError> {
    let destination =
        crate::keys::decode_account_id(to).ok_or_else(|| BuildError::BadDestination(to.into()))?;
    if amount <= 0 {
        return Err(BuildError::BadAmount(amount));
    }
    let memo = if memo.is_empty() {
        Memo::None
    } else {
        let text: StringM<28> = memo
            .as_bytes()
            .to_vec()
            .try_into()
            .map_err(|_| BuildError::MemoTooLong(memo.len()))?;
        Memo::Text(text)
    };
    let op = Operation {
        source_account: None,
        body: OperationBody::Payment(PaymentOp {
            destination: MuxedAccount::Ed25519(Uint256(destination)),
            asset: Asset::Native,
            amount,
        }),
    };
    let operations: VecM<Operation, 100> = vec![op]
        .try_into()
        .map_err(|e: stellar_xdr::Error| BuildError::Xdr(e.to_string()))?;
    let tx = Transaction {
        source_account: MuxedAccount::Ed25519(Uint256(from.public_key_bytes())),
        fee: crate::chain::records::BASE_FEE as u32,
        seq_num: SequenceNumber(sequence),
        cond: Preconditions::Time(TimeBounds {
            min_time: TimePoint(0),
            max_time: TimePoint(max_time),
        }),
        memo,
        operations,
        ext: TransactionExt::V0,
    };
    let network_id: [u8; 32] = Sha256::digest(passphrase.as_bytes()).into();
    let hash = tx_hash(&tx, network_id).map_err(|e| BuildError::Xdr(e.to_string()))?;
    let signature = DecoratedSignature {
        hint: SignatureHint(from.signature_hint()),
        signature: Signature(
            from.sign(&hash)
                .to_vec()
                .try_into()
                .map_err(|e: stellar_xdr::Error| BuildError::Xdr(e.to_string()))?,
        ),
    };
    let envelope = TransactionEnvelope::Tx(TransactionV1Envelope {
        tx,
        signatures: vec![signature]
            .try_into()
            .map_err(|e: stellar_xdr::Error| BuildError::Xdr(e.to_string()))?,
    });
    let b64 = envelope
        .to_xdr_base64(Limits::none())
        .map_err(|e| BuildError::Xdr(e.to_string()))?;
    Ok((hex::encode(hash), b64))
}
