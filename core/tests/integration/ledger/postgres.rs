//! What only Postgres does: its two-part failed-batch recovery (TEST_DATABASE_URL, a fresh
//! database per test).

use super::u2a_scenarios;
use crate::support::ledger::{pid, postgres};

/// A batch whose one-statement first approvals fail (a trigger refuses one payment's history
/// line) commits nothing and is recorded again one by one; a batch whose second part (repeats
/// of known payments) fails keeps what its first part committed, answered as created with
/// their jobs, and records the rest one by one.
#[tokio::test]
async fn a_failed_batch_keeps_what_committed_and_retries_the_rest_alone() {
    use pi_payments_core::jobs::Job;
    use pi_payments_core::ledger::Callback;
    let (ledger, cleanup) = postgres().await;
    let approve = |n: u32| Callback::Approve {
        payment_id: pid(n),
        credential: pi_payments_core::jobs::ApproveCredential::Missing,
    };
    // Known before the triggers exist.
    ledger
        .record_approve_callback(&pid(30), None)
        .await
        .unwrap();
    let seq30: i64 = sqlx::query_scalar("SELECT seq FROM payments WHERE id = $1")
        .bind(pid(30).as_str())
        .fetch_one(ledger.pool())
        .await
        .unwrap();
    for sql in [
        "CREATE FUNCTION refuse_for_test() RETURNS trigger LANGUAGE plpgsql AS \
         $$ BEGIN RAISE EXCEPTION 'refused by the test'; END $$"
            .to_string(),
        format!(
            "CREATE TRIGGER refuse_history BEFORE INSERT ON payment_events FOR EACH ROW \
             WHEN (NEW.payment_id = '{}') EXECUTE FUNCTION refuse_for_test()",
            pid(7)
        ),
        format!(
            "CREATE TRIGGER refuse_arrival BEFORE INSERT OR UPDATE ON payment_callbacks \
             FOR EACH ROW WHEN (NEW.payment_seq = {seq30}) EXECUTE FUNCTION refuse_for_test()"
        ),
    ] {
        sqlx::query(sqlx::AssertSqlSafe(sql))
            .execute(ledger.pool())
            .await
            .unwrap();
    }
    let history_len = |n: u32| {
        let ledger = ledger.clone();
        async move { ledger.payment_events(&pid(n)).await.unwrap().len() }
    };

    // 1. The first part fails: nothing of it stays, then one by one.
    let results = ledger
        .record_callbacks((0..10).map(approve).collect())
        .await;
    u2a_scenarios::assert_refused_alone_others_once(&ledger, &results, 7).await;

    // 2. New payments and a repeat of a known one whose arrival cannot be counted.
    let mut batch: Vec<Callback> = (20..25).map(approve).collect();
    batch.push(approve(30));
    let results = ledger.record_callbacks(batch).await;
    for n in 20..25u32 {
        let recorded = results[(n - 20) as usize].as_ref().unwrap();
        assert!(
            recorded.created,
            "payment {n} was created by the first part"
        );
        assert_eq!(
            recorded.job,
            Some(Job::approve_with(
                pid(n),
                pi_payments_core::jobs::ApproveCredential::Missing
            ))
        );
        assert_eq!(history_len(n).await, 1, "payment {n} recorded once");
    }
    assert!(results[5].is_err(), "the refused repeat fails alone");
    cleanup.done(ledger).await;
}
