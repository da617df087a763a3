//! Access tokens never reach the logs: run the real binary at debug level, send callbacks
//! carrying a token in the body and in an Authorization header, stop it with SIGTERM, and
//! search everything it printed.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::Duration;

/// The binary running on embedded defaults in a scratch directory, its logs (stderr) drained
/// on a thread so that it never blocks on a full pipe.
struct Service {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: std::thread::JoinHandle<String>,
    /// What it printed on stdout so far.
    printed: String,
    /// Its API's base URL.
    api: String,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Start it with `RUST_LOG` set to `log` (or unset) and wait until it prints its API's URL.
    fn start(log: Option<&str>) -> Service {
        let dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_pi-payments"));
        command
            .env_clear()
            .env("BIND_ADDR", "127.0.0.1:0")
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(log) = log {
            command.env("RUST_LOG", log);
        }
        let mut child = command.spawn().unwrap();
        let mut stderr = child.stderr.take().unwrap();
        let stderr = std::thread::spawn(move || {
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
        Service {
            child,
            stdout,
            stderr,
            printed,
            api,
            _dir: dir,
        }
    }

    /// SIGTERM; check it exits successfully; return (stdout, logs).
    fn stop(mut self) -> (String, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = self.child.wait().unwrap();
        let mut rest = String::new();
        let _ = self.stdout.read_to_string(&mut rest);
        self.printed.push_str(&rest);
        let logs = self.stderr.join().unwrap();
        assert!(
            exit.success(),
            "SIGTERM should stop the service cleanly: {exit:?}\n{logs}"
        );
        (self.printed, logs)
    }
}

#[test]
fn tokens_never_appear_in_the_logs_and_sigterm_stops_cleanly() {
    let service = Service::start(Some("debug"));
    let api = service.api.clone();
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

    let (printed, logs) = service.stop();
    assert!(
        logs.contains("logTestPayment0000000000000001"),
        "the payment id is logged"
    );
    for secret in ["body-token-SECRET-1", "header-token-SECRET-2", "SECRET"] {
        assert!(!logs.contains(secret), "{secret} leaked into the logs");
        assert!(!printed.contains(secret), "{secret} leaked onto stdout");
    }
}

/// A start and a stop on the defaults, with nothing wrong, log no warning and no error: an
/// operator learns to ignore a log that warns at every start.
#[test]
fn a_clean_start_and_stop_logs_no_warnings() {
    let service = Service::start(None);
    // Give every worker time to start (and to say so).
    std::thread::sleep(Duration::from_secs(1));
    let (_, logs) = service.stop();
    let noisy: Vec<&str> = logs
        .lines()
        .filter(|line| line.contains("WARN") || line.contains("ERROR"))
        .collect();
    assert!(
        noisy.is_empty(),
        "warnings on a clean run:\n{}",
        noisy.join("\n")
    );
    assert!(
        logs.contains("API listening"),
        "the logs are captured: {logs}"
    );
}
