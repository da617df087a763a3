//! The U2A ledger scenarios, written once and run on SQLite and on Postgres (the
//! `on_both_databases!` list at the end). Each scenario gets a fresh, migrated, empty ledger.

use pi_payments_core::jobs::{ApproveCredential, Job};
use pi_payments_core::ledger::{Applied, Callback, Ledger, LedgerError, OrderState, PaymentPatch};
use pi_payments_core::products::Catalogue;
use pi_payments_core::secret::AccessToken;
use pi_payments_core::state::{PaymentState, RetryStep, Transition};
use pi_payments_core::{OrderId, PaymentId, PiAmount, Txid, Uid};

pub use super::recovery::repeated_callbacks_of_an_idle_row_reenqueue_once;
use crate::support::ledger::outbox_types;
pub use crate::support::ledger::pid;

/// After a batch of first approvals for `pid(0..)` whose batch write failed on `refused`
/// (a trigger): that payment fails alone and is not stored, every other one is stored once,
/// answered as created with its job, with one history line.
pub async fn assert_refused_alone_others_once(
    ledger: &Ledger,
    results: &[Result<pi_payments_core::ledger::Recorded, LedgerError>],
    refused: usize,
) {
    for (n, result) in results.iter().enumerate() {
        if n == refused {
            assert!(result.is_err(), "payment {n} must fail");
            assert!(ledger.payment(&pid(n as u32)).await.unwrap().is_none());
        } else {
            let recorded = result.as_ref().unwrap();
            assert!(recorded.created && recorded.job.is_some(), "payment {n}");
            assert_eq!(
                ledger.payment_events(&pid(n as u32)).await.unwrap().len(),
                1,
                "payment {n}"
            );
        }
    }
}

pub fn txid(n: u32) -> Txid {
    Txid::parse(&format!("{n:064x}")).unwrap()
}

fn uid() -> Uid {
    Uid::parse("pioneer-1").unwrap()
}

/// `transition` for payment `id` at `attempt`, with no detail and no field changes.
async fn move_plainly(
    ledger: &Ledger,
    id: &PaymentId,
    transition: Transition,
    attempt: i64,
) -> Result<Applied, LedgerError> {
    ledger
        .apply(id, transition, None, attempt, PaymentPatch::default())
        .await
}

/// Pi approved payment `id` (first attempt) for the order `order_id`.
async fn approve_for_order(
    ledger: &Ledger,
    id: &PaymentId,
    order_id: &OrderId,
) -> Result<Applied, LedgerError> {
    let patch = PaymentPatch {
        order_id: Some(order_id.clone()),
        ..Default::default()
    };
    ledger
        .apply(id, Transition::PiApproved, None, 1, patch)
        .await
}

pub async fn migrations_are_idempotent(ledger: &Ledger) {
    ledger.migrate().await.unwrap();
    ledger.ping().await.unwrap();
    assert!(ledger.payment(&pid(1)).await.unwrap().is_none());
}

pub async fn callback_idempotency(ledger: &Ledger) {
    let id = pid(1);
    let mut jobs = Vec::new();
    for _ in 0..3 {
        let r = ledger
            .record_approve_callback(&id, AccessToken::new("tok-secret").as_ref())
            .await
            .unwrap();
        assert_eq!(r.payment.state, PaymentState::Received);
        jobs.extend(r.job);
    }
    // The token rides in the job; the ledger never stores it.
    let token = AccessToken::new("tok-secret").unwrap();
    assert_eq!(
        jobs,
        vec![Job::approve_with(
            id.clone(),
            ApproveCredential::AccessToken(token)
        )]
    );
    assert_eq!(ledger.access_token(&id).await.unwrap(), None);
    // One creation line in the history, however many repeats.
    let events = ledger.payment_events(&id).await.unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].from_state, None);
    assert_eq!(events[0].cause, "approve_callback");

    let mut jobs = Vec::new();
    for _ in 0..3 {
        let r = ledger
            .record_complete_callback(&id, &txid(1))
            .await
            .unwrap();
        // The txid is a claim: it rides in the job, the job binds Pi's.
        assert_eq!(r.payment.state, PaymentState::Received);
        assert_eq!(r.payment.txid, None);
        jobs.extend(r.job);
    }
    assert_eq!(jobs, vec![Job::complete_hinted(id.clone(), txid(1))]);

    // cancel / error / incomplete each enqueue once as well.
    let other = pid(2);
    let mut jobs = Vec::new();
    for _ in 0..3 {
        jobs.extend(ledger.record_cancel_callback(&other).await.unwrap().job);
        jobs.extend(
            ledger
                .record_error_callback(&other, "user closed")
                .await
                .unwrap()
                .job,
        );
        jobs.extend(
            ledger
                .record_incomplete_callback(&other, None)
                .await
                .unwrap()
                .job,
        );
    }
    assert_eq!(
        jobs,
        vec![
            Job::cancel(other.clone()),
            Job::record_error(other.clone()),
            Job::incomplete_with(other.clone(), ApproveCredential::Missing)
        ]
    );
    // Approve arriving after the row was created by another callback still enqueues once.
    let r = ledger.record_approve_callback(&other, None).await.unwrap();
    assert_eq!(
        r.job,
        Some(Job::approve_with(other.clone(), ApproveCredential::Missing))
    );
    let history = ledger.payment_events(&other).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.cause == "error_callback" && e.detail.as_deref() == Some("user closed"))
    );
}

