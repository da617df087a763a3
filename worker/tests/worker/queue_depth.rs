//! `JobQueue::depths` (read by `/metrics` at scrape time): jobs ready to run and jobs waiting
//! for their time, per kind, on both backends, and only this namespace's.

use pi_payments_core::PaymentId;
use pi_payments_core::ids::PayoutId;
use pi_payments_core::jobs::{Job, JobKind, JobQueue, QueueDepth};
use pi_payments_worker::{Queue, QueueConfig, connect_queue};
use std::time::Duration;

/// Three approve jobs ready and one payout scheduled an hour ahead, in `queue`.
async fn fill(queue: &Queue, prefix: &str) {
    let approves = (0..3)
        .map(|n| Job::approve(PaymentId::parse(&format!("{prefix}p{n}")).unwrap()))
        .collect();
    queue.enqueue_many(approves).await.unwrap();
    queue
        .push_delayed(Job::payout(PayoutId::generate()), Duration::from_secs(3600))
        .await
        .unwrap();
}

fn depth(depths: &[QueueDepth], kind: JobKind) -> (u64, u64) {
    let d = depths
        .iter()
        .find(|d| d.kind == kind)
        .expect("every kind is listed");
    (d.ready, d.scheduled)
}

async fn check(config: QueueConfig, other: QueueConfig) {
    let prefix = pi_payments_core::ids::random_alnum(8);
    let queue = connect_queue(&config).await.unwrap();
    let neighbour = connect_queue(&other).await.unwrap();
    fill(&queue, &prefix).await;
    fill(&neighbour, &format!("{prefix}x")).await;
    let depths = queue.depths().await.unwrap();
    assert_eq!(depths.len(), JobKind::ALL.len());
    assert_eq!(depth(&depths, JobKind::Approve), (3, 0));
    assert_eq!(depth(&depths, JobKind::Payout), (0, 1));
    assert_eq!(depth(&depths, JobKind::Complete), (0, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depths_of_the_embedded_queue() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("queue.db");
    let config = |namespace: &str| QueueConfig {
        namespace: namespace.to_string(),
        ..QueueConfig::embedded(file.clone())
    };
    check(config("depthmine"), config("depthother")).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn depths_of_the_redis_queue() {
    let suffix = pi_payments_core::ids::random_alnum(8);
    let config = |namespace: String| QueueConfig {
        redis_url: Some(crate::support::redis_url()),
        namespace,
        ..QueueConfig::embedded("unused.db")
    };
    check(
        config(format!("depth{suffix}")),
        config(format!("depthother{suffix}")),
    )
    .await;
    for ns in [format!("depth{suffix}"), format!("depthother{suffix}")] {
        let _ = pi_payments_worker::delete_redis_namespace(&crate::support::redis_url(), &ns).await;
    }
}
