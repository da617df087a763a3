//! The chain's ledger rules, driven through its Rust API: every pre-ledger rejection (nothing
//! consumed), in-ledger failures (fee and sequence consumed), resubmission, sequence races,
//! per-source ledger caps and submit timeouts.

use crate::support::chain::*;
use pi_sim::chain::{BASE_FEE, Chain, MIN_BALANCE, SubmitOutcome, TxRecord};
use pi_sim::keys::Keypair;
use std::time::Duration;
use stellar_xdr::{
    Memo, MuxedAccount, OperationResult, OperationResultTr, PaymentResult, TransactionResultResult,
    Uint256,
};

fn applied(o: SubmitOutcome) -> TxRecord {
    match o {
        SubmitOutcome::Applied(t) => t,
        other => panic!("expected Applied, got {other:?}"),
    }
}

/// Submits, expects a rejection with `code`, checks the result XDR agrees and nothing moved.
async fn expect_rejected(chain: &Chain, spec: &TxSpec, code: &str) -> TransactionResultResult {
    let src = spec.source.public_key();
    let before = chain.account(&src);
    let (hash, env) = spec.envelope();
    let out = chain.submit(&env).await;
    let SubmitOutcome::Rejected {
        hash: h,
        result_xdr,
        codes,
        ..
    } = out
    else {
        panic!("expected Rejected({code}), got {out:?}")
    };
    if spec.passphrase == PASSPHRASE {
        assert_eq!(h, hash);
    }
    assert_eq!(codes.transaction, code);
    let result = decode_result(&result_xdr);
    assert_eq!(result.fee_charged, 0);
    let after = chain.account(&src);
    assert_eq!(
        before.as_ref().map(|a| (a.sequence, a.balance)),
        after.as_ref().map(|a| (a.sequence, a.balance)),
        "a rejection must consume nothing"
    );
    assert!(chain.transaction(&hash).is_none());
    result.result
}

#[tokio::test]
async fn pay_applies_and_records_memo_fee_and_sequence() {
    let chain = instant_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let seq0 = chain.account(&a.public_key()).unwrap().sequence;
    assert_eq!(seq0, i64::from(chain.latest_ledger().sequence) << 32);
    let t = applied(chain.pay(&a, &b.public_key(), 25_000_000, "pay-memo").await);
    assert!(t.successful);
    assert_eq!(t.memo_type, "text");
    assert_eq!(t.memo.as_deref(), Some("pay-memo"));
    assert_eq!(t.fee_charged, BASE_FEE);
    assert_eq!(t.source_account_sequence, seq0 + 1);
    assert_eq!(t.ops.len(), 1);
    assert_eq!(t.ops[0].kind, "payment");
    assert_eq!(t.ops[0].amount, 25_000_000);
    let a2 = chain.account(&a.public_key()).unwrap();
    assert_eq!(a2.balance, 100 * PI - 25_000_000 - BASE_FEE);
    assert_eq!(a2.sequence, seq0 + 1);
    assert_eq!(
        chain.account(&b.public_key()).unwrap().balance,
        5 * PI + 25_000_000
    );
    assert!(matches!(
        result_discriminant(&t.result_xdr),
        TransactionResultResult::TxSuccess(_)
    ));
    assert_eq!(chain.transaction(&t.hash).unwrap().ledger, t.ledger);
    assert_eq!(chain.transactions().len(), 1);
    // A memo over Stellar's 28 bytes is refused before anything is built.
    let long = "x".repeat(29);
    assert!(matches!(
        chain.pay(&a, &b.public_key(), 1, &long).await,
        SubmitOutcome::Malformed(_)
    ));
}

