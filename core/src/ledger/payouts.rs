//! A2U payouts in the ledger: requests (idempotent by key, with a fingerprint of the body),
//! bulk batches, the persisted pipeline steps and their append-only history.
//!
//! Every state change goes through [`Ledger::apply_payout`], which asks
//! [`crate::state::next_payout`] and then runs ONE conditional UPDATE (`WHERE state = <read>`)
//! in a write transaction (BEGIN IMMEDIATE on SQLite, `FOR UPDATE` on Postgres): whoever
//! commits first decides, the loser sees [`PayoutApplied::AlreadyThere`] and re-reads. The
//! outbox events `payout.completed` / `payout.failed` are written in the same transaction, once
//! per payout (the outbox's `UNIQUE (event_type, subject_id)`).

use super::{Ledger, LedgerError, corrupt, now_ms};
use crate::amount::PiAmount;
use crate::events::EventType;
use crate::ids::{PaymentId, Uid};
use crate::payout::ids::{BatchId, PayoutId};
use crate::state::{self, PayoutState, PayoutTransition};
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// Longest idempotency key accepted (keys come from apps and CSV files).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;
/// Longest memo accepted (shown to the Pioneer in the Pi wallet).
pub const MAX_PAYOUT_MEMO_CHARS: usize = 500;
/// Largest metadata object accepted, as compact JSON.
pub const MAX_PAYOUT_METADATA_BYTES: usize = 4096;
/// The metadata key that carries our payout id in the Pi payment (reserved).
pub const PAYOUT_ID_METADATA_KEY: &str = "payout_id";

/// What an app asks for: pay `amount` to `uid`, once per `idempotency_key`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutRequest {
    /// The Pioneer (app-scoped uid from `/v2/me`); they must have granted `wallet_address`.
    pub uid: Uid,
    /// Exact amount.
    pub amount: PiAmount,
    /// Shown to the Pioneer.
    pub memo: String,
    /// The app's JSON object (`null` = `{}`); the key `payout_id` is reserved for us.
    pub metadata: serde_json::Value,
    /// Unique per payout: a repeated request with the same key returns the existing payout.
    pub idempotency_key: String,
    /// The bulk import this row came from, if any (not part of the fingerprint, so re-importing
    /// a file under a new batch finds the same payouts).
    pub batch_id: Option<BatchId>,
}

impl PayoutRequest {
    /// Check the request; the error says what to change.
    pub fn validate(&self) -> Result<(), LedgerError> {
        let bad = |m: String| Err(LedgerError::BadPayoutRequest(m));
        let key = &self.idempotency_key;
        if key.is_empty()
            || key.chars().count() > MAX_IDEMPOTENCY_KEY_CHARS
            || key.chars().any(char::is_control)
        {
            return bad(format!(
                "idempotency_key must be 1 to {MAX_IDEMPOTENCY_KEY_CHARS} printable characters (one key per payout, e.g. your reward's id)"
            ));
        }
        if self.memo.chars().count() > MAX_PAYOUT_MEMO_CHARS {
            return bad(format!(
                "memo is longer than {MAX_PAYOUT_MEMO_CHARS} characters: shorten it"
            ));
        }
        match &self.metadata {
            serde_json::Value::Null => {}
            serde_json::Value::Object(map) => {
                if map.contains_key(PAYOUT_ID_METADATA_KEY) {
                    return bad(format!(
                        "metadata key {PAYOUT_ID_METADATA_KEY:?} is reserved (pi-payments puts the payout id there): rename it"
                    ));
                }
                if self.metadata.to_string().len() > MAX_PAYOUT_METADATA_BYTES {
                    return bad(format!(
                        "metadata is larger than {MAX_PAYOUT_METADATA_BYTES} bytes of JSON: keep only ids in it"
                    ));
                }
            }
            _ => return bad("metadata must be a JSON object (or omitted)".into()),
        }
        Ok(())
    }

