//! The Horizon client and our signed transactions against pi-sim's Horizon (an independent
//! implementation): payments land and read back exactly, resubmission is idempotent, and
//! failures come back as the right `TxFailure`.

use pi_payments_core::PiAmount;
use pi_payments_core::Txid;
use pi_payments_core::horizon::{
    HorizonClient, MAX_PAGE_LIMIT, Order, SubmitError, SubmitOk, VerificationProblem,
};
use pi_payments_core::ids::random_alnum;
use pi_payments_core::stellar::{
    Network, PI_BASE_FEE_STROOPS, PaymentTx, SignedTx, TxFailure, Wallet,
};
use pi_sim::control_client::SimControl;
use pi_sim::{RunningSim, SimConfig};
use std::time::Duration;

struct Env {
    sim: RunningSim,
    horizon: HorizonClient,
    app: Wallet,
    net: Network,
    fee: i64,
}

async fn env() -> Env {
    env_with(
        SimConfig {
            ledger_seconds: 0.0,
            ..SimConfig::default()
        },
        Duration::from_secs(20),
    )
    .await
}

async fn env_with(config: SimConfig, timeout: Duration) -> Env {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let sim = pi_sim::start(SimConfig {
        platform_port: 0,
        horizon_port: 0,
        ..config
    })
    .await
    .expect("start pi-sim");
    let horizon = HorizonClient::new(&sim.horizon_url, timeout).unwrap();
    let app = Wallet::from_seed(&sim.app_wallet_seed).unwrap();
    assert_eq!(app.public_key(), sim.app_wallet_public_key);
    let net = Network::new(&sim.network_passphrase);
    let fee = horizon.base_fee().await.unwrap();
    assert!(fee > 0);
    let fee = fee.max(PI_BASE_FEE_STROOPS);
    Env {
        sim,
        horizon,
        app,
        net,
        fee,
    }
}

/// A Pioneer's funded wallet address, from pi-sim's control API.
async fn pioneer(sim: &RunningSim, uid: &str) -> String {
    let control = SimControl::of(sim).unwrap();
    control.user(uid).await.unwrap().wallet_address
}

fn pi(text: &str) -> PiAmount {
    PiAmount::parse(text).unwrap()
}

impl Env {
    async fn sequence(&self, account: &str) -> i64 {
        self.horizon
            .account(account)
            .await
            .unwrap()
            .unwrap()
            .sequence
    }

    async fn balance(&self, account: &str) -> i64 {
        self.horizon
            .account(account)
            .await
            .unwrap()
            .unwrap()
            .balance_stroops
    }

    async fn payout(&self, to: &str, amount: PiAmount, memo: &str) -> SignedTx {
        let seq = self.sequence(&self.app.public_key()).await;
        self.app_pays(seq + 1, to, amount)
            .memo_text(memo)
            .expires_in(120)
            .sign(&[&self.app], &self.net)
            .unwrap()
    }

    /// The app paying `amount` to `to` at sequence `seq` with the test fee (no memo, unsigned).
    fn app_pays(&self, seq: i64, to: &str, amount: PiAmount) -> PaymentTx {
        PaymentTx::new(self.app.public_key(), seq)
            .fee_per_op(self.fee)
            .payment(to, amount)
    }
}