#[tokio::test]
async fn every_pre_ledger_rejection_consumes_nothing() {
    let chain = instant_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);

    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.ops.clear();
    expect_rejected(&chain, &s, "tx_missing_operation").await;

    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.time_bounds = Some((now() + 3600, 0));
    expect_rejected(&chain, &s, "tx_too_early").await;

    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.time_bounds = Some((0, now() - 10));
    expect_rejected(&chain, &s, "tx_too_late").await;

    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.fee = 99_999;
    expect_rejected(&chain, &s, "tx_insufficient_fee").await;
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.ops.push(payment(&b, PI));
    s.fee = 150_000; // two ops need 200000
    expect_rejected(&chain, &s, "tx_insufficient_fee").await;

    let ghost = Keypair::random();
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.source = ghost.clone();
    s.signers = vec![ghost];
    s.seq = 1;
    expect_rejected(&chain, &s, "tx_no_source_account").await;

    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.seq += 1;
    expect_rejected(&chain, &s, "tx_bad_seq").await;
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.seq -= 1;
    expect_rejected(&chain, &s, "tx_bad_seq").await;

    // Wrong passphrase: the signature is over another network's hash.
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.passphrase = "Pi Network".into();
    let r = expect_rejected(&chain, &s, "tx_bad_auth").await;
    assert!(matches!(r, TransactionResultResult::TxBadAuth));
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.signers = vec![b.clone()];
    expect_rejected(&chain, &s, "tx_bad_auth").await;
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.signers.clear();
    expect_rejected(&chain, &s, "tx_bad_auth").await;

    // An op whose source is another account needs that account's signature too.
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.ops[0].source_account = Some(muxed(&b));
    let r = expect_rejected(&chain, &s, "tx_failed").await;
    let TransactionResultResult::TxFailed(ops) = r else {
        panic!("{r:?}")
    };
    assert_eq!(ops.to_vec(), vec![OperationResult::OpBadAuth]);
    // ... and with it the tx is fine (checked below via a second signer).
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.ops[0].source_account = Some(muxed(&b));
    s.ops[0].body = payment(&a, PI).body;
    s.signers.push(b.clone());
    let (_, env) = s.envelope();
    let t = applied(chain.submit(&env).await);
    assert!(t.successful, "{t:?}");
    assert_eq!(t.ops[0].from, b.public_key());

    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.signers.push(Keypair::random());
    expect_rejected(&chain, &s, "tx_bad_auth_extra").await;
    // A duplicate signature is extra as well.
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.signers.push(a.clone());
    expect_rejected(&chain, &s, "tx_bad_auth_extra").await;

    // Balance: 1 Pi minimum + fee must remain payable.
    let poor = funded(&chain, MIN_BALANCE + BASE_FEE - 1);
    let s = TxSpec::pay(&chain, &poor, &b, 1);
    expect_rejected(&chain, &s, "tx_insufficient_balance").await;

    // Not XDR at all.
    assert!(matches!(
        chain.submit("bm90IHhkcg==").await,
        SubmitOutcome::Malformed(_)
    ));
}

#[tokio::test]
async fn in_ledger_failures_consume_fee_and_sequence() {
    let chain = instant_chain();
    let a = funded(&chain, 10 * PI);
    let b = funded(&chain, 5 * PI);
    let seq0 = chain.account(&a.public_key()).unwrap().sequence;

    // Would leave a below the 1 Pi minimum.
    let s = TxSpec::pay(&chain, &a, &b, 9 * PI);
    let t = applied(chain.submit(&s.envelope().1).await);
    assert!(!t.successful);
    let codes = t.result_codes.clone().unwrap();
    assert_eq!(codes.transaction, "tx_failed");
    assert_eq!(codes.operations, vec!["op_underfunded"]);
    assert!(!t.ops[0].transaction_successful);
    let TransactionResultResult::TxFailed(ops) = result_discriminant(&t.result_xdr) else {
        panic!()
    };
    assert_eq!(
        ops.to_vec(),
        vec![OperationResult::OpInner(OperationResultTr::Payment(
            PaymentResult::Underfunded
        ))]
    );
    assert_eq!(decode_result(&t.result_xdr).fee_charged, BASE_FEE);
    let acc = chain.account(&a.public_key()).unwrap();
    assert_eq!(acc.sequence, seq0 + 1);
    assert_eq!(acc.balance, 10 * PI - BASE_FEE);
    assert_eq!(chain.account(&b.public_key()).unwrap().balance, 5 * PI);

    // Destination that does not exist.
    let nobody = Keypair::random();
    let s = TxSpec::pay(&chain, &a, &nobody, PI);
    let t = applied(chain.submit(&s.envelope().1).await);
    assert!(!t.successful);
    assert_eq!(
        t.result_codes.unwrap().operations,
        vec!["op_no_destination"]
    );
    let acc = chain.account(&a.public_key()).unwrap();
    assert_eq!(acc.sequence, seq0 + 2);
    assert_eq!(acc.balance, 10 * PI - 2 * BASE_FEE);

    // All or nothing: a good op followed by a bad one applies neither.
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.ops.push(payment(&nobody, PI));
    s.fee = 200_000;
    let t = applied(chain.submit(&s.envelope().1).await);
    assert!(!t.successful);
    assert_eq!(
        t.result_codes.unwrap().operations,
        vec!["op_success", "op_no_destination"]
    );
    assert_eq!(t.fee_charged, 2 * BASE_FEE);
    assert_eq!(chain.account(&b.public_key()).unwrap().balance, 5 * PI);
    assert_eq!(
        chain.account(&a.public_key()).unwrap().balance,
        10 * PI - 4 * BASE_FEE
    );
}

