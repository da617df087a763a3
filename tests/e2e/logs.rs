//! Access tokens never reach the logs: run the real binary at debug level, send callbacks
//! carrying a token in the body and in an Authorization header, stop it with SIGTERM, and
//! search everything it printed.

use serde_json::Value;
use std::io::{BufRead, BufReader, Read};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// The binary running on embedded defaults in a scratch directory, its logs (stderr) drained
/// on a thread so that it never blocks on a full pipe.
struct Service {
    child: Child,
    stdout: BufReader<ChildStdout>,
    stderr: std::thread::JoinHandle<String>,
    /// What it logged so far (the thread above appends to it).
    logged: Arc<Mutex<String>>,
    /// What it printed on stdout so far.
    printed: String,
    /// Its API's base URL.
    api: String,
    _dir: tempfile::TempDir,
}

impl Service {
    /// Start it with `RUST_LOG` set to `log` (or unset) and wait until it prints its API's URL.
    fn start(log: Option<&str>) -> Service {
        Service::start_with(log, &[])
    }

    /// [`Service::start`] with more environment variables.
    fn start_with(log: Option<&str>, env: &[(&str, &str)]) -> Service {
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
        command.envs(env.iter().copied());
        let mut child = command.spawn().unwrap();
        let stderr = BufReader::new(child.stderr.take().unwrap());
        let logged = Arc::new(Mutex::new(String::new()));
        let sink = logged.clone();
        let stderr = std::thread::spawn(move || {
            for line in stderr.lines() {
                let Ok(line) = line else { break };
                let mut all = sink.lock().unwrap();
                all.push_str(&line);
                all.push('\n');
            }
            sink.lock().unwrap().clone()
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
            logged,
            _dir: dir,
        }
    }

    /// Wait (up to a minute) until a log line satisfies `wanted`; the lines so far otherwise.
    fn wait_for_log(&self, wanted: impl Fn(&str) -> bool) -> Result<String, String> {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let logs = self.logged.lock().unwrap().clone();
            if let Some(line) = logs.lines().find(|line| wanted(line)) {
                return Ok(line.to_string());
            }
            if Instant::now() > deadline {
                return Err(logs);
            }
            std::thread::sleep(Duration::from_millis(50));
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

/// The names and fields of a JSON log line's spans, outermost first.
fn spans(line: &Value) -> Vec<&serde_json::Map<String, Value>> {
    line["spans"]
        .as_array()
        .map(|spans| spans.iter().filter_map(Value::as_object).collect())
        .unwrap_or_default()
}

/// `LOG_FORMAT=json`: every line is a JSON object with a timestamp, a level and a message; a
/// request's access log line and the log lines of the job it caused carry its `X-Request-Id`;
/// query strings never reach the log.
#[test]
fn json_logs_carry_the_request_id_from_the_access_log_to_the_job() {
    let service = Service::start_with(Some("info"), &[("LOG_FORMAT", "json")]);
    let api = service.api.clone();
    let request_id = "e2e-request-abc123";
    let payment = "jsonLogPayment00000000000001";
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        pi_payments_core::pi_client::install_crypto_provider();
        let http = reqwest::Client::new();
        let res = http
            .get(format!("{api}/healthz?token=query-SECRET-3"))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        let res = http
            .post(format!("{api}/pi_payment/cancel"))
            .header("content-type", "application/json")
            .header("x-request-id", request_id)
            .body(format!(r#"{{"paymentId":"{payment}"}}"#))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 202);
        assert_eq!(res.headers()["x-request-id"], request_id);
    });
    let carries_id = |line: &Value| {
        spans(line)
            .iter()
            .any(|span| span.get("request_id") == Some(&Value::from(request_id)))
    };
    // The cancel job runs in the worker and logs inside its `job` span.
    let job_line = service.wait_for_log(|line| {
        let Ok(line) = serde_json::from_str::<Value>(line) else {
            return false;
        };
        carries_id(&line)
            && spans(&line)
                .iter()
                .any(|span| span.get("name") == Some(&Value::from("job")))
    });
    let (_, logs) = service.stop();
    if let Err(seen) = job_line {
        panic!("no job log line carries the request id {request_id}:\n{seen}");
    }
    let lines: Vec<Value> = logs
        .lines()
        .map(|line| {
            serde_json::from_str::<Value>(line)
                .unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"))
        })
        .collect();
    assert!(lines.len() > 3, "{logs}");
    for line in &lines {
        assert!(line.is_object(), "{line}");
        for field in ["timestamp", "level", "message"] {
            assert!(line[field].is_string(), "no {field} in {line}");
        }
    }
    let access = lines
        .iter()
        .find(|line| line["message"] == "request served" && carries_id(line))
        .unwrap_or_else(|| panic!("no access log line for {request_id}:\n{logs}"));
    assert_eq!(access["level"], "INFO");
    assert_eq!(access["status"], 202);
    assert!(access["latency_ms"].is_number(), "{access}");
    assert_eq!(access["span"]["method"], "POST");
    assert_eq!(access["span"]["path"], "/pi_payment/cancel");
    assert!(
        lines
            .iter()
            .any(|line| line["message"] == "request served" && line["span"]["path"] == "/healthz"),
        "{logs}"
    );
    assert!(
        !logs.contains("query-SECRET-3"),
        "a query string reached the log"
    );
}

/// `LOG_FORMAT` other than text or json: one line naming it, exit code 2, before anything runs.
#[test]
fn an_unknown_log_format_is_refused_with_exit_code_2() {
    let output = Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .env_clear()
        .env("LOG_FORMAT", "yaml")
        .arg("migrate")
        .current_dir(tempfile::tempdir().unwrap().path())
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("LOG_FORMAT"), "{stderr}");
}
