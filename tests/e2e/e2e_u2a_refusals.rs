//! End to end: payments that must never be approved or completed, through the real callbacks
//! against pi-sim, on both stacks (SQLite + embedded queue; Postgres + Redis when reachable).
//!
//! - approve refused: a token of another Pioneer, an amount tampered against its order, a
//!   payment the Pioneer already cancelled, no token at all, an order already paid;
//! - complete refused: a txid Pi did not link, a transaction paying the wrong amount, a txid
//!   that belongs to another payment;
//! - an abandoned approved payment reported by the incomplete callback (null txid) is
//!   cancelled at Pi so the Pioneer can pay again; one reported with its transaction (the
//!   complete callback was lost) is completed, once;
//! - garbage bodies get 400 and change nothing.
//!
//! "Never approved" is read from pi-sim's request log: no `approve` request for the payment.

use crate::support::{Harness, Options, Stack, entered};
use serde_json::{Value, json};

/// Each scenario as two tests: `<scenario>::sqlite_and_embedded_queue` and
/// `<scenario>::postgres_and_redis` (skipped when Postgres is unreachable).
macro_rules! on_both_stacks {
    ($($scenario:ident),* $(,)?) => {$(
        mod $scenario {
            use super::*;

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite_and_embedded_queue() {
                let h = Harness::start(Stack::Embedded, Options::default()).await.unwrap();
                super::$scenario(&h).await;
                h.stop().await;
            }

            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres_and_redis() {
                let Some(h) = Harness::start(Stack::PostgresRedis, Options::default()).await
                else {
                    return;
                };
                super::$scenario(&h).await;
                h.stop().await;
            }
        }
    )*};
}

on_both_stacks!(
    token_of_another_pioneer,
    amount_tampered_against_its_order,
    cancelled_by_the_pioneer_before_approval,
    cancel_callback_after_the_pioneer_cancelled,
    approve_without_an_access_token,
    order_already_paid_by_another_payment,
    complete_with_a_txid_pi_did_not_link,
    complete_with_a_transaction_paying_the_wrong_amount,
    complete_with_the_txid_of_another_payment,
    incomplete_with_null_txid_unblocks_the_pioneer,
    incomplete_with_a_txid_completes_the_payment,
    garbage_bodies_get_400_and_change_nothing,
);

/// The payment ended `cancelled` with a reason containing `why`, Pi never saw an `approve` for
/// it, Pi shows it cancelled, and the outbox says so exactly once (never approved/completed).
async fn assert_refused(h: &Harness, id: &str, why: &str) -> Value {
    let done = h.wait_until_settled(id).await;
    let row = &done["payment"];
    assert_eq!(row["state"], "cancelled", "{done}");
    let reason = row["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains(why),
        "reason {reason:?} lacks {why:?}: {done}"
    );
    assert_eq!(entered(&done, "approved"), 0, "{done}");
    assert_eq!(
        h.pi_calls(id, "approve").await,
        0,
        "Pi was asked to approve {id}"
    );
    assert_eq!(
        h.pi_calls(id, "complete").await,
        0,
        "Pi was asked to complete {id}"
    );
    let at_pi = h.pi_payment(id).await;
    assert!(
        !at_pi["status"]["developer_approved"].as_bool().unwrap(),
        "{at_pi}"
    );
    assert!(
        at_pi["status"]["cancelled"] == true || at_pi["status"]["user_cancelled"] == true,
        "Pi does not show {id} cancelled: {at_pi}"
    );
    assert_eq!(h.count_events("payment.cancelled", id).await, 1);
    assert_eq!(h.count_events("payment.approved", id).await, 0);
    assert_eq!(h.count_events("payment.completed", id).await, 0);
    done
}

/// The order is still open and bound to no payment (it can be paid by a correct payment).
async fn assert_order_open(h: &Harness, order_id: &str) {
    let (status, order) = h.get(format!("{}/orders/{order_id}", h.api)).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["state"], "open", "{order}");
    assert_eq!(order["payment_id"], Value::Null, "{order}");
}