pub async fn incomplete_rearms_after_a_while(ledger: &Ledger) {
    let id = pid(3);
    let first = ledger.record_incomplete_callback(&id, None).await.unwrap();
    assert_eq!(
        first.job,
        Some(Job::incomplete_with(id.clone(), ApproveCredential::Missing))
    );
    assert_eq!(
        ledger
            .record_incomplete_callback(&id, None)
            .await
            .unwrap()
            .job,
        None
    );
    // Pretend the last arming was two minutes ago (the next login).
    sqlx::query(
        "UPDATE payment_callbacks SET armed_at = armed_at - 120000 \
         WHERE payment_seq = (SELECT seq FROM payments WHERE id = $1)",
    )
    .bind(id.as_str())
    .execute(ledger.pool())
    .await
    .unwrap();
    assert_eq!(
        ledger
            .record_incomplete_callback(&id, None)
            .await
            .unwrap()
            .job,
        Some(Job::incomplete_with(id.clone(), ApproveCredential::Missing))
    );
    assert_eq!(
        ledger
            .record_incomplete_callback(&id, None)
            .await
            .unwrap()
            .job,
        None
    );
    // Approve callbacks never re-arm.
    ledger.record_approve_callback(&pid(4), None).await.unwrap();
    sqlx::query("UPDATE payment_callbacks SET armed_at = armed_at - 120000")
        .execute(ledger.pool())
        .await
        .unwrap();
    assert_eq!(
        ledger
            .record_approve_callback(&pid(4), None)
            .await
            .unwrap()
            .job,
        None
    );
}

