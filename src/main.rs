//! `pi-payments`: parse the command line, check the configuration (a bad value → one line
//! naming the variable, exit code 2), and run the chosen subcommand.

use clap::Parser;
use pi_payments::cli::{BenchCommand, Cli, Command};
use pi_payments::services::migrate;
use pi_payments::startup::{Role, RunningApp};
use pi_payments::telemetry::{init_tracing, stop_signal};
use pi_payments::{Config, bench, bench_payouts};
use pi_sim::cli::SimArgs;
use std::process::ExitCode;

/// mimalloc instead of glibc's malloc: requests allocate on one thread and free on another
/// (hyper's buffers, ledger rows, jobs), which glibc's arenas handle with locks and
/// consolidation passes.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // clap prints its own errors and exits with code 2.
    let cli = Cli::parse();
    let command = match cli.command_or_serve() {
        Ok(command) => command,
        Err(err) => err.exit(),
    };
    if cli.check_config {
        return pi_payments::check_config::run(&command, cli.json);
    }
    init_tracing();
    pi_payments_core::pi_client::install_crypto_provider();
    let json = cli.json;
    let result = match command {
        Command::Sim(args) => run_sim(args).await,
        Command::Bench(BenchCommand::Callbacks(args)) => bench::run(args).await,
        Command::Bench(BenchCommand::Payouts(args)) => bench_payouts::run(args).await,
        command => {
            let config = match command.config_args().map(|args| Config::from_args(&args)) {
                Some(Ok(config)) => config,
                Some(Err(err)) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(2);
                }
                None => unreachable_command(),
            };
            match command {
                Command::Migrate(_) => migrate(&config).await.map(|()| {
                    if json {
                        println!(
                            "{}",
                            serde_json::json!({"migrated": true, "ledger": ledger_kind(&config)})
                        );
                    } else {
                        println!("migrations applied to the ledger");
                    }
                }),
                Command::Reconcile(args) => {
                    return match pi_payments::reconcile::run(&config, &args, json).await {
                        Ok(code) => code,
                        Err(err) => {
                            eprintln!("error: {err:#}");
                            ExitCode::FAILURE
                        }
                    };
                }
                Command::Payouts(command) => {
                    return pi_payments::payouts_cli::run(command, config, json).await;
                }
                Command::Channels(command) => {
                    return pi_payments::channels_cli::run(command, config, json).await;
                }
                Command::Api(_) => serve(config, Role::Api).await,
                Command::Worker(_) => serve(config, Role::Worker).await,
                _ => serve(config, Role::Serve).await,
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A setting found wrong only once the service could look (PI_NETWORK against Horizon,
        // PI_API_KEY for a role that needs it).
        Err(err)
            if err
                .chain()
                .any(|e| e.is::<pi_payments::config::ConfigError>()) =>
        {
            eprintln!("error: {err:#}");
            ExitCode::from(2)
        }
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// `sim` and `bench` are handled before the service's configuration is read.
fn unreachable_command() -> ! {
    eprintln!("error: this subcommand takes no service configuration");
    std::process::exit(2)
}

fn ledger_kind(config: &Config) -> &'static str {
    if config.database_url.starts_with("sqlite:") {
        "sqlite"
    } else {
        "postgres"
    }
}

async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    let app = RunningApp::start(config, role).await?;
    if let Some(text) = app.walkthrough_running(&program_for_banner()) {
        println!("{text}");
    }
    app.run_until(stop_signal()).await
}

async fn run_sim(args: SimArgs) -> anyhow::Result<()> {
    let sim = pi_sim::start(args.into_config().map_err(anyhow::Error::msg)?).await?;
    println!("{}", sim.ready_line());
    stop_signal().await;
    sim.shutdown().await;
    Ok(())
}

/// How the banner names this binary: its path (relative to the current directory when it is
/// below it, e.g. `target/debug/pi-payments` after `cargo run`), so that its lines work as
/// pasted before `pi-payments` is installed on the PATH.
fn program_for_banner() -> String {
    let Ok(exe) = std::env::current_exe() else {
        return "pi-payments".to_string();
    };
    let relative = std::env::current_dir()
        .ok()
        .and_then(|cwd| exe.strip_prefix(cwd).ok().map(std::path::Path::to_path_buf));
    match relative {
        Some(path) => format!("./{}", path.display()),
        None => exe.display().to_string(),
    }
}
