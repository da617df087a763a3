//! `delete_redis_namespace` (used by `pi-payments bench callbacks --redis`) removes every key
//! of one namespace's queues and nothing of another's. Needs Redis at TEST_REDIS_URL.

use pi_payments_core::PaymentId;
use pi_payments_core::jobs::{Job, JobQueue};
use pi_payments_worker::{QueueConfig, connect_queue, delete_redis_namespace};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

async fn keys_of(namespace: &str) -> Vec<String> {
    let client = redis::Client::open(redis_url()).unwrap();
    let mut conn = client.get_multiplexed_async_connection().await.unwrap();
    redis::cmd("KEYS")
        .arg(format!("{namespace}:*"))
        .query_async(&mut conn)
        .await
        .unwrap()
}

async fn queue_with_jobs(namespace: &str) {
    let queue = connect_queue(&QueueConfig {
        redis_url: Some(redis_url()),
        namespace: namespace.to_string(),
        ..QueueConfig::embedded("unused.db")
    })
    .await
    .expect("TEST_REDIS_URL must reach a running Redis");
    let jobs = (0..5)
        .map(|n| Job::approve(PaymentId::parse(&format!("{namespace}p{n}")).unwrap()))
        .collect();
    queue.enqueue_many(jobs).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_namespace_leaves_other_namespaces_alone() {
    let suffix = pi_payments_core::ids::random_alnum(8);
    let (doomed, kept) = (format!("nsdel{suffix}"), format!("nskeep{suffix}"));
    queue_with_jobs(&doomed).await;
    queue_with_jobs(&kept).await;
    let kept_before = keys_of(&kept).await;
    assert!(!keys_of(&doomed).await.is_empty(), "jobs were pushed");

    let deleted = delete_redis_namespace(&redis_url(), &doomed).await.unwrap();

    assert!(deleted > 0);
    assert!(
        keys_of(&doomed).await.is_empty(),
        "every key of the namespace went"
    );
    let mut kept_after = keys_of(&kept).await;
    let mut kept_before = kept_before;
    kept_before.sort();
    kept_after.sort();
    assert_eq!(kept_after, kept_before, "the other namespace is untouched");
    delete_redis_namespace(&redis_url(), &kept).await.unwrap();
}

#[tokio::test]
async fn a_namespace_with_glob_characters_is_refused() {
    for namespace in ["", "*", "a b", "bench[1]", "x?"] {
        let err = delete_redis_namespace("redis://127.0.0.1:1", namespace)
            .await
            .expect_err("refused before connecting");
        assert!(err.to_string().contains("namespace"), "{err}");
    }
}
