//! Recording a parsed bulk file: one batch per file, refused rows counted on it, good rows
//! recorded in ledger transactions of [`ImportPace::chunk_rows`] rows each and their payout
//! jobs enqueued after each commit ([`run_import`]).
//!
//! Chunks keep an import from holding the ledger's write lock for long (a 200k-row file in one
//! SQLite transaction made callbacks wait up to 24 s), and make progress visible: the batch's
//! counts advance with each commit.
//!
//! An import is resumable: every row carries its idempotency key, so recording the same rows
//! again creates nothing for rows already accepted and counts them as duplicates. A file whose
//! every row was already imported leaves no new, empty batch behind: the answer names the
//! batch the rows belong to ([`BulkOutcome::already_imported`]).

use crate::jobs::{Job, JobQueue};
use crate::ledger::{Ledger, LedgerError, PayoutRequest};
use crate::payout::BatchId;
use crate::payout_import::parse::{BulkRow, RejectedRow};
use serde::Serialize;
use std::time::Duration;

/// Jobs pushed to the queue per call when rows are enqueued.
const ENQUEUE_CHUNK: usize = 1000;

/// Rows per ledger transaction. Measured (BENCHMARKS.md): about 60 ms of SQLite write lock
/// per 500 rows on the 2-core VM, well under the 1 s a callback may wait behind an import.
pub const IMPORT_CHUNK_ROWS: usize = 500;

/// How long an import beside other processes' writers pauses after each chunk on a SQLite
/// file: SQLite makes a waiting writer poll for the lock, at most 100 ms apart, so a gap at
/// least that long lets every waiting writer in before the next chunk.
pub const SQLITE_IMPORT_PAUSE: Duration = Duration::from_millis(100);

/// How an import paces its ledger transactions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ImportPace {
    /// Rows per ledger transaction.
    pub chunk_rows: usize,
    /// Pause after each committed chunk (to let other writers in).
    pub pause: Duration,
}

impl ImportPace {
    /// Beside this process's writers only (`POST /payouts/bulk`): the ledger hands the write
    /// turn to waiting callback batches between chunks, so no pause is needed.
    pub const IN_PROCESS: ImportPace = ImportPace {
        chunk_rows: IMPORT_CHUNK_ROWS,
        pause: Duration::ZERO,
    };

    /// Beside writers of other processes (`payouts import` next to a running service): on a
    /// SQLite file, a [`SQLITE_IMPORT_PAUSE`] after each chunk; on Postgres (row locks), none.
    pub fn beside_other_processes(ledger: &Ledger) -> ImportPace {
        ImportPace {
            chunk_rows: IMPORT_CHUNK_ROWS,
            pause: if ledger.is_sqlite_file() {
                SQLITE_IMPORT_PAUSE
            } else {
                Duration::ZERO
            },
        }
    }
}

/// What a bulk request (or `payouts import`) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct BulkOutcome {
    /// The batch the new payouts belong to.
    pub batch_id: Option<BatchId>,
    /// New payouts.
    pub accepted: u64,
    /// Rows whose key was already accepted with the same body (nothing new was created).
    pub duplicates: u64,
    /// Refused rows, by line.
    pub rejected: Vec<RejectedRow>,
    /// Every row was already imported: nothing new was recorded, no new batch was kept, and
    /// `batch_id` names the batch the rows belong to (`None` if they belong to several, or
    /// were requested one by one).
    pub already_imported: bool,
    /// The batches of the duplicate rows seen so far: `Some(None)` once they differ.
    #[serde(skip)]
    duplicates_batch: Option<Option<BatchId>>,
}

/// A started import ([`start_import`]): its batch, the good rows still to record with
/// [`run_import`], and the outcome so far (the refused rows).
#[derive(Debug)]
pub struct BulkImport {
    /// The batch created for the file.
    pub batch_id: BatchId,
    /// The parsed requests, with their line numbers, in file order.
    pub rows: Vec<(u64, PayoutRequest)>,
    /// `batch_id` set and the rows refused by parsing; [`run_import`] adds to it.
    pub outcome: BulkOutcome,
    /// The id of the request that uploaded the file (`X-Request-Id`), carried by every payout
    /// job of the import so that the worker's logs join the API's access log; `None` from
    /// [`start_import`] and for imports no request made (the CLI's).
    pub request_id: Option<String>,
}

/// Open a batch named `source` for parsed `rows`: the refused rows go to the outcome and to
/// the batch's rejected count, the good ones are returned for [`run_import`].
pub async fn start_import(
    ledger: &Ledger,
    source: &str,
    rows: Vec<BulkRow>,
) -> Result<BulkImport, LedgerError> {
    let batch = ledger.create_batch(Some(source)).await?;
    let mut outcome = BulkOutcome {
        batch_id: Some(batch.id.clone()),
        ..BulkOutcome::default()
    };
    let mut good = Vec::with_capacity(rows.len());
    for row in rows {
        match row.request {
            Ok(request) => good.push((row.line, request)),
            Err(error) => outcome.rejected.push(RejectedRow {
                line: row.line,
                error,
            }),
        }
    }
    if !outcome.rejected.is_empty() {
        let n = i64::try_from(outcome.rejected.len()).unwrap_or(i64::MAX);
        ledger.add_batch_rejected(&batch.id, n).await?;
    }
    Ok(BulkImport {
        batch_id: batch.id,
        rows: good,
        outcome,
        request_id: None,
    })
}

