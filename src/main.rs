//! `pi-payments`: parse the command line, check the configuration (a bad value → one line
//! naming the variable, exit code 2), and run the chosen subcommand.

use clap::Parser;
use pi_payments::cli::{BenchCommand, Cli, Command};
use pi_payments::services::migrate;
use pi_payments::startup::{Role, RunningApp};
use pi_payments::telemetry::{LogFormat, init_tracing, stop_signal};
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
    // Read before anything logs (and checked by --check-config too).
    let log_format = match LogFormat::from_env() {
        Ok(format) => format,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    if cli.check_config {
        return pi_payments::check_config::run(&cli);
    }
    init_tracing(log_format);
    pi_payments_core::pi_client::install_crypto_provider();
    let result = match cli.command {
        Some(Command::Sim(args)) => run_sim(args).await,
        Some(Command::Bench(BenchCommand::Callbacks(args))) => bench::run(args).await,
        Some(Command::Bench(BenchCommand::Payouts(args))) => bench_payouts::run(args).await,
        command => {
            let config = match Config::from_args(&cli.config) {
                Ok(config) => config,
                Err(err) => {
                    eprintln!("error: {err}");
                    return ExitCode::from(2);
                }
            };
            match command {
                Some(Command::Migrate) => migrate(&config).await.map(|()| {
                    println!("migrations applied to the ledger");
                }),
                Some(Command::Reconcile(args)) => {
                    return match pi_payments::reconcile::run(&config, &args).await {
                        Ok(code) => code,
                        Err(err) => {
                            eprintln!("error: {err:#}");
                            ExitCode::FAILURE
                        }
                    };
                }
                Some(Command::Payouts(command)) => {
                    return pi_payments::payouts_cli::run(command, config).await;
                }
                Some(Command::Channels(command)) => {
                    return pi_payments::channels_cli::run(command, config).await;
                }
                Some(Command::Api) => serve(config, Role::Api).await,
                Some(Command::Worker) => serve(config, Role::Worker).await,
                _ => serve(config, Role::Serve).await,
            }
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        // A setting found wrong only once the service could look (PI_NETWORK against Horizon).
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

async fn serve(config: Config, role: Role) -> anyhow::Result<()> {
    let app = RunningApp::start(config, role).await?;
    if let Some(text) = app.walkthrough() {
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
