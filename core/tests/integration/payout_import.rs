//! Bulk imports on a SQLite file: committed in chunks (a failure part-way keeps the chunks
//! before it, and running the file again resumes), callbacks write between chunks instead of
//! behind the whole import, and a file imported twice leaves no empty batch.

use crate::support::ledger::{pid, sqlite};
use pi_payments_core::jobs::{ApproveCredential, RecordingQueue};
use pi_payments_core::ledger::{Callback, Ledger};
use pi_payments_core::payout_import::{
    BulkFormat, IMPORT_CHUNK_ROWS, ImportPace, parse_bulk, run_import, start_import,
};

/// A header-less CSV of `n` good rows with keys `k-0` … `k-{n-1}`.
fn csv(n: usize) -> Vec<u8> {
    let mut out = String::new();
    for i in 0..n {
        out.push_str(&format!("u-{i},0.5,Reward,k-{i}\n"));
    }
    out.into_bytes()
}

async fn payout_count(ledger: &Ledger) -> i64 {
    sqlx::query_scalar("SELECT COUNT(*) FROM payouts")
        .fetch_one(ledger.pool())
        .await
        .unwrap()
}

/// Import `bytes` as one file with `pace`; returns the result and the number of progress
/// steps reported.
async fn import(
    ledger: &Ledger,
    queue: &RecordingQueue,
    bytes: &[u8],
    pace: ImportPace,
) -> (
    Result<
        pi_payments_core::payout_import::BulkOutcome,
        pi_payments_core::payout_import::ImportStopped,
    >,
    u64,
) {
    let rows = parse_bulk(bytes, BulkFormat::Csv).unwrap();
    let started = start_import(ledger, "test.csv", rows).await.unwrap();
    let mut steps = 0u64;
    let result = run_import(ledger, queue, started, pace, &mut |_| steps += 1).await;
    (result, steps)
}

/// A 200k-row import was one transaction: a failure at its end lost everything, and nothing
/// was visible before it ended. Now the chunks before a failure stay recorded and queued, and
/// the same file again resumes where it stopped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_import_commits_chunk_by_chunk_and_resumes_after_a_failure() {
    let (ledger, cleanup) = sqlite().await;
    let queue = RecordingQueue::new();
    let rows = 10 * IMPORT_CHUNK_ROWS;
    // The row in the middle of the 6th chunk cannot be inserted (a stand-in for a crash).
    let failing = 5 * IMPORT_CHUNK_ROWS + IMPORT_CHUNK_ROWS / 2;
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "CREATE TRIGGER refuse_one BEFORE INSERT ON payouts WHEN NEW.idempotency_key = 'k-{failing}' \
         BEGIN SELECT RAISE(ABORT, 'refused by the test'); END"
    )))
    .execute(ledger.pool())
    .await
    .unwrap();
    let (result, steps) = import(&ledger, &queue, &csv(rows), ImportPace::IN_PROCESS).await;
    let stopped = result.unwrap_err();
    let committed = 5 * IMPORT_CHUNK_ROWS;
    assert_eq!(steps, 5);
    assert_eq!(stopped.outcome.accepted, committed as u64);
    assert_eq!(payout_count(&ledger).await, committed as i64);
    assert_eq!(queue.jobs().len(), committed, "committed chunks are queued");
    let batch = stopped.outcome.batch_id.clone().unwrap();
    assert_eq!(
        ledger.batch(&batch).await.unwrap().unwrap().accepted,
        committed as i64,
        "the batch's counts advance with each chunk"
    );

    // Fixed: the same file again creates the rest and counts the first chunks as duplicates.
    sqlx::query("DROP TRIGGER refuse_one")
        .execute(ledger.pool())
        .await
        .unwrap();
    let (result, steps) = import(&ledger, &queue, &csv(rows), ImportPace::IN_PROCESS).await;
    let outcome = result.unwrap();
    assert_eq!(steps, 10);
    assert_eq!(outcome.accepted, (rows - committed) as u64);
    assert_eq!(outcome.duplicates, committed as u64);
    assert!(!outcome.already_imported);
    assert_eq!(payout_count(&ledger).await, rows as i64);
    cleanup.done(ledger).await;
}

/// A callback batch recorded while an import runs is written between two chunks: it returns
/// while the import is still going, instead of after the whole file (24 s behind 200k rows).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn callbacks_write_between_the_chunks_of_an_import() {
    let (ledger, cleanup) = sqlite().await;
    let queue = RecordingQueue::new();
    let rows = 40 * IMPORT_CHUNK_ROWS;
    let bytes = csv(rows);
    let parsed = parse_bulk(&bytes, BulkFormat::Csv).unwrap();
    let started = start_import(&ledger, "big.csv", parsed).await.unwrap();
    let batch = started.batch_id.clone();
    let importer = {
        let ledger = ledger.clone();
        let queue = queue.clone();
        tokio::spawn(async move {
            run_import(
                &ledger,
                &queue,
                started,
                ImportPace::IN_PROCESS,
                &mut |_| {},
            )
            .await
        })
    };
    // Wait for the first chunk to be committed.
    let accepted_now = || async { ledger.batch(&batch).await.unwrap().unwrap().accepted };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while accepted_now().await == 0 {
        assert!(std::time::Instant::now() < deadline, "no chunk committed");
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let callbacks: Vec<Callback> = (0..5)
        .map(|n| Callback::Approve {
            payment_id: pid(n),
            credential: ApproveCredential::Missing,
        })
        .collect();
    for result in ledger.record_callbacks(callbacks).await {
        assert!(result.unwrap().created);
    }
    let accepted_after_callbacks = accepted_now().await;
    assert!(
        accepted_after_callbacks < rows as i64,
        "the callbacks waited for the whole import"
    );
    let outcome = importer.await.unwrap().unwrap();
    assert_eq!(outcome.accepted, rows as u64);
    cleanup.done(ledger).await;
}

/// The same file uploaded again made an empty batch: now nothing new is kept, and the outcome
/// names the batch the rows already belong to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_imported_again_answers_its_existing_batch() {
    let (ledger, cleanup) = sqlite().await;
    let queue = RecordingQueue::new();
    let bytes = csv(30);
    let (first, _) = import(&ledger, &queue, &bytes, ImportPace::IN_PROCESS).await;
    let first = first.unwrap();
    assert_eq!(first.accepted, 30);
    let batches = || async {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM payout_batches")
            .fetch_one(ledger.pool())
            .await
            .unwrap()
    };
    assert_eq!(batches().await, 1);
    let (again, _) = import(&ledger, &queue, &bytes, ImportPace::IN_PROCESS).await;
    let again = again.unwrap();
    assert!(again.already_imported);
    assert_eq!((again.accepted, again.duplicates), (0, 30));
    assert_eq!(again.batch_id, first.batch_id);
    assert_eq!(batches().await, 1, "no empty batch is left behind");
    // A file with new rows or refused rows still gets a batch of its own.
    let mut more = bytes.clone();
    more.extend_from_slice(b"u-x,1,Reward,k-x\n");
    let (third, _) = import(&ledger, &queue, &more, ImportPace::IN_PROCESS).await;
    let third = third.unwrap();
    assert!(!third.already_imported);
    assert_eq!((third.accepted, third.duplicates), (1, 30));
    assert_eq!(batches().await, 2);
    cleanup.done(ledger).await;
}
