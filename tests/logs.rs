//! Access tokens never reach the logs: run the real binary at debug level, send callbacks
//! carrying a token in the body and in an Authorization header, stop it with SIGTERM, and
//! search everything it printed.

use std::io::{BufRead, BufReader, Read};
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn tokens_never_appear_in_the_logs_and_sigterm_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .env_clear()
        .env("BIND_ADDR", "127.0.0.1:0")
        .env("RUST_LOG", "debug")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // Drain stderr on a thread so the child never blocks on a full pipe.
    let mut stderr = child.stderr.take().unwrap();
    let err_reader = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut printed = String::new();
    let api = loop {
        let mut line = String::new();
        assert!(
            stdout.read_line(&mut line).unwrap() > 0,
            "the service exited early: {printed}"
        );
        printed.push_str(&line);
        if let Some(url) = line.trim().strip_prefix("pi-payments API:") {
            break url.trim().to_string();
        }
    };

    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        pi_payments_core::pi_client::install_crypto_provider();
        let http = reqwest::Client::new();
        let body =
            r#"{"paymentId":"logTestPayment0000000000000001","accessToken":"body-token-SECRET-1"}"#;
        let res = http
            .post(format!("{api}/pi_payment/approve"))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        let res = http
            .post(format!("{api}/api/pi_payment/approve"))
            .header("authorization", "Bearer header-token-SECRET-2")
            .header("content-type", "application/json")
            .body(r#"{"paymentId":"logTestPayment0000000000000002"}"#)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        // Let the approve jobs run (they send the tokens to pi-sim's /v2/me).
        tokio::time::sleep(Duration::from_secs(2)).await;
    });

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = child.wait().unwrap();
    let mut rest = String::new();
    let _ = stdout.read_to_string(&mut rest);
    printed.push_str(&rest);
    let logs = err_reader.join().unwrap();
    assert!(
        exit.success(),
        "SIGTERM should stop the service cleanly: {exit:?}\n{logs}"
    );
    assert!(
        logs.contains("logTestPayment0000000000000001"),
        "the payment id is logged"
    );
    for secret in ["body-token-SECRET-1", "header-token-SECRET-2", "SECRET"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(!printed.contains(secret), "{secret} leaked onto stdout");
    }
}
