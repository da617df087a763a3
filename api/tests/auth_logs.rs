//! No access token, session id or admin token reaches the logs of a run through sign-in,
//! cookies, Bearer calls, ad claims, CSRF refusals, admin checks and a Pi outage. Alone in its
//! binary: tracing's per-callsite interest is global, so other tests running on other threads
//! without a subscriber could hide events from this one's.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

mod auth_support;

use auth_support::*;
use axum::http::StatusCode;
use serde_json::json;
use std::io::Write;
use std::sync::{Arc, Mutex};

/// A `MakeWriter` into a shared buffer, to read what was logged.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Captured {
    type Writer = Captured;
    fn make_writer(&'a self) -> Captured {
        self.clone()
    }
}

#[tokio::test]
async fn no_token_session_id_or_admin_token_reaches_the_logs() {
    let captured = Captured::default();
    let subscriber = tracing_subscriber::fmt()
        .with_env_filter("pi_payments_api=trace,pi_payments_core=trace,tower_http=trace")
        .with_writer(captured.clone())
        .with_ansi(false)
        .finish();
    // current-thread runtime: every task of this test logs through this subscriber.
    let _guard = tracing::subscriber::set_default(subscriber);
    let h = Harness::sqlite().await;
    let token = h.token("pioneer-7", None).await;
    let pair = h.sign_in(&token).await;
    let session_value = pair.split_once('=').unwrap().1.to_string();
    let auth = format!("Bearer {token}");
    h.send(bare_request("GET", "/me", &[("cookie", &pair)]))
        .await;
    h.send(bare_request("GET", "/me", &[("authorization", &auth)]))
        .await;
    let ad = h.set_ad(None, Some("granted")).await;
    let (status, _) = h.claim(&token, &ad).await;
    assert_eq!(status, StatusCode::OK);
    h.send(bare_request(
        "POST",
        "/whoami",
        &[("cookie", &pair), ("origin", "https://evil.example")],
    ))
    .await;
    let wrong_admin = format!("Bearer {ADMIN_TOKEN}x");
    h.send(bare_request(
        "GET",
        "/admin/ping",
        &[("authorization", &wrong_admin)],
    ))
    .await;
    let right_admin = format!("Bearer {ADMIN_TOKEN}");
    h.send(bare_request(
        "GET",
        "/admin/ping",
        &[("authorization", &right_admin)],
    ))
    .await;
    // An outage path logs Pi's error.
    h.faults(json!({"fail_rate": 1.0, "endpoints": ["me"]}))
        .await;
    let other = h.token("pioneer-8", None).await;
    let (status, _, _) = h
        .send(json_request(
            "POST",
            "/auth/pi",
            json!({"accessToken": other}),
            &[],
        ))
        .await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    h.finish().await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(
        logs.contains("Pioneer signed in"),
        "the capture works: {logs}"
    );
    for secret in [
        token.as_str(),
        other.as_str(),
        session_value.as_str(),
        ADMIN_TOKEN,
    ] {
        assert!(!logs.contains(secret), "a secret reached the logs:\n{logs}");
    }
}
