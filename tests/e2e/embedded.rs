//! `serve` with its embedded simulator: the banner says it is a simulator and prints a
//! `reconcile --report` line that works as pasted, and a restart on the same files keeps the
//! simulator's state beside the ledger, so the drift report never reports drift caused by the
//! restart itself.

use crate::support::{Harness, Options, Stack};
use std::process::Command;

/// The banner's `reconcile --report` line, run through `sh` with the built binary standing in
/// for `pi-payments` on the PATH: (exit code, stdout, stderr).
fn run_banner_line(banner: &str) -> (Option<i32>, String, String) {
    let line = banner
        .lines()
        .map(str::trim)
        .find(|l| l.starts_with("PI_API_KEY=") && l.ends_with("pi-payments reconcile --report"))
        .unwrap_or_else(|| panic!("no reconcile line in the banner:\n{banner}"));
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_pi-payments"));
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let out = Command::new("sh")
        .args(["-c", line])
        .env_clear()
        .env("PATH", path)
        .env("RUST_LOG", "warn")
        .env("HORIZON_RATE_LIMIT", "1000")
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_of_serve_reports_no_drift_of_its_own() {
    let h = Harness::start(Stack::Embedded, Options::default())
        .await
        .unwrap();
    let banner = h.app.walkthrough().expect("a banner in embedded mode");
    assert!(banner.contains("SIMULATED PI"), "{banner}");
    let api = h.api.clone();
    assert!(banner.contains(&format!("{api}/demo")), "{banner}");
    assert!(banner.contains(&format!("{api}/dashboard")), "{banner}");
    assert!(!h.app.sim_restored);
    let paid = h.purchase("pioneer-restart", 1).await;
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let banner = banner.clone();
        move || run_banner_line(&banner)
    })
    .await
    .unwrap();
    assert_eq!(
        code,
        Some(0),
        "drift before the restart:\n{stdout}\n{stderr}"
    );

    let h = h.restart().await;
    let banner = h.app.walkthrough().unwrap();
    let (code, stdout, stderr) = tokio::task::spawn_blocking({
        let banner = banner.clone();
        move || run_banner_line(&banner)
    })
    .await
    .unwrap();
    assert_eq!(
        code,
        Some(0),
        "drift after the restart:\n{stdout}\n{stderr}"
    );
    assert!(
        h.app.sim_restored,
        "the simulator did not find its state file"
    );
    assert!(banner.contains("restored"), "{banner}");
    // The simulated Pi still knows the payment the ledger completed.
    assert_eq!(
        h.pi_payment(&paid).await["status"]["developer_completed"],
        true
    );
    // And the service goes on after the restart.
    h.purchase("pioneer-after", 1).await;
    h.stop().await;
}
