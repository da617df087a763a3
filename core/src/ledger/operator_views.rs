//! What the operator dashboard (and its JSON twins under `/admin`) reads: pages of payments,
//! payouts, outbox deliveries and bulk batches, newest first, and counts per state.
//!
//! Every query is one bounded index range (migration 0010 adds the indexes): a page is at most
//! [`MAX_PAGE`] rows reached by keyset paging ([`PageCursor`]), and a count stops at a cap
//! ([`COUNT_CAP`]), so a flood of dashboard views costs the same on a ledger of millions of rows
//! as on an empty one.

use super::connection::Ledger;
use super::error::LedgerError;
use super::outbox::{EVENT_COLS, EventRow, event_from_row};
use super::payments::{PaymentRow, payment_cols, payment_from_row};
use super::payout_batches::{BatchRow, batch_from_row};
use super::payouts::{PayoutRow, payout_cols, payout_from_row};
use crate::ids::{BatchId, Uid};
use crate::state::{PaymentState, PayoutState};
use sqlx::any::AnyRow;

/// The largest page any listing returns.
pub const MAX_PAGE: i64 = 100;

/// Counts stop here (shown as "at least"): counting every row of a state would read the whole
/// index range on each page view.
pub const COUNT_CAP: i64 = 10_000;

/// Where the next page starts: the `(created_at, id)` of the last row shown (rows are listed
/// newest first). Written as `<unix ms>.<id>` in URLs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PageCursor {
    /// Unix milliseconds of the last row shown.
    pub created_at: i64,
    /// Its id.
    pub id: String,
}

impl PageCursor {
    /// The cursor after `created_at`/`id`.
    pub fn after(created_at: i64, id: &str) -> PageCursor {
        PageCursor {
            created_at,
            id: id.to_string(),
        }
    }

    /// Read `<unix ms>.<id>`; `None` for anything else (ids are letters, digits, `_` and `-`).
    pub fn parse(text: &str) -> Option<PageCursor> {
        let (ms, id) = text.split_once('.')?;
        let ok_id = !id.is_empty()
            && id.len() <= 128
            && id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        ok_id.then_some(())?;
        Some(PageCursor {
            created_at: ms.parse().ok()?,
            id: id.to_string(),
        })
    }

    /// The URL form read by [`PageCursor::parse`].
    pub fn encode(&self) -> String {
        format!("{}.{}", self.created_at, self.id)
    }
}

/// Which payments a page lists. Without a state or uid it lists every payment.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PaymentQuery {
    /// Only this state.
    pub state: Option<PaymentState>,
    /// Only this Pioneer's.
    pub uid: Option<Uid>,
    /// Only payments created at or after this (unix ms).
    pub created_since: Option<i64>,
    /// Rows older than this cursor (the next page).
    pub before: Option<PageCursor>,
}

/// Which payouts a page lists.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PayoutQuery {
    /// Only this state.
    pub state: Option<PayoutState>,
    /// Only payouts to this Pioneer.
    pub uid: Option<Uid>,
    /// Only payouts of this bulk batch.
    pub batch: Option<BatchId>,
    /// Only payouts created at or after this (unix ms).
    pub created_since: Option<i64>,
    /// Rows older than this cursor (the next page).
    pub before: Option<PageCursor>,
}

/// Which outbox events a page lists (newest first, by id).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DeliveryQuery {
    /// Only events not yet acknowledged by the app's webhook.
    pub undelivered_only: bool,
    /// Events with an id below this (the next page).
    pub before_id: Option<i64>,
}

/// A batch with how far its payouts got (each count capped at [`BATCH_COUNT_CAP`]).
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct BatchProgress {
    /// The batch and its import counts.
    pub batch: BatchRow,
    /// Payouts completed (paid).
    pub completed: i64,
    /// Payouts failed for good.
    pub failed: i64,
    /// Payouts waiting for an operator.
    pub needs_attention: i64,
}

/// Per-batch progress counts stop here on listings (a batch's own page counts exactly).
pub const BATCH_COUNT_CAP: i64 = 1_000;

