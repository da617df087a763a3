//! Payout requests: what an app asks for, checked and fingerprinted, and recorded idempotently
//! by key (one at a time or a whole file in one transaction).

use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use super::payout_batches::{batch_exists, count_batch, ensure_batch};
use super::payout_transitions::insert_history;
use super::payouts::{PAYOUT_ID_METADATA_KEY, PayoutRow, payout_cols, payout_from_row};
use crate::amount::PiAmount;
use crate::ids::{BatchId, PayoutId, Uid};
use crate::state::PayoutState;
use sha2::{Digest, Sha256};
use sqlx::{AnyConnection, Row};
use std::collections::BTreeMap;

/// Longest idempotency key accepted (keys come from apps and CSV files).
pub const MAX_IDEMPOTENCY_KEY_CHARS: usize = 200;
/// Longest memo accepted (shown to the Pioneer in the Pi wallet).
pub const MAX_PAYOUT_MEMO_CHARS: usize = 500;
/// Largest metadata object accepted, as compact JSON.
pub const MAX_PAYOUT_METADATA_BYTES: usize = 4096;

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
        if self.memo.trim().is_empty() {
            // Pi shows the memo to the Pioneer, and Pi's SDKs refuse a payment without one.
            return bad(
                "memo is empty: write what the payout is for (Pi shows it to the Pioneer)".into(),
            );
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
        // On a SQLite file, take the callback batcher's turn (a FIFO lock): a batch of
        // callbacks that arrives meanwhile writes right after this call, instead of polling
        // SQLite's write lock against an importer that takes it again at once.
        let _turn = match &self.batch_conn {
            Some(own) => Some(own.lock().await?),
            None => None,
        };
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
}

#[cfg(test)]
mod tests {
    use crate::ledger::payout_requests::*;

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
        // Pi's SDKs refuse a payment without a memo.
        let mut r = req(serde_json::Value::Null);
        for memo in ["", "  "] {
            r.memo = memo.into();
            let err = r.validate().unwrap_err().to_string();
            assert!(err.contains("memo is empty"), "{err}");
        }
    }
}
