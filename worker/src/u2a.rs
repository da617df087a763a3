//! The U2A job handlers: approve, complete, cancel, record-error and incomplete.
//!
//! Every handler may run twice or concurrently with itself (queues deliver at least once): it
//! first reads the ledger row, and the state machine decides whether its step is still due.
//! What the frontend claimed is never trusted; the handlers re-read the payment at Pi
//! (`GET /v2/payments/{id}`), the Pioneer at Pi (`GET /v2/me`) and the transaction on Horizon.
//! Pi's payment id makes approve and complete safe to repeat; an `already_*` answer counts as
//! success only after a `GET` confirms it.
//!
//! Failures come in two kinds. Transient ones (429, 5xx, timeouts, a transaction Horizon does
//! not show yet, a busy ledger) fail the job, which apalis retries with backoff; the handler
//! counts attempts itself and, at the cap, moves the payment to `needs_attention` and aborts the
//! job. Definite ones (a wrong txid, a failed on-chain check) go to `needs_attention` at once.
//! Either way the final word is in the ledger, where a person can see and act on it.

use crate::runner::WorkerDeps;
use apalis::prelude::{AbortError, Attempt, BoxDynError, Data};
use pi_payments_core::PiAmount;
use pi_payments_core::dto::{Direction, PaymentDto};
use pi_payments_core::horizon::VerificationProblem;
use pi_payments_core::ids::{OrderId, PaymentId, Txid};
use pi_payments_core::jobs::{
    ApproveJob, CancelJob, CompleteJob, DeliverEventJob, IncompleteJob, RecordErrorJob,
};
use pi_payments_core::ledger::{
    Applied, Direction as LedgerDirection, LedgerError, OrderState, PaymentPatch, PaymentRow,
};
use pi_payments_core::pi_client::PiError;
use pi_payments_core::state::{PaymentState, Transition};
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tracing::Instrument;

/// How many times a job is tried, and the backoff between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRetry {
    /// Total tries of one job (the first included); at the last failed one the payment goes to
    /// `needs_attention`.
    pub max_attempts: u32,
    /// First backoff; doubles per try, with jitter.
    pub base_delay: Duration,
    /// Backoff ceiling.
    pub max_delay: Duration,
}

