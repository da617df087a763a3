//! The `pi-sim` binary: starts the simulator on 127.0.0.1, prints exactly one JSON "ready" line
//! on stdout once both listeners are up, logs to stderr, and stops cleanly on SIGTERM/SIGINT.

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;
use pi_sim::cli::SimArgs;
use pi_sim::signal::stop_signal;

/// A local Pi Platform API + Pi blockchain (Horizon) simulator.
#[derive(Parser, Debug)]
#[command(name = "pi-sim", version, about)]
struct Cli {
    #[command(flatten)]
    args: SimArgs,
}

#[tokio::main]
async fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let config = match Cli::parse().args.into_config() {
        Ok(config) => config,
        Err(message) => {
            eprintln!("pi-sim: {message}");
            return ExitCode::from(2);
        }
    };
    let sim = match pi_sim::start(config).await {
        Ok(sim) => sim,
        Err(error) => {
            eprintln!("pi-sim: {error}");
            return ExitCode::FAILURE;
        }
    };
    // The one stdout line tools wait for; everything else goes to stderr.
    let mut stdout = std::io::stdout().lock();
    if writeln!(stdout, "{}", sim.ready_line())
        .and_then(|()| stdout.flush())
        .is_err()
    {
        eprintln!("pi-sim: cannot write the ready line to stdout");
        return ExitCode::FAILURE;
    }
    drop(stdout);
    stop_signal().await;
    tracing::info!("pi-sim stopping");
    sim.shutdown().await;
    ExitCode::SUCCESS
}
