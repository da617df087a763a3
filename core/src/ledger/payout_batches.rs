//! Bulk imports: a batch row per imported file, with counts of the payouts it created, found
//! again, or refused.

use super::clock::now_ms;
use super::connection::Ledger;
use super::decode::corrupt;
use super::error::LedgerError;
use super::payouts::state_counts;
use crate::ids::BatchId;
use crate::state::PayoutState;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// A bulk import.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct BatchRow {
    pub id: BatchId,
    /// Where the rows came from (e.g. the file name).
    pub source: Option<String>,
    #[serde(with = "crate::timestamp::unix_ms")]
    pub created_at: i64,
    /// New payouts this batch created.
    pub accepted: i64,
    /// Rows whose idempotency key already existed (same body).
    pub duplicates: i64,
    /// Rows refused (bad fields, or same key with another body).
    pub rejected: i64,
}

pub(super) fn batch_from_row(row: &AnyRow) -> Result<BatchRow, LedgerError> {
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

impl Ledger {
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

    /// Delete a batch that recorded nothing: no payout belongs to it and it counted no
    /// accepted or rejected row (an import whose every row was already imported). Returns
    /// whether it was deleted; a batch with anything in it is kept.
    pub async fn delete_empty_batch(&self, id: &BatchId) -> Result<bool, LedgerError> {
        let deleted = sqlx::query(
            "DELETE FROM payout_batches WHERE id = $1 AND accepted = 0 AND rejected = 0 \
             AND NOT EXISTS (SELECT 1 FROM payouts WHERE batch_id = $1)",
        )
        .bind(id.as_str())
        .execute(&self.pool)
        .await?;
        Ok(deleted.rows_affected() > 0)
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
}

/// Whether the batch exists (read inside the caller's transaction).
pub(super) async fn batch_exists(
    conn: &mut AnyConnection,
    id: &BatchId,
) -> Result<bool, LedgerError> {
    let found: Option<String> = sqlx::query_scalar("SELECT id FROM payout_batches WHERE id = $1")
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    Ok(found.is_some())
}

/// Refuse an unknown batch with [`LedgerError::BatchNotFound`].
pub(super) async fn ensure_batch(
    conn: &mut AnyConnection,
    id: &BatchId,
) -> Result<(), LedgerError> {
    if batch_exists(conn, id).await? {
        Ok(())
    } else {
        Err(LedgerError::BatchNotFound(id.clone()))
    }
}

/// Add to a batch's counts.
pub(super) async fn count_batch(
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