impl Default for JobRetry {
    /// 8 tries, 1 s doubling to 30 s: about two minutes of trying (on top of the Pi client's own
    /// short retries) before a person is asked to look.
    fn default() -> Self {
        JobRetry {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// What every handler gets through apalis' `Data`.
pub(crate) struct HandlerCtx {
    pub(crate) deps: WorkerDeps,
    pub(crate) retry: JobRetry,
    /// For jobs that enqueue their own next step (payouts).
    pub(crate) queue: crate::queue::Queue,
    /// Wakes the webhook deliverer (a new event may be due).
    pub(crate) webhook_nudge: Arc<tokio::sync::Notify>,
}

impl HandlerCtx {
    pub(crate) fn new(
        deps: WorkerDeps,
        queue: crate::queue::Queue,
        webhook_nudge: Arc<tokio::sync::Notify>,
    ) -> HandlerCtx {
        HandlerCtx {
            retry: deps.retry,
            deps,
            queue,
            webhook_nudge,
        }
    }
}

/// Why a step did not finish.
#[derive(Debug)]
enum JobError {
    /// May work later: retry with backoff, give up at the attempt cap.
    Transient(String),
    /// Will not work by retrying: the payment needs a person now.
    Attention(String),
}

impl From<LedgerError> for JobError {
    fn from(e: LedgerError) -> Self {
        match e {
            // A busy or briefly unreachable database, or a concurrent update: try again.
            LedgerError::Db(_) | LedgerError::Concurrent(_) | LedgerError::Connect(_) => {
                JobError::Transient(e.to_string())
            }
            other => JobError::Attention(other.to_string()),
        }
    }
}

/// Classify a Pi error that the step has no specific answer for.
fn pi_failure(what: &str, e: PiError) -> JobError {
    if e.is_retryable() {
        JobError::Transient(format!("{what}: {e}"))
    } else {
        JobError::Attention(format!("{what}: {e}"))
    }
}

type StepResult = Result<(), JobError>;

/// Run one step in a span carrying the payment id, and turn its outcome into what apalis needs.
async fn run_step<F>(
    job: &'static str,
    payment_id: &PaymentId,
    attempt: &Attempt,
    ctx: &HandlerCtx,
    step: F,
) -> Result<(), BoxDynError>
where
    F: Future<Output = StepResult>,
{
    let n = attempt.current().max(1);
    let span = tracing::info_span!("job", job, payment_id = %payment_id, attempt = n);
    async move {
        let error = match step.await {
            Ok(()) => {
                // Any transition may have written an outbox event.
                ctx.webhook_nudge.notify_one();
                return Ok(());
            }
            Err(e) => e,
        };
        let last = u32::try_from(n).unwrap_or(u32::MAX) >= ctx.retry.max_attempts;
        match error {
            JobError::Transient(reason) if !last => {
                tracing::warn!(%reason, "step failed; will retry");
                // Best effort: the history shows every try. A ledger error here changes nothing.
                if let Err(e) = ctx
                    .deps
                    .ledger
                    .note(payment_id, "attempt_failed", Some(&reason), n as i64, None)
                    .await
                {
                    tracing::debug!(error = %e, "could not note the failed attempt");
                }
                Err(reason.into())
            }
            JobError::Transient(reason) => {
                let reason = format!("gave up after {n} attempts: {reason}");
                give_up(ctx, payment_id, &reason, n).await
            }
            JobError::Attention(reason) => give_up(ctx, payment_id, &reason, n).await,
        }
    }
    .instrument(span)
    .await
}

/// Move the payment to `needs_attention` and stop the job for good.
async fn give_up(
    ctx: &HandlerCtx,
    payment_id: &PaymentId,
    reason: &str,
    attempt: usize,
) -> Result<(), BoxDynError> {
    tracing::error!(%reason, "payment needs attention");
    let applied = ctx
        .deps
        .ledger
        .apply(
            payment_id,
            Transition::GaveUp {
                reason: reason.to_string(),
            },
            Some(reason),
            attempt as i64,
            PaymentPatch::default(),
        )
        .await;
    match applied {
        Ok(_) => ctx.webhook_nudge.notify_one(),
        // Completed or cancelled meanwhile (another run finished it): nothing to flag.
        Err(LedgerError::InvalidTransition(e)) => {
            tracing::info!(error = %e, "payment already settled; not flagging it")
        }
        // The ledger is unreachable: let the job be retried so the outcome is not lost.
        Err(e) => return Err(format!("could not record needs_attention: {e}").into()),
    }
    Err(Box::new(AbortError::new(GaveUp(reason.to_string()))))
}

/// The error an aborted job carries into apalis' dead set.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
struct GaveUp(String);

/// Apply a transition; a transition the payment has moved past is not an error (another run of
/// this job, or another job, got there first).
async fn apply(
    deps: &WorkerDeps,
    id: &PaymentId,
    transition: Transition,
    attempt: usize,
    patch: PaymentPatch,
) -> Result<Option<Applied>, JobError> {
    let detail = transition.reason().map(str::to_string);
    match deps
        .ledger
        .apply(id, transition, detail.as_deref(), attempt as i64, patch)
        .await
    {
        Ok(applied) => Ok(Some(applied)),
        Err(LedgerError::InvalidTransition(e)) => {
            tracing::info!(error = %e, "payment moved on; nothing to record");
            Ok(None)
        }
        Err(e) => Err(e.into()),
    }
}

/// Load the ledger row of a U2A payment; `None` (with a log line) if no callback ever recorded
/// it, or if it is one of our A2U payouts (a U2A job must never touch those, e.g. cancel them
/// because someone sent a payout's id to the approve callback).
async fn load(deps: &WorkerDeps, id: &PaymentId) -> Result<Option<PaymentRow>, JobError> {
    let row = deps.ledger.payment(id).await?;
    match &row {
        None => tracing::warn!("job for a payment the ledger does not know; dropping it"),
        Some(r) if r.direction != LedgerDirection::UserToApp => {
            tracing::warn!("U2A job for an app-to-user payment; ignoring it");
            return Ok(None);
        }
        Some(_) => {}
    }
    Ok(row)
}

/// Facts read from Pi's DTO, stored with the transition.
fn patch_from(dto: &PaymentDto) -> PaymentPatch {
    PaymentPatch {
        uid: Some(dto.user_uid.clone()),
        amount: Some(dto.amount),
        memo: Some(dto.memo.clone()),
        metadata: Some(dto.metadata.clone()),
        ..PaymentPatch::default()
    }
}

fn cancelled_reason(dto: &PaymentDto) -> Option<String> {
    if dto.status.user_cancelled {
        Some("cancelled by the Pioneer (Pi shows user_cancelled)".to_string())
    } else if dto.status.cancelled {
        Some("cancelled at Pi (Pi shows cancelled)".to_string())
    } else {
        None
    }
}

// ---------------------------------------------------------------------------------------------
// approve

/// apalis handler: decide and approve (or refuse) a U2A payment.
pub(crate) async fn approve(
    job: ApproveJob,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let n = attempt.current().max(1);
    run_step(
        "approve",
        &job.payment_id,
        &attempt,
        &ctx,
        approve_step(&ctx.deps, &job.payment_id, n),
    )
    .await
}

async fn approve_step(deps: &WorkerDeps, id: &PaymentId, attempt: usize) -> StepResult {
    let Some(row) = load(deps, id).await? else {
        return Ok(());
    };
    if row.state != PaymentState::Received {
        tracing::info!(state = %row.state, "approval already decided; skipping");
        return Ok(());
    }
    let dto = deps
        .pi
        .get_payment(id)
        .await
        .map_err(|e| pi_failure("reading the payment at Pi", e))?;

    if let Some(reason) = cancelled_reason(&dto) {
        apply(
            deps,
            id,
            Transition::CancelledAtPi { reason },
            attempt,
            patch_from(&dto),
        )
        .await?;
        return Ok(());
    }
    // Some real payloads omit `direction`; an explicit other direction is not ours to approve
    // or to cancel (it may be one of the app's own payouts).
    if let Some(direction) = &dto.direction
        && *direction != Direction::UserToApp
    {
        return Err(JobError::Attention(format!(
            "Pi shows this payment as {direction:?}, not user-to-app: it was sent to the U2A approve callback by mistake or on purpose; nothing was done at Pi"
        )));
    }
    if dto.status.developer_approved {
        // Approved already (our earlier attempt whose answer was lost): record, don't call.
        tracing::info!("already approved at Pi; recording without calling approve");
        record_approved(deps, id, &dto, attempt).await?;
        return Ok(());
    }
    match approval_refusal(deps, id, &dto).await? {
        Some(reason) => refuse(deps, id, &dto, reason, attempt).await,
        None => {
            let approved = match deps.pi.approve(id).await {
                Ok(approved) => approved,
                Err(e) => match e.root() {
                    PiError::AlreadyApproved { .. } => confirm_approved(deps, id).await?,
                    PiError::CancelledPayment => {
                        let reason = "cancelled at Pi before approval".to_string();
                        apply(
                            deps,
                            id,
                            Transition::CancelledAtPi { reason },
                            attempt,
                            patch_from(&dto),
                        )
                        .await?;
                        return Ok(());
                    }
                    _ => return Err(pi_failure("approving at Pi", e)),
                },
            };
            record_approved(deps, id, &approved, attempt).await
        }
    }
}

/// After `already_approved`: trust it only if a fresh `GET` shows the payment approved.
async fn confirm_approved(deps: &WorkerDeps, id: &PaymentId) -> Result<PaymentDto, JobError> {
    let dto = deps
        .pi
        .get_payment(id)
        .await
        .map_err(|e| pi_failure("confirming approval at Pi", e))?;
    if dto.status.developer_approved {
        Ok(dto)
    } else {
        Err(JobError::Transient(
            "Pi answered already_approved but the payment does not show approved yet".into(),
        ))
    }
}

/// Record `approved`, binding the payment's order. If the order was taken meanwhile by another
/// payment, this payment is cancelled at Pi (it has no transaction yet, so Pi allows it).
async fn record_approved(
    deps: &WorkerDeps,
    id: &PaymentId,
    dto: &PaymentDto,
    attempt: usize,
) -> StepResult {
    let mut patch = patch_from(dto);
    patch.order_id = order_id_of(dto);
    match deps
        .ledger
        .apply(id, Transition::PiApproved, None, attempt as i64, patch)
        .await
    {
        Ok(_) => Ok(()),
        Err(LedgerError::OrderUnavailable { why, .. }) => {
            let reason = format!("the order cannot take this payment: {why}");
            refuse(deps, id, dto, reason, attempt).await
        }
        Err(LedgerError::InvalidTransition(e)) => {
            tracing::info!(error = %e, "payment moved on; nothing to record");
            Ok(())
        }
        Err(e) => Err(e.into()),
    }
}

/// The order id in the payment's metadata (`orderId`), if it is a valid one.
fn order_id_of(dto: &PaymentDto) -> Option<OrderId> {
    dto.metadata
        .get("orderId")
        .and_then(|v| v.as_str())
        .and_then(|s| OrderId::parse(s).ok())
}

/// Why this payment must not be approved, or `None` when every check passes.
async fn approval_refusal(
    deps: &WorkerDeps,
    id: &PaymentId,
    dto: &PaymentDto,
) -> Result<Option<String>, JobError> {
    // Who is paying: the token's owner must be the payment's Pioneer.
    let Some(token) = deps.ledger.access_token(id).await? else {
        return Ok(Some(
            "no access token came with the approve callback: send accessToken (or an Authorization: Bearer header) so the Pioneer can be verified".into(),
        ));
    };
    let me = match deps.pi.me(&token).await {
        Ok(me) => me,
        Err(e) => match e.root() {
            PiError::InvalidToken | PiError::Unauthorized => {
                return Ok(Some(
                    "the access token is invalid or expired (Pi answered 401 on /me)".into(),
                ));
            }
            _ => return Err(pi_failure("reading the Pioneer at Pi (/me)", e)),
        },
    };
    if me.uid != dto.user_uid {
        return Ok(Some(
            "the payment belongs to a different Pioneer than the access token".into(),
        ));
    }

    // What is being paid: the order's price, exactly.
    match dto.metadata.get("orderId") {
        None | Some(serde_json::Value::Null) => {
            if deps.require_order {
                return Ok(Some(
                    "REQUIRE_ORDER is on and the payment's metadata has no orderId".into(),
                ));
            }
        }
        Some(raw) => {
            let Some(order_id) = raw.as_str().and_then(|s| OrderId::parse(s).ok()) else {
                return Ok(Some(
                    "the payment's metadata.orderId is not a valid order id".into(),
                ));
            };
            let Some(order) = deps.ledger.order(&order_id).await? else {
                return Ok(Some(format!("order {order_id} does not exist")));
            };
            if order.state != OrderState::Open {
                return Ok(Some(format!(
                    "order {order_id} is {} and cannot be paid",
                    order.state.as_str()
                )));
            }
            if let Some(other) = &order.payment_id
                && other != id
            {
                return Ok(Some(format!(
                    "order {order_id} is already being paid by another payment"
                )));
            }
            if order.amount != dto.amount {
                return Ok(Some(format!(
                    "amount {} differs from the order's price {}",
                    dto.amount, order.amount
                )));
            }
        }
    }
    Ok(None)
}

/// Cancel the payment at Pi and record it as refused, with the reason.
async fn refuse(
    deps: &WorkerDeps,
    id: &PaymentId,
    dto: &PaymentDto,
    reason: String,
    attempt: usize,
) -> StepResult {
    tracing::warn!(%reason, "refusing the payment");
    match deps.pi.cancel(id).await {
        Ok(_) => {}
        Err(e) => match e.root() {
            // Cancelled already (our earlier attempt, or the Pioneer): the outcome is the same.
            PiError::CancelledPayment => {}
            PiError::AlreadyCompleted { .. } | PiError::PaymentTxPresent => {
                return Err(JobError::Attention(format!(
                    "refused ({reason}) but Pi would not cancel it: {e}"
                )));
            }
            _ => return Err(pi_failure("cancelling at Pi", e)),
        },
    }
    let mut patch = patch_from(dto);
    patch.order_id = None;
    apply(deps, id, Transition::Refused { reason }, attempt, patch).await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// complete

/// apalis handler: verify the transaction and complete the payment at Pi.
pub(crate) async fn complete(
    job: CompleteJob,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let n = attempt.current().max(1);
    run_step(
        "complete",
        &job.payment_id,
        &attempt,
        &ctx,
        complete_step(&ctx.deps, &job.payment_id, n),
    )
    .await
}

async fn complete_step(deps: &WorkerDeps, id: &PaymentId, attempt: usize) -> StepResult {
    let Some(row) = load(deps, id).await? else {
        return Ok(());
    };
    if row.state != PaymentState::Completing {
        tracing::info!(state = %row.state, "completion not due; skipping");
        return Ok(());
    }
    let Some(txid) = row.txid.clone() else {
        return Err(JobError::Attention(
            "the payment is completing but no txid is recorded".into(),
        ));
    };
    let dto = deps
        .pi
        .get_payment(id)
        .await
        .map_err(|e| pi_failure("reading the payment at Pi", e))?;

    if dto.status.developer_completed {
        // Completed by an earlier attempt whose answer was lost: only with OUR txid.
        return match dto.txid() {
            Some(linked) if *linked == txid => {
                apply(
                    deps,
                    id,
                    Transition::PiCompleted,
                    attempt,
                    PaymentPatch::default(),
                )
                .await?;
                Ok(())
            }
            other => Err(JobError::Attention(format!(
                "Pi shows the payment completed with txid {} but we recorded {txid}",
                other.map(Txid::as_str).unwrap_or("(none)")
            ))),
        };
    }
    if let Some(reason) = cancelled_reason(&dto) {
        apply(
            deps,
            id,
            Transition::CancelledAtPi { reason },
            attempt,
            PaymentPatch::default(),
        )
        .await?;
        return Ok(());
    }
    match dto.txid() {
        None => {
            return Err(JobError::Transient(
                "Pi has not linked a transaction to the payment yet".into(),
            ));
        }
        Some(linked) if *linked != txid => {
            return Err(JobError::Attention(format!(
                "the callback's txid {txid} is not the transaction Pi linked ({linked})"
            )));
        }
        Some(_) => {}
    }
    if let Some(recorded) = row.amount
        && recorded != dto.amount
    {
        return Err(JobError::Attention(format!(
            "Pi's amount {} differs from the amount recorded at approval {recorded}",
            dto.amount
        )));
    }
    verify_on_chain(deps, id, &txid, dto.amount).await?;

    match deps.pi.complete(id, &txid).await {
        Ok(_) => {}
        Err(e) => match e.root() {
            PiError::AlreadyCompleted { .. } => confirm_completed(deps, id, &txid).await?,
            PiError::CancelledPayment => {
                let reason = "cancelled at Pi before completion".to_string();
                apply(
                    deps,
                    id,
                    Transition::CancelledAtPi { reason },
                    attempt,
                    PaymentPatch::default(),
                )
                .await?;
                return Ok(());
            }
            PiError::NotVerified => {
                return Err(JobError::Transient(
                    "Pi has not verified the transaction yet".into(),
                ));
            }
            _ => return Err(pi_failure("completing at Pi", e)),
        },
    }
    // Only now, after Pi's 2xx (or a confirmed already_completed): completed, order paid,
    // payment.completed written, all in the ledger's one transaction.
    apply(
        deps,
        id,
        Transition::PiCompleted,
        attempt,
        PaymentPatch::default(),
    )
    .await?;
    Ok(())
}

/// After `already_completed`: trust it only if a fresh `GET` shows it completed with our txid.
async fn confirm_completed(deps: &WorkerDeps, id: &PaymentId, txid: &Txid) -> StepResult {
    let dto = deps
        .pi
        .get_payment(id)
        .await
        .map_err(|e| pi_failure("confirming completion at Pi", e))?;
    match dto.txid() {
        Some(linked) if dto.status.developer_completed && linked == txid => Ok(()),
        Some(linked) if linked != txid => Err(JobError::Attention(format!(
            "Pi says already completed, with txid {linked}, not ours ({txid})"
        ))),
        _ => Err(JobError::Transient(
            "Pi answered already_completed but the payment does not show completed yet".into(),
        )),
    }
}

/// On Horizon: the transaction succeeded, its text memo is the payment id, and it holds one
/// native payment of exactly `amount` to the app wallet.
async fn verify_on_chain(
    deps: &WorkerDeps,
    id: &PaymentId,
    txid: &Txid,
    amount: PiAmount,
) -> StepResult {
    match deps
        .horizon
        .verify_payment(txid, id.as_str(), &deps.app_wallet, amount)
        .await
    {
        Ok(_) => Ok(()),
        Err(e @ VerificationProblem::NotFound(_)) => Err(JobError::Transient(format!(
            "the transaction is not on Horizon yet: {e}"
        ))),
        Err(e) if e.is_retryable() => Err(JobError::Transient(format!(
            "Horizon could not be read: {e}"
        ))),
        Err(e) => Err(JobError::Attention(format!(
            "the transaction does not pay this payment ({}): {e}",
            e.code()
        ))),
    }
}

// ---------------------------------------------------------------------------------------------
// cancel / record-error

/// apalis handler: the Pioneer cancelled; record what Pi says.
pub(crate) async fn cancel(
    job: CancelJob,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let n = attempt.current().max(1);
    run_step(
        "cancel",
        &job.payment_id,
        &attempt,
        &ctx,
        reread_step(&ctx.deps, &job.payment_id, n, "cancel_callback"),
    )
    .await
}

/// apalis handler: the frontend reported an error; record what Pi says.
pub(crate) async fn record_error(
    job: RecordErrorJob,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let n = attempt.current().max(1);
    run_step(
        "record-error",
        &job.payment_id,
        &attempt,
        &ctx,
        reread_step(&ctx.deps, &job.payment_id, n, "error_callback"),
    )
    .await
}

/// Re-read the payment at Pi: record `cancelled` if Pi says so, otherwise note what Pi shows.
async fn reread_step(deps: &WorkerDeps, id: &PaymentId, attempt: usize, cause: &str) -> StepResult {
    let Some(row) = load(deps, id).await? else {
        return Ok(());
    };
    if row.state.is_terminal() {
        return Ok(());
    }
    let dto = match deps.pi.get_payment(id).await {
        Ok(dto) => dto,
        Err(e) if matches!(e.root(), PiError::PaymentNotFound) => {
            deps.ledger
                .note(
                    id,
                    cause,
                    Some("Pi does not know this payment"),
                    attempt as i64,
                    None,
                )
                .await?;
            return Ok(());
        }
        Err(e) => return Err(pi_failure("reading the payment at Pi", e)),
    };
    if let Some(reason) = cancelled_reason(&dto) {
        apply(
            deps,
            id,
            Transition::CancelledAtPi { reason },
            attempt,
            patch_from(&dto),
        )
        .await?;
    } else {
        let detail = format!("Pi shows the payment open ({})", status_text(&dto));
        deps.ledger
            .note(id, cause, Some(&detail), attempt as i64, None)
            .await?;
    }
    Ok(())
}

fn status_text(dto: &PaymentDto) -> String {
    let s = &dto.status;
    format!(
        "approved={}, verified={}, completed={}, tx={}",
        s.developer_approved,
        s.transaction_verified,
        s.developer_completed,
        dto.txid().map(Txid::as_str).unwrap_or("none")
    )
}

// ---------------------------------------------------------------------------------------------
// incomplete

/// apalis handler: an incomplete payment reported at login. With a transaction: the complete
/// path. Without one: cancel it at Pi if it is approved, so the Pioneer can pay again.
pub(crate) async fn incomplete(
    job: IncompleteJob,
    attempt: Attempt,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    let n = attempt.current().max(1);
    run_step(
        "incomplete",
        &job.payment_id,
        &attempt,
        &ctx,
        incomplete_step(&ctx.deps, &job.payment_id, n),
    )
    .await
}

async fn incomplete_step(deps: &WorkerDeps, id: &PaymentId, attempt: usize) -> StepResult {
    let Some(row) = load(deps, id).await? else {
        return Ok(());
    };
    if row.state.is_terminal() {
        return Ok(());
    }
    let dto = deps
        .pi
        .get_payment(id)
        .await
        .map_err(|e| pi_failure("reading the payment at Pi", e))?;
    if let Some(reason) = cancelled_reason(&dto) {
        apply(
            deps,
            id,
            Transition::CancelledAtPi { reason },
            attempt,
            patch_from(&dto),
        )
        .await?;
        return Ok(());
    }
    if let Some(txid) = dto.txid().cloned() {
        // A transaction is linked: record it (if we had not) and run the complete step.
        if row.txid.is_none() {
            apply(
                deps,
                id,
                Transition::CompleteCallback { txid },
                attempt,
                patch_from(&dto),
            )
            .await?;
        }
        return complete_step(deps, id, attempt).await;
    }
    if dto.status.developer_approved {
        // Approved, no transaction, and the Pioneer is being asked about it at login: it is
        // abandoned. Cancelling unblocks the Pioneer's next purchase.
        let reason = "abandoned: approved at Pi but no transaction was submitted".to_string();
        return refuse(deps, id, &dto, reason, attempt).await;
    }
    // Not approved yet: the approve job (or the sweeper) owns it.
    deps.ledger
        .note(
            id,
            "incomplete_callback",
            Some("Pi shows the payment not approved and without a transaction"),
            attempt as i64,
            None,
        )
        .await?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// deliver-event

/// apalis handler: an event was written; wake the webhook deliverer (the one place that sends
/// events, so an event is never sent twice at once).
pub(crate) async fn deliver_event(
    _job: DeliverEventJob,
    ctx: Data<Arc<HandlerCtx>>,
) -> Result<(), BoxDynError> {
    ctx.webhook_nudge.notify_one();
    Ok(())
}