#[tokio::test]
async fn payment_lands_reads_back_and_resubmits_idempotently() {
    let e = env().await;
    let to = pioneer(&e.sim, "u1").await;
    let app = e.app.public_key();
    let app_before = e.horizon.account(&app).await.unwrap().unwrap();
    let to_before = e.balance(&to).await;
    let identifier = random_alnum(28);
    let amount = pi("2.5");

    let signed = e.payout(&to, amount, &identifier).await;
    assert_eq!(signed.sequence, app_before.sequence + 1);
    let ok = e.horizon.submit(&signed.envelope_b64).await.unwrap();
    assert_eq!(ok.hash, signed.hash_hex);
    assert!(ok.successful);
    assert!(ok.ledger > 0);

    let tx = e
        .horizon
        .transaction(&signed.hash_hex)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.hash, signed.hash_hex);
    assert_eq!(tx.ledger, ok.ledger);
    assert!(tx.successful);
    assert_eq!(tx.memo_type, "text");
    assert_eq!(tx.memo.as_deref(), Some(identifier.as_str()));
    assert_eq!(tx.source_account, app);
    assert!(!tx.created_at.is_empty());

    let payments = e
        .horizon
        .transaction_payments(&signed.hash_hex)
        .await
        .unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].kind, "payment");
    assert_eq!(payments[0].from, app);
    assert_eq!(payments[0].to, to);
    assert_eq!(payments[0].amount_stroops, 25_000_000);
    assert_eq!(payments[0].asset_type, "native");

    let app_after = e.horizon.account(&app).await.unwrap().unwrap();
    assert_eq!(app_after.sequence, app_before.sequence + 1);
    assert_eq!(
        app_after.balance_stroops,
        app_before.balance_stroops - 25_000_000 - e.fee
    );
    assert_eq!(e.balance(&to).await, to_before + 25_000_000);

    // The same envelope again: the same hash, and no second payment.
    let again = e.horizon.submit(&signed.envelope_b64).await.unwrap();
    assert_eq!(again.hash, signed.hash_hex);
    assert_eq!(e.balance(&to).await, to_before + 25_000_000);
    let app_final = e.horizon.account(&app).await.unwrap().unwrap();
    assert_eq!(app_final, app_after);

    // Finding it by memo (the check before any rebuild), and listing.
    let found = e
        .horizon
        .find_transaction_by_memo(&app, &identifier, None, None)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(found.hash, signed.hash_hex);
    assert!(
        e.horizon
            .find_transaction_by_memo(&app, &random_alnum(28), None, None)
            .await
            .unwrap()
            .is_none()
    );
    let page = e
        .horizon
        .account_transactions(&app, None, 10, Order::Desc)
        .await
        .unwrap();
    assert_eq!(page.records[0].hash, signed.hash_hex);
    assert!(page.next_cursor.is_some());

    // Verification as the U2A complete job does it (here: the app paid the pioneer).
    let txid = Txid::parse(&signed.hash_hex).unwrap();
    let v = e
        .horizon
        .verify_payment(&txid, &identifier, &to, amount)
        .await
        .unwrap();
    assert_eq!(v.payment.amount_stroops, 25_000_000);
    let wrong_amount = e
        .horizon
        .verify_payment(&txid, &identifier, &to, pi("2.5000001"))
        .await
        .unwrap_err();
    assert!(matches!(
        wrong_amount,
        VerificationProblem::AmountMismatch { .. }
    ));
    let wrong_memo = e
        .horizon
        .verify_payment(&txid, "someotherpayment", &to, amount)
        .await
        .unwrap_err();
    assert_eq!(wrong_memo.code(), "memo_mismatch");
    let wrong_dest = e
        .horizon
        .verify_payment(&txid, &identifier, &app, amount)
        .await
        .unwrap_err();
    assert_eq!(wrong_dest.code(), "destination_mismatch");
    let unknown = Txid::parse(&"0".repeat(64)).unwrap();
    let missing = e
        .horizon
        .verify_payment(&unknown, &identifier, &to, amount)
        .await
        .unwrap_err();
    assert_eq!(missing.code(), "transaction_not_found");

    // Unknown transaction and account are None, not errors.
    assert!(
        e.horizon
            .transaction(&"0".repeat(64))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        e.horizon
            .account(&Wallet::generate().public_key())
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn stale_or_future_sequence_is_bad_seq_and_consumes_nothing() {
    let e = env().await;
    let to = pioneer(&e.sim, "u2").await;
    let app = e.app.public_key();
    let seq = e.sequence(&app).await;
    let first = e.payout(&to, pi("1"), &random_alnum(28)).await;
    e.horizon.submit(&first.envelope_b64).await.unwrap();

    let balance = e.balance(&app).await;
    for stale_or_future in [seq + 1, seq + 5] {
        let tx = e
            .app_pays(stale_or_future, &to, pi("1"))
            .memo_text(random_alnum(28))
            .expires_in(120)
            .sign(&[&e.app], &e.net)
            .unwrap();
        match e.horizon.submit(&tx.envelope_b64).await {
            Err(SubmitError::Failed { failure, .. }) => {
                assert_eq!(failure, TxFailure::BadSeq);
                assert!(failure.is_definite());
                assert!(!failure.consumed_sequence());
            }
            other => panic!("expected tx_bad_seq, got {other:?}"),
        }
        assert!(e.horizon.transaction(&tx.hash_hex).await.unwrap().is_none());
    }
    assert_eq!(e.sequence(&app).await, seq + 1);
    assert_eq!(e.balance(&app).await, balance);
}

#[tokio::test]
async fn channel_account_pays_the_fee_while_the_app_pays_the_pioneer() {
    let e = env().await;
    let to = pioneer(&e.sim, "u3").await;
    let app = e.app.public_key();
    let channel = Wallet::generate();

    // Fund the channel account from the app wallet.
    let app_seq = e.sequence(&app).await;
    let create = PaymentTx::new(&app, app_seq + 1)
        .fee_per_op(e.fee)
        .create_account(channel.public_key(), pi("2"))
        .expires_in(120)
        .sign(&[&e.app], &e.net)
        .unwrap();
    e.horizon.submit(&create.envelope_b64).await.unwrap();
    let funding = e
        .horizon
        .transaction_payments(&create.hash_hex)
        .await
        .unwrap();
    assert_eq!(funding.len(), 1);
    assert_eq!(funding[0].kind, "create_account");
    assert_eq!(funding[0].from, app);
    assert_eq!(funding[0].to, channel.public_key());
    assert_eq!(funding[0].amount_stroops, 20_000_000);
    assert_eq!(e.balance(&channel.public_key()).await, 20_000_000);

    let app_before = e.horizon.account(&app).await.unwrap().unwrap();
    let to_before = e.balance(&to).await;
    let ch_seq = e.sequence(&channel.public_key()).await;
    let identifier = random_alnum(28);
    let signed = PaymentTx::new(channel.public_key(), ch_seq + 1)
        .fee_per_op(e.fee)
        .payment_from(&app, &to, pi("1.25"))
        .memo_text(&identifier)
        .expires_in(120)
        .sign(&[&channel, &e.app], &e.net)
        .unwrap();
    let ok = e.horizon.submit(&signed.envelope_b64).await.unwrap();
    assert_eq!(ok.hash, signed.hash_hex);

    let tx = e
        .horizon
        .transaction(&signed.hash_hex)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(tx.source_account, channel.public_key());
    assert_eq!(tx.memo.as_deref(), Some(identifier.as_str()));
    let p = e
        .horizon
        .transaction_payments(&signed.hash_hex)
        .await
        .unwrap();
    assert_eq!(p.len(), 1);
    assert_eq!(
        (p[0].from.as_str(), p[0].to.as_str()),
        (app.as_str(), to.as_str())
    );
    assert_eq!(p[0].amount_stroops, 12_500_000);

    let app_after = e.horizon.account(&app).await.unwrap().unwrap();
    assert_eq!(
        app_after.sequence, app_before.sequence,
        "the channel's sequence was used"
    );
    assert_eq!(
        app_after.balance_stroops,
        app_before.balance_stroops - 12_500_000
    );
    assert_eq!(e.sequence(&channel.public_key()).await, ch_seq + 1);
    assert_eq!(e.balance(&channel.public_key()).await, 20_000_000 - e.fee);
    assert_eq!(e.balance(&to).await, to_before + 12_500_000);
    // Found by memo on the app wallet's history? The app is an op source, not the tx source;
    // Horizon lists such transactions for every participating account.
    let found = e
        .horizon
        .find_transaction_by_memo(&app, &identifier, None, None)
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.hash), Some(signed.hash_hex));
}

