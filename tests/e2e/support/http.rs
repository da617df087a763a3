//! Plain HTTP against a running service, for the tests that talk to it with their own headers
//! (cookies, origins, bearer tokens): one request shape and one wait for a payment's state.

use reqwest::header::HeaderMap;
use serde_json::Value;
use std::time::Duration;

/// An answer of the service.
pub struct Answer {
    pub status: u16,
    pub headers: HeaderMap,
    /// The JSON body (Null when the body is not JSON).
    pub body: Value,
    /// The body as received, for tests that search it.
    pub text: String,
}

/// `method url` with extra `headers` and an optional JSON `body`.
pub async fn send(
    http: &reqwest::Client,
    method: reqwest::Method,
    url: String,
    headers: &[(&str, &str)],
    body: Option<Value>,
) -> Answer {
    let mut req = http.request(method, url);
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    if let Some(body) = body {
        req = req.json(&body);
    }
    let res = req.send().await.unwrap();
    let status = res.status().as_u16();
    let headers = res.headers().clone();
    let text = res.text().await.unwrap_or_default();
    Answer {
        status,
        headers,
        body: serde_json::from_str(&text).unwrap_or(Value::Null),
        text,
    }
}

/// Polls `GET {api}/payments/{payment}` (as the backend holding `app_api_token`) until its
/// state is `state` (30 s at most).
pub async fn wait_for_payment_state(
    http: &reqwest::Client,
    api: &str,
    app_api_token: &str,
    payment: &str,
    state: &str,
) {
    let mut last = Value::Null;
    let auth = format!("Bearer {app_api_token}");
    for _ in 0..300 {
        let url = format!("{api}/payments/{payment}");
        let got = send(
            http,
            reqwest::Method::GET,
            url,
            &[("authorization", &auth)],
            None,
        )
        .await;
        if got.body["payment"]["state"] == state {
            return;
        }
        last = got.body;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("payment {payment} never reached {state}: {last}");
}
