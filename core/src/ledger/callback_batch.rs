//! The callback group-commit engine: many callbacks recorded in as few transactions (and round
//! trips) as possible, each with the same meaning as [`Ledger::record_callback`]. First approve
//! callbacks of new payments, the common case, take ONE statement; everything else goes
//! through [`record_in`] in one transaction after it; on failure, one by one.

use super::callbacks::{Callback, Recorded, record_in};
use super::clock::now_ms;
use super::connection::{DbKind, Ledger};
use super::error::LedgerError;
use super::payments::{Direction, PaymentRow};
use crate::ids::PaymentId;
use crate::jobs::Job;
use crate::state::PaymentState;
use sqlx::{AnyConnection, Executor, Row};

/// Postgres: every first approve callback of a batch, for payments the ledger has never seen,
/// recorded with ONE statement (one round trip, its own transaction) that writes the same rows
/// [`record_in`] writes for such a callback, and returns the ids it created. `$1`: now; `$2`:
/// a JSON array of `[payment id]` with distinct ids in payment-id order
/// (rows are inserted, so locked, in that order: two concurrent batches cannot deadlock). The
/// same text for every batch size, so each connection prepares it once; before it, a batch cost
/// five round trips and a statement text per batch size, and the callback rate on Postgres was
/// bound by those round trips (CPU 40 % idle).
const PG_RECORD_NEW_APPROVALS: &str = "WITH arrived AS ( \
       SELECT j.value ->> 0 AS id, j.n \
       FROM json_array_elements($2::json) WITH ORDINALITY AS j(value, n)), \
     created AS ( \
       INSERT INTO payments (id, direction, state, txid, attempts, created_at, updated_at) \
       SELECT id, 'user_to_app', 'received', NULL, 0, $1, $1 FROM arrived ORDER BY n \
       ON CONFLICT (id) DO NOTHING RETURNING id, seq), \
     arrivals AS ( \
       INSERT INTO payment_callbacks (payment_seq, step, first_at, last_at, count, armed_count, armed_at) \
       SELECT seq, 'approve', $1, $1, 1, 1, $1 FROM created), \
     history AS ( \
       INSERT INTO payment_events (payment_id, payment_seq, from_state, to_state, cause, detail, attempt, at) \
       SELECT id, seq, NULL, 'received', 'approve_callback', NULL, 0, $1 FROM created) \
     SELECT id FROM created";

/// The `$2` of the batch statements ([`PG_RECORD_NEW_APPROVALS`],
/// [`SQLITE_RECORD_NEW_APPROVALS`]): `[payment id]` of each of `candidates` (first approvals),
/// in their order. Tokens stay out: they ride in the approve jobs, never in the ledger.
fn new_approvals_json(callbacks: &[Callback], candidates: &[usize]) -> Result<String, LedgerError> {
    let rows: Vec<(&str,)> = candidates
        .iter()
        .filter_map(|&i| match &callbacks[i] {
            Callback::Approve { payment_id, .. } => Some((payment_id.as_str(),)),
            _ => None,
        })
        .collect();
    serde_json::to_string(&rows).map_err(|e| LedgerError::Corrupt(e.to_string()))
}

/// Fill `results` for the `candidates` (first approvals) that `created` (the ids a batch
/// statement returned) holds: new payments, each with its approve job.
fn answer_created(
    callbacks: &[Callback],
    candidates: &[usize],
    created: &std::collections::HashSet<String>,
    now: i64,
    results: &mut [Option<Result<Recorded, LedgerError>>],
) {
    for &i in candidates {
        let Callback::Approve {
            payment_id: id,
            credential,
        } = &callbacks[i]
        else {
            continue;
        };
        if created.contains(id.as_str()) {
            results[i] = Some(Ok(Recorded {
                payment: new_approved_row(id, now),
                job: Some(Job::approve_with(id.clone(), credential.clone())),
                created: true,
            }));
        }
    }
}

/// The ids in the rows a batch statement returned.
fn created_ids(
    rows: Result<Vec<sqlx::any::AnyRow>, sqlx::Error>,
) -> Result<std::collections::HashSet<String>, LedgerError> {
    rows.map_err(LedgerError::from).and_then(|rows| {
        rows.iter()
            .map(|row| row.try_get::<String, _>(0).map_err(LedgerError::from))
            .collect()
    })
}

