//! The control API under /_sim: users, tokens, U2A creation/submission/cancel, faults, log,
//! payments, reset, info.

use crate::support::platform::{assert_error, id, start};
use reqwest::StatusCode;
use serde_json::json;

#[tokio::test]
async fn info_and_users() {
    let h = start().await;
    let (status, info) = h.control_get("/_sim/info").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(info["platform_url"], h.sim.platform_url.as_str());
    assert_eq!(info["horizon_url"], h.sim.horizon_url.as_str());
    assert_eq!(info["api_key"], h.sim.api_key.as_str());
    assert_eq!(
        info["app_wallet_public_key"],
        h.sim.app_wallet_public_key.as_str()
    );
    assert_eq!(info["network_passphrase"], "Pi Testnet");
    assert!(info["ledger"].is_u64());

    let (status, user) = h
        .control("/_sim/users", json!({"uid": "u1", "username": "bob"}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(user["uid"], "u1");
    assert_eq!(user["username"], "bob");
    let wallet = user["wallet_address"].as_str().unwrap();
    let seed = user["wallet_seed"].as_str().unwrap();
    assert_eq!(
        pi_sim::keys::Keypair::from_seed(seed).unwrap().public_key(),
        wallet
    );
    assert!(
        h.sim.chain().account(wallet).is_some(),
        "wallet funded on chain"
    );
    // Idempotent per uid: the same wallet.
    let (_, again) = h.control("/_sim/users", json!({"uid": "u1"})).await;
    assert_eq!(again["wallet_address"], wallet);
    assert_eq!(again["username"], "bob");
    assert_error(
        &h.control("/_sim/users", json!({})).await,
        400,
        "invalid_arguments",
    );
    assert_error(
        &h.control("/_sim/users", json!({"uid": ""})).await,
        400,
        "invalid_arguments",
    );
}

#[tokio::test]
async fn tokens() {
    let h = start().await;
    let (status, token) = h
        .control(
            "/_sim/tokens",
            json!({"uid": "u-t", "username": "carol", "scopes": ["username"], "expires_in": 60}),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(token["uid"], "u-t");
    assert_eq!(token["username"], "carol");
    assert!(token["access_token"].as_str().unwrap().len() >= 32);
    let until = token["valid_until"]["timestamp"].as_i64().unwrap();
    let now = chrono::Utc::now().timestamp();
    assert!(until > now && until <= now + 61);
    assert_error(
        &h.control("/_sim/tokens", json!({"username": "x"})).await,
        400,
        "invalid_arguments",
    );
}

#[tokio::test]
async fn u2a_create_submit_and_user_cancel() {
    let h = start().await;
    let (status, text) = {
        let r = h
            .http
            .post(h.platform("/_sim/u2a"))
            .body(r#"{"uid": "u-p", "amount": 0.1234567, "memo": "buy", "metadata": {"orderId": "o1"}}"#)
            .send()
            .await
            .unwrap();
        (r.status(), r.text().await.unwrap())
    };
    assert_eq!(status, StatusCode::OK, "{text}");
    assert!(text.contains(r#""amount":0.1234567"#), "{text}");
    let payment: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(payment["direction"], "user_to_app");
    assert_eq!(payment["to_address"], h.sim.app_wallet_public_key.as_str());
    assert_eq!(payment["status"]["developer_approved"], false);
    let pid = id(&payment);

    assert_error(
        &h.control("/_sim/u2a", json!({"uid": "u-p", "amount": 0}))
            .await,
        400,
        "invalid_amount",
    );
    assert_error(
        &h.control(
            "/_sim/u2a",
            json!({"uid": "u-p", "amount": 1, "metadata": 3}),
        )
        .await,
        400,
        "invalid_metadata",
    );
    assert_error(
        &h.control("/_sim/u2a", json!({"amount": 1})).await,
        400,
        "invalid_arguments",
    );

    let submit = format!("/_sim/u2a/{pid}/submit");
    assert_error(&h.control(&submit, json!({})).await, 400, "not_approved");
    assert_error(
        &h.control("/_sim/u2a/nope/submit", json!({})).await,
        404,
        "payment_not_found",
    );
    h.post(&format!("/v2/payments/{pid}/approve"), json!({}))
        .await;
    let (status, answer) = h.control(&submit, json!({})).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let txid = answer["txid"].as_str().unwrap();
    let tx = h.sim.chain().transaction(txid).expect("tx on chain");
    assert!(tx.successful);
    assert_eq!(tx.memo.as_deref(), Some(pid.as_str()));
    assert_eq!(tx.source_account, payment["from_address"].as_str().unwrap());
    assert_eq!(tx.ops[0].to, h.sim.app_wallet_public_key);
    assert_eq!(tx.ops[0].amount, 1_234_567);
    // Second submission: a tx is already linked.
    assert_error(
        &h.control(&submit, json!({})).await,
        400,
        "payment_tx_present",
    );
    // The Pioneer cannot cancel after submitting.
    assert_error(
        &h.control(&format!("/_sim/u2a/{pid}/user_cancel"), json!({}))
            .await,
        400,
        "payment_tx_present",
    );

    // user_cancel on a fresh one.
    let other = h.u2a("u-p", 1.0).await;
    let (status, cancelled) = h
        .control(&format!("/_sim/u2a/{}/user_cancel", id(&other)), json!({}))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(cancelled["status"]["user_cancelled"], true);
    assert_error(
        &h.control(&format!("/_sim/u2a/{}/user_cancel", id(&other)), json!({}))
            .await,
        400,
        "cancelled_payment",
    );
    // Not for A2U payments.
    let a2u = h.a2u("u-p", "1").await;
    assert_error(
        &h.control(&format!("/_sim/u2a/{}/user_cancel", id(&a2u)), json!({}))
            .await,
        400,
        "invalid_arguments",
    );
}

#[tokio::test]
async fn submit_tamper_overrides() {
    let h = start().await;
    for (tamper, field) in [
        (json!({"memo": "not the id"}), "memo"),
        (json!({"to": "OTHER"}), "to"),
        (json!({"amount": "0.5"}), "amount"),
    ] {
        let payment = h.u2a("u-tamper", 1.0).await;
        let pid = id(&payment);
        h.post(&format!("/v2/payments/{pid}/approve"), json!({}))
            .await;
        let tamper = if field == "to" {
            let (_, other) = h.control("/_sim/users", json!({"uid": "someone"})).await;
            json!({"to": other["wallet_address"]})
        } else {
            tamper
        };
        let (status, answer) = h.control(&format!("/_sim/u2a/{pid}/submit"), tamper).await;
        assert_eq!(status, StatusCode::OK, "{field}: {answer}");
        assert_eq!(
            answer["payment"]["transaction"]["verified"], false,
            "{field}"
        );
        assert_eq!(
            answer["payment"]["status"]["transaction_verified"], false,
            "{field}"
        );
    }
}

#[tokio::test]
async fn faults_get_and_partial_update() {
    let h = start().await;
    let (status, knobs) = h.control_get("/_sim/faults").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(knobs["targets"], json!(["platform"]));
    assert_eq!(knobs["seed"], 42);
    assert!(knobs["rate_limit"].is_null());
    let knobs = h
        .faults(json!({"rate_limit": 5, "endpoints": ["me", "approve"], "latency_ms": 3}))
        .await;
    assert_eq!(knobs["rate_limit"], 5);
    assert_eq!(knobs["latency_ms"], 3);
    assert_eq!(knobs["fail_rate"], 0.0);
    let knobs = h
        .faults(json!({"rate_limit": null, "max_tx_per_ledger": 2, "ledger_seconds": 0.0}))
        .await;
    assert!(knobs["rate_limit"].is_null());
    assert_eq!(
        knobs["endpoints"],
        json!(["me", "approve"]),
        "untouched by a partial update"
    );
    assert_eq!(knobs["max_tx_per_ledger"], 2);
    assert_eq!(
        h.sim.chain().config().max_tx_per_ledger,
        Some(2),
        "forwarded to the chain"
    );

    for bad in [
        json!({"fail_rate": 1.5}),
        json!({"endpoints": ["nope"]}),
        json!({"targets": ["moon"]}),
        json!({"unknown_knob": 1}),
        json!({"ledger_seconds": -1.0}),
    ] {
        assert_error(
            &h.control("/_sim/faults", bad).await,
            400,
            "invalid_arguments",
        );
    }
    let (_, after) = h.control_get("/_sim/faults").await;
    assert_eq!(after["fail_rate"], 0.0, "a refused update changes nothing");
}

#[tokio::test]
async fn payments_log_and_reset() {
    let h = start().await;
    let a2u = h.a2u("u-log", "1").await;
    h.get(&format!("/v2/payments/{}", id(&a2u))).await;
    h.get("/v2/payments/incomplete_server_payments").await;
    let (_, list) = h.control_get("/_sim/payments").await;
    assert_eq!(list["payments"].as_array().unwrap().len(), 1);
    assert_eq!(list["payments"][0], a2u);

    let (_, log) = h.control_get("/_sim/log?requests=1").await;
    assert_eq!(log["total_requests"], 3, "{log}");
    assert_eq!(log["totals"]["calls"], 3);
    assert_eq!(log["endpoints"]["create_payment"]["calls"], 1);
    assert_eq!(log["endpoints"]["create_payment"]["status"]["200"], 1);
    assert_eq!(log["endpoints"]["get_payment"]["calls"], 1);
    let per_payment = &log["payments"][id(&a2u)];
    assert_eq!(per_payment["calls"], 2, "{log}");
    assert_eq!(per_payment["create_payment"], 1);
    assert_eq!(per_payment["get_payment"], 1);
    assert!(log["max_rate_1s"]["platform"].as_u64().unwrap() >= 1);
    assert_eq!(log["max_rate_1s"]["horizon"], 0);
    assert!(
        log["max_rate_1s_per_key"][format!("platform:{}", h.key())]
            .as_u64()
            .unwrap()
            >= 1
    );
    let requests = log["requests"].as_array().unwrap();
    assert_eq!(requests.len(), 3);
    assert_eq!(requests[0]["method"], "POST");
    assert_eq!(requests[0]["path"], "/v2/payments");
    assert_eq!(requests[0]["endpoint"], "create_payment");
    assert_eq!(requests[0]["status"], 200);
    assert!(requests[0]["at"].is_string());
    let (_, plain) = h.control_get("/_sim/log").await;
    assert!(plain.get("requests").is_none());

    let (status, _) = h.control("/_sim/reset", json!({"what": "log"})).await;
    assert_eq!(status, StatusCode::OK);
    let (_, log) = h.control_get("/_sim/log").await;
    assert_eq!(log["total_requests"], 0);
    assert_eq!(h.payment_count().await, 1, "a log reset keeps payments");

    h.faults(json!({"fail_rate": 0.5})).await;
    let (status, _) = h.control("/_sim/reset", json!({"what": "all"})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(h.payment_count().await, 0);
    let (_, knobs) = h.control_get("/_sim/faults").await;
    assert_eq!(
        knobs["fail_rate"], 0.0,
        "a full reset restores the start knobs"
    );
    assert!(
        h.sim
            .chain()
            .account(&h.sim.app_wallet_public_key)
            .is_some(),
        "the app wallet is funded again"
    );
    // The same uid can be paid again after a reset.
    h.a2u("u-log", "1").await;
    assert_error(
        &h.control("/_sim/reset", json!({"what": "everything"}))
            .await,
        400,
        "invalid_arguments",
    );
}

#[tokio::test]
async fn unknown_control_path_is_not_found() {
    let h = start().await;
    assert_error(&h.control_get("/_sim/nothing").await, 404, "not_found");
}
