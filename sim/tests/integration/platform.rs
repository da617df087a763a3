//! The Platform API v2 of pi-sim: every endpoint and every error code, and the race on creates.

use crate::support::platform::{assert_error, id, start};
use pi_sim::amount::STROOPS_PER_PI;
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn server_key_is_checked_first_on_every_key_endpoint() {
    let h = start().await;
    let paths = [
        ("GET", "/v2/payments/nope"),
        ("POST", "/v2/payments"),
        ("POST", "/v2/payments/nope/approve"),
        ("POST", "/v2/payments/nope/complete"),
        ("POST", "/v2/payments/nope/cancel"),
        ("GET", "/v2/payments/incomplete_server_payments"),
        ("GET", "/v2/ads_network/status/nope"),
    ];
    for (method, path) in paths {
        for auth in [None, Some("Key wrong"), Some("Bearer x")] {
            let mut req = h
                .http
                .request(method.parse().unwrap(), h.platform(path))
                .body("{}");
            if let Some(a) = auth {
                req = req.header("Authorization", a);
            }
            let r = req.send().await.unwrap();
            let status = r.status();
            let body: serde_json::Value = r.json().await.unwrap();
            assert_error(&(status, body), 401, "unauthorized");
        }
    }
}

#[tokio::test]
async fn unknown_paths_and_methods_answer_json_errors() {
    let h = start().await;
    assert_error(&h.get("/v2/nothing_here").await, 404, "not_found");
    assert_error(&h.get("/").await, 404, "not_found");
    let r = h.http.delete(h.platform("/v2/me")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::METHOD_NOT_ALLOWED);
    let body: serde_json::Value = r.json().await.unwrap();
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn me_answers_user_dto_and_refuses_unknown_or_expired_tokens() {
    let h = start().await;
    let (status, token) = h
        .control("/_sim/tokens", json!({"uid": "u-me", "username": "alice"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let access = token["access_token"].as_str().unwrap();
    let me = |auth: String| {
        let req = h
            .http
            .get(h.platform("/v2/me"))
            .header("Authorization", auth);
        async move {
            let r = req.send().await.unwrap();
            (r.status(), r.json::<serde_json::Value>().await.unwrap())
        }
    };
    let (status, user) = me(format!("Bearer {access}")).await;
    assert_eq!(status, StatusCode::OK, "{user}");
    assert_eq!(user["uid"], "u-me");
    assert_eq!(user["username"], "alice");
    let scopes = user["credentials"]["scopes"].as_array().unwrap();
    assert!(scopes.contains(&json!("username")));
    assert!(user["credentials"]["valid_until"]["timestamp"].is_i64());
    assert!(user["credentials"]["valid_until"]["iso8601"].is_string());
    assert_eq!(
        user["credentials"]["valid_until"], token["valid_until"],
        "the minted token's validity is what /me reports"
    );

    // Without the username scope there is no username.
    let (_, token) = h
        .control(
            "/_sim/tokens",
            json!({"uid": "u-me", "scopes": ["payments"]}),
        )
        .await;
    let (status, user) = me(format!(
        "Bearer {}",
        token["access_token"].as_str().unwrap()
    ))
    .await;
    assert_eq!(status, StatusCode::OK);
    assert!(user.get("username").is_none(), "{user}");

    // Expired, unknown, missing.
    let (_, token) = h
        .control("/_sim/tokens", json!({"uid": "u-me", "expires_in": -5}))
        .await;
    assert_error(
        &me(format!(
            "Bearer {}",
            token["access_token"].as_str().unwrap()
        ))
        .await,
        401,
        "invalid_token",
    );
    assert_error(&me("Bearer not-a-token".into()).await, 401, "invalid_token");
    assert_error(&me(h.key()).await, 401, "unauthorized");
}

#[tokio::test]
async fn create_a2u_answers_an_approved_payment_dto_with_the_exact_amount() {
    let h = start().await;
    h.sim_control.user("u-new").await.unwrap();
    let (status, text) = h
        .post_text(
            "/v2/payments",
            r#"{"payment": {"amount": 123456789.1234567, "memo": "reward", "metadata": {"big": 12345678901234567890}, "uid": "u-new"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains(r#""amount":123456789.1234567"#), "{text}");
    assert!(
        text.contains("12345678901234567890"),
        "metadata kept exactly: {text}"
    );
    let p: serde_json::Value = serde_json::from_str(&text).unwrap();
    let identifier = id(&p);
    assert_eq!(identifier.len(), 28);
    assert!(identifier.chars().all(|c| c.is_ascii_alphanumeric()));
    assert_eq!(p["user_uid"], "u-new");
    assert_eq!(p["memo"], "reward");
    assert_eq!(p["from_address"], h.sim.app_wallet_public_key.as_str());
    assert_eq!(p["direction"], "app_to_user");
    assert_eq!(p["network"], "Pi Testnet");
    assert!(p["created_at"].as_str().unwrap().ends_with('Z'));
    assert_eq!(
        p["status"],
        json!({"developer_approved": true, "transaction_verified": false,
               "developer_completed": false, "cancelled": false, "user_cancelled": false})
    );
    assert!(p["transaction"].is_null());

    // The unknown uid got a funded wallet, and it is the payment's destination.
    let (_, users) = h.control_get("/_sim/users").await;
    let user = users["users"]
        .as_array()
        .unwrap()
        .iter()
        .find(|u| u["uid"] == "u-new")
        .cloned()
        .expect("user created on demand");
    assert_eq!(p["to_address"], user["wallet_address"]);
    let account = h
        .sim
        .chain()
        .account(user["wallet_address"].as_str().unwrap())
        .expect("wallet exists on chain");
    assert_eq!(account.balance, 1_000 * STROOPS_PER_PI);

    let (status, got) = h.get(&format!("/v2/payments/{identifier}")).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got, p);
}

#[tokio::test]
async fn create_validation_errors_change_nothing() {
    let h = start().await;
    let bad = [
        (
            r#"{"payment": {"amount": 0, "memo": "m", "metadata": {}, "uid": "u"}}"#,
            "invalid_amount",
        ),
        (
            r#"{"payment": {"amount": -1, "memo": "m", "metadata": {}, "uid": "u"}}"#,
            "invalid_amount",
        ),
        (
            r#"{"payment": {"amount": 1.12345678, "memo": "m", "metadata": {}, "uid": "u"}}"#,
            "invalid_amount",
        ),
        (
            r#"{"payment": {"amount": "1", "memo": "m", "metadata": {}, "uid": "u"}}"#,
            "invalid_amount",
        ),
        (
            r#"{"payment": {"amount": null, "memo": "m", "metadata": {}, "uid": "u"}}"#,
            "invalid_amount",
        ),
        (
            r#"{"payment": {"memo": "m", "metadata": {}, "uid": "u"}}"#,
            "invalid_arguments",
        ),
        (
            r#"{"payment": {"amount": 1, "metadata": {}, "uid": "u"}}"#,
            "invalid_arguments",
        ),
        (
            r#"{"payment": {"amount": 1, "memo": "m", "uid": "u"}}"#,
            "invalid_arguments",
        ),
        (
            r#"{"payment": {"amount": 1, "memo": "m", "metadata": {}}}"#,
            "invalid_arguments",
        ),
        (
            r#"{"payment": {"amount": 1, "memo": 5, "metadata": {}, "uid": "u"}}"#,
            "invalid_arguments",
        ),
        (
            r#"{"payment": {"amount": 1, "memo": "m", "metadata": {}, "uid": 7}}"#,
            "invalid_arguments",
        ),
        (
            r#"{"amount": 1, "memo": "m", "metadata": {}, "uid": "u"}"#,
            "invalid_arguments",
        ),
        ("not json", "invalid_arguments"),
        (
            r#"{"payment": {"amount": 1, "memo": "m", "metadata": "x", "uid": "u"}}"#,
            "invalid_metadata",
        ),
        (
            r#"{"payment": {"amount": 1, "memo": "m", "metadata": null, "uid": "u"}}"#,
            "invalid_metadata",
        ),
        (
            r#"{"payment": {"amount": 1, "memo": "m", "metadata": [1], "uid": "u"}}"#,
            "invalid_metadata",
        ),
    ];
    for (body, code) in bad {
        let answer = h.post_raw("/v2/payments", body).await;
        assert_error(&answer, 400, code);
    }
    assert_eq!(h.payment_count().await, 0);
    let (_, users) = h.control_get("/_sim/users").await;
    assert!(
        users["users"].as_array().unwrap().is_empty(),
        "no user created by a refusal"
    );
    // The smallest amount is fine.
    h.a2u("u", "0.0000001").await;
}

#[tokio::test]
async fn ongoing_payment_found_until_completed_or_cancelled() {
    let h = start().await;
    let first = h.a2u("u-ongoing", "2").await;
    let (status, body) = h
        .post_raw(
            "/v2/payments",
            r#"{"payment": {"amount": 3, "memo": "m", "metadata": {}, "uid": "u-ongoing"}}"#,
        )
        .await;
    assert_error(&(status, body.clone()), 400, "ongoing_payment_found");
    assert_eq!(body["payment"], first);
    // Other uids are not blocked.
    h.a2u("u-other", "2").await;
    // Cancelled → a new one is allowed.
    let (status, _) = h
        .post(&format!("/v2/payments/{}/cancel", id(&first)), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    let second = h.a2u("u-ongoing", "2").await;
    // Completed → allowed too.
    let txid = h.pay_a2u(&second, 2 * STROOPS_PER_PI).await;
    let (status, body) = h
        .post(
            &format!("/v2/payments/{}/complete", id(&second)),
            json!({"txid": txid}),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.a2u("u-ongoing", "2").await;
}

#[tokio::test]
async fn ten_parallel_creates_for_one_uid_exactly_one_succeeds() {
    let h = start().await;
    h.sim_control.user("u-race").await.unwrap();
    let body = r#"{"payment": {"amount": 1, "memo": "m", "metadata": {}, "uid": "u-race"}}"#;
    let answers =
        futures::future::join_all((0..10).map(|_| h.post_raw("/v2/payments", body))).await;
    let ok: Vec<_> = answers.iter().filter(|(s, _)| s.is_success()).collect();
    assert_eq!(ok.len(), 1, "{answers:?}");
    for (status, body) in answers.iter().filter(|(s, _)| !s.is_success()) {
        assert_eq!(*status, StatusCode::BAD_REQUEST);
        assert_eq!(body["error"], "ongoing_payment_found");
        assert_eq!(body["payment"]["identifier"], ok[0].1["identifier"]);
    }
    assert_eq!(h.payment_count().await, 1);
}

#[tokio::test]
async fn get_payment_unknown_is_payment_not_found() {
    let h = start().await;
    assert_error(
        &h.get("/v2/payments/doesnotexist").await,
        404,
        "payment_not_found",
    );
    for action in ["approve", "complete", "cancel"] {
        let answer = h
            .post(
                &format!("/v2/payments/doesnotexist/{action}"),
                json!({"txid": "ab"}),
            )
            .await;
        assert_error(&answer, 404, "payment_not_found");
    }
}

#[tokio::test]
async fn approve_rules() {
    let h = start().await;
    let u2a = h.u2a("u-ap", 1.5).await;
    let path = format!("/v2/payments/{}/approve", id(&u2a));
    let (status, approved) = h.post(&path, json!({})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(approved["status"]["developer_approved"], true);
    let (status, body) = h.post(&path, json!({})).await;
    assert_error(&(status, body.clone()), 400, "already_approved");
    assert_eq!(body["payment"], approved);

    // A2U payments are created approved.
    let a2u = h.a2u("u-ap", "1").await;
    let answer = h
        .post(&format!("/v2/payments/{}/approve", id(&a2u)), json!({}))
        .await;
    assert_error(&answer, 400, "already_approved");
    assert_eq!(answer.1["payment"], a2u);

    // Cancelled (by the developer or the Pioneer).
    let other = h.u2a("u-ap", 1.0).await;
    h.post(&format!("/v2/payments/{}/cancel", id(&other)), json!({}))
        .await;
    let answer = h
        .post(&format!("/v2/payments/{}/approve", id(&other)), json!({}))
        .await;
    assert_error(&answer, 400, "cancelled_payment");
    let third = h.u2a("u-ap", 1.0).await;
    h.control(&format!("/_sim/u2a/{}/user_cancel", id(&third)), json!({}))
        .await;
    let answer = h
        .post(&format!("/v2/payments/{}/approve", id(&third)), json!({}))
        .await;
    assert_error(&answer, 400, "cancelled_payment");
    let (_, after) = h.get(&format!("/v2/payments/{}", id(&third))).await;
    assert_eq!(after["status"]["developer_approved"], false);
}

#[tokio::test]
async fn complete_u2a_rules_in_order() {
    let h = start().await;
    let payment = h.u2a("u-c", 2.5).await;
    let pid = id(&payment);
    let path = format!("/v2/payments/{pid}/complete");
    let complete = |body| h.post(&path, body);
    assert_error(&complete(json!({})).await, 400, "missing_txid");
    assert_error(&complete(json!({"txid": ""})).await, 400, "missing_txid");
    // Nothing linked yet.
    assert_error(&complete(json!({"txid": "ab"})).await, 400, "txid_mismatch");

    h.post(&format!("/v2/payments/{pid}/approve"), json!({}))
        .await;
    let (_, submitted) = h
        .control(&format!("/_sim/u2a/{pid}/submit"), json!({}))
        .await;
    let txid = submitted["txid"].as_str().unwrap().to_owned();
    let p = &submitted["payment"];
    assert_eq!(p["transaction"]["txid"], txid.as_str());
    assert_eq!(p["transaction"]["verified"], true);
    assert_eq!(
        p["transaction"]["_link"],
        format!("{}/transactions/{txid}", h.sim.horizon_url)
    );
    assert_eq!(p["status"]["transaction_verified"], true);

    assert_error(
        &complete(json!({"txid": "0".repeat(64)})).await,
        400,
        "txid_mismatch",
    );
    let (status, done) = complete(json!({"txid": txid})).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"]["developer_completed"], true);
    assert_error(
        &complete(json!({"txid": txid})).await,
        400,
        "already_completed",
    );
    // missing_txid comes first even when completed.
    assert_error(&complete(json!({})).await, 400, "missing_txid");
    // Cancel after completion.
    let answer = h
        .post(&format!("/v2/payments/{pid}/cancel"), json!({}))
        .await;
    assert_error(&answer, 400, "already_completed");
}

#[tokio::test]
async fn complete_u2a_not_verified_when_the_linked_tx_pays_wrong() {
    let h = start().await;
    let payment = h.u2a("u-nv", 2.0).await;
    let pid = id(&payment);
    h.post(&format!("/v2/payments/{pid}/approve"), json!({}))
        .await;
    let (status, submitted) = h
        .control(&format!("/_sim/u2a/{pid}/submit"), json!({"amount": 1.5}))
        .await;
    assert_eq!(status, StatusCode::OK, "{submitted}");
    assert_eq!(submitted["payment"]["transaction"]["verified"], false);
    assert_eq!(
        submitted["payment"]["status"]["transaction_verified"],
        false
    );
    let txid = submitted["txid"].as_str().unwrap();
    let answer = h
        .post(
            &format!("/v2/payments/{pid}/complete"),
            json!({"txid": txid}),
        )
        .await;
    assert_error(&answer, 400, "not_verified");
    let (_, after) = h.get(&format!("/v2/payments/{pid}")).await;
    assert_eq!(after["status"]["developer_completed"], false);
    // A U2A payment with a linked tx cannot be cancelled.
    let answer = h
        .post(&format!("/v2/payments/{pid}/cancel"), json!({}))
        .await;
    assert_error(&answer, 400, "payment_tx_present");
}

#[tokio::test]
async fn complete_a2u_verifies_the_transaction_on_chain() {
    let h = start().await;
    let payment = h.a2u("u-a2u", "3.5").await;
    let pid = id(&payment);
    let amount = 35_000_000;
    let to = payment["to_address"].as_str().unwrap().to_owned();
    let app = h.app_wallet();
    let path = format!("/v2/payments/{pid}/complete");
    let complete = |txid: String| h.post(&path, json!({ "txid": txid }));
    let expect_verification = |answer: crate::support::platform::Answer, reason: &str| {
        assert_error(&answer, 400, "verification_failed");
        assert_eq!(answer.1["verification_error"], reason, "{}", answer.1);
    };

    expect_verification(complete("f".repeat(64)).await, "transaction_not_found");
    // In-ledger failure: more than the app wallet holds.
    let (failed, ok) = h
        .chain_pay(&app, &to, 2_000_000 * STROOPS_PER_PI, &pid)
        .await;
    assert!(!ok);
    expect_verification(complete(failed).await, "transaction_failed");
    let (wrong_memo, _) = h.chain_pay(&app, &to, amount, "something else").await;
    expect_verification(
        complete(wrong_memo).await,
        "tx_memo_payment_identifier_mismatch",
    );
    let stranger = pi_sim::keys::Keypair::random();
    h.sim
        .chain()
        .fund_account(&stranger.public_key(), 100 * STROOPS_PER_PI);
    let (wrong_dest, _) = h
        .chain_pay(&app, &stranger.public_key(), amount, &pid)
        .await;
    expect_verification(complete(wrong_dest).await, "destination_mismatch");
    let (wrong_source, _) = h.chain_pay(&stranger, &to, amount, &pid).await;
    expect_verification(complete(wrong_source).await, "source_mismatch");
    let (wrong_amount, _) = h.chain_pay(&app, &to, amount + 1, &pid).await;
    expect_verification(complete(wrong_amount).await, "amount_mismatch");

    // None of that changed the payment.
    let (_, after) = h.get(&format!("/v2/payments/{pid}")).await;
    assert_eq!(after, payment);

    let good = h.pay_a2u(&payment, amount).await;
    let (status, done) = complete(good.clone()).await;
    assert_eq!(status, StatusCode::OK, "{done}");
    assert_eq!(done["status"]["transaction_verified"], true);
    assert_eq!(done["status"]["developer_completed"], true);
    assert_eq!(
        done["transaction"],
        json!({"txid": good, "verified": true,
               "_link": format!("{}/transactions/{good}", h.sim.horizon_url)})
    );
    assert_error(&complete(good.clone()).await, 400, "already_completed");

    // The same txid for another payment of the same user.
    let next = h.a2u("u-a2u", "3.5").await;
    let answer = h
        .post(
            &format!("/v2/payments/{}/complete", id(&next)),
            json!({"txid": good}),
        )
        .await;
    expect_verification(answer, "payment_already_linked_with_a_tx");
}

#[tokio::test]
async fn cancel_rules_and_incomplete_server_payments() {
    let h = start().await;
    let open = h.a2u("u-inc-1", "1").await;
    let to_cancel = h.a2u("u-inc-2", "1").await;
    let to_complete = h.a2u("u-inc-3", "1").await;
    h.u2a("u-inc-4", 1.0).await;

    let (status, cancelled) = h
        .post(
            &format!("/v2/payments/{}/cancel", id(&to_cancel)),
            json!({}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"]["cancelled"], true);
    let again = h
        .post(
            &format!("/v2/payments/{}/cancel", id(&to_cancel)),
            json!({}),
        )
        .await;
    assert_error(&again, 400, "cancelled_payment");
    let complete_cancelled = h
        .post(
            &format!("/v2/payments/{}/complete", id(&to_cancel)),
            json!({"txid": "ab"}),
        )
        .await;
    assert_error(&complete_cancelled, 400, "cancelled_payment");

    let txid = h.pay_a2u(&to_complete, STROOPS_PER_PI).await;
    h.post(
        &format!("/v2/payments/{}/complete", id(&to_complete)),
        json!({"txid": txid}),
    )
    .await;

    let (status, body) = h.get("/v2/payments/incomplete_server_payments").await;
    assert_eq!(status, StatusCode::OK);
    let list = body["incomplete_server_payments"].as_array().unwrap();
    assert_eq!(list.len(), 1, "{body}");
    assert_eq!(list[0], open);
}

#[tokio::test]
async fn ads_status() {
    let h = start().await;
    assert_error(
        &h.get("/v2/ads_network/status/ad-1").await,
        404,
        "ad_not_found",
    );
    let (status, ad) = h
        .control("/_sim/ads", json!({"ad_id": "ad-1", "status": null}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(ad["identifier"], "ad-1");
    let (status, got) = h.get("/v2/ads_network/status/ad-1").await;
    assert_eq!(status, StatusCode::OK);
    assert!(got["mediator_ack_status"].is_null());
    assert!(got["mediator_granted_at"].is_null());
    assert!(got["mediator_revoked_at"].is_null());
    h.control("/_sim/ads", json!({"ad_id": "ad-1", "status": "granted"}))
        .await;
    let (_, got) = h.get("/v2/ads_network/status/ad-1").await;
    assert_eq!(got["mediator_ack_status"], "granted");
    assert!(got["mediator_granted_at"].is_string());
    h.control("/_sim/ads", json!({"ad_id": "ad-1", "status": "revoked"}))
        .await;
    let (_, got) = h.get("/v2/ads_network/status/ad-1").await;
    assert_eq!(got["mediator_ack_status"], "revoked");
    assert!(got["mediator_revoked_at"].is_string());
    // A generated id.
    let (_, ad) = h.control("/_sim/ads", json!({"status": "failed"})).await;
    let generated = ad["identifier"].as_str().unwrap();
    let (_, got) = h.get(&format!("/v2/ads_network/status/{generated}")).await;
    assert_eq!(got["mediator_ack_status"], "failed");
}

#[tokio::test]
async fn a2u_only_to_pioneers_of_the_app_who_granted_wallet_address() {
    let h = start().await;
    let create = |uid: &str| {
        format!(r#"{{"payment": {{"amount": 1, "memo": "m", "metadata": {{}}, "uid": "{uid}"}}}}"#)
    };
    // A uid that never used the app.
    let answer = h.post_raw("/v2/payments", &create("u-stranger")).await;
    assert_error(&answer, 400, "user_not_found");
    // A Pioneer who signed in without the wallet_address scope.
    let request = pi_sim::control_client::TokenRequest {
        scopes: Some(vec!["username".into(), "payments".into()]),
        ..pi_sim::control_client::TokenRequest::for_uid("u-unscoped")
    };
    h.sim_control.mint_token(&request).await.unwrap();
    let answer = h.post_raw("/v2/payments", &create("u-unscoped")).await;
    assert_error(&answer, 401, "missing_scope");
    assert_eq!(h.payment_count().await, 0);
    // Signing in again with it is enough.
    h.sim_control
        .mint_token(&pi_sim::control_client::TokenRequest::for_uid("u-unscoped"))
        .await
        .unwrap();
    h.a2u("u-unscoped", "1").await;
}
