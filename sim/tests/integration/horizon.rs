//! Horizon over HTTP: resource shapes, submission answers (200, 400 transaction_failed for
//! rejections and in-ledger failures, 400 transaction_malformed, 504 timeout), paging and
//! 404 problems.

use crate::support::chain::*;
use pi_sim::keys::Keypair;
use serde_json::Value;
use std::time::Duration;

async fn get(c: &reqwest::Client, url: &str) -> (u16, Value) {
    let r = c.get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap())
}

#[tokio::test]
async fn root_account_fee_stats_and_ledgers() {
    let chain = instant_chain();
    let base = serve(chain.clone()).await;
    let c = client();
    let a = funded(&chain, 25_000_000 + 3);

    let (s, root) = get(&c, &format!("{base}/")).await;
    assert_eq!(s, 200);
    assert_eq!(root["network_passphrase"], PASSPHRASE);
    assert_eq!(root["history_latest_ledger"], 1);
    assert_eq!(root["core_latest_ledger"], 1);

    let (s, acc) = get(&c, &format!("{base}/accounts/{}", a.public_key())).await;
    assert_eq!(s, 200);
    assert_eq!(acc["id"], a.public_key());
    assert_eq!(acc["account_id"], a.public_key());
    assert_eq!(acc["sequence"], (1i64 << 32).to_string());
    assert_eq!(acc["balances"][0]["balance"], "2.5000003");
    assert_eq!(acc["balances"][0]["asset_type"], "native");
    assert_eq!(acc["subentry_count"], 0);
    assert_eq!(acc["signers"][0]["key"], a.public_key());
    assert!(acc["thresholds"].is_object());

    let nobody = Keypair::random().public_key();
    let (s, p) = get(&c, &format!("{base}/accounts/{nobody}")).await;
    assert_eq!(s, 404);
    assert_eq!(p["status"], 404);
    assert_eq!(p["title"], "Resource Missing");
    assert!(p["type"].as_str().unwrap().ends_with("not_found"));
    assert!(p["detail"].is_string());
    let (s, p) = get(&c, &format!("{base}/accounts/notakey")).await;
    assert_eq!(s, 400);
    assert_eq!(p["extras"]["invalid_field"], "account_id");

    let (s, f) = get(&c, &format!("{base}/fee_stats")).await;
    assert_eq!(s, 200);
    assert_eq!(f["last_ledger_base_fee"], "100000");
    assert_eq!(f["fee_charged"]["p50"], "100000");
    assert_eq!(f["max_fee"]["mode"], "100000");

    // Close two more ledgers, then the latest is 3.
    chain.close_ledger_now();
    chain.close_ledger_now();
    let (s, l) = get(&c, &format!("{base}/ledgers?order=desc&limit=1")).await;
    assert_eq!(s, 200);
    let recs = l["_embedded"]["records"].as_array().unwrap();
    assert_eq!(recs.len(), 1);
    assert_eq!(recs[0]["sequence"], 3);
    assert_eq!(recs[0]["base_fee_in_stroops"], 100000);
    let (s, l2) = get(&c, &format!("{base}/ledgers/2")).await;
    assert_eq!(s, 200);
    assert_eq!(l2["sequence"], 2);
    assert_eq!(recs[0]["prev_hash"], l2["hash"]);
    assert_eq!(get(&c, &format!("{base}/ledgers/99")).await.0, 404);
    let (_, asc) = get(&c, &format!("{base}/ledgers?limit=2")).await;
    let seqs: Vec<i64> = asc["_embedded"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["sequence"].as_i64().unwrap())
        .collect();
    assert_eq!(seqs, vec![1, 2]);

    let (s, p) = get(&c, &format!("{base}/no/such/path")).await;
    assert_eq!(s, 404);
    assert_eq!(p["status"], 404);
}

