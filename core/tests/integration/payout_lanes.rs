//! Payout lanes shared by worker processes through ledger leases, on SQLite and Postgres: two
//! processes' lane sets never hold the same source at once, a process holding no lane gets
//! none, a dead holder's lanes move to the other process within 10 s, and a process that
//! stops gracefully gives its lanes back at once.

use pi_payments_core::ledger::Ledger;
use pi_payments_core::payout::lane::{HeldElsewhere, Lanes};
use pi_payments_core::payout::lane_lease::LaneLeases;
use pi_payments_core::stellar::Wallet;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Poll until `done` or `limit` passes; how long it took.
async fn within(limit: Duration, done: impl Fn() -> bool) -> Duration {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < limit, "not within {limit:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    start.elapsed()
}

fn disjoint(a: &Lanes, b: &Lanes) {
    let held_a = a.held_accounts();
    let held_b = b.held_accounts();
    assert!(
        held_a.iter().all(|x| !held_b.contains(x)),
        "both hold a lane: {held_a:?} {held_b:?}"
    );
}

pub async fn lanes_scenario(ledger: &Ledger) {
    let app = Wallet::generate();
    let channels: Vec<Wallet> = (0..3).map(|_| Wallet::generate()).collect();
    let a = Arc::new(Lanes::new(app.clone(), channels.clone()));
    let b = Arc::new(Lanes::new(app.clone(), channels));

    // Process A starts first and takes every free lane.
    let lease_a = LaneLeases::spawn(ledger.clone(), a.clone(), "proc-a".into());
    within(Duration::from_secs(5), || a.held_accounts().len() == 4).await;
    let lease_b = LaneLeases::spawn(ledger.clone(), b.clone(), "proc-b".into());
    // Through several lease ticks, B holds nothing: its payouts find no source, and a stored
    // envelope of A's source waits for the lane.
    let sampling = Instant::now();
    while sampling.elapsed() < Duration::from_secs(3) {
        disjoint(&a, &b);
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(b.held_accounts().is_empty());
    assert!(b.acquire_for_payment().await.is_none());
    assert!(matches!(
        b.acquire_account(&app.public_key()).await,
        Err(HeldElsewhere)
    ));
    assert!(a.acquire_for_payment().await.is_some());

    // A dies (stops renewing without releasing): B takes every lane over within 10 s.
    drop(lease_a);
    let moved = within(Duration::from_secs(10), || b.held_accounts().len() == 4).await;
    eprintln!("lanes moved {moved:?} after the holder died");
    assert!(b.acquire_for_payment().await.is_some());
    assert!(
        b.acquire_account(&app.public_key())
            .await
            .unwrap()
            .is_some()
    );

    // B stops gracefully: its lanes are given back and the next process takes them at its
    // first tick, not after the TTL.
    lease_b.release().await;
    assert!(b.held_accounts().is_empty());
    let c = Arc::new(Lanes::new(app, Vec::new()));
    let _lease_c = LaneLeases::spawn(ledger.clone(), c.clone(), "proc-c".into());
    within(Duration::from_secs(1), || c.held_accounts().len() == 1).await;
}

crate::on_both_databases!(lanes_scenario);