/// The first approve callback of each payment in `order` (payment-id order), skipping
/// payments seen earlier in the batch: their repeats must be recorded after them, one by one.
fn first_approvals(callbacks: &[Callback], order: &[usize]) -> Vec<usize> {
    let mut seen = std::collections::HashSet::new();
    order
        .iter()
        .copied()
        .filter(|&i| seen.insert(callbacks[i].payment_id()))
        .filter(|&i| matches!(callbacks[i], Callback::Approve { .. }))
        .collect()
}

/// SQLite: every first approve callback of a batch, for payments the ledger has never seen,
/// recorded in ONE statement list (one trip to SQLite's connection thread), committed, and the
/// ids it created returned. `$1`: now; `$2`: a JSON array of `[payment id]` with distinct ids. It writes the same rows [`record_in`] writes for such a callback.
/// The new payments take the numbers after the ledger's highest `seq` (safe: `BEGIN
/// IMMEDIATE` holds the write lock), so all their rows land on the last page of each table.
/// The same text for every batch size, so SQLite prepares it once per connection. The temp
/// table lives in memory (`temp_store`) and is emptied before the commit.
const SQLITE_RECORD_NEW_APPROVALS: &str = "BEGIN IMMEDIATE; \
     CREATE TEMP TABLE IF NOT EXISTS batch_new_seq (id TEXT PRIMARY KEY NOT NULL, \
       seq INTEGER NOT NULL); \
     INSERT INTO temp.batch_new_seq (id, seq) \
       SELECT j.value ->> 0, \
         (SELECT IFNULL(MAX(seq), 0) FROM main.payments) + row_number() OVER () \
       FROM json_each($2) AS j \
       WHERE NOT EXISTS (SELECT 1 FROM payments p WHERE p.id = j.value ->> 0); \
     INSERT INTO payments (id, seq, direction, state, txid, attempts, created_at, updated_at) \
       SELECT id, seq, 'user_to_app', 'received', NULL, 0, $1, $1 FROM temp.batch_new_seq \
       ORDER BY seq; \
     INSERT INTO payment_callbacks (payment_seq, step, first_at, last_at, count, armed_count, armed_at) \
       SELECT seq, 'approve', $1, $1, 1, 1, $1 FROM temp.batch_new_seq ORDER BY seq; \
     INSERT INTO payment_events (payment_id, payment_seq, from_state, to_state, cause, detail, attempt, at) \
       SELECT id, seq, NULL, 'received', 'approve_callback', NULL, 0, $1 FROM temp.batch_new_seq \
       ORDER BY seq; \
     SELECT id FROM temp.batch_new_seq; \
     DELETE FROM temp.batch_new_seq; \
     COMMIT";

/// The row a first approve callback creates, as [`SQLITE_RECORD_NEW_APPROVALS`] writes it.
fn new_approved_row(id: &PaymentId, now: i64) -> PaymentRow {
    PaymentRow {
        id: id.clone(),
        direction: Direction::UserToApp,
        uid: None,
        amount: None,
        memo: None,
        metadata: None,
        order_id: None,
        state: PaymentState::Received,
        txid: None,
        reason: None,
        attempts: 0,
        created_at: now,
        updated_at: now,
        next_check_at: None,
    }
}

/// What [`record_batch_sqlite`] did.
struct SqliteBatch {
    /// One result per callback, in input order.
    results: Vec<Result<Recorded, LedgerError>>,
    /// False when a failed transaction could not even be rolled back: the connection must be
    /// dropped rather than written on again.
    conn_ok: bool,
}