#[tokio::test]
async fn submit_success_and_transaction_resources() {
    let chain = instant_chain();
    let base = serve(chain.clone()).await;
    let c = client();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let (hash, env) = TxSpec::pay(&chain, &a, &b, 25_000_000).envelope();
    let (s, t) = post_tx(&c, &base, &env).await;
    assert_eq!(s, 200, "{t}");
    assert_eq!(t["hash"], hash);
    assert_eq!(t["successful"], true);
    assert_eq!(t["envelope_xdr"], env);
    assert!(t["result_xdr"].is_string());
    assert!(t["ledger"].as_u64().unwrap() >= 2);

    let (s, g) = get(&c, &format!("{base}/transactions/{hash}")).await;
    assert_eq!(s, 200);
    assert_eq!(g["id"], hash);
    assert_eq!(g["memo_type"], "text");
    assert_eq!(g["memo"], "test");
    assert_eq!(g["source_account"], a.public_key());
    assert_eq!(g["fee_account"], a.public_key());
    assert_eq!(g["fee_charged"], "100000");
    assert_eq!(g["max_fee"], "100000");
    assert_eq!(g["operation_count"], 1);
    assert_eq!(g["source_account_sequence"], ((1i64 << 32) + 1).to_string());
    assert_eq!(g["ledger"], t["ledger"]);
    assert!(g["paging_token"].is_string());
    assert!(g["created_at"].as_str().unwrap().ends_with('Z'));

    for what in ["operations", "payments"] {
        let (s, ops) = get(&c, &format!("{base}/transactions/{hash}/{what}")).await;
        assert_eq!(s, 200);
        let r = &ops["_embedded"]["records"][0];
        assert_eq!(r["type"], "payment");
        assert_eq!(r["type_i"], 1);
        assert_eq!(r["from"], a.public_key());
        assert_eq!(r["to"], b.public_key());
        assert_eq!(r["amount"], "2.5000000");
        assert_eq!(r["asset_type"], "native");
        assert_eq!(r["transaction_hash"], hash);
        assert_eq!(r["transaction_successful"], true);
        assert_eq!(r["source_account"], a.public_key());
    }

    // A memo-less transaction has no `memo` field.
    let mut s2 = TxSpec::pay(&chain, &a, &b, PI);
    s2.memo = stellar_xdr::Memo::None;
    let (h2, e2) = s2.envelope();
    assert_eq!(post_tx(&c, &base, &e2).await.0, 200);
    let (_, g2) = get(&c, &format!("{base}/transactions/{h2}")).await;
    assert_eq!(g2["memo_type"], "none");
    assert!(g2.get("memo").is_none());

    // create_account shows up on /payments with its own fields.
    let fresh = Keypair::random();
    let mut s3 = TxSpec::pay(&chain, &a, &b, PI);
    s3.ops = vec![create_account(&fresh, 15_000_000)];
    let (h3, e3) = s3.envelope();
    assert_eq!(post_tx(&c, &base, &e3).await.0, 200);
    let (_, ops) = get(&c, &format!("{base}/transactions/{h3}/payments")).await;
    let r = &ops["_embedded"]["records"][0];
    assert_eq!(r["type"], "create_account");
    assert_eq!(r["type_i"], 0);
    assert_eq!(r["funder"], a.public_key());
    assert_eq!(r["account"], fresh.public_key());
    assert_eq!(r["starting_balance"], "1.5000000");

    // Resubmitting the same envelope answers the recorded result.
    let (s, again) = post_tx(&c, &base, &env).await;
    assert_eq!(s, 200);
    assert_eq!(again["hash"], hash);
    assert_eq!(again["ledger"], t["ledger"]);

    let missing = "ab".repeat(32);
    assert_eq!(
        get(&c, &format!("{base}/transactions/{missing}")).await.0,
        404
    );
    assert_eq!(
        get(&c, &format!("{base}/transactions/{missing}/operations"))
            .await
            .0,
        404
    );
}

