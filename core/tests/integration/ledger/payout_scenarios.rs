//! The payout ledger scenarios, written once and run on SQLite and on Postgres (the
//! `on_both_databases!` list at the end). Each scenario gets a fresh, migrated, empty ledger.

use pi_payments_core::ledger::{
    Ledger, LedgerError, PayoutApplied, PayoutFilter, PayoutNote, PayoutPatch, PayoutRequest,
};
use pi_payments_core::payout::{BatchId, PayoutId};
use pi_payments_core::state::{PayoutState, PayoutTransition};
use pi_payments_core::{PiAmount, Uid};

use crate::support::ledger::{outbox_types, pid};

pub fn req(uid: &str, amount: &str, key: &str) -> PayoutRequest {
    PayoutRequest {
        uid: Uid::parse(uid).unwrap(),
        amount: PiAmount::parse(amount).unwrap(),
        memo: "Reward".into(),
        metadata: serde_json::json!({"campaign": "spring"}),
        idempotency_key: key.into(),
        batch_id: None,
    }
}

fn hash(n: u32) -> String {
    format!("{n:064x}")
}

fn signed_patch(n: u32) -> PayoutPatch {
    PayoutPatch {
        tx_source: Some("GSOURCE".into()),
        sequence: Some(100 + i64::from(n)),
        envelope_b64: Some(format!("ENVELOPE{n}")),
        tx_hash: Some(hash(n)),
        max_time: Some(1_900_000_000),
        ..PayoutPatch::default()
    }
}

fn created_patch(n: u32) -> PayoutPatch {
    PayoutPatch {
        pi_payment_id: Some(pid(n)),
        to_address: Some("GTO".into()),
        from_address: Some("GFROM".into()),
        ..PayoutPatch::default()
    }
}

/// Binds payout `id` to Pi payment `pid(n)` (the `PiCreated` step).
async fn pi_created(ledger: &Ledger, id: &PayoutId, n: u32) -> Result<PayoutApplied, LedgerError> {
    ledger
        .apply_payout(id, PayoutTransition::PiCreated, None, 0, created_patch(n))
        .await
}

async fn to_signed(ledger: &Ledger, id: &PayoutId, n: u32) {
    pi_created(ledger, id, n).await.unwrap();
    ledger
        .apply_payout(id, PayoutTransition::Signed, None, 0, signed_patch(n))
        .await
        .unwrap();
}

pub async fn request_is_idempotent_and_conflicts_are_distinct(ledger: &Ledger) {
    let (row, created) = ledger
        .request_payout(req("u-1", "1.5", "k-1"))
        .await
        .unwrap();
    assert!(created);
    assert!(row.id.as_str().starts_with("po_"));
    assert_eq!(row.state, PayoutState::Requested);
    assert_eq!(row.amount.stroops(), 15_000_000);
    // Same key, same body (metadata keys in another order): the same payout.
    let mut again = req("u-1", "1.5", "k-1");
    again.metadata = serde_json::json!({"campaign": "spring"});
    let (row2, created2) = ledger.request_payout(again).await.unwrap();
    assert!(!created2);
    assert_eq!(row2, row);
    // Same key, other body.
    let err = ledger
        .request_payout(req("u-1", "1.5000001", "k-1"))
        .await
        .unwrap_err();
    match err {
        LedgerError::IdempotencyConflict { key, existing } => {
            assert_eq!(key, "k-1");
            assert_eq!(existing, row.id);
        }
        other => panic!("expected IdempotencyConflict, got {other:?}"),
    }
    // Invalid requests are refused with a readable reason, nothing stored.
    let mut bad = req("u-2", "1", "k-2");
    bad.metadata = serde_json::json!({"payout_id": "mine"});
    assert!(matches!(
        ledger.request_payout(bad).await,
        Err(LedgerError::BadPayoutRequest(_))
    ));
    assert!(ledger.payout_by_key("k-2").await.unwrap().is_none());
    assert_eq!(
        ledger.payout_by_key("k-1").await.unwrap().unwrap().id,
        row.id
    );
    let events = ledger.payout_events(&row.id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].from_state, None);
    assert_eq!(events[0].cause, "requested");
}

