//! `pi-payments <command> --check-config`: check the configuration the command would run with
//! and exit, connecting nothing (no ledger, queue, Pi or listener). Deployments (the compose
//! file's test, a CI step, an operator before a restart) use it to catch a missing or bad
//! variable before a process starts. Exit 0 with a summary on stdout (`key: value` lines, or
//! one JSON object with `--json`), or 2 with the one-line error naming the variable, like a
//! real start (`api` and `worker` without `PI_API_KEY` included). The summary shows only what
//! the command reads, never secrets or URLs that may carry passwords (database, Redis).

use crate::cli::Command;
use crate::config::{Config, PiTarget, QueueTarget};
use crate::startup::Role;
use std::process::ExitCode;

/// Check what `command` would run with and print the outcome: the summary on stdout (exit 0)
/// or the error on stderr (exit 2).
pub fn run(command: &Command, json: bool) -> ExitCode {
    match summary(command) {
        Ok(fields) => {
            println!("{}", render(&fields, json));
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: {err}");
            ExitCode::from(2)
        }
    }
}

/// The fields as `key: value` lines, or as one JSON object.
pub fn render(fields: &[(String, String)], json: bool) -> String {
    if json {
        let object: serde_json::Map<String, serde_json::Value> = fields
            .iter()
            .map(|(k, v)| (k.clone(), serde_json::Value::String(v.clone())))
            .collect();
        serde_json::Value::Object(object).to_string()
    } else {
        let mut lines = Vec::with_capacity(fields.len());
        for (k, v) in fields {
            // The first line reads "config ok: <command>" as it always has.
            lines.push(if k == "command" {
                format!("config ok: {v}")
            } else {
                format!("{k}: {v}")
            });
        }
        lines.join("\n")
    }
}

/// What the command reads, the groups it uses and nothing else.
#[derive(Clone, Copy)]
struct Reads {
    pi: bool,
    queue: bool,
    payouts: bool,
}

fn reads(command: &Command) -> Reads {
    let (pi, queue, payouts) = match command {
        Command::Serve(_) | Command::Worker(_) => (true, true, true),
        Command::Api(_) => (true, true, false),
        Command::Reconcile(_) => (true, true, false),
        Command::Channels(_) => (true, false, true),
        Command::Payouts(crate::cli::PayoutsCommand::Import(_)) => (false, true, false),
        _ => (false, false, false),
    };
    Reads { pi, queue, payouts }
}

/// The checked configuration of `command` as (key, value) pairs, `command` first, or the
/// first error.
pub fn summary(command: &Command) -> Result<Vec<(String, String)>, String> {
    let field = |k: &str, v: String| (k.to_string(), v);
    let name = command.name();
    // The simulator and the benchmarks take their own flags, not the service's variables.
    let Some(args) = command.config_args() else {
        return match command {
            Command::Sim(args) => {
                let sim = args.clone().into_config()?;
                Ok(vec![
                    field("command", "sim".into()),
                    field(
                        "listen",
                        format!(
                            "{}, platform port {}, horizon port {}",
                            sim.host, sim.platform_port, sim.horizon_port
                        ),
                    ),
                    field("network", sim.network.clone()),
                ])
            }
            _ => Ok(vec![field("command", name.into())]),
        };
    };
    let config = Config::from_args(&args).map_err(|e| e.to_string())?;
    let role = match command {
        Command::Serve(_) => Some(Role::Serve),
        Command::Api(_) => Some(Role::Api),
        Command::Worker(_) => Some(Role::Worker),
        _ => None,
    };
    if let Some(role) = role {
        role.check(&config).map_err(|e| e.to_string())?;
    }
    let reads = reads(command);
    let mut fields = vec![field("command", name.into())];
    if reads.pi {
        match &config.pi {
            PiTarget::Remote {
                api_base_url,
                horizon_url,
                network,
                app_wallet,
                ..
            } => {
                fields.push(field("pi", api_base_url.clone()));
                fields.push(field("horizon", horizon_url.clone()));
                fields.push(field("network", network.clone()));
                fields.push(field("app_wallet", app_wallet.clone()));
            }
            PiTarget::Simulator { .. } => fields.push(field(
                "pi",
                "built-in simulator in this process (PI_API_KEY is unset)".into(),
            )),
        }
    }
    let ledger = if config.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    };
    fields.push(field("ledger", ledger.into()));
    if reads.queue {
        fields.push(field(
            "queue",
            match &config.queue {
                QueueTarget::Redis(_) => "redis".to_string(),
                QueueTarget::Sqlite(path) => format!("embedded ({})", path.display()),
            },
        ));
    }
    if reads.pi {
        fields.push(field(
            "payouts",
            match (&config.wallet_seed, reads.payouts) {
                (None, true) if matches!(config.pi, PiTarget::Simulator { .. }) => {
                    "the embedded simulator's app wallet signs them in this process".to_string()
                }
                (Some(_), _) => format!(
                    "this process holds the wallet seed ({} channel accounts)",
                    config.channel_seeds.len()
                ),
                (None, true) => "off in this process (PI_WALLET_SEED is unset)".to_string(),
                (None, false) => "never signed here (workers with PI_WALLET_SEED sign)".to_string(),
            },
        ));
    }
    Ok(fields)
}
