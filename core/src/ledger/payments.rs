//! Payment rows and their transitions: reading a payment and its history, and [`Ledger::apply`],
//! the only way a job changes a payment's state (through [`crate::state::next`]).

use super::clock::now_ms;
use super::connection::Ledger;
use super::decode::{corrupt, parse_state};
use super::error::LedgerError;
use super::orders::Order;
use crate::amount::PiAmount;
use crate::events::event_type::EventType;
use crate::ids::{OrderId, PaymentId, Txid, Uid};
use crate::secret::AccessToken;
use crate::state::{self, PaymentState, RetryStep, Transition};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// Which way the money goes (pi-platform.md §3 `direction`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// A Pioneer pays the app (U2A).
    UserToApp,
    /// The app pays a Pioneer (A2U payouts).
    AppToUser,
}

impl Direction {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Direction::UserToApp => "user_to_app",
            Direction::AppToUser => "app_to_user",
        }
    }

    fn parse(text: &str) -> Result<Direction, LedgerError> {
        match text {
            "user_to_app" => Ok(Direction::UserToApp),
            "app_to_user" => Ok(Direction::AppToUser),
            other => Err(LedgerError::Corrupt(format!("unknown direction {other:?}"))),
        }
    }
}

/// One payment as the ledger knows it. Rows are logged and served by the API, so the legacy
/// `access_token` column is never part of one; see [`Ledger::access_token`].
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentRow {
    pub id: PaymentId,
    pub direction: Direction,
    /// The Pioneer, once `/v2/me` confirmed who holds the token.
    pub uid: Option<Uid>,
    /// The amount, once read from Pi's DTO.
    pub amount: Option<PiAmount>,
    pub memo: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub order_id: Option<OrderId>,
    pub state: PaymentState,
    pub txid: Option<Txid>,
    /// Why the payment is cancelled or needs attention.
    pub reason: Option<String>,
    /// Attempts of the current step's job, as the last transition recorded it.
    pub attempts: i64,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub created_at: i64,
    /// Unix milliseconds of the last change (an RFC 3339 time in JSON).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub updated_at: i64,
    /// The sweeper leaves the payment alone until then (unix ms), when set.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub next_check_at: Option<i64>,
}

/// One line of a payment's append-only history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PaymentEventRow {
    pub id: i64,
    pub payment_id: PaymentId,
    /// `None` for the event that created the payment.
    pub from_state: Option<PaymentState>,
    pub to_state: PaymentState,
    /// A [`Transition::cause`] or a callback name (`cancel_callback`, `error_callback`, …).
    pub cause: String,
    pub detail: Option<String>,
    pub attempt: i64,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub at: i64,
}

/// Facts a job learned and stores together with a transition (each `None` leaves the column as
/// it is). Setting `order_id` binds the order to this payment in the same transaction, or
/// fails with [`LedgerError::OrderUnavailable`] when another payment holds it or it is not open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentPatch {
    pub uid: Option<Uid>,
    pub amount: Option<PiAmount>,
    pub memo: Option<String>,
    pub metadata: Option<serde_json::Value>,
    pub order_id: Option<OrderId>,
    /// When the sweeper may look at the payment again (unix ms); `None` clears it.
    pub next_check_at: Option<i64>,
}

/// What [`Ledger::apply`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The payment moved from `from` to `row.state`; history and outbox were written.
    Moved { from: PaymentState, row: PaymentRow },
    /// The payment was already in (or past) the transition's target: nothing was written.
    AlreadyThere(PaymentRow),
}

impl Applied {
    /// The payment after the call.
    pub fn row(&self) -> &PaymentRow {
        match self {
            Applied::Moved { row, .. } | Applied::AlreadyThere(row) => row,
        }
    }

    /// Whether this call changed the state.
    pub fn moved(&self) -> bool {
        matches!(self, Applied::Moved { .. })
    }
}