/// The payment was not completed: it needs a person, Pi was never asked to complete it and
/// does not show it completed, and no `payment.completed` event exists.
async fn assert_not_completed(h: &Harness, id: &str) -> Value {
    let done = h.wait_until_settled(id).await;
    assert_eq!(done["payment"]["state"], "needs_attention", "{done}");
    assert_eq!(entered(&done, "completed"), 0, "{done}");
    assert_eq!(
        h.pi_calls(id, "complete").await,
        0,
        "Pi was asked to complete {id}"
    );
    let at_pi = h.pi_payment(id).await;
    assert_eq!(at_pi["status"]["developer_completed"], false, "{at_pi}");
    assert_eq!(h.count_events("payment.completed", id).await, 0);
    assert_eq!(h.count_events("payment.needs_attention", id).await, 1);
    done
}

/// An amount as the JSON number Pi's SDK sends (serde_json writes it back as the same text).
fn pi_amount(text: &str) -> Value {
    serde_json::from_str(text).unwrap()
}

/// A `coffee` order and a payment for it by `uid`, approved through the callback.
async fn approved_payment(h: &Harness, uid: &str) -> (String, Value) {
    let order = h.order("coffee").await;
    let id = h
        .create_payment(uid, order["amount"].clone(), order["metadata"].clone())
        .await;
    let token = h.token(uid).await;
    h.approve(&id, &token).await;
    h.wait_for_state(&id, "approved").await;
    (id, order)
}

// ---------------------------------------------------------------------------------------------
// approve refused

async fn token_of_another_pioneer(h: &Harness) {
    let order = h.order("coffee").await;
    let id = h
        .create_payment("alice", order["amount"].clone(), order["metadata"].clone())
        .await;
    let mallory = h.token("mallory").await;
    let answer = h.approve(&id, &mallory).await;
    assert_eq!(answer["payment_id"], id.as_str());
    assert_refused(h, &id, "different Pioneer").await;
    assert_order_open(h, order["id"].as_str().unwrap()).await;
}

async fn amount_tampered_against_its_order(h: &Harness) {
    let order = h.order("coffee").await; // 1.5 Pi
    let id = h
        .create_payment("bob", pi_amount("1.4999999"), order["metadata"].clone())
        .await;
    let token = h.token("bob").await;
    h.approve(&id, &token).await;
    assert_refused(h, &id, "differs from the order's price").await;
    assert_order_open(h, order["id"].as_str().unwrap()).await;
}

async fn cancelled_by_the_pioneer_before_approval(h: &Harness) {
    let order = h.order("coffee").await;
    let id = h
        .create_payment("carol", order["amount"].clone(), order["metadata"].clone())
        .await;
    h.user_cancel(&id).await;
    let token = h.token("carol").await;
    // A late (or replayed) approve callback for a payment the Pioneer cancelled.
    h.approve(&id, &token).await;
    assert_refused(h, &id, "cancelled by the Pioneer").await;
    assert_order_open(h, order["id"].as_str().unwrap()).await;
}

async fn cancel_callback_after_the_pioneer_cancelled(h: &Harness) {
    let order = h.order("coffee").await;
    let id = h
        .create_payment("dave", order["amount"].clone(), order["metadata"].clone())
        .await;
    h.user_cancel(&id).await;
    h.callback("/pi_payment", "cancel", json!({"paymentId": id}))
        .await;
    assert_refused(h, &id, "cancelled").await;
}

async fn approve_without_an_access_token(h: &Harness) {
    let order = h.order("coffee").await;
    let id = h
        .create_payment("erin", order["amount"].clone(), order["metadata"].clone())
        .await;
    h.callback("/pi_payment", "approve", json!({"paymentId": id}))
        .await;
    assert_refused(h, &id, "no access token").await;
}

async fn order_already_paid_by_another_payment(h: &Harness) {
    let first = h.purchase("frank", 1).await;
    let paid = h.payment(&first).await;
    let order_id = paid["payment"]["order_id"].as_str().unwrap().to_string();
    // A second payment presenting the same (paid) order.
    let id = h
        .create_payment("frank", pi_amount("1.5"), json!({"orderId": order_id}))
        .await;
    let token = h.token("frank").await;
    h.approve(&id, &token).await;
    assert_refused(h, &id, &order_id).await;
    let (_, order) = h.get(format!("{}/orders/{order_id}", h.api)).await;
    assert_eq!(order["state"], "paid", "{order}");
    assert_eq!(order["payment_id"], first.as_str(), "{order}");
}

// ---------------------------------------------------------------------------------------------
// complete refused

