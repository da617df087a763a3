//! Logging setup and the process's stop signal.

/// Install the global tracing subscriber: `RUST_LOG` filters (default `info`), logs go to
/// stderr so that stdout stays for what the user asked for (the walk-through, bench tables).
/// Requests are logged by path only; headers and bodies (which carry access tokens) never are.
pub fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C), as pi-sim's [`pi_sim::signal::stop_signal`] does
/// (one implementation for both binaries), and logs that the service is stopping.
pub async fn stop_signal() {
    pi_sim::signal::stop_signal().await;
    tracing::info!("stop signal received: shutting down gracefully");
}
