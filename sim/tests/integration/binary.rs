//! The `pi-sim` binary: one JSON ready line on stdout, then serving, then a clean stop on SIGTERM.

use pi_sim::control_client::SimControl;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Start the binary with `args` and read its ready line (stderr is dropped).
fn spawn_until_ready(args: &[&str]) -> (Child, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_pi-sim"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn pi-sim");
    let stdout = child.stdout.take().expect("stdout");
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .expect("ready line");
    (child, line)
}

#[tokio::test]
async fn prints_the_ready_line_serves_and_stops_on_sigterm() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let (mut child, line) = spawn_until_ready(&[
        "--platform-port",
        "0",
        "--horizon-port",
        "0",
        "--ledger-seconds",
        "0",
        "--api-key",
        "test-key-123",
        "--network",
        "Pi Network",
    ]);
    assert!(line.starts_with(r#"{"event":"ready","#), "{line}");
    let ready: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    for field in [
        "platform_url",
        "horizon_url",
        "platform_port",
        "horizon_port",
        "api_key",
        "app_wallet_public_key",
        "app_wallet_seed",
        "network_passphrase",
        "ledger",
    ] {
        assert!(ready.get(field).is_some(), "{field} missing in {line}");
    }
    assert_eq!(ready["api_key"], "test-key-123");
    assert_eq!(ready["network_passphrase"], "Pi Network");
    let port = ready["platform_port"].as_u64().unwrap();
    assert_eq!(ready["platform_url"], format!("http://127.0.0.1:{port}"));

    let control = SimControl::new(ready["platform_url"].as_str().unwrap()).unwrap();
    let info = control.info().await.unwrap();
    let http = reqwest::Client::new();
    assert_eq!(
        info["app_wallet_public_key"],
        ready["app_wallet_public_key"]
    );
    let horizon = http
        .get(format!("{}/", ready["horizon_url"].as_str().unwrap()))
        .send()
        .await
        .unwrap();
    assert!(horizon.status().is_success());

    let killed = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("pi-sim did not stop on SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "clean exit on SIGTERM: {status:?}");
}

#[test]
fn bad_flags_fail_with_a_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_pi-sim"))
        .args([
            "--app-wallet-seed",
            "not-a-seed",
            "--platform-port",
            "0",
            "--horizon-port",
            "0",
        ])
        .output()
        .expect("run pi-sim");
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no ready line");
    assert!(String::from_utf8_lossy(&out.stderr).contains("seed"));
    let out = Command::new(env!("CARGO_BIN_EXE_pi-sim"))
        .args(["--fault-targets", "moon"])
        .output()
        .expect("run pi-sim");
    assert!(!out.status.success());
}

/// `--host 0.0.0.0` (the compose `sim` service, reached from other containers): both listeners
/// take connections on every address, and the ready line still names a reachable URL.
#[tokio::test]
async fn host_flag_binds_every_address() {
    let (mut child, line) = spawn_until_ready(&[
        "--host",
        "0.0.0.0",
        "--platform-port",
        "0",
        "--horizon-port",
        "0",
    ]);
    let ready: serde_json::Value = serde_json::from_str(&line).expect("JSON");
    let port = ready["horizon_port"].as_u64().unwrap();
    assert_eq!(ready["horizon_url"], format!("http://127.0.0.1:{port}"));
    // 127.0.0.2 is loopback too, but only a wildcard listener accepts on it.
    let reached = tokio::net::TcpStream::connect(("127.0.0.2", u16::try_from(port).unwrap()))
        .await
        .is_ok();
    let _ = child.kill();
    let _ = child.wait();
    assert!(reached, "the Horizon listener does not accept on 127.0.0.2");
}
