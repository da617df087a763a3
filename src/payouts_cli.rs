//! `pi-payments payouts import FILE` and `pi-payments payouts status [--batch ID]`: bulk payouts
//! from the command line, straight on the ledger and the queue of the configuration (the same
//! path as `POST /payouts/bulk`, without going through the API).
//!
//! An import is resumable: every row carries its idempotency key, so running the same file again
//! (after a crash, a Ctrl-C or a fix to some rows) creates nothing for rows already accepted and
//! counts them as duplicates.

use crate::cli::{ImportArgs, PayoutsCommand, StatusArgs};
use crate::config::Config;
use crate::services::{open_ledger, open_queue};
use indicatif::{ProgressBar, ProgressStyle};
use pi_payments_core::ids::BatchId;
use pi_payments_core::ledger::{Ledger, PayoutFilter, PayoutRow};
use pi_payments_core::payout_import::{
    BulkFormat, BulkOutcome, ImportPace, parse_bulk, run_import, start_import,
};
use pi_payments_core::state::{ALL_PAYOUT_STATES, PayoutState};
use pi_payments_worker::Queue;
use std::io::IsTerminal;
use std::process::ExitCode;

/// Failed payouts listed by `payouts status` (the rest are counted).
const MAX_LISTED: usize = 50;

/// Run a `payouts` subcommand (its report as JSON with `json`): exit 0 on success, 1 on
/// rejected rows or a failure, 2 on bad arguments (an unreadable file, an unknown batch id).
pub async fn run(command: PayoutsCommand, config: Config, json: bool) -> ExitCode {
    let result = match command {
        PayoutsCommand::Import(args) => import(args, &config, json).await,
        PayoutsCommand::Status(args) => status(args, &config, json).await,
    };
    match result {
        Ok(code) => code,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// The ledger and the queue of `config`, as the service opens them.
pub async fn connect(config: &Config) -> anyhow::Result<(Ledger, Queue)> {
    let ledger = open_ledger(config).await?;
    let queue = open_queue(config).await?;
    Ok((ledger, queue))
}

fn bad_args(message: String) -> anyhow::Result<ExitCode> {
    eprintln!("error: {message}");
    Ok(ExitCode::from(2))
}

/// Progress on stderr: a bar with rate and ETA on a terminal, a few plain lines otherwise.
struct Progress {
    bar: Option<ProgressBar>,
    total: u64,
    done: u64,
    reported_tenth: u64,
}

impl Progress {
    fn new(total: u64) -> Progress {
        let bar = std::io::stderr().is_terminal().then(|| {
            let bar = ProgressBar::new(total);
            let style =
                ProgressStyle::with_template("{bar:40} {pos}/{len} rows  {per_sec}  ETA {eta}")
                    .unwrap_or_else(|_| ProgressStyle::default_bar());
            bar.set_style(style);
            bar
        });
        Progress {
            bar,
            total,
            done: 0,
            reported_tenth: 0,
        }
    }

    fn advance(&mut self, n: u64) {
        self.done += n;
        match &self.bar {
            Some(bar) => bar.inc(n),
            None => {
                let tenth = self.done * 10 / self.total.max(1);
                if tenth > self.reported_tenth {
                    self.reported_tenth = tenth;
                    eprintln!("imported {}/{} rows", self.done, self.total);
                }
            }
        }
    }

    fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

async fn import(args: ImportArgs, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let bytes = match std::fs::read(&args.file) {
        Ok(b) => b,
        Err(err) => {
            return bad_args(format!(
                "cannot read {} ({err}): give the path of a CSV or JSON-lines payout file",
                args.file.display()
            ));
        }
    };
    let format = BulkFormat::for_file(&args.file, &bytes);
    let rows = match parse_bulk(&bytes, format) {
        Ok(rows) => rows,
        Err(err) => return bad_args(format!("{}: {err}", args.file.display())),
    };
    drop(bytes);
    let (ledger, queue) = connect(config).await?;
    let source = args
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "import".to_string());
    let mut progress = Progress::new(rows.len() as u64);
    let import = start_import(&ledger, &source, rows).await?;
    if !import.outcome.rejected.is_empty() {
        progress.advance(import.outcome.rejected.len() as u64);
    }
    let batch_id = import.batch_id.clone();
    // Chunks of 500 rows, each a commit and a progress step; paced to let a running service
    // write between them.
    let pace = ImportPace::beside_other_processes(&ledger);
    let result = run_import(&ledger, &queue, import, pace, &mut |n| progress.advance(n)).await;
    progress.finish();
    let outcome = match result {
        Ok(outcome) => outcome,
        Err(stopped) => {
            print_outcome(Some(&batch_id), &stopped.outcome, json);
            ledger.close().await;
            return Err(anyhow::Error::new(stopped.error).context(format!(
                "importing {} stopped; run the same command again to resume (accepted rows are skipped)",
                args.file.display()
            )));
        }
    };
    let shown = if outcome.already_imported {
        outcome.batch_id.clone()
    } else {
        Some(batch_id)
    };
    print_outcome(shown.as_ref(), &outcome, json);
    ledger.close().await;
    Ok(if outcome.rejected.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

/// The outcome on stdout (one JSON object with `json`); `batch` is `None` when every row was
/// already imported under several batches.
fn print_outcome(batch: Option<&BatchId>, outcome: &BulkOutcome, json: bool) {
    if json {
        let mut value = serde_json::to_value(outcome).unwrap_or_default();
        value["batch_id"] = serde_json::to_value(batch).unwrap_or_default();
        println!("{value}");
        return;
    }
    match batch {
        Some(batch) => println!("batch {batch}"),
        None => println!("batch -"),
    }
    if outcome.already_imported {
        println!(
            "every row was already imported: no new batch; see `payouts status --batch` for their state"
        );
    }
    println!("accepted {}", outcome.accepted);
    println!("duplicates {}", outcome.duplicates);
    println!("rejected {}", outcome.rejected.len());
    for r in &outcome.rejected {
        println!("  line {}: {}", r.line, r.error);
    }
    if !outcome.rejected.is_empty() {
        println!("fix the rejected lines and run the same import again: accepted rows are skipped");
    }
}

async fn status(args: StatusArgs, config: &Config, json: bool) -> anyhow::Result<ExitCode> {
    let batch = match args.batch.as_deref().map(BatchId::parse).transpose() {
        Ok(b) => b,
        Err(err) => return bad_args(format!("--batch: {err}")),
    };
    // Reading only: the ledger, not the queue.
    let ledger = open_ledger(config).await?;
    if json {
        let report = status_json(&ledger, batch.as_ref()).await;
        ledger.close().await;
        return match report? {
            Some(value) => {
                println!("{value}");
                Ok(ExitCode::SUCCESS)
            }
            None => unknown_batch(batch.as_ref()),
        };
    }
    let counts: Vec<(PayoutState, i64)> = match &batch {
        Some(id) => {
            let Some(row) = ledger.batch(id).await? else {
                ledger.close().await;
                return unknown_batch(Some(id));
            };
            println!(
                "batch {} ({}): {} accepted, {} duplicates, {} rejected",
                row.id,
                row.source.as_deref().unwrap_or("-"),
                row.accepted,
                row.duplicates,
                row.rejected
            );
            ledger.batch_state_counts(id).await?
        }
        None => ledger.payout_state_counts().await?,
    };
    let mut total = 0;
    for state in ALL_PAYOUT_STATES {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        total += n;
        println!("{:<16} {n}", state.as_str());
    }
    println!("{:<16} {total}", "total");
    for state in [PayoutState::Failed, PayoutState::NeedsAttention] {
        let (listed, more) = first_in_state(&ledger, batch.as_ref(), state).await?;
        if listed.is_empty() {
            continue;
        }
        println!("{}:", state.as_str());
        for row in &listed {
            println!(
                "  {} {} {} Pi: {}",
                row.id,
                row.uid,
                row.amount,
                row.reason.as_deref().unwrap_or("(no reason recorded)")
            );
        }
        if more {
            println!(
                "  … more: GET /payouts?state={}{}",
                state.as_str(),
                batch
                    .as_ref()
                    .map(|b| format!("&batch={b}"))
                    .unwrap_or_default()
            );
        }
    }
    ledger.close().await;
    Ok(ExitCode::SUCCESS)
}

fn unknown_batch(batch: Option<&BatchId>) -> anyhow::Result<ExitCode> {
    let id = batch.map(ToString::to_string).unwrap_or_default();
    bad_args(format!(
        "batch {id} is not in this ledger: check DATABASE_URL and the id `payouts import` printed"
    ))
}

/// `payouts status --json`: `{batch, counts: {state: n}, total, failed: [...],
/// needs_attention: [...], more: {state: bool}}`; `None` for an unknown batch.
async fn status_json(
    ledger: &Ledger,
    batch: Option<&BatchId>,
) -> anyhow::Result<Option<serde_json::Value>> {
    let (batch_row, counts) = match batch {
        Some(id) => {
            let Some(row) = ledger.batch(id).await? else {
                return Ok(None);
            };
            (Some(row), ledger.batch_state_counts(id).await?)
        }
        None => (None, ledger.payout_state_counts().await?),
    };
    let mut by_state = serde_json::Map::new();
    let mut total = 0;
    for state in ALL_PAYOUT_STATES {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map(|(_, n)| *n)
            .unwrap_or(0);
        total += n;
        by_state.insert(state.as_str().to_string(), n.into());
    }
    let mut report = serde_json::json!({
        "batch": batch_row,
        "counts": by_state,
        "total": total,
    });
    for state in [PayoutState::Failed, PayoutState::NeedsAttention] {
        let (listed, more) = first_in_state(ledger, batch, state).await?;
        report[state.as_str()] = serde_json::to_value(&listed)?;
        report[format!("more_{}", state.as_str())] = more.into();
    }
    Ok(Some(report))
}

/// The first [`MAX_LISTED`] payouts in `state`, and whether there are more.
async fn first_in_state(
    ledger: &Ledger,
    batch: Option<&BatchId>,
    state: PayoutState,
) -> anyhow::Result<(Vec<PayoutRow>, bool)> {
    let filter = PayoutFilter {
        batch: batch.cloned(),
        state: Some(state),
    };
    let limit = i64::try_from(MAX_LISTED + 1).unwrap_or(i64::MAX);
    let mut rows = ledger.payouts(&filter, limit, None).await?;
    let more = rows.len() > MAX_LISTED;
    rows.truncate(MAX_LISTED);
    Ok((rows, more))
}