pub async fn full_lifecycle(ledger: &Ledger) {
    let catalogue = Catalogue::demo();
    let coffee = catalogue.get("coffee").unwrap();
    let order = ledger.create_order(coffee, 2).await.unwrap();
    assert_eq!(order.amount.to_string(), "3");
    assert_eq!(order.metadata["orderId"], order.id.as_str());
    assert_eq!(ledger.order(&order.id).await.unwrap().unwrap(), order);

    let id = pid(10);
    ledger
        .record_approve_callback(&id, AccessToken::new("tok").as_ref())
        .await
        .unwrap();
    let patch = PaymentPatch {
        uid: Some(uid()),
        amount: Some(order.amount),
        memo: Some(order.memo.clone()),
        metadata: Some(order.metadata.clone()),
        order_id: Some(order.id.clone()),
        next_check_at: None,
    };
    let applied = ledger
        .apply(
            &id,
            Transition::PiApproved,
            Some("approved at Pi"),
            1,
            patch.clone(),
        )
        .await
        .unwrap();
    let Applied::Moved { from, row } = &applied else {
        panic!("{applied:?}")
    };
    assert_eq!(*from, PaymentState::Received);
    assert_eq!(row.state, PaymentState::Approved);
    assert_eq!(row.uid.as_ref(), Some(&uid()));
    assert_eq!(row.amount, Some(order.amount));
    assert_eq!(row.order_id.as_ref(), Some(&order.id));
    assert_eq!(row.metadata.as_ref(), Some(&order.metadata));
    assert_eq!(ledger.access_token(&id).await.unwrap(), None);
    // The order is bound to the payment, still open.
    let bound = ledger.order(&order.id).await.unwrap().unwrap();
    assert_eq!(bound.state, OrderState::Open);
    assert_eq!(bound.payment_id.as_ref(), Some(&id));

    // A second approve (job ran twice) is a no-op.
    let again = ledger
        .apply(&id, Transition::PiApproved, None, 2, patch)
        .await
        .unwrap();
    assert!(matches!(again, Applied::AlreadyThere(_)));

    // The complete callback's txid is a claim: nothing is bound until the complete job reads
    // Pi's linked txid and binds it.
    let r = ledger
        .record_complete_callback(&id, &txid(10))
        .await
        .unwrap();
    assert_eq!(r.payment.state, PaymentState::Approved);
    assert_eq!(r.job, Some(Job::complete_hinted(id.clone(), txid(10))));
    let bound = move_plainly(
        ledger,
        &id,
        Transition::CompleteCallback { txid: txid(10) },
        1,
    )
    .await
    .unwrap();
    assert_eq!(bound.row().state, PaymentState::Completing);
    let done = ledger
        .apply(
            &id,
            Transition::PiCompleted,
            Some("2xx from /complete"),
            1,
            PaymentPatch::default(),
        )
        .await
        .unwrap();
    assert!(done.moved());
    assert_eq!(done.row().state, PaymentState::Completed);
    assert_eq!(done.row().txid.as_ref(), Some(&txid(10)));
    let paid = ledger.order(&order.id).await.unwrap().unwrap();
    assert_eq!(paid.state, OrderState::Paid);
    assert_eq!(paid.payment_id.as_ref(), Some(&id));
    assert!(paid.paid_at.is_some());

    // Repeats change nothing and emit nothing.
    for _ in 0..3 {
        let r = move_plainly(ledger, &id, Transition::PiCompleted, 2)
            .await
            .unwrap();
        assert!(!r.moved());
        ledger
            .record_complete_callback(&id, &txid(10))
            .await
            .unwrap();
    }
    assert_eq!(
        outbox_types(ledger, id.as_str()).await,
        vec!["payment.approved", "payment.completed"]
    );
    let causes: Vec<_> = ledger
        .payment_events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| (e.from_state, e.to_state, e.cause))
        .collect();
    assert_eq!(
        causes,
        vec![
            (None, PaymentState::Received, "approve_callback".to_string()),
            (
                Some(PaymentState::Received),
                PaymentState::Approved,
                "pi_approved".to_string()
            ),
            // The callback's claim, then the job binding Pi's txid.
            (
                Some(PaymentState::Approved),
                PaymentState::Approved,
                "complete_callback".to_string()
            ),
            (
                Some(PaymentState::Approved),
                PaymentState::Completing,
                "complete_callback".to_string()
            ),
            (
                Some(PaymentState::Completing),
                PaymentState::Completed,
                "pi_completed".to_string()
            ),
        ]
    );

    // The completed event carries the payment and the paid order.
    let events = ledger.events_after(0, 100).await.unwrap();
    let completed = events
        .iter()
        .find(|e| e.event_type == "payment.completed")
        .unwrap();
    assert_eq!(completed.payload["payment"]["state"], "completed");
    assert_eq!(
        completed.payload["payment"]["amount"],
        serde_json::json!("3")
    );
    assert_eq!(completed.payload["order"]["state"], "paid");
    let approved_id = events
        .iter()
        .find(|e| e.event_type == "payment.approved")
        .unwrap()
        .id;
    assert!(approved_id < completed.id);
    assert_eq!(
        ledger.events_after(approved_id, 100).await.unwrap().len(),
        1
    );

    // Delivery bookkeeping.
    let now = pi_payments_core::ledger::now_ms();
    let due = ledger.due_deliveries(now, 10).await.unwrap();
    assert_eq!(due.len(), 2);
    ledger
        .mark_delivery_failed(due[0].id, "HTTP 500", now + 60_000)
        .await
        .unwrap();
    ledger.mark_delivered(due[1].id).await.unwrap();
    assert!(ledger.due_deliveries(now, 10).await.unwrap().is_empty());
    let later = ledger.due_deliveries(now + 60_000, 10).await.unwrap();
    assert_eq!(later.len(), 1);
    assert_eq!(later[0].delivery_attempts, 1);
    assert_eq!(later[0].last_error.as_deref(), Some("HTTP 500"));
    let claimed = ledger
        .claim_deliveries(now + 60_000, 30_000, 10)
        .await
        .unwrap();
    assert_eq!(claimed.len(), 1);
    assert!(
        ledger
            .claim_deliveries(now + 60_000, 30_000, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(ledger.event(claimed[0].id).await.unwrap().is_some());
}

pub async fn refusal_and_attention_paths(ledger: &Ledger) {
    // Refused → cancelled, reason stored, order released for another try.
    let order = ledger
        .create_order(Catalogue::demo().get("sticker").unwrap(), 1)
        .await
        .unwrap();
    let a = pid(20);
    ledger
        .record_approve_callback(&a, AccessToken::new("tok").as_ref())
        .await
        .unwrap();
    let patch = PaymentPatch {
        order_id: Some(order.id.clone()),
        ..Default::default()
    };
    ledger
        .apply(&a, Transition::PiApproved, None, 1, patch)
        .await
        .unwrap();
    // Another payment cannot take the bound order.
    let b = pid(21);
    ledger.record_approve_callback(&b, None).await.unwrap();
    let err = approve_for_order(ledger, &b, &order.id).await.unwrap_err();
    assert!(matches!(err, LedgerError::OrderUnavailable { .. }), "{err}");
    assert_eq!(
        ledger.payment(&b).await.unwrap().unwrap().state,
        PaymentState::Received
    );

    let r = ledger
        .apply(
            &a,
            Transition::Refused {
                reason: "amount mismatch".into(),
            },
            None,
            1,
            PaymentPatch::default(),
        )
        .await
        .unwrap();
    assert_eq!(r.row().state, PaymentState::Cancelled);
    assert_eq!(r.row().reason.as_deref(), Some("amount mismatch"));
    assert_eq!(
        ledger.order(&order.id).await.unwrap().unwrap().payment_id,
        None
    );
    // Now b may bind it.
    approve_for_order(ledger, &b, &order.id).await.unwrap();

    // Forbidden moves are errors and change nothing.
    let err = move_plainly(ledger, &a, Transition::PiApproved, 1)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::InvalidTransition(_)), "{err}");
    let err = ledger
        .apply(
            &pid(99),
            Transition::PiApproved,
            None,
            1,
            PaymentPatch::default(),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::PaymentNotFound(_)), "{err}");

    // GaveUp → needs_attention (event once), operator retry → received, gave up again: no
    // second event.
    let c = pid(22);
    ledger
        .record_approve_callback(&c, AccessToken::new("tok").as_ref())
        .await
        .unwrap();
    assert_eq!(ledger.access_token(&c).await.unwrap(), None, "never stored");
    // A token an older version stored stays through needs_attention (for an operator's retry).
    sqlx::query("UPDATE payments SET access_token = 'tok' WHERE id = $1")
        .bind(c.as_str())
        .execute(ledger.pool())
        .await
        .unwrap();
    ledger
        .note(&c, "attempt_failed", Some("HTTP 503"), 1, None)
        .await
        .unwrap();
    let gave_up = Transition::GaveUp {
        reason: "Pi unreachable after 5 attempts".into(),
    };
    move_plainly(ledger, &c, gave_up.clone(), 5).await.unwrap();
    assert_eq!(
        ledger
            .access_token(&c)
            .await
            .unwrap()
            .as_ref()
            .map(AccessToken::expose),
        Some("tok")
    );
    assert_eq!(
        ledger
            .payments_in_state(PaymentState::NeedsAttention, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    let err = move_plainly(ledger, &c, Transition::Retry(RetryStep::Complete), 0)
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::MissingTxid(_)), "{err}");
    ledger
        .apply(
            &c,
            Transition::Retry(RetryStep::Approve),
            Some("operator"),
            0,
            PaymentPatch::default(),
        )
        .await
        .unwrap();
    assert_eq!(ledger.payment(&c).await.unwrap().unwrap().reason, None);
    move_plainly(ledger, &c, gave_up, 5).await.unwrap();
    assert_eq!(
        outbox_types(ledger, c.as_str()).await,
        vec!["payment.needs_attention"]
    );
    let history = ledger.payment_events(&c).await.unwrap();
    assert!(
        history
            .iter()
            .any(|e| e.cause == "attempt_failed" && e.attempt == 1)
    );
    assert_eq!(history.iter().filter(|e| e.cause == "gave_up").count(), 2);
    // An operator's retry keeps the legacy token for the approve job; any other move clears it.
    let stored = |ledger: &Ledger| {
        let ledger = ledger.clone();
        let c = c.clone();
        async move {
            let token = ledger.access_token(&c).await.unwrap();
            token.map(|t| t.expose().to_string())
        }
    };
    assert_eq!(stored(ledger).await.as_deref(), Some("tok"));
    ledger
        .apply(
            &c,
            Transition::Retry(RetryStep::Approve),
            Some("operator"),
            0,
            PaymentPatch::default(),
        )
        .await
        .unwrap();
    assert_eq!(stored(ledger).await.as_deref(), Some("tok"));
    move_plainly(ledger, &c, Transition::PiApproved, 1)
        .await
        .unwrap();
    assert_eq!(stored(ledger).await, None);

    // A complete callback for a cancelled payment changes nothing but is kept on record.
    let r = ledger
        .record_complete_callback(&a, &txid(20))
        .await
        .unwrap();
    assert_eq!(r.payment.state, PaymentState::Cancelled);
    assert_eq!(r.job, None);
    assert!(
        ledger
            .payment_events(&a)
            .await
            .unwrap()
            .iter()
            .any(|e| e.cause == "complete_callback_ignored")
    );
    assert_eq!(ledger.payment(&a).await.unwrap().unwrap().txid, None);
}

