//! Rewarded-ad scenarios, run on SQLite and on Postgres (auth_ads.rs).

use super::*;
use pi_payments_core::ledger::{AdClaimStatus, AdObservation, AdUpdate};

/// Ten concurrent claims of one granted ad: every answer says granted, one reward, one event.
pub async fn granted_once_under_concurrent_claims(h: &Harness) {
    let token = h.token("pioneer-c1", None).await;
    let ad = h.set_ad(None, Some("granted")).await;
    // Verify the token first so the ten claims race on the ad, not on /v2/me.
    let (status, _, _) = h
        .send(bare_request(
            "GET",
            "/me",
            &[("authorization", &format!("Bearer {token}"))],
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let claims: Vec<_> = (0..10).map(|_| h.spawn_claim(&token, &ad)).collect();
    let answers = futures::future::join_all(claims).await;
    for answer in &answers {
        let (status, body) = answer.as_ref().unwrap();
        assert_eq!(*status, StatusCode::OK, "{body}");
        assert_eq!(body["status"], "granted");
        assert_eq!(body["ad_id"], ad.as_str());
    }
    let row = h.ledger.ad_claim(&ad).await.unwrap().unwrap();
    assert_eq!(row.status, AdClaimStatus::Granted);
    assert_eq!(row.uid.as_str(), "pioneer-c1");
    assert_eq!(row.product_id.as_deref(), Some("coins-10"));
    assert!(row.granted_at.is_some());
    let events = h.events("ad.granted", &ad).await;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].payload["ad"]["uid"], "pioneer-c1");
    assert_eq!(events[0].payload["ad"]["status"], "granted");
    // One status change was recorded, whatever the number of checks.
    assert_eq!(
        row.checks, 10,
        "every claim asked Pi and recorded the check"
    );
    // At the ledger level: of ten racing status writes, exactly one makes the change and
    // writes the event (the others see it already granted).
    let ad2 = h.set_ad(None, Some("granted")).await;
    let uid = pi_payments_core::Uid::parse("pioneer-c1").unwrap();
    h.ledger
        .bind_ad_claim(&ad2, &uid, None, pi_payments_core::ledger::now_ms())
        .await
        .unwrap();
    let writes: Vec<_> = (0..10)
        .map(|_| {
            let ledger = h.ledger.clone();
            let ad2 = ad2.clone();
            tokio::spawn(async move {
                ledger
                    .record_ad_status(
                        &ad2,
                        AdObservation::Granted,
                        pi_payments_core::ledger::now_ms(),
                    )
                    .await
                    .unwrap()
            })
        })
        .collect();
    let updates: Vec<AdUpdate> = futures::future::join_all(writes)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        updates.iter().filter(|u| u.changed_from.is_some()).count(),
        1
    );
    assert_eq!(updates.iter().filter(|u| u.event.is_some()).count(), 1);
    assert!(
        updates
            .iter()
            .all(|u| u.row.status == AdClaimStatus::Granted)
    );
    assert_eq!(h.ledger.ad_claim(&ad2).await.unwrap().unwrap().checks, 10);
    assert_eq!(h.events("ad.granted", &ad2).await.len(), 1);

    // Claiming again later changes nothing.
    let (status, body) = h.claim(&token, &ad).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("granted"))
    );
    assert_eq!(h.events("ad.granted", &ad).await.len(), 1);
}

/// Pending (202) until Pi grants; the later claim re-checks and grants once.
pub async fn pending_then_granted(h: &Harness) {
    let token = h.token("pioneer-c2", None).await;
    let ad = h.set_ad(None, None).await;
    for _ in 0..2 {
        let (status, body) = h.claim(&token, &ad).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        assert_eq!(body["status"], "pending");
    }
    assert!(h.events("ad.granted", &ad).await.is_empty());
    h.set_ad(Some(&ad), Some("granted")).await;
    let (status, body) = h.claim(&token, &ad).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "granted");
    assert_eq!(h.events("ad.granted", &ad).await.len(), 1);
    let row = h.ledger.ad_claim(&ad).await.unwrap().unwrap();
    assert_eq!(row.checks, 3);
}