async fn complete_with_a_txid_pi_did_not_link(h: &Harness) {
    let (id, _) = approved_payment(h, "grace").await;
    let real = h.submit(&id, json!({})).await;
    let forged = "ab".repeat(32);
    assert_ne!(forged, real);
    // The callback's txid is only a claim: the payment completes with the one Pi linked,
    // and the forged claim is on record.
    let answer = h.complete(&id, &forged).await;
    assert_ne!(answer["state"], "completed", "{answer}");
    let done = h.wait_for_state(&id, "completed").await;
    assert_eq!(done["payment"]["txid"], real.as_str(), "{done}");
    let events = done["events"].as_array().unwrap();
    assert!(
        events.iter().any(|e| e["cause"] == "txid_hint_mismatch"),
        "{done}"
    );
    assert_eq!(h.pi_calls(&id, "complete").await, 1);
    h.assert_audit_ok().await;
}

async fn complete_with_a_transaction_paying_the_wrong_amount(h: &Harness) {
    let (id, _) = approved_payment(h, "heidi").await;
    // The Pioneer's wallet pays 1 Pi instead of 1.5; Pi links the transaction unverified.
    let txid = h.submit(&id, json!({"amount": "1"})).await;
    h.complete(&id, &txid).await;
    let done = assert_not_completed(h, &id).await;
    assert_eq!(done["payment"]["txid"], txid.as_str(), "{done}");
}

async fn complete_with_the_txid_of_another_payment(h: &Harness) {
    let first = h.purchase("ivan", 1).await;
    let first_txid = h.payment(&first).await["payment"]["txid"]
        .as_str()
        .unwrap()
        .to_string();
    let (id, _) = approved_payment(h, "judy").await;
    let own = h.submit(&id, json!({})).await;
    // Someone replays the first payment's transaction for the second payment: a claim only,
    // bound nowhere; the job binds the transaction Pi linked to the second payment.
    let (status, answer) = h
        .post(
            format!("{}/pi_payment/complete", h.api),
            json!({"paymentId": id, "txid": first_txid}),
        )
        .await;
    assert_eq!(status, 202, "{answer}");
    assert_eq!(answer["state"], "approved", "{answer}");
    // The first payment is untouched.
    assert_eq!(h.payment(&first).await["payment"]["state"], "completed");
    // The real callback changes nothing more; the second payment completes once, with its own.
    h.complete(&id, &own).await;
    let done = h.wait_for_state(&id, "completed").await;
    assert_eq!(done["payment"]["txid"], own.as_str());
    assert_eq!(h.pi_calls(&id, "complete").await, 1);
    assert_eq!(h.count_events("payment.completed", &id).await, 1);
    h.assert_audit_ok().await;
}

// ---------------------------------------------------------------------------------------------
// incomplete