    /// The metadata as stored (`null` becomes `{}`).
    fn metadata_object(&self) -> serde_json::Value {
        match &self.metadata {
            serde_json::Value::Null => serde_json::json!({}),
            other => other.clone(),
        }
    }

    /// sha256 of the body that defines the payout (uid, amount, memo, metadata with sorted
    /// keys): the same key with a different fingerprint is a conflict, not a repeat.
    pub fn fingerprint(&self) -> String {
        let body = serde_json::json!({
            "uid": self.uid.as_str(),
            "amount_stroops": self.amount.stroops(),
            "memo": self.memo,
            "metadata": canonical(&self.metadata_object()),
        });
        hex::encode(Sha256::digest(canonical(&body).to_string().as_bytes()))
    }
}

/// `value` with every object's keys sorted, whatever serde_json's map type is (a dependency
/// may switch on `preserve_order`).
fn canonical(value: &serde_json::Value) -> serde_json::Value {
    match value {
        serde_json::Value::Object(map) => {
            let sorted: BTreeMap<&String, serde_json::Value> =
                map.iter().map(|(k, v)| (k, canonical(v))).collect();
            let mut out = serde_json::Map::new();
            for (k, v) in sorted {
                out.insert(k.clone(), v);
            }
            serde_json::Value::Object(out)
        }
        serde_json::Value::Array(items) => {
            serde_json::Value::Array(items.iter().map(canonical).collect())
        }
        other => other.clone(),
    }
}

/// One payout as the ledger knows it.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
    /// Unix seconds after which the current envelope can no longer land.
    pub max_time: Option<i64>,
    /// The ledger the transaction landed in, once confirmed.
    pub ledger: Option<i64>,
    /// How many times envelopes of this payout were sent to Horizon.
    pub submit_attempts: i64,
    /// Failed attempts of the current step.
    pub attempts: i64,
    /// Why the payout failed, needs attention, or waits.
    pub reason: Option<String>,
    /// Unix milliseconds.
    pub created_at: i64,
    /// Unix milliseconds of the last change.
    pub updated_at: i64,
    /// The sweeper leaves the payout alone until then (unix ms), when set.
    pub next_check_at: Option<i64>,
}

/// One line of a payout's append-only history.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
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
    /// Unix milliseconds.
    pub at: i64,
}

/// A bulk import.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BatchRow {
    pub id: BatchId,
    /// Where the rows came from (e.g. the file name).
    pub source: Option<String>,
    pub created_at: i64,
    /// New payouts this batch created.
    pub accepted: i64,
    /// Rows whose idempotency key already existed (same body).
    pub duplicates: i64,
    /// Rows refused (bad fields, or same key with another body).
    pub rejected: i64,
}

/// Which payouts [`Ledger::payouts`] lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutFilter {
    pub batch: Option<BatchId>,
    pub state: Option<PayoutState>,
}

/// Facts a step learned, stored with a transition (each `None` leaves the column as it is).
/// An [`PayoutTransition::Expired`] transition clears the envelope columns itself.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutPatch {
    pub pi_payment_id: Option<PaymentId>,
    pub to_address: Option<String>,
    pub from_address: Option<String>,
    pub tx_source: Option<String>,
    pub sequence: Option<i64>,
    pub envelope_b64: Option<String>,
    pub tx_hash: Option<String>,
    pub max_time: Option<i64>,
    pub ledger: Option<i64>,
    /// When the sweeper may look again (unix ms); `None` clears it.
    pub next_check_at: Option<i64>,
    /// Submissions to Horizon to add to `submit_attempts` (the one whose answer caused this).
    pub submits: i64,
}

/// A note on a payout without a state change (a failed attempt, a submission, a wait).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutNote<'a> {
    /// Stored as the history line's cause.
    pub cause: &'a str,
    pub detail: Option<&'a str>,
    /// The new value of `attempts` (failed attempts of the current step).
    pub attempts: i64,
    /// When the payout should be looked at again (unix ms).
    pub next_check_at: Option<i64>,
    /// Replaces `reason` when set (e.g. why the payout waits).
    pub reason: Option<&'a str>,
    /// Count one more submission to Horizon.
    pub submitted: bool,
}

