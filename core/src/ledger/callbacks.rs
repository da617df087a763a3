//! Recording the frontend's callbacks (what the HTTP API calls before answering 202).
//!
//! Each call records what arrived and says which job, if any, must be enqueued. A job is asked
//! for only on the FIRST arrival of a step (tracked in `payment_callbacks`), so the Pi SDK
//! re-sending approve/complete every ~10 s never causes a second Pi call. The incomplete
//! callback re-arms after [`INCOMPLETE_REARM_MS`]: the Pioneer hits it at every login while a
//! payment is stuck, and a login minutes later is a fresh reason to look again.
//!
//! The client is never trusted: a callback only records an id, and a txid only as a claim in
//! the history. No callback changes state: the complete job binds the txid Pi itself linked
//! (`transaction.txid` on a fresh read), so a stranger's made-up txid binds nothing. Ids Pi
//! answered 404 for are refused here ([`LedgerError::UnknownAtPi`]) without a job. An approve callback's access token is never written here: it rides in
//! the approve job ([`ApproveCredential`]), so the ledger holds no tokens at rest.
//!
//! Under load the API records callbacks in batches ([`super::callback_batch`]); each callback
//! of a batch means exactly what it means here.

pub use super::callback_step::CallbackStep;
use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use super::payments::{
    HistoryLine, PaymentRow, insert_event, lock_payment, payment_cols, payment_from_row,
};
use super::unknown_ids::is_unknown;
use crate::ids::{PaymentId, Txid};
use crate::jobs::{ApproveCredential, Job};
use crate::secret::AccessToken;
use crate::state::PaymentState;
use sqlx::{AnyConnection, Row};
use std::fmt;

/// The history cause of a txid a callback brought for a payment that cannot take it (e.g. a
/// cancelled one): kept on record for the operator, nothing changed.
const IGNORED_TXID: &str = "complete_callback_ignored";

/// How long an incomplete callback waits before it may enqueue another job for the same payment.
pub const INCOMPLETE_REARM_MS: i64 = 60_000;

/// Longest error text stored from an error callback (the body is untrusted).
const MAX_ERROR_TEXT: usize = 2000;

/// One callback as the API parsed it.
#[derive(Clone, PartialEq, Eq)]
pub enum Callback {
    /// `onReadyForServerApproval`, with what it said about who pays: the access token (body or
    /// Bearer header), else the signed-in session's uid, else nothing.
    Approve {
        payment_id: PaymentId,
        credential: ApproveCredential,
    },
    /// `onReadyForServerCompletion`.
    Complete { payment_id: PaymentId, txid: Txid },
    /// `onCancel`.
    Cancel { payment_id: PaymentId },
    /// `onError`, with whatever the SDK said (untrusted text, truncated).
    Error {
        payment_id: PaymentId,
        error: String,
    },
    /// `onIncompletePaymentFound`, with who sent it (Bearer token or session; `Missing` when
    /// anonymous): only the payment's own Pioneer may have it cancelled at once.
    Incomplete {
        payment_id: PaymentId,
        txid: Option<Txid>,
        credential: ApproveCredential,
    },
}

/// Redacts the access token.
impl fmt::Debug for Callback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Callback::Approve {
                payment_id,
                credential,
            } => f
                .debug_struct("Approve")
                .field("payment_id", payment_id)
                .field("credential", credential)
                .finish(),
            Callback::Complete { payment_id, txid } => f
                .debug_struct("Complete")
                .field("payment_id", payment_id)
                .field("txid", txid)
                .finish(),
            Callback::Cancel { payment_id } => f
                .debug_struct("Cancel")
                .field("payment_id", payment_id)
                .finish(),
            Callback::Error { payment_id, error } => f
                .debug_struct("Error")
                .field("payment_id", payment_id)
                .field("error", error)
                .finish(),
            Callback::Incomplete {
                payment_id,
                txid,
                credential,
            } => f
                .debug_struct("Incomplete")
                .field("payment_id", payment_id)
                .field("txid", txid)
                .field("credential", credential)
                .finish(),
        }
    }
}

impl Callback {
    /// The payment the callback is about.
    pub fn payment_id(&self) -> &PaymentId {
        match self {
            Callback::Approve { payment_id, .. }
            | Callback::Complete { payment_id, .. }
            | Callback::Cancel { payment_id }
            | Callback::Error { payment_id, .. }
            | Callback::Incomplete { payment_id, .. } => payment_id,
        }
    }

    /// Which step it is.
    pub fn step(&self) -> CallbackStep {
        match self {
            Callback::Approve { .. } => CallbackStep::Approve,
            Callback::Complete { .. } => CallbackStep::Complete,
            Callback::Cancel { .. } => CallbackStep::Cancel,
            Callback::Error { .. } => CallbackStep::Error,
            Callback::Incomplete { .. } => CallbackStep::Incomplete,
        }
    }

