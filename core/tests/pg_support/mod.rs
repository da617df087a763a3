//! A fresh Postgres database per test (TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test), so Postgres tests run in parallel without seeing
//! each other's rows, and dropped again afterwards.

use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_payments_core::ledger::{DbKind, Ledger};

fn base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// Drops the test's database when the test is done with its ledger.
pub struct Cleanup {
    db: ScratchDatabase,
}

impl Cleanup {
    pub async fn done(self, ledger: Ledger) {
        ledger.close().await;
        let _ = self.db.drop_database().await;
    }
}

/// A migrated ledger on a database of its own. Panics when Postgres cannot be reached: these
/// tests are meant to run (scripts/test and CI start Postgres).
pub async fn fresh_ledger() -> (Ledger, Cleanup) {
    let base = base_url();
    let db = ScratchDatabase::create(&base, "pp_test")
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres at {base} is required for these tests (set TEST_DATABASE_URL): {e}")
        });
    let ledger = Ledger::connect(db.url()).await.unwrap();
    assert_eq!(ledger.kind(), DbKind::Postgres);
    (ledger, Cleanup { db })
}