#[tokio::test]
async fn create_account_rules() {
    let chain = instant_chain();
    let a = funded(&chain, 50 * PI);
    let b = funded(&chain, 5 * PI);
    let fresh = Keypair::random();

    let mut s = TxSpec::pay(&chain, &a, &b, 1);
    s.ops = vec![create_account(&fresh, MIN_BALANCE - 1)];
    let t = applied(chain.submit(&s.envelope().1).await);
    assert_eq!(t.result_codes.unwrap().operations, vec!["op_low_reserve"]);

    let mut s = TxSpec::pay(&chain, &a, &b, 1);
    s.ops = vec![create_account(&b, 2 * PI)];
    let t = applied(chain.submit(&s.envelope().1).await);
    assert_eq!(
        t.result_codes.unwrap().operations,
        vec!["op_already_exists"]
    );

    let mut s = TxSpec::pay(&chain, &a, &b, 1);
    s.ops = vec![create_account(&fresh, 100 * PI)];
    let t = applied(chain.submit(&s.envelope().1).await);
    assert_eq!(t.result_codes.unwrap().operations, vec!["op_underfunded"]);

    let mut s = TxSpec::pay(&chain, &a, &b, 1);
    s.ops = vec![create_account(&fresh, 3 * PI)];
    let t = applied(chain.submit(&s.envelope().1).await);
    assert!(t.successful);
    assert_eq!(t.ops[0].kind, "create_account");
    assert_eq!(t.ops[0].to, fresh.public_key());
    let f = chain.account(&fresh.public_key()).unwrap();
    assert_eq!(f.balance, 3 * PI);
    assert_eq!(f.sequence, i64::from(t.ledger) << 32);
    // The new account can transact at once.
    let t = applied(chain.pay(&fresh, &b.public_key(), PI, "hi").await);
    assert!(t.successful);
}

#[tokio::test]
async fn resubmission_answers_the_recorded_result() {
    let chain = instant_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let (hash, env) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    let first = applied(chain.submit(&env).await);
    assert_eq!(first.hash, hash);
    let again = applied(chain.submit(&env).await);
    assert_eq!(again.hash, hash);
    assert_eq!(again.ledger, first.ledger);
    assert_eq!(chain.transactions().len(), 1);
    assert_eq!(
        chain.account(&b.public_key()).unwrap().balance,
        6 * PI,
        "paid once"
    );
    // Same for a failed one.
    let (_, env) = TxSpec::pay(&chain, &a, &Keypair::random(), PI).envelope();
    let f1 = applied(chain.submit(&env).await);
    let f2 = applied(chain.submit(&env).await);
    assert!(!f1.successful && !f2.successful);
    assert_eq!(f1.hash, f2.hash);
    assert_eq!(chain.transactions().len(), 2);
}