/// The payment columns, in the order [`payment_from_row`] reads them.
macro_rules! payment_cols {
    () => {
        "id, direction, uid, amount_stroops, memo, metadata, order_id, state, txid, reason, attempts, created_at, updated_at, next_check_at"
    };
}
pub(crate) use payment_cols;

pub(crate) const SELECT_PAYMENT: &str =
    concat!("SELECT ", payment_cols!(), " FROM payments WHERE id = $1");
pub(crate) const SELECT_PAYMENT_FOR_UPDATE: &str = concat!(
    "SELECT ",
    payment_cols!(),
    " FROM payments WHERE id = $1 FOR UPDATE"
);

/// Decode a payments row selected with [`payment_cols`].
pub(crate) fn payment_from_row(row: &AnyRow) -> Result<PaymentRow, LedgerError> {
    let id: String = row.try_get(0)?;
    let direction: String = row.try_get(1)?;
    let uid: Option<String> = row.try_get(2)?;
    let amount: Option<i64> = row.try_get(3)?;
    let metadata: Option<String> = row.try_get(5)?;
    let order_id: Option<String> = row.try_get(6)?;
    let state: String = row.try_get(7)?;
    let txid: Option<String> = row.try_get(8)?;
    Ok(PaymentRow {
        id: PaymentId::parse(&id).map_err(corrupt("payments.id"))?,
        direction: Direction::parse(&direction)?,
        uid: uid
            .map(|u| Uid::parse(&u))
            .transpose()
            .map_err(corrupt("payments.uid"))?,
        amount: amount
            .map(|a| {
                PiAmount::from_stroops(a)
                    .ok_or_else(|| LedgerError::Corrupt(format!("payments.amount_stroops {a}")))
            })
            .transpose()?,
        memo: row.try_get(4)?,
        metadata: metadata
            .map(|m| serde_json::from_str(&m))
            .transpose()
            .map_err(corrupt("payments.metadata"))?,
        order_id: order_id
            .map(|o| OrderId::parse(&o))
            .transpose()
            .map_err(corrupt("payments.order_id"))?,
        state: parse_state(&state)?,
        txid: txid
            .map(|t| Txid::parse(&t))
            .transpose()
            .map_err(corrupt("payments.txid"))?,
        reason: row.try_get(9)?,
        attempts: row.try_get(10)?,
        created_at: row.try_get(11)?,
        updated_at: row.try_get(12)?,
        next_check_at: row.try_get(13)?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<PaymentEventRow, LedgerError> {
    let payment_id: String = row.try_get(1)?;
    let from: Option<String> = row.try_get(2)?;
    let to: String = row.try_get(3)?;
    Ok(PaymentEventRow {
        id: row.try_get(0)?,
        payment_id: PaymentId::parse(&payment_id).map_err(corrupt("payment_events.payment_id"))?,
        from_state: from.as_deref().map(parse_state).transpose()?,
        to_state: parse_state(&to)?,
        cause: row.try_get(4)?,
        detail: row.try_get(5)?,
        attempt: row.try_get(6)?,
        at: row.try_get(7)?,
    })
}

/// Read one payment inside a transaction, locking it on Postgres.
pub(crate) async fn lock_payment(
    conn: &mut AnyConnection,
    pg: bool,
    id: &PaymentId,
) -> Result<Option<PaymentRow>, LedgerError> {
    let sql = if pg {
        SELECT_PAYMENT_FOR_UPDATE
    } else {
        SELECT_PAYMENT
    };
    let row = sqlx::query(sql)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(payment_from_row).transpose()
}

/// One line to append to `payment_events`.
pub(crate) struct HistoryLine<'a> {
    pub payment_id: &'a PaymentId,
    pub from: Option<PaymentState>,
    pub to: PaymentState,
    pub cause: &'a str,
    pub detail: Option<&'a str>,
    pub attempt: i64,
    pub at: i64,
}

/// Append one history line.
pub(crate) async fn insert_event(
    conn: &mut AnyConnection,
    line: &HistoryLine<'_>,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO payment_events (payment_id, payment_seq, from_state, to_state, cause, detail, attempt, at) \
         VALUES ($1, (SELECT seq FROM payments WHERE id = $1), $2, $3, $4, $5, $6, $7)",
    )
    .bind(line.payment_id.as_str())
    .bind(line.from.map(PaymentState::as_str))
    .bind(line.to.as_str())
    .bind(line.cause)
    .bind(line.detail)
    .bind(line.attempt)
    .bind(line.at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// Which payment holds `txid`, if any.
pub(crate) async fn txid_owner(
    conn: &mut AnyConnection,
    txid: &Txid,
) -> Result<Option<PaymentId>, LedgerError> {
    let owner: Option<String> = sqlx::query_scalar("SELECT id FROM payments WHERE txid = $1")
        .bind(txid.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    owner
        .map(|o| PaymentId::parse(&o))
        .transpose()
        .map_err(corrupt("payments.id"))
}

/// Refuse `txid` when another payment already holds it.
pub(crate) async fn ensure_txid_free(
    conn: &mut AnyConnection,
    txid: &Txid,
    for_payment: &PaymentId,
) -> Result<(), LedgerError> {
    match txid_owner(conn, txid).await? {
        Some(other) if &other != for_payment => Err(LedgerError::TxidTaken {
            txid: txid.clone(),
            other,
        }),
        _ => Ok(()),
    }
}

/// Refuse `got` when the payment already holds another txid: a stored txid is never
/// overwritten ([`LedgerError::TxidConflict`]).
pub(crate) fn refuse_other_txid(row: &PaymentRow, got: &Txid) -> Result<(), LedgerError> {
    match &row.txid {
        Some(stored) if stored != got => Err(LedgerError::TxidConflict {
            payment_id: row.id.clone(),
            stored: stored.clone(),
            got: got.clone(),
        }),
        _ => Ok(()),
    }
}

/// Where a token written by an older version may stay (migration 0007 cleared every other
/// row's): `needs_attention`, so an operator's retry can verify the Pioneer, and `received`,
/// which that retry moves the payment back to. Any other transition clears it. No token is
/// written any more: approve callbacks hand theirs to the approve job.
const TOKEN_KEEPING_STATES: [PaymentState; 2] =
    [PaymentState::Received, PaymentState::NeedsAttention];

/// Whether a payment in `state` still keeps its access token ([`TOKEN_KEEPING_STATES`]).
fn keeps_access_token(state: PaymentState) -> bool {
    TOKEN_KEEPING_STATES.contains(&state)
}

/// The outbox event a payment entering `state` produces, if any.
fn event_for(state: PaymentState) -> Option<EventType> {
    match state {
        PaymentState::Approved => Some(EventType::PaymentApproved),
        PaymentState::Completed => Some(EventType::PaymentCompleted),
        PaymentState::Cancelled => Some(EventType::PaymentCancelled),
        PaymentState::NeedsAttention => Some(EventType::PaymentNeedsAttention),
        PaymentState::Received | PaymentState::Completing => None,
    }
}

/// The `data` of a payment event: the payment (and its order, if any) as of the event.
pub fn payment_event_data(payment: &PaymentRow, order: Option<&Order>) -> serde_json::Value {
    serde_json::json!({ "payment": payment, "order": order })
}

/// Move a locked payment `row` to `to`, inside the caller's transaction: the conditional
/// UPDATE, the history line, order bookkeeping and the outbox event. Shared by
/// [`Ledger::apply`] and the callback recorder.
#[allow(clippy::too_many_arguments)]
pub(crate) async fn move_payment(
    conn: &mut AnyConnection,
    pg: bool,
    row: &PaymentRow,
    to: PaymentState,
    transition: &Transition,
    detail: Option<&str>,
    attempt: i64,
    patch: &PaymentPatch,
    now: i64,
) -> Result<PaymentRow, LedgerError> {
    if let Some(order_id) = &patch.order_id {
        super::orders::bind_order(conn, order_id, &row.id).await?;
    }
    let metadata = patch.metadata.as_ref().map(|m| m.to_string());
    let updated = sqlx::query(concat!(
        "UPDATE payments SET state = $3, updated_at = $4, attempts = $5, reason = $6, ",
        "txid = COALESCE($7, txid), ",
        "access_token = CASE WHEN $8 = 1 THEN access_token ELSE NULL END, ",
        "uid = COALESCE($9, uid), amount_stroops = COALESCE($10, amount_stroops), ",
        "memo = COALESCE($11, memo), metadata = COALESCE($12, metadata), ",
        "order_id = COALESCE($13, order_id), next_check_at = $14 ",
        "WHERE id = $1 AND state = $2 RETURNING ",
        payment_cols!()
    ))
    .bind(row.id.as_str())
    .bind(row.state.as_str())
    .bind(to.as_str())
    .bind(now)
    .bind(attempt)
    .bind(transition.reason())
    .bind(transition.txid().map(Txid::as_str))
    .bind(i64::from(keeps_access_token(to)))
    .bind(patch.uid.as_ref().map(Uid::as_str))
    .bind(patch.amount.map(PiAmount::stroops))
    .bind(patch.memo.as_deref())
    .bind(metadata.as_deref())
    .bind(patch.order_id.as_ref().map(OrderId::as_str))
    .bind(patch.next_check_at)
    .fetch_optional(&mut *conn)
    .await?;
    let Some(updated) = updated else {
        // The row is locked (FOR UPDATE / BEGIN IMMEDIATE), so this means someone bypassed
        // the lock; the caller retries and sees the new state.
        return Err(LedgerError::Concurrent(row.id.clone()));
    };
    let new_row = payment_from_row(&updated)?;
    insert_event(
        conn,
        &HistoryLine {
            payment_id: &row.id,
            from: Some(row.state),
            to,
            cause: transition.cause(),
            detail,
            attempt,
            at: now,
        },
    )
    .await?;

    let order = match (&new_row.order_id, to) {
        (Some(order_id), PaymentState::Completed) => {
            let paid = super::orders::mark_paid(conn, order_id, &row.id, now).await?;
            if !paid {
                // Pi already took the money: the completion stands; the mismatch is recorded
                // for the drift report instead of failing the transition.
                insert_event(
                    conn,
                    &HistoryLine {
                        payment_id: &row.id,
                        from: Some(to),
                        to,
                        cause: "order_not_paid",
                        detail: Some(&format!("order {order_id} was not open for this payment")),
                        attempt,
                        at: now,
                    },
                )
                .await?;
            }
            super::orders::order_in(conn, order_id).await?
        }
        (Some(order_id), PaymentState::Cancelled) => {
            super::orders::release_order(conn, &row.id).await?;
            super::orders::order_in(conn, order_id).await?
        }
        (Some(order_id), _) => super::orders::order_in(conn, order_id).await?,
        (None, _) => None,
    };

    if let Some(event_type) = event_for(to) {
        let payload = payment_event_data(&new_row, order.as_ref());
        super::outbox::insert_event_once(conn, pg, event_type, new_row.id.as_str(), &payload, now)
            .await?;
    }
    Ok(new_row)
}

impl Ledger {
    /// Payments per state (states without payments are left out): one `GROUP BY` over the
    /// `(state, updated_at)` index, for `/metrics`.
    pub async fn payment_state_counts(&self) -> Result<Vec<(PaymentState, i64)>, LedgerError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM payments GROUP BY state")
            .fetch_all(&self.pool)
            .await?;
        rows.iter()
            .map(|r| {
                let state: String = r.try_get(0)?;
                Ok((parse_state(&state)?, r.try_get::<i64, _>(1)?))
            })
            .collect()
    }

    /// One payment, or `None` if no callback ever mentioned it.
    pub async fn payment(&self, id: &PaymentId) -> Result<Option<PaymentRow>, LedgerError> {
        let row = sqlx::query(SELECT_PAYMENT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(payment_from_row).transpose()
    }

    /// The payment holding `txid`, if any.
    pub async fn payment_by_txid(&self, txid: &Txid) -> Result<Option<PaymentRow>, LedgerError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            payment_cols!(),
            " FROM payments WHERE txid = $1"
        ))
        .bind(txid.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(payment_from_row).transpose()
    }

    /// A payment's history, oldest first.
    pub async fn payment_events(
        &self,
        id: &PaymentId,
    ) -> Result<Vec<PaymentEventRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, payment_id, from_state, to_state, cause, detail, attempt, at \
             FROM payment_events WHERE payment_seq = (SELECT seq FROM payments WHERE id = $1) \
             ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// An access token an older version stored with the payment (only ever on a row in
    /// `needs_attention`, or `received` after an operator's retry of one): what an approve job
    /// without a credential of its own verifies the Pioneer with. `None` for every payment
    /// this version recorded. Never log it.
    pub async fn access_token(&self, id: &PaymentId) -> Result<Option<AccessToken>, LedgerError> {
        let token: Option<Option<String>> =
            sqlx::query_scalar("SELECT access_token FROM payments WHERE id = $1")
                .bind(id.as_str())
                .fetch_optional(&self.pool)
                .await?;
        Ok(token.flatten().map(AccessToken::stored))
    }

    /// Apply `transition` to a payment in ONE transaction: the state machine decides; the
    /// conditional UPDATE, a `payment_events` line, the outbox event (once per type and
    /// payment) and, on completion, the order marked paid are written together.
    ///
    /// A transition into the state the payment is already in (or has passed) returns
    /// [`Applied::AlreadyThere`] and writes nothing, so a job that runs twice, or two workers
    /// racing, end with exactly one recorded move.
    pub async fn apply(
        &self,
        id: &PaymentId,
        transition: Transition,
        detail: Option<&str>,
        attempt: i64,
        patch: PaymentPatch,
    ) -> Result<Applied, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = lock_payment(&mut tx, self.is_pg(), id)
            .await?
            .ok_or_else(|| LedgerError::PaymentNotFound(id.clone()))?;
        let to = state::next(row.state, &transition)?;
        if let Some(txid) = transition.txid() {
            refuse_other_txid(&row, txid)?;
            if row.txid.is_none() {
                ensure_txid_free(&mut tx, txid, id).await?;
            }
        }
        if to == row.state {
            tx.rollback().await?;
            return Ok(Applied::AlreadyThere(row));
        }
        if transition == Transition::Retry(RetryStep::Complete) && row.txid.is_none() {
            return Err(LedgerError::MissingTxid(id.clone()));
        }
        let new_row = move_payment(
            &mut tx,
            self.is_pg(),
            &row,
            to,
            &transition,
            detail,
            attempt,
            &patch,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(Applied::Moved {
            from: row.state,
            row: new_row,
        })
    }

    /// Record a failed attempt (or any note) in the payment's history without changing its
    /// state, so a payment that ends in `needs_attention` shows every try that led there.
    pub async fn note(
        &self,
        id: &PaymentId,
        cause: &str,
        detail: Option<&str>,
        attempt: i64,
        next_check_at: Option<i64>,
    ) -> Result<PaymentRow, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE payments SET attempts = $2, next_check_at = $3 WHERE id = $1 RETURNING ",
            payment_cols!()
        ))
        .bind(id.as_str())
        .bind(attempt)
        .bind(next_check_at)
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| LedgerError::PaymentNotFound(id.clone()))?;
        let row = payment_from_row(&row)?;
        insert_event(
            &mut tx,
            &HistoryLine {
                payment_id: id,
                from: Some(row.state),
                to: row.state,
                cause,
                detail,
                attempt,
                at: now,
            },
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Payments in one state (operators, tests), oldest first.
    pub async fn payments_in_state(
        &self,
        state: PaymentState,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        let rows = sqlx::query(concat!(
            "SELECT ",
            payment_cols!(),
            " FROM payments WHERE state = $1 ORDER BY created_at LIMIT $2"
        ))
        .bind(state.as_str())
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payment_from_row).collect()
    }
}
