//! Scratch PostgreSQL databases: created under a fresh random name on a given server and
//! dropped when done. `pi-payments bench callbacks --postgres` measures on one, so that a
//! benchmark never writes into an operator's own ledger, and tests take one each so that they
//! run in parallel against one server.

use super::error::LedgerError;
use sqlx::Connection;

/// A database this process created and owns; [`ScratchDatabase::drop_database`] removes it.
#[derive(Debug)]
pub struct ScratchDatabase {
    /// Where it was created from (the server's URL as given, any database on it).
    server_url: String,
    /// Its name: the prefix and random lowercase alphanumerics, so safe to splice into SQL.
    name: String,
    /// `server_url` with the database path replaced by `name`.
    url: String,
}

impl ScratchDatabase {
    /// Create `{prefix}_{random}` on the server of `server_url` (a `postgres://` URL of any
    /// database there that the user may connect to, with the right to create databases).
    ///
    /// # Panics
    /// When `prefix` is not lowercase ASCII letters, digits and `_` (it is a constant of the
    /// caller's, spliced into SQL).
    pub async fn create(server_url: &str, prefix: &str) -> Result<ScratchDatabase, LedgerError> {
        assert!(
            !prefix.is_empty()
                && prefix
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
            "scratch database prefix {prefix:?} must be lowercase letters, digits and _"
        );
        let mut url = url::Url::parse(server_url)
            .ok()
            .filter(|u| matches!(u.scheme(), "postgres" | "postgresql") && u.has_host())
            .ok_or_else(|| LedgerError::UnsupportedUrl {
                scheme: server_url
                    .split_once("://")
                    .map_or("(none)", |(scheme, _)| scheme)
                    .to_string(),
            })?;
        let name = format!(
            "{prefix}_{}",
            crate::ids::random_alnum(10).to_ascii_lowercase()
        );
        let mut conn = sqlx::PgConnection::connect(server_url)
            .await
            .map_err(LedgerError::Connect)?;
        // The name is ours (checked prefix, random alphanumerics): nothing to escape.
        sqlx::query(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .execute(&mut conn)
            .await?;
        let _ = conn.close().await;
        url.set_path(&format!("/{name}"));
        Ok(ScratchDatabase {
            server_url: server_url.to_string(),
            name,
            url: url.to_string(),
        })
    }

    /// The scratch database's URL (the server's, with the path replaced).
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The scratch database's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Drop the database, closing whatever connections are still open on it (the ledger's
    /// pools should be closed first; `WITH (FORCE)` covers any that are not).
    pub async fn drop_database(self) -> Result<(), LedgerError> {
        let mut conn = sqlx::PgConnection::connect(&self.server_url)
            .await
            .map_err(LedgerError::Connect)?;
        sqlx::query(sqlx::AssertSqlSafe(format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        )))
        .execute(&mut conn)
        .await?;
        let _ = conn.close().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use crate::ledger::scratch::*;

    #[tokio::test]
    #[should_panic(expected = "must be lowercase letters")]
    async fn a_prefix_that_is_not_a_plain_name_is_a_bug() {
        let _ = ScratchDatabase::create("postgres://127.0.0.1:1/x", "x; DROP").await;
    }

    #[tokio::test]
    async fn a_url_that_is_not_postgres_is_refused_before_connecting() {
        let err = ScratchDatabase::create("sqlite://ledger.db", "bench")
            .await
            .expect_err("not postgres");
        assert!(matches!(err, LedgerError::UnsupportedUrl { .. }), "{err}");
    }
}