/// Record a batch on SQLite in as few trips to SQLite's connection thread as possible: under
/// load the trips (each a thread hand-off that must wait for a core), not SQLite's work, bound
/// the callback rate. First approvals of new payments, the common case, take one trip and one
/// transaction ([`SQLITE_RECORD_NEW_APPROVALS`]). Everything else (repeats, other steps,
/// payments that exist) is then recorded by [`record_in`] in a second transaction, after the
/// first committed, so a repeat sees the payment its first approve created.
///
/// Transactions are driven with plain `BEGIN IMMEDIATE` / `COMMIT` statements so that they can
/// share a trip with other statements, and rolled back here on failure. `Err` only when nothing
/// was committed (the caller records the callbacks again one by one).
async fn record_batch_sqlite(
    conn: &mut AnyConnection,
    callbacks: &[Callback],
    order: &[usize],
    now: i64,
    stuck_after_ms: i64,
) -> Result<SqliteBatch, LedgerError> {
    let mut results: Vec<Option<Result<Recorded, LedgerError>>> =
        (0..callbacks.len()).map(|_| None).collect();
    let candidates = first_approvals(callbacks, order);
    if !candidates.is_empty() {
        let rows = new_approvals_json(callbacks, &candidates)?;
        let fetched = sqlx::query(SQLITE_RECORD_NEW_APPROVALS)
            .bind(now)
            .bind(rows)
            .fetch_all(&mut *conn)
            .await;
        let created = match created_ids(fetched) {
            Ok(created) => created,
            Err(err) => {
                // Nothing committed; the caller drops the connection if this fails too.
                rollback(conn).await?;
                return Err(err);
            }
        };
        answer_created(callbacks, &candidates, &created, now, &mut results);
    }
    let rest: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&i| results[i].is_none())
        .collect();
    let mut conn_ok = true;
    if !rest.is_empty() {
        match record_rest_sqlite(conn, callbacks, &rest, now, stuck_after_ms).await {
            Ok(recorded) => {
                for (i, result) in rest.into_iter().zip(recorded) {
                    results[i] = Some(result);
                }
            }
            Err(_) => {
                // One by one, each in its own transaction, as the Postgres path falls back.
                conn_ok = rollback(conn).await.is_ok();
                for i in rest {
                    let result = if conn_ok {
                        let one =
                            record_rest_sqlite(conn, callbacks, &[i], now, stuck_after_ms).await;
                        match one {
                            Ok(mut one) => one.pop().unwrap_or_else(|| {
                                Err(LedgerError::Corrupt("callback left unrecorded".into()))
                            }),
                            Err(err) => {
                                conn_ok = rollback(conn).await.is_ok();
                                Err(err)
                            }
                        }
                    } else {
                        Err(LedgerError::Corrupt(
                            "the ledger connection failed; the callback was not recorded".into(),
                        ))
                    };
                    results[i] = Some(result);
                }
            }
        }
    }
    Ok(SqliteBatch {
        results: results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(LedgerError::Corrupt("batch slot left empty".into()))))
            .collect(),
        conn_ok,
    })
}

/// [`record_each`] in one `BEGIN IMMEDIATE` transaction on `conn` (SQLite); on `Err` the
/// caller rolls back.
async fn record_rest_sqlite(
    conn: &mut AnyConnection,
    callbacks: &[Callback],
    which: &[usize],
    now: i64,
    stuck_after_ms: i64,
) -> Result<Vec<Result<Recorded, LedgerError>>, LedgerError> {
    conn.execute("BEGIN IMMEDIATE").await?;
    let results = record_each(conn, false, callbacks, which, now, stuck_after_ms).await?;
    conn.execute("COMMIT").await?;
    Ok(results)
}

/// Record `which` callbacks one after the other inside the transaction open on `conn`. A
/// refusal (e.g. a txid conflict) is that callback's result; a database failure is `Err` and
/// leaves the transaction for the caller to roll back (on Postgres it is poisoned anyway).
async fn record_each(
    conn: &mut AnyConnection,
    is_pg: bool,
    callbacks: &[Callback],
    which: &[usize],
    now: i64,
    stuck_after_ms: i64,
) -> Result<Vec<Result<Recorded, LedgerError>>, LedgerError> {
    let mut results = Vec::with_capacity(which.len());
    for &i in which {
        match record_in(conn, is_pg, &callbacks[i], now, stuck_after_ms).await {
            Err(e @ LedgerError::Db(_)) => return Err(e),
            other => results.push(other),
        }
    }
    Ok(results)
}

/// Roll back whatever transaction `conn` has open (none is fine).
async fn rollback(conn: &mut AnyConnection) -> Result<(), LedgerError> {
    match conn.execute("ROLLBACK").await {
        Ok(_) => Ok(()),
        // "cannot rollback - no transaction is active": the failure came before BEGIN or
        // SQLite already rolled back; the connection is clean.
        Err(err) if err.to_string().contains("no transaction is active") => Ok(()),
        Err(err) => Err(err.into()),
    }
}

