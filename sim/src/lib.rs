//! pi-sim: a local, in-memory stand-in for Pi's Platform API (`/v2/...`) and for the Horizon
//! server of the Pi blockchain, faithful enough that a payments backend tested against it
//! behaves the same against Pi. It depends on none of pi-payments' crates on purpose: it must
//! not share their misunderstandings.
//!
//! Start it in-process with [`start`] (tests, `pi-payments --sim`) or as the `pi-sim` binary.

pub mod amount;
pub mod chain;
pub mod chain_xdr;
pub mod cli;
pub mod config;
#[cfg(feature = "control-client")]
pub mod control_client;
mod error;
pub mod faults;
pub mod horizon;
pub mod keys;
pub mod signal;

mod audit;
mod control;
mod layer;
mod persist;
mod platform;
mod request_log;
mod response;
mod server;
mod shared;
mod state;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

pub use crate::config::SimConfig;
pub use crate::error::SimError;
pub use crate::faults::Target;
pub use crate::state::A2uOpenLimit;

use crate::chain::{Chain, ChainConfig};
use crate::faults::{FaultKnobs, Faults};
use crate::keys::Keypair;
use crate::layer::{LayerState, fault_layer};
use crate::request_log::RequestLog;
use crate::shared::Shared;
use crate::state::{PlatformState, Settings, random_alphanumeric};

/// How long [`RunningSim::shutdown`] lets in-flight requests finish.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// A started simulator: where it listens and the secrets a client needs. Dropping it stops the
/// listeners; [`RunningSim::shutdown`] also waits for in-flight requests.
pub struct RunningSim {
    /// Base URL of the Platform API (append `/v2/...`), e.g. `http://127.0.0.1:18081`.
    pub platform_url: String,
    /// Base URL of Horizon.
    pub horizon_url: String,
    /// The Platform listener's port.
    pub platform_port: u16,
    /// The Horizon listener's port.
    pub horizon_port: u16,
    /// The server API key (`Authorization: Key <api_key>`).
    pub api_key: String,
    /// The app wallet's `G…` address.
    pub app_wallet_public_key: String,
    /// The app wallet's `S…` seed (the backend signs A2U payments with it).
    pub app_wallet_seed: String,
    /// The network passphrase (`Pi Testnet` by default).
    pub network_passphrase: String,
    shared: Arc<Shared>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
    /// `--state-file`, saved at shutdown.
    state_file: Option<std::path::PathBuf>,
}

impl RunningSim {
    /// The ready line the binary prints: `{"event":"ready", platform_url, horizon_url,
    /// platform_port, horizon_port, api_key, app_wallet_public_key, app_wallet_seed,
    /// network_passphrase, ledger}`.
    pub fn ready_json(&self) -> serde_json::Value {
        self.shared.ready_json()
    }

    /// [`RunningSim::ready_json`] as one line of text with the fields in the documented order
    /// (`event` first), as the binary prints it.
    pub fn ready_line(&self) -> String {
        self.shared.ready_line()
    }

    /// The simulated chain, for tests that act on it directly (e.g. paying twice).
    pub fn chain(&self) -> &Chain {
        &self.shared.chain
    }

    /// Whether the state was loaded from `--state-file` (a restart) rather than made fresh.
    pub fn restored(&self) -> bool {
        self.shared.restored
    }

    /// Write the state file now (no-op without one); the simulator also saves on its own.
    pub fn save_state(&self) -> std::io::Result<()> {
        match &self.state_file {
            Some(path) => persist::save(&self.shared, path),
            None => Ok(()),
        }
    }

    /// Stops accepting, lets in-flight requests finish (up to a few seconds), saves the state
    /// file (if any) and returns.
    pub async fn shutdown(self) {
        let token = self.shutdown.clone();
        let tracker = self.tracker.clone();
        let shared = self.shared.clone();
        let state_file = self.state_file.clone();
        drop(self);
        token.cancel();
        tracker.close();
        if tokio::time::timeout(SHUTDOWN_GRACE, tracker.wait())
            .await
            .is_err()
        {
            tracing::warn!("pi-sim: some requests were still running at shutdown");
        }
        if let Some(path) = state_file
            && let Err(error) = persist::save(&shared, &path)
        {
            tracing::warn!(%error, path = %path.display(), "pi-sim: could not save the state file at shutdown");
        }
    }
}

