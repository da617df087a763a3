//! The payout ledger scenarios on Postgres (TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test), each in a fresh database created for it and
//! dropped afterwards.

mod payout_common;

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

struct Cleanup {
    db: String,
}

impl Cleanup {
    async fn done(self, ledger: Ledger) {
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

async fn setup() -> Option<(Ledger, Cleanup)> {
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
    Some((ledger, Cleanup { db }))
}

payout_scenarios!(
    request_is_idempotent_and_conflicts_are_distinct,
    concurrent_requests_with_one_key_create_one_payout,
    bulk_requests_in_one_transaction,
    pipeline_transitions_and_outbox_once,
    one_pi_payment_and_one_txid_per_payout,
    cancel_only_before_an_envelope_exists,
    stuck_listing_notes_and_retry,
);