/// `WHERE` clauses and their text binds, numbered from `$1`.
struct Filter {
    clauses: Vec<String>,
    binds: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Filter {
    fn new() -> Filter {
        Filter {
            clauses: Vec::new(),
            binds: Vec::new(),
        }
    }

    fn next(&mut self, bind: Bind) -> String {
        self.binds.push(bind);
        format!("${}", self.binds.len())
    }

    fn eq(&mut self, column: &str, value: Bind) {
        let p = self.next(value);
        self.clauses.push(format!("{column} = {p}"));
    }

    fn since(&mut self, since: Option<i64>) {
        if let Some(since) = since {
            let p = self.next(Bind::Int(since));
            self.clauses.push(format!("created_at >= {p}"));
        }
    }

    fn before(&mut self, cursor: Option<&PageCursor>) {
        if let Some(c) = cursor {
            let at = self.next(Bind::Int(c.created_at));
            let id = self.next(Bind::Text(c.id.clone()));
            self.clauses.push(format!(
                "(created_at < {at} OR (created_at = {at} AND id < {id}))"
            ));
        }
    }

    fn sql(&mut self, select: &str, order: &str, limit: i64) -> String {
        let mut sql = select.to_string();
        if !self.clauses.is_empty() {
            sql.push_str(" WHERE ");
            sql.push_str(&self.clauses.join(" AND "));
        }
        let p = self.next(Bind::Int(limit.clamp(1, MAX_PAGE)));
        sql.push_str(&format!(" ORDER BY {order} LIMIT {p}"));
        sql
    }

    async fn fetch(self, ledger: &Ledger, sql: String) -> Result<Vec<AnyRow>, LedgerError> {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        for b in self.binds {
            q = match b {
                Bind::Text(t) => q.bind(t),
                Bind::Int(n) => q.bind(n),
            };
        }
        Ok(q.fetch_all(ledger.pool()).await?)
    }
}

impl Ledger {
    /// A page of payments, newest first (at most `limit`, itself at most [`MAX_PAGE`]).
    pub async fn payments_page(
        &self,
        query: &PaymentQuery,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, LedgerError> {
        let mut f = Filter::new();
        if let Some(s) = query.state {
            f.eq("state", Bind::Text(s.as_str().to_string()));
        }
        if let Some(uid) = &query.uid {
            f.eq("uid", Bind::Text(uid.as_str().to_string()));
        }
        f.since(query.created_since);
        f.before(query.before.as_ref());
        let sql = f.sql(
            concat!("SELECT ", payment_cols!(), " FROM payments"),
            "created_at DESC, id DESC",
            limit,
        );
        let rows = f.fetch(self, sql).await?;
        rows.iter().map(payment_from_row).collect()
    }

    /// A page of payouts, newest first (at most `limit`, itself at most [`MAX_PAGE`]).
    pub async fn payouts_page(
        &self,
        query: &PayoutQuery,
        limit: i64,
    ) -> Result<Vec<PayoutRow>, LedgerError> {
        let mut f = Filter::new();
        if let Some(s) = query.state {
            f.eq("state", Bind::Text(s.as_str().to_string()));
        }
        if let Some(uid) = &query.uid {
            f.eq("uid", Bind::Text(uid.as_str().to_string()));
        }
        if let Some(batch) = &query.batch {
            f.eq("batch_id", Bind::Text(batch.as_str().to_string()));
        }
        f.since(query.created_since);
        f.before(query.before.as_ref());
        let sql = f.sql(
            concat!("SELECT ", payout_cols!(), " FROM payouts"),
            "created_at DESC, id DESC",
            limit,
        );
        let rows = f.fetch(self, sql).await?;
        rows.iter().map(payout_from_row).collect()
    }

    /// A page of outbox events with their delivery state, newest first.
    pub async fn deliveries_page(
        &self,
        query: DeliveryQuery,
        limit: i64,
    ) -> Result<Vec<EventRow>, LedgerError> {
        let mut f = Filter::new();
        if query.undelivered_only {
            f.clauses.push("delivered_at IS NULL".to_string());
        }
        if let Some(before) = query.before_id {
            let p = f.next(Bind::Int(before));
            f.clauses.push(format!("id < {p}"));
        }
        let sql = f.sql(
            &format!("SELECT {EVENT_COLS} FROM events"),
            "id DESC",
            limit,
        );
        let rows = f.fetch(self, sql).await?;
        rows.iter().map(event_from_row).collect()
    }

    /// The latest bulk batches, newest first, with their progress.
    pub async fn batches_page(
        &self,
        before: Option<&PageCursor>,
        limit: i64,
    ) -> Result<Vec<BatchProgress>, LedgerError> {
        let mut f = Filter::new();
        f.before(before);
        let sql = f.sql(
            "SELECT id, source, created_at, accepted, duplicates, rejected FROM payout_batches",
            "created_at DESC, id DESC",
            limit,
        );
        let rows = f.fetch(self, sql).await?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            let batch = batch_from_row(row)?;
            let count = |state: PayoutState| self.batch_count(&batch.id, state);
            let completed = count(PayoutState::Completed).await?;
            let failed = count(PayoutState::Failed).await?;
            let needs_attention = count(PayoutState::NeedsAttention).await?;
            out.push(BatchProgress {
                batch,
                completed,
                failed,
                needs_attention,
            });
        }
        Ok(out)
    }