impl Drop for RunningSim {
    fn drop(&mut self) {
        self.shutdown.cancel();
    }
}

async fn bind(host: std::net::IpAddr, port: u16) -> Result<TcpListener, SimError> {
    let addr = SocketAddr::new(host, port);
    TcpListener::bind(addr)
        .await
        .map_err(|source| SimError::Bind {
            addr: addr.to_string(),
            source,
        })
}

/// Starts the simulator: binds both listeners on `config.host` (127.0.0.1 by default; port
/// 0 = a free port), creates the chain, funds the app wallet and serves until the returned
/// [`RunningSim`] is shut down or dropped. Must be called inside a tokio runtime.
pub async fn start(config: SimConfig) -> Result<RunningSim, SimError> {
    config.validate()?;
    let saved = match &config.state_file {
        Some(path) => persist::load(path)?,
        None => None,
    };
    let configured_wallet = match &config.app_wallet_seed {
        Some(seed) => Some(Keypair::from_seed(seed.trim()).ok_or(SimError::InvalidSeed)?),
        None => None,
    };
    let saved_wallet = match &saved {
        Some(s) => Some(Keypair::from_seed(&s.app_wallet_seed).ok_or(SimError::InvalidSeed)?),
        None => None,
    };
    if let (Some(saved), Some(path)) = (&saved, &config.state_file) {
        let other_wallet = match (&configured_wallet, &saved_wallet) {
            (Some(c), Some(s)) => c.public_key() != s.public_key(),
            _ => false,
        };
        if saved.network != config.network || other_wallet {
            return Err(SimError::Config(format!(
                "the state file {} was made for another network or app wallet; give the same ones, or move the file away to start with an empty simulator",
                path.display()
            )));
        }
    }
    let app_wallet = match (configured_wallet, saved_wallet) {
        (Some(wallet), _) | (None, Some(wallet)) => wallet,
        (None, None) => Keypair::random(),
    };
    // A configured key wins (clients use it); otherwise the saved one keeps working.
    let api_key = config
        .api_key
        .clone()
        .or_else(|| saved.as_ref().map(|s| s.api_key.clone()))
        .unwrap_or_else(|| random_alphanumeric(64).to_lowercase());
    let platform_listener = bind(config.host, config.platform_port).await?;
    let horizon_listener = bind(config.host, config.horizon_port).await?;
    // The URLs in the ready line: a wildcard bind is reachable on this machine's loopback.
    let url_host = match config.host {
        host if host.is_unspecified() => "127.0.0.1".to_owned(),
        std::net::IpAddr::V6(host) => format!("[{host}]"),
        host => host.to_string(),
    };
    let local_port = |l: &TcpListener| {
        l.local_addr()
            .map(|a| a.port())
            .map_err(|source| SimError::Bind {
                addr: config.host.to_string(),
                source,
            })
    };
    let platform_port = local_port(&platform_listener)?;
    let horizon_port = local_port(&horizon_listener)?;

    let chain = Chain::new(ChainConfig {
        passphrase: config.network.clone(),
        ledger_seconds: config.ledger_seconds,
        max_tx_per_ledger: config.max_tx_per_ledger,
        submit_timeout: config.submit_timeout,
        clock_offset_seconds: config.clock_offset_seconds,
    });
    let app_address = app_wallet.public_key();
    let (platform, restored) = match saved {
        Some(saved) => {
            let unreadable = || {
                SimError::Config(
                    "the state file holds an unreadable account or seed; move it away to start with an empty simulator".into(),
                )
            };
            if !chain.restore(saved.chain) {
                return Err(unreadable());
            }
            (
                PlatformState::restore(saved.platform).ok_or_else(unreadable)?,
                true,
            )
        }
        None => {
            chain.fund_account(&app_address, config.app_balance);
            (PlatformState::default(), false)
        }
    };

    let knobs = FaultKnobs {
        latency_ms: config.latency_ms,
        rate_limit: config.rate_limit,
        fail_rate: config.fail_rate,
        drop_rate: config.drop_rate,
        fail_next: 0,
        drop_next: 0,
        throttle_next: 0,
        unavailable_next: 0,
        verification_lag_next: 0,
        endpoints: None,
        targets: config.fault_targets.clone(),
        seed: config.seed.unwrap_or_else(rand::random),
        ledger_seconds: config.ledger_seconds,
        max_tx_per_ledger: config.max_tx_per_ledger,
        clock_offset_seconds: config.clock_offset_seconds,
    };
    let shared = Arc::new(Shared {
        settings: Settings {
            api_key: api_key.clone(),
            network: config.network.clone(),
            platform_url: format!("http://{url_host}:{platform_port}"),
            horizon_url: format!("http://{url_host}:{horizon_port}"),
            app_wallet: app_wallet.clone(),
            app_address: app_address.clone(),
            app_balance: config.app_balance,
            pioneer_balance: config.pioneer_balance,
            a2u_open_limit: config.a2u_open_limit,
        },
        chain: chain.clone(),
        platform: Mutex::new(platform),
        faults: Mutex::new(Faults::new(knobs.clone())),
        log: Mutex::new(RequestLog::default()),
        initial_knobs: knobs,
        platform_port,
        horizon_port,
        changes: std::sync::atomic::AtomicU64::new(0),
        restored,
    });

    // Counts the requests that may change state, for the state file's saver.
    let count_changes = axum::middleware::from_fn_with_state(shared.clone(), count_changes);
    let platform_router = Router::new()
        .merge(platform::routes())
        .merge(control::routes())
        .fallback(platform::not_found)
        .method_not_allowed_fallback(platform::method_not_allowed)
        .with_state(shared.clone())
        .layer(axum::middleware::from_fn_with_state(
            LayerState {
                shared: shared.clone(),
                target: Target::Platform,
            },
            fault_layer,
        ))
        .layer(count_changes.clone());
    let horizon_router = horizon::router(chain)
        .layer(axum::middleware::from_fn_with_state(
            LayerState {
                shared: shared.clone(),
                target: Target::Horizon,
            },
            fault_layer,
        ))
        .layer(count_changes);

    let shutdown = CancellationToken::new();
    let tracker = TaskTracker::new();
    server::spawn(
        platform_listener,
        platform_router,
        shutdown.clone(),
        tracker.clone(),
    );
    server::spawn(
        horizon_listener,
        horizon_router,
        shutdown.clone(),
        tracker.clone(),
    );
    if let Some(path) = &config.state_file {
        // Written at once, so the file exists (and a restart finds the key and wallet) even
        // if this process is killed before anything changes.
        persist::save(&shared, path).map_err(|e| {
            SimError::Config(format!(
                "cannot write the state file {} ({e}); give a writable path",
                path.display()
            ))
        })?;
        tracker.spawn(persist::saver(
            shared.clone(),
            path.clone(),
            shutdown.clone(),
        ));
    }
    tracing::info!(platform_port, horizon_port, network = %config.network, restored, "pi-sim listening");

    Ok(RunningSim {
        platform_url: shared.settings.platform_url.clone(),
        horizon_url: shared.settings.horizon_url.clone(),
        platform_port,
        horizon_port,
        api_key,
        app_wallet_public_key: app_address,
        app_wallet_seed: app_wallet.secret_seed(),
        network_passphrase: config.network,
        shared,
        shutdown,
        tracker,
        state_file: config.state_file,
    })
}

/// Counts answered requests that may have changed the simulator's state (all but GET/HEAD).
async fn count_changes(
    axum::extract::State(shared): axum::extract::State<Arc<Shared>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let changes = !matches!(
        *request.method(),
        axum::http::Method::GET | axum::http::Method::HEAD
    );
    let response = next.run(request).await;
    if changes {
        shared
            .changes
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel);
    }
    response
}
