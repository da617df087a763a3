//! A2U payouts in the ledger: the payout rows and how they are read. Requests live in
//! [`super::payout_requests`], bulk batches in [`super::payout_batches`], state changes in
//! [`super::payout_transitions`], what the sweeper reads in [`super::sweep`].

use super::connection::Ledger;
use super::decode::{corrupt, parse_payout_state};
use super::error::LedgerError;
use crate::amount::PiAmount;
use crate::ids::{BatchId, PaymentId, PayoutId, Uid};
use crate::state::PayoutState;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// The metadata key that carries our payout id in the Pi payment (reserved).
pub const PAYOUT_ID_METADATA_KEY: &str = "payout_id";

/// One payout as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PayoutRow {
    pub id: PayoutId,
    pub idempotency_key: String,
    pub batch_id: Option<BatchId>,
    pub uid: Uid,
    pub amount: PiAmount,
    pub memo: String,
    pub metadata: serde_json::Value,
    pub state: PayoutState,
    /// The Pi payment (also the transaction's memo), once created.
    pub pi_payment_id: Option<PaymentId>,
    /// The Pioneer's wallet, from Pi's payment.
    pub to_address: Option<String>,
    /// The app wallet, from Pi's payment.
    pub from_address: Option<String>,
    /// The current envelope's source account (app wallet or a channel).
    pub tx_source: Option<String>,
    /// The current envelope's sequence number.
    pub sequence: Option<i64>,
    /// The current signed envelope (base64 XDR); left out of JSON (large; read it in Rust).
    #[serde(skip_serializing)]
    pub envelope_b64: Option<String>,
    /// The current envelope's hash (the txid once confirmed).
    pub tx_hash: Option<String>,
    /// Unix seconds after which the current envelope can no longer land (an RFC 3339 time in JSON).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_s_opt")]
    pub max_time: Option<i64>,
    /// The ledger the transaction landed in, once confirmed.
    pub ledger: Option<i64>,
    /// How many times envelopes of this payout were sent to Horizon.
    pub submit_attempts: i64,
    /// Failed attempts of the current step.
    pub attempts: i64,
    /// Why the payout failed, needs attention, or waits.
    pub reason: Option<String>,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub created_at: i64,
    /// Unix milliseconds of the last change (an RFC 3339 time in JSON).
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub updated_at: i64,
    /// The sweeper leaves the payout alone until then (unix ms), when set.
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub next_check_at: Option<i64>,
}

/// One line of a payout's append-only history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct PayoutEventRow {
    pub id: i64,
    pub payout_id: PayoutId,
    /// `None` for the line that created the payout.
    pub from_state: Option<PayoutState>,
    pub to_state: PayoutState,
    /// A [`PayoutTransition::cause`] or a note (`create_failed`, `submit_unknown`, …).
    pub cause: String,
    pub detail: Option<String>,
    pub attempt: i64,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub at: i64,
}

/// Which payouts [`Ledger::payouts`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutFilter {
    pub batch: Option<BatchId>,
    pub state: Option<PayoutState>,
}

/// The payout columns, in the order [`payout_from_row`] reads them.
macro_rules! payout_cols {
    () => {
        "id, idempotency_key, batch_id, uid, amount_stroops, memo, metadata, state, pi_payment_id, \
         to_address, from_address, tx_source, sequence, envelope_b64, tx_hash, max_time, ledger, \
         submit_attempts, attempts, reason, created_at, updated_at, next_check_at"
    };
}
pub(crate) use payout_cols;

pub(super) const SELECT_PAYOUT: &str =
    concat!("SELECT ", payout_cols!(), " FROM payouts WHERE id = $1");
pub(super) const SELECT_PAYOUT_FOR_UPDATE: &str = concat!(
    "SELECT ",
    payout_cols!(),
    " FROM payouts WHERE id = $1 FOR UPDATE"
);

/// Decode a payouts row selected with [`payout_cols`].
pub(super) fn payout_from_row(row: &AnyRow) -> Result<PayoutRow, LedgerError> {
    let id: String = row.try_get(0)?;
    let batch: Option<String> = row.try_get(2)?;
    let uid: String = row.try_get(3)?;
    let amount: i64 = row.try_get(4)?;
    let metadata: String = row.try_get(6)?;
    let state: String = row.try_get(7)?;
    let pi: Option<String> = row.try_get(8)?;
    Ok(PayoutRow {
        id: PayoutId::parse(&id).map_err(corrupt("payouts.id"))?,
        idempotency_key: row.try_get(1)?,
        batch_id: batch
            .map(|b| BatchId::parse(&b))
            .transpose()
            .map_err(corrupt("payouts.batch_id"))?,
        uid: Uid::parse(&uid).map_err(corrupt("payouts.uid"))?,
        amount: PiAmount::from_stroops(amount)
            .ok_or_else(|| LedgerError::Corrupt(format!("payouts.amount_stroops {amount}")))?,
        memo: row.try_get(5)?,
        metadata: serde_json::from_str(&metadata).map_err(corrupt("payouts.metadata"))?,
        state: parse_payout_state(&state)?,
        pi_payment_id: pi
            .map(|p| PaymentId::parse(&p))
            .transpose()
            .map_err(corrupt("payouts.pi_payment_id"))?,
        to_address: row.try_get(9)?,
        from_address: row.try_get(10)?,
        tx_source: row.try_get(11)?,
        sequence: row.try_get(12)?,
        envelope_b64: row.try_get(13)?,
        tx_hash: row.try_get(14)?,
        max_time: row.try_get(15)?,
        ledger: row.try_get(16)?,
        submit_attempts: row.try_get(17)?,
        attempts: row.try_get(18)?,
        reason: row.try_get(19)?,
        created_at: row.try_get(20)?,
        updated_at: row.try_get(21)?,
        next_check_at: row.try_get(22)?,
    })
}

