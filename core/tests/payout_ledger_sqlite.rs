//! The payout ledger scenarios on SQLite, each in its own fresh database file.

mod payout_common;

use pi_payments_core::ledger::{DbKind, Ledger};
use std::path::PathBuf;

struct Cleanup {
    dir: PathBuf,
}

impl Cleanup {
    async fn done(self, ledger: Ledger) {
        ledger.close().await;
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

async fn setup() -> Option<(Ledger, Cleanup)> {
    let dir = std::env::temp_dir().join(format!(
        "pp-payout-test-{}",
        pi_payments_core::ids::random_alnum(12)
    ));
    std::fs::create_dir_all(&dir).unwrap();
    // The file does not exist yet: connect must create it.
    let url = format!("sqlite://{}", dir.join("ledger.db").display());
    let ledger = Ledger::connect(&url).await.unwrap();
    assert_eq!(ledger.kind(), DbKind::Sqlite);
    Some((ledger, Cleanup { dir }))
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
