//! Rewarded ads against pi-sim, on SQLite and on Postgres (TEST_DATABASE_URL, a fresh database
//! per test): each scenario of auth_support/ads_scenarios.rs runs once per database.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod auth_support;

use auth_support::{Harness, ads_scenarios};

/// One test per scenario and database, named `sqlite::<scenario>` and `postgres::<scenario>`.
macro_rules! scenarios_on {
    ($db:ident: $($name:ident),* $(,)?) => {
        mod $db {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $name() {
                    let h = Harness::$db().await;
                    ads_scenarios::$name(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

/// Every scenario, on both databases.
macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        scenarios_on!(sqlite: $($name),*);
        scenarios_on!(postgres: $($name),*);
    };
}

scenarios!(
    granted_once_under_concurrent_claims,
    pending_then_granted,
    revoked_claws_back,
    another_pioneers_claim_is_403,
    unknown_failed_and_unauthenticated,
    sessions_round_trip,
);