    /// The txid it carries, if any.
    fn txid(&self) -> Option<&Txid> {
        match self {
            Callback::Complete { txid, .. } => Some(txid),
            Callback::Incomplete { txid, .. } => txid.as_ref(),
            _ => None,
        }
    }
}

/// What recording a callback did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Recorded {
    /// The payment after recording (answer `{paymentId, state}` from it).
    pub payment: PaymentRow,
    /// The job to enqueue, when this was the first arrival of the step and there is work to do.
    pub job: Option<Job>,
    /// Whether this callback created the payment row.
    pub created: bool,
}

impl Recorded {
    /// Whether the caller must enqueue [`Recorded::job`].
    pub fn must_enqueue(&self) -> bool {
        self.job.is_some()
    }
}

/// What counting one arrival of a step said.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Arrival {
    /// The step's first arrival: it may enqueue its job.
    First,
    /// A repeat that re-armed the step (an incomplete callback after [`INCOMPLETE_REARM_MS`];
    /// an approve/complete callback for a payment idle longer than `STUCK_AFTER`): it may
    /// enqueue the job again.
    Rearmed,
    /// A repeat within the window: nothing to do.
    Repeat,
}

impl Arrival {
    /// First or re-armed: the arrival may enqueue a job.
    fn is_fresh(self) -> bool {
        self != Arrival::Repeat
    }
}

/// Count one arrival (`$1` payment id, `$2` step, `$3` now). A repeat re-arms when the step was
/// disarmed (`armed_at` 0: a job is waiting for exactly this callback's credential), or was
/// last armed at or before `$4` and the payment is idle: unchanged since `$5` and not postponed
/// past now (`next_check_at`, e.g. waiting on a rate limit). The upsert decides on the row it
/// locked, so of a flood of concurrent repeats exactly one re-arms.
const COUNT_ARRIVAL: &str = "INSERT INTO payment_callbacks \
       (payment_seq, step, first_at, last_at, count, armed_count, armed_at) \
     VALUES ((SELECT seq FROM payments WHERE id = $1), $2, $3, $3, 1, 1, $3) \
     ON CONFLICT (payment_seq, step) DO UPDATE SET \
       last_at = $3, \
       count = payment_callbacks.count + 1, \
       armed_count = CASE WHEN payment_callbacks.armed_at = 0 OR (payment_callbacks.armed_at <= $4 \
            AND EXISTS (SELECT 1 FROM payments p \
            WHERE p.seq = payment_callbacks.payment_seq AND p.updated_at <= $5 \
            AND (p.next_check_at IS NULL OR p.next_check_at <= $3))) \
            THEN payment_callbacks.count + 1 ELSE payment_callbacks.armed_count END, \
       armed_at = CASE WHEN payment_callbacks.armed_at = 0 OR (payment_callbacks.armed_at <= $4 \
            AND EXISTS (SELECT 1 FROM payments p \
            WHERE p.seq = payment_callbacks.payment_seq AND p.updated_at <= $5 \
            AND (p.next_check_at IS NULL OR p.next_check_at <= $3))) \
            THEN $3 ELSE payment_callbacks.armed_at END \
     RETURNING count, armed_count";

/// Count this arrival of `step` at `now`; `stuck_after_ms` is `STUCK_AFTER`.
async fn count_arrival(
    conn: &mut AnyConnection,
    id: &PaymentId,
    step: CallbackStep,
    now: i64,
    stuck_after_ms: i64,
) -> Result<Arrival, LedgerError> {
    // (armed at or before, payment unchanged since): i64::MIN never re-arms.
    let (armed_before, idle_since) = match step {
        // A login minutes later is a fresh reason to look, whatever the payment did.
        CallbackStep::Incomplete => (now - INCOMPLETE_REARM_MS, i64::MAX),
        // The SDK re-sends these every ~10 s: only a payment nobody moved for `STUCK_AFTER`
        // (its job was lost) gets its job again, once per `STUCK_AFTER`.
        CallbackStep::Approve | CallbackStep::Complete => {
            let cutoff = now.saturating_sub(stuck_after_ms);
            (cutoff, cutoff)
        }
        CallbackStep::Cancel | CallbackStep::Error => (i64::MIN, i64::MIN),
    };
    let row = sqlx::query(COUNT_ARRIVAL)
        .bind(id.as_str())
        .bind(step.as_str())
        .bind(now)
        .bind(armed_before)
        .bind(idle_since)
        .fetch_one(&mut *conn)
        .await?;
    let count: i64 = row.try_get(0)?;
    let armed: i64 = row.try_get(1)?;
    Ok(match (count, count == armed) {
        (1, _) => Arrival::First,
        (_, true) => Arrival::Rearmed,
        (_, false) => Arrival::Repeat,
    })
}

