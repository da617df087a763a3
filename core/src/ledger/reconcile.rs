//! What reconciliation remembers in the ledger (migration `0004_reconcile.sql`): one line per
//! run and the findings it reported and left alone. The lease a run holds lives in
//! [`super::leases`], the sweep counters in [`super::sweep`].

use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use sqlx::Row;

/// One reconcile run, as recorded.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema)]
pub struct RunRow {
    pub id: i64,
    /// Which process ran it (`{worker id}:{nonce}`).
    pub holder: String,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub started_at: i64,
    /// Unix milliseconds; `None` while running (or if the process died during the run).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub finished_at: Option<i64>,
    /// The run's [`crate::reconcile::RunSummary`] as JSON.
    pub summary: Option<serde_json::Value>,
    /// Why the run stopped early, if it did.
    pub error: Option<String>,
}

/// Something a run reported and deliberately left alone.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct FindingRow {
    /// e.g. `unknown_incomplete_server_payment`.
    pub kind: String,
    /// The payment / payout / transaction it is about.
    pub subject: String,
    pub detail: Option<String>,
    /// Unix milliseconds.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub first_seen: i64,
    /// Unix milliseconds.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub last_seen: i64,
    /// How many runs saw it.
    pub times: i64,
}

impl Ledger {
    /// Record the start of a run; returns its id.
    pub(crate) async fn start_reconcile_run(
        &self,
        holder: &str,
        started_at: i64,
    ) -> Result<i64, LedgerError> {
        let id: i64 = sqlx::query_scalar(
            "INSERT INTO reconcile_runs (holder, started_at) VALUES ($1, $2) RETURNING id",
        )
        .bind(holder)
        .bind(started_at)
        .fetch_one(&self.pool)
        .await?;
        Ok(id)
    }

    /// Record the end of a run.
    pub(crate) async fn finish_reconcile_run(
        &self,
        id: i64,
        summary: &serde_json::Value,
        error: Option<&str>,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE reconcile_runs SET finished_at = $2, summary = $3, error = $4 WHERE id = $1",
        )
        .bind(id)
        .bind(now_ms())
        .bind(summary.to_string())
        .bind(error)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The most recent reconcile runs, newest first.
    pub async fn reconcile_runs(&self, limit: i64) -> Result<Vec<RunRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT id, holder, started_at, finished_at, summary, error FROM reconcile_runs \
             ORDER BY id DESC LIMIT $1",
        )
        .bind(limit.clamp(1, 10_000))
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|r| {
                let summary: Option<String> = r.try_get(4)?;
                Ok(RunRow {
                    id: r.try_get(0)?,
                    holder: r.try_get(1)?,
                    started_at: r.try_get(2)?,
                    finished_at: r.try_get(3)?,
                    summary: summary.and_then(|s| serde_json::from_str(&s).ok()),
                    error: r.try_get(5)?,
                })
            })
            .collect()
    }

    /// Record (or see again) a finding; a resolved one that comes back is open again.
    pub(crate) async fn record_finding(
        &self,
        kind: &str,
        subject: &str,
        detail: &str,
    ) -> Result<(), LedgerError> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO reconcile_findings (kind, subject, detail, first_seen, last_seen, times) \
             VALUES ($1, $2, $3, $4, $4, 1) \
             ON CONFLICT (kind, subject) DO UPDATE SET detail = $3, last_seen = $4, \
               times = reconcile_findings.times + 1, resolved_at = NULL",
        )
        .bind(kind)
        .bind(subject)
        .bind(detail)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Mark a finding resolved (it is no longer seen).
    pub(crate) async fn resolve_finding(
        &self,
        kind: &str,
        subject: &str,
    ) -> Result<(), LedgerError> {
        sqlx::query(
            "UPDATE reconcile_findings SET resolved_at = $3 \
             WHERE kind = $1 AND subject = $2 AND resolved_at IS NULL",
        )
        .bind(kind)
        .bind(subject)
        .bind(now_ms())
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Findings not resolved yet, oldest first (optionally of one kind).
    pub async fn open_findings(&self, kind: Option<&str>) -> Result<Vec<FindingRow>, LedgerError> {
        let rows = sqlx::query(
            "SELECT kind, subject, detail, first_seen, last_seen, times FROM reconcile_findings \
             WHERE resolved_at IS NULL ORDER BY first_seen LIMIT 10000",
        )
        .fetch_all(&self.pool)
        .await?;
        let all: Result<Vec<FindingRow>, LedgerError> = rows
            .iter()
            .map(|r| {
                Ok(FindingRow {
                    kind: r.try_get(0)?,
                    subject: r.try_get(1)?,
                    detail: r.try_get(2)?,
                    first_seen: r.try_get(3)?,
                    last_seen: r.try_get(4)?,
                    times: r.try_get(5)?,
                })
            })
            .collect();
        Ok(all?
            .into_iter()
            .filter(|f| kind.is_none_or(|k| f.kind == k))
            .collect())
    }
}
