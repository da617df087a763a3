//! How fast the ledger records first-arrival approve callbacks, by batch size, on a SQLite
//! file (the embedded default). This is the floor under the API's callback throughput: the
//! API group-commits callbacks through `Ledger::record_callbacks`.
//!
//! Run: `cargo bench --bench ledger_callbacks` (release). Optional arguments:
//! `-- <callbacks per run> <batch sizes, comma-separated> [database url]`.

use pi_payments_core::PaymentId;
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::ledger::{Callback, Ledger};
use std::time::Instant;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // `cargo bench` passes `--bench`; skip flags.
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let total: usize = args
        .first()
        .map(|s| s.parse())
        .transpose()?
        .unwrap_or(20_000);
    let sizes: Vec<usize> = match args.get(1) {
        Some(list) => list.split(',').map(str::parse).collect::<Result<_, _>>()?,
        None => vec![1, 8, 32, 128, 256],
    };
    let dir = tempfile::tempdir()?;
    let default_url = format!("sqlite://{}", dir.path().join("bench.db").display());
    let url = args.get(2).cloned().unwrap_or(default_url);
    let ledger = Ledger::connect(&url).await?;
    println!(
        "ledger {:?}, {total} first-arrival approve callbacks per batch size",
        ledger.kind()
    );
    println!("{:>6} {:>12} {:>12}", "batch", "callbacks/s", "ms/batch");
    for (run, &size) in sizes.iter().enumerate() {
        let started = Instant::now();
        let mut done = 0;
        while done < total {
            let n = size.min(total - done);
            let batch: Vec<Callback> = (done..done + n)
                .map(|i| Callback::Approve {
                    payment_id: PaymentId::parse(&format!("bench{run}x{i}"))
                        .expect("bench ids are alphanumeric"),
                    credential: ApproveCredential::from_token(
                        pi_payments_core::secret::AccessToken::new("bench-token"),
                    ),
                })
                .collect();
            for result in ledger.record_callbacks(batch).await {
                result?;
            }
            done += n;
        }
        let secs = started.elapsed().as_secs_f64();
        let batches = total.div_ceil(size) as f64;
        println!(
            "{size:>6} {:>12.0} {:>12.3}",
            total as f64 / secs,
            secs * 1000.0 / batches
        );
    }
    Ok(())
}