pub async fn conflicting_txid_refused(ledger: &Ledger) {
    let id = pid(30);
    ledger.record_approve_callback(&id, None).await.unwrap();
    ledger
        .record_complete_callback(&id, &txid(30))
        .await
        .unwrap();
    // The complete job bound Pi's txid.
    move_plainly(
        ledger,
        &id,
        Transition::CompleteCallback { txid: txid(30) },
        1,
    )
    .await
    .unwrap();
    // Another claimed txid binds nothing: noted, no job.
    let r = ledger
        .record_complete_callback(&id, &txid(31))
        .await
        .unwrap();
    assert_eq!(r.job, None);
    let r = ledger
        .record_incomplete_callback(&id, Some(&txid(31)))
        .await
        .unwrap();
    assert_eq!(r.job, None);
    let err = move_plainly(
        ledger,
        &id,
        Transition::CompleteCallback { txid: txid(31) },
        0,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LedgerError::TxidConflict { .. }), "{err}");
    assert_eq!(
        ledger.payment(&id).await.unwrap().unwrap().txid,
        Some(txid(30))
    );

    // Another payment claiming that txid binds nothing: its job asks Pi, which never links
    // one txid to two payments; binding it is what the database refuses.
    let r = ledger
        .record_complete_callback(&pid(31), &txid(30))
        .await
        .unwrap();
    assert_eq!(r.payment.txid, None);
    assert_eq!(r.job, Some(Job::complete_hinted(pid(31), txid(30))));
    let err = move_plainly(
        ledger,
        &pid(31),
        Transition::CompleteCallback { txid: txid(30) },
        1,
    )
    .await
    .unwrap_err();
    assert!(matches!(err, LedgerError::TxidTaken { .. }), "{err}");

    // Complete for a payment we never saw: starts as received with its claim, one job.
    let r = ledger
        .record_complete_callback(&pid(32), &txid(32))
        .await
        .unwrap();
    assert!(r.created);
    assert_eq!(r.payment.state, PaymentState::Received);
    assert_eq!(r.job, Some(Job::complete_hinted(pid(32), txid(32))));
    assert_eq!(ledger.payment_by_txid(&txid(32)).await.unwrap(), None);
}