/// The history cause of a callback's txid that differs from the one already bound (Pi's).
const TXID_HINT_MISMATCH: &str = "txid_hint_mismatch";

/// Record one callback inside the caller's transaction.
pub(super) async fn record_in(
    conn: &mut AnyConnection,
    pg: bool,
    cb: &Callback,
    now: i64,
    stuck_after_ms: i64,
) -> Result<Recorded, LedgerError> {
    let id = cb.payment_id();
    let step = cb.step();
    if is_unknown(conn, id).await? {
        return Err(LedgerError::UnknownAtPi(id.clone()));
    }
    // Every callback starts an unseen payment as `received`: a txid is only a claim.
    let inserted = sqlx::query(concat!(
        "INSERT INTO payments (id, direction, state, txid, attempts, created_at, updated_at) ",
        "VALUES ($1, 'user_to_app', $2, NULL, 0, $3, $3) ON CONFLICT (id) DO NOTHING RETURNING ",
        payment_cols!()
    ))
    .bind(id.as_str())
    .bind(PaymentState::Received.as_str())
    .bind(now)
    .fetch_optional(&mut *conn)
    .await?;
    let arrival = count_arrival(conn, id, step, now, stuck_after_ms).await?;
    let fresh = arrival.is_fresh();
    let detail = match cb {
        Callback::Error { error, .. } => Some(error.chars().take(MAX_ERROR_TEXT).collect()),
        _ => cb
            .txid()
            .map(|t| format!("txid {t} (the callback's claim)")),
    };

    // The history line this callback leaves: `from` → `to`, as the callback's `cause`.
    let line = |from, to, cause| HistoryLine {
        payment_id: id,
        from,
        to,
        cause,
        detail: detail.as_deref(),
        attempt: 0,
        at: now,
    };

    if let Some(row) = inserted {
        let row = payment_from_row(&row)?;
        insert_event(conn, &line(None, row.state, step.cause())).await?;
        let job = match cb {
            Callback::Approve { credential, .. } => {
                Some(Job::approve_with(id.clone(), credential.clone()))
            }
            Callback::Complete { txid, .. }
            | Callback::Incomplete {
                txid: Some(txid), ..
            } => Some(Job::complete_hinted(id.clone(), txid.clone())),
            Callback::Cancel { .. } => Some(Job::cancel(id.clone())),
            Callback::Error { .. } => Some(Job::record_error(id.clone())),
            Callback::Incomplete {
                txid: None,
                credential,
                ..
            } => Some(Job::incomplete_with(id.clone(), credential.clone())),
        };
        return Ok(Recorded {
            payment: row,
            job,
            created: true,
        });
    }

    let row = lock_payment(conn, pg, id)
        .await?
        .ok_or_else(|| LedgerError::PaymentNotFound(id.clone()))?;
    let mut recorded = Recorded {
        payment: row.clone(),
        job: None,
        created: false,
    };
    match cb {
        Callback::Approve { credential, .. } => {
            // A re-armed repeat (the payment sat idle for `STUCK_AFTER`, e.g. its job was lost
            // or a swept job waited for a token) brings the token again, in its own job.
            if fresh && row.state == PaymentState::Received {
                recorded.job = Some(Job::approve_with(id.clone(), credential.clone()));
            }
        }
        Callback::Complete { txid, .. }
        | Callback::Incomplete {
            txid: Some(txid), ..
        } => match &row.txid {
            Some(bound) if bound != txid => {
                // Pi's txid is bound; a different claim changes nothing and is kept on record.
                if fresh {
                    let claim = line(Some(row.state), row.state, TXID_HINT_MISMATCH);
                    insert_event(conn, &claim).await?;
                }
            }
            Some(_) => {
                // Same txid again: a stuck `completing` payment gets another look only when an
                // incomplete callback re-arms, or a complete callback re-arms because the
                // payment sat idle for `STUCK_AFTER` (its job was lost).
                let rearmed = match step {
                    CallbackStep::Incomplete => fresh,
                    _ => arrival == Arrival::Rearmed,
                };
                if rearmed && row.state == PaymentState::Completing {
                    recorded.job = Some(Job::complete(id.clone()));
                }
            }
            None if row.state.is_terminal() => {
                if fresh {
                    // e.g. a txid for a cancelled payment: keep it on record for the operator
                    // (the Pioneer may have paid), change nothing.
                    let ignored = line(Some(row.state), row.state, IGNORED_TXID);
                    insert_event(conn, &ignored).await?;
                }
            }
            None => {
                if fresh {
                    insert_event(conn, &line(Some(row.state), row.state, step.cause())).await?;
                    recorded.job = Some(Job::complete_hinted(id.clone(), txid.clone()));
                }
            }
        },
        Callback::Cancel { .. }
        | Callback::Error { .. }
        | Callback::Incomplete { txid: None, .. } => {
            if fresh {
                insert_event(conn, &line(Some(row.state), row.state, step.cause())).await?;
                if !row.state.is_terminal() {
                    recorded.job = Some(match cb {
                        Callback::Cancel { .. } => Job::cancel(id.clone()),
                        Callback::Error { .. } => Job::record_error(id.clone()),
                        Callback::Incomplete { credential, .. } => {
                            Job::incomplete_with(id.clone(), credential.clone())
                        }
                        _ => Job::incomplete(id.clone()),
                    });
                }
            }
        }
    }
    Ok(recorded)
}