pub async fn concurrent_requests_with_one_key_create_one_payout(ledger: &Ledger) {
    let mut tasks = Vec::new();
    for _ in 0..12 {
        let l = ledger.clone();
        tasks.push(tokio::spawn(async move {
            l.request_payout(req("u-1", "2", "same-key")).await.unwrap()
        }));
    }
    let mut ids = Vec::new();
    let mut created = 0;
    for t in tasks {
        let (row, c) = t.await.unwrap();
        created += i32::from(c);
        ids.push(row.id);
    }
    ids.dedup();
    assert_eq!(created, 1);
    assert_eq!(ids.len(), 1);
}

pub async fn bulk_requests_in_one_transaction(ledger: &Ledger) {
    let batch = ledger.create_batch(Some("rewards.csv")).await.unwrap();
    ledger
        .request_payout(req("u-0", "1", "row-0"))
        .await
        .unwrap();
    let mut reqs = Vec::new();
    for i in 0..520 {
        let mut r = req(&format!("u-{i}"), "1", &format!("row-{i}"));
        r.batch_id = Some(batch.id.clone());
        reqs.push(r);
    }
    // A repeated row, a conflicting row, an invalid row, a row of an unknown batch.
    let mut dup = req("u-5", "1", "row-5");
    dup.batch_id = Some(batch.id.clone());
    reqs.push(dup);
    let mut conflict = req("u-6", "9", "row-6");
    conflict.batch_id = Some(batch.id.clone());
    reqs.push(conflict);
    let mut invalid = req("u-7", "1", "");
    invalid.batch_id = Some(batch.id.clone());
    reqs.push(invalid);
    let mut unknown = req("u-8", "1", "row-x");
    unknown.batch_id = Some(BatchId::generate());
    reqs.push(unknown);

    let results = ledger.request_payouts_bulk(reqs).await.unwrap();
    assert_eq!(results.len(), 524);
    let created = results
        .iter()
        .filter(|r| matches!(r, Ok((_, true))))
        .count();
    let repeated = results
        .iter()
        .filter(|r| matches!(r, Ok((_, false))))
        .count();
    assert_eq!(created, 519, "row-0 existed before the batch");
    assert_eq!(repeated, 2);
    assert!(matches!(
        results[521],
        Err(LedgerError::IdempotencyConflict { .. })
    ));
    assert!(matches!(
        results[522],
        Err(LedgerError::BadPayoutRequest(_))
    ));
    assert!(matches!(results[523], Err(LedgerError::BatchNotFound(_))));
    let b = ledger.batch(&batch.id).await.unwrap().unwrap();
    assert_eq!((b.accepted, b.duplicates, b.rejected), (519, 2, 2));
    assert_eq!(b.source.as_deref(), Some("rewards.csv"));
    ledger.add_batch_rejected(&batch.id, 3).await.unwrap();
    assert_eq!(ledger.batch(&batch.id).await.unwrap().unwrap().rejected, 5);

    // Re-importing the same rows creates nothing new.
    let again: Vec<_> = (0..520)
        .map(|i| req(&format!("u-{i}"), "1", &format!("row-{i}")))
        .collect();
    let results = ledger.request_payouts_bulk(again).await.unwrap();
    assert!(results.iter().all(|r| matches!(r, Ok((_, false)))));

    // Listing by batch pages through exactly the batch's new rows.
    let filter = PayoutFilter {
        batch: Some(batch.id.clone()),
        state: None,
    };
    let mut seen = Vec::new();
    let mut after: Option<PayoutId> = None;
    loop {
        let page = ledger.payouts(&filter, 100, after.as_ref()).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().map(|r| r.id.clone());
        seen.extend(page.into_iter().map(|r| r.id));
    }
    assert_eq!(seen.len(), 519);
    let mut dedup = seen.clone();
    dedup.sort();
    dedup.dedup();
    assert_eq!(dedup.len(), 519);
    let counts = ledger.batch_state_counts(&batch.id).await.unwrap();
    assert_eq!(counts, vec![(PayoutState::Requested, 519)]);
}

