//! Operator routes behind ADMIN_TOKEN: missing or wrong token 401 (JSON), right token 200,
//! no token configured closes them to everyone; the startup rule.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod auth_support;

use auth_support::*;
use axum::http::{StatusCode, header};
use pi_payments_api::admin::check_startup;
use pi_payments_api::auth::{AuthConfig, ConfigError};

#[tokio::test]
async fn operator_routes_need_the_admin_token() {
    let h = Harness::sqlite().await;
    let wrong = format!("Bearer {ADMIN_TOKEN}-nope");
    let short = "Bearer test-admin";
    let pioneer = h.token("pioneer-a1", None).await;
    let pioneer_bearer = format!("Bearer {pioneer}");
    for (method, path) in [("GET", "/admin/ping"), ("POST", "/payouts")] {
        for headers in [
            vec![],
            vec![("authorization", wrong.as_str())],
            vec![("authorization", short)],
            vec![("authorization", pioneer_bearer.as_str())],
            vec![("authorization", "Basic dGVzdA==")],
        ] {
            let (status, resp_headers, body) = h.send(bare_request(method, path, &headers)).await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{path} {headers:?}: {body}"
            );
            assert_eq!(body["error"], "admin_unauthorized");
            assert!(body["message"].as_str().unwrap().contains("ADMIN_TOKEN"));
            assert!(!body.to_string().contains(ADMIN_TOKEN));
            assert_eq!(resp_headers[header::WWW_AUTHENTICATE], "Bearer");
        }
        let right = format!("Bearer {ADMIN_TOKEN}");
        let (status, _, body) = h
            .send(bare_request(method, path, &[("authorization", &right)]))
            .await;
        assert_eq!(status, StatusCode::OK, "{path}: {body}");
        assert_eq!(body["ok"], true);
    }
    h.finish().await;
}

#[tokio::test]
async fn without_an_admin_token_operator_routes_are_closed() {
    let h = Harness::sqlite_with(AuthConfig {
        admin_token: None,
        ..default_config()
    })
    .await;
    for headers in [
        vec![],
        vec![("authorization", "Bearer ")],
        vec![("authorization", "Bearer anything")],
    ] {
        let (status, _, body) = h.send(bare_request("GET", "/admin/ping", &headers)).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED);
        assert_eq!(body["error"], "admin_disabled");
    }
    h.finish().await;
}

#[test]
fn a_payout_wallet_needs_an_admin_token() {
    assert_eq!(
        check_startup(true, None),
        Err(ConfigError::AdminTokenRequired)
    );
    assert_eq!(
        check_startup(true, Some("")),
        Err(ConfigError::AdminTokenRequired)
    );
    assert!(check_startup(true, Some(ADMIN_TOKEN)).is_ok());
    assert!(check_startup(false, None).is_ok());
    let message = check_startup(true, None).unwrap_err().to_string();
    assert!(
        message.contains("ADMIN_TOKEN") && message.contains("openssl rand"),
        "{message}"
    );
}
