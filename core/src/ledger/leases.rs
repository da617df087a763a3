//! Named leases in the ledger: "at most one holder at a time" across every worker process that
//! shares the database, without Redis or advisory locks (both ledgers support it the same way).
//!
//! A lease is one row (`name`, `holder`, `expires_at`). It is taken with ONE conditional upsert
//! that only succeeds when the row is missing or expired, so two processes racing for it get
//! one winner on SQLite (writes serialize) and on Postgres (the upsert locks the row and
//! re-checks the condition). A holder that dies simply lets its lease expire; the next taker
//! takes it over. Holders are unique per use (e.g. worker id + run nonce), so a stale process
//! can never release or renew someone else's lease.

use super::clock::now_ms;
use super::connection::Ledger;
use super::error::LedgerError;
use sqlx::Row;
use std::time::Duration;

/// One lease as stored.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct LeaseRow {
    pub name: String,
    pub holder: String,
    /// Unix milliseconds.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub acquired_at: i64,
    /// Unix milliseconds; after it, anyone may take the lease over.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub expires_at: i64,
}

/// Whether the caller holds the lease after a take or a renewal.
pub type LeaseHeld = Result<bool, LedgerError>;

/// Take the lease when it is missing or expired (`$1` name, `$2` holder, `$3` now, `$4` until):
/// the upsert changes no row when someone holds it.
const TAKE_LEASE: &str = "INSERT INTO leases (name, holder, acquired_at, expires_at) \
     VALUES ($1, $2, $3, $4) \
     ON CONFLICT (name) DO UPDATE SET holder = $2, acquired_at = $3, expires_at = $4 \
     WHERE leases.expires_at <= $3";

/// Extend the lease while `holder` still holds it (same parameters as [`TAKE_LEASE`]).
const RENEW_LEASE: &str =
    "UPDATE leases SET expires_at = $4 WHERE name = $1 AND holder = $2 AND expires_at > $3";

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Ledger {
    /// Take lease `name` for `holder` for `ttl`, if it is free or expired. `true` when taken.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> LeaseHeld {
        self.write_lease(TAKE_LEASE, name, holder, ttl).await
    }

    /// Extend a lease `holder` still holds by `ttl` from now. `false` when it was lost (expired
    /// and taken over): the holder must stop what the lease protects.
    pub async fn renew_lease(&self, name: &str, holder: &str, ttl: Duration) -> LeaseHeld {
        self.write_lease(RENEW_LEASE, name, holder, ttl).await
    }

    /// Run a lease write whose `$1`..`$4` are the name, the holder, now and now + `ttl` (unix
    /// ms); `true` when it changed the lease's row.
    async fn write_lease(
        &self,
        sql: &'static str,
        name: &str,
        holder: &str,
        ttl: Duration,
    ) -> LeaseHeld {
        let now = now_ms();
        let written = sqlx::query(sql)
            .bind(name)
            .bind(holder)
            .bind(now)
            .bind(now.saturating_add(ms(ttl)))
            .execute(&self.pool)
            .await?;
        Ok(written.rows_affected() == 1)
    }

    /// Give the lease back. With `keep_until` (unix ms) the lease stays held, unrenewable,
    /// until then: a cool-down so that other processes ticking at the same moment do not run
    /// the protected work again right after this holder finished. A lease someone else holds
    /// is left alone.
    pub async fn release_lease(
        &self,
        name: &str,
        holder: &str,
        keep_until: Option<i64>,
    ) -> Result<(), LedgerError> {
        match keep_until {
            Some(until) => {
                sqlx::query("UPDATE leases SET expires_at = $3 WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .bind(until)
                    .execute(&self.pool)
                    .await?;
            }
            None => {
                sqlx::query("DELETE FROM leases WHERE name = $1 AND holder = $2")
                    .bind(name)
                    .bind(holder)
                    .execute(&self.pool)
                    .await?;
            }
        }
        Ok(())
    }

    /// The lease row, if anyone ever took it (it may be expired).
    pub async fn lease(&self, name: &str) -> Result<Option<LeaseRow>, LedgerError> {
        let row =
            sqlx::query("SELECT name, holder, acquired_at, expires_at FROM leases WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?;
        row.map(|r| {
            Ok(LeaseRow {
                name: r.try_get(0)?,
                holder: r.try_get(1)?,
                acquired_at: r.try_get(2)?,
                expires_at: r.try_get(3)?,
            })
        })
        .transpose()
    }
}