#[tokio::test]
async fn failures_come_back_classified() {
    let e = env().await;
    let to = pioneer(&e.sim, "u4").await;
    let app = e.app.public_key();

    // Signed for another network: tx_bad_auth, nothing consumed.
    let seq = e.sequence(&app).await;
    let wrong_net = e
        .app_pays(seq + 1, &to, pi("1"))
        .memo_text(random_alnum(28))
        .expires_in(120)
        .sign(&[&e.app], &Network::new("Not Pi"))
        .unwrap();
    match e.horizon.submit(&wrong_net.envelope_b64).await {
        Err(SubmitError::Failed { failure, .. }) => assert_eq!(failure, TxFailure::BadAuth),
        other => panic!("expected tx_bad_auth, got {other:?}"),
    }
    assert_eq!(e.sequence(&app).await, seq);

    // Expired: tx_too_late.
    let late = e
        .app_pays(seq + 1, &to, pi("1"))
        .memo_text(random_alnum(28))
        .max_time(1_000_000)
        .sign(&[&e.app], &e.net)
        .unwrap();
    match e.horizon.submit(&late.envelope_b64).await {
        Err(SubmitError::Failed { failure, .. }) => {
            assert_eq!(failure, TxFailure::TooLate);
            assert!(failure.is_definite());
        }
        other => panic!("expected tx_too_late, got {other:?}"),
    }

    // To an account that does not exist: applied, fails, consumes sequence and fee.
    let balance = e.balance(&app).await;
    let nowhere = e
        .payout(&Wallet::generate().public_key(), pi("1"), &random_alnum(28))
        .await;
    match e.horizon.submit(&nowhere.envelope_b64).await {
        Err(SubmitError::Failed {
            failure,
            result_xdr,
        }) => {
            assert_eq!(
                failure,
                TxFailure::Failed {
                    ops: vec!["op_no_destination".into()]
                }
            );
            assert!(failure.consumed_sequence() && failure.is_definite());
            // The result XDR says the same thing as the result codes.
            let xdr = result_xdr.expect("Horizon sends extras.result_xdr");
            assert_eq!(TxFailure::from_result_xdr(&xdr), Some(failure));
        }
        other => panic!("expected tx_failed, got {other:?}"),
    }
    assert_eq!(e.sequence(&app).await, seq + 1);
    assert_eq!(e.balance(&app).await, balance - e.fee);
    let recorded = e
        .horizon
        .transaction(&nowhere.hash_hex)
        .await
        .unwrap()
        .unwrap();
    assert!(!recorded.successful);
    // A failed transaction with the memo is not "paid".
    assert!(
        e.horizon
            .find_transaction_by_memo(&app, recorded.memo.as_deref().unwrap(), None, None)
            .await
            .unwrap()
            .is_none()
    );

    // More than the balance: op_underfunded.
    let too_much = PiAmount::from_stroops(e.balance(&app).await).unwrap();
    let broke = e.payout(&to, too_much, &random_alnum(28)).await;
    match e.horizon.submit(&broke.envelope_b64).await {
        Err(SubmitError::Failed { failure, .. }) => {
            assert_eq!(failure.failed_ops(), vec!["op_underfunded"]);
        }
        other => panic!("expected op_underfunded, got {other:?}"),
    }

    // Garbage is malformed, not a transport error.
    assert!(matches!(
        e.horizon.submit("bm90IGFuIGVudmVsb3Bl").await,
        Err(SubmitError::Malformed(_))
    ));
}

