//! The payout ledger scenarios on Postgres (TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test), each in a fresh database created for it and
//! dropped afterwards.

mod payout_common;
mod pg_support;

use pg_support::Cleanup;
use pi_payments_core::ledger::Ledger;

async fn setup() -> Option<(Ledger, Cleanup)> {
    Some(pg_support::fresh_ledger().await)
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
