//! Recording a parsed bulk file: one batch per file, refused rows counted on it, good rows
//! recorded in ledger transactions and their payout jobs enqueued after each commit.
//!
//! An import is resumable: every row carries its idempotency key, so recording the same rows
//! again creates nothing for rows already accepted and counts them as duplicates.

use crate::jobs::{Job, JobQueue};
use crate::ledger::{Ledger, LedgerError, PayoutRequest};
use crate::payout::BatchId;
use crate::payout_import::parse::{BulkRow, RejectedRow};
use serde::Serialize;

/// Jobs pushed to the queue per call when rows are enqueued.
const ENQUEUE_CHUNK: usize = 1000;

/// What a bulk request (or `payouts import`) did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BulkOutcome {
    /// The batch the new payouts belong to.
    pub batch_id: Option<BatchId>,
    /// New payouts.
    pub accepted: u64,
    /// Rows whose key was already accepted with the same body (nothing new was created).
    pub duplicates: u64,
    /// Refused rows, by line.
    pub rejected: Vec<RejectedRow>,
}

/// A started import ([`start_import`]): its batch, the good rows still to record with
/// [`record_bulk`], and the outcome so far (the refused rows).
#[derive(Debug)]
pub struct BulkImport {
    /// The batch created for the file.
    pub batch_id: BatchId,
    /// The parsed requests, with their line numbers, in file order.
    pub rows: Vec<(u64, PayoutRequest)>,
    /// `batch_id` set and the rows refused by parsing; [`record_bulk`] adds to it.
    pub outcome: BulkOutcome,
}

/// Open a batch named `source` for parsed `rows`: the refused rows go to the outcome and to
/// the batch's rejected count, the good ones are returned for [`record_bulk`].
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
    })
}

/// Record `rows` (line, request) under `batch` in ONE ledger transaction and enqueue a payout
/// job for every accepted or duplicate row still in flight. Refused rows are added to
/// `outcome.rejected` and to the batch's count. Shared by the API and the CLI import.
///
/// The jobs are enqueued after the commit; if the queue fails, the error is returned and the
/// rows stay recorded: running the same request (or import) again enqueues them again.
pub async fn record_bulk(
    ledger: &Ledger,
    queue: &dyn JobQueue,
    batch: &BatchId,
    rows: Vec<(u64, PayoutRequest)>,
    outcome: &mut BulkOutcome,
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
                }
                if row.state.is_in_flight() {
                    jobs.push(Job::payout(row.id));
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

/// Why [`record_bulk`] failed as a whole.
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