#[tokio::test]
async fn a_timed_out_submission_lands_when_the_same_envelope_is_resubmitted() {
    // Ledgers close every 2 s but Horizon gives up waiting after 0.3 s: the POST answers 504
    // while the transaction is still queued for the ledger.
    let e = env_with(
        SimConfig {
            ledger_seconds: 2.0,
            submit_timeout: Duration::from_millis(300),
            ..SimConfig::default()
        },
        Duration::from_secs(20),
    )
    .await;
    let to = pioneer(&e.sim, "u5").await;
    // A first payment answers right after a ledger closes, so the next submission starts with
    // a whole ledger period (2 s) ahead of it, far more than the 0.3 s Horizon waits.
    let warmup = e.payout(&to, pi("1"), &random_alnum(28)).await;
    submit_until_landed(&e.horizon, &warmup).await;
    let to_before = e.balance(&to).await;
    let signed = e.payout(&to, pi("3"), &random_alnum(28)).await;
    let first = e.horizon.submit(&signed.envelope_b64).await.unwrap_err();
    assert_eq!(first, SubmitError::Timeout);
    assert!(first.may_have_landed());

    // What the payout job does: resubmit the same envelope until it has a verdict.
    let ok = submit_until_landed(&e.horizon, &signed).await;
    assert_eq!(ok.hash, signed.hash_hex);
    assert_eq!(
        e.balance(&to).await,
        to_before + 30_000_000,
        "paid exactly once"
    );

    // A client-side timeout is reported the same way (we are again just after a ledger close).
    let impatient = HorizonClient::new(&e.sim.horizon_url, Duration::from_millis(100)).unwrap();
    let next = e.payout(&to, pi("1"), &random_alnum(28)).await;
    let err = impatient.submit(&next.envelope_b64).await.unwrap_err();
    assert_eq!(err, SubmitError::Timeout);
}

