//! Secrets never reach the logs (issue 8): run the real binary at debug level against an
//! in-test pi-sim with every secret configured (Pi API key, wallet seed, admin token, webhook
//! secret), take it through sign-in, a cookie-approved and a body-token payment to completion,
//! an ad claim, operator calls and refused requests, stop it with SIGTERM, and search
//! everything it printed for each secret and every access token and session id it saw.

use crate::support::http::{send, wait_for_payment_state};
use pi_sim::control_client::{SimControl, U2aRequest};
use serde_json::{Value, json};
use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const APP_ORIGIN: &str = "https://app.example.com";
const API_KEY: &str = "sim-api-key-SECRET-5f1c0a9d7e";
const ADMIN_TOKEN: &str = "admin-token-SECRET-8c2d41f07b3e";
const APP_API_TOKEN: &str = "backend-token-SECRET-5e9a20c4d71b";
const WEBHOOK_SECRET: &str = "webhook-secret-SECRET-3a9e6b0c";
const BOGUS_TOKEN: &str = "bogus-access-token-SECRET-77d1";

/// Kills the service if the test fails half-way, so that no process outlives it.
struct KillOnPanic(u32);

impl Drop for KillOnPanic {
    fn drop(&mut self) {
        if std::thread::panicking() {
            let _ = Command::new("kill")
                .args(["-KILL", &self.0.to_string()])
                .status();
        }
    }
}

/// A webhook receiver that answers 200 to everything and counts the requests.
async fn webhook_sink() -> (String, Arc<AtomicUsize>) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hooks/pi", listener.local_addr().unwrap());
    let count = Arc::new(AtomicUsize::new(0));
    let seen = count.clone();
    tokio::spawn(async move {
        while let Ok((mut conn, _)) = listener.accept().await {
            let seen = seen.clone();
            tokio::spawn(async move {
                let mut buf = vec![0u8; 64 * 1024];
                // Webhook bodies are small: one read holds the request.
                if conn.read(&mut buf).await.unwrap_or(0) > 0 {
                    seen.fetch_add(1, Ordering::SeqCst);
                }
                let _ = conn
                    .write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n")
                    .await;
            });
        }
    });
    (url, count)
}

struct Client {
    http: reqwest::Client,
    api: String,
    control: SimControl,
    /// Every answer body of the API, to check that none carries a secret either.
    bodies: std::sync::Mutex<Vec<String>>,
}

impl Client {
    async fn call(
        &self,
        method: reqwest::Method,
        url: String,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, reqwest::header::HeaderMap, Value) {
        let url_is_api = url.starts_with(&self.api);
        let answer = send(&self.http, method, url, headers, body).await;
        if url_is_api {
            self.bodies.lock().unwrap().push(answer.text);
        }
        (answer.status, answer.headers, answer.body)
    }

