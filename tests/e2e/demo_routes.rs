//! `/demo` without a browser: it exists only beside the built-in simulator, and its simulator
//! proxy keeps each simulated Pioneer to their own payments.

use crate::support::{Harness, Options, RemotePi, Stack};
use serde_json::{Value, json};

async fn call(
    h: &Harness,
    method: &str,
    path: &str,
    token: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut request = h
        .http
        .request(method.parse().unwrap(), format!("{}{path}", h.api));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    if let Some(body) = body {
        request = request.json(&body);
    }
    let answer = request.send().await.unwrap();
    let status = answer.status().as_u16();
    (status, answer.json().await.unwrap_or(Value::Null))
}

async fn token(h: &Harness, uid: &str) -> String {
    let (status, auth) = call(
        h,
        "POST",
        "/demo/sim/authenticate",
        None,
        Some(json!({ "uid": uid, "username": uid, "scopes": ["username", "payments"] })),
    )
    .await;
    assert_eq!(status, 200, "{auth}");
    auth["access_token"].as_str().unwrap().to_string()
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_is_served_in_embedded_mode_only() {
    let h = Harness::start(Stack::Embedded, Options::default())
        .await
        .unwrap();
    let page = h.http.get(format!("{}/demo", h.api)).send().await.unwrap();
    assert_eq!(page.status(), 200);
    assert!(
        page.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html"),
        "{:?}",
        page.headers()
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/demo/pi-sim-sdk.js") && html.contains("/demo/store.js"));
    for asset in ["/demo/store.js", "/demo/pi-sim-sdk.js", "/demo/style.css"] {
        let answer = h
            .http
            .get(format!("{}{asset}", h.api))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 200, "{asset}");
    }
    let (status, products) = call(&h, "GET", "/demo/products", None, None).await;
    assert_eq!(status, 200);
    assert_eq!(products["products"][0]["id"], "coffee", "{products}");
    assert_eq!(products["products"][0]["price"], "1.5", "{products}");
    h.stop().await;

    // Against a Pi reached by URL and key there is no simulated wallet: no /demo at all.
    let sim = pi_sim::start(pi_sim::SimConfig::default()).await.unwrap();
    let h = Harness::start(
        Stack::Embedded,
        Options {
            remote_pi: Some(RemotePi::of(&sim)),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    for path in ["/demo", "/demo/store.js", "/demo/products"] {
        let (status, _) = call(&h, "GET", path, None, None).await;
        assert_eq!(status, 404, "{path}");
    }
    let (status, _) = call(
        &h,
        "POST",
        "/demo/sim/authenticate",
        None,
        Some(json!({"uid": "x"})),
    )
    .await;
    assert_eq!(status, 404);
    h.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn the_simulator_proxy_keeps_pioneers_to_their_own_payments() {
    let h = Harness::start(Stack::Embedded, Options::default())
        .await
        .unwrap();
    let alice = token(&h, "demo-alice").await;
    let bob = token(&h, "demo-bob").await;

    // No token, or a made-up one: refused before the simulator is asked anything.
    let (status, answer) = call(
        &h,
        "POST",
        "/demo/sim/payments",
        None,
        Some(json!({"amount": 1})),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    let (status, _) = call(&h, "GET", "/demo/sim/incomplete", Some("not-a-token"), None).await;
    assert_eq!(status, 401);

    let (status, payment) = call(
        &h,
        "POST",
        "/demo/sim/payments",
        Some(&alice),
        Some(json!({ "amount": 1.2345678, "memo": "demo", "metadata": {} })),
    )
    .await;
    assert_eq!(status, 200, "{payment}");
    assert_eq!(payment["user_uid"], "demo-alice");
    let id = payment["identifier"].as_str().unwrap().to_string();
    let (status, mine) = call(
        &h,
        "GET",
        &format!("/demo/sim/payments/{id}"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(mine["identifier"], id.as_str());
    assert_eq!(mine["amount"], json!(1.2345678));

    // Bob can neither see Alice's payment nor sign or cancel it.
    for (method, path) in [
        ("GET", format!("/demo/sim/payments/{id}")),
        ("POST", format!("/demo/sim/payments/{id}/submit")),
        ("POST", format!("/demo/sim/payments/{id}/user_cancel")),
    ] {
        let (status, answer) = call(&h, method, &path, Some(&bob), None).await;
        assert_eq!(status, 404, "{method} {path}: {answer}");
    }
    // Ids are checked before they reach a simulator URL.
    let (status, _) = call(
        &h,
        "GET",
        "/demo/sim/payments/..%2F_sim%2Freset",
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 400);

    // Not approved by the app yet: the wallet cannot sign, and nothing is incomplete.
    let (status, answer) = call(
        &h,
        "POST",
        &format!("/demo/sim/payments/{id}/submit"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    let (_, incomplete) = call(&h, "GET", "/demo/sim/incomplete", Some(&alice), None).await;
    assert_eq!(incomplete["payment"], Value::Null, "{incomplete}");

    // Approved by the app (its approve callback; a worker approves at Pi) and signed: Alice has
    // an incomplete payment, Bob does not.
    let (status, answer) = call(
        &h,
        "POST",
        "/pi_payment/approve",
        None,
        Some(json!({ "paymentId": id, "accessToken": alice })),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let deadline = std::time::Instant::now() + crate::support::DEADLINE;
    loop {
        let (_, p) = call(
            &h,
            "GET",
            &format!("/demo/sim/payments/{id}"),
            Some(&alice),
            None,
        )
        .await;
        if p["status"]["developer_approved"] == true {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "never approved: {p}");
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let (status, signed) = call(
        &h,
        "POST",
        &format!("/demo/sim/payments/{id}/submit"),
        Some(&alice),
        None,
    )
    .await;
    assert_eq!(status, 200, "{signed}");
    let (_, incomplete) = call(&h, "GET", "/demo/sim/incomplete", Some(&alice), None).await;
    assert_eq!(
        incomplete["payment"]["identifier"],
        id.as_str(),
        "{incomplete}"
    );
    assert_eq!(
        incomplete["payment"]["transaction"]["txid"], signed["txid"],
        "{incomplete}"
    );
    let (_, incomplete) = call(&h, "GET", "/demo/sim/incomplete", Some(&bob), None).await;
    assert_eq!(incomplete["payment"], Value::Null);

    // A rewarded ad, watched to the end.
    let (status, ad) = call(&h, "POST", "/demo/sim/ads", Some(&alice), None).await;
    assert_eq!(status, 200, "{ad}");
    assert_eq!(ad["mediator_ack_status"], "granted");
    h.stop().await;
}
