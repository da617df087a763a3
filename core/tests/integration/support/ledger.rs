//! Fresh ledgers for tests: each one on a database nobody else sees (a SQLite file in a temp
//! directory, or a Postgres database created on TEST_DATABASE_URL's server), so tests run in
//! parallel, and [`Cleanup::done`] removes it again.

use pi_payments_core::PaymentId;
use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_payments_core::ledger::{DbKind, Ledger};
use std::path::PathBuf;

/// What a fresh ledger leaves behind: removed by [`Cleanup::done`].
pub enum Cleanup {
    /// The temp directory of a SQLite file.
    Dir(PathBuf),
    /// A Postgres database of its own.
    Database(ScratchDatabase),
}

impl Cleanup {
    /// Close the ledger, then delete its file or drop its database.
    pub async fn done(self, ledger: Ledger) {
        ledger.close().await;
        match self {
            Cleanup::Dir(dir) => {
                let _ = std::fs::remove_dir_all(dir);
            }
            Cleanup::Database(db) => {
                let _ = db.drop_database().await;
            }
        }
    }
}

/// A new, empty temp directory named after `prefix`.
pub fn temp_dir(prefix: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "{prefix}-{}",
        pi_payments_core::ids::random_alnum(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A migrated SQLite ledger in a file of its own.
pub async fn sqlite() -> (Ledger, Cleanup) {
    let dir = temp_dir("pp-ledger-test");
    // The file does not exist yet: connect must create it.
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    let ledger = Ledger::connect(&url).await.unwrap();
    assert_eq!(ledger.kind(), DbKind::Sqlite);
    (ledger, Cleanup::Dir(dir))
}

/// TEST_DATABASE_URL, or the local default the scripts and CI start.
pub fn postgres_base_url() -> String {
    std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// A migrated ledger on a Postgres database of its own. Panics when Postgres cannot be
/// reached: these tests are meant to run (scripts/test and CI start Postgres).
pub async fn postgres() -> (Ledger, Cleanup) {
    let base = postgres_base_url();
    let db = ScratchDatabase::create(&base, "pp_test")
        .await
        .unwrap_or_else(|e| {
            panic!("Postgres at {base} is required for these tests (set TEST_DATABASE_URL): {e}")
        });
    let ledger = Ledger::connect(db.url()).await.unwrap();
    assert_eq!(ledger.kind(), DbKind::Postgres);
    (ledger, Cleanup::Database(db))
}

/// The outbox event types about one subject (a payment or payout id), oldest first.
pub async fn outbox_types(ledger: &Ledger, subject: &str) -> Vec<String> {
    ledger
        .events_after(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .filter(|e| e.subject_id == subject)
        .map(|e| e.event_type)
        .collect()
}

/// A valid payment id numbered `n`.
pub fn pid(n: u32) -> PaymentId {
    PaymentId::parse(&format!("pay{n:025}")).unwrap()
}

/// One `#[tokio::test]` per named scenario of the calling module (an `async fn(&Ledger)`),
/// on SQLite (`sqlite::name`) and on Postgres (`postgres::name`), each on a fresh ledger.
#[macro_export]
macro_rules! on_both_databases {
    ($($name:ident),* $(,)?) => {
        mod sqlite {
            $crate::scenario_tests!(sqlite: $($name),*);
        }
        mod postgres {
            $crate::scenario_tests!(postgres: $($name),*);
        }
    };
}

/// The tests of [`on_both_databases`] on one database (`sqlite` or `postgres`, a function of
/// this module).
#[macro_export]
macro_rules! scenario_tests {
    ($database:ident: $($name:ident),*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $name() {
                let (ledger, cleanup) = $crate::support::ledger::$database().await;
                super::$name(&ledger).await;
                cleanup.done(ledger).await;
            }
        )*
    };
}
