//! The `events` outbox: app-facing events written in the same transaction as the state change
//! that causes them (so none is lost or invented), read by pollers (`GET /events?after=`) and
//! by the webhook deliverer.

use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use crate::events::event_type::EventType;
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// One outbox event.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct EventRow {
    /// Increasing; pollers page with `after = last id seen`.
    pub id: i64,
    /// e.g. `payment.completed` (see [`EventType`]).
    pub event_type: String,
    /// The payment (or payout, ad…) the event is about.
    pub subject_id: String,
    /// The event's `data` (a snapshot of the subject at the time of the event).
    pub payload: serde_json::Value,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub created_at: i64,
    /// When the app's webhook acknowledged it (null while undelivered).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub delivered_at: Option<i64>,
    pub delivery_attempts: i64,
    /// When the deliverer tries again (null once delivered).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub next_attempt_at: Option<i64>,
    pub last_error: Option<String>,
}

pub(super) const EVENT_COLS: &str = "id, event_type, subject_id, payload, created_at, delivered_at, delivery_attempts, next_attempt_at, last_error";

pub(super) fn event_from_row(row: &AnyRow) -> Result<EventRow, LedgerError> {
    let payload: String = row.try_get(3)?;
    Ok(EventRow {
        id: row.try_get(0)?,
        event_type: row.try_get(1)?,
        subject_id: row.try_get(2)?,
        payload: serde_json::from_str(&payload)
            .map_err(|e| LedgerError::Corrupt(format!("events.payload: {e}")))?,
        created_at: row.try_get(4)?,
        delivered_at: row.try_get(5)?,
        delivery_attempts: row.try_get(6)?,
        next_attempt_at: row.try_get(7)?,
        last_error: row.try_get(8)?,
    })
}

/// Insert an event unless one of the same type for the same subject exists. Returns whether
/// it was inserted.
///
/// On Postgres a transaction-scoped advisory lock makes outbox inserts commit in id order, so a
/// poller paging by id never skips an event whose lower id committed after a higher one (SQLite
/// has a single writer, which gives the same order).
pub(crate) async fn insert_event_once(
    conn: &mut AnyConnection,
    pg: bool,
    event_type: EventType,
    subject_id: &str,
    payload: &serde_json::Value,
    now: i64,
) -> Result<bool, LedgerError> {
    if pg {
        // Any constant works; it only has to be the same for every outbox writer.
        sqlx::query("SELECT pg_advisory_xact_lock(7316180)")
            .execute(&mut *conn)
            .await?;
    }
    let done = sqlx::query(
        "INSERT INTO events (event_type, subject_id, payload, created_at, next_attempt_at) \
         VALUES ($1, $2, $3, $4, $4) ON CONFLICT (event_type, subject_id) DO NOTHING",
    )
    .bind(event_type.as_str())
    .bind(subject_id)
    .bind(payload.to_string())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

impl Ledger {
    /// Events with id > `after_id`, oldest first (for `GET /events?after=`).
    pub async fn events_after(
        &self,
        after_id: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, LedgerError> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id > $1 ORDER BY id LIMIT $2");
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(after_id)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// One event by id.
    pub async fn event(&self, id: i64) -> Result<Option<EventRow>, LedgerError> {
        let sql = format!("SELECT {EVENT_COLS} FROM events WHERE id = $1");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(event_from_row).transpose()
    }

    /// Undelivered events whose next attempt is due at `now` (unix ms), oldest first.
    pub async fn due_deliveries(&self, now: i64, limit: i64) -> Result<Vec<EventRow>, LedgerError> {
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE delivered_at IS NULL \
             AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(event_from_row).collect()
    }

    /// Like [`Ledger::due_deliveries`], but also pushes each returned event's next attempt to
    /// `now + lease_ms` in the same transaction, so two deliverers running at once do not send
    /// the same event at the same time (delivery stays at-least-once: apps dedupe by event id).
    pub async fn claim_deliveries(
        &self,
        now: i64,
        lease_ms: i64,
        limit: i64,
    ) -> Result<Vec<EventRow>, LedgerError> {
        let mut tx = self.begin_write().await?;
        let lock = if self.is_pg() {
            " FOR UPDATE SKIP LOCKED"
        } else {
            ""
        };
        let sql = format!(
            "SELECT {EVENT_COLS} FROM events WHERE delivered_at IS NULL \
             AND next_attempt_at <= $1 ORDER BY id LIMIT $2{lock}"
        );
        let rows = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(now)
            .bind(limit)
            .fetch_all(&mut *tx)
            .await?;
        let events = rows
            .iter()
            .map(event_from_row)
            .collect::<Result<Vec<_>, _>>()?;
        for e in &events {
            sqlx::query("UPDATE events SET next_attempt_at = $2 WHERE id = $1")
                .bind(e.id)
                .bind(now.saturating_add(lease_ms))
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await?;
        Ok(events)
    }

    /// The app acknowledged the event (2xx from its webhook).
    pub async fn mark_delivered(&self, id: i64) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE events SET delivered_at = $2, delivery_attempts = delivery_attempts + 1, \
             last_error = NULL WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// A delivery attempt failed: store why and when to try again (unix ms).
    pub async fn mark_delivery_failed(
        &self,
        id: i64,
        error: &str,
        next_attempt_at: i64,
    ) -> Result<(), LedgerError> {
        let error: String = error.chars().take(1000).collect();
        sqlx::query(
            "UPDATE events SET delivery_attempts = delivery_attempts + 1, last_error = $2, \
             next_attempt_at = $3 WHERE id = $1 AND delivered_at IS NULL",
        )
        .bind(id)
        .bind(error)
        .bind(next_attempt_at)
        .execute(&self.pool)
        .await?;
        Ok(())
    }
}
