//! How long callbacks wait behind a bulk import on a SQLite file ledger (issue 17: a 200k-row
//! import was one 26 s transaction and callbacks waited up to 24 s). Imports a header-less
//! CSV of N rows with `run_import` while one approve callback is recorded every 10 ms, and
//! prints the import's duration, the callbacks' worst and 99th-percentile wait, and the
//! largest WAL file seen.
//!
//! Run: `cargo bench --bench import_beside_callbacks -- [rows] [in-process|other-process]`
//! (release; default 200000 rows, in-process: the API's bulk route beside its callbacks;
//! other-process: the CLI's pacing, callbacks on a second ledger handle as another process
//! would write).

use pi_payments_core::PaymentId;
use pi_payments_core::jobs::{ApproveCredential, RecordingQueue};
use pi_payments_core::ledger::{Callback, Ledger};
use pi_payments_core::payout_import::{
    BulkFormat, ImportPace, parse_bulk, run_import, start_import,
};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let rows: usize = args
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(200_000);
    let other_process = args.get(1).is_some_and(|m| m == "other-process");
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("bench.db");
    let url = format!("sqlite://{}", file.display());
    let ledger = Ledger::connect(&url).await?;
    ledger.spawn_checkpointer();
    // Another process has its own connections (no shared write turn).
    let callbacks_ledger = if other_process {
        Ledger::connect(&url).await?
    } else {
        ledger.clone()
    };
    let pace = if other_process {
        ImportPace::beside_other_processes(&ledger)
    } else {
        ImportPace::IN_PROCESS
    };
    let mut csv = String::with_capacity(rows * 40);
    for i in 0..rows {
        csv.push_str(&format!("u-{i},0.5,Bench reward,bench-{i}\n"));
    }
    let parsed = parse_bulk(csv.as_bytes(), BulkFormat::Csv)?;
    let queue = RecordingQueue::new();

    let done = Arc::new(AtomicBool::new(false));
    let wal_peak = Arc::new(AtomicU64::new(0));
    let sampler = {
        let done = done.clone();
        let wal_peak = wal_peak.clone();
        let wal = dir.path().join("bench.db-wal");
        tokio::spawn(async move {
            while !done.load(Ordering::Relaxed) {
                let size = std::fs::metadata(&wal).map(|m| m.len()).unwrap_or(0);
                wal_peak.fetch_max(size, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
    };
    let caller = {
        let done = done.clone();
        tokio::spawn(async move {
            let mut waits = Vec::new();
            let mut n = 0u64;
            while !done.load(Ordering::Relaxed) {
                let id = PaymentId::parse(&format!("benchcb{n}")).expect("alphanumeric id");
                n += 1;
                let started = Instant::now();
                for result in callbacks_ledger
                    .record_callbacks(vec![Callback::Approve {
                        payment_id: id,
                        credential: ApproveCredential::Missing,
                    }])
                    .await
                {
                    result.expect("callback recorded");
                }
                waits.push(started.elapsed());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            waits
        })
    };
    let started = Instant::now();
    let import = start_import(&ledger, "bench.csv", parsed).await?;
    let outcome = run_import(&ledger, &queue, import, pace, &mut |_| {}).await?;
    let took = started.elapsed();
    done.store(true, Ordering::Relaxed);
    let mut waits = caller.await?;
    sampler.await?;
    waits.sort();
    let worst = waits.last().copied().unwrap_or_default();
    let p99 = waits
        .get(waits.len().saturating_sub(1) * 99 / 100)
        .copied()
        .unwrap_or_default();
    println!(
        "{} rows ({}): import {:.1} s; {} callbacks meanwhile, worst wait {:.0} ms, p99 {:.0} ms; WAL peak {} MiB",
        outcome.accepted,
        if other_process {
            "other-process pacing"
        } else {
            "in-process"
        },
        took.as_secs_f64(),
        waits.len(),
        worst.as_secs_f64() * 1000.0,
        p99.as_secs_f64() * 1000.0,
        wal_peak.load(Ordering::Relaxed) / (1024 * 1024)
    );
    ledger.close().await;
    Ok(())
}
