//! Pioneers: one row per uid that `GET /v2/me` confirmed, so the service knows who signed in
//! (and with which scopes) without trusting anything a client body says about identity.

use super::clock::now_ms;
use super::connection::Ledger;
use super::decode::corrupt;
use super::error::LedgerError;
use crate::ids::Uid;
use sqlx::Row;
use sqlx::any::AnyRow;

/// A Pioneer as the ledger knows them.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct PioneerRow {
    /// App-scoped uid, from `/v2/me`.
    pub uid: Uid,
    /// Only known with the `username` scope; the last one seen is kept.
    pub username: Option<String>,
    /// Scopes granted at the last verification.
    pub scopes: Vec<String>,
    /// Unix milliseconds.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub first_seen_at: i64,
    /// Unix milliseconds of the last verification.
    #[serde(with = "crate::timestamp::unix_ms")]
    pub last_seen_at: i64,
}

/// Encode a scope list for a TEXT column.
pub(crate) fn scopes_json(scopes: &[String]) -> String {
    serde_json::Value::from(scopes.to_vec()).to_string()
}

/// Decode a scope list stored by [`scopes_json`].
pub(crate) fn parse_scopes(text: &str, what: &'static str) -> Result<Vec<String>, LedgerError> {
    serde_json::from_str(text).map_err(corrupt(what))
}

fn pioneer_from_row(row: &AnyRow) -> Result<PioneerRow, LedgerError> {
    let uid: String = row.try_get(0)?;
    let scopes: String = row.try_get(2)?;
    Ok(PioneerRow {
        uid: Uid::parse(&uid).map_err(corrupt("pioneers.uid"))?,
        username: row.try_get(1)?,
        scopes: parse_scopes(&scopes, "pioneers.scopes")?,
        first_seen_at: row.try_get(3)?,
        last_seen_at: row.try_get(4)?,
    })
}

impl Ledger {
    /// Record a verification of `uid` (insert or refresh). A missing username (the token lacks
    /// the `username` scope) keeps the one stored earlier.
    pub async fn upsert_pioneer(
        &self,
        uid: &Uid,
        username: Option<&str>,
        scopes: &[String],
    ) -> Result<PioneerRow, LedgerError> {
        let row = sqlx::query(
            "INSERT INTO pioneers (uid, username, scopes, first_seen_at, last_seen_at) \
             VALUES ($1, $2, $3, $4, $4) \
             ON CONFLICT (uid) DO UPDATE SET \
             username = COALESCE(excluded.username, pioneers.username), \
             scopes = excluded.scopes, last_seen_at = excluded.last_seen_at \
             RETURNING uid, username, scopes, first_seen_at, last_seen_at",
        )
        .bind(uid.as_str())
        .bind(username)
        .bind(scopes_json(scopes))
        .bind(now_ms())
        .fetch_one(&self.pool)
        .await?;
        pioneer_from_row(&row)
    }

    /// One Pioneer, or `None` if that uid never signed in.
    pub async fn pioneer(&self, uid: &Uid) -> Result<Option<PioneerRow>, LedgerError> {
        let row = sqlx::query(
            "SELECT uid, username, scopes, first_seen_at, last_seen_at FROM pioneers WHERE uid = $1",
        )
        .bind(uid.as_str())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(pioneer_from_row).transpose()
    }
}
