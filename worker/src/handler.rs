//! The one apalis handler every job worker runs: it hands the job to its kind's adapter (core's
//! U2A processor or payout processor). The match is exhaustive, so a new job kind does not
//! compile until it is handled here. When a payment's or payout's job ends, the ledger hears of
//! it (`Ledger::job_finished`): the sweeper counts a row as stuck only when a job finished on it
//! and the row did not move, never while its job is queued or still running. Every job's end
//! is counted and timed by kind and outcome (`pi_payments_jobs_total`).
//!
//! A job asked for by an HTTP request runs inside a `request{request_id=…}` span, so that every
//! log line of the job carries the id that the API's access log and `X-Request-Id` gave it.

use crate::context::HandlerCtx;
use crate::{payout, u2a};
use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use pi_payments_core::jobs::{Job, JobPayload};
use pi_payments_core::ledger::Swept;
use pi_payments_core::telemetry::{self, JobOutcome};
use pi_payments_core::u2a::{StepInput, U2aStep};
use std::sync::Arc;
use std::time::Instant;
use tracing::Instrument;

/// apalis handler for jobs of payload type `J`.
pub(crate) async fn handle_job<J: JobPayload>(
    job: J,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let started = Instant::now();
    let job: Job = job.into();
    let span = match job.request_id() {
        Some(request_id) => tracing::info_span!("request", request_id = %request_id),
        None => tracing::Span::none(),
    };
    let result = run_job(job, attempt, ctx).instrument(span).await;
    let outcome = match &result {
        Ok(()) => JobOutcome::Ok,
        Err(error) if error.is::<AbortError>() => JobOutcome::GaveUp,
        Err(_) => JobOutcome::Retry,
    };
    telemetry::record_job(J::KIND, outcome, started.elapsed());
    result
}

/// Run `job` and tell the ledger that it finished.
async fn run_job(
    job: Job,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let (kind, subject) = match &job {
        Job::Approve(j) => (Swept::Payment, j.payment_id.to_string()),
        Job::Complete(j) => (Swept::Payment, j.payment_id.to_string()),
        Job::Cancel(j) => (Swept::Payment, j.payment_id.to_string()),
        Job::RecordError(j) => (Swept::Payment, j.payment_id.to_string()),
        Job::Incomplete(j) => (Swept::Payment, j.payment_id.to_string()),
        Job::Payout(j) => (Swept::Payout, j.payout_id.to_string()),
    };
    let result = match job {
        Job::Approve(j) => {
            let input = StepInput {
                credential: j.credential.as_ref(),
                txid_hint: None,
            };
            u2a::run(U2aStep::Approve, &j.payment_id, input, &attempt, &ctx).await
        }
        Job::Complete(j) => {
            let input = StepInput {
                credential: None,
                txid_hint: j.txid_hint.as_ref(),
            };
            u2a::run(U2aStep::Complete, &j.payment_id, input, &attempt, &ctx).await
        }
        Job::Cancel(j) => {
            let input = StepInput::default();
            u2a::run(U2aStep::Cancel, &j.payment_id, input, &attempt, &ctx).await
        }
        Job::RecordError(j) => {
            let input = StepInput::default();
            u2a::run(U2aStep::RecordError, &j.payment_id, input, &attempt, &ctx).await
        }
        Job::Incomplete(j) => {
            let input = StepInput {
                credential: j.credential.as_ref(),
                txid_hint: None,
            };
            u2a::run(U2aStep::Incomplete, &j.payment_id, input, &attempt, &ctx).await
        }
        Job::Payout(j) => payout::run(j, &attempt, &ctx).await,
    };
    if let Err(error) = ctx.deps.ledger.job_finished(kind, &subject).await {
        // Only the sweeper's count of this row misses one run; the job's outcome stands.
        tracing::warn!(%error, subject, "could not record that a job finished");
    }
    result
}