#[tokio::test]
async fn submit_failures_are_horizon_problems() {
    let chain = instant_chain();
    let base = serve(chain.clone()).await;
    let c = client();
    let a = funded(&chain, 10 * PI);
    let b = funded(&chain, 5 * PI);

    // Pre-ledger rejection.
    let mut s = TxSpec::pay(&chain, &a, &b, PI);
    s.seq += 5;
    let (_, env) = s.envelope();
    let (st, p) = post_tx(&c, &base, &env).await;
    assert_eq!(st, 400);
    assert!(p["type"].as_str().unwrap().ends_with("transaction_failed"));
    assert_eq!(p["title"], "Transaction Failed");
    assert_eq!(p["extras"]["result_codes"]["transaction"], "tx_bad_seq");
    assert!(p["extras"]["result_codes"].get("operations").is_none());
    let r = decode_result(p["extras"]["result_xdr"].as_str().unwrap());
    assert!(matches!(
        r.result,
        stellar_xdr::TransactionResultResult::TxBadSeq
    ));
    assert_eq!(p["extras"]["envelope_xdr"], env);

    // In-ledger failure: 400 with tx_failed + op codes, recorded successful:false.
    let (hash, env) = TxSpec::pay(&chain, &a, &b, 9 * PI + 1).envelope();
    let (st, p) = post_tx(&c, &base, &env).await;
    assert_eq!(st, 400);
    assert_eq!(p["extras"]["result_codes"]["transaction"], "tx_failed");
    assert_eq!(
        p["extras"]["result_codes"]["operations"],
        serde_json::json!(["op_underfunded"])
    );
    let (s, g) = get(&c, &format!("{base}/transactions/{hash}")).await;
    assert_eq!(s, 200);
    assert_eq!(g["successful"], false);
    assert_eq!(g["fee_charged"], "100000");
    let (_, acc) = get(&c, &format!("{base}/accounts/{}", a.public_key())).await;
    assert_eq!(acc["sequence"], ((1i64 << 32) + 1).to_string());
    assert_eq!(acc["balances"][0]["balance"], "9.9900000");

    // No destination.
    let (_, env) = TxSpec::pay(&chain, &a, &Keypair::random(), PI).envelope();
    let (st, p) = post_tx(&c, &base, &env).await;
    assert_eq!(st, 400);
    assert_eq!(
        p["extras"]["result_codes"]["operations"],
        serde_json::json!(["op_no_destination"])
    );

    // Malformed and missing.
    let (st, p) = post_tx(&c, &base, "AAAA!!notxdr").await;
    assert_eq!(st, 400);
    assert!(
        p["type"]
            .as_str()
            .unwrap()
            .ends_with("transaction_malformed")
    );
    let r = c
        .post(format!("{base}/transactions"))
        .form(&[("nottx", "x")])
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
}

#[tokio::test]
async fn a_submission_answers_only_when_its_ledger_closes_and_504_on_timeout() {
    let chain = chain_with(1_000_000.0, None, Duration::from_secs(30));
    let base = serve(chain.clone()).await;
    let c = client();
    let a = funded(&chain, 10 * PI);
    let b = funded(&chain, 5 * PI);
    let (hash, env) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    let (c2, b2, e2) = (c.clone(), base.clone(), env.clone());
    let post = tokio::spawn(async move { post_tx(&c2, &b2, &e2).await });
    until_queued(&chain, &hash).await;
    assert_eq!(get(&c, &format!("{base}/transactions/{hash}")).await.0, 404);
    chain.close_ledger_now();
    let (s, t) = post.await.unwrap();
    assert_eq!(s, 200);
    assert_eq!(t["hash"], hash);

    chain.set_submit_timeout(Duration::from_millis(50));
    let (hash, env) = TxSpec::pay(&chain, &a, &b, PI).envelope();
    let (s, p) = post_tx(&c, &base, &env).await;
    assert_eq!(s, 504);
    assert!(p["type"].as_str().unwrap().ends_with("timeout"));
    assert_eq!(p["status"], 504);
    assert_eq!(get(&c, &format!("{base}/transactions/{hash}")).await.0, 404);
    chain.close_ledger_now();
    let (s, g) = get(&c, &format!("{base}/transactions/{hash}")).await;
    assert_eq!(s, 200);
    assert_eq!(g["successful"], true);
}

