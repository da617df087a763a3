//! Housekeeping every few minutes: finished jobs are removed from the queue backend (apalis
//! keeps them forever, see [`crate::purge`]).
//!
//! The same tick does the ledger's chores for Pioneers ([`ledger_chores`]): expired sessions
//! are deleted (with the access tokens they hold), and rewarded-ad claims still pending or
//! granted are re-checked with Pi, so that a claim the client stopped polling is decided and a
//! revoked grant is clawed back (`ad.revoked`).

use crate::purge::remove_done;
use crate::queue::Queue;
use pi_payments_core::ads::AdRewards;
use pi_payments_core::ledger::{Ledger, now_ms};
use std::time::Duration;
use tokio::sync::watch;

/// How often finished jobs are removed.
const INTERVAL: Duration = Duration::from_secs(300);
/// Finished jobs are kept this long, for a look after the fact.
const RETENTION: Duration = Duration::from_secs(3600);
/// Ad claims re-checked with Pi per pass (the rest wait for the next one).
const AD_RECHECK_LIMIT: i64 = 200;
/// An ad claim is re-checked once its last check is this old.
const AD_RECHECK_AGE: Duration = Duration::from_secs(60);

/// Clean up every [`INTERVAL`] until `stop` turns true.
pub(crate) async fn run(
    queue: Queue,
    ledger: Ledger,
    ads: AdRewards,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            _ = tokio::time::sleep(INTERVAL) => {}
            // A dropped sender also means stop.
            changed = stop.changed() => if changed.is_err() { return; }
        }
        if *stop.borrow() {
            return;
        }
        match remove_done(&queue.backend, &queue.namespace, RETENTION).await {
            Ok(0) => {}
            Ok(n) => tracing::debug!(removed = n, "removed finished jobs from the queue"),
            Err(error) => tracing::warn!(%error, "could not remove finished jobs; will retry"),
        }
        ledger_chores(&ledger, &ads, AD_RECHECK_AGE).await;
    }
}

/// Delete expired sessions and re-check with Pi the ad claims last checked more than
/// `ad_age` ago. Failures are logged and left for the next pass; nothing here is urgent.
pub(crate) async fn ledger_chores(ledger: &Ledger, ads: &AdRewards, ad_age: Duration) {
    match ledger.purge_expired_sessions(now_ms()).await {
        Ok(0) => {}
        Ok(n) => tracing::debug!(removed = n, "deleted expired sessions"),
        Err(error) => tracing::warn!(%error, "could not delete expired sessions; will retry"),
    }
    match ads.reconcile(ad_age, AD_RECHECK_LIMIT).await {
        Ok(report) if report.checked == 0 => {}
        Ok(report) => tracing::info!(
            checked = report.checked,
            granted = report.granted,
            revoked = report.revoked,
            denied = report.denied,
            errors = report.errors,
            "re-checked ad claims with Pi"
        ),
        Err(error) => tracing::warn!(%error, "could not re-check ad claims; will retry"),
    }
}

#[cfg(test)]
mod tests {
    use crate::housekeeping::ledger_chores;
    use pi_payments_core::ads::AdRewards;
    use pi_payments_core::ledger::{Ledger, now_ms};
    use std::time::Duration;

    #[tokio::test]
    async fn chores_purge_expired_sessions_and_decide_pending_ads() {
        use pi_payments_core::ids::Uid;
        use pi_payments_core::ledger::{AdClaimStatus, NewSession};
        use pi_payments_core::pi_client::{PiClient, PiClientConfig};
        use pi_payments_core::rate_limit::PiRateLimiter;

        let dir = std::env::temp_dir().join(format!(
            "pp-housekeeping-{}",
            pi_payments_core::ids::random_alnum(12)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let ledger = Ledger::connect(&format!("sqlite://{}", dir.join("l.db").display()))
            .await
            .unwrap();
        let sim = pi_sim::start(pi_sim::SimConfig::default()).await.unwrap();
        let limiter =
            std::sync::Arc::new(PiRateLimiter::new(std::num::NonZeroU32::new(100).unwrap()));
        let pi = PiClient::new(PiClientConfig::new(
            &sim.platform_url,
            &sim.api_key,
            limiter,
        ))
        .unwrap();
        let ads = AdRewards::new(ledger.clone(), pi);

        let uid = Uid::parse("pioneer-hk").unwrap();
        ledger.upsert_pioneer(&uid, None, &[]).await.unwrap();
        let now = now_ms();
        for (id, expires_at) in [("expired", now - 1), ("live", now + 3_600_000)] {
            ledger
                .insert_session(&NewSession {
                    id_hash: id,
                    uid: &uid,
                    token_hash: id,
                    username: None,
                    scopes: &[],
                    valid_until: now + 3_600_000,
                    created_at: now - 10,
                    expires_at,
                })
                .await
                .unwrap();
        }
        let http = reqwest::Client::new();
        let set_ad = |status: serde_json::Value| {
            http.post(format!("{}/_sim/ads", sim.platform_url))
                .json(&serde_json::json!({"ad_id": "ad-hk", "status": status}))
                .send()
        };
        set_ad(serde_json::Value::Null).await.unwrap();
        let claimed = ads.claim("ad-hk", &uid, None).await.unwrap();
        assert_eq!(claimed.status, AdClaimStatus::Pending);
        set_ad("granted".into()).await.unwrap();
        tokio::time::sleep(Duration::from_millis(5)).await;

        ledger_chores(&ledger, &ads, Duration::ZERO).await;

        assert_eq!(ledger.purge_expired_sessions(now).await.unwrap(), 0);
        assert!(ledger.session("live", now).await.unwrap().is_some());
        let row = ledger.ad_claim("ad-hk").await.unwrap().unwrap();
        assert_eq!(row.status, AdClaimStatus::Granted);
        ledger.close().await;
        sim.shutdown().await;
        let _ = std::fs::remove_dir_all(&dir);
    }
}
