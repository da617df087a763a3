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
    let (code, stderr) = run_with(&[], &["serve", "--horizon-rate-limit", "0"]);
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

/// Output of the binary run with only `env` (and `args`), in a scratch directory.
fn output_with(env: &[(&str, &str)], args: &[&str]) -> std::process::Output {
    let dir = tempfile::tempdir().unwrap();
    Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .args(args)
        .env_clear()
        .envs(env.iter().copied())
        .current_dir(dir.path())
        .output()
        .unwrap()
}

/// `api` and `worker` never fall back to a simulator of their own: without PI_API_KEY they
/// exit 2 with one line naming it and saying how to point them at a shared simulator, at
/// start and under `--check-config` alike.
#[test]
fn api_and_worker_refuse_to_start_without_a_key() {
    for role in ["api", "worker"] {
        for check in [false, true] {
            let mut args = vec![role];
            if check {
                args.push("--check-config");
            }
            let (code, stderr) = run_with(&[], &args);
            assert_eq!(code, Some(2), "{args:?}: {stderr}");
            let lines: Vec<&str> = stderr.lines().collect();
            assert_eq!(lines.len(), 1, "{args:?}: {stderr}");
            assert!(
                lines[0].starts_with("error: PI_API_KEY is not set"),
                "{stderr}"
            );
            assert!(
                lines[0].contains(&format!("`pi-payments {role}`")),
                "{stderr}"
            );
            assert!(
                lines[0].contains("pi-payments sim") && lines[0].contains("PI_API_BASE_URL"),
                "{stderr}"
            );
        }
    }
    // `serve` alone embeds the simulator.
    let out = output_with(&[], &["serve", "--check-config"]);
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("built-in simulator"));
}

/// Each subcommand's help lists its own flags only.
#[test]
fn help_lists_only_the_subcommands_own_flags() {
    let help = |args: &[&str]| {
        let out = output_with(&[], args);
        assert_eq!(out.status.code(), Some(0), "{args:?}");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let migrate = help(&["migrate", "--help"]);
    assert!(migrate.contains("DATABASE_URL"), "{migrate}");
    for unrelated in [
        "PI_RATE_LIMIT",
        "PI_API_KEY",
        "BIND_ADDR",
        "ADMIN_TOKEN",
        "REDIS_URL",
    ] {
        assert!(
            !migrate.contains(unrelated),
            "migrate --help lists {unrelated}:\n{migrate}"
        );
    }
    let sim = help(&["sim", "--help"]);
    assert!(
        sim.contains("--ledger-seconds") && sim.contains("--state-file"),
        "{sim}"
    );
    for unrelated in ["DATABASE_URL", "PI_RATE_LIMIT", "BIND_ADDR", "REDIS_URL"] {
        assert!(
            !sim.contains(unrelated),
            "sim --help lists {unrelated}:\n{sim}"
        );
    }
    let import = help(&["payouts", "import", "--help"]);
    assert!(
        import.contains("DATABASE_URL") && import.contains("REDIS_URL"),
        "{import}"
    );
    for unrelated in ["PI_API_KEY", "PI_WALLET_SEED", "BIND_ADDR", "PI_RATE_LIMIT"] {
        assert!(
            !import.contains(unrelated),
            "payouts import --help lists {unrelated}:\n{import}"
        );
    }
    let worker = help(&["worker", "--help"]);
    assert!(worker.contains("WORKER_CONCURRENCY") && worker.contains("PI_WALLET_SEED"));
    for unrelated in ["BIND_ADDR", "ADMIN_TOKEN", "APP_ORIGINS"] {
        assert!(
            !worker.contains(unrelated),
            "worker --help lists {unrelated}:\n{worker}"
        );
    }
    let api = help(&["api", "--help"]);
    assert!(api.contains("BIND_ADDR") && api.contains("ADMIN_TOKEN"));
    assert!(!api.contains("PI_WALLET_SEED") && !api.contains("WORKER_CONCURRENCY"));
    // Environment variables still reach the commands that read them, flags or not.
    let out = output_with(&[("BIND_ADDR", "nope")], &["api", "--check-config"]);
    assert_eq!(out.status.code(), Some(2));
    // ...and are ignored by those that do not.
    let out = output_with(&[("BIND_ADDR", "nope")], &["migrate", "--check-config"]);
    assert_eq!(out.status.code(), Some(0));
}

/// `--json` reports parse as JSON.
#[test]
fn json_reports_parse() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite://{}", dir.path().join("j.db").display());
    let json = |args: &[&str]| -> serde_json::Value {
        let out = output_with(&[("DATABASE_URL", url.as_str())], args);
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(0),
            "{args:?}: {stdout}{}",
            String::from_utf8_lossy(&out.stderr)
        );
        serde_json::from_str(stdout.trim()).unwrap_or_else(|e| panic!("{args:?}: {e}: {stdout}"))
    };
    let checked = json(&["serve", "--check-config", "--json"]);
    assert_eq!(checked["command"], "serve");
    assert_eq!(checked["ledger"], "sqlite");
    assert_eq!(json(&["--json", "migrate"])["migrated"], true);
    let status = json(&["payouts", "status", "--json"]);
    assert_eq!(status["total"], 0);
    assert_eq!(status["counts"]["completed"], 0);
    let csv = dir.path().join("p.csv");
    std::fs::write(&csv, "uid,amount,memo,idempotency_key\nu1,1,reward,k1\n").unwrap();
    let imported = json(&["payouts", "import", csv.to_str().unwrap(), "--json"]);
    assert_eq!(imported["accepted"], 1);
    assert!(imported["batch_id"].as_str().unwrap().starts_with("bat_"));
}

/// A port nothing listens on (bound, then freed).
fn unused_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

/// An unreachable Postgres or Redis: a line naming the variable (never its password) and a
/// non-zero exit, instead of retrying in silence.
#[test]
fn an_unreachable_database_or_redis_names_its_variable() {
    let port = unused_port();
    let url = format!("postgres://pi:hunter2@127.0.0.1:{port}/ledger");
    let out = output_with(&[("DATABASE_URL", url.as_str())], &["migrate"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: DATABASE_URL: "), "{stderr}");
    assert!(last.contains(&format!("127.0.0.1:{port}")), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");

    let dir = tempfile::tempdir().unwrap();
    let ledger = format!("sqlite://{}", dir.path().join("l.db").display());
    let redis = format!("redis://:hunter3@127.0.0.1:{}", unused_port());
    let csv = dir.path().join("p.csv");
    std::fs::write(&csv, "uid,amount,memo,idempotency_key\nu1,1,m,k1\n").unwrap();
    let out = output_with(
        &[
            ("DATABASE_URL", ledger.as_str()),
            ("REDIS_URL", redis.as_str()),
        ],
        &["payouts", "import", csv.to_str().unwrap()],
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(last.starts_with("error: REDIS_URL: "), "{stderr}");
    assert!(!stderr.contains("hunter3"), "{stderr}");
}

/// `channels create` is an operator's act at a shell: it takes the wallet seed without
/// ADMIN_TOKEN (that token guards routes, which it does not serve), and with the embedded
/// simulator it only prints the seeds.
#[test]
fn channels_create_needs_no_admin_token() {
    let seed = pi_payments_core::stellar::Wallet::generate().expose_seed();
    let out = output_with(
        &[("PI_WALLET_SEED", seed.as_str())],
        &["channels", "create", "1", "--check-config"],
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = output_with(&[], &["channels", "create", "2", "--json"]);
    assert_eq!(out.status.code(), Some(0));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["seeds"].as_array().unwrap().len(), 2);
}
