//! A fresh Postgres database per test (TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test), so Postgres tests run in parallel without seeing
//! each other's rows, and dropped again afterwards.

use pi_payments_core::ledger::{DbKind, Ledger};
use sqlx::{Connection, Executor};

fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// `base` with its database name replaced by `db`.
fn with_database(base: &str, db: &str) -> String {
    let mut url = url::Url::parse(base).unwrap();
    url.set_path(&format!("/{db}"));
    url.to_string()
}

/// Drops the test's database when the test is done with its ledger.
pub struct Cleanup {
    db: String,
}

impl Cleanup {
    pub async fn done(self, ledger: Ledger) {
        ledger.close().await;
        // The maintenance connection goes to the `postgres` database (a database cannot be
        // dropped from a connection to itself).
        if let Ok(mut conn) =
            sqlx::PgConnection::connect(&with_database(&base_url(), "postgres")).await
        {
            let sql = format!("DROP DATABASE IF EXISTS {} WITH (FORCE)", self.db);
            let _ = conn.execute(sqlx::AssertSqlSafe(sql)).await;
        }
    }
}

/// A migrated ledger on a database of its own. Panics when Postgres cannot be reached: these
/// tests are meant to run (scripts/test and CI start Postgres).
pub async fn fresh_ledger() -> (Ledger, Cleanup) {
    let base = base_url();
    let mut conn = match sqlx::PgConnection::connect(&with_database(&base, "postgres")).await {
        Ok(c) => c,
        Err(e) => {
            panic!("Postgres at {base} is required for these tests (set TEST_DATABASE_URL): {e}")
        }
    };
    let db = format!(
        "pp_test_{}",
        pi_payments_core::ids::random_alnum(12).to_lowercase()
    );
    conn.execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {db}")))
        .await
        .unwrap();
    conn.close().await.unwrap();
    let ledger = Ledger::connect(&with_database(&base, &db)).await.unwrap();
    assert_eq!(ledger.kind(), DbKind::Postgres);
    (ledger, Cleanup { db })
}
