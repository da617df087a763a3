//! The ledger scenarios on Postgres (TEST_DATABASE_URL, default
//! postgres://postgres@127.0.0.1:5432/test), each in a fresh database created for it and
//! dropped afterwards.

mod ledger_common;
mod pg_support;

use pg_support::Cleanup;
use pi_payments_core::ledger::Ledger;

async fn setup() -> Option<(Ledger, Cleanup)> {
    Some(pg_support::fresh_ledger().await)
}

ledger_scenarios!(
    migrations_are_idempotent,
    callback_idempotency,
    incomplete_rearms_after_a_while,
    full_lifecycle,
    refusal_and_attention_paths,
    conflicting_txid_refused,
    concurrent_apply_has_one_winner,
    uniqueness_is_enforced_by_the_database,
    batch_recording,
    amounts_are_exact,
    concurrent_batches_enqueue_once,
    batched_first_approvals_match_single_recording,
    payments_are_numbered_and_their_rows_follow,
);
