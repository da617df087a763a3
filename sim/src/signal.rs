//! The stop signal of a process that serves the simulator: the `pi-sim` binary, and
//! `pi-payments`, which depends on pi-sim and uses this one rather than keeping a copy.

/// Resolves on SIGTERM or SIGINT (Ctrl-C). When SIGTERM cannot be listened for, a warning says
/// so and only Ctrl-C stops the process.
pub async fn stop_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(error) => {
                tracing::warn!(%error, "cannot listen for SIGTERM; only Ctrl-C stops this process");
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}