    /// Payouts of `batch` in `state`, counted up to [`BATCH_COUNT_CAP`].
    async fn batch_count(&self, batch: &BatchId, state: PayoutState) -> Result<i64, LedgerError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM payouts WHERE batch_id = $1 AND state = $2 LIMIT $3) capped",
        )
        .bind(batch.as_str())
        .bind(state.as_str())
        .bind(BATCH_COUNT_CAP)
        .fetch_one(self.pool())
        .await?)
    }

    /// Payments per state, each counted up to [`COUNT_CAP`] (every state listed, zeros too).
    pub async fn payment_counts(&self) -> Result<Vec<(PaymentState, i64)>, LedgerError> {
        let mut out = Vec::new();
        for state in crate::state::ALL_STATES {
            out.push((state, self.capped_count("payments", state.as_str()).await?));
        }
        Ok(out)
    }

    /// Payouts per state, each counted up to [`COUNT_CAP`] (every state listed, zeros too).
    pub async fn payout_counts(&self) -> Result<Vec<(PayoutState, i64)>, LedgerError> {
        let mut out = Vec::new();
        for state in crate::state::ALL_PAYOUT_STATES {
            out.push((state, self.capped_count("payouts", state.as_str()).await?));
        }
        Ok(out)
    }

    /// Undelivered outbox events, counted up to [`COUNT_CAP`].
    pub async fn undelivered_count(&self) -> Result<i64, LedgerError> {
        Ok(sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT 1 FROM events WHERE delivered_at IS NULL LIMIT $1) capped",
        )
        .bind(COUNT_CAP)
        .fetch_one(self.pool())
        .await?)
    }

    /// Rows of `table` (`payments` or `payouts`, our constants) in `state`, up to the cap.
    async fn capped_count(&self, table: &'static str, state: &str) -> Result<i64, LedgerError> {
        let sql = format!(
            "SELECT COUNT(*) FROM (SELECT 1 FROM {table} WHERE state = $1 LIMIT $2) capped"
        );
        Ok(sqlx::query_scalar(sqlx::AssertSqlSafe(sql))
            .bind(state)
            .bind(COUNT_CAP)
            .fetch_one(self.pool())
            .await?)
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::operator_views::PageCursor;

    #[test]
    fn cursors_round_trip_and_refuse_junk() {
        let c = PageCursor::after(1_700_000_000_000, "pay_abc-1");
        assert_eq!(PageCursor::parse(&c.encode()), Some(c));
        for bad in ["", "12", "x.abc", "12.", "12.a b", "12.a'b", "12.a;b"] {
            assert_eq!(PageCursor::parse(bad), None, "{bad}");
        }
    }
}
