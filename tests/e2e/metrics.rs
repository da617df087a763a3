//! Prometheus metrics: the API's `GET /metrics` is text a Prometheus parser reads, counts a
//! callback by its route template and a job's call to Pi by its endpoint template, and shows
//! no id, uid or secret; a `pi-payments worker` process serves `/healthz`, `/readyz` and
//! `/metrics` on `WORKER_ADDR`.
//!
//! The recorder is per process and the tests of this binary run side by side, so counters are
//! compared before and after (they only grow) and the ledger gauges are polled.

use crate::support::prometheus::{Exposition, parse};
use crate::support::{APP_API_TOKEN, DEADLINE, Harness, Options, RemotePi, Stack};
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// `GET url`: status, content type and body.
async fn fetch(url: &str) -> (u16, String, String) {
    let res = reqwest::get(url).await.unwrap();
    let status = res.status().as_u16();
    let content_type = res
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (status, content_type, res.text().await.unwrap())
}

/// `GET {base}/metrics`, parsed (strictly: see `support::prometheus`); the raw text too.
async fn scrape(base: &str) -> (Exposition, String) {
    let (status, content_type, text) = fetch(&format!("{base}/metrics")).await;
    assert_eq!(status, 200, "{text}");
    assert!(content_type.starts_with("text/plain"), "{content_type}");
    let page = parse(&text).unwrap_or_else(|e| panic!("not Prometheus text: {e}\n{text}"));
    (page, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_metrics_count_callbacks_and_pi_calls_by_template_and_leak_nothing() {
    pi_payments_core::pi_client::install_crypto_provider();
    let sim = pi_sim::start(pi_sim::SimConfig {
        api_key: Some(format!(
            "metrics-test-key-{}",
            pi_payments_core::ids::random_alnum(16)
        )),
        ..pi_sim::SimConfig::default()
    })
    .await
    .unwrap();
    let pi = RemotePi::of(&sim);
    let h = Harness::start(
        Stack::Embedded,
        Options {
            remote_pi: Some(pi.clone()),
            ..Options::default()
        },
    )
    .await
    .unwrap();
    let approve_callback = [
        ("method", "POST"),
        ("route", "/pi_payment/approve"),
        ("status", "202"),
    ];
    let approve_at_pi = [
        ("method", "POST"),
        ("endpoint", "/v2/payments/{id}/approve"),
        ("status", "200"),
    ];
    let approve_jobs = [("kind", "approve"), ("outcome", "ok")];
    let (before, _) = scrape(&h.api).await;

    let uid = format!("metrics-pioneer-{}", pi_payments_core::ids::random_alnum(8));
    let payment = h.purchase(&uid, 1).await;
    // An unknown path and an odd method: one `unmatched` series and `OTHER`, never the path.
    let probe = pi_payments_core::ids::random_alnum(24);
    let odd = h
        .http
        .request(
            reqwest::Method::from_bytes(b"BREW").unwrap(),
            format!("{}/no-such-route/{probe}", h.api),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(odd.status().as_u16(), 404);

    // The ledger gauges are read at most every few seconds: poll until they show the payment.
    let start = Instant::now();
    let (after, text) = loop {
        let (after, text) = scrape(&h.api).await;
        if after.value("pi_payments_payments", &[("state", "completed")]) >= 1.0 {
            break (after, text);
        }
        assert!(
            start.elapsed() < DEADLINE,
            "payments{{state=completed}} never showed the payment:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };

    let grew = |name: &str, labels: &[(&str, &str)]| {
        after.value(name, labels) - before.value(name, labels)
    };
    assert!(
        grew("pi_payments_http_requests_total", &approve_callback) >= 1.0,
        "the approve callback is not counted:\n{text}"
    );
    assert!(
        grew(
            "pi_payments_http_requests_total",
            &[
                ("method", "POST"),
                ("route", "/api/pi_payment/complete"),
                ("status", "202")
            ]
        ) >= 1.0,
        "the complete callback is not counted:\n{text}"
    );
    assert!(
        grew("pi_payments_pi_requests_total", &approve_at_pi) >= 1.0,
        "the approve job's call to Pi is not counted:\n{text}"
    );
    assert!(
        grew("pi_payments_jobs_total", &approve_jobs) >= 1.0,
        "the approve job is not counted:\n{text}"
    );
    assert!(
        after.value("pi_payments_job_duration_seconds_count", &approve_jobs) >= 1.0,
        "{text}"
    );
    assert!(
        after.value(
            "pi_payments_limiter_wait_seconds_count",
            &[("upstream", "pi")]
        ) >= 1.0,
        "{text}"
    );
    assert!(
        grew(
            "pi_payments_horizon_requests_total",
            &[("endpoint", "/transactions/{hash}")]
        ) >= 1.0,
        "the complete job's look at the chain is not counted:\n{text}"
    );
    assert!(
        after.value("pi_payments_pi_rate_limit", &[]) > 0.0,
        "{text}"
    );
    assert!(
        grew(
            "pi_payments_http_requests_total",
            &[
                ("method", "OTHER"),
                ("route", "unmatched"),
                ("status", "404")
            ]
        ) >= 1.0,
        "{text}"
    );
    // Queue depth per kind is there (read from the embedded queue at scrape time).
    assert!(
        after.has(
            "pi_payments_queue_depth",
            &[("kind", "approve"), ("state", "ready")]
        ),
        "{text}"
    );
    // Every metric says what it is.
    for name in [
        "pi_payments_http_requests_total",
        "pi_payments_pi_requests_total",
        "pi_payments_jobs_total",
        "pi_payments_payments",
    ] {
        assert!(after.help.contains_key(name), "no HELP for {name}");
    }
    // Route labels are templates: no id ever becomes a label.
    for route in after.label_values("route") {
        assert!(
            route == "unmatched" || !route.contains(&payment),
            "route label {route}"
        );
    }

    // Nothing secret or personal: no ids, uid, key, token or wallet.
    let order_ids: Vec<String> = text
        .match_indices("ord_")
        .map(|(i, _)| text[i..].chars().take(30).collect())
        .collect();
    assert!(order_ids.is_empty(), "order ids in /metrics: {order_ids:?}");
    for secret in [
        payment.as_str(),
        uid.as_str(),
        pi.api_key.as_str(),
        APP_API_TOKEN,
        pi.app_wallet.as_str(),
        probe.as_str(),
    ] {
        assert!(!text.contains(secret), "/metrics shows {secret:?}");
    }

    h.stop().await;
    sim.shutdown().await;
}

/// Kills the child process if the test fails before stopping it.
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

#[test]
fn a_worker_process_serves_probes_and_metrics_on_worker_addr() {
    pi_payments_core::pi_client::install_crypto_provider();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let api_key = format!(
        "worker-probe-key-{}",
        pi_payments_core::ids::random_alnum(16)
    );
    let sim = runtime
        .block_on(pi_sim::start(pi_sim::SimConfig {
            api_key: Some(api_key.clone()),
            ..pi_sim::SimConfig::default()
        }))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let admin_token = "worker-probe-admin-token-0123456789";
    let webhook_secret = "worker-probe-webhook-secret-0123456789";
    let mut child = Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .arg("worker")
        .env_clear()
        .env("RUST_LOG", "info")
        .env("WORKER_ADDR", "127.0.0.1:0")
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("ledger.db").display()),
        )
        .env("PI_API_KEY", &api_key)
        .env("PI_API_BASE_URL", &sim.platform_url)
        .env("PI_HORIZON_URL", &sim.horizon_url)
        .env("PI_NETWORK", &sim.network_passphrase)
        .env("PI_APP_WALLET", &sim.app_wallet_public_key)
        .env("PI_RATE_LIMIT", "7")
        .env("ADMIN_TOKEN", admin_token)
        .env("APP_WEBHOOK_URL", "http://127.0.0.1:9/hooks")
        .env("APP_WEBHOOK_SECRET", webhook_secret)
        .current_dir(dir.path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Logs read on a thread (the child must never block on a full pipe) until the address.
    let stderr = child.stderr.take().unwrap();
    let (line_tx, line_rx) = std::sync::mpsc::channel::<String>();
    let reader = std::thread::spawn(move || {
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
    let probes = loop {
        let Ok(line) = line_rx.recv_timeout(Duration::from_secs(60)) else {
            let _ = child.kill();
            panic!("the worker never said where its probes listen");
        };
        if line.contains("worker probes listening")
            && let Some(addr) = line.split("addr=").nth(1)
        {
            break format!("http://{}", addr.split_whitespace().next().unwrap());
        }
    };

    let _guard = KillOnPanic(child.id());
    runtime.block_on(async {
        let (status, _, body) = fetch(&format!("{probes}/healthz")).await;
        assert_eq!(status, 200, "{body}");
        let (status, _, body) = fetch(&format!("{probes}/readyz")).await;
        assert_eq!(status, 200, "{body}");
        let ready: serde_json::Value = serde_json::from_str(&body).unwrap();
        assert_eq!(ready["ledger"], "ok", "{body}");
        assert_eq!(ready["queue"], "ok", "{body}");
        let (status, _, _) = fetch(&format!("{probes}/nothing-here")).await;
        assert_eq!(status, 404);

        let (metrics, text) = scrape(&probes).await;
        // This process's own limit, and the ledger and queue gauges read at scrape time.
        assert_eq!(
            metrics.value("pi_payments_pi_rate_limit", &[]),
            7.0,
            "{text}"
        );
        assert!(
            metrics.has("pi_payments_payments", &[("state", "completed")]),
            "{text}"
        );
        assert!(
            metrics.has("pi_payments_payouts", &[("state", "needs_attention")]),
            "{text}"
        );
        assert!(
            metrics.has(
                "pi_payments_queue_depth",
                &[("kind", "payout"), ("state", "scheduled")]
            ),
            "{text}"
        );
        assert!(
            metrics.value(
                "pi_payments_http_requests_total",
                &[("route", "/readyz"), ("status", "200")]
            ) >= 1.0,
            "{text}"
        );
        for secret in [
            api_key.as_str(),
            admin_token,
            webhook_secret,
            sim.app_wallet_public_key.as_str(),
        ] {
            assert!(!text.contains(secret), "/metrics shows {secret:?}");
        }
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let logs = reader.join().unwrap();
    assert!(
        exit.success(),
        "SIGTERM should stop the worker: {exit:?}\n{logs}"
    );
    runtime.block_on(sim.shutdown());
}
