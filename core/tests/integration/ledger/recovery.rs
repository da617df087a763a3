//! Recovery without a sweep: a repeated approve/complete callback for a payment idle longer
//! than `STUCK_AFTER` re-enqueues its job, once per `STUCK_AFTER` however many repeats race.

use super::u2a_scenarios::txid;
use crate::support::ledger::pid;
use pi_payments_core::PaymentId;
use pi_payments_core::jobs::Job;
use pi_payments_core::ledger::{Callback, Ledger};
use std::time::Duration;

const STUCK_AFTER: Duration = Duration::from_millis(500);
const TOUCH: &str = "UPDATE payments SET updated_at = $2 WHERE id = $1";
const POSTPONE: &str = "UPDATE payments SET next_check_at = $2 WHERE id = $1";

/// Send `n` copies of `cb` at once, each recorded on its own (half of them through the batch
/// path), and return the jobs they asked for.
async fn flood(ledger: &Ledger, cb: &Callback, n: usize) -> Vec<Job> {
    let mut set = tokio::task::JoinSet::new();
    for i in 0..n {
        let (ledger, cb) = (ledger.clone(), cb.clone());
        set.spawn(async move {
            if i % 2 == 0 {
                ledger.record_callback(&cb).await.unwrap().job
            } else {
                let mut results = ledger.record_callbacks(vec![cb]).await;
                results.pop().unwrap().unwrap().job
            }
        });
    }
    let mut jobs = Vec::new();
    while let Some(job) = set.join_next().await {
        jobs.extend(job.unwrap());
    }
    jobs
}

/// Let the payment sit idle past `STUCK_AFTER`.
async fn idle() {
    tokio::time::sleep(STUCK_AFTER + Duration::from_millis(150)).await;
}

/// `UPDATE payments SET <column> = $2 WHERE id = $1`, one of the two this test touches.
async fn set_column(ledger: &Ledger, id: &PaymentId, sql: &'static str, value: i64) {
    sqlx::query(sql)
        .bind(id.as_str())
        .bind(value)
        .execute(ledger.pool())
        .await
        .unwrap();
}

pub async fn repeated_callbacks_of_an_idle_row_reenqueue_once(ledger: &Ledger) {
    let ledger = ledger.clone().with_stuck_after(STUCK_AFTER);
    let now = pi_payments_core::ledger::now_ms;

    // Approve: the first arrival enqueues; repeats within STUCK_AFTER do not.
    let id = pid(70);
    let approve = Callback::Approve {
        payment_id: id.clone(),
        credential: pi_payments_core::jobs::ApproveCredential::Missing,
    };
    assert_eq!(
        ledger.record_callback(&approve).await.unwrap().job,
        Some(Job::approve_with(
            id.clone(),
            pi_payments_core::jobs::ApproveCredential::Missing
        ))
    );
    assert!(flood(&ledger, &approve, 8).await.is_empty());
    // Idle past STUCK_AFTER (its job was lost): of a flood of repeats exactly one re-enqueues.
    idle().await;
    assert_eq!(
        flood(&ledger, &approve, 16).await,
        vec![Job::approve_with(
            id.clone(),
            pi_payments_core::jobs::ApproveCredential::Missing
        )]
    );
    assert!(flood(&ledger, &approve, 4).await.is_empty());
    idle().await;
    assert_eq!(
        flood(&ledger, &approve, 16).await,
        vec![Job::approve_with(
            id.clone(),
            pi_payments_core::jobs::ApproveCredential::Missing
        )],
        "once per STUCK_AFTER"
    );

    // A payment that moved recently, or waits (next_check_at) e.g. on a rate limit, is not idle.
    idle().await;
    set_column(&ledger, &id, TOUCH, now()).await;
    assert!(flood(&ledger, &approve, 4).await.is_empty());
    idle().await;
    set_column(&ledger, &id, POSTPONE, now() + 60_000).await;
    assert!(flood(&ledger, &approve, 4).await.is_empty());

    // Complete: the first arrival enqueues (its txid only a claim in the job); an idle one
    // is re-enqueued by a repeat, once.
    let id = pid(71);
    let complete = Callback::Complete {
        payment_id: id.clone(),
        txid: txid(71),
    };
    assert_eq!(
        ledger.record_callback(&complete).await.unwrap().job,
        Some(Job::complete_hinted(id.clone(), txid(71)))
    );
    assert!(flood(&ledger, &complete, 8).await.is_empty());
    idle().await;
    assert_eq!(
        flood(&ledger, &complete, 16).await,
        vec![Job::complete_hinted(id.clone(), txid(71))]
    );
    assert!(flood(&ledger, &complete, 4).await.is_empty());

    // Cancel callbacks never re-arm.
    let id = pid(72);
    let cancel = Callback::Cancel {
        payment_id: id.clone(),
    };
    assert!(ledger.record_callback(&cancel).await.unwrap().job.is_some());
    idle().await;
    assert!(flood(&ledger, &cancel, 4).await.is_empty());
}