#[tokio::test]
async fn a_queued_hash_resubmitted_waits_for_the_same_result() {
    let chain = manual_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let (hash, env) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    let (c1, e1) = (chain.clone(), env.clone());
    let first = tokio::spawn(async move { c1.submit(&e1).await });
    until_queued(&chain, &hash).await;
    let (c2, e2) = (chain.clone(), env.clone());
    let second = tokio::spawn(async move { c2.submit(&e2).await });
    // Not visible until its ledger closes.
    assert!(chain.transaction(&hash).is_none());
    tokio::task::yield_now().await;
    tokio::time::sleep(Duration::from_millis(20)).await;
    chain.close_ledger_now();
    let t1 = applied(first.await.unwrap());
    let t2 = applied(second.await.unwrap());
    assert_eq!(t1.hash, t2.hash);
    assert_eq!(chain.transactions().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn six_parallel_submissions_with_one_sequence_land_once() {
    for chain in [
        instant_chain(),
        chain_with(0.05, None, Duration::from_secs(30)),
    ] {
        let a = funded(&chain, 100 * PI);
        let b = funded(&chain, 5 * PI);
        let seq = chain.next_sequence(&a.public_key()).unwrap();
        let mut handles = Vec::new();
        for i in 0..6 {
            let mut s = TxSpec::pay(&chain, &a, &b, PI + i);
            s.seq = seq;
            let env = s.envelope().1;
            let c = chain.clone();
            handles.push(tokio::spawn(async move { c.submit(&env).await }));
        }
        let mut landed = 0;
        let mut bad_seq = 0;
        for h in handles {
            match h.await.unwrap() {
                SubmitOutcome::Applied(t) if t.successful => landed += 1,
                SubmitOutcome::Rejected { codes, .. } if codes.transaction == "tx_bad_seq" => {
                    bad_seq += 1
                }
                other => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!((landed, bad_seq), (1, 5));
        assert_eq!(chain.account(&a.public_key()).unwrap().sequence, seq);
    }
}

#[tokio::test]
async fn queued_transactions_count_for_the_next_sequence() {
    let chain = manual_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let seq = chain.account(&a.public_key()).unwrap().sequence;
    let (h1, e1) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    let c = chain.clone();
    let j1 = tokio::spawn(async move { c.submit(&e1).await });
    until_queued(&chain, &h1).await;
    // The next one must carry seq + 2 while the first is queued.
    let mut s = TxSpec::pay(&chain, &a, &b, 2 * PI);
    assert_eq!(s.seq, seq + 2);
    s.seq = seq + 1;
    expect_rejected(&chain, &s, "tx_bad_seq").await;
    chain.close_ledger_now();
    assert!(applied(j1.await.unwrap()).successful);
}

#[tokio::test]
async fn max_tx_per_ledger_pushes_the_excess_to_later_ledgers() {
    let chain = manual_chain();
    chain.set_max_tx_per_ledger(Some(2));
    let a = funded(&chain, 100 * PI);
    let other = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let mut jobs = Vec::new();
    let mut hashes = Vec::new();
    for _ in 0..5 {
        let (h, e) = TxSpec::pay(&chain, &a, &b, PI).envelope();
        let c = chain.clone();
        jobs.push(tokio::spawn(async move { c.submit(&e).await }));
        until_queued(&chain, &h).await;
        hashes.push(h);
    }
    let (oh, oe) = TxSpec::pay(&chain, &other, &b, PI).envelope();
    let c = chain.clone();
    jobs.push(tokio::spawn(async move { c.submit(&oe).await }));
    until_queued(&chain, &oh).await;

    let start = chain.latest_ledger().sequence;
    for _ in 0..3 {
        chain.close_ledger_now();
    }
    let mut ledgers = Vec::new();
    for j in jobs {
        let t = applied(j.await.unwrap());
        assert!(t.successful);
        ledgers.push(t.ledger);
    }
    // a's five: 2 + 2 + 1 over three ledgers, in sequence order; the other source is not held up.
    assert_eq!(
        ledgers,
        vec![
            start + 1,
            start + 1,
            start + 2,
            start + 2,
            start + 3,
            start + 1
        ]
    );
    let seqs: Vec<i64> = hashes
        .iter()
        .map(|h| chain.transaction(h).unwrap().source_account_sequence)
        .collect();
    assert!(seqs.windows(2).all(|w| w[1] == w[0] + 1));
    assert_eq!(
        chain
            .ledger(start + 1)
            .unwrap()
            .successful_transaction_count,
        3
    );
}

#[tokio::test]
async fn timed_ledgers_close_on_their_own() {
    let chain = chain_with(0.05, Some(1), Duration::from_secs(30));
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let to = b.public_key();
    let (t1, t2) = tokio::join!(chain.pay(&a, &to, PI, "one"), chain.pay(&a, &to, PI, "two"));
    let (t1, t2) = (applied(t1), applied(t2));
    assert!(t1.successful && t2.successful);
    assert_ne!(t1.ledger, t2.ledger, "max_tx_per_ledger = 1 spreads them");
}

#[tokio::test]
async fn a_timed_out_submission_still_lands() {
    let chain = chain_with(1_000_000.0, None, Duration::from_millis(50));
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let (hash, env) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    match chain.submit(&env).await {
        SubmitOutcome::Timeout { hash: h } => assert_eq!(h, hash),
        other => panic!("expected Timeout, got {other:?}"),
    }
    assert!(chain.transaction(&hash).is_none());
    chain.close_ledger_now();
    assert!(chain.transaction(&hash).unwrap().successful);
    // Resubmitting now answers the recorded result.
    assert!(applied(chain.submit(&env).await).successful);
}

#[tokio::test]
async fn switching_to_instant_ledgers_flushes_the_queue() {
    let chain = manual_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let (hash, env) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    let c = chain.clone();
    let j = tokio::spawn(async move { c.submit(&env).await });
    until_queued(&chain, &hash).await;
    chain.set_ledger_seconds(0.0);
    assert!(applied(j.await.unwrap()).successful);
}

#[tokio::test]
async fn memo_kinds_and_muxed_sources_are_understood() {
    let chain = instant_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.memo = Memo::Id(42);
    let t = applied(chain.submit(&s.envelope().1).await);
    assert_eq!(
        (t.memo_type.as_str(), t.memo.as_deref()),
        ("id", Some("42"))
    );
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.memo = Memo::None;
    s.time_bounds = None;
    let t = applied(chain.submit(&s.envelope().1).await);
    assert_eq!((t.memo_type.as_str(), t.memo), ("none", None));
    // A payment to a muxed destination credits the underlying account.
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    if let stellar_xdr::OperationBody::Payment(p) = &mut s.ops[0].body {
        p.destination = MuxedAccount::MuxedEd25519(stellar_xdr::MuxedAccountMed25519 {
            id: 7,
            ed25519: Uint256(b.public_key_bytes()),
        });
    }
    assert!(applied(chain.submit(&s.envelope().1).await).successful);
    assert_eq!(chain.account(&b.public_key()).unwrap().balance, 8 * PI);
}

#[tokio::test]
async fn reset_forgets_everything() {
    let chain = instant_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    applied(chain.pay(&a, &b.public_key(), PI, "x").await);
    chain.reset();
    assert!(chain.account(&a.public_key()).is_none());
    assert!(chain.transactions().is_empty());
    assert_eq!(chain.latest_ledger().sequence, 1);
    assert_eq!(chain.passphrase(), PASSPHRASE);
}

#[tokio::test]
async fn a_queued_transaction_past_its_max_time_never_lands() {
    let chain = manual_chain();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let seq = chain.account(&a.public_key()).unwrap().sequence;
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.time_bounds = Some((0, now() + 1));
    let (hash, env) = s.envelope();
    let c = chain.clone();
    let j = tokio::spawn(async move { c.submit(&env).await });
    until_queued(&chain, &hash).await;
    // The next tx of the same source depends on it and is dropped with it.
    let (h2, e2) = TxSpec::pay(&chain, &a, &b, 2 * PI).envelope();
    let c = chain.clone();
    let j2 = tokio::spawn(async move { c.submit(&e2).await });
    until_queued(&chain, &h2).await;
    // Let maxTime pass (a wait, not a timing assertion).
    while now() <= s.time_bounds.unwrap().1 {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    chain.close_ledger_now();
    assert!(matches!(j.await.unwrap(), SubmitOutcome::Timeout { .. }));
    assert!(matches!(j2.await.unwrap(), SubmitOutcome::Timeout { .. }));
    assert!(chain.transaction(&hash).is_none());
    assert!(chain.transaction(&h2).is_none());
    assert_eq!(chain.account(&a.public_key()).unwrap().sequence, seq);
    assert_eq!(chain.next_sequence(&a.public_key()), Some(seq + 1));
}
