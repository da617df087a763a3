//! The operator dashboard's ledger reads and actions, written once and run on SQLite and on
//! Postgres: pages by state, uid and time with keyset paging, capped counts, deliveries and
//! their re-arming, batches with progress, and a payment retry through the state machine.

use pi_payments_core::ledger::{
    DeliveryQuery, Ledger, LedgerError, PageCursor, PaymentPatch, PaymentQuery, PayoutPatch,
    PayoutQuery, now_ms,
};
use pi_payments_core::state::{PaymentState, PayoutState, PayoutTransition, RetryStep, Transition};
use pi_payments_core::{PaymentId, Txid, Uid};

use super::payout_scenarios::req;
use crate::support::ledger::pid;

async fn received(ledger: &Ledger, n: u32) -> PaymentId {
    let id = pid(n);
    ledger.record_approve_callback(&id, None).await.unwrap();
    id
}

async fn to_attention(ledger: &Ledger, id: &PaymentId, reason: &str) {
    ledger
        .apply(
            id,
            Transition::GaveUp {
                reason: reason.into(),
            },
            Some(reason),
            3,
            PaymentPatch::default(),
        )
        .await
        .unwrap();
}

fn ids(rows: &[pi_payments_core::ledger::PaymentRow]) -> Vec<PaymentId> {
    rows.iter().map(|r| r.id.clone()).collect()
}

