//! Enqueue throughput of [`Queue`] the way the API uses it: many concurrent callers, one job
//! each. The queue's per-job-type batcher turns them into bulk pushes.
//!
//! ```text
//! cargo run --release -p pi-payments-worker --example enqueue -- [--jobs 50000] [--callers 256] [--redis URL] [--keep true]
//! ```

use pi_payments_core::ids::PaymentId;
use pi_payments_core::jobs::{Job, JobQueue};
use pi_payments_worker::{QueueConfig, connect_queue};
use std::sync::Arc;
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut jobs: usize = 50_000;
    let mut callers: usize = 256;
    let mut redis: Option<String> = None;
    let mut keep = false;
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().ok_or(format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--jobs" => jobs = value.parse()?,
            "--callers" => callers = value.parse()?,
            "--redis" => redis = Some(value),
            "--keep" => keep = value == "true",
            other => return Err(format!("unknown flag {other}; usage: enqueue [--jobs N] [--callers N] [--redis URL] [--keep true]").into()),
        }
    }
    let dir = std::env::temp_dir().join(format!("pi-enqueue-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    let namespace = format!("enqueue{}", std::process::id());
    let queue = Arc::new(
        connect_queue(&QueueConfig {
            redis_url: redis.clone(),
            sqlite_path: dir.join("queue.db"),
            namespace: namespace.clone(),
        })
        .await?,
    );
    let per_caller = jobs.div_ceil(callers.max(1));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for c in 0..callers {
        let queue = queue.clone();
        tasks.push(tokio::spawn(async move {
            for i in 0..per_caller {
                let id = PaymentId::parse(&format!("c{c}j{i}")).expect("valid id");
                queue.enqueue(Job::approve(id)).await?;
            }
            Ok::<(), pi_payments_core::jobs::QueueError>(())
        }));
    }
    for task in tasks {
        task.await??;
    }
    let elapsed = started.elapsed().as_secs_f64();
    let total = per_caller * callers;
    println!(
        "{{\"queue\":\"{}\",\"jobs\":{total},\"callers\":{callers},\"seconds\":{elapsed:.3},\"jobs_per_s\":{:.0}}}",
        queue.backend_name(),
        total as f64 / elapsed
    );
    let _ = std::fs::remove_dir_all(&dir);
    if let (Some(url), false) = (redis, keep) {
        // Leave the shared Redis as we found it.
        let mut conn = redis::Client::open(url)?
            .get_multiplexed_async_connection()
            .await?;
        let mut cursor: u64 = 0;
        loop {
            let (next, keys): (u64, Vec<String>) = redis::cmd("SCAN")
                .arg(cursor)
                .arg("MATCH")
                .arg(format!("{namespace}:*"))
                .arg("COUNT")
                .arg(1000)
                .query_async(&mut conn)
                .await?;
            if !keys.is_empty() {
                let _: u64 = redis::cmd("DEL").arg(&keys).query_async(&mut conn).await?;
            }
            if next == 0 {
                break;
            }
            cursor = next;
        }
    }
    Ok(())
}