async fn incomplete_with_null_txid_unblocks_the_pioneer(h: &Harness) {
    // Approved, then the Pioneer closed the app without signing.
    let (id, order) = approved_payment(h, "kim").await;
    // At the next login the SDK reports it through onIncompletePaymentFound; the signed-in
    // frontend sends the Pioneer's token (an anonymous one waits ANONYMOUS_CANCEL_GRACE).
    let dto = h.pi_payment(&id).await;
    assert_eq!(dto["transaction"], Value::Null, "{dto}");
    let token = h.token("kim").await;
    let res = h
        .http
        .post(format!("{}/pi_payment/incomplete", h.api))
        .bearer_auth(&token)
        .json(&json!({"payment": dto}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    let done = h.wait_until_settled(&id).await;
    assert_eq!(done["payment"]["state"], "cancelled", "{done}");
    assert!(
        done["payment"]["reason"]
            .as_str()
            .unwrap()
            .contains("no transaction"),
        "{done}"
    );
    assert_eq!(h.pi_calls(&id, "cancel").await, 1);
    let at_pi = h.pi_payment(&id).await;
    assert_eq!(at_pi["status"]["cancelled"], true, "{at_pi}");
    assert_eq!(at_pi["status"]["developer_completed"], false, "{at_pi}");
    // The order was released with the cancellation.
    assert_order_open(h, order["id"].as_str().unwrap()).await;
    assert_eq!(h.count_events("payment.cancelled", &id).await, 1);
    // The Pioneer can pay again, and that payment completes.
    let next = h.purchase("kim", 1).await;
    assert_ne!(next, id);
    h.assert_audit_ok().await;
}

/// The complete callback never arrived (the app was closed after signing); at the next login
/// the SDK reports the payment with its transaction, and that completes it, once.
async fn incomplete_with_a_txid_completes_the_payment(h: &Harness) {
    let (id, order) = approved_payment(h, "mia").await;
    let txid = h.submit(&id, json!({})).await;
    let dto = h.pi_payment(&id).await;
    assert_eq!(dto["transaction"]["txid"], txid.as_str(), "{dto}");
    for _ in 0..3 {
        h.callback("/api/pi_payment", "incomplete", json!({"payment": dto}))
            .await;
    }
    let done = h.wait_for_state(&id, "completed").await;
    assert_eq!(done["payment"]["txid"], txid.as_str());
    assert_eq!(h.pi_calls(&id, "complete").await, 1);
    assert_eq!(h.count_events("payment.completed", &id).await, 1);
    let (_, order) = h
        .get(format!(
            "{}/orders/{}",
            h.api,
            order["id"].as_str().unwrap()
        ))
        .await;
    assert_eq!(order["state"], "paid", "{order}");
    h.assert_audit_ok().await;
}

// ---------------------------------------------------------------------------------------------
// garbage

async fn garbage_bodies_get_400_and_change_nothing(h: &Harness) {
    // One real approved payment, whose state garbage must not move.
    let (id, _) = approved_payment(h, "lee").await;
    let before = h.payment(&id).await;
    let sim_requests = h.sim_log().await["total_requests"].clone();

    let good_id = id.as_str();
    let mut cases: Vec<(&str, String)> = Vec::new();
    for kind in ["approve", "complete", "cancel", "error", "incomplete"] {
        for body in [
            "nope".to_string(),
            "".to_string(),
            "[]".to_string(),
            "null".to_string(),
            "{}".to_string(),
            r#"{"paymentId": 5}"#.to_string(),
            r#"{"paymentId": "a b"}"#.to_string(),
            r#"{"paymentId": null}"#.to_string(),
            format!(r#"{{"paymentId": "{good_id}""#), // truncated JSON
        ] {
            cases.push((kind, body));
        }
    }
    // Per-kind garbage for the payment that exists.
    cases.push(("complete", format!(r#"{{"paymentId": "{good_id}"}}"#)));
    cases.push((
        "complete",
        format!(r#"{{"paymentId": "{good_id}", "txid": "xyz"}}"#),
    ));
    cases.push((
        "complete",
        format!(r#"{{"paymentId": "{good_id}", "txid": 7}}"#),
    ));
    cases.push((
        "complete",
        format!(
            r#"{{"paymentId": "{good_id}", "txid": "{}", "transactionId": "{}"}}"#,
            "a".repeat(64),
            "b".repeat(64)
        ),
    ));
    cases.push((
        "approve",
        format!(r#"{{"paymentId": "{good_id}", "accessToken": 12}}"#),
    ));
    cases.push((
        "incomplete",
        format!(r#"{{"payment": {{"identifier": "{good_id}", "transaction": 5}}}}"#),
    ));
    cases.push(("incomplete", r#"{"payment": "x"}"#.to_string()));

    for (kind, body) in &cases {
        for prefix in ["/pi_payment", "/api/pi_payment"] {
            let (status, answer) = h.post_raw(format!("{}{prefix}/{kind}", h.api), body).await;
            assert_eq!(status, 400, "{prefix}/{kind} {body} -> {answer}");
            assert!(
                answer["error"].is_string() && answer["message"].is_string(),
                "{prefix}/{kind} {body} -> {answer}"
            );
        }
    }
    // Over 64 KiB: 413, before anything is parsed.
    let huge = format!(
        r#"{{"paymentId": "{good_id}", "pad": "{}"}}"#,
        "x".repeat(70 * 1024)
    );
    let (status, _) = h
        .post_raw(format!("{}/pi_payment/approve", h.api), &huge)
        .await;
    assert_eq!(status, 413);

    // Nothing changed: one payment in the ledger, in the same state with the same history,
    // and the service asked Pi nothing.
    assert_eq!(h.ledger_payments().await, 1);
    let after = h.payment(&id).await;
    assert_eq!(after["payment"]["state"], "approved", "{after}");
    assert_eq!(after["events"], before["events"], "{after}");
    assert_eq!(h.sim_log().await["total_requests"], sim_requests);
}