/// Resubmit the same envelope until Horizon gives a verdict; panics on a definite failure.
async fn submit_until_landed(horizon: &HorizonClient, signed: &SignedTx) -> SubmitOk {
    for _ in 0..40 {
        match horizon.submit(&signed.envelope_b64).await {
            Ok(ok) => return ok,
            Err(err) if err.may_have_landed() => {
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            Err(err) => panic!("resubmitting the same envelope failed: {err}"),
        }
    }
    panic!("transaction {} did not land", signed.hash_hex);
}

/// The memo scan (before rebuilding a payout's envelope) stops at transactions older than the
/// payout: on a busy wallet it reads one page, not the last 2,000 transactions.
#[tokio::test]
async fn the_memo_scan_stops_at_transactions_older_than_the_payout() {
    let e = env().await;
    let control = SimControl::of(&e.sim).unwrap();
    let to = pioneer(&e.sim, "u-scan").await;
    let app = e.app.public_key();
    let memo = random_alnum(28);
    let old = e.payout(&to, pi("0.1"), &memo).await;
    e.horizon.submit(&old.envelope_b64).await.unwrap();
    // A full page of newer transactions, all from before the "payout" below.
    let mut seq = e.sequence(&app).await;
    for _ in 0..MAX_PAGE_LIMIT {
        seq += 1;
        let filler = e
            .app_pays(seq, &to, pi("0.0000001"))
            .expires_in(120)
            .sign(&[&e.app], &e.net)
            .unwrap();
        e.horizon.submit(&filler.envelope_b64).await.unwrap();
    }
    // Ledger close times have whole seconds: the payout is clearly newer than all of them.
    tokio::time::sleep(Duration::from_millis(1_100)).await;
    let created_ms = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();

    let pages = || control.endpoint_calls("horizon_account_transactions");
    let before = pages().await.unwrap();
    let bounded = e
        .horizon
        .find_transaction_by_memo(&app, &memo, None, Some(created_ms))
        .await
        .unwrap();
    assert!(bounded.is_none(), "older than the bound: not scanned");
    assert_eq!(pages().await.unwrap() - before, 1, "one page, then stop");

    // Unbounded (or bounded before it), the scan pages on and finds it.
    let before = pages().await.unwrap();
    let found = e
        .horizon
        .find_transaction_by_memo(&app, &memo, None, None)
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.hash), Some(old.hash_hex.clone()));
    assert_eq!(pages().await.unwrap() - before, 2);
    let found = e
        .horizon
        .find_transaction_by_memo(&app, &memo, None, Some(created_ms - 600_000))
        .await
        .unwrap();
    assert_eq!(found.map(|t| t.hash), Some(old.hash_hex));
}

#[tokio::test]
async fn a_flaky_read_is_tried_again_but_a_throttle_is_handed_back() {
    let e = env().await;
    let control = SimControl::of(&e.sim).unwrap();
    let app = e.app.public_key();
    // Two injected 500s and then a dropped answer: the read still succeeds, at once.
    control
        .faults(&serde_json::json!({"fail_next": 2, "targets": ["horizon"], "endpoints": ["horizon_account"]}))
        .await
        .unwrap();
    assert!(e.horizon.account(&app).await.unwrap().is_some());
    control
        .faults(&serde_json::json!({"drop_next": 1, "targets": ["horizon"], "endpoints": ["horizon_account"]}))
        .await
        .unwrap();
    assert!(e.horizon.account(&app).await.unwrap().is_some());
    // A 429 asks us to slow down: the caller waits as for any throttle, no second request now.
    control.reset("log").await.unwrap();
    control
        .faults(&serde_json::json!({"throttle_next": 1, "targets": ["horizon"], "endpoints": ["horizon_account"]}))
        .await
        .unwrap();
    match e.horizon.account(&app).await {
        Err(pi_payments_core::horizon::HorizonError::Status { status: 429, .. }) => {}
        other => panic!("expected the 429 back, got {other:?}"),
    }
    assert_eq!(control.endpoint_calls("horizon_account").await.unwrap(), 1);
}
