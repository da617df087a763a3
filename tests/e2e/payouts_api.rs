//! A2U payouts through the real service's API against pi-sim: single payouts and a bulk file
//! paid exactly once (balances on Horizon, pi-sim's audit), repeats that create nothing, and
//! the operator routes' checks (admin token, bad rows by line, cancel, paging).

use crate::support::payouts::{ADMIN_TOKEN, Options, PayoutEnv, sim_config, stroops};
use pi_payments::Role;
use pi_sim::control_client::SimControl;
use reqwest::Method;
use serde_json::{Value, json};
use std::collections::HashMap;
use std::time::{Duration, Instant};

/// Wait until every payout of the ledger is settled; the rows by id.
async fn wait_all_settled(env: &PayoutEnv, expected: usize) -> HashMap<String, Value> {
    let start = Instant::now();
    loop {
        let rows = env.ledger_payouts().await;
        let settled = rows.iter().filter(|r| !r.state.is_in_flight()).count();
        if rows.len() >= expected && settled == rows.len() {
            return rows
                .into_iter()
                .map(|r| (r.id.to_string(), serde_json::to_value(&r).unwrap()))
                .collect();
        }
        assert!(
            start.elapsed() < crate::support::payouts::DEADLINE,
            "{settled} of {} payouts settled",
            rows.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_single_payouts_and_a_500_row_file_are_paid_exactly_once() {
    let env = PayoutEnv::start(
        sim_config(0.05),
        Options {
            channels: 4,
            ..Options::default()
        },
    )
    .await;

    // 20 single payouts.
    let mut expected: Vec<(String, String, i64, i64)> = Vec::new(); // (id, address, before, amount)
    let mut singles = Vec::new();
    for i in 0..20 {
        let uid = format!("single-{i}");
        let address = env.pioneer(&uid).await;
        let before = env.balance(&address).await;
        let amount = format!("{}.{:07}", i + 1, 1_234_567 + i);
        let body = json!({
            "uid": uid, "amount": amount, "memo": format!("Reward {i}"),
            "metadata": {"campaign": "launch", "n": i}, "idempotency_key": format!("single-{i}")
        });
        let (status, answer) = env.post_payout(body.clone()).await;
        assert_eq!(status, 202, "{answer}");
        assert_eq!(answer["created"], true);
        let id = answer["payout"]["id"].as_str().unwrap().to_string();
        assert!(answer["payout"].get("envelope_b64").is_none());
        expected.push((id.clone(), address, before, stroops(&amount)));
        singles.push((id, body));
    }
    // The same request again: the same payout, 200.
    let (status, again) = env.post_payout(singles[3].1.clone()).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["payout"]["id"], singles[3].0.as_str());
    assert_eq!(again["created"], false);
    // The same key with another body: 409, nothing created.
    let mut other = singles[3].1.clone();
    other["amount"] = json!("99");
    let (status, conflict) = env.post_payout(other).await;
    assert_eq!(status, 409, "{conflict}");
    assert_eq!(conflict["error"], "idempotency_conflict");

    // A 500-row file (header included).
    let mut csv = String::from("uid,amount,memo,idempotency_key\n");
    for i in 0..500 {
        let uid = format!("bulk-{i}");
        let address = env.pioneer(&uid).await;
        let before = env.balance(&address).await;
        let amount = format!("{}.{:07}", i % 3, i + 1);
        csv.push_str(&format!("{uid},{amount},\"Bulk reward, #{i}\",bulk-{i}\n"));
        expected.push((format!("bulk-{i}"), address, before, stroops(&amount)));
    }
    let (status, bulk) = env.post_csv(&csv).await;
    assert_eq!(status, 202, "{bulk}");
    assert_eq!(bulk["accepted"], 500, "{bulk}");
    assert_eq!(bulk["duplicates"], 0);
    assert_eq!(bulk["rejected"], json!([]));
    let batch = bulk["batch_id"].as_str().unwrap().to_string();

    let rows = wait_all_settled(&env, 520).await;
    assert_eq!(rows.len(), 520);
    for row in rows.values() {
        assert_eq!(row["state"], "completed", "{row}");
    }
    // Each Pioneer's balance went up by exactly its amount.
    for (_, address, before, amount) in &expected {
        assert_eq!(
            env.balance(address).await - before,
            *amount,
            "balance of {address}"
        );
    }
    env.assert_audit_ok().await;
    assert_eq!(env.pi_payment_count().await, 520);

    // Repeats create nothing: the singles, and the whole file again.
    for (id, body) in &singles {
        let (status, answer) = env.post_payout(body.clone()).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(answer["payout"]["id"], id.as_str());
        assert_eq!(answer["payout"]["state"], "completed");
    }
    // A file imported again answers its existing batch (200), creating no empty one.
    let (status, again) = env.post_csv(&csv).await;
    assert_eq!(status, 200, "{again}");
    assert_eq!(again["already_imported"], true, "{again}");
    assert_eq!(again["accepted"], 0, "{again}");
    assert_eq!(again["duplicates"], 500);
    assert_eq!(env.ledger_payouts().await.len(), 520);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.pi_payment_count().await, 520);
    env.assert_audit_ok().await;

    // The API's views: one payout with its history, the batch by pages.
    let one = env.payout(&singles[0].0).await;
    assert_eq!(one["payout"]["state"], "completed");
    let history: Vec<&str> = one["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["to_state"].as_str().unwrap())
        .collect();
    assert_eq!(history.last(), Some(&"completed"), "{history:?}");
    assert!(history.contains(&"signed"), "{history:?}");
    let mut seen = 0;
    let mut after = String::new();
    loop {
        let (status, page) = PayoutEnv::send(env.admin(
            Method::GET,
            &format!("/payouts?batch={batch}&state=completed&limit=200&after={after}"),
        ))
        .await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["batch"]["accepted"], 500);
        seen += page["payouts"].as_array().unwrap().len();
        match page["next_after"].as_str() {
            Some(next) => after = next.to_string(),
            None => break,
        }
    }
    assert_eq!(seen, 500);
    // Completed payouts cannot be cancelled.
    let (status, refused) =
        PayoutEnv::send(env.admin(Method::POST, &format!("/payouts/{}/cancel", singles[0].0)))
            .await;
    assert_eq!(status, 409, "{refused}");
    // Every payout has exactly one payout.completed event in the outbox.
    let (_, events) = PayoutEnv::send(env.admin(reqwest::Method::GET, "/events?limit=1000")).await;
    let completed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "payout.completed")
        .count();
    assert_eq!(completed, 520);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payout_routes_check_the_admin_token_and_what_they_are_given() {
    // API only: nothing pays, so requests stay where the API left them.
    let env = PayoutEnv::start(
        sim_config(1.0),
        Options {
            role: Some(Role::Api),
            ..Options::default()
        },
    )
    .await;
    let routes = [
        (Method::POST, "/payouts"),
        (Method::POST, "/payouts/bulk"),
        (Method::GET, "/payouts"),
        (Method::GET, "/payouts/po_AAAAAAAAAAAAAAAAAAAA"),
        (Method::POST, "/payouts/po_AAAAAAAAAAAAAAAAAAAA/cancel"),
    ];
    for (method, path) in &routes {
        let url = format!("{}{path}", env.api);
        let (status, body) = PayoutEnv::send(env.http.request(method.clone(), &url)).await;
        assert_eq!(status, 401, "{method} {path} without a token: {body}");
        let (status, body) = PayoutEnv::send(
            env.http
                .request(method.clone(), &url)
                .bearer_auth("not-the-admin-token-at-all"),
        )
        .await;
        assert_eq!(status, 401, "{method} {path} with a wrong token: {body}");
        assert!(!body.to_string().contains(ADMIN_TOKEN));
    }

    // Bad single requests say what is wrong.
    for (body, needle) in [
        (
            json!({"uid": "a", "amount": "1.123456789", "memo": "m", "idempotency_key": "k"}),
            "7 decimals",
        ),
        (
            json!({"uid": "a", "amount": "-1", "memo": "m", "idempotency_key": "k"}),
            "greater than zero",
        ),
        (
            json!({"uid": "a", "amount": "1", "memo": "m"}),
            "idempotency_key",
        ),
        (
            json!({"uid": "a", "amount": "1", "memo": "m", "idempotencyKey": "k"}),
            "idempotencyKey",
        ),
        (
            json!({"uid": "a", "amount": "1", "memo": "m", "idempotency_key": "k", "metadata": {"payout_id": 1}}),
            "reserved",
        ),
    ] {
        let (status, answer) = env.post_payout(body.clone()).await;
        assert_eq!(status, 400, "{body} -> {answer}");
        assert!(
            answer["message"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }

    // A payout, then its cancellation (before submission), twice.
    let (status, created) = env
        .post_payout(
            json!({"uid": "pioneer-c", "amount": 2.5, "memo": "m", "idempotency_key": "cancel-me"}),
        )
        .await;
    assert_eq!(status, 202, "{created}");
    let id = created["payout"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["payout"]["state"], "requested");
    assert_eq!(created["payout"]["amount"], json!("2.5"));
    for _ in 0..2 {
        let (status, cancelled) = PayoutEnv::send(
            env.admin(Method::POST, &format!("/payouts/{id}/cancel"))
                .json(&json!({"reason": "campaign withdrawn"})),
        )
        .await;
        assert_eq!(status, 200, "{cancelled}");
        assert_eq!(cancelled["payout"]["state"], "cancelled");
    }
    let shown = env.payout(&id).await;
    assert_eq!(shown["payout"]["state"], "cancelled");
    assert!(shown.to_string().contains("campaign withdrawn"), "{shown}");
    let (status, missing) =
        PayoutEnv::send(env.admin(Method::GET, "/payouts/po_AAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(status, 404, "{missing}");
    let (status, _) = PayoutEnv::send(env.admin(Method::GET, "/payouts/nope")).await;
    assert_eq!(status, 400);

    // Bulk: bad rows are reported by line, good rows proceed.
    let csv = "uid,amount,memo,idempotency_key\n\
               alice,1,hi,b-1\n\
               bob,one,hi,b-2\n\
               carol,1.5,\"hi, you\",b-3\n\
               dave,1,hi\n\
               erin,0.0000001,hi,b-5\n";
    let (status, bulk) = env.post_csv(csv).await;
    assert_eq!(status, 202, "{bulk}");
    assert_eq!(bulk["accepted"], 3, "{bulk}");
    let lines: Vec<u64> = bulk["rejected"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["line"].as_u64().unwrap())
        .collect();
    assert_eq!(lines, vec![3, 5], "{bulk}");
    // JSON lines; a key already used with another body is rejected on its line.
    let ndjson = "{\"uid\":\"frank\",\"amount\":\"3\",\"memo\":\"m\",\"idempotency_key\":\"b-6\"}\n\
                  {\"uid\":\"alice\",\"amount\":\"2\",\"memo\":\"hi\",\"idempotency_key\":\"b-1\"}\n\
                  {\"uid\":\"alice\",\"amount\":\"1\",\"memo\":\"hi\",\"idempotency_key\":\"b-1\"}\n";
    let (status, bulk2) = PayoutEnv::send(
        env.admin(Method::POST, "/payouts/bulk")
            .header("content-type", "application/x-ndjson")
            .body(ndjson),
    )
    .await;
    assert_eq!(status, 202, "{bulk2}");
    assert_eq!(bulk2["accepted"], 1, "{bulk2}");
    assert_eq!(bulk2["duplicates"], 1, "{bulk2}");
    assert_eq!(bulk2["rejected"][0]["line"], 2, "{bulk2}");
    assert!(
        bulk2["rejected"][0]["error"]
            .as_str()
            .unwrap()
            .contains("different body"),
        "{bulk2}"
    );
    // Unknown content types are refused.
    let (status, refused) = PayoutEnv::send(
        env.admin(Method::POST, "/payouts/bulk")
            .header("content-type", "application/json")
            .body("[]"),
    )
    .await;
    assert_eq!(status, 400, "{refused}");
    assert_eq!(refused["error"], "unsupported_content_type");
    // A file larger than the API's usual 64 KiB body limit is accepted on this route.
    let mut big = String::new();
    for i in 0..2000 {
        big.push_str(&format!(
            "big-{i},0.0000001,a memo that makes the file comfortably large,big-key-{i}\n"
        ));
    }
    assert!(big.len() > 64 * 1024);
    let (status, large) = env.post_csv(&big).await;
    assert_eq!(status, 202, "{large}");
    assert_eq!(large["accepted"], 2000);
    // ... but not on POST /payouts.
    let (status, _) = PayoutEnv::send(
        env.admin(Method::POST, "/payouts")
            .header("content-type", "application/json")
            .body(format!("{{\"memo\": \"{}\"}}", "x".repeat(70 * 1024))),
    )
    .await;
    assert_eq!(status, 413);

    // Paging through a batch.
    let batch = large["batch_id"].as_str().unwrap();
    let (status, page) =
        PayoutEnv::send(env.admin(Method::GET, &format!("/payouts?batch={batch}&limit=2"))).await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(page["payouts"].as_array().unwrap().len(), 2);
    let next = page["next_after"].as_str().unwrap();
    let (_, page2) = PayoutEnv::send(env.admin(
        Method::GET,
        &format!("/payouts?batch={batch}&limit=2&after={next}"),
    ))
    .await;
    assert_ne!(page2["payouts"][0]["id"], page["payouts"][0]["id"]);
    let (status, _) = PayoutEnv::send(env.admin(Method::GET, "/payouts?state=paid")).await;
    assert_eq!(status, 400);
    let (status, _) =
        PayoutEnv::send(env.admin(Method::GET, "/payouts?batch=bat_AAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(status, 404);
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_built_in_simulator_pays_out_of_the_box() {
    // No PI_API_KEY and no PI_WALLET_SEED: the simulator's own app wallet pays.
    let dir = tempfile::tempdir().unwrap();
    let args = pi_payments::cli::ConfigArgs {
        admin_token: Some(ADMIN_TOKEN.into()),
        database_url: Some(format!(
            "sqlite://{}",
            dir.path().join("ledger.db").display()
        )),
        bind_addr: Some("127.0.0.1:0".into()),
        ..Default::default()
    };
    let mut config = pi_payments::Config::from_args(&args).unwrap();
    config.queue = pi_payments::config::QueueTarget::Sqlite(dir.path().join("queue.db"));
    let app = pi_payments::RunningApp::start(config, Role::Serve)
        .await
        .unwrap();
    assert!(app.simulated);
    let api = format!("http://{}", app.addr.unwrap());
    let http = reqwest::Client::new();
    // Pi pays only Pioneers who used the app: pioneer-1 signs in on the simulator first.
    let signed_in = http
        .post(format!("{}/_sim/tokens", app.pi.api_base_url))
        .json(&json!({"uid": "pioneer-1"}))
        .send()
        .await
        .unwrap();
    assert!(signed_in.status().is_success());
    let (status, answer) = PayoutEnv::send(
        http.post(format!("{api}/payouts"))
            .bearer_auth(ADMIN_TOKEN)
            .json(&json!({"uid": "pioneer-1", "amount": "3.14", "memo": "welcome", "idempotency_key": "welcome-1"})),
    )
    .await;
    assert_eq!(status, 202, "{answer}");
    let id = answer["payout"]["id"].as_str().unwrap().to_string();
    let start = Instant::now();
    loop {
        let (_, shown) = PayoutEnv::send(
            http.get(format!("{api}/payouts/{id}"))
                .bearer_auth(ADMIN_TOKEN),
        )
        .await;
        match shown["payout"]["state"].as_str().unwrap_or("") {
            "completed" => {
                assert_eq!(shown["payout"]["from_address"], app.pi.app_wallet.as_str());
                break;
            }
            "requested" | "created" | "signed" | "confirmed" => {}
            other => panic!("the payout settled as {other}: {shown}"),
        }
        assert!(
            start.elapsed() < crate::support::payouts::DEADLINE,
            "{shown}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let control = SimControl::new(&app.pi.api_base_url).unwrap();
    let audit = control.audit().await.unwrap();
    assert_eq!(audit["ok"], true, "{audit}");
    app.stop().await.unwrap();
}
