//! Shared helpers for the chain/Horizon tests: chains, funded keys, hand-built envelopes
//! (so tests can make every kind of bad transaction) and an in-process Horizon.

use std::time::Duration;

use pi_sim::chain::{Chain, ChainConfig, Stroops};
use pi_sim::keys::Keypair;
use sha2::{Digest, Sha256};
use stellar_xdr::{
    AccountId, Asset, CreateAccountOp, DecoratedSignature, Limits, Memo, MuxedAccount, Operation,
    OperationBody, PaymentOp, Preconditions, PublicKey, ReadXdr, SequenceNumber, Signature,
    SignatureHint, TimeBounds, TimePoint, Transaction, TransactionEnvelope, TransactionExt,
    TransactionResult, TransactionResultResult, TransactionSignaturePayload,
    TransactionSignaturePayloadTaggedTransaction, TransactionV1Envelope, Uint256, WriteXdr,
};

pub const PASSPHRASE: &str = "Pi Testnet";
pub const PI: Stroops = 10_000_000;

/// A chain whose ledgers close only when the test says so (`close_ledger_now`).
pub fn manual_chain() -> Chain {
    chain_with(1_000_000.0, None, Duration::from_secs(30))
}

/// A chain closing one ledger per submission.
pub fn instant_chain() -> Chain {
    chain_with(0.0, None, Duration::from_secs(30))
}

pub fn chain_with(ledger_seconds: f64, max: Option<u32>, timeout: Duration) -> Chain {
    Chain::new(ChainConfig {
        passphrase: PASSPHRASE.into(),
        ledger_seconds,
        max_tx_per_ledger: max,
        submit_timeout: timeout,
        clock_offset_seconds: 0,
    })
}

pub fn funded(chain: &Chain, balance: Stroops) -> Keypair {
    let k = Keypair::random();
    chain.fund_account(&k.public_key(), balance);
    k
}

pub fn muxed(k: &Keypair) -> MuxedAccount {
    MuxedAccount::Ed25519(Uint256(k.public_key_bytes()))
}

pub fn payment(to: &Keypair, amount: Stroops) -> Operation {
    Operation {
        source_account: None,
        body: OperationBody::Payment(PaymentOp {
            destination: muxed(to),
            asset: Asset::Native,
            amount,
        }),
    }
}

pub fn create_account(to: &Keypair, starting_balance: Stroops) -> Operation {
    Operation {
        source_account: None,
        body: OperationBody::CreateAccount(CreateAccountOp {
            destination: AccountId(PublicKey::PublicKeyTypeEd25519(Uint256(
                to.public_key_bytes(),
            ))),
            starting_balance,
        }),
    }
}

/// A transaction under construction; `envelope()` signs it with `signers`.
pub struct TxSpec {
    pub source: Keypair,
    pub seq: i64,
    pub fee: u32,
    pub ops: Vec<Operation>,
    pub memo: Memo,
    pub time_bounds: Option<(u64, u64)>,
    pub signers: Vec<Keypair>,
    pub passphrase: String,
}

impl TxSpec {
    /// One payment from `source` (seq = the chain's next) to `to`, signed by `source`.
    pub fn pay(chain: &Chain, source: &Keypair, to: &Keypair, amount: Stroops) -> TxSpec {
        TxSpec {
            source: source.clone(),
            seq: chain.next_sequence(&source.public_key()).unwrap_or(1),
            fee: 100_000,
            ops: vec![payment(to, amount)],
            memo: Memo::Text("test".as_bytes().to_vec().try_into().unwrap()),
            time_bounds: Some((0, now() + 300)),
            signers: vec![source.clone()],
            passphrase: PASSPHRASE.into(),
        }
    }

    pub fn tx(&self) -> Transaction {
        Transaction {
            source_account: muxed(&self.source),
            fee: self.fee,
            seq_num: SequenceNumber(self.seq),
            cond: match self.time_bounds {
                None => Preconditions::None,
                Some((a, b)) => Preconditions::Time(TimeBounds {
                    min_time: TimePoint(a),
                    max_time: TimePoint(b),
                }),
            },
            memo: self.memo.clone(),
            operations: self.ops.clone().try_into().unwrap(),
            ext: TransactionExt::V0,
        }
    }

    /// `(hash_hex, base64 envelope)`, the hash computed independently of the chain code.
    pub fn envelope(&self) -> (String, String) {
        let tx = self.tx();
        let network_id: [u8; 32] = Sha256::digest(self.passphrase.as_bytes()).into();
        let payload = TransactionSignaturePayload {
            network_id: stellar_xdr::Hash(network_id),
            tagged_transaction: TransactionSignaturePayloadTaggedTransaction::Tx(tx.clone()),
        };
        let hash: [u8; 32] = Sha256::digest(payload.to_xdr(Limits::none()).unwrap()).into();
        let signatures: Vec<DecoratedSignature> = self
            .signers
            .iter()
            .map(|k| DecoratedSignature {
                hint: SignatureHint(k.signature_hint()),
                signature: Signature(k.sign(&hash).to_vec().try_into().unwrap()),
            })
            .collect();
        let env = TransactionEnvelope::Tx(TransactionV1Envelope {
            tx,
            signatures: signatures.try_into().unwrap(),
        });
        (
            hex::encode(hash),
            env.to_xdr_base64(Limits::none()).unwrap(),
        )
    }
}

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

pub fn decode_result(b64: &str) -> TransactionResult {
    TransactionResult::from_xdr_base64(b64, Limits::none()).unwrap()
}

/// The result XDR's code, checked independently of the chain's naming.
pub fn result_discriminant(b64: &str) -> TransactionResultResult {
    decode_result(b64).result
}

/// Serves Horizon for `chain` on a free port; returns its base URL.
pub async fn serve(chain: Chain) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        axum::serve(listener, pi_sim::horizon::router(chain))
            .await
            .unwrap();
    });
    format!("http://{addr}")
}

pub fn client() -> reqwest::Client {
    let _ = rustls::crypto::ring::default_provider().install_default();
    reqwest::Client::new()
}

/// Waits (without a deadline assertion) until `hash` is queued on the chain.
pub async fn until_queued(chain: &Chain, hash: &str) {
    while !chain.is_queued(hash) {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

/// `POST {base}/transactions` with the envelope `env`; the status and JSON answer.
pub async fn post_tx(c: &reqwest::Client, base: &str, env: &str) -> (u16, serde_json::Value) {
    let r = c
        .post(format!("{base}/transactions"))
        .form(&[("tx", env)])
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}
