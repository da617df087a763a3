//! The payout commands of the real binary: `payouts import` (rejected rows by line and exit 1,
//! a re-run that creates nothing, exit 2 on bad arguments), `payouts status`, `channels create`
//! (seeds printed and saved 0600 before funding; accounts funded on Horizon), and
//! `PI_CHANNEL_SEEDS` checking.

use crate::support::payouts::{Options, PayoutEnv, sim_config, stroops};
use pi_payments_core::state::PayoutState;
use std::process::Output;
use std::time::{Duration, Instant};

fn run(env: &PayoutEnv, args: &[&str], extra: &[(&str, &str)]) -> (i32, String, String) {
    let mut cmd = env.command();
    cmd.args(args);
    for (k, v) in extra {
        cmd.env(k, v);
    }
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("the pi-payments binary runs");
    (
        status.code().unwrap_or(-1),
        String::from_utf8_lossy(&stdout).into_owned(),
        String::from_utf8_lossy(&stderr).into_owned(),
    )
}

/// The value after `name ` on its own line of `out`.
fn field(out: &str, name: &str) -> String {
    out.lines()
        .find_map(|l| l.strip_prefix(&format!("{name} ")))
        .unwrap_or_else(|| panic!("no {name:?} line in {out}"))
        .trim()
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn payouts_import_is_resumable_and_reports_rejected_lines() {
    // The service (API + workers) runs in-process on the same ledger and queue as the CLI.
    let env = PayoutEnv::start(sim_config(0.05), Options::default()).await;
    let mut good = String::from("uid,amount,memo,idempotency_key\n");
    let mut expected = Vec::new();
    for i in 0..30 {
        let uid = format!("cli-{i}");
        let address = env.pioneer(&uid).await;
        let before = env.balance(&address).await;
        good.push_str(&format!("{uid},0.5,Imported reward,cli-{i}\n"));
        expected.push((address, before));
    }
    // The same file with two bad rows (lines 32 and 33; the header is line 1).
    let with_bad = format!("{good}nobody,lots,bad amount,cli-bad-1\nnobody,1,no key\n");
    let dir = env.dir.path();
    let bad_file = dir.join("with-bad.csv");
    std::fs::write(&bad_file, &with_bad).unwrap();
    let good_file = dir.join("payouts.csv");
    std::fs::write(&good_file, &good).unwrap();

    let (code, out, err) = run(
        &env,
        &["payouts", "import", bad_file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 1, "{out}\n{err}");
    assert_eq!(field(&out, "accepted"), "30", "{out}");
    assert_eq!(field(&out, "duplicates"), "0", "{out}");
    assert_eq!(field(&out, "rejected"), "2", "{out}");
    assert!(
        out.contains("line 32:") && out.contains("line 33:"),
        "{out}"
    );
    // Not a terminal: plain progress lines, no bar.
    assert!(err.contains("imported 32/32 rows"), "{err}");
    let batch = field(&out, "batch");

    // Re-running (the fixed file): nothing new.
    let (code, out, err) = run(
        &env,
        &["payouts", "import", good_file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    assert_eq!(field(&out, "accepted"), "0", "{out}");
    assert_eq!(field(&out, "duplicates"), "30", "{out}");
    assert_eq!(field(&out, "rejected"), "0", "{out}");
    assert_eq!(env.ledger_payouts().await.len(), 30);

    // The in-process workers pay what the CLI queued.
    let start = Instant::now();
    loop {
        let rows = env.ledger_payouts().await;
        if rows.iter().all(|r| r.state == PayoutState::Completed) {
            break;
        }
        assert!(
            start.elapsed() < crate::support::payouts::DEADLINE,
            "imported payouts were not paid: {:?}",
            rows.iter().map(|r| r.state).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    for (address, before) in &expected {
        assert_eq!(env.balance(address).await - before, stroops("0.5"));
    }
    env.assert_audit_ok().await;
    // Importing again after completion creates nothing and pays nothing.
    let (code, out, _) = run(
        &env,
        &["payouts", "import", good_file.to_str().unwrap()],
        &[],
    );
    assert_eq!(code, 0);
    assert_eq!(field(&out, "duplicates"), "30", "{out}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(env.pi_payment_count().await, 30);

    let (code, out, err) = run(&env, &["payouts", "status", "--batch", &batch], &[]);
    assert_eq!(code, 0, "{out}\n{err}");
    assert!(
        out.contains("30 accepted, 0 duplicates, 2 rejected"),
        "{out}"
    );
    assert_eq!(field(&out, "completed"), "30", "{out}");
    let (code, out, _) = run(&env, &["payouts", "status"], &[]);
    assert_eq!(code, 0);
    assert_eq!(field(&out, "total"), "30", "{out}");

    // Bad arguments: exit 2 with one line.
    let (code, _, err) = run(&env, &["payouts", "import", "/nonexistent/file.csv"], &[]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("cannot read"), "{err}");
    let (code, _, err) = run(&env, &["payouts", "status", "--batch", "nope"], &[]);
    assert_eq!(code, 2, "{err}");
    let (code, _, err) = run(
        &env,
        &["payouts", "status", "--batch", "bat_AAAAAAAAAAAAAAAAAAAA"],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    env.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn channels_create_saves_the_seeds_first_and_funds_the_accounts() {
    let env = PayoutEnv::start(
        sim_config(0.05),
        Options {
            role: Some(pi_payments::Role::Api),
            ..Options::default()
        },
    )
    .await;
    let out_file = env.dir.path().join("channels.env");
    let (code, out, err) = run(
        &env,
        &[
            "channels",
            "create",
            "3",
            "--fund",
            "2",
            "--out",
            out_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 0, "{out}\n{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("PI_CHANNEL_SEEDS="))
        .unwrap_or_else(|| panic!("{out}"));
    let seeds: Vec<&str> = line["PI_CHANNEL_SEEDS=".len()..].split(',').collect();
    assert_eq!(seeds.len(), 3);
    // Seeds go to stdout and the file only; stderr names the public keys.
    for seed in &seeds {
        assert!(!err.contains(seed), "a seed leaked to stderr");
        let wallet = pi_payments_core::stellar::Wallet::from_seed(seed).unwrap();
        assert_eq!(env.balance(&wallet.public_key()).await, stroops("2"));
        assert!(err.contains(&wallet.public_key()), "{err}");
    }
    let saved = std::fs::read_to_string(&out_file).unwrap();
    assert_eq!(saved.trim_end(), line);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&out_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    // Never overwrites a seed file.
    let (code, _, err) = run(
        &env,
        &[
            "channels",
            "create",
            "1",
            "--out",
            out_file.to_str().unwrap(),
        ],
        &[],
    );
    assert_eq!(code, 2, "{err}");
    assert_eq!(std::fs::read_to_string(&out_file).unwrap(), saved);

    // The saved seeds are accepted as PI_CHANNEL_SEEDS; a bad entry is one line, exit 2,
    // naming the variable and never echoing a seed.
    let seeds_value = line["PI_CHANNEL_SEEDS=".len()..].to_string();
    let (code, _, err) = run(
        &env,
        &["worker", "--check-config"],
        &[("PI_CHANNEL_SEEDS", &seeds_value)],
    );
    assert_eq!(code, 0, "{err}");
    let bad = format!("{},SNOTASEED", seeds[0]);
    let (code, out, err) = run(
        &env,
        &["worker", "--check-config"],
        &[("PI_CHANNEL_SEEDS", &bad)],
    );
    assert_eq!(code, 2, "{out}\n{err}");
    assert!(err.starts_with("error: PI_CHANNEL_SEEDS "), "{err}");
    assert!(err.contains("entry 2"), "{err}");
    assert_eq!(err.trim_end().lines().count(), 1, "{err}");
    assert!(
        !err.contains(seeds[0]) && !err.contains("SNOTASEED"),
        "{err}"
    );
    env.stop().await;
}