pub async fn concurrent_apply_has_one_winner(ledger: &Ledger) {
    for round in 0..5u32 {
        let id = pid(40 + round);
        ledger
            .record_approve_callback(&id, AccessToken::new("tok").as_ref())
            .await
            .unwrap();
        let mut tasks = Vec::new();
        for worker in 0..8i64 {
            let ledger = ledger.clone();
            let id = id.clone();
            tasks.push(tokio::spawn(async move {
                ledger
                    .apply(
                        &id,
                        Transition::PiApproved,
                        Some("worker"),
                        worker,
                        PaymentPatch::default(),
                    )
                    .await
            }));
        }
        let mut moved = 0;
        for t in tasks {
            let applied = t.await.unwrap().unwrap();
            assert_eq!(applied.row().state, PaymentState::Approved);
            moved += usize::from(applied.moved());
        }
        assert_eq!(moved, 1, "round {round}");
        assert_eq!(
            outbox_types(ledger, id.as_str()).await,
            vec!["payment.approved"]
        );
        let approvals = ledger
            .payment_events(&id)
            .await
            .unwrap()
            .into_iter()
            .filter(|e| e.cause == "pi_approved")
            .count();
        assert_eq!(approvals, 1);
    }

    // Concurrent first callbacks for the same payment: one job.
    let id = pid(50);
    let mut tasks = Vec::new();
    for _ in 0..8 {
        let ledger = ledger.clone();
        let id = id.clone();
        tasks.push(tokio::spawn(async move {
            ledger.record_approve_callback(&id, None).await
        }));
    }
    let mut jobs = 0;
    for t in tasks {
        jobs += usize::from(t.await.unwrap().unwrap().must_enqueue());
    }
    assert_eq!(jobs, 1);
}

