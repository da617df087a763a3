//! `pi-payments <command> --check-config`: check the configuration the command would run with
//! and exit, connecting nothing (no ledger, queue, Pi or listener). Deployments (the compose
//! file's test, a CI step, an operator before a restart) use it to catch a missing or bad
//! variable before a process starts. Exit 0 with a summary on stdout, or 2 with the one-line
//! error naming the variable, like a real start. The summary never shows secrets or URLs that
//! may carry passwords (database, Redis).

use crate::cli::{Cli, Command};
use crate::config::{Config, PiTarget, QueueTarget};
use std::process::ExitCode;

/// Check what `cli` asks to run and print the outcome: the summary on stdout (exit 0) or the
/// error on stderr (exit 2).
pub fn run(cli: &Cli) -> ExitCode {
    match summary(cli) {
        Ok(text) => {
            println!("{text}");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// The checked configuration of `cli`'s command as `key: value` lines, or the first error.
pub fn summary(cli: &Cli) -> Result<String, String> {
    let command = match &cli.command {
        None | Some(Command::Serve) => "serve",
        Some(Command::Api) => "api",
        Some(Command::Worker) => "worker",
        Some(Command::Migrate) => "migrate",
        Some(Command::Reconcile(_)) => "reconcile",
        Some(Command::Payouts(_)) => "payouts",
        Some(Command::Channels(_)) => "channels",
        // The simulator and the benchmarks take their own flags, not the service's variables.
        Some(Command::Sim(args)) => {
            let sim = args.clone().into_config()?;
            return Ok(format!(
                "config ok: sim\nlisten: {}, platform port {}, horizon port {}\nnetwork: {}",
                sim.host, sim.platform_port, sim.horizon_port, sim.network
            ));
        }
        Some(Command::Bench(_)) => return Ok("config ok: bench".to_string()),
    };
    let config = Config::from_args(&cli.config).map_err(|e| e.to_string())?;
    let mut lines = vec![format!("config ok: {command}")];
    match &config.pi {
        PiTarget::Remote {
            api_base_url,
            horizon_url,
            network,
            app_wallet,
            ..
        } => {
            lines.push(format!("pi: {api_base_url}"));
            lines.push(format!("horizon: {horizon_url}"));
            lines.push(format!("network: {network}"));
            lines.push(format!("app_wallet: {app_wallet}"));
        }
        PiTarget::Simulator { .. } => {
            lines.push("pi: built-in simulator in this process (PI_API_KEY is unset)".into());
        }
    }
    let ledger = if config.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    lines.push(format!("ledger: {ledger}"));
    lines.push(match &config.queue {
        QueueTarget::Redis(_) => "queue: redis".to_string(),
        QueueTarget::Sqlite(path) => format!("queue: embedded ({})", path.display()),
    });
    lines.push(match &config.wallet_seed {
        Some(_) => format!(
            "payouts: this process holds the wallet seed ({} channel accounts)",
            config.channel_seeds.len()
        ),
        None => "payouts: off in this process (PI_WALLET_SEED is unset)".to_string(),
    });
    Ok(lines.join("\n"))
}