pub async fn pipeline_transitions_and_outbox_once(ledger: &Ledger) {
    let (row, _) = ledger.request_payout(req("u-1", "3", "k")).await.unwrap();
    let id = row.id.clone();
    to_signed(ledger, &id, 1).await;
    let signed = ledger.payout(&id).await.unwrap().unwrap();
    assert_eq!(signed.state, PayoutState::Signed);
    assert_eq!(signed.envelope_b64.as_deref(), Some("ENVELOPE1"));
    assert_eq!(signed.pi_payment_id, Some(pid(1)));
    assert_eq!(
        ledger
            .payout_by_pi_payment(&pid(1))
            .await
            .unwrap()
            .unwrap()
            .id,
        id
    );
    // A second "Signed" (a racing worker) is a no-op: the first envelope stays.
    let again = ledger
        .apply_payout(&id, PayoutTransition::Signed, None, 0, signed_patch(2))
        .await
        .unwrap();
    assert!(matches!(again, PayoutApplied::AlreadyThere(_)));
    assert_eq!(
        ledger.payout(&id).await.unwrap().unwrap().tx_hash,
        Some(hash(1))
    );
    // The envelope is proven dead (stale hash first: nothing happens).
    let stale = ledger
        .apply_payout(
            &id,
            PayoutTransition::Expired {
                tx_hash: hash(9),
                reason: "x".into(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
        .unwrap();
    assert!(!stale.moved());
    let dead = ledger
        .apply_payout(
            &id,
            PayoutTransition::Expired {
                tx_hash: hash(1),
                reason: "tx_bad_seq".into(),
            },
            None,
            0,
            PayoutPatch {
                submits: 1,
                ..PayoutPatch::default()
            },
        )
        .await
        .unwrap();
    let row = dead.row();
    assert_eq!(row.state, PayoutState::Created);
    assert_eq!(
        (row.envelope_b64.as_ref(), row.tx_hash.as_ref()),
        (None, None)
    );
    assert_eq!(row.submit_attempts, 1);
    assert_eq!(row.pi_payment_id, Some(pid(1)), "the Pi payment stays");
    ledger
        .apply_payout(&id, PayoutTransition::Signed, None, 0, signed_patch(3))
        .await
        .unwrap();
    ledger
        .apply_payout(
            &id,
            PayoutTransition::Confirmed,
            None,
            0,
            PayoutPatch {
                tx_hash: Some(hash(3)),
                ledger: Some(77),
                submits: 1,
                ..PayoutPatch::default()
            },
        )
        .await
        .unwrap();
    // Confirmed again with another hash is refused.
    let err = ledger
        .apply_payout(
            &id,
            PayoutTransition::Confirmed,
            None,
            0,
            PayoutPatch {
                tx_hash: Some(hash(4)),
                ..PayoutPatch::default()
            },
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::PayoutConflict { .. }), "{err:?}");
    for _ in 0..3 {
        ledger
            .apply_payout(
                &id,
                PayoutTransition::PiCompleted,
                None,
                0,
                PayoutPatch::default(),
            )
            .await
            .unwrap();
    }
    let done = ledger.payout(&id).await.unwrap().unwrap();
    assert_eq!(done.state, PayoutState::Completed);
    assert_eq!(done.ledger, Some(77));
    assert_eq!(done.submit_attempts, 2);
    assert_eq!(
        outbox_types(ledger, id.as_str()).await,
        vec!["payout.completed"]
    );
    let event = ledger.events_after(0, 100).await.unwrap();
    let e = event.iter().find(|e| e.subject_id == id.as_str()).unwrap();
    assert_eq!(e.payload["payout"]["id"], id.as_str());
    assert_eq!(e.payload["payout"]["state"], "completed");
    assert!(e.payload["payout"].get("envelope_b64").is_none());
    let causes: Vec<_> = ledger
        .payout_events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.cause)
        .collect();
    assert_eq!(
        causes,
        vec![
            "requested",
            "pi_created",
            "signed",
            "envelope_dead",
            "signed",
            "confirmed",
            "pi_completed"
        ]
    );
    // A completed payout can neither fail nor be cancelled.
    assert!(
        ledger
            .apply_payout(
                &id,
                PayoutTransition::Failed { reason: "x".into() },
                None,
                0,
                PayoutPatch::default()
            )
            .await
            .is_err()
    );
    assert!(ledger.cancel_payout(&id, None).await.is_err());

    // The failure path emits payout.failed exactly once.
    let (f, _) = ledger.request_payout(req("u-2", "3", "k2")).await.unwrap();
    for _ in 0..2 {
        ledger
            .apply_payout(
                &f.id,
                PayoutTransition::Failed {
                    reason: "missing_scope: ask again".into(),
                },
                None,
                0,
                PayoutPatch::default(),
            )
            .await
            .unwrap();
    }
    let failed = ledger.payout(&f.id).await.unwrap().unwrap();
    assert_eq!(failed.state, PayoutState::Failed);
    assert_eq!(failed.reason.as_deref(), Some("missing_scope: ask again"));
    assert_eq!(
        outbox_types(ledger, f.id.as_str()).await,
        vec!["payout.failed"]
    );
}

pub async fn one_pi_payment_and_one_txid_per_payout(ledger: &Ledger) {
    let (a, _) = ledger.request_payout(req("u-1", "1", "a")).await.unwrap();
    let (b, _) = ledger.request_payout(req("u-2", "1", "b")).await.unwrap();
    to_signed(ledger, &a.id, 1).await;
    // b cannot take a's Pi payment.
    let err = pi_created(ledger, &b.id, 1).await.unwrap_err();
    assert!(matches!(err, LedgerError::PayoutConflict { .. }), "{err:?}");
    // a cannot be re-bound to another Pi payment.
    let err = pi_created(ledger, &a.id, 2).await.unwrap_err();
    assert!(matches!(err, LedgerError::PayoutConflict { .. }), "{err:?}");
    // b cannot store a's transaction hash.
    pi_created(ledger, &b.id, 2).await.unwrap();
    let err = ledger
        .apply_payout(&b.id, PayoutTransition::Signed, None, 0, signed_patch(1))
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::PayoutConflict { .. }), "{err:?}");
    assert_eq!(
        ledger.payout(&b.id).await.unwrap().unwrap().state,
        PayoutState::Created
    );
}

