//! End to end under Pi's bad days, through the real callbacks against pi-sim, on both stacks
//! (SQLite + embedded queue; Postgres + Redis when reachable):
//!
//! - with 2 s of latency on every Platform call, the callbacks still answer 202 at once — the
//!   202 body shows the state *before* the worker's Pi call finished — and the payments end
//!   completed;
//! - with 429s (`Retry-After`) from a pi-sim limit below our `PI_RATE_LIMIT`, and injected 500s
//!   and dropped responses on `approve` and `complete`, ten payments still end completed
//!   exactly once: Pi was asked at least once (retries are fine, Pi's ids make them safe), its
//!   audit is clean, the ledger entered `completed` once, and the outbox holds one
//!   `payment.completed` per payment;
//! - a graceful restart with approve and complete jobs queued or in flight loses nothing and
//!   does nothing twice.

use crate::support::{Harness, Options, RemotePi, Stack, entered};
use serde_json::json;
use std::sync::Arc;

async fn harness(stack: Stack, rate_limit: u32) -> Option<Harness> {
    Harness::start(
        stack,
        Options {
            rate_limit: Some(rate_limit),
            ..Options::default()
        },
    )
    .await
}

// ---------------------------------------------------------------------------------------------
// latency

/// Three Pioneers pay while every Platform call takes 2 s.
async fn callbacks_answer_202_while_pi_is_slow(h: &Harness) {
    h.faults(json!({"latency_ms": 2000, "targets": ["platform"]}))
        .await;
    let mut payments = Vec::new();
    for i in 0..3 {
        let uid = format!("slow-{i}");
        let order = h.order("coffee").await;
        let id = h
            .create_payment(&uid, order["amount"].clone(), order["metadata"].clone())
            .await;
        let token = h.token(&uid).await;
        // The worker needs three Pi calls (payment, /me, approve) of 2 s each before it can
        // record `approved`: a 202 saying `received` was sent before they finished.
        let answer = h.approve(&id, &token).await;
        assert_eq!(answer["payment_id"], id.as_str(), "{answer}");
        assert_eq!(answer["state"], "received", "{answer}");
        // A repeat (the SDK re-sends) is also answered without waiting for Pi.
        let again = h.approve(&id, &token).await;
        assert!(
            again["state"] == "received" || again["state"] == "approved",
            "{again}"
        );
        payments.push((uid, id));
    }
    for (_, id) in &payments {
        h.wait_for_state(id, "approved").await;
    }
    for (_, id) in &payments {
        let txid = h.submit(id, json!({})).await;
        // The callback binds nothing (its txid is a claim): the 202 shows `approved`.
        let answer = h.complete(id, &txid).await;
        assert_eq!(answer["state"], "approved", "{answer}");
    }
    for (uid, id) in &payments {
        let done = h.wait_for_state(id, "completed").await;
        assert_eq!(done["payment"]["uid"], uid.as_str());
        assert_eq!(h.pi_calls(id, "approve").await, 1);
        assert_eq!(h.pi_calls(id, "complete").await, 1);
    }
    h.assert_audit_ok().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pi_sqlite_and_embedded_queue() {
    let h = harness(Stack::Embedded, 10).await.unwrap();
    callbacks_answer_202_while_pi_is_slow(&h).await;
    h.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_pi_postgres_and_redis() {
    let Some(h) = harness(Stack::PostgresRedis, 10).await else {
        return;
    };
    callbacks_answer_202_while_pi_is_slow(&h).await;
    h.stop().await;
}

// ---------------------------------------------------------------------------------------------
// 429s, 500s and dropped responses

/// Ten payments at once while pi-sim limits `approve`/`complete` to 3/s (our limit is 20/s),
/// fails a quarter of them with 500 and drops the answer of a quarter after acting.
async fn every_payment_completes_once_despite_429_500_and_drops(h: Arc<Harness>) {
    h.faults(json!({
        "rate_limit": 3,
        "fail_rate": 0.25,
        "drop_rate": 0.25,
        // The first two of each kind for sure, whatever the random draws.
        "fail_next": 2,
        "drop_next": 2,
        "endpoints": ["approve", "complete"],
        "targets": ["platform"],
        "seed": 7,
    }))
    .await;
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..10 {
        let h = h.clone();
        // Each callback twice, as the SDK's re-sends do.
        tasks.spawn(async move { h.purchase(&format!("faulty-{i}"), 2).await });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }

    // The faults happened.
    let log = h.sim_log().await;
    let totals = &log["totals"];
    assert!(totals["rate_limited"].as_u64().unwrap() > 0, "{log}");
    assert!(totals["injected_500"].as_u64().unwrap() > 0, "{log}");
    assert!(totals["dropped"].as_u64().unwrap() > 0, "{log}");

    // And each payment completed exactly once.
    h.assert_audit_ok().await;
    let events = h.events().await;
    for id in &ids {
        let stats = &log["payments"][id];
        assert!(stats["approve"].as_u64().unwrap_or(0) >= 1, "{id}: {stats}");
        assert!(
            stats["complete"].as_u64().unwrap_or(0) >= 1,
            "{id}: {stats}"
        );
        let at_pi = h.pi_payment(id).await;
        assert_eq!(at_pi["status"]["developer_completed"], true, "{at_pi}");
        let history = h.payment(id).await;
        assert_eq!(entered(&history, "completed"), 1, "{history}");
        assert_eq!(entered(&history, "approved"), 1, "{history}");
        let completed = events
            .iter()
            .filter(|e| e["type"] == "payment.completed" && e["data"]["payment"]["id"] == *id)
            .count();
        assert_eq!(completed, 1, "payment.completed events for {id}");
    }
    assert_eq!(
        events
            .iter()
            .filter(|e| e["type"] == "payment.completed")
            .count(),
        ids.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_sqlite_and_embedded_queue() {
    let h = Arc::new(harness(Stack::Embedded, 20).await.unwrap());
    every_payment_completes_once_despite_429_500_and_drops(h.clone()).await;
    Arc::into_inner(h).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_postgres_and_redis() {
    let Some(h) = harness(Stack::PostgresRedis, 20).await else {
        return;
    };
    let h = Arc::new(h);
    every_payment_completes_once_despite_429_500_and_drops(h.clone()).await;
    Arc::into_inner(h).unwrap().stop().await;
}

// ---------------------------------------------------------------------------------------------
// restarts

/// The service is stopped (gracefully) right after accepting approve callbacks for three
/// payments and complete callbacks for three others, while Pi is slow; after a restart on the
/// same ledger and queue, nothing is lost and nothing is done twice.
async fn restart_loses_nothing_and_does_nothing_twice(stack: Stack) {
    let sim = pi_sim::start(pi_sim::SimConfig::default()).await.unwrap();
    let Some(mut h) = Harness::start(
        stack,
        Options {
            remote_pi: Some(RemotePi::of(&sim)),
            ..Options::default()
        },
    )
    .await
    else {
        sim.shutdown().await;
        return;
    };
    // Three payments approved and signed, waiting for their complete callback.
    let mut signed = Vec::new();
    for i in 0..3 {
        let uid = format!("signed-{i}");
        let order = h.order("coffee").await;
        let id = h
            .create_payment(&uid, order["amount"].clone(), order["metadata"].clone())
            .await;
        h.approve(&id, &h.token(&uid).await).await;
        h.wait_for_state(&id, "approved").await;
        let txid = h.submit(&id, json!({})).await;
        signed.push((id, txid));
    }
    // Three new payments waiting for approval.
    let mut fresh = Vec::new();
    for i in 0..3 {
        let uid = format!("fresh-{i}");
        let order = h.order("coffee").await;
        let id = h
            .create_payment(&uid, order["amount"].clone(), order["metadata"].clone())
            .await;
        fresh.push((id, h.token(&uid).await));
    }
    h.faults(json!({"latency_ms": 1000, "targets": ["platform"]}))
        .await;
    for (id, token) in &fresh {
        assert_eq!(h.approve(id, token).await["state"], "received");
    }
    for (id, txid) in &signed {
        assert_eq!(h.complete(id, txid).await["state"], "approved");
    }
    // Stop with those jobs queued or in flight, and start again.
    h = h.restart().await;
    for (id, _) in &fresh {
        h.wait_for_state(id, "approved").await;
        let txid = h.submit(id, json!({})).await;
        h.complete(id, &txid).await;
    }
    let all: Vec<&String> = signed.iter().chain(&fresh).map(|(id, _)| id).collect();
    for id in all {
        h.wait_for_state(id, "completed").await;
        let history = h.payment(id).await;
        assert_eq!(entered(&history, "approved"), 1, "{history}");
        assert_eq!(entered(&history, "completed"), 1, "{history}");
        assert_eq!(h.count_events("payment.completed", id).await, 1);
        assert!(h.pi_calls(id, "approve").await >= 1);
        assert!(h.pi_calls(id, "complete").await >= 1);
    }
    h.assert_audit_ok().await;
    h.stop().await;
    sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_sqlite_and_embedded_queue() {
    restart_loses_nothing_and_does_nothing_twice(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_postgres_and_redis() {
    restart_loses_nothing_and_does_nothing_twice(Stack::PostgresRedis).await;
}