#[tokio::test]
async fn account_transactions_and_payments_page() {
    let chain = instant_chain();
    let base = serve(chain.clone()).await;
    let c = client();
    let a = funded(&chain, 100 * PI);
    let b = funded(&chain, 5 * PI);
    let mut hashes = Vec::new();
    for i in 1..=5 {
        let t = chain
            .pay(&a, &b.public_key(), i * PI, &format!("m{i}"))
            .await;
        let pi_sim::chain::SubmitOutcome::Applied(t) = t else {
            panic!("{t:?}")
        };
        hashes.push(t.hash);
    }
    // A failed one is hidden unless include_failed=true.
    let (_, env) = TxSpec::pay(&chain, &a, &Keypair::random(), PI).envelope();
    assert_eq!(post_tx(&c, &base, &env).await.0, 400);

    // Follow `next` links, 2 at a time, ascending.
    let mut url = format!("{base}/accounts/{}/transactions?limit=2", a.public_key());
    let mut seen = Vec::new();
    loop {
        let (s, page) = get(&c, &url).await;
        assert_eq!(s, 200);
        let recs = page["_embedded"]["records"].as_array().unwrap().clone();
        if recs.is_empty() {
            break;
        }
        assert!(recs.len() <= 2);
        seen.extend(recs.iter().map(|r| r["hash"].as_str().unwrap().to_owned()));
        url = page["_links"]["next"]["href"].as_str().unwrap().to_owned();
    }
    assert_eq!(seen, hashes);

    let (_, all) = get(
        &c,
        &format!(
            "{base}/accounts/{}/transactions?include_failed=true&limit=200",
            a.public_key()
        ),
    )
    .await;
    assert_eq!(all["_embedded"]["records"].as_array().unwrap().len(), 6);

    // Payments, newest first, for the payee; amounts with 7 decimals.
    let (s, p) = get(
        &c,
        &format!(
            "{base}/accounts/{}/payments?order=desc&limit=3",
            b.public_key()
        ),
    )
    .await;
    assert_eq!(s, 200);
    let recs = p["_embedded"]["records"].as_array().unwrap();
    let amounts: Vec<&str> = recs.iter().map(|r| r["amount"].as_str().unwrap()).collect();
    assert_eq!(amounts, vec!["5.0000000", "4.0000000", "3.0000000"]);
    let tokens: Vec<i64> = recs
        .iter()
        .map(|r| r["paging_token"].as_str().unwrap().parse().unwrap())
        .collect();
    assert!(tokens.windows(2).all(|w| w[0] > w[1]));
    let next = p["_links"]["next"]["href"].as_str().unwrap();
    let (_, p2) = get(&c, next).await;
    let amounts: Vec<&str> = p2["_embedded"]["records"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["amount"].as_str().unwrap())
        .collect();
    assert_eq!(amounts, vec!["2.0000000", "1.0000000"]);
    // Cursor semantics: strictly after the cursor.
    let (_, p3) = get(
        &c,
        &format!(
            "{base}/accounts/{}/payments?cursor={}",
            b.public_key(),
            tokens[1]
        ),
    )
    .await;
    assert_eq!(p3["_embedded"]["records"][0]["amount"], "5.0000000");

    for bad in ["limit=0", "limit=201", "order=sideways", "cursor=abc"] {
        let (s, p) = get(
            &c,
            &format!("{base}/accounts/{}/payments?{bad}", b.public_key()),
        )
        .await;
        assert_eq!(s, 400, "{bad}");
        assert!(p["type"].as_str().unwrap().ends_with("bad_request"));
    }
    // Paging tokens grow with ledger order.
    let t: Vec<i64> = hashes
        .iter()
        .map(|h| chain.transaction(h).unwrap().paging_token.parse().unwrap())
        .collect();
    assert!(t.windows(2).all(|w| w[0] < w[1]));
}
