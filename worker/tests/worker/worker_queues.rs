//! `WORKER_QUEUES`: a process runs only the job kinds it was given; the others wait in their
//! queues for a process that runs them.

use crate::support::{Harness, Options};
use pi_payments_core::jobs::JobKind;
use pi_payments_core::state::PaymentState;
use serde_json::json;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_runs_only_its_job_kinds() {
    let h = Harness::start(Options {
        kinds: vec![JobKind::Approve],
        ..Options::default()
    })
    .await;
    let token = h.token("alice").await;
    let id = h.create_u2a("alice", "1", json!({})).await;
    h.approve_callback(&id, Some(&token)).await;
    h.wait_for(&id, PaymentState::Approved).await;

    // The complete job is queued (the payment stays approved: the callback's txid is only a
    // claim), but no worker of this process takes complete jobs.
    let txid = h.submit(&id).await;
    h.complete_callback(&id, &txid).await;
    h.settle().await;
    assert_eq!(h.row(&id).await.state, PaymentState::Approved);
    assert_eq!(h.calls(&id, "complete").await, 0);
    h.shutdown().await;
}
