//! `pi-payments channels create N --fund 2 [--out FILE]`: channel accounts for A2U payouts.
//!
//! A channel account is the source of a payout transaction (it pays the fee and carries the
//! sequence number) while the payment itself still comes from the app wallet; with N channels
//! up to N payouts land per ledger instead of one.
//!
//! Order matters: the seeds are generated and written out (stdout as a `PI_CHANNEL_SEEDS=…`
//! line, and `--out` with mode 0600) BEFORE any Pi is sent to them, so a crash can never leave
//! funded accounts whose seeds nobody has. Funding is idempotent (existing accounts are
//! skipped): with the seeds saved, set `PI_CHANNEL_SEEDS` and run the service. Seeds are never
//! logged.

use crate::cli::{ChannelsCommand, CreateArgs};
use crate::config::{Config, PiTarget};
use crate::services::{PiEndpoints, PiServices, open_ledger};
use anyhow::Context;
use pi_payments_core::PiAmount;
use pi_payments_core::stellar::Wallet;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

/// Horizon requests of the funding (its submission waits for a ledger close).
const FUNDING_HORIZON_TIMEOUT: Duration = Duration::from_secs(60);

/// The most channel accounts one command creates (Horizon takes 100 operations per
/// transaction; more channels than that do not help a single app wallet).
pub const MAX_CHANNELS: usize = 100;

/// Run a `channels` subcommand: 0 on success, 1 when funding failed (the seeds are saved: run
/// again with them in `PI_CHANNEL_SEEDS`… or simply fund them again), 2 on bad arguments.
/// With `json` stdout is one JSON object (`seeds`, `accounts`, `funding`) instead of the
/// line, printed as early as the line (before any funding); the outcome of the funding goes to
/// stderr and the exit code either way.
pub async fn run(command: ChannelsCommand, config: Config, json: bool) -> ExitCode {
    match command {
        ChannelsCommand::Create(args) => create(args, &config, json).await,
    }
}

/// `channels create --json`: the seeds (secret), their accounts, and what happens to them
/// next (`"from the app wallet"`, or `"by the embedded simulator at start"`).
fn json_report(wallets: &[Wallet], funding: &str) -> String {
    serde_json::json!({
        "seeds": wallets.iter().map(Wallet::expose_seed).collect::<Vec<_>>(),
        "accounts": wallets.iter().map(Wallet::public_key).collect::<Vec<_>>(),
        "funding": funding,
    })
    .to_string()
}

fn bad_args(message: &str) -> ExitCode {
    eprintln!("error: {message}");
    ExitCode::from(2)
}

async fn create(args: CreateArgs, config: &Config, json: bool) -> ExitCode {
    if args.count == 0 || args.count > MAX_CHANNELS {
        return bad_args(&format!(
            "give a number of channels from 1 to {MAX_CHANNELS} (e.g. `channels create 4`)"
        ));
    }
    let fund = match PiAmount::parse(&args.fund) {
        Ok(f) => f,
        Err(err) => return bad_args(&format!("--fund: {err}")),
    };
    if let Some(out) = &args.out
        && out.exists()
    {
        return bad_args(&format!(
            "--out {} already exists: it may hold seeds of funded accounts; choose a new file",
            out.display()
        ));
    }
    let remote = match &config.pi {
        PiTarget::Remote { .. } if config.wallet_seed.is_none() => {
            return bad_args(
                "PI_WALLET_SEED is not set: the channels are funded from the app wallet, give its seed",
            );
        }
        PiTarget::Remote { .. } => true,
        PiTarget::Simulator { .. } => false,
    };
    let wallets: Vec<Wallet> = (0..args.count).map(|_| Wallet::generate()).collect();
    let line = seeds_line(&wallets);
    // Seeds first: saved before a single stroop is sent.
    if let Some(out) = &args.out
        && let Err(err) = write_private(out, &line)
    {
        eprintln!(
            "error: could not write {} ({err}); nothing was funded",
            out.display()
        );
        return ExitCode::FAILURE;
    }
    if json {
        let funding = if remote {
            "from the app wallet"
        } else {
            "by the embedded simulator at start"
        };
        println!("{}", json_report(&wallets, funding));
    } else {
        println!("{line}");
    }
    let _ = std::io::stdout().flush();
    if !remote {
        eprintln!(
            "PI_API_KEY is unset (built-in simulator): nothing to fund now; the simulator gives these channels their accounts when the service starts with PI_CHANNEL_SEEDS set"
        );
        return ExitCode::SUCCESS;
    }
    match fund_channels(config, &wallets, fund).await {
        Ok(()) => {
            for w in &wallets {
                eprintln!("funded {} with {fund} Pi", w.public_key());
            }
            eprintln!(
                "set PI_CHANNEL_SEEDS to the line above (keep it secret) and restart the workers"
            );
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!(
                "error: {err:#}\nthe seeds above are saved; run `channels create` again only for new ones, or start the service with PI_CHANNEL_SEEDS set and fund them by running this funding again"
            );
            ExitCode::FAILURE
        }
    }
}

/// `PI_CHANNEL_SEEDS=S…,S…`.
fn seeds_line(wallets: &[Wallet]) -> String {
    let seeds: Vec<String> = wallets.iter().map(Wallet::expose_seed).collect();
    format!("PI_CHANNEL_SEEDS={}", seeds.join(","))
}

/// Write `line` to a new file only the owner can read.
fn write_private(path: &Path, line: &str) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(line.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Create the accounts with `create_account` operations from the app wallet (existing ones
/// are skipped, so this can be repeated).
async fn fund_channels(config: &Config, wallets: &[Wallet], fund: PiAmount) -> anyhow::Result<()> {
    let Some(endpoints) = PiEndpoints::remote(config) else {
        anyhow::bail!("funding needs PI_API_KEY (a real Pi or a separate pi-sim)");
    };
    let seed = config
        .wallet_seed
        .as_ref()
        .context("PI_WALLET_SEED is not set")?;
    let app = Wallet::from_seed(seed.expose())
        .map_err(|_| anyhow::anyhow!("PI_WALLET_SEED is not a usable Stellar seed"))?;
    let ledger = open_ledger(config).await?;
    let pi = PiServices::connect(endpoints, config, FUNDING_HORIZON_TIMEOUT)?;
    let processor = pi.payout_processor(&ledger, app, Vec::new());
    let result = processor.fund_channels(wallets, fund).await;
    ledger.close().await;
    result.context("funding the channel accounts from the app wallet")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_file_is_private_and_never_overwritten() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("channels.env");
        let wallets = vec![Wallet::generate(), Wallet::generate()];
        let line = seeds_line(&wallets);
        assert!(line.starts_with("PI_CHANNEL_SEEDS=S"));
        assert_eq!(line.matches(",S").count(), 1);
        write_private(&path, &line).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert!(write_private(&path, "x").is_err());
        let text = std::fs::read_to_string(&path).unwrap();
        assert_eq!(text.trim_end(), line);
    }
}