pub async fn cancel_only_before_an_envelope_exists(ledger: &Ledger) {
    let (a, _) = ledger.request_payout(req("u-1", "1", "a")).await.unwrap();
    let applied = ledger
        .cancel_payout(&a.id, Some("campaign withdrawn"))
        .await
        .unwrap();
    assert_eq!(applied.row().state, PayoutState::Cancelled);
    assert_eq!(applied.row().reason.as_deref(), Some("campaign withdrawn"));
    assert!(ledger.cancel_payout(&a.id, None).await.unwrap().row().state == PayoutState::Cancelled);

    let (b, _) = ledger.request_payout(req("u-2", "1", "b")).await.unwrap();
    pi_created(ledger, &b.id, 2).await.unwrap();
    assert_eq!(
        ledger.cancel_payout(&b.id, None).await.unwrap().row().state,
        PayoutState::Cancelled
    );

    let (c, _) = ledger.request_payout(req("u-3", "1", "c")).await.unwrap();
    to_signed(ledger, &c.id, 3).await;
    let err = ledger.cancel_payout(&c.id, None).await.unwrap_err();
    assert!(
        matches!(err, LedgerError::InvalidPayoutTransition(_)),
        "{err:?}"
    );
    assert!(err.to_string().contains("signed"), "{err}");
    assert!(
        ledger
            .payout(&PayoutId::generate())
            .await
            .unwrap()
            .is_none()
    );
    assert!(matches!(
        ledger.cancel_payout(&PayoutId::generate(), None).await,
        Err(LedgerError::PayoutNotFound(_))
    ));
}

