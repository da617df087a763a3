//! `--state-file`: a simulator restarted on its state file answers as before the restart —
//! the same key and app wallet, its payments (with their transactions) at the Platform API,
//! its Pioneers and their tokens, the chain's transactions and balances at Horizon — and
//! keeps going from there. Without the file a restart starts empty.

use crate::support::platform::{Harness, id, start_with, test_config};
use pi_sim::SimConfig;
use reqwest::StatusCode;
use serde_json::{Value, json};

async fn horizon(h: &Harness, path: &str) -> (StatusCode, Value) {
    let r = h.http.get(h.horizon(path)).send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn me(h: &Harness, token: &str) -> (StatusCode, Value) {
    let r = h
        .http
        .get(h.platform("/v2/me"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// A fresh path in the temporary directory (removed by the test's end, best effort).
fn scratch_file() -> std::path::PathBuf {
    let name = format!(
        "pi-sim-state-{}-{}.json",
        std::process::id(),
        pi_sim::keys::Keypair::random().public_key()
    );
    std::env::temp_dir().join(name)
}

fn with_file(path: &std::path::Path) -> SimConfig {
    SimConfig {
        state_file: Some(path.to_path_buf()),
        ..test_config()
    }
}

#[tokio::test]
async fn a_restart_on_the_state_file_keeps_payments_pioneers_and_the_chain() {
    let path = scratch_file();
    let h = start_with(with_file(&path)).await;
    let (payment, txid) = h.u2a_submitted("pioneer-1", 1.5).await;
    let payment_id = id(&payment);
    let (status, done) = h
        .post(
            &format!("/v2/payments/{payment_id}/complete"),
            json!({ "txid": txid }),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{done}");
    let open = h.a2u("pioneer-2", "0.5").await;
    let token = h.sim_control.token("pioneer-1").await.unwrap();
    let key = h.sim.api_key.clone();
    let wallet = h.sim.app_wallet_public_key.clone();
    let (_, balance_before) = horizon(&h, &format!("/accounts/{wallet}")).await;
    h.sim.shutdown().await;

    let h: Harness = start_with(with_file(&path)).await;
    assert!(h.sim.restored());
    assert_eq!(h.sim.api_key, key);
    assert_eq!(h.sim.app_wallet_public_key, wallet);
    let (status, again) = h.get(&format!("/v2/payments/{payment_id}")).await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["status"]["developer_completed"], true);
    assert_eq!(again["transaction"]["txid"], txid.as_str());
    let (status, tx) = horizon(&h, &format!("/transactions/{txid}")).await;
    assert_eq!(status, StatusCode::OK, "{tx}");
    let (_, balance_after) = horizon(&h, &format!("/accounts/{wallet}")).await;
    assert_eq!(balance_after["balances"], balance_before["balances"]);
    // The Pioneer's token still signs in; the open A2U payment still blocks a second one.
    let (status, me) = me(&h, &token).await;
    assert_eq!(status, StatusCode::OK, "{me}");
    let (status, refused) = h
        .post_raw(
            "/v2/payments",
            r#"{"payment": {"amount": 0.5, "memo": "again", "metadata": {}, "uid": "pioneer-2"}}"#,
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{refused}");
    assert_eq!(refused["payment"]["identifier"], open["identifier"]);
    // The chain goes on from where it was: a new payment lands.
    let (_, next_txid) = h.u2a_submitted("pioneer-1", 0.25).await;
    assert_ne!(next_txid, txid);
    h.sim.shutdown().await;

    // Without the file, a restart is a new simulator.
    let fresh = start_with(test_config()).await;
    assert!(!fresh.sim.restored());
    let (status, _) = fresh.get(&format!("/v2/payments/{payment_id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    fresh.sim.shutdown().await;
    let _ = std::fs::remove_file(&path);
}

#[tokio::test]
async fn a_state_file_of_another_wallet_or_a_broken_one_is_refused() {
    let path = scratch_file();
    let h = start_with(with_file(&path)).await;
    h.sim.shutdown().await;
    let other = pi_sim::keys::Keypair::random().secret_seed();
    let err = pi_sim::start(SimConfig {
        app_wallet_seed: Some(other),
        ..with_file(&path)
    })
    .await
    .err()
    .expect("another wallet is refused");
    assert!(
        err.to_string().contains("another network or app wallet"),
        "{err}"
    );
    std::fs::write(&path, "{not json").unwrap();
    let err = pi_sim::start(with_file(&path))
        .await
        .err()
        .expect("a broken file is refused");
    assert!(
        err.to_string().contains("cannot read the state file"),
        "{err}"
    );
    let _ = std::fs::remove_file(&path);
}
