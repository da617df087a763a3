//! End to end: strangers cannot turn the public callbacks against the app (issue 17, part A).
//! The wrapper's token-less callbacks still complete payments; a token-less incomplete does
//! not cancel a just-approved payment (its Pioneer's token does); a made-up txid binds nothing;
//! a flood of approve callbacks from one client with one bogus token is throttled and spends
//! almost none of the app's Pi budget while other clients' payments go through.

use crate::support::{DEADLINE, Harness, Options, Stack};
use pi_payments_core::ids::random_alnum;
use serde_json::{Value, json};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The service behind a trusted proxy (tests are many clients through `X-Forwarded-For`).
async fn behind_proxy(client_limit: Option<(u32, u32)>, grace: Option<u32>) -> Harness {
    let options = Options {
        client_limit,
        trust_proxy: true,
        anonymous_cancel_grace: grace,
        ..Options::default()
    };
    Harness::start(Stack::Embedded, options).await.unwrap()
}

/// `POST {path}` as client `ip` (its `X-Forwarded-For`); status and body.
async fn post_as(h: &Harness, ip: &str, path: &str, body: &Value) -> (u16, Value) {
    let res = h
        .http
        .post(format!("{}{path}", h.api))
        .header("x-forwarded-for", ip)
        .json(body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

/// History causes of a payment.
async fn causes(h: &Harness, id: &str) -> Vec<String> {
    let body = h.payment(id).await;
    body["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["cause"].as_str().unwrap_or("").to_string())
        .collect()
}

/// A paid-for coffee order approved through the callbacks by `uid`; the payment id.
async fn approved_payment(h: &Harness, uid: &str) -> String {
    let order = h.order("coffee").await;
    let id = h
        .create_payment(uid, order["amount"].clone(), order["metadata"].clone())
        .await;
    let token = h.token(uid).await;
    h.approve(&id, &token).await;
    h.wait_for_state(&id, "approved").await;
    id
}

/// Poll (up to [`DEADLINE`]) until `check` holds on the payment body.
async fn wait_until(h: &Harness, id: &str, what: &str, check: impl Fn(&Value) -> bool) -> Value {
    let start = Instant::now();
    loop {
        let body = h.payment(id).await;
        if check(&body) {
            return body;
        }
        assert!(start.elapsed() < DEADLINE, "{what} never happened: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn anonymous_incomplete_cancels_only_for_the_pioneer_or_after_the_grace() {
    let h = behind_proxy(None, None).await;
    // Anonymous (no token, no session), just approved: nothing happens.
    let id = approved_payment(&h, "pia").await;
    let body = json!({"paymentId": id, "transactionId": null});
    h.callback("/pi_payment", "incomplete", body.clone()).await;
    wait_until(&h, &id, "the anonymous incomplete's verdict", |b| {
        b["events"].as_array().unwrap().iter().any(|e| {
            e["cause"] == "incomplete_callback"
                && e["detail"]
                    .as_str()
                    .unwrap_or("")
                    .contains("only its Pioneer")
        })
    })
    .await;
    assert_eq!(h.payment(&id).await["payment"]["state"], "approved");
    assert_eq!(h.pi_payment(&id).await["status"]["cancelled"], false);
    assert_eq!(h.pi_calls(&id, "cancel").await, 0);

    // The Pioneer's own token (Bearer, as pi-sdk-lite sends it): cancelled at once.
    let id = approved_payment(&h, "pib").await;
    let token = h.token("pib").await;
    let res = h
        .http
        .post(format!("{}/pi_payment/incomplete", h.api))
        .bearer_auth(&token)
        .json(&json!({"paymentId": id, "transactionId": null}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202);
    h.wait_for_state(&id, "cancelled").await;
    assert_eq!(h.pi_payment(&id).await["status"]["cancelled"], true);
    h.stop().await;

    // A payment that waited out ANONYMOUS_CANCEL_GRACE: the anonymous callback cancels it.
    let h = behind_proxy(None, Some(1)).await;
    let id = approved_payment(&h, "pic").await;
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let body = json!({"paymentId": id, "transactionId": null});
    h.callback("/pi_payment", "incomplete", body).await;
    h.wait_for_state(&id, "cancelled").await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_made_up_txid_binds_nothing_and_the_real_payment_completes_token_less() {
    let h = behind_proxy(None, None).await;
    let id = approved_payment(&h, "pid").await;
    let fake = "deadbeef".repeat(8);
    let answer = h.complete(&id, &fake).await;
    assert_eq!(answer["state"], "approved", "{answer}");
    // The stranger's complete job finds no transaction at Pi and gives up quietly.
    wait_until(&h, &id, "the made-up complete to be dropped", |b| {
        b["events"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["cause"] == "complete_callback_unconfirmed")
    })
    .await;
    let now = h.payment(&id).await;
    assert_eq!(now["payment"]["state"], "approved", "{now}");
    assert_eq!(now["payment"]["txid"], Value::Null, "{now}");

    // The Pioneer pays; the wrapper's token-less complete (re-sent as the SDK does) completes.
    let real = h.submit(&id, json!({})).await;
    let start = Instant::now();
    loop {
        h.complete(&id, &real).await;
        let body = h.payment(&id).await;
        if body["payment"]["state"] == "completed" {
            assert_eq!(body["payment"]["txid"], real.as_str());
            break;
        }
        assert!(start.elapsed() < DEADLINE, "never completed: {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    assert!(!causes(&h, &id).await.contains(&"gave_up".to_string()));
    assert_eq!(h.count_events("payment.completed", &id).await, 1);
    assert_eq!(h.count_events("payment.needs_attention", &id).await, 0);
    h.assert_audit_ok().await;
    h.stop().await;
}

/// Platform API calls pi-sim served, all endpoints.
async fn platform_calls(h: &Harness) -> u64 {
    let log = h.sim_log().await;
    [
        "me",
        "create_payment",
        "incomplete_server_payments",
        "get_payment",
        "approve",
        "complete",
        "cancel",
        "ads_status",
        "platform_unknown",
    ]
    .iter()
    .map(|e| log["endpoints"][e]["calls"].as_u64().unwrap_or(0))
    .sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_from_one_client_is_throttled_and_spends_almost_no_pi_budget() {
    // The shipped per-client default (5/s, bursts of 50).
    let h = Arc::new(behind_proxy(Some((5, 50)), None).await);
    let throttled = Arc::new(AtomicUsize::new(0));
    let accepted = Arc::new(AtomicUsize::new(0));
    let next = Arc::new(AtomicUsize::new(0));
    const FLOOD: usize = 3000;

    // 16 at a time from one client, each a random well-formed id, all one bogus token.
    let mut flood = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let (h, throttled, accepted, next) =
            (h.clone(), throttled.clone(), accepted.clone(), next.clone());
        flood.spawn(async move {
            while next.fetch_add(1, Ordering::Relaxed) < FLOOD {
                let body =
                    json!({"paymentId": random_alnum(28), "accessToken": "bogus-flood-token"});
                let res = h
                    .http
                    .post(format!("{}/pi_payment/approve", h.api))
                    .header("x-forwarded-for", "203.0.113.66")
                    .json(&body)
                    .send()
                    .await
                    .unwrap();
                match res.status().as_u16() {
                    429 => {
                        assert!(res.headers().contains_key("retry-after"));
                        let answer: Value = res.json().await.unwrap();
                        assert_eq!(answer["error"], "too_many_requests", "{answer}");
                        throttled.fetch_add(1, Ordering::Relaxed);
                    }
                    202 => {
                        accepted.fetch_add(1, Ordering::Relaxed);
                    }
                    other => panic!("flood callback answered {other}"),
                }
            }
        });
    }

    // Meanwhile, 10 real payments, each from its own client.
    let started = Instant::now();
    let mut real = tokio::task::JoinSet::new();
    for i in 0..10 {
        let h = h.clone();
        real.spawn(async move {
            let ip = format!("198.51.100.{}", i + 1);
            let uid = format!("flood-bystander-{i}");
            let (status, order) =
                post_as(&h, &ip, "/orders", &json!({"productId": "coffee"})).await;
            assert_eq!(status, 201, "{order}");
            let id = h
                .create_payment(&uid, order["amount"].clone(), order["metadata"].clone())
                .await;
            let token = h.token(&uid).await;
            let body = json!({"paymentId": id, "accessToken": token});
            let (status, answer) = post_as(&h, &ip, "/pi_payment/approve", &body).await;
            assert_eq!(status, 202, "{answer}");
            h.wait_for_state(&id, "approved").await;
        });
    }
    while let Some(done) = real.join_next().await {
        done.unwrap();
    }
    let real_done = started.elapsed();
    while let Some(done) = flood.join_next().await {
        done.unwrap();
    }
    assert!(
        real_done < Duration::from_secs(60),
        "the 10 real payments took {real_done:?}"
    );
    let throttled = throttled.load(Ordering::Relaxed);
    let accepted = accepted.load(Ordering::Relaxed);
    eprintln!(
        "flood: {throttled} throttled, {accepted} accepted; real payments approved in {real_done:?}"
    );
    assert!(throttled >= 2000, "only {throttled} of {FLOOD} throttled");
    let calls = platform_calls(&h).await;
    eprintln!("Pi Platform calls in all: {calls}");
    assert!(calls <= 120, "{calls} Pi calls");
    // No flood payment was flagged for a person.
    let flagged = h
        .events()
        .await
        .iter()
        .filter(|e| e["type"] == "payment.needs_attention")
        .count();
    assert_eq!(flagged, 0);
    Arc::into_inner(h).unwrap().stop().await;
}