impl Ledger {
    /// Record many callbacks in ONE transaction (group commit under load). Results are in
    /// input order; one callback's refusal (e.g. a txid conflict) does not affect the others.
    ///
    /// Refusals are detected before writing, so they leave the transaction usable. If the
    /// transaction fails anyway (e.g. a concurrent writer on Postgres claimed the same txid
    /// between check and write), every callback is recorded again in its own transaction.
    pub async fn record_callbacks(
        &self,
        callbacks: Vec<Callback>,
    ) -> Vec<Result<Recorded, LedgerError>> {
        if callbacks.is_empty() {
            return Vec::new();
        }
        match self.record_batch(&callbacks).await {
            Ok(results) => results,
            Err(_) => {
                let mut results = Vec::with_capacity(callbacks.len());
                for cb in &callbacks {
                    results.push(self.record_callback(cb).await);
                }
                results
            }
        }
    }

    async fn record_batch(
        &self,
        callbacks: &[Callback],
    ) -> Result<Vec<Result<Recorded, LedgerError>>, LedgerError> {
        // Lock rows in payment-id order (a stable sort keeps repeats of one payment in arrival
        // order), so two concurrent batches on Postgres cannot deadlock on each other.
        let mut order: Vec<usize> = (0..callbacks.len()).collect();
        order.sort_by(|&a, &b| callbacks[a].payment_id().cmp(callbacks[b].payment_id()));
        if self.kind() == DbKind::Sqlite {
            return match &self.batch_conn {
                Some(own) => {
                    let mut guard = own.lock().await?;
                    let Some(conn) = guard.as_mut() else {
                        return Err(LedgerError::Corrupt("batch connection missing".into()));
                    };
                    let batch =
                        record_batch_sqlite(conn, callbacks, &order, now_ms(), self.stuck_after_ms)
                            .await;
                    if !batch.as_ref().is_ok_and(|b| b.conn_ok) {
                        // Never write on a connection that may be mid-transaction: reopen.
                        *guard = None;
                    }
                    batch.map(|b| b.results)
                }
                None => {
                    // In memory (tests): the one pooled connection IS the database, so it is
                    // kept even after a failed rollback.
                    let mut conn = self.writer.acquire().await?;
                    record_batch_sqlite(&mut conn, callbacks, &order, now_ms(), self.stuck_after_ms)
                        .await
                        .map(|b| b.results)
                }
            };
        }
        let now = now_ms();
        let mut results: Vec<Option<Result<Recorded, LedgerError>>> =
            (0..callbacks.len()).map(|_| None).collect();
        // 1. First approvals of new payments: one statement, its own transaction. If it
        //    fails nothing was committed, and the caller records the batch one by one.
        let candidates = first_approvals(callbacks, &order);
        if !candidates.is_empty() {
            let fetched = sqlx::query(PG_RECORD_NEW_APPROVALS)
                .bind(now)
                .bind(new_approvals_json(callbacks, &candidates)?)
                .fetch_all(&self.writer)
                .await;
            answer_created(
                callbacks,
                &candidates,
                &created_ids(fetched)?,
                now,
                &mut results,
            );
        }
        // 2. Everything else (repeats, other steps, payments that exist), in id order, in one
        //    transaction after the first committed; if it fails, one by one (what 1. created
        //    stays answered as created).
        let rest: Vec<usize> = order
            .iter()
            .copied()
            .filter(|&i| results[i].is_none())
            .collect();
        if !rest.is_empty() {
            match self.record_rest_pg(callbacks, &rest, now).await {
                Ok(recorded) => {
                    for (i, result) in rest.into_iter().zip(recorded) {
                        results[i] = Some(result);
                    }
                }
                Err(_) => {
                    for i in rest {
                        results[i] = Some(self.record_callback(&callbacks[i]).await);
                    }
                }
            }
        }
        Ok(results
            .into_iter()
            .map(|r| r.unwrap_or_else(|| Err(LedgerError::Corrupt("batch slot left empty".into()))))
            .collect())
    }

    /// [`record_each`] in one Postgres transaction; `Err` commits nothing.
    async fn record_rest_pg(
        &self,
        callbacks: &[Callback],
        which: &[usize],
        now: i64,
    ) -> Result<Vec<Result<Recorded, LedgerError>>, LedgerError> {
        let mut tx = self.begin_write().await?;
        let results =
            record_each(&mut tx, true, callbacks, which, now, self.stuck_after_ms).await?;
        tx.commit().await?;
        Ok(results)
    }
}