/// A grant Pi revokes is clawed back (by a later claim, or by the reconcile function).
pub async fn revoked_claws_back(h: &Harness) {
    let token = h.token("pioneer-c3", None).await;
    let ad = h.set_ad(None, Some("granted")).await;
    let (_, body) = h.claim(&token, &ad).await;
    assert_eq!(body["status"], "granted");
    h.set_ad(Some(&ad), Some("revoked")).await;
    let (status, body) = h.claim(&token, &ad).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "revoked");
    let row = h.ledger.ad_claim(&ad).await.unwrap().unwrap();
    assert_eq!(row.status, AdClaimStatus::Revoked);
    assert!(row.revoked_at.is_some());
    assert_eq!(h.events("ad.granted", &ad).await.len(), 1);
    let revoked = h.events("ad.revoked", &ad).await;
    assert_eq!(revoked.len(), 1);
    assert_eq!(revoked[0].payload["ad"]["status"], "revoked");
    // Final: no further Pi call, same answer.
    let calls = h.sim_calls("ads_status").await;
    let (_, body) = h.claim(&token, &ad).await;
    assert_eq!(body["status"], "revoked");
    assert_eq!(h.sim_calls("ads_status").await, calls);

    // The reconcile path finds a revocation nobody claimed again.
    let ad2 = h.set_ad(None, Some("granted")).await;
    let (_, body) = h.claim(&token, &ad2).await;
    assert_eq!(body["status"], "granted");
    h.set_ad(Some(&ad2), Some("revoked")).await;
    let report = h
        .state
        .ads
        .reconcile(std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(report.revoked, 1, "{report:?}");
    assert_eq!(h.events("ad.revoked", &ad2).await.len(), 1);
    let again = h
        .state
        .ads
        .reconcile(std::time::Duration::ZERO, 100)
        .await
        .unwrap();
    assert_eq!(again.revoked, 0);
    assert_eq!(h.events("ad.revoked", &ad2).await.len(), 1);
}

/// The first claimant owns an ad; another Pioneer gets 403 and changes nothing.
pub async fn another_pioneers_claim_is_403(h: &Harness) {
    let alice = h.token("pioneer-c4", None).await;
    let bob = h.token("pioneer-c5", None).await;
    let ad = h.set_ad(None, None).await;
    let (status, _) = h.claim(&alice, &ad).await;
    assert_eq!(status, StatusCode::ACCEPTED);
    h.set_ad(Some(&ad), Some("granted")).await;
    let (status, body) = h.claim(&bob, &ad).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "ad_claimed_by_another");
    let row = h.ledger.ad_claim(&ad).await.unwrap().unwrap();
    assert_eq!(row.uid.as_str(), "pioneer-c4");
    assert_eq!(row.status, AdClaimStatus::Pending);
    let (status, body) = h.claim(&alice, &ad).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("granted"))
    );
    let (status, _) = h.claim(&bob, &ad).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.events("ad.granted", &ad).await.len(), 1);
}

/// Unknown at Pi: 404 and no row; failed: denied; no credential: 401; Pi down: 503.
pub async fn unknown_failed_and_unauthenticated(h: &Harness) {
    let token = h.token("pioneer-c6", None).await;
    let (status, body) = h.claim(&token, "noSuchAdAtPi").await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert_eq!(body["error"], "ad_not_found");
    assert!(h.ledger.ad_claim("noSuchAdAtPi").await.unwrap().is_none());

    let failed = h.set_ad(None, Some("failed")).await;
    let (status, body) = h.claim(&token, &failed).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["status"], "denied");
    h.set_ad(Some(&failed), Some("granted")).await;
    let (_, body) = h.claim(&token, &failed).await;
    assert_eq!(body["status"], "denied", "denied is final");
    assert!(h.events("ad.granted", &failed).await.is_empty());

    let (status, _, body) = h
        .send(json_request(
            "POST",
            "/ads/claim",
            json!({"adId": failed}),
            &[],
        ))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");

    let (status, body) = h.claim(&token, "").await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");

    let ad = h.set_ad(None, Some("granted")).await;
    h.faults(json!({"fail_rate": 1.0, "endpoints": ["ads_status"]}))
        .await;
    let (status, body) = h.claim(&token, &ad).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "pi_unavailable");
    h.faults(json!({"fail_rate": 0.0})).await;
    let (status, body) = h.claim(&token, &ad).await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("granted"))
    );
}

/// Sign-in, cookie, Bearer cache through the sessions table, logout (sessions on both
/// databases).
pub async fn sessions_round_trip(h: &Harness) {
    let token = h.token("pioneer-c7", None).await;
    let pair = h.sign_in(&token).await;
    let (status, _, me) = h
        .send(bare_request("GET", "/me", &[("cookie", &pair)]))
        .await;
    assert_eq!(
        (status, me["uid"].as_str()),
        (StatusCode::OK, Some("pioneer-c7"))
    );
    let fresh = pi_payments_core::pioneer::PioneerAuth::new(
        h.ledger.clone(),
        pi_client(h),
        Duration::from_secs(60),
    );
    assert_eq!(
        fresh
            .verify_token(&pi_payments_core::secret::AccessToken::new(&token).unwrap())
            .await
            .unwrap()
            .uid
            .as_str(),
        "pioneer-c7"
    );
    assert_eq!(h.sim_calls("me").await, 1);
    let (status, _, _) = h
        .send(bare_request(
            "POST",
            "/auth/logout",
            &[("cookie", &pair), ("origin", APP_ORIGIN)],
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = h
        .send(bare_request("GET", "/me", &[("cookie", &pair)]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        h.ledger.purge_expired_sessions(i64::MAX).await.unwrap(),
        0,
        "logout deleted the only session"
    );
}
