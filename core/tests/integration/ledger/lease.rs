//! The ledger lease that keeps reconcile runs one at a time, on SQLite and on Postgres
//! (TEST_DATABASE_URL, a fresh database per test): one holder at a time under contention,
//! release, the cool-down, and takeover of an expired lease.

use pi_payments_core::ledger::Ledger;
use std::time::Duration;

async fn lease_scenario(ledger: &Ledger) {
    let ttl = Duration::from_secs(60);
    assert!(ledger.try_lease("reconcile", "a", ttl).await.unwrap());
    assert!(!ledger.try_lease("reconcile", "b", ttl).await.unwrap());
    // A holder cannot re-take its own live lease either: every run uses a fresh holder.
    assert!(!ledger.try_lease("reconcile", "a", ttl).await.unwrap());
    assert_eq!(
        ledger.lease("reconcile").await.unwrap().unwrap().holder,
        "a"
    );
    // Another name is another lease.
    assert!(ledger.try_lease("other", "b", ttl).await.unwrap());
    // Only the holder renews or releases.
    assert!(!ledger.renew_lease("reconcile", "b", ttl).await.unwrap());
    assert!(ledger.renew_lease("reconcile", "a", ttl).await.unwrap());
    ledger.release_lease("reconcile", "b", None).await.unwrap();
    assert!(!ledger.try_lease("reconcile", "c", ttl).await.unwrap());
    ledger.release_lease("reconcile", "a", None).await.unwrap();
    assert!(ledger.try_lease("reconcile", "c", ttl).await.unwrap());

    // Release with a cool-down: held until then.
    let until = pi_payments_core::ledger::now_ms() + 60_000;
    ledger
        .release_lease("reconcile", "c", Some(until))
        .await
        .unwrap();
    assert!(!ledger.try_lease("reconcile", "d", ttl).await.unwrap());

    // An expired lease (its holder died) is taken over, and the old holder has lost it.
    assert!(
        ledger
            .try_lease("short", "dead", Duration::ZERO)
            .await
            .unwrap()
    );
    assert!(ledger.try_lease("short", "next", ttl).await.unwrap());
    assert!(!ledger.renew_lease("short", "dead", ttl).await.unwrap());
    assert_eq!(ledger.lease("short").await.unwrap().unwrap().holder, "next");

    // Under contention exactly one of many takers wins.
    let mut set = tokio::task::JoinSet::new();
    for i in 0..16 {
        let l = ledger.clone();
        set.spawn(async move { l.try_lease("race", &format!("h{i}"), ttl).await.unwrap() });
    }
    let mut winners = 0;
    while let Some(won) = set.join_next().await {
        winners += usize::from(won.unwrap());
    }
    assert_eq!(winners, 1);
}

crate::on_both_databases!(lease_scenario);