pub async fn uniqueness_is_enforced_by_the_database(ledger: &Ledger) {
    let id = pid(60);
    ledger
        .record_complete_callback(&id, &txid(60))
        .await
        .unwrap();
    move_plainly(
        ledger,
        &id,
        Transition::CompleteCallback { txid: txid(60) },
        1,
    )
    .await
    .unwrap();
    let pool = ledger.pool();
    let dup_payment = sqlx::query(
        "INSERT INTO payments (id, direction, state, attempts, created_at, updated_at) \
         VALUES ($1, 'user_to_app', 'received', 0, 0, 0)",
    )
    .bind(id.as_str())
    .execute(pool)
    .await;
    assert!(dup_payment.is_err());
    let dup_txid = sqlx::query(
        "INSERT INTO payments (id, direction, state, txid, attempts, created_at, updated_at) \
         VALUES ($1, 'user_to_app', 'completing', $2, 0, 0, 0)",
    )
    .bind(pid(61).as_str())
    .bind(txid(60).as_str())
    .execute(pool)
    .await;
    assert!(dup_txid.is_err());

    let product = Catalogue::demo().get("coffee").unwrap().clone();
    let o1 = ledger.create_order(&product, 1).await.unwrap();
    let o2 = ledger.create_order(&product, 1).await.unwrap();
    assert_ne!(o1.id, o2.id);
    let bind = |order: String| {
        sqlx::query("UPDATE orders SET payment_id = $1 WHERE id = $2")
            .bind(id.as_str())
            .bind(order)
            .execute(pool)
    };
    bind(o1.id.to_string()).await.unwrap();
    assert!(
        bind(o2.id.to_string()).await.is_err(),
        "one payment pays one order"
    );

    let insert_event = || {
        sqlx::query(
            "INSERT INTO events (event_type, subject_id, payload, created_at) \
             VALUES ('payment.completed', 'x', '{}', 0)",
        )
        .execute(pool)
    };
    insert_event().await.unwrap();
    assert!(
        insert_event().await.is_err(),
        "one event per (type, subject)"
    );
}

pub async fn batch_recording(ledger: &Ledger) {
    // Pre-existing payment holding txid 70 (bound by its complete job), so that callbacks of
    // the batch claim it for others.
    ledger
        .record_complete_callback(&pid(70), &txid(70))
        .await
        .unwrap();
    move_plainly(
        ledger,
        &pid(70),
        Transition::CompleteCallback { txid: txid(70) },
        1,
    )
    .await
    .unwrap();
    let mut batch = Vec::new();
    for n in 0..200u32 {
        batch.push(Callback::Approve {
            payment_id: pid(1000 + n),
            credential: ApproveCredential::from_token(AccessToken::new(&format!("t{n}"))),
        });
    }
    // Repeats within the same batch.
    for n in 0..50u32 {
        batch.push(Callback::Approve {
            payment_id: pid(1000 + n),
            credential: ApproveCredential::Missing,
        });
    }
    batch.push(Callback::Complete {
        payment_id: pid(71),
        txid: txid(70),
    }); // claims another payment's txid: recorded, its job reads Pi
    batch.push(Callback::Complete {
        payment_id: pid(1000),
        txid: txid(1000),
    });
    batch.push(Callback::Complete {
        payment_id: pid(70),
        txid: txid(72),
    }); // a different claim for a bound payment: noted, no job
    let results = ledger.record_callbacks(batch).await;
    assert_eq!(results.len(), 253);
    let jobs: Vec<Job> = results
        .iter()
        .filter_map(|r| r.as_ref().ok().and_then(|r| r.job.clone()))
        .collect();
    assert_eq!(jobs.len(), 202, "200 approves + 2 completes (claims only)");
    assert!(results.iter().all(|r| r.is_ok()));
    assert_eq!(results[252].as_ref().unwrap().job, None);
    // The token went into the job, not the ledger.
    assert_eq!(
        results[199].as_ref().unwrap().job,
        Some(Job::approve_with(
            pid(1199),
            ApproveCredential::from_token(AccessToken::new("t199"))
        ))
    );
    assert_eq!(ledger.access_token(&pid(1199)).await.unwrap(), None);
    assert_eq!(
        ledger.payment(&pid(1000)).await.unwrap().unwrap().state,
        PaymentState::Received
    );
    assert_eq!(ledger.payment(&pid(71)).await.unwrap().unwrap().txid, None);
    assert!(ledger.record_callbacks(Vec::new()).await.is_empty());

    // The sweeper sees them (nothing is postponed, threshold 0).
    let stuck = ledger.payments_stuck(0, 1000).await.unwrap();
    assert_eq!(stuck.len(), 202);
    assert!(
        ledger
            .payments_stuck(3_600_000, 1000)
            .await
            .unwrap()
            .is_empty()
    );
    // A payment postponed by next_check_at is left alone.
    ledger
        .note(
            &pid(1001),
            "backoff",
            None,
            1,
            Some(pi_payments_core::ledger::now_ms() + 3_600_000),
        )
        .await
        .unwrap();
    assert_eq!(ledger.payments_stuck(0, 1000).await.unwrap().len(), 201);
}

