//! Pi sign-in against pi-sim: the cookie's attributes, framing headers, identity from Pi only,
//! expired tokens, Pi outages, the verification cache, sign-out, the approve path's token
//! lookup.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod auth_support;

use auth_support::*;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use pi_payments_api::auth::approve_credential_for_request;
use pi_payments_core::Uid;
use pi_payments_core::jobs::ApproveCredential;
use pi_payments_core::secret::AccessToken;
use serde_json::json;

#[tokio::test]
async fn sign_in_sets_a_framable_partitioned_cookie_and_ignores_body_uids() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-1", None).await;
    let (status, headers, body) = h
        .send(json_request(
            "POST",
            "/auth/pi",
            json!({"accessToken": token, "uid": "attacker", "username": "mallory"}),
            &[],
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Identity from Pi's /me, not from the body.
    assert_eq!(body["uid"], "pioneer-1");
    assert_eq!(body["username"], "user_pioneer-1");
    assert!(
        body["scopes"]
            .as_array()
            .unwrap()
            .iter()
            .any(|s| s == "payments")
    );
    let cookie = set_cookie(&headers);
    for attr in [
        "SameSite=None",
        "Secure",
        "HttpOnly",
        "Partitioned",
        "Path=/",
        "Max-Age=",
    ] {
        assert!(cookie.contains(attr), "{attr} missing from {cookie}");
    }
    assert!(cookie.starts_with("pi_session="), "{cookie}");
    // Framable by Pi: no X-Frame-Options, CSP frame-ancestors naming Pi and the app.
    assert!(headers.get(header::X_FRAME_OPTIONS).is_none());
    let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
    assert!(csp.starts_with("frame-ancestors "), "{csp}");
    assert!(
        csp.contains("https://sandbox.minepi.com") && csp.contains(APP_ORIGIN),
        "{csp}"
    );
    assert_eq!(headers[header::CACHE_CONTROL], "no-store");

    // The ledger knows the Pioneer by Pi's uid only.
    let pioneer = h
        .ledger
        .pioneer(&Uid::parse("pioneer-1").unwrap())
        .await
        .unwrap();
    assert_eq!(pioneer.unwrap().username.as_deref(), Some("user_pioneer-1"));
    assert!(
        h.ledger
            .pioneer(&Uid::parse("attacker").unwrap())
            .await
            .unwrap()
            .is_none()
    );
    // The session id is stored hashed, never as the cookie's value.
    let pair = cookie_pair(&headers);
    let value = pair.split_once('=').unwrap().1.to_string();
    let stored: Vec<String> = sqlx::query_scalar("SELECT id_hash FROM sessions")
        .fetch_all(h.ledger.pool())
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_ne!(stored[0], value);

    // The cookie authenticates GET /me.
    let (status, _, me) = h
        .send(bare_request("GET", "/me", &[("cookie", &pair)]))
        .await;
    assert_eq!(status, StatusCode::OK, "{me}");
    assert_eq!(me["uid"], "pioneer-1");
    h.finish().await;
}

#[tokio::test]
async fn bearer_header_signs_in_and_verifications_are_cached_until_valid_until() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-2", None).await;
    let auth = format!("Bearer {token}");
    let (status, headers, body) = h
        .send(bare_request(
            "POST",
            "/auth/pi",
            &[("authorization", &auth)],
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["uid"], "pioneer-2");
    assert!(set_cookie(&headers).contains("Partitioned"));
    for _ in 0..3 {
        let (status, _, me) = h
            .send(bare_request("GET", "/me", &[("authorization", &auth)]))
            .await;
        assert_eq!(status, StatusCode::OK);
        assert_eq!(me["uid"], "pioneer-2");
    }
    assert_eq!(
        h.sim_calls("me").await,
        1,
        "one /v2/me call per token lifetime"
    );

    // A new process (empty memory cache) finds the verification in the sessions table.
    let fresh = pi_payments_core::pioneer::PioneerAuth::new(
        h.ledger.clone(),
        pi_client(&h),
        std::time::Duration::from_secs(60),
    );
    let again = fresh
        .verify_token(&AccessToken::new(&token).unwrap())
        .await
        .unwrap();
    assert_eq!(again.uid.as_str(), "pioneer-2");
    assert_eq!(h.sim_calls("me").await, 1);
    h.finish().await;
}

#[tokio::test]
async fn expired_and_unknown_tokens_get_401() {
    let h = Harness::sqlite().await;
    let expired = h.token("pioneer-3", Some(-60)).await;
    for token in [expired.as_str(), "not-a-token-pi-issued"] {
        let (status, headers, body) = h.post_sign_in(token).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{body}");
        assert_eq!(body["error"], "invalid_token");
        assert!(
            body["message"]
                .as_str()
                .unwrap()
                .contains("Pi.authenticate")
        );
        assert!(headers.get(header::SET_COOKIE).is_none());
        let auth = format!("Bearer {token}");
        let (status, _, _) = h
            .send(bare_request("GET", "/me", &[("authorization", &auth)]))
            .await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
    }
    // An oversized body is a JSON 413.
    let big = json!({"accessToken": "x".repeat(70 * 1024)});
    let (status, _, body) = h.send(json_request("POST", "/auth/pi", big, &[])).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{body}");
    assert_eq!(body["error"], "payload_too_large");
    // No credential at all, or a cookie we never issued.
    let (status, _, body) = h.send(bare_request("GET", "/me", &[])).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "not_signed_in");
    let forged = format!("pi_session={}", "x".repeat(43));
    let (status, _, body) = h
        .send(bare_request("GET", "/me", &[("cookie", &forged)]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(body["error"], "session_expired");
    h.finish().await;
}

#[tokio::test]
async fn a_pi_outage_is_503_not_401() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-4", None).await;
    h.faults(json!({"fail_rate": 1.0, "endpoints": ["me"]}))
        .await;
    let (status, headers, body) = h.post_sign_in(&token).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert_eq!(body["error"], "pi_unavailable");
    assert!(headers.get(header::RETRY_AFTER).is_some());
    // Dropped connections too.
    h.faults(json!({"fail_rate": 0.0, "drop_rate": 1.0, "endpoints": ["me"]}))
        .await;
    let auth = format!("Bearer {token}");
    let (status, _, body) = h
        .send(bare_request("GET", "/me", &[("authorization", &auth)]))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    // Pi back: the same token works.
    h.faults(json!({"drop_rate": 0.0})).await;
    let (status, _, body) = h
        .send(bare_request("GET", "/me", &[("authorization", &auth)]))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.finish().await;
}

#[tokio::test]
async fn logout_clears_the_cookie_and_ends_the_session() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-5", None).await;
    let pair = h.sign_in(&token).await;
    let headers = [("cookie", pair.as_str()), ("origin", APP_ORIGIN)];
    let (status, resp_headers, body) = h.send(bare_request("POST", "/auth/logout", &headers)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let cleared = set_cookie(&resp_headers);
    assert!(
        cleared.contains("Max-Age=0") && cleared.contains("Partitioned"),
        "{cleared}"
    );
    let (status, _, _) = h
        .send(bare_request("GET", "/me", &[("cookie", &pair)]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    // Signing in again replaces an old cookie's session.
    let first = h.sign_in(&token).await;
    let (status, headers2, _) = h
        .send(json_request(
            "POST",
            "/auth/pi",
            json!({"accessToken": token}),
            &[("cookie", &first), ("origin", APP_ORIGIN)],
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_ne!(cookie_pair(&headers2), first);
    let (status, _, _) = h
        .send(bare_request("GET", "/me", &[("cookie", &first)]))
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    h.finish().await;
}

#[tokio::test]
async fn approve_path_takes_the_header_token_or_the_cookie_sessions_uid() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-6", None).await;
    let pair = h.sign_in(&token).await;
    let mut with_cookie = HeaderMap::new();
    with_cookie.insert(header::COOKIE, HeaderValue::from_str(&pair).unwrap());
    // The session names its Pioneer; it holds no token to hand out.
    let found = approve_credential_for_request(&h.state.auth, &with_cookie)
        .await
        .unwrap();
    assert_eq!(
        found,
        ApproveCredential::Session(Uid::parse("pioneer-6").unwrap())
    );
    let mut with_bearer = HeaderMap::new();
    with_bearer.insert(
        header::AUTHORIZATION,
        HeaderValue::from_static("Bearer other-token"),
    );
    let found = approve_credential_for_request(&h.state.auth, &with_bearer)
        .await
        .unwrap();
    assert!(
        matches!(&found, ApproveCredential::AccessToken(t) if t.expose() == "other-token"),
        "{found:?}"
    );
    let none = approve_credential_for_request(&h.state.auth, &HeaderMap::new())
        .await
        .unwrap();
    assert_eq!(none, ApproveCredential::Missing);
    // A session that ended names nobody.
    let headers = [("cookie", pair.as_str()), ("origin", APP_ORIGIN)];
    let (status, _, _) = h.send(bare_request("POST", "/auth/logout", &headers)).await;
    assert_eq!(status, StatusCode::OK);
    let ended = approve_credential_for_request(&h.state.auth, &with_cookie)
        .await
        .unwrap();
    assert_eq!(ended, ApproveCredential::Missing);
    h.finish().await;
}

#[tokio::test]
async fn signing_in_again_and_again_keeps_a_bounded_number_of_sessions() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-many", None).await;
    let auth = format!("Bearer {token}");
    let sign_ins = pi_payments_core::ledger::MAX_SESSIONS_PER_PIONEER + 15;
    let mut cookies = Vec::new();
    for _ in 0..sign_ins {
        let (status, headers, body) = h
            .send(bare_request(
                "POST",
                "/auth/pi",
                &[("authorization", &auth)],
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        cookies.push(set_cookie(&headers));
    }
    let kept: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sessions WHERE uid = 'pioneer-many'")
        .fetch_one(h.ledger.pool())
        .await
        .unwrap();
    assert_eq!(kept, pi_payments_core::ledger::MAX_SESSIONS_PER_PIONEER);
    h.finish().await;
}
