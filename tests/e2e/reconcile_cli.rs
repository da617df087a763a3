//! `pi-payments reconcile`: the drift report's exit code (0 clean, 1 drift) against an
//! in-test pi-sim, a planted mismatch in the ledger, one reconcile run from the command line,
//! and the configuration checks of RECONCILE_EVERY / STUCK_AFTER / ABANDON_AFTER.

use pi_payments_core::ids::PaymentId;
use pi_payments_core::ledger::Ledger;
use pi_sim::control_client::{SimControl, U2aRequest};
use serde_json::Value;
use std::process::Command;

struct Env {
    sim: pi_sim::RunningSim,
    dir: tempfile::TempDir,
    database_url: String,
}

async fn start() -> Env {
    pi_payments_core::pi_client::install_crypto_provider();
    let sim = pi_sim::start(pi_sim::SimConfig::default())
        .await
        .expect("pi-sim starts");
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("ledger.db").display());
    Env {
        sim,
        dir,
        database_url,
    }
}

/// Run the binary with the env pointing at the sim; (exit code, stdout, stderr).
async fn pi_payments(env: &Env, extra: &[(&str, &str)], args: &[&str]) -> (i32, String, String) {
    let mut vars: Vec<(String, String)> = vec![
        ("DATABASE_URL".into(), env.database_url.clone()),
        ("PI_API_KEY".into(), env.sim.api_key.clone()),
        ("PI_API_BASE_URL".into(), env.sim.platform_url.clone()),
        ("PI_HORIZON_URL".into(), env.sim.horizon_url.clone()),
        (
            "PI_APP_WALLET".into(),
            env.sim.app_wallet_public_key.clone(),
        ),
        ("PI_NETWORK".into(), env.sim.network_passphrase.clone()),
        ("HORIZON_RATE_LIMIT".into(), "1000".into()),
        ("RUST_LOG".into(), "warn".into()),
    ];
    vars.extend(extra.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let cwd = env.dir.path().to_path_buf();
    // Blocking: the sim keeps serving on the runtime's other thread.
    let out = tokio::task::spawn_blocking(move || {
        Command::new(env!("CARGO_BIN_EXE_pi-payments"))
            .args(&args)
            .env_clear()
            .envs(vars)
            .current_dir(cwd)
            .output()
            .unwrap()
    })
    .await
    .unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn report_exits_0_when_clean_and_1_on_a_planted_mismatch() {
    let env = start().await;
    // A fresh ledger (migrated by the binary itself) and a quiet Pi: clean.
    let (code, stdout, stderr) = pi_payments(&env, &[], &["reconcile", "--report"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("No drift"), "{stdout}");

    // A payment the Pioneer never finished; the ledger is made to say it completed.
    let control = SimControl::of(&env.sim).unwrap();
    let created = control
        .create_u2a_id(&U2aRequest::new("pioneer", "1").memo("m"))
        .await
        .unwrap();
    let id = PaymentId::parse(&created).unwrap();
    let ledger = Ledger::connect(&env.database_url).await.unwrap();
    ledger.record_approve_callback(&id, None).await.unwrap();
    sqlx::query("UPDATE payments SET state = 'completed' WHERE id = $1")
        .bind(id.as_str())
        .execute(ledger.pool())
        .await
        .unwrap();
    ledger.close().await;

    let (code, stdout, stderr) = pi_payments(&env, &[], &["reconcile", "--report"]).await;
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("state_mismatch"), "{stdout}");
    assert!(stdout.contains(id.as_str()), "{stdout}");

    let (code, stdout, _) = pi_payments(&env, &[], &["reconcile", "--report", "--json"]).await;
    assert_eq!(code, 1);
    let report: Value = serde_json::from_str(&stdout).expect("--json prints JSON");
    assert_eq!(report["clean"], false);
    assert_eq!(report["drift"][0]["subject"], id.as_str());
    assert_eq!(report["drift"][0]["kind"], "state_mismatch");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reconcile_without_report_runs_once() {
    let env = start().await;
    let (code, stdout, stderr) = pi_payments(&env, &[], &["reconcile", "--json"]).await;
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(summary["server_payments"], 0);
    assert_eq!(summary["run_id"], 1);
    // Within the cool-down (half of RECONCILE_EVERY) a second run is skipped, not repeated.
    let (code, stdout, _) = pi_payments(&env, &[], &["reconcile"]).await;
    assert_eq!(code, 0);
    assert!(stdout.starts_with("skipped: "), "{stdout}");
    env.sim.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_reconcile_settings_exit_2_naming_the_variable() {
    let env = start().await;
    for (var, value) in [
        ("STUCK_AFTER", "abc"),
        ("RECONCILE_EVERY", "0"),
        ("ABANDON_AFTER", "-5"),
    ] {
        let (code, _, stderr) =
            pi_payments(&env, &[(var, value)], &["reconcile", "--report"]).await;
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        let lines: Vec<&str> = stderr.lines().collect();
        assert_eq!(lines.len(), 1, "{stderr}");
        assert!(lines[0].starts_with(&format!("error: {var}=")), "{stderr}");
    }
    env.sim.shutdown().await;
}