/// What [`Ledger::apply_payout`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutApplied {
    /// The payout moved from `from` to `row.state`; history (and outbox) were written.
    Moved { from: PayoutState, row: PayoutRow },
    /// Already in (or past) the target, or a newer envelope is stored: nothing was written.
    AlreadyThere(PayoutRow),
}

impl PayoutApplied {
    /// The payout after the call.
    pub fn row(&self) -> &PayoutRow {
        match self {
            PayoutApplied::Moved { row, .. } | PayoutApplied::AlreadyThere(row) => row,
        }
    }

    /// Whether this call changed the state.
    pub fn moved(&self) -> bool {
        matches!(self, PayoutApplied::Moved { .. })
    }

    /// The payout after the call, by value.
    pub fn into_row(self) -> PayoutRow {
        match self {
            PayoutApplied::Moved { row, .. } | PayoutApplied::AlreadyThere(row) => row,
        }
    }
}

/// The payout columns, in the order [`payout_from_row`] reads them.
macro_rules! payout_cols {
    () => {
        "id, idempotency_key, batch_id, uid, amount_stroops, memo, metadata, state, pi_payment_id, \
         to_address, from_address, tx_source, sequence, envelope_b64, tx_hash, max_time, ledger, \
         submit_attempts, attempts, reason, created_at, updated_at, next_check_at"
    };
}

const SELECT_PAYOUT: &str = concat!("SELECT ", payout_cols!(), " FROM payouts WHERE id = $1");
const SELECT_PAYOUT_FOR_UPDATE: &str = concat!(
    "SELECT ",
    payout_cols!(),
    " FROM payouts WHERE id = $1 FOR UPDATE"
);

fn parse_payout_state(text: &str) -> Result<PayoutState, LedgerError> {
    PayoutState::parse(text)
        .ok_or_else(|| LedgerError::Corrupt(format!("unknown payout state {text:?}")))
}

