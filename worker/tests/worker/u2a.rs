//! U2A end to end at the job level: pi-sim plays Pi and the Pioneer, the ledger records the
//! callbacks as the API would, and the workers of this crate do the rest.

use crate::support::{Harness, Options, Stack, webhook_receiver};
use pi_payments_core::PiAmount;
use pi_payments_core::events::verify_webhook;
use pi_payments_core::ids::{PaymentId, Txid};
use pi_payments_core::jobs::Job;
use pi_payments_core::products::Product;
use pi_payments_core::state::PaymentState;
use pi_payments_worker::WebhookConfig;
use pi_sim::control_client::{TokenRequest, U2aRequest};
use serde_json::{Value, json};
use std::time::Duration;

/// The whole happy path; run on both stacks.
async fn happy_path(stack: Stack) {
    let receiver = webhook_receiver().await;
    let secret = "whsec-test-secret";
    let h = Harness::start(Options {
        stack,
        webhook: Some(WebhookConfig {
            url: receiver.url.clone(),
            secret: secret.into(),
        }),
        ..Options::default()
    })
    .await;

    let product = Product {
        id: "coffee".into(),
        name: "Coffee".into(),
        price: PiAmount::parse("1.5").unwrap(),
        memo: None,
    };
    let order = h.ledger.create_order(&product, 2).await.unwrap();
    let token = h.token("alice").await;
    let id = h
        .create_u2a("alice", "3", json!({ "orderId": order.id.as_str() }))
        .await;

    h.approve_callback(&id, Some(&token)).await;
    let row = h.wait_for(&id, PaymentState::Approved).await;
    assert_eq!(row.order_id.as_ref(), Some(&order.id));
    assert_eq!(
        h.pi_payment(&id).await["status"]["developer_approved"],
        true
    );

    let txid = h.submit(&id).await;
    h.complete_callback(&id, &txid).await;
    let row = h.wait_for(&id, PaymentState::Completed).await;
    assert_eq!(row.txid.as_ref(), Some(&txid));
    let order = h.ledger.order(&order.id).await.unwrap().unwrap();
    assert_eq!(order.state.as_str(), "paid");

    let audit = h.audit().await;
    assert_eq!(audit["ok"], true, "{audit}");
    assert_eq!(h.calls(&id, "approve").await, 1);
    assert_eq!(h.calls(&id, "complete").await, 1);

    // The webhook: payment.completed exactly once, signed.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let completed = loop {
        let hits = receiver.hits.lock().unwrap().clone();
        let completed: Vec<_> = hits
            .iter()
            .filter(|(_, body)| {
                serde_json::from_slice::<Value>(body).unwrap()["type"] == "payment.completed"
            })
            .cloned()
            .collect();
        if !completed.is_empty() || tokio::time::Instant::now() > deadline {
            break completed;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    h.settle().await;
    assert_eq!(completed.len(), 1, "one payment.completed delivery");
    let (signature, body) = &completed[0];
    let now = chrono::Utc::now().timestamp();
    verify_webhook(secret.as_bytes(), signature, body, now, 300).expect("valid signature");
    assert!(
        verify_webhook(b"another secret", signature, body, now, 300).is_err(),
        "the signature depends on the secret"
    );
    let body: Value = serde_json::from_slice(body).unwrap();
    assert_eq!(body["data"]["payment"]["id"], id.as_str());
    let all = receiver.hits.lock().unwrap().len();
    let events = h.ledger.events_after(0, 100).await.unwrap();
    assert_eq!(all, events.len(), "each event delivered once");
    assert!(events.iter().all(|e| e.delivered_at.is_some()));

    // Finished jobs do not pile up in the queue backend.
    let purged = h.queue.purge_finished(Duration::ZERO).await.unwrap();
    assert!(
        purged >= 2,
        "the approve and complete jobs are removed ({purged})"
    );
    assert_eq!(h.queue.purge_finished(Duration::ZERO).await.unwrap(), 0);

    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_embedded() {
    happy_path(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn happy_path_postgres_redis() {
    happy_path(Stack::Served).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_payments_are_never_approved_and_cancelled_at_pi() {
    let h = Harness::start(Options::default()).await;
    let product = Product {
        id: "sticker".into(),
        name: "Sticker".into(),
        price: PiAmount::parse("0.25").unwrap(),
        memo: None,
    };

    // Another Pioneer's token.
    let mallory = h.token("mallory").await;
    let wrong_user = h.create_u2a("bob", "1", json!({})).await;
    h.approve_callback(&wrong_user, Some(&mallory)).await;

    // An amount that is not the order's price.
    let order = h.ledger.create_order(&product, 1).await.unwrap();
    let carol = h.token("carol").await;
    let tampered = h
        .create_u2a(
            "carol",
            "0.2499999",
            json!({ "orderId": order.id.as_str() }),
        )
        .await;
    h.approve_callback(&tampered, Some(&carol)).await;

    // Cancelled by the Pioneer before the job ran.
    let dave = h.token("dave").await;
    let cancelled = h.create_u2a("dave", "1", json!({})).await;
    h.control.user_cancel(cancelled.as_str()).await.unwrap();
    h.approve_callback(&cancelled, Some(&dave)).await;

    // An expired token.
    let erin = TokenRequest {
        expires_in: Some(-60),
        ..TokenRequest::for_uid("erin")
    };
    let erin = h.control.mint_token(&erin).await.unwrap();
    let expired = h.create_u2a("erin", "1", json!({})).await;
    h.approve_callback(&expired, Some(&erin.access_token)).await;

    // Paid on another network than the app's (PI_NETWORK): Pi's DTO says so.
    let frank = h.token("frank").await;
    let request = U2aRequest::new("frank", "1")
        .memo("test purchase")
        .network("Pi Network");
    let foreign = PaymentId::parse(&h.control.create_u2a_id(&request).await.unwrap()).unwrap();
    h.approve_callback(&foreign, Some(&frank)).await;

    for id in [&wrong_user, &tampered, &cancelled, &expired, &foreign] {
        let row = h.wait_for(id, PaymentState::Cancelled).await;
        assert!(row.reason.is_some(), "{id}: a reason is recorded");
        assert_eq!(h.calls(id, "approve").await, 0, "{id} never approved");
        let pi = h.pi_payment(id).await;
        assert_eq!(pi["status"]["developer_approved"], false);
        assert!(
            pi["status"]["cancelled"] == true || pi["status"]["user_cancelled"] == true,
            "{id} cancelled at Pi: {pi}"
        );
    }
    let reason = |row: pi_payments_core::ledger::PaymentRow| row.reason.unwrap();
    assert!(reason(h.row(&wrong_user).await).contains("different Pioneer"));
    assert!(reason(h.row(&tampered).await).contains("price"));
    assert!(reason(h.row(&expired).await).contains("token"));
    assert!(
        reason(h.row(&foreign).await)
            .contains("on \"Pi Network\" and this app runs on \"Pi Testnet\" (PI_NETWORK)")
    );
    assert_eq!(
        h.calls(&cancelled, "cancel").await,
        0,
        "already cancelled by the Pioneer"
    );
    let order = h.ledger.order(&order.id).await.unwrap().unwrap();
    assert_eq!(order.state.as_str(), "open", "the order stays payable");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn require_order_refuses_payments_without_one() {
    let h = Harness::start(Options {
        require_order: true,
        ..Options::default()
    })
    .await;
    let token = h.token("frank").await;
    let id = h.create_u2a("frank", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    let row = h.wait_for(&id, PaymentState::Cancelled).await;
    assert!(row.reason.unwrap().contains("REQUIRE_ORDER"));
    assert_eq!(h.calls(&id, "approve").await, 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_txid_is_never_completed() {
    let h = Harness::start(Options::default()).await;
    let token = h.token("gina").await;
    let id = h.create_u2a("gina", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    let real = h.submit(&id).await;
    let wrong = Txid::parse(&"ab".repeat(32)).unwrap();
    assert_ne!(real, wrong);
    // The callback's txid is a claim: the one completed is the one Pi linked.
    h.complete_callback(&id, &wrong).await;
    let row = h.wait_for(&id, PaymentState::Completed).await;
    assert_eq!(row.txid, Some(real));
    let history = h.ledger.payment_events(&id).await.unwrap();
    assert!(history.iter().any(|e| e.cause == "txid_hint_mismatch"));
    assert_eq!(h.calls(&id, "complete").await, 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jobs_run_again_do_not_call_pi_again_for_a_done_step() {
    let h = Harness::start(Options::default()).await;
    let token = h.token("hana").await;
    let id = h.create_u2a("hana", "2.5", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    // The same approve job delivered again (at-least-once queues, the sweeper…).
    h.queue
        .push_jobs(vec![Job::approve(id.clone()), Job::approve(id.clone())])
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.calls(&id, "approve").await, 1);

    let txid = h.submit(&id).await;
    h.complete_callback(&id, &txid).await;
    h.wait_for(&id, PaymentState::Completed).await;
    h.queue
        .push_jobs(vec![
            Job::complete(id.clone()),
            Job::complete(id.clone()),
            Job::approve(id.clone()),
            Job::incomplete(id.clone()),
        ])
        .await
        .unwrap();
    h.settle().await;
    assert_eq!(h.calls(&id, "approve").await, 1);
    assert_eq!(h.calls(&id, "complete").await, 1);
    assert_eq!(h.row(&id).await.state, PaymentState::Completed);
    let completed: Vec<_> = h
        .ledger
        .events_after(0, 100)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "payment.completed")
        .collect();
    assert_eq!(completed.len(), 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_errors_and_dropped_answers_still_complete_exactly_once() {
    // Pi's limit is below ours: 429s with Retry-After happen and are honoured.
    let sim = pi_sim::SimConfig {
        rate_limit: Some(4),
        ..pi_sim::SimConfig::default()
    };
    let h = Harness::start(Options {
        sim,
        pi_rate_limit: 50,
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..4 {
        let uid = format!("pioneer{i}");
        let token = h.token(&uid).await;
        let id = h.create_u2a(&uid, "1.25", json!({})).await;
        ids.push((id, token));
    }
    // Half the approve and complete calls fail with 500 or lose their answer after Pi acted.
    h.set_faults(json!({
        "fail_rate": 0.3,
        "drop_rate": 0.3,
        "endpoints": ["approve", "complete"],
    }))
    .await;
    for (id, token) in &ids {
        h.approve_callback(id, Some(token)).await;
    }
    for (id, _) in &ids {
        h.wait_for(id, PaymentState::Approved).await;
    }
    for (id, _) in &ids {
        let txid = h.submit(id).await;
        h.complete_callback(id, &txid).await;
    }
    for (id, _) in &ids {
        h.wait_for(id, PaymentState::Completed).await;
    }
    let log = h.log().await;
    let faults = &log["totals"];
    assert!(
        faults["rate_limited"].as_u64().unwrap_or(0) > 0,
        "429s happened: {log}"
    );
    assert!(
        faults["rate_limited"].as_u64().unwrap_or(0)
            + faults["injected_500"].as_u64().unwrap_or(0)
            + faults["dropped"].as_u64().unwrap_or(0)
            > 0,
        "faults were injected: {log}"
    );
    for (id, _) in &ids {
        let pi = h.pi_payment(id).await;
        assert_eq!(pi["status"]["developer_completed"], true);
    }
    let audit = h.audit().await;
    assert_eq!(audit["ok"], true, "{audit}");
    let completed = h
        .ledger
        .events_after(0, 1000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.event_type == "payment.completed")
        .count();
    assert_eq!(completed, ids.len(), "one payment.completed per payment");
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_without_txid_cancels_an_approved_payment() {
    let h = Harness::start(Options::default()).await;
    let token = h.token("ivan").await;
    let id = h.create_u2a("ivan", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    // Next login: the SDK reports the payment as incomplete, with no transaction, sent with
    // the Pioneer's token (anonymously it would wait ANONYMOUS_CANCEL_GRACE).
    let own = pi_payments_core::secret::AccessToken::new(&token).unwrap();
    h.incomplete_callback_as(
        &id,
        pi_payments_core::jobs::ApproveCredential::AccessToken(own),
    )
    .await;
    let row = h.wait_for(&id, PaymentState::Cancelled).await;
    assert!(row.reason.unwrap().contains("abandoned"));
    let pi = h.pi_payment(&id).await;
    assert_eq!(pi["status"]["cancelled"], true, "unblocked at Pi: {pi}");
    // The Pioneer can pay again.
    let again = h.create_u2a("ivan", "1", json!({})).await;
    h.approve_callback(&again, Some(&token)).await;
    h.wait_for(&again, PaymentState::Approved).await;
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn incomplete_with_a_txid_completes() {
    let h = Harness::start(Options::default()).await;
    let token = h.token("jade").await;
    let id = h.create_u2a("jade", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    let txid = h.submit(&id).await;
    // The complete callback was lost; at next login the SDK reports it with its txid.
    h.incomplete_callback(&id, Some(&txid)).await;
    h.wait_for(&id, PaymentState::Completed).await;
    assert_eq!(h.calls(&id, "complete").await, 1);
    assert_eq!(h.audit().await["ok"], true);
    h.shutdown().await;
}

/// Pi keeps failing past the client's own retries: the job is retried by the queue with backoff
/// (the handler sees the attempt number grow) and succeeds once Pi recovers.
async fn job_level_retries_recover(stack: Stack) {
    let h = Harness::start(Options {
        stack,
        pi_retry: pi_payments_core::retry::RetryPolicy::none(),
        ..Options::default()
    })
    .await;
    let token = h.token("kim").await;
    let id = h.create_u2a("kim", "1", json!({})).await;
    h.set_faults(json!({ "fail_next": 4, "endpoints": ["get_payment"] }))
        .await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;
    let events = h.ledger.payment_events(&id).await.unwrap();
    let failed: Vec<_> = events
        .iter()
        .filter(|e| e.cause == "attempt_failed")
        .collect();
    assert_eq!(failed.len(), 4, "{events:#?}");
    let attempts: Vec<i64> = failed.iter().map(|e| e.attempt).collect();
    assert_eq!(attempts, vec![1, 2, 3, 4], "attempts counted per try");
    assert_eq!(h.calls(&id, "approve").await, 1);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_level_retries_recover_embedded() {
    job_level_retries_recover(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn job_level_retries_recover_redis() {
    job_level_retries_recover(Stack::Served).await;
}

/// Pi never recovers: after the attempt cap the payment is in needs_attention with the reason,
/// and the queue stops retrying (no further calls to Pi).
async fn retries_stop_at_the_cap(stack: Stack) {
    let h = Harness::start(Options {
        stack,
        pi_retry: pi_payments_core::retry::RetryPolicy::none(),
        retry: pi_payments_worker::JobRetry {
            max_attempts: 3,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..Options::default()
    })
    .await;
    let token = h.token("lee").await;
    let id = h.create_u2a("lee", "1", json!({})).await;
    h.set_faults(json!({ "fail_rate": 1.0, "endpoints": ["get_payment"] }))
        .await;
    h.approve_callback(&id, Some(&token)).await;
    let row = h.wait_for(&id, PaymentState::NeedsAttention).await;
    let reason = row.reason.unwrap();
    assert!(reason.contains("gave up after 3 attempts"), "{reason}");
    // Well past a few heartbeats and backoffs: apalis must not run the job again.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(
        h.calls(&id, "get_payment").await,
        3,
        "exactly max_attempts tries"
    );
    assert_eq!(h.calls(&id, "approve").await, 0);
    h.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_cap_embedded() {
    retries_stop_at_the_cap(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retries_stop_at_the_cap_redis() {
    retries_stop_at_the_cap(Stack::Served).await;
}

/// Shutdown while a job waits on a slow Pi: the job finishes before the workers return.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn graceful_shutdown_finishes_in_flight_jobs() {
    let mut h = Harness::start(Options::default()).await;
    let token = h.token("mia").await;
    let id = h.create_u2a("mia", "1", json!({})).await;
    h.set_faults(json!({ "latency_ms": 1500, "endpoints": ["approve"] }))
        .await;
    h.approve_callback(&id, Some(&token)).await;
    // Wait until the approve call is on its way (get_payment and me are done).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while h.calls(&id, "get_payment").await == 0 {
        assert!(tokio::time::Instant::now() < deadline, "job never started");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    h.stop_workers().await;
    let row = h.row(&id).await;
    assert_eq!(
        row.state,
        PaymentState::Approved,
        "the in-flight job finished"
    );
    assert_eq!(h.calls(&id, "approve").await, 1);
    h.shutdown().await;
}

/// Pi answers `verification_failed` with a value it never documented (its index behind the
/// chain) although the Pioneer's transaction landed: the complete step tries again with backoff
/// and completes once Pi catches up; if Pi never does, the payment needs attention with Pi's
/// own words after the job's attempts.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_verification_error_is_retried_then_needs_attention_in_pis_words() {
    let h = Harness::start(Options {
        pi_retry: pi_payments_core::retry::RetryPolicy::none(),
        retry: pi_payments_worker::JobRetry {
            max_attempts: 4,
            base_delay: Duration::from_millis(20),
            max_delay: Duration::from_millis(100),
        },
        ..Options::default()
    })
    .await;
    for (uid, lag, want) in [
        ("lagged", 2, PaymentState::Completed),
        ("never", 1000, PaymentState::NeedsAttention),
    ] {
        let token = h.token(uid).await;
        let id = h.create_u2a(uid, "1", json!({})).await;
        h.approve_callback(&id, Some(&token)).await;
        h.wait_for(&id, PaymentState::Approved).await;
        let txid = h.submit(&id).await;
        h.set_faults(json!({ "verification_lag_next": lag })).await;
        h.complete_callback(&id, &txid).await;
        let row = h.wait_for(&id, want).await;
        if want == PaymentState::Completed {
            assert_eq!(h.calls(&id, "complete").await, 3, "two refusals, then done");
        } else {
            let reason = row.reason.unwrap_or_default();
            assert!(
                reason.contains("verification_failed: transaction_not_found"),
                "{reason}"
            );
        }
        h.set_faults(json!({ "verification_lag_next": 0 })).await;
    }
    h.shutdown().await;
}
