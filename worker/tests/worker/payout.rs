//! The payout worker: A2U payouts enqueued as jobs are driven to completion through core's
//! payout pipeline (its own tests cover the pipeline; this checks the worker runs it).

use crate::support::{Harness, Options};
use pi_payments_core::PiAmount;
use pi_payments_core::ids::Uid;
use pi_payments_core::jobs::Job;
use pi_payments_core::ledger::PayoutRequest;
use pi_payments_core::state::PayoutState;
use serde_json::json;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_are_paid_once_through_the_worker() {
    let h = Harness::start(Options {
        payouts: true,
        ..Options::default()
    })
    .await;
    let mut ids = Vec::new();
    for i in 0..3 {
        let uid = format!("winner{i}");
        h.control.user(&uid).await.unwrap();
        let (row, created) = h
            .ledger
            .request_payout(PayoutRequest {
                uid: Uid::parse(&uid).unwrap(),
                amount: PiAmount::parse("0.5").unwrap(),
                memo: "reward".into(),
                metadata: json!({}),
                idempotency_key: format!("reward-{i}"),
                batch_id: None,
            })
            .await
            .unwrap();
        assert!(created);
        ids.push(row.id);
    }
    h.queue
        .push_jobs(ids.iter().cloned().map(Job::payout).collect())
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    for id in &ids {
        loop {
            let row = h.ledger.payout(id).await.unwrap().unwrap();
            if row.state == PayoutState::Completed {
                break;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "payout {id} stuck in {:?}",
                row.state
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let audit = h.audit().await;
    assert_eq!(audit["ok"], true, "{audit}");
    h.shutdown().await;
}