    async fn api(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> (u16, Value) {
        let (status, _, body) = self
            .call(method, format!("{}{path}", self.api), headers, body)
            .await;
        (status, body)
    }

    async fn wait_for_state(&self, payment: &str, state: &str) {
        wait_for_payment_state(&self.http, &self.api, APP_API_TOKEN, payment, state).await;
    }

    /// Order, payment in the (simulated) Pi Browser, approve with `approve_headers` and
    /// `approve_body`, sign, complete; waits for `completed`.
    async fn pay(&self, uid: &str, approve_headers: &[(&str, &str)], token: Option<&str>) {
        let (status, order) = self
            .api(
                reqwest::Method::POST,
                "/orders",
                &[],
                Some(json!({"productId": "coffee"})),
            )
            .await;
        assert_eq!(status, 201, "{order}");
        let request = U2aRequest::new(uid, "1.5")
            .memo("coffee")
            .metadata(order["metadata"].clone());
        let id = self.control.create_u2a_id(&request).await.unwrap();
        let mut body = json!({"paymentId": id});
        if let Some(token) = token {
            body["accessToken"] = json!(token);
        }
        let (status, answer) = self
            .api(
                reqwest::Method::POST,
                "/pi_payment/approve",
                approve_headers,
                Some(body),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        self.wait_for_state(&id, "approved").await;
        let txid = self.control.submit(&id).await.unwrap();
        let (status, answer) = self
            .api(
                reqwest::Method::POST,
                "/pi_payment/complete",
                &[],
                Some(json!({"paymentId": id, "txid": txid})),
            )
            .await;
        assert_eq!(status, 202, "{answer}");
        self.wait_for_state(&id, "completed").await;
    }
}

#[test]
fn no_secret_appears_in_the_logs_of_a_full_run() {
    pi_payments_core::pi_client::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let sim = runtime
        .block_on(pi_sim::start(pi_sim::SimConfig {
            api_key: Some(API_KEY.to_string()),
            ..pi_sim::SimConfig::default()
        }))
        .unwrap();
    let (webhook_url, webhooks) = runtime.block_on(webhook_sink());
    let seed = sim.app_wallet_seed.clone();
    let dir = tempfile::tempdir().unwrap();

    let mut child = Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .arg("serve")
        .env_clear()
        .env("RUST_LOG", "debug")
        .env("BIND_ADDR", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("ledger.db").display()),
        )
        .env("PI_API_KEY", API_KEY)
        .env("PI_API_BASE_URL", &sim.platform_url)
        .env("PI_HORIZON_URL", &sim.horizon_url)
        .env("PI_NETWORK", &sim.network_passphrase)
        .env("PI_APP_WALLET", &sim.app_wallet_public_key)
        .env("PI_WALLET_SEED", &seed)
        .env("ADMIN_TOKEN", ADMIN_TOKEN)
        .env("APP_API_TOKEN", APP_API_TOKEN)
        .env("APP_WEBHOOK_URL", &webhook_url)
        .env("APP_WEBHOOK_SECRET", WEBHOOK_SECRET)
        .env("APP_ORIGINS", APP_ORIGIN)
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let _guard = KillOnPanic(child.id());
    // Read stderr on a thread (the child must never block on a full pipe); lines are passed
    // on until the API's address shows up, and all of them are kept.
    let stderr = child.stderr.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let err_reader = std::thread::spawn(move || {
        let mut all = String::new();
        let mut reader = BufReader::new(stderr);
        let mut line = String::new();
        while reader.read_line(&mut line).unwrap_or(0) > 0 {
            let _ = line_tx.send(line.clone());
            all.push_str(&line);
            line.clear();
        }
        all
    });
    let mut stdout = child.stdout.take().unwrap();
    let out_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let api = loop {
        let line = line_rx
            .recv_timeout(Duration::from_secs(60))
            .expect("the service printed nothing for a minute, or exited");
        if line.contains("API listening")
            && let Some(addr) = line.split("addr=").nth(1)
        {
            break format!("http://{}", addr.split_whitespace().next().unwrap());
        }
    };

    let client = Client {
        http: reqwest::Client::new(),
        api,
        control: SimControl::of(&sim).unwrap(),
        bodies: std::sync::Mutex::new(Vec::new()),
    };
    let (tokens, session) = runtime.block_on(async {
        let t1 = client.control.token("pioneer-logs").await.unwrap();
        let t2 = client.control.token("pioneer-logs-2").await.unwrap();

        // Sign in; the session cookie then approves a payment on its own.
        let (status, headers, body) = client
            .call(
                reqwest::Method::POST,
                format!("{}/auth/pi", client.api),
                &[("origin", APP_ORIGIN)],
                Some(json!({"accessToken": t1})),
            )
            .await;
        assert_eq!(status, 200, "{body}");
        let cookie = headers["set-cookie"]
            .to_str()
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_string();
        let session = cookie.split_once('=').unwrap().1.to_string();
        client
            .pay(
                "pioneer-logs",
                &[("cookie", &cookie), ("origin", APP_ORIGIN)],
                None,
            )
            .await;
        // A payment approved with the token in the body, one with it in the header.
        client.pay("pioneer-logs-2", &[], Some(&t2)).await;
        let bearer = format!("Bearer {t2}");
        client
            .pay("pioneer-logs-2", &[("authorization", &bearer)], None)
            .await;

        let (status, _) = client
            .api(
                reqwest::Method::GET,
                "/me",
                &[("authorization", &format!("Bearer {t1}"))],
                None,
            )
            .await;
        assert_eq!(status, 200);
        // A token Pi does not know, at sign-in and on an ad claim: 401, nothing logged.
        let (status, _) = client
            .api(
                reqwest::Method::POST,
                "/auth/pi",
                &[],
                Some(json!({"accessToken": BOGUS_TOKEN})),
            )
            .await;
        assert_eq!(status, 401);
        let (status, _) = client
            .api(
                reqwest::Method::POST,
                "/ads/claim",
                &[("authorization", &format!("Bearer {BOGUS_TOKEN}"))],
                Some(json!({"adId": "ad-logs"})),
            )
            .await;
        assert_eq!(status, 401);
        client
            .control
            .set_ad(Some("ad-logs"), Some("granted"))
            .await
            .unwrap();
        let (status, body) = client
            .api(
                reqwest::Method::POST,
                "/ads/claim",
                &[("cookie", &cookie), ("origin", APP_ORIGIN)],
                Some(json!({"adId": "ad-logs"})),
            )
            .await;
        assert_eq!(status, 200, "{body}");

        // Operator calls: the right token, a wrong one, none.
        let admin = format!("Bearer {ADMIN_TOKEN}");
        let (status, _) = client
            .api(
                reqwest::Method::GET,
                "/admin/ping",
                &[("authorization", &admin)],
                None,
            )
            .await;
        assert_eq!(status, 200);
        let (status, _) = client
            .api(
                reqwest::Method::GET,
                "/admin/ping",
                &[("authorization", "Bearer not-the-admin-token-at-all")],
                None,
            )
            .await;
        assert_eq!(status, 401);

        // Let the webhook deliverer send (and so sign) events.
        for _ in 0..100 {
            if webhooks.load(Ordering::SeqCst) > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert!(
            webhooks.load(Ordering::SeqCst) > 0,
            "no webhook was delivered"
        );
        (vec![t1, t2], session)
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let logs = err_reader.join().unwrap();
    let printed = out_reader.join().unwrap();
    runtime.block_on(sim.shutdown());
    assert!(
        exit.success(),
        "SIGTERM should stop cleanly: {exit:?}\n{logs}"
    );
    // The capture works: the run's ordinary lines are there.
    assert!(logs.contains("API listening"), "{logs}");
    assert!(logs.contains("callback"), "{logs}");

    let mut secrets = vec![
        ("the Pi API key", API_KEY.to_string()),
        ("the wallet seed", seed),
        ("the admin token", ADMIN_TOKEN.to_string()),
        ("the app's read token", APP_API_TOKEN.to_string()),
        ("the webhook secret", WEBHOOK_SECRET.to_string()),
        ("an unknown access token", BOGUS_TOKEN.to_string()),
        ("the session id", session),
        ("any test secret", "SECRET".to_string()),
    ];
    for token in tokens {
        secrets.push(("an access token", token));
    }
    let bodies = client.bodies.lock().unwrap().join("\n");
    for (what, secret) in &secrets {
        assert!(!logs.contains(secret.as_str()), "{what} is in the logs");
        assert!(!printed.contains(secret.as_str()), "{what} is on stdout");
    }
    for (what, secret) in &secrets {
        assert!(
            !bodies.contains(secret.as_str()),
            "{what} is in an answer body"
        );
    }
}