pub async fn amounts_are_exact(ledger: &Ledger) {
    let id = pid(80);
    ledger.record_approve_callback(&id, None).await.unwrap();
    let amount = PiAmount::parse("123456789.0000001").unwrap();
    let r = ledger
        .apply(
            &id,
            Transition::PiApproved,
            None,
            1,
            PaymentPatch {
                amount: Some(amount),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    assert_eq!(r.row().amount, Some(amount));
    assert_eq!(
        ledger
            .payment(&id)
            .await
            .unwrap()
            .unwrap()
            .amount
            .unwrap()
            .stroops(),
        1_234_567_890_000_001
    );
}

pub async fn concurrent_batches_enqueue_once(ledger: &Ledger) {
    // Two API processes group-commit overlapping batches in opposite orders.
    let ids: Vec<PaymentId> = (0..100u32).map(|n| pid(2000 + n)).collect();
    let forward: Vec<Callback> = ids
        .iter()
        .map(|id| Callback::Approve {
            payment_id: id.clone(),
            credential: ApproveCredential::Missing,
        })
        .collect();
    let backward: Vec<Callback> = forward.iter().rev().cloned().collect();
    let (a, b) = tokio::join!(
        {
            let l = ledger.clone();
            async move { l.record_callbacks(forward).await }
        },
        {
            let l = ledger.clone();
            async move { l.record_callbacks(backward).await }
        }
    );
    let jobs = a
        .iter()
        .chain(b.iter())
        .map(|r| usize::from(r.as_ref().unwrap().must_enqueue()))
        .sum::<usize>();
    assert_eq!(jobs, ids.len());
}

pub async fn batched_first_approvals_match_single_recording(ledger: &Ledger) {
    // A batch of new payments (the group-commit fast path), one of them twice, and a payment
    // recorded the slow way for comparison.
    let fresh: Vec<PaymentId> = (0..40u32).map(|n| pid(3000 + n)).collect();
    let mut batch: Vec<Callback> = fresh
        .iter()
        .map(|id| Callback::Approve {
            payment_id: id.clone(),
            credential: ApproveCredential::from_token(AccessToken::new(&format!("tok-{id}"))),
        })
        .collect();
    batch.push(Callback::Approve {
        payment_id: fresh[3].clone(),
        credential: ApproveCredential::Missing,
    });
    let results = ledger.record_callbacks(batch).await;
    let single = ledger
        .record_approve_callback(&pid(3999), AccessToken::new("tok-single").as_ref())
        .await
        .unwrap();
    for (n, id) in fresh.iter().enumerate() {
        let recorded = results[n].as_ref().unwrap();
        assert!(recorded.created, "{id} is new");
        let token = AccessToken::new(&format!("tok-{id}")).unwrap();
        assert_eq!(
            recorded.job,
            Some(Job::approve_with(
                id.clone(),
                ApproveCredential::AccessToken(token)
            ))
        );
        // What the batch answered is exactly what the ledger holds, and it holds no token.
        let stored = ledger.payment(id).await.unwrap().unwrap();
        assert_eq!(recorded.payment, stored, "{id}");
        assert_eq!(ledger.access_token(id).await.unwrap(), None);
        // The same history line a single recording writes.
        let history = ledger.payment_events(id).await.unwrap();
        let single_history = ledger.payment_events(&pid(3999)).await.unwrap();
        assert_eq!(history.len(), 1, "{id}");
        assert_eq!(history[0].cause, single_history[0].cause);
        assert_eq!(history[0].from_state, single_history[0].from_state);
        assert_eq!(history[0].to_state, single_history[0].to_state);
    }
    assert_eq!(
        single.payment.state,
        results[0].as_ref().unwrap().payment.state
    );
    // The repeat inside the batch was counted, not enqueued.
    let repeat = results[40].as_ref().unwrap();
    assert!(!repeat.created && repeat.job.is_none());
    // A second batch of the same callbacks (the SDK re-sends) enqueues nothing.
    let again: Vec<Callback> = fresh
        .iter()
        .map(|id| Callback::Approve {
            payment_id: id.clone(),
            credential: ApproveCredential::Missing,
        })
        .collect();
    for result in ledger.record_callbacks(again).await {
        let result = result.unwrap();
        assert!(!result.created && result.job.is_none());
        assert_eq!(result.payment.state, PaymentState::Received);
    }
}

/// Every payment gets its own growing number, however it was created (batched first
/// approvals, one callback alone, a row inserted by hand), and its history and callback
/// counters are filed under that number.
pub async fn payments_are_numbered_and_their_rows_follow(ledger: &Ledger) {
    let pool = ledger.pool();
    let batch: Vec<Callback> = (5000..5010)
        .map(|n| Callback::Approve {
            payment_id: pid(n),
            credential: ApproveCredential::from_token(AccessToken::new(&format!("token-{n}"))),
        })
        .collect();
    for result in ledger.record_callbacks(batch).await {
        assert!(result.unwrap().created);
    }
    ledger
        .record_approve_callback(&pid(5010), None)
        .await
        .unwrap();
    sqlx::query(
        "INSERT INTO payments (id, direction, state, attempts, created_at, updated_at) \
         VALUES ($1, 'user_to_app', 'received', 0, 0, 0)",
    )
    .bind(pid(5011).as_str())
    .execute(pool)
    .await
    .unwrap();
    // The hand-made payment's first callback files its rows under its number too.
    let repeat = ledger
        .record_approve_callback(&pid(5011), None)
        .await
        .unwrap();
    assert!(!repeat.created);

    let seq_of = |n: u32| {
        sqlx::query_scalar::<_, Option<i64>>("SELECT seq FROM payments WHERE id = $1")
            .bind(pid(n).to_string())
            .fetch_one(pool)
    };
    let mut batch_seqs = Vec::new();
    for n in 5000..5010 {
        batch_seqs.push(
            seq_of(n)
                .await
                .unwrap()
                .expect("a batched payment has a number"),
        );
    }
    let single = seq_of(5010)
        .await
        .unwrap()
        .expect("a single payment has a number");
    let by_hand = seq_of(5011)
        .await
        .unwrap()
        .expect("a hand-made payment has a number");
    let mut distinct = batch_seqs.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(distinct.len(), batch_seqs.len(), "numbers are unique");
    assert!(
        batch_seqs.iter().all(|&s| s < single),
        "later payments get higher numbers"
    );
    assert!(single < by_hand);

    let misfiled_events: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_events e JOIN payments p ON p.id = e.payment_id \
         WHERE e.payment_seq IS NULL OR e.payment_seq <> p.seq",
    )
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(misfiled_events, 0);
    let counters: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM payment_callbacks c JOIN payments p ON p.seq = c.payment_seq \
         WHERE p.id >= $1 AND p.id <= $2",
    )
    .bind(pid(5000).as_str())
    .bind(pid(5011).as_str())
    .fetch_one(pool)
    .await
    .unwrap();
    assert_eq!(counters, 12, "one approve counter per payment");
    for n in 5000..5011 {
        let history = ledger.payment_events(&pid(n)).await.unwrap();
        assert_eq!(history.len(), 1, "payment {n}");
        assert_eq!(history[0].payment_id, pid(n));
    }
    // Repeats are recognised through the numbered counters.
    assert_eq!(
        ledger
            .record_approve_callback(&pid(5003), None)
            .await
            .unwrap()
            .job,
        None
    );
}

crate::on_both_databases!(
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
    repeated_callbacks_of_an_idle_row_reenqueue_once,
);
