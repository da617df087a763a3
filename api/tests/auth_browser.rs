//! Browser posture: CSRF refusal of cookie mutations from unlisted origins (Bearer and
//! trusted origins pass), CORS preflights with credentials, framing headers everywhere.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod auth_support;

use auth_support::*;
use axum::http::{StatusCode, header};
use pi_payments_api::auth::AuthConfig;
use serde_json::json;

#[tokio::test]
async fn cookie_mutations_need_a_trusted_origin() {
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-b1", None).await;
    let pair = h.sign_in(&token).await;

    // Unlisted origin with the cookie: refused before the handler runs.
    let (status, headers, body) = h
        .send(bare_request(
            "POST",
            "/whoami",
            &[("cookie", &pair), ("origin", "https://evil.example")],
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    assert_eq!(body["error"], "csrf_origin_refused");
    assert!(body["message"].as_str().unwrap().contains("APP_ORIGINS"));
    assert!(headers.get(header::CONTENT_SECURITY_POLICY).is_some());
    // No Origin and no Referer with a cookie: refused too.
    let (status, _, body) = h
        .send(bare_request("POST", "/whoami", &[("cookie", &pair)]))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{body}");
    // The same refusal protects ad claims and logout.
    let (status, _, _) = h
        .send(json_request(
            "POST",
            "/ads/claim",
            json!({"adId": "x"}),
            &[("cookie", &pair), ("origin", "https://evil.example")],
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h
        .send(bare_request(
            "POST",
            "/auth/logout",
            &[("cookie", &pair), ("origin", "https://evil.example")],
        ))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (status, _, _) = h
        .send(bare_request("GET", "/me", &[("cookie", &pair)]))
        .await;
    assert_eq!(status, StatusCode::OK, "the refused logout changed nothing");

    // Listed app origin, Pi's Sandbox, and the API's own origin pass.
    for origin in [
        APP_ORIGIN,
        "https://sandbox.minepi.com",
        "https://api.example.com",
    ] {
        let (status, _, body) = h
            .send(bare_request(
                "POST",
                "/whoami",
                &[("cookie", &pair), ("origin", origin)],
            ))
            .await;
        assert_eq!(status, StatusCode::OK, "{origin}: {body}");
        assert_eq!(body["uid"], "pioneer-b1");
    }
    let referer = format!("{APP_ORIGIN}/shop?item=1");
    let (status, _, _) = h
        .send(bare_request(
            "POST",
            "/whoami",
            &[("cookie", &pair), ("referer", &referer)],
        ))
        .await;
    assert_eq!(status, StatusCode::OK);

    // Bearer requests pass from anywhere (a cross-site page cannot attach the header).
    let auth = format!("Bearer {token}");
    let (status, _, body) = h
        .send(bare_request(
            "POST",
            "/whoami",
            &[
                ("authorization", &auth),
                ("origin", "https://evil.example"),
                ("cookie", &pair),
            ],
        ))
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    // Safe methods are not checked.
    let (status, _, _) = h
        .send(bare_request(
            "GET",
            "/me",
            &[("cookie", &pair), ("origin", "https://evil.example")],
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    h.finish().await;
}

#[tokio::test]
async fn cors_preflight_allows_listed_origins_with_credentials() {
    let h = Harness::sqlite().await;
    let preflight = |origin: &'static str| {
        bare_request(
            "OPTIONS",
            "/auth/pi",
            &[
                ("origin", origin),
                ("access-control-request-method", "POST"),
                (
                    "access-control-request-headers",
                    "authorization,content-type",
                ),
            ],
        )
    };
    let (status, headers, _) = h.send(preflight(APP_ORIGIN)).await;
    assert!(status.is_success(), "{status}");
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP_ORIGIN);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    let allowed = headers[header::ACCESS_CONTROL_ALLOW_HEADERS]
        .to_str()
        .unwrap()
        .to_ascii_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );
    assert!(
        headers[header::ACCESS_CONTROL_ALLOW_METHODS]
            .to_str()
            .unwrap()
            .contains("POST")
    );
    assert!(headers.get(header::X_FRAME_OPTIONS).is_none());

    // An unlisted origin gets no allowance.
    let (_, headers, _) = h.send(preflight("https://evil.example")).await;
    assert!(headers.get(header::ACCESS_CONTROL_ALLOW_ORIGIN).is_none());

    // Simple requests from the listed origin are readable with credentials.
    let token = h.token("pioneer-b2", None).await;
    let (status, headers, _) = h
        .send(json_request(
            "POST",
            "/auth/pi",
            json!({"accessToken": token}),
            &[("origin", APP_ORIGIN)],
        ))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_ORIGIN], APP_ORIGIN);
    assert_eq!(headers[header::ACCESS_CONTROL_ALLOW_CREDENTIALS], "true");
    h.finish().await;
}

#[tokio::test]
async fn every_answer_is_framable_by_pi() {
    let h = Harness::sqlite_with(AuthConfig {
        app_origins: vec![
            "https://shop.example.org".into(),
            "http://localhost:3000".into(),
        ],
        ..default_config()
    })
    .await;
    for req in [
        bare_request("GET", "/me", &[]),
        bare_request("GET", "/no/such/route", &[]),
        bare_request("GET", "/admin/ping", &[]),
    ] {
        let (_, headers, _) = h.send(req).await;
        assert!(headers.get(header::X_FRAME_OPTIONS).is_none());
        let csp = headers[header::CONTENT_SECURITY_POLICY].to_str().unwrap();
        assert_eq!(
            csp,
            "frame-ancestors 'self' https://sandbox.minepi.com https://*.minepi.com https://pinet.com https://*.pinet.com https://shop.example.org http://localhost:3000"
        );
    }
    h.finish().await;
}
