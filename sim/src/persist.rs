//! The optional state file (`--state-file`): the simulator's memory kept across restarts, so a
//! backend whose own ledger survives a restart (pi-payments' `serve`) finds at "Pi" and on the
//! chain what it left there, instead of an empty simulator that would make every settled
//! payment look missing. Saved on graceful shutdown and, while running, about once a second
//! after a request that may have changed something; written to a temporary file and renamed,
//! so a crash leaves the previous save whole. A crash loses at most the last second.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio_util::sync::CancellationToken;

use crate::chain::handle::ChainSnapshot;
use crate::error::SimError;
use crate::shared::Shared;
use crate::state::PlatformSnapshot;

/// The file's format version; a file of another version is refused, not misread.
const VERSION: u32 = 1;

/// How often the saver looks for changes.
const SAVE_EVERY: Duration = Duration::from_secs(1);

/// Everything the file holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct Snapshot {
    pub(crate) version: u32,
    /// The server API key, so that clients configured with it keep working.
    pub(crate) api_key: String,
    /// The app wallet (its seed), which payments were made to and from.
    pub(crate) app_wallet_seed: String,
    /// The network passphrase the chain was made for.
    pub(crate) network: String,
    pub(crate) platform: PlatformSnapshot,
    pub(crate) chain: ChainSnapshot,
}

/// Read a state file; `Ok(None)` when it does not exist yet (first start).
pub(crate) fn load(path: &Path) -> Result<Option<Snapshot>, SimError> {
    let bytes = match std::fs::read(path) {
        Ok(bytes) => bytes,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(err) => return Err(unreadable(path, &err.to_string())),
    };
    let snapshot: Snapshot =
        serde_json::from_slice(&bytes).map_err(|e| unreadable(path, &e.to_string()))?;
    if snapshot.version != VERSION {
        return Err(unreadable(
            path,
            &format!(
                "format version {} (this simulator reads {VERSION})",
                snapshot.version
            ),
        ));
    }
    Ok(Some(snapshot))
}

fn unreadable(path: &Path, why: &str) -> SimError {
    SimError::Config(format!(
        "cannot read the state file {} ({why}); move it away to start with an empty simulator",
        path.display()
    ))
}

/// Write the simulator's state to `path` (through a temporary file beside it).
pub(crate) fn save(shared: &Shared, path: &Path) -> std::io::Result<()> {
    let snapshot = Snapshot {
        version: VERSION,
        api_key: shared.settings.api_key.clone(),
        app_wallet_seed: shared.settings.app_wallet.secret_seed(),
        network: shared.settings.network.clone(),
        platform: shared.platform().snapshot(),
        chain: shared.chain.snapshot(),
    };
    let bytes = serde_json::to_vec(&snapshot).map_err(std::io::Error::other)?;
    let tmp = temporary_path(path);
    write_private(&tmp, &bytes)?;
    std::fs::rename(&tmp, path)
}

fn temporary_path(path: &Path) -> PathBuf {
    let mut name = path.file_name().unwrap_or_default().to_os_string();
    name.push(".tmp");
    path.with_file_name(name)
}

/// The file holds seeds (app wallet, Pioneers): readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}

/// Save to `path` whenever a request may have changed something, until `stop`.
pub(crate) async fn saver(shared: Arc<Shared>, path: PathBuf, stop: CancellationToken) {
    let mut saved = shared.changes.load(Ordering::Acquire);
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(SAVE_EVERY) => {}
        }
        let now = shared.changes.load(Ordering::Acquire);
        if now == saved {
            continue;
        }
        let shared = shared.clone();
        let target = path.clone();
        // Serializing a large state is CPU work: off the request threads' runtime slots.
        let written = tokio::task::spawn_blocking(move || save(&shared, &target)).await;
        match written {
            Ok(Ok(())) => saved = now,
            Ok(Err(error)) => {
                tracing::warn!(%error, path = %path.display(), "pi-sim: could not save the state file")
            }
            Err(error) => tracing::warn!(%error, "pi-sim: the state saver failed"),
        }
    }
}
