//! The audit (/_sim/audit): the chain against the payments.

use crate::support::platform::{id, start};
use pi_sim::amount::STROOPS_PER_PI;
use pi_sim::keys::Keypair;
use reqwest::StatusCode;
use serde_json::{Value, json};

fn entry<'a>(audit: &'a Value, pid: &str) -> &'a Value {
    audit["payments"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["identifier"] == pid)
        .expect("payment in the audit")
}

#[tokio::test]
async fn clean_flows_are_ok() {
    let h = start().await;
    let (u2a, txid) = h.u2a_submitted("u-ok", 2.0).await;
    h.post(
        &format!("/v2/payments/{}/complete", id(&u2a)),
        json!({"txid": txid}),
    )
    .await;
    let a2u = h.a2u("u-ok", "1.5").await;
    let paid = h.pay_a2u(&a2u, 15_000_000).await;
    let (status, _) = h
        .post(
            &format!("/v2/payments/{}/complete", id(&a2u)),
            json!({"txid": paid}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let unpaid = h.a2u("u-ok-2", "1").await;

    let (status, audit) = h.control_get("/_sim/audit").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(audit["ok"], true, "{audit}");
    assert_eq!(audit["problems"], json!([]));
    let line = entry(&audit, &id(&a2u));
    assert_eq!(line["direction"], "app_to_user");
    assert_eq!(line["amount"], 1.5);
    assert_eq!(line["completed"], true);
    assert_eq!(line["cancelled"], false);
    assert_eq!(line["linked_txid"], paid.as_str());
    assert_eq!(line["chain_txids"], json!([paid]));
    assert_eq!(line["paid_on_chain"], true);
    assert_eq!(line["problems"], json!([]));
    let line = entry(&audit, &id(&u2a));
    assert_eq!(line["chain_txids"], json!([txid]));
    let line = entry(&audit, &id(&unpaid));
    assert_eq!(line["paid_on_chain"], false);
    assert!(line["linked_txid"].is_null());
}

#[tokio::test]
async fn double_payment_is_flagged() {
    let h = start().await;
    let a2u = h.a2u("u-double", "1").await;
    let first = h.pay_a2u(&a2u, STROOPS_PER_PI).await;
    let second = h.pay_a2u(&a2u, STROOPS_PER_PI).await;
    h.post(
        &format!("/v2/payments/{}/complete", id(&a2u)),
        json!({"txid": first}),
    )
    .await;
    let (_, audit) = h.control_get("/_sim/audit").await;
    assert_eq!(audit["ok"], false);
    assert_eq!(
        audit["problems"],
        json!([{"identifier": id(&a2u), "problem": "double_paid"}])
    );
    let line = entry(&audit, &id(&a2u));
    assert_eq!(line["chain_txids"], json!([first, second]));
    assert_eq!(line["problems"], json!(["double_paid"]));
}

#[tokio::test]
async fn paid_but_cancelled_is_flagged() {
    let h = start().await;
    let a2u = h.a2u("u-pbc", "1").await;
    h.pay_a2u(&a2u, STROOPS_PER_PI).await;
    let (status, _) = h
        .post(&format!("/v2/payments/{}/cancel", id(&a2u)), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, audit) = h.control_get("/_sim/audit").await;
    assert_eq!(audit["ok"], false);
    assert_eq!(
        audit["problems"],
        json!([{"identifier": id(&a2u), "problem": "paid_but_cancelled"}])
    );
    let line = entry(&audit, &id(&a2u));
    assert_eq!(line["cancelled"], true);
    assert_eq!(line["paid_on_chain"], true);
}

#[tokio::test]
async fn amount_differs_and_app_payments_without_payment_are_flagged() {
    let h = start().await;
    let u2a = h.u2a("u-amt", 2.0).await;
    let pid = id(&u2a);
    h.post(&format!("/v2/payments/{pid}/approve"), json!({}))
        .await;
    let (status, _) = h
        .control(&format!("/_sim/u2a/{pid}/submit"), json!({"amount": 1}))
        .await;
    assert_eq!(status, StatusCode::OK);

    let stranger = Keypair::random();
    h.sim
        .chain()
        .fund_account(&stranger.public_key(), 10 * STROOPS_PER_PI);
    let (orphan, ok) = h
        .chain_pay(
            &h.app_wallet(),
            &stranger.public_key(),
            STROOPS_PER_PI,
            "gift",
        )
        .await;
    assert!(ok);

    let (_, audit) = h.control_get("/_sim/audit").await;
    assert_eq!(audit["ok"], false);
    let problems = audit["problems"].as_array().unwrap();
    assert!(
        problems.contains(&json!({"identifier": pid, "problem": "amount_differs"})),
        "{audit}"
    );
    assert!(
        problems.contains(&json!({"problem": "app_payments_without_payment", "txids": [orphan]}))
    );
}