pub async fn stuck_listing_notes_and_retry(ledger: &Ledger) {
    let (a, _) = ledger.request_payout(req("u-1", "1", "a")).await.unwrap();
    let (b, _) = ledger.request_payout(req("u-2", "1", "b")).await.unwrap();
    let (c, _) = ledger.request_payout(req("u-3", "1", "c")).await.unwrap();
    ledger.cancel_payout(&c.id, None).await.unwrap();
    // b is postponed by a note.
    let noted = ledger
        .note_payout(
            &b.id,
            PayoutNote {
                cause: "pi_create_failed",
                detail: Some("HTTP 500"),
                attempts: 1,
                next_check_at: Some(pi_payments_core::ledger::now_ms() + 60_000),
                reason: Some("Pi had a server error"),
                submitted: false,
            },
        )
        .await
        .unwrap();
    assert_eq!(noted.attempts, 1);
    assert_eq!(noted.reason.as_deref(), Some("Pi had a server error"));
    let stuck: Vec<_> = ledger
        .payouts_stuck(0, 100)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.id)
        .collect();
    assert_eq!(stuck, vec![a.id.clone()]);
    assert!(
        ledger
            .payouts_stuck(3_600_000, 100)
            .await
            .unwrap()
            .is_empty()
    );
    let requested = ledger
        .payouts(
            &PayoutFilter {
                batch: None,
                state: Some(PayoutState::Requested),
            },
            10,
            None,
        )
        .await
        .unwrap();
    assert_eq!(requested.len(), 2);

    // needs_attention goes back to the step its data implies.
    to_signed(ledger, &a.id, 1).await;
    ledger
        .apply_payout(
            &a.id,
            PayoutTransition::GaveUp {
                reason: "tx_bad_auth".into(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
        .unwrap();
    let back = ledger.retry_payout(&a.id, Some("operator")).await.unwrap();
    assert_eq!(back.row().state, PayoutState::Signed);
    ledger
        .apply_payout(
            &b.id,
            PayoutTransition::GaveUp {
                reason: "too many".into(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
        .unwrap();
    assert_eq!(
        ledger.retry_payout(&b.id, None).await.unwrap().row().state,
        PayoutState::Requested
    );
}

/// Payouts waiting behind another for Pi's open-payment slot: a settle hands the slot to the
/// oldest waiter, the rest now wait behind it; a payout no longer `requested` is skipped.
pub async fn waiters_are_woken_one_at_a_time_oldest_first(ledger: &Ledger) {
    let mut ids = Vec::new();
    for i in 0..4 {
        let (row, _) = ledger
            .request_payout(req(&format!("w{i}"), "1", &format!("wait-{i}")))
            .await
            .unwrap();
        ids.push(row.id);
        // "Oldest" is by creation time in milliseconds: keep the four apart.
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    let ahead = &ids[0];
    for w in &ids[1..] {
        ledger.block_payout_behind(w, ahead).await.unwrap();
    }
    assert_eq!(
        ledger.next_behind(ahead).await.unwrap(),
        Some(ids[1].clone())
    );
    assert_eq!(ledger.next_behind(ahead).await.unwrap(), None, "handed on");
    assert_eq!(
        ledger.next_behind(&ids[1]).await.unwrap(),
        Some(ids[2].clone())
    );
    ledger.cancel_payout(&ids[3], None).await.unwrap();
    assert_eq!(
        ledger.next_behind(&ids[2]).await.unwrap(),
        None,
        "cancelled"
    );
}

crate::on_both_databases!(
    waiters_are_woken_one_at_a_time_oldest_first,
    request_is_idempotent_and_conflicts_are_distinct,
    concurrent_requests_with_one_key_create_one_payout,
    bulk_requests_in_one_transaction,
    pipeline_transitions_and_outbox_once,
    one_pi_payment_and_one_txid_per_payout,
    cancel_only_before_an_envelope_exists,
    stuck_listing_notes_and_retry,
);
