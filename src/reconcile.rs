//! `pi-payments reconcile`: one reconcile run now, or (`--report`) the drift report as a table
//! or JSON. The exit code of `--report` is for scripts and monitoring: 0 clean, 1 drift (or a
//! source that could not be read), 2 bad configuration.

use crate::cli::ReconcileArgs;
use crate::config::Config;
use crate::services::{HORIZON_TIMEOUT, PiEndpoints, PiServices, open_ledger, open_queue};
use pi_payments_core::reconcile::{
    DriftChecker, DriftOptions, DriftReport, Reconciler, RunOutcome,
};
use std::fmt::Write as _;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

/// Run `reconcile` with `args` (JSON output with `json`); the exit code says what it found.
pub async fn run(config: &Config, args: &ReconcileArgs, json: bool) -> anyhow::Result<ExitCode> {
    let Some(endpoints) = PiEndpoints::remote(config) else {
        eprintln!(
            "error: PI_API_KEY is required: reconcile compares the ledger with Pi and the chain (set PI_API_KEY, PI_API_BASE_URL, PI_HORIZON_URL and PI_APP_WALLET; against `serve`'s embedded simulator, paste the `reconcile --report` line its banner printed)"
        );
        return Ok(ExitCode::from(2));
    };
    let ledger = open_ledger(config).await?;
    let PiServices {
        endpoints,
        client: pi,
        horizon,
    } = PiServices::connect(endpoints, config, HORIZON_TIMEOUT)?;
    let app_wallet = &endpoints.app_wallet;
    let code = if args.report {
        let checker = DriftChecker::new(
            ledger.clone(),
            pi,
            horizon,
            app_wallet.clone(),
            DriftOptions {
                stuck_after: config.reconcile.stuck_after,
                since: Duration::from_secs(args.since_hours.saturating_mul(3600)),
                ..DriftOptions::default()
            },
        );
        let report = checker.report().await?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            print!("{}", render_table(&report));
        }
        if report.clean {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(1)
        }
    } else {
        let queue = open_queue(config).await?;
        let reconciler = Reconciler::new(
            ledger.clone(),
            pi,
            horizon,
            app_wallet.clone(),
            Arc::new(queue),
            config.reconcile.clone(),
        );
        let holder = format!("cli-{}", std::process::id());
        match reconciler.run_once(&holder).await? {
            RunOutcome::Ran(summary) => {
                if json {
                    println!("{}", serde_json::to_string_pretty(&summary)?);
                } else {
                    println!(
                        "reconcile run {}: re-enqueued {} payment(s) and {} payout(s); {} sent to needs_attention; Pi lists {} incomplete server payment(s): {} resumed, {} waiting, {} unknown (reported, not paid), {} settled here, {} superseded (cancelled, never signed)",
                        summary.run_id,
                        summary.requeued_payments.len(),
                        summary.requeued_payouts.len(),
                        summary.gave_up.len(),
                        summary.server_payments,
                        summary.server_resumed.len(),
                        summary.server_waiting.len(),
                        summary.server_unknown.len(),
                        summary.server_settled.len(),
                        summary.server_superseded.len(),
                    );
                    for e in &summary.errors {
                        println!("  error: {e}");
                    }
                }
                if summary.errors.is_empty() {
                    ExitCode::SUCCESS
                } else {
                    ExitCode::from(1)
                }
            }
            RunOutcome::Skipped { holder } => {
                if json {
                    println!(
                        "{}",
                        serde_json::json!({ "skipped": true, "holder": holder })
                    );
                } else {
                    println!(
                        "skipped: another reconcile run holds the lease or just finished ({}); nothing done, try again in {} s",
                        holder.as_deref().unwrap_or("unknown holder"),
                        config.reconcile.every.as_secs().div_ceil(2).max(1)
                    );
                }
                ExitCode::SUCCESS
            }
        }
    };
    ledger.close().await;
    Ok(code)
}

/// Shorten `text` to `width` characters.
fn cell(text: &str, width: usize) -> String {
    if text.chars().count() <= width {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(width.saturating_sub(1)).collect();
        s.push('…');
        s
    }
}

/// The report as a terminal table (what `--report` prints without `--json`).
pub fn render_table(report: &DriftReport) -> String {
    let mut out = String::new();
    let c = &report.checked;
    let _ = writeln!(
        out,
        "Drift report: {} payment(s), {} payout(s), {} app-wallet transaction(s), {} incomplete server payment(s) checked",
        c.payments, c.payouts, c.chain_transactions, c.incomplete_server_payments
    );
    match &report.last_run {
        Some(run) => {
            let _ = writeln!(
                out,
                "Last reconcile run: #{} by {} ({})",
                run.id,
                run.holder,
                if run.finished_at.is_some() {
                    "finished"
                } else {
                    "not finished"
                }
            );
        }
        None => {
            let _ = writeln!(out, "Last reconcile run: none yet");
        }
    }
    if report.drift.is_empty() {
        let _ = writeln!(out, "\nNo drift: the ledger, Pi and the chain agree.");
    } else {
        let _ = writeln!(out, "\n{} disagreement(s):", report.drift.len());
        let _ = writeln!(
            out,
            "{:<33} {:<40} {:<28} {:<28} {:<30} DETAIL",
            "KIND", "SUBJECT", "LEDGER", "PI", "CHAIN"
        );
        for d in &report.drift {
            let _ = writeln!(
                out,
                "{:<33} {:<40} {:<28} {:<28} {:<30} {}",
                d.kind.as_str(),
                cell(&format!("{} {}", d.subject_type, d.subject), 40),
                cell(d.ledger.as_deref().unwrap_or("-"), 28),
                cell(d.pi.as_deref().unwrap_or("-"), 28),
                cell(d.chain.as_deref().unwrap_or("-"), 30),
                d.detail
            );
        }
    }
    if !report.needs_attention.is_empty() {
        let _ = writeln!(
            out,
            "\n{} row(s) in needs_attention (known, waiting for a person):",
            report.needs_attention.len()
        );
        for a in &report.needs_attention {
            let _ = writeln!(
                out,
                "  {} {}: {}{}",
                a.subject_type,
                a.subject,
                a.reason.as_deref().unwrap_or("(no reason recorded)"),
                a.pi.as_deref()
                    .map(|p| format!(" [Pi: {p}]"))
                    .unwrap_or_default()
            );
        }
    }
    if !report.errors.is_empty() {
        let _ = writeln!(out, "\nNot checked (the report is incomplete):");
        for e in &report.errors {
            let _ = writeln!(out, "  {e}");
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        if report.clean {
            "clean"
        } else {
            "DRIFT: see above (exit code 1)"
        }
    );
    out
}
