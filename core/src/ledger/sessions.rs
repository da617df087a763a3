//! Sign-in sessions. The cookie carries a random opaque id and only its SHA-256 is stored
//! (`id_hash`), so reading this table does not yield usable cookies. A session row also caches
//! the verification of the access token it was created from (`token_hash`) until Pi's
//! `valid_until`, so a restarted API does not re-ask `/v2/me` for every signed-in Pioneer.
//! The access token itself is never stored: a session is the verified uid, scopes and expiry
//! (a cookie-only approve callback is checked against the session's uid, not a token).
//!
//! Hashing is the caller's job ([`crate::pioneer`]): the ledger stores and compares hex text.

use super::connection::Ledger;
use super::decode::corrupt;
use super::error::LedgerError;
use super::pioneers::{parse_scopes, scopes_json};
use crate::ids::Uid;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A session to store: who Pi said the token belongs to, never the token.
#[derive(Clone)]
pub struct NewSession<'a> {
    /// Hex SHA-256 of the cookie value.
    pub id_hash: &'a str,
    pub uid: &'a Uid,
    /// Hex SHA-256 of the access token (the key of the cached verification).
    pub token_hash: &'a str,
    pub username: Option<&'a str>,
    pub scopes: &'a [String],
    /// Pi's `credentials.valid_until`, unix ms.
    pub valid_until: i64,
    /// Unix ms.
    pub created_at: i64,
    /// When the session ends, unix ms (never after `valid_until`).
    pub expires_at: i64,
}

impl std::fmt::Debug for NewSession<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewSession")
            .field("uid", &self.uid)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// A stored session (rows may be logged or served: nothing in one is a credential).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionRow {
    /// Hex SHA-256 of the cookie value.
    pub id_hash: String,
    pub uid: Uid,
    pub username: Option<String>,
    pub scopes: Vec<String>,
    /// Pi's `credentials.valid_until`, unix ms.
    pub valid_until: i64,
    /// Unix ms.
    pub created_at: i64,
    /// Unix ms.
    pub expires_at: i64,
}

/// The most sessions one Pioneer keeps; signing in once more ends the oldest.
pub const MAX_SESSIONS_PER_PIONEER: i64 = 10;

const SESSION_COLS: &str = "id_hash, uid, username, scopes, valid_until, created_at, expires_at";

fn session_from_row(row: &AnyRow) -> Result<SessionRow, LedgerError> {
    let uid: String = row.try_get(1)?;
    let scopes: String = row.try_get(3)?;
    Ok(SessionRow {
        id_hash: row.try_get(0)?,
        uid: Uid::parse(&uid).map_err(corrupt("sessions.uid"))?,
        username: row.try_get(2)?,
        scopes: parse_scopes(&scopes, "sessions.scopes")?,
        valid_until: row.try_get(4)?,
        created_at: row.try_get(5)?,
        expires_at: row.try_get(6)?,
    })
}

impl Ledger {
    /// Store a new session (the Pioneer row must exist: upsert it first), and end the
    /// Pioneer's oldest sessions beyond [`MAX_SESSIONS_PER_PIONEER`]: signing in again and again
    /// (one token, many devices, or a flood) keeps a bounded number of rows.
    pub async fn insert_session(&self, s: &NewSession<'_>) -> Result<(), LedgerError> {
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO sessions (id_hash, uid, token_hash, username, scopes, \
             valid_until, created_at, expires_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(s.id_hash)
        .bind(s.uid.as_str())
        .bind(s.token_hash)
        .bind(s.username)
        .bind(scopes_json(s.scopes))
        .bind(s.valid_until)
        .bind(s.created_at)
        .bind(s.expires_at)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "DELETE FROM sessions WHERE uid = $1 AND id_hash NOT IN ( \
               SELECT id_hash FROM sessions WHERE uid = $1 \
               ORDER BY created_at DESC, id_hash LIMIT $2)",
        )
        .bind(s.uid.as_str())
        .bind(MAX_SESSIONS_PER_PIONEER)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// The session with this id hash, if it has not expired at `now` (unix ms).
    pub async fn session(
        &self,
        id_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, LedgerError> {
        let sql =
            format!("SELECT {SESSION_COLS} FROM sessions WHERE id_hash = $1 AND expires_at > $2");
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(id_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// A stored verification of the access token with this hash still valid at `now` (Pi's
    /// `valid_until` not reached), from any session created with it.
    pub async fn session_by_token_hash(
        &self,
        token_hash: &str,
        now: i64,
    ) -> Result<Option<SessionRow>, LedgerError> {
        let sql = format!(
            "SELECT {SESSION_COLS} FROM sessions WHERE token_hash = $1 AND valid_until > $2 \
             ORDER BY valid_until DESC LIMIT 1"
        );
        let row = sqlx::query(sqlx::AssertSqlSafe(sql))
            .bind(token_hash)
            .bind(now)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(session_from_row).transpose()
    }

    /// End a session; whether one was there.
    pub async fn delete_session(&self, id_hash: &str) -> Result<bool, LedgerError> {
        let done = sqlx::query("DELETE FROM sessions WHERE id_hash = $1")
            .bind(id_hash)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected() > 0)
    }

    /// Delete sessions that expired before `now` (unix ms); how many. Expired rows are already
    /// ignored by every read, so this only reclaims space.
    pub async fn purge_expired_sessions(&self, now: i64) -> Result<u64, LedgerError> {
        let done = sqlx::query("DELETE FROM sessions WHERE expires_at <= $1")
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(done.rows_affected())
    }
}
