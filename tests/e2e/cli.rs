//! The binary's configuration errors: one readable line naming the variable, exit code 2.

use std::process::Command;

fn run_with(env: &[(&str, &str)], args: &[&str]) -> (Option<i32>, String) {
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn a_bad_value_is_one_line_naming_the_variable_and_exit_2() {
    let cases = [
        ("PI_RATE_LIMIT", "abc"),
        ("HORIZON_RATE_LIMIT", "1.5"),
        ("WORKER_CONCURRENCY", "-3"),
        ("BIND_ADDR", "localhost"),
        ("REQUIRE_ORDER", "maybe"),
        ("PI_API_BASE_URL", "ftp://x"),
        ("PI_APP_WALLET", "GNOTAKEY"),
    ];
    for (var, value) in cases {
        let (code, stderr) = run_with(&[(var, value)], &[]);
        assert_eq!(code, Some(2), "{var}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{var}={value}: {stderr}");
        assert!(lines[0].starts_with(&format!("error: {var}=")), "{stderr}");
    }
}

#[test]
fn the_exact_message_for_a_rate_limit() {
    let (code, stderr) = run_with(&[("PI_RATE_LIMIT", "abc")], &["serve"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.trim_end(),
        r#"error: PI_RATE_LIMIT="abc" is not a whole number of requests per second (e.g. 10)"#
    );
}

#[test]
fn the_exact_message_for_a_horizon_rate_limit() {
    let (code, stderr) = run_with(&[("HORIZON_RATE_LIMIT", "fast")], &["worker"]);
    assert_eq!(code, Some(2));
    assert_eq!(
        stderr.trim_end(),
        r#"error: HORIZON_RATE_LIMIT="fast" is not a whole number of requests per second (e.g. 1)"#
    );
    let (code, stderr) = run_with(&[], &["--horizon-rate-limit", "0", "serve"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.starts_with(r#"error: HORIZON_RATE_LIMIT="0" "#),
        "{stderr}"
    );
}

#[test]
fn secrets_are_named_not_shown() {
    let (code, stderr) = run_with(&[("DATABASE_URL", "mysql://u:hunter2@h/db")], &["migrate"]);
    assert_eq!(code, Some(2));
    assert!(stderr.starts_with("error: DATABASE_URL "), "{stderr}");
    assert!(!stderr.contains("hunter2"));
    let (code, stderr) = run_with(&[("PI_API_KEY", "sekrit-key")], &[]);
    assert_eq!(code, Some(2), "a key without PI_APP_WALLET must be refused");
    assert!(
        stderr.contains("PI_APP_WALLET") && !stderr.contains("sekrit-key"),
        "{stderr}"
    );
}

#[test]
fn clap_errors_exit_2_too() {
    let (code, _) = run_with(&[], &["--no-such-flag"]);
    assert_eq!(code, Some(2));
}

#[test]
fn migrate_creates_the_ledger() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("m.db").display());
    let out = Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .arg("migrate")
        .env_clear()
        .env("DATABASE_URL", &url)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(dir.path().join("m.db").exists());
}

/// `--check-config` checks without connecting: unreachable servers still pass, passwords in
/// their URLs are not shown, and a bad value is the usual one line with exit code 2.
#[test]
fn check_config_connects_nothing_and_shows_no_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let run = |env: &[(&str, &str)]| {
        Command::new(env!("CARGO_BIN_EXE_pi-payments"))
            .args(["worker", "--check-config"])
            .env_clear()
            .envs(env.iter().copied())
            .current_dir(dir.path())
            .output()
            .unwrap()
    };
    let out = run(&[
        ("DATABASE_URL", "postgres://pi:hunter2@127.0.0.1:1/none"),
        ("REDIS_URL", "redis://:hunter3@127.0.0.1:1"),
        ("PI_API_KEY", "key-hunter4"),
        (
            "PI_APP_WALLET",
            "GCOYYVONA7RR7KVHIO37LNFZCGLNTLN6CLBGJDW7T2D4F5DUUYZ5UA5F",
        ),
        ("PI_NETWORK", "Pi Network"),
    ]);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}");
    assert!(stdout.starts_with("config ok: worker\n"), "{stdout}");
    assert!(
        stdout.contains("horizon: https://api.mainnet.minepi.com"),
        "{stdout}"
    );
    assert!(!stdout.contains("hunter"), "{stdout}");
    let out = run(&[("PI_RATE_LIMIT", "fast")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: PI_RATE_LIMIT=\"fast\""),
        "{stderr}"
    );
}

/// A worker whose `PI_NETWORK` is not the network its Horizon serves stops at start with one
/// line naming `PI_NETWORK` and exit code 2, before it signs anything: here mainnet against
/// pi-sim's testnet Horizon.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_other_than_horizons_stops_the_service_at_start() {
    let sim = pi_sim::start(pi_sim::SimConfig::default()).await.unwrap();
    assert_eq!(sim.network_passphrase, "Pi Testnet");
    let dir = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .arg("worker")
        .env_clear()
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("l.db").display()),
        )
        .env("PI_API_KEY", &sim.api_key)
        .env("PI_API_BASE_URL", &sim.platform_url)
        .env("PI_HORIZON_URL", &sim.horizon_url)
        .env("PI_APP_WALLET", &sim.app_wallet_public_key)
        .env("PI_NETWORK", "Pi Network")
        .current_dir(dir.path())
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(std::time::Duration::from_secs(60), out)
        .await
        .expect("the worker stops at start")
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: PI_NETWORK=\"Pi Network\" does not match the Horizon at"),
        "{stderr}"
    );
    assert!(last.contains("\"Pi Testnet\""), "{stderr}");
    // And a value that is no Pi network at all is refused before anything starts.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .args(["worker", "--check-config"])
        .env_clear()
        .env("PI_NETWORK", "mainnet")
        .current_dir(dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("error: PI_NETWORK=\"mainnet\" is not a Pi network"),
        "{stderr}"
    );
    sim.shutdown().await;
}
