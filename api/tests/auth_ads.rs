//! Rewarded ads on SQLite against pi-sim (scenarios in auth_support/ads_scenarios.rs).

mod auth_support;

use auth_support::{Harness, ads_scenarios};

macro_rules! sqlite_scenarios {
    ($($name:ident),* $(,)?) => {$(
        #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
        async fn $name() {
            let h = Harness::sqlite().await;
            ads_scenarios::$name(&h).await;
            h.finish().await;
        }
    )*};
}

sqlite_scenarios!(
    granted_once_under_concurrent_claims,
    pending_then_granted,
    revoked_claws_back,
    another_pioneers_claim_is_403,
    unknown_failed_and_unauthenticated,
    sessions_round_trip,
);