pub async fn payment_pages_filter_and_page(ledger: &Ledger) {
    let before_all = now_ms();
    let mut all = Vec::new();
    for n in 0..7 {
        all.push(received(ledger, n).await);
    }
    for id in &all[4..] {
        to_attention(ledger, id, "gave up").await;
    }
    // A uid on one of them.
    ledger
        .apply(
            &all[0],
            Transition::PiApproved,
            None,
            1,
            PaymentPatch {
                uid: Some(Uid::parse("pioneer-x").unwrap()),
                ..Default::default()
            },
        )
        .await
        .unwrap();

    // One state, newest first, paged by (created_at, id) with no row lost or repeated.
    let q = PaymentQuery {
        state: Some(PaymentState::NeedsAttention),
        ..Default::default()
    };
    let first = ledger.payments_page(&q, 2).await.unwrap();
    assert_eq!(first.len(), 2);
    assert!(first[0].created_at >= first[1].created_at);
    let last = first.last().unwrap();
    let q2 = PaymentQuery {
        before: Some(PageCursor::after(last.created_at, last.id.as_str())),
        ..q.clone()
    };
    let second = ledger.payments_page(&q2, 2).await.unwrap();
    assert_eq!(second.len(), 1);
    let mut seen = ids(&first);
    seen.extend(ids(&second));
    seen.sort();
    let mut want = all[4..].to_vec();
    want.sort();
    assert_eq!(seen, want);

    // Every state; by uid; created since.
    let every = ledger
        .payments_page(&PaymentQuery::default(), 100)
        .await
        .unwrap();
    assert_eq!(every.len(), 7);
    let by_uid = ledger
        .payments_page(
            &PaymentQuery {
                uid: Some(Uid::parse("pioneer-x").unwrap()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(ids(&by_uid), vec![all[0].clone()]);
    assert_eq!(by_uid[0].state, PaymentState::Approved);
    let since_future = PaymentQuery {
        created_since: Some(now_ms() + 60_000),
        ..Default::default()
    };
    assert!(
        ledger
            .payments_page(&since_future, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let since_start = PaymentQuery {
        created_since: Some(before_all),
        state: Some(PaymentState::Received),
        ..Default::default()
    };
    assert_eq!(
        ledger.payments_page(&since_start, 10).await.unwrap().len(),
        3
    );
    // A page never exceeds the cap, whatever is asked.
    assert_eq!(
        ledger
            .payments_page(&PaymentQuery::default(), 1_000_000)
            .await
            .unwrap()
            .len(),
        7
    );

    // Counts per state, every state listed.
    let counts = ledger.payment_counts().await.unwrap();
    let of = |s: PaymentState| counts.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(of(PaymentState::Received), 3);
    assert_eq!(of(PaymentState::Approved), 1);
    assert_eq!(of(PaymentState::NeedsAttention), 3);
    assert_eq!(of(PaymentState::Completed), 0);
    assert_eq!(counts.len(), 6);
}

pub async fn retry_payment_goes_through_the_state_machine(ledger: &Ledger) {
    // Without a txid: back to received (approval again), the operator in the history.
    let a = received(ledger, 1).await;
    to_attention(ledger, &a, "approve failed 5 times").await;
    let (applied, step) = ledger
        .retry_payment(&a, "operator (dashboard): retry")
        .await
        .unwrap();
    assert_eq!(step, RetryStep::Approve);
    assert!(applied.moved());
    assert_eq!(applied.row().state, PaymentState::Received);
    let history = ledger.payment_events(&a).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.cause, "retry_approve");
    assert_eq!(last.from_state, Some(PaymentState::NeedsAttention));
    assert_eq!(last.detail.as_deref(), Some("operator (dashboard): retry"));
    // Again: already there, nothing written.
    let (again, _) = ledger.retry_payment(&a, "operator").await.unwrap();
    assert!(!again.moved());
    assert_eq!(
        ledger.payment_events(&a).await.unwrap().len(),
        history.len()
    );

    // With a txid: back to completing.
    let b = received(ledger, 2).await;
    let txid = Txid::parse(&format!("{:064x}", 2)).unwrap();
    ledger
        .apply(
            &b,
            Transition::CompleteCallback { txid },
            None,
            0,
            PaymentPatch::default(),
        )
        .await
        .unwrap();
    to_attention(ledger, &b, "verification failed").await;
    let (applied, step) = ledger.retry_payment(&b, "operator").await.unwrap();
    assert_eq!(step, RetryStep::Complete);
    assert_eq!(applied.row().state, PaymentState::Completing);

    // A completed or unknown payment cannot be retried.
    let err = ledger
        .retry_payment(&pid(99), "operator")
        .await
        .unwrap_err();
    assert!(matches!(err, LedgerError::PaymentNotFound(_)), "{err}");
}

pub async fn deliveries_and_resend(ledger: &Ledger) {
    // Two payments reaching needs_attention: two outbox events.
    let a = received(ledger, 1).await;
    to_attention(ledger, &a, "x").await;
    let b = received(ledger, 2).await;
    to_attention(ledger, &b, "y").await;
    let all = ledger
        .deliveries_page(DeliveryQuery::default(), 10)
        .await
        .unwrap();
    assert_eq!(all.len(), 2);
    assert!(all[0].id > all[1].id, "newest first");
    let (newer, older) = (all[0].clone(), all[1].clone());

    // The older one delivered, the newer one failing.
    ledger.mark_delivered(older.id).await.unwrap();
    let later = now_ms() + 3_600_000;
    ledger
        .mark_delivery_failed(newer.id, "connection refused", later)
        .await
        .unwrap();
    let pending = ledger
        .deliveries_page(
            DeliveryQuery {
                undelivered_only: true,
                before_id: None,
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(pending.len(), 1);
    assert_eq!(pending[0].id, newer.id);
    assert_eq!(pending[0].delivery_attempts, 1);
    assert_eq!(pending[0].last_error.as_deref(), Some("connection refused"));
    assert_eq!(ledger.undelivered_count().await.unwrap(), 1);
    let paged = ledger
        .deliveries_page(
            DeliveryQuery {
                undelivered_only: false,
                before_id: Some(newer.id),
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(paged.len(), 1);
    assert_eq!(paged[0].id, older.id);

    // Re-arming: due now, attempts and last error kept, recorded with the operator.
    let t0 = now_ms();
    let rearmed = ledger
        .resend_delivery(newer.id, "operator (dashboard): webhook delivery re-armed")
        .await
        .unwrap()
        .unwrap();
    assert!(rearmed.next_attempt_at.unwrap() <= now_ms());
    assert!(rearmed.next_attempt_at.unwrap() >= t0);
    assert_eq!(rearmed.delivery_attempts, 1);
    assert_eq!(ledger.due_deliveries(now_ms(), 10).await.unwrap().len(), 1);
    // A delivered one is sent again too.
    let again = ledger
        .resend_delivery(older.id, "operator")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(again.delivered_at, None);
    assert_eq!(ledger.due_deliveries(now_ms(), 10).await.unwrap().len(), 2);
    let actions = ledger
        .operator_actions("event", &newer.id.to_string(), 10)
        .await
        .unwrap();
    assert_eq!(actions.len(), 1);
    assert_eq!(actions[0].action, "webhook_resend");
    assert!(actions[0].detail.as_deref().unwrap().contains("operator"));
    // An unknown event: nothing.
    assert!(
        ledger
            .resend_delivery(999_999, "operator")
            .await
            .unwrap()
            .is_none()
    );
}

pub async fn payout_pages_and_batches(ledger: &Ledger) {
    let batch = ledger.create_batch(Some("march.csv")).await.unwrap();
    let mut ids = Vec::new();
    for n in 0..4 {
        let mut r = req("pioneer-b", "1.5", &format!("key-{n}"));
        r.batch_id = Some(batch.id.clone());
        let (row, created) = ledger.request_payout(r).await.unwrap();
        assert!(created);
        ids.push(row.id);
    }
    let (loose, _) = ledger
        .request_payout(req("pioneer-c", "2", "key-loose"))
        .await
        .unwrap();
    // One payout failed, one needs attention.
    ledger
        .apply_payout(
            &ids[0],
            PayoutTransition::Failed {
                reason: "user_not_found".into(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
        .unwrap();
    ledger
        .apply_payout(
            &ids[1],
            PayoutTransition::GaveUp {
                reason: "stuck".into(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
        .unwrap();

    let attention = ledger
        .payouts_page(
            &PayoutQuery {
                state: Some(PayoutState::NeedsAttention),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(attention.len(), 1);
    assert_eq!(attention[0].id, ids[1]);
    let of_batch = ledger
        .payouts_page(
            &PayoutQuery {
                batch: Some(batch.id.clone()),
                ..Default::default()
            },
            3,
        )
        .await
        .unwrap();
    assert_eq!(of_batch.len(), 3);
    let last = of_batch.last().unwrap();
    let rest = ledger
        .payouts_page(
            &PayoutQuery {
                batch: Some(batch.id.clone()),
                before: Some(PageCursor::after(last.created_at, last.id.as_str())),
                ..Default::default()
            },
            3,
        )
        .await
        .unwrap();
    assert_eq!(rest.len(), 1);
    let by_uid = ledger
        .payouts_page(
            &PayoutQuery {
                uid: Some(Uid::parse("pioneer-c").unwrap()),
                ..Default::default()
            },
            10,
        )
        .await
        .unwrap();
    assert_eq!(by_uid.len(), 1);
    assert_eq!(by_uid[0].id, loose.id);

    let counts = ledger.payout_counts().await.unwrap();
    let of = |s: PayoutState| counts.iter().find(|(x, _)| *x == s).unwrap().1;
    assert_eq!(of(PayoutState::Requested), 3);
    assert_eq!(of(PayoutState::Failed), 1);
    assert_eq!(of(PayoutState::NeedsAttention), 1);
    assert_eq!(counts.len(), 8);

    let batches = ledger.batches_page(None, 10).await.unwrap();
    assert_eq!(batches.len(), 1);
    let b = &batches[0];
    assert_eq!(b.batch.id, batch.id);
    assert_eq!(b.batch.source.as_deref(), Some("march.csv"));
    assert_eq!((b.completed, b.failed, b.needs_attention), (0, 1, 1));

    // The operator's retry of the payout goes back to work.
    let back = ledger
        .retry_payout(&ids[1], Some("operator (admin API): retry"))
        .await
        .unwrap();
    assert_eq!(back.row().state, PayoutState::Requested);
    let history = ledger.payout_events(&ids[1]).await.unwrap();
    assert!(
        history
            .last()
            .unwrap()
            .detail
            .as_deref()
            .unwrap()
            .contains("operator")
    );
}

crate::on_both_databases!(
    payment_pages_filter_and_page,
    retry_payment_goes_through_the_state_machine,
    deliveries_and_resend,
    payout_pages_and_batches,
);