/// Record the rows of a started import in chunks of `pace.chunk_rows`, each its own ledger
/// transaction followed by the enqueueing of its payout jobs; `progress` is called with the
/// number of rows of each committed chunk. Refused rows are added to the outcome and to the
/// batch's count. Shared by the API and the CLI import.
///
/// If a chunk fails, the chunks before it stay recorded (and queued): the error carries the
/// outcome so far, and running the same file again resumes (accepted rows become duplicates).
/// If every row turns out to be a duplicate, the new batch is deleted and the outcome names
/// the rows' own batch ([`BulkOutcome::already_imported`]).
pub async fn run_import(
    ledger: &Ledger,
    queue: &dyn JobQueue,
    import: BulkImport,
    pace: ImportPace,
    progress: &mut (dyn FnMut(u64) + Send),
) -> Result<BulkOutcome, ImportStopped> {
    let BulkImport {
        batch_id,
        rows,
        mut outcome,
        request_id,
    } = import;
    let chunk_rows = pace.chunk_rows.max(1);
    let mut rest = rows.into_iter().peekable();
    while rest.peek().is_some() {
        let chunk: Vec<_> = rest.by_ref().take(chunk_rows).collect();
        let n = chunk.len() as u64;
        let recorded = record_chunk(
            ledger,
            queue,
            &batch_id,
            chunk,
            &mut outcome,
            request_id.as_deref(),
        )
        .await;
        if let Err(error) = recorded {
            outcome.rejected.sort_by_key(|r| r.line);
            return Err(ImportStopped { outcome, error });
        }
        progress(n);
        if rest.peek().is_some() {
            if pace.pause.is_zero() {
                tokio::task::yield_now().await;
            } else {
                tokio::time::sleep(pace.pause).await;
            }
        }
    }
    outcome.rejected.sort_by_key(|r| r.line);
    if outcome.accepted == 0 && outcome.rejected.is_empty() && outcome.duplicates > 0 {
        let deleted = ledger
            .delete_empty_batch(&batch_id)
            .await
            .map_err(|e| ImportStopped {
                outcome: outcome.clone(),
                error: e.into(),
            })?;
        if deleted {
            outcome.already_imported = true;
            outcome.batch_id = outcome.duplicates_batch.clone().flatten();
        }
    }
    Ok(outcome)
}

/// Record one chunk under `batch` in ONE ledger transaction, then enqueue a payout job for
/// every accepted or duplicate row still in flight.
///
/// The jobs are enqueued after the commit; if the queue fails, the error is returned and the
/// rows stay recorded: running the same request (or import) again enqueues them again.
async fn record_chunk(
    ledger: &Ledger,
    queue: &dyn JobQueue,
    batch: &BatchId,
    rows: Vec<(u64, PayoutRequest)>,
    outcome: &mut BulkOutcome,
    request_id: Option<&str>,
) -> Result<(), BulkRecordError> {
    if rows.is_empty() {
        return Ok(());
    }
    let (lines, requests): (Vec<u64>, Vec<PayoutRequest>) = rows
        .into_iter()
        .map(|(line, mut request)| {
            request.batch_id = Some(batch.clone());
            (line, request)
        })
        .unzip();
    let results = ledger.request_payouts_bulk(requests).await?;
    let mut jobs = Vec::new();
    for (line, result) in lines.into_iter().zip(results) {
        match result {
            Ok((row, created)) => {
                if created {
                    outcome.accepted += 1;
                } else {
                    outcome.duplicates += 1;
                    outcome.duplicates_batch = match outcome.duplicates_batch.take() {
                        None => Some(row.batch_id.clone()),
                        Some(seen) if seen == row.batch_id => Some(seen),
                        Some(_) => Some(None),
                    };
                }
                if row.state.is_in_flight() {
                    let job = Job::payout(row.id);
                    jobs.push(match request_id {
                        Some(id) => job.with_request_id(id),
                        None => job,
                    });
                }
            }
            Err(err) => outcome.rejected.push(RejectedRow {
                line,
                error: err.to_string(),
            }),
        }
    }
    for chunk in jobs.chunks(ENQUEUE_CHUNK) {
        queue
            .enqueue_many(chunk.to_vec())
            .await
            .map_err(|e| BulkRecordError::Queue(e.to_string()))?;
    }
    Ok(())
}

/// An import that stopped part-way ([`run_import`]): what was recorded before, and why.
#[derive(Debug, thiserror::Error)]
#[error("{error}")]
pub struct ImportStopped {
    /// The outcome of the chunks recorded before the failure.
    pub outcome: BulkOutcome,
    /// Why the import stopped.
    pub error: BulkRecordError,
}

/// Why recording a chunk of an import failed.
#[derive(Debug, thiserror::Error)]
pub enum BulkRecordError {
    /// The ledger transaction failed: nothing of this call was recorded.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The rows are recorded but their jobs are not queued.
    #[error(
        "the rows are recorded but their jobs could not be queued ({0}): send the same file again to queue them (nothing is paid twice)"
    )]
    Queue(String),
}