/// A `Ledger::record_*_callback` method: one step's arguments made into a [`Callback`] and
/// recorded with [`Ledger::record_callback`] (the API and tests name the step they send).
macro_rules! record_callback_method {
    ($(#[$doc:meta])* $name:ident($($arg:ident: $ty:ty),*) => $callback:expr) => {
        $(#[$doc])*
        pub async fn $name(&self, $($arg: $ty),*) -> Result<Recorded, LedgerError> {
            self.record_callback(&$callback).await
        }
    };
}

impl Ledger {
    /// Whether a `step` callback was ever recorded for payment `id` (e.g. a complete callback
    /// for a payment still `approved`: its claim is not bound, so the sweeper looks again).
    pub async fn has_callback(
        &self,
        id: &PaymentId,
        step: CallbackStep,
    ) -> Result<bool, LedgerError> {
        let found: Option<i64> = sqlx::query_scalar(
            "SELECT 1 FROM payment_callbacks \
             WHERE payment_seq = (SELECT seq FROM payments WHERE id = $1) AND step = $2",
        )
        .bind(id.as_str())
        .bind(step.as_str())
        .fetch_optional(&self.pool)
        .await?;
        Ok(found.is_some())
    }

    /// An approve job found no credential to verify the Pioneer with: disarm the approve step
    /// so that the SDK's next approve callback (which carries the token) gets a job at once.
    pub async fn await_approve_callback(&self, id: &PaymentId) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE payment_callbacks SET armed_at = 0 \
             WHERE payment_seq = (SELECT seq FROM payments WHERE id = $1) AND step = $2",
        )
        .bind(id.as_str())
        .bind(CallbackStep::Approve.as_str())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Record one callback in its own transaction.
    pub async fn record_callback(&self, cb: &Callback) -> Result<Recorded, LedgerError> {
        let mut tx = self.begin_write().await?;
        let recorded = record_in(&mut tx, self.is_pg(), cb, now_ms(), self.stuck_after_ms).await?;
        tx.commit().await?;
        Ok(recorded)
    }

    record_callback_method!(
        /// The approve callback with its token, if any: creates the payment as `received` on
        /// first arrival, with an approve job carrying the token (never stored here).
        record_approve_callback(id: &PaymentId, access_token: Option<&AccessToken>) => Callback::Approve {
            payment_id: id.clone(),
            credential: ApproveCredential::from_token(access_token.cloned()),
        }
    );

    record_callback_method!(
        /// The complete callback: records its txid as a claim and asks for a complete job,
        /// which binds the txid Pi linked (never this one). A claim that differs from a txid
        /// already bound is noted, changing nothing.
        record_complete_callback(id: &PaymentId, txid: &Txid) =>
            Callback::Complete { payment_id: id.clone(), txid: txid.clone() }
    );

    record_callback_method!(
        /// The cancel callback: recorded; the cancel job re-reads Pi (the client is not trusted).
        record_cancel_callback(id: &PaymentId) => Callback::Cancel { payment_id: id.clone() }
    );

    record_callback_method!(
        /// The error callback: the text goes into the payment's history; the job re-reads Pi.
        record_error_callback(id: &PaymentId, error_text: &str) =>
            Callback::Error { payment_id: id.clone(), error: error_text.to_string() }
    );

    record_callback_method!(
        /// The incomplete callback, sent anonymously: with a txid it is the complete path;
        /// without one the incomplete job re-reads Pi and cancels an approved payment that has
        /// no tx once it has waited out the grace period.
        record_incomplete_callback(id: &PaymentId, txid: Option<&Txid>) =>
            Callback::Incomplete {
                payment_id: id.clone(),
                txid: txid.cloned(),
                credential: ApproveCredential::Missing,
            }
    );
}