fn payout_from_row(row: &AnyRow) -> Result<PayoutRow, LedgerError> {
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

fn batch_from_row(row: &AnyRow) -> Result<BatchRow, LedgerError> {
    let id: String = row.try_get(0)?;
    Ok(BatchRow {
        id: BatchId::parse(&id).map_err(corrupt("payout_batches.id"))?,
        source: row.try_get(1)?,
        created_at: row.try_get(2)?,
        accepted: row.try_get(3)?,
        duplicates: row.try_get(4)?,
        rejected: row.try_get(5)?,
    })
}

/// Append one history line.
#[allow(clippy::too_many_arguments)]
async fn insert_history(
    conn: &mut AnyConnection,
    payout_id: &PayoutId,
    from: Option<PayoutState>,
    to: PayoutState,
    cause: &str,
    detail: Option<&str>,
    attempt: i64,
    at: i64,
) -> Result<(), LedgerError> {
    sqlx::query(
        "INSERT INTO payout_events (payout_id, from_state, to_state, cause, detail, attempt, at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7)",
    )
    .bind(payout_id.as_str())
    .bind(from.map(PayoutState::as_str))
    .bind(to.as_str())
    .bind(cause)
    .bind(detail)
    .bind(attempt)
    .bind(at)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

/// The outbox event a payout entering `state` produces, if any.
fn event_for(state: PayoutState) -> Option<EventType> {
    match state {
        PayoutState::Completed => Some(EventType::PayoutCompleted),
        PayoutState::Failed => Some(EventType::PayoutFailed),
        _ => None,
    }
}

/// The `data` of a payout event.
pub fn payout_event_data(payout: &PayoutRow) -> serde_json::Value {
    serde_json::json!({ "payout": payout })
}

fn is_unique_violation(e: &sqlx::Error) -> bool {
    e.as_database_error()
        .is_some_and(|d| d.is_unique_violation())
}

/// Insert the request unless its key exists; return the row and whether it was created.
/// Same key + different fingerprint → [`LedgerError::IdempotencyConflict`].
async fn insert_or_get(
    conn: &mut AnyConnection,
    req: &PayoutRequest,
    fingerprint: &str,
    now: i64,
) -> Result<(PayoutRow, bool), LedgerError> {
    let id = PayoutId::generate();
    let metadata = req.metadata_object();
    let inserted = sqlx::query(
        "INSERT INTO payouts (id, idempotency_key, fingerprint, batch_id, uid, amount_stroops, \
         memo, metadata, state, created_at, updated_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10) \
         ON CONFLICT (idempotency_key) DO NOTHING",
    )
    .bind(id.as_str())
    .bind(req.idempotency_key.as_str())
    .bind(fingerprint)
    .bind(req.batch_id.as_ref().map(BatchId::as_str))
    .bind(req.uid.as_str())
    .bind(req.amount.stroops())
    .bind(req.memo.as_str())
    .bind(metadata.to_string())
    .bind(PayoutState::Requested.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    if inserted.rows_affected() == 1 {
        insert_history(
            conn,
            &id,
            None,
            PayoutState::Requested,
            "requested",
            req.batch_id.as_ref().map(BatchId::as_str),
            0,
            now,
        )
        .await?;
        let row = PayoutRow {
            id,
            idempotency_key: req.idempotency_key.clone(),
            batch_id: req.batch_id.clone(),
            uid: req.uid.clone(),
            amount: req.amount,
            memo: req.memo.clone(),
            metadata,
            state: PayoutState::Requested,
            pi_payment_id: None,
            to_address: None,
            from_address: None,
            tx_source: None,
            sequence: None,
            envelope_b64: None,
            tx_hash: None,
            max_time: None,
            ledger: None,
            submit_attempts: 0,
            attempts: 0,
            reason: None,
            created_at: now,
            updated_at: now,
            next_check_at: None,
        };
        return Ok((row, true));
    }
    // The fingerprint is read after the row's columns, which payout_from_row reads by index.
    let row = sqlx::query(concat!(
        "SELECT ",
        payout_cols!(),
        ", fingerprint FROM payouts WHERE idempotency_key = $1"
    ))
    .bind(req.idempotency_key.as_str())
    .fetch_one(&mut *conn)
    .await?;
    let stored_fp: String = row.try_get(23)?;
    let row = payout_from_row(&row)?;
    if stored_fp != fingerprint {
        return Err(LedgerError::IdempotencyConflict {
            key: req.idempotency_key.clone(),
            existing: row.id,
        });
    }
    Ok((row, false))
}

async fn lock_payout(
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
    /// Accept a payout request: a new payout in `requested` (`created = true`), or the existing
    /// one for the same key and body (`created = false`). Same key with a different body →
    /// [`LedgerError::IdempotencyConflict`]; invalid fields → [`LedgerError::BadPayoutRequest`].
    pub async fn request_payout(
        &self,
        req: PayoutRequest,
    ) -> Result<(PayoutRow, bool), LedgerError> {
        req.validate()?;
        let fingerprint = req.fingerprint();
        let mut tx = self.begin_write().await?;
        if let Some(batch) = &req.batch_id {
            ensure_batch(&mut tx, batch).await?;
        }
        let (row, created) = insert_or_get(&mut tx, &req, &fingerprint, now_ms()).await?;
        if let Some(batch) = &req.batch_id {
            count_batch(&mut tx, batch, i64::from(created), i64::from(!created), 0).await?;
        }
        tx.commit().await?;
        Ok((row, created))
    }

    /// Accept many requests in ONE transaction (a 500-row file is one commit). Each row gets its
    /// own result, like [`Ledger::request_payout`]; a refused row does not stop the others, and
    /// rows with a `batch_id` update that batch's counts. Only a database failure fails the call.
    pub async fn request_payouts_bulk(
        &self,
        reqs: Vec<PayoutRequest>,
    ) -> Result<Vec<Result<(PayoutRow, bool), LedgerError>>, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        // Unknown batches are refused per row up front: a foreign-key violation would abort a
        // Postgres transaction for every row.
        let mut batches: BTreeMap<BatchId, Option<(i64, i64, i64)>> = BTreeMap::new();
        for b in reqs.iter().filter_map(|r| r.batch_id.clone()) {
            if let std::collections::btree_map::Entry::Vacant(e) = batches.entry(b) {
                let known = batch_exists(&mut tx, e.key()).await?;
                e.insert(known.then_some((0, 0, 0)));
            }
        }
        let mut out = Vec::with_capacity(reqs.len());
        for req in reqs {
            let counts = req.batch_id.as_ref().and_then(|b| batches.get_mut(b));
            if let (Some(b), Some(None)) = (&req.batch_id, &counts) {
                out.push(Err(LedgerError::BatchNotFound(b.clone())));
                continue;
            }
            let counts = counts.and_then(|c| c.as_mut());
            let result = match req.validate() {
                Err(e) => Err(e),
                Ok(()) => match insert_or_get(&mut tx, &req, &req.fingerprint(), now).await {
                    // A database error may have aborted the transaction: fail the whole call.
                    Err(LedgerError::Db(e)) => return Err(LedgerError::Db(e)),
                    other => other,
                },
            };
            match (&result, counts) {
                (Ok((_, true)), Some(c)) => c.0 += 1,
                (Ok((_, false)), Some(c)) => c.1 += 1,
                (Err(_), Some(c)) => c.2 += 1,
                _ => {}
            }
            out.push(result);
        }
        for (batch, counts) in &batches {
            if let Some((a, d, r)) = counts {
                count_batch(&mut tx, batch, *a, *d, *r).await?;
            }
        }
        tx.commit().await?;
        Ok(out)
    }

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

    /// Payouts a job should be working on (`requested`, `created`, `signed`, `confirmed`) that
    /// have not changed for `older_than_ms` and are not postponed by `next_check_at`: the
    /// sweeper re-enqueues them. Oldest first.
    pub async fn payouts_stuck(
        &self,
        older_than_ms: i64,
        limit: i64,
    ) -> Result<Vec<PayoutRow>, LedgerError> {
        let now = now_ms();
        let rows = sqlx::query(concat!(
            "SELECT ",
            payout_cols!(),
            " FROM payouts WHERE state IN ('requested', 'created', 'signed', 'confirmed') ",
            "AND updated_at <= $1 AND (next_check_at IS NULL OR next_check_at <= $2) ",
            "ORDER BY updated_at LIMIT $3"
        ))
        .bind(now.saturating_sub(older_than_ms))
        .bind(now)
        .bind(limit)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(payout_from_row).collect()
    }

    /// Apply `transition` in ONE transaction: the state machine decides, then the conditional
    /// UPDATE with `patch`, a history line and (completed/failed) the outbox event.
    ///
    /// Refusals: a different Pi payment or txid than the stored one →
    /// [`LedgerError::PayoutConflict`]; `Expired` for a hash that is no longer the stored one
    /// (someone already rebuilt) → `AlreadyThere`.
    pub async fn apply_payout(
        &self,
        id: &PayoutId,
        transition: PayoutTransition,
        detail: Option<&str>,
        attempt: i64,
        patch: PayoutPatch,
    ) -> Result<PayoutApplied, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = lock_payout(&mut tx, self.is_pg(), id)
            .await?
            .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()))?;
        let to = state::next_payout(row.state, &transition)?;
        let conflict = |detail: String| LedgerError::PayoutConflict {
            payout_id: id.clone(),
            detail,
        };
        if let (Some(stored), Some(new)) = (&row.pi_payment_id, &patch.pi_payment_id)
            && stored != new
        {
            return Err(conflict(format!(
                "it is bound to Pi payment {stored}, not {new}"
            )));
        }
        if let PayoutTransition::Expired { tx_hash, .. } = &transition
            && row.tx_hash.as_deref() != Some(tx_hash.as_str())
        {
            tx.rollback().await?;
            return Ok(PayoutApplied::AlreadyThere(row));
        }
        if transition == PayoutTransition::Confirmed
            && to == row.state
            && let (Some(stored), Some(new)) = (&row.tx_hash, &patch.tx_hash)
            && stored != new
        {
            return Err(conflict(format!(
                "it is confirmed with transaction {stored}, not {new}"
            )));
        }
        if to == row.state {
            tx.rollback().await?;
            return Ok(PayoutApplied::AlreadyThere(row));
        }
        let clear = matches!(transition, PayoutTransition::Expired { .. });
        let metadata_detail = detail;
        let updated = sqlx::query(concat!(
            "UPDATE payouts SET state = $3, updated_at = $4, attempts = $5, reason = $6, ",
            "pi_payment_id = COALESCE($7, pi_payment_id), ",
            "to_address = COALESCE($8, to_address), from_address = COALESCE($9, from_address), ",
            "tx_source = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($11, tx_source) END, ",
            "sequence = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($12, sequence) END, ",
            "envelope_b64 = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($13, envelope_b64) END, ",
            "tx_hash = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($14, tx_hash) END, ",
            "max_time = CASE WHEN $10 = 1 THEN NULL ELSE COALESCE($15, max_time) END, ",
            "ledger = COALESCE($16, ledger), next_check_at = $17, ",
            "submit_attempts = submit_attempts + $18 ",
            "WHERE id = $1 AND state = $2 RETURNING ",
            payout_cols!()
        ))
        .bind(id.as_str())
        .bind(row.state.as_str())
        .bind(to.as_str())
        .bind(now)
        .bind(attempt)
        .bind(transition.reason())
        .bind(patch.pi_payment_id.as_ref().map(PaymentId::as_str))
        .bind(patch.to_address.as_deref())
        .bind(patch.from_address.as_deref())
        .bind(i64::from(clear))
        .bind(patch.tx_source.as_deref())
        .bind(patch.sequence)
        .bind(patch.envelope_b64.as_deref())
        .bind(patch.tx_hash.as_deref())
        .bind(patch.max_time)
        .bind(patch.ledger)
        .bind(patch.next_check_at)
        .bind(patch.submits)
        .fetch_optional(&mut *tx)
        .await;
        let updated = match updated {
            Ok(u) => u,
            Err(e) if is_unique_violation(&e) => {
                return Err(conflict(
                    "its Pi payment or transaction already belongs to another payout".into(),
                ));
            }
            Err(e) => return Err(e.into()),
        };
        let Some(updated) = updated else {
            return Err(LedgerError::PayoutConflict {
                payout_id: id.clone(),
                detail: "it changed while this update ran; retry (it will see the new state)"
                    .into(),
            });
        };
        let new_row = payout_from_row(&updated)?;
        let history_detail = match &transition {
            PayoutTransition::Expired { tx_hash, reason } => Some(format!(
                "envelope {tx_hash} is dead ({reason}){}",
                metadata_detail
                    .map(|d| format!("; {d}"))
                    .unwrap_or_default()
            )),
            PayoutTransition::Signed => Some(format!(
                "envelope {} (source {}, sequence {}, max_time {})",
                new_row.tx_hash.as_deref().unwrap_or("?"),
                new_row.tx_source.as_deref().unwrap_or("?"),
                new_row.sequence.unwrap_or_default(),
                new_row.max_time.unwrap_or_default()
            )),
            _ => metadata_detail.map(str::to_string),
        };
        insert_history(
            &mut tx,
            id,
            Some(row.state),
            to,
            transition.cause(),
            history_detail.as_deref(),
            attempt,
            now,
        )
        .await?;
        if let Some(event_type) = event_for(to) {
            super::outbox::insert_event_once(
                &mut tx,
                self.is_pg(),
                event_type,
                new_row.id.as_str(),
                &payout_event_data(&new_row),
                now,
            )
            .await?;
        }
        tx.commit().await?;
        Ok(PayoutApplied::Moved {
            from: row.state,
            row: new_row,
        })
    }

    /// Record an attempt or a wait without changing the state (the history shows every try
    /// that led to `needs_attention`).
    pub async fn note_payout(
        &self,
        id: &PayoutId,
        note: PayoutNote<'_>,
    ) -> Result<PayoutRow, LedgerError> {
        let mut tx = self.begin_write().await?;
        let now = now_ms();
        let row = sqlx::query(concat!(
            "UPDATE payouts SET attempts = $2, next_check_at = $3, reason = COALESCE($4, reason), ",
            "submit_attempts = submit_attempts + $5 WHERE id = $1 RETURNING ",
            payout_cols!()
        ))
        .bind(id.as_str())
        .bind(note.attempts)
        .bind(note.next_check_at)
        .bind(note.reason)
        .bind(i64::from(note.submitted))
        .fetch_optional(&mut *tx)
        .await?
        .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()))?;
        let row = payout_from_row(&row)?;
        insert_history(
            &mut tx,
            id,
            Some(row.state),
            row.state,
            note.cause,
            note.detail.or(note.reason),
            note.attempts,
            now,
        )
        .await?;
        tx.commit().await?;
        Ok(row)
    }

    /// Withdraw a payout before any envelope was stored (`requested` or `created`). A payout
    /// that may be on its way to the chain cannot be cancelled
    /// ([`LedgerError::InvalidPayoutTransition`]). If a Pi payment exists, the next step of the
    /// payout cancels it at Pi: enqueue the payout job after this.
    pub async fn cancel_payout(
        &self,
        id: &PayoutId,
        reason: Option<&str>,
    ) -> Result<PayoutApplied, LedgerError> {
        self.apply_payout(
            id,
            PayoutTransition::Cancelled {
                reason: reason.unwrap_or("cancelled by the operator").to_string(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
    }

    /// Send a `needs_attention` payout back to the step its stored data implies: confirmed if a
    /// landed transaction is recorded, signed if an envelope is stored (it is resubmitted, never
    /// replaced blindly), created if a Pi payment exists, else requested.
    pub async fn retry_payout(
        &self,
        id: &PayoutId,
        detail: Option<&str>,
    ) -> Result<PayoutApplied, LedgerError> {
        let row = self
            .payout(id)
            .await?
            .ok_or_else(|| LedgerError::PayoutNotFound(id.clone()))?;
        let target = if row.ledger.is_some() && row.tx_hash.is_some() {
            PayoutState::Confirmed
        } else if row.envelope_b64.is_some() {
            PayoutState::Signed
        } else if row.pi_payment_id.is_some() {
            PayoutState::Created
        } else {
            PayoutState::Requested
        };
        self.apply_payout(
            id,
            PayoutTransition::Retry(target),
            detail,
            0,
            PayoutPatch::default(),
        )
        .await
    }

    /// Start a bulk import (`source`: e.g. the file name).
    pub async fn create_batch(&self, source: Option<&str>) -> Result<BatchRow, LedgerError> {
        let id = BatchId::generate();
        let now = now_ms();
        sqlx::query("INSERT INTO payout_batches (id, source, created_at) VALUES ($1, $2, $3)")
            .bind(id.as_str())
            .bind(source)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(BatchRow {
            id,
            source: source.map(str::to_string),
            created_at: now,
            accepted: 0,
            duplicates: 0,
            rejected: 0,
        })
    }

    /// One batch with its counts.
    pub async fn batch(&self, id: &BatchId) -> Result<Option<BatchRow>, LedgerError> {
        let row = sqlx::query(
            "SELECT id, source, created_at, accepted, duplicates, rejected \
             FROM payout_batches WHERE id = $1",
        )
        .bind(id.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(batch_from_row).transpose()
    }

    /// Count rows refused before they reached the ledger (unparseable lines of the file).
    pub async fn add_batch_rejected(&self, id: &BatchId, n: i64) -> Result<(), LedgerError> {
        let mut tx = self.begin_write().await?;
        ensure_batch(&mut tx, id).await?;
        count_batch(&mut tx, id, 0, 0, n).await?;
        tx.commit().await?;
        Ok(())
    }

    /// How many payouts of a batch are in each state (for `payouts status --batch`).
    pub async fn batch_state_counts(
        &self,
        id: &BatchId,
    ) -> Result<Vec<(PayoutState, i64)>, LedgerError> {
        let rows = sqlx::query(
            "SELECT state, COUNT(*) FROM payouts WHERE batch_id = $1 GROUP BY state ORDER BY state",
        )
        .bind(id.as_str())
        .fetch_all(&self.pool)
        .await?;
        state_counts(&rows)
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
fn state_counts(rows: &[sqlx::any::AnyRow]) -> Result<Vec<(PayoutState, i64)>, LedgerError> {
    rows.iter()
        .map(|r| {
            let s: String = r.try_get(0)?;
            Ok((parse_payout_state(&s)?, r.try_get::<i64, _>(1)?))
        })
        .collect()
}

async fn batch_exists(conn: &mut AnyConnection, id: &BatchId) -> Result<bool, LedgerError> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM payout_batches WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

async fn ensure_batch(conn: &mut AnyConnection, id: &BatchId) -> Result<(), LedgerError> {
    if batch_exists(conn, id).await? {
        Ok(())
    } else {
        Err(LedgerError::BatchNotFound(id.clone()))
    }
}

async fn count_batch(
    conn: &mut AnyConnection,
    id: &BatchId,
    accepted: i64,
    duplicates: i64,
    rejected: i64,
) -> Result<(), LedgerError> {
    sqlx::query(
        "UPDATE payout_batches SET accepted = accepted + $2, duplicates = duplicates + $3, \
         rejected = rejected + $4 WHERE id = $1",
    )
    .bind(id.as_str())
    .bind(accepted)
    .bind(duplicates)
    .bind(rejected)
    .execute(&mut *conn)
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(metadata: serde_json::Value) -> PayoutRequest {
        PayoutRequest {
            uid: Uid::parse("u-1").unwrap(),
            amount: PiAmount::parse("1.5").unwrap(),
            memo: "Reward".into(),
            metadata,
            idempotency_key: "k-1".into(),
            batch_id: None,
        }
    }

    #[test]
    fn fingerprint_ignores_key_order_and_batch_but_not_the_body() {
        let a = req(serde_json::json!({"a": 1, "b": {"y": 2, "x": 1}}));
        let b = req(serde_json::json!({"b": {"x": 1, "y": 2}, "a": 1}));
        assert_eq!(a.fingerprint(), b.fingerprint());
        let mut c = a.clone();
        c.batch_id = Some(BatchId::generate());
        assert_eq!(a.fingerprint(), c.fingerprint());
        let mut d = a.clone();
        d.amount = PiAmount::parse("1.5000001").unwrap();
        assert_ne!(a.fingerprint(), d.fingerprint());
        assert_eq!(
            req(serde_json::Value::Null).fingerprint(),
            req(serde_json::json!({})).fingerprint()
        );
    }

    #[test]
    fn validation() {
        assert!(req(serde_json::json!({})).validate().is_ok());
        assert!(req(serde_json::json!([1])).validate().is_err());
        assert!(
            req(serde_json::json!({"payout_id": "x"}))
                .validate()
                .is_err()
        );
        let mut r = req(serde_json::Value::Null);
        r.idempotency_key = String::new();
        assert!(r.validate().is_err());
        r.idempotency_key = "a\nb".into();
        assert!(r.validate().is_err());
    }
}