fn event_from_row(row: &AnyRow) -> Result<PayoutEventRow, LedgerError> {
    let payout_id: String = row.try_get(1)?;
    let from: Option<String> = row.try_get(2)?;
    let to: String = row.try_get(3)?;
    Ok(PayoutEventRow {
        id: row.try_get(0)?,
        payout_id: PayoutId::parse(&payout_id).map_err(corrupt("payout_events.payout_id"))?,
        from_state: from.as_deref().map(parse_payout_state).transpose()?,
        to_state: parse_payout_state(&to)?,
        cause: row.try_get(4)?,
        detail: row.try_get(5)?,
        attempt: row.try_get(6)?,
        at: row.try_get(7)?,
    })
}

/// Read one payout inside a transaction, locking it on Postgres.
pub(super) async fn lock_payout(
    conn: &mut AnyConnection,
    pg: bool,
    id: &PayoutId,
) -> Result<Option<PayoutRow>, LedgerError> {
    let sql = if pg {
        SELECT_PAYOUT_FOR_UPDATE
    } else {
        SELECT_PAYOUT
    };
    let row = sqlx::query(sql)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(payout_from_row).transpose()
}

impl Ledger {
    /// One payout.
    pub async fn payout(&self, id: &PayoutId) -> Result<Option<PayoutRow>, LedgerError> {
        let row = sqlx::query(SELECT_PAYOUT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(payout_from_row).transpose()
    }

    /// The payout holding an idempotency key (for resumable imports).
    pub async fn payout_by_key(&self, key: &str) -> Result<Option<PayoutRow>, LedgerError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            payout_cols!(),
            " FROM payouts WHERE idempotency_key = $1"
        ))
        .bind(key)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(payout_from_row).transpose()
    }

    /// The payout a Pi payment belongs to (reconciliation of `incomplete_server_payments`).
    pub async fn payout_by_pi_payment(
        &self,
        pi_payment_id: &PaymentId,
    ) -> Result<Option<PayoutRow>, LedgerError> {
        let row = sqlx::query(concat!(
            "SELECT ",
            payout_cols!(),
            " FROM payouts WHERE pi_payment_id = $1"
        ))
        .bind(pi_payment_id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(payout_from_row).transpose()
    }

    /// Payouts, oldest first, optionally of one batch and/or state; page with `after` = the
    /// last id of the previous page.
    pub async fn payouts(
        &self,
        filter: &PayoutFilter,
        limit: i64,
        after: Option<&PayoutId>,
    ) -> Result<Vec<PayoutRow>, LedgerError> {
        let mut sql = format!("SELECT {} FROM payouts WHERE 1 = 1", payout_cols!());
        let mut n = 0;
        let mut arg = || {
            n += 1;
            format!("${n}")
        };
        if filter.batch.is_some() {
            sql.push_str(&format!(" AND batch_id = {}", arg()));
        }
        if filter.state.is_some() {
            sql.push_str(&format!(" AND state = {}", arg()));
        }
        if after.is_some() {
            let a = arg();
            sql.push_str(&format!(
                " AND (created_at, id) > (SELECT created_at, id FROM payouts WHERE id = {a})"
            ));
        }
        sql.push_str(&format!(" ORDER BY created_at, id LIMIT {}", arg()));
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(b) = &filter.batch {
            q = q.bind(b.as_str().to_string());
        }
        if let Some(s) = filter.state {
            q = q.bind(s.as_str());
        }
        if let Some(a) = after {
            q = q.bind(a.as_str().to_string());
        }
        let rows = q.bind(limit.clamp(1, 10_000)).fetch_all(&self.pool).await?;
        rows.iter().map(payout_from_row).collect()
    }

    /// A payout's history, oldest first.
    pub async fn payout_events(&self, id: &PayoutId) -> Result<Vec<PayoutEventRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, payout_id, from_state, to_state, cause, detail, attempt, at \
             FROM payout_events WHERE payout_id = $1 ORDER BY id",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Payouts per state across every batch (for `pi-payments payouts status`).
    pub async fn payout_state_counts(&self) -> Result<Vec<(PayoutState, i64)>, LedgerError> {
        let rows = sqlx::query("SELECT state, COUNT(*) FROM payouts GROUP BY state ORDER BY state")
            .fetch_all(&self.pool)
            .await?;
        state_counts(&rows)
    }
}

/// `(state, count)` rows of a `GROUP BY state` query.
pub(super) fn state_counts(
    rows: &[sqlx::any::AnyRow],
) -> Result<Vec<(PayoutState, i64)>, LedgerError> {
    rows.iter()
        .map(|r| {
            let s: String = r.try_get(0)?;
            Ok((parse_payout_state(&s)?, r.try_get::<i64, _>(1)?))
        })
        .collect()
}
