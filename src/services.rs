//! Opening what the service talks to, one way for every subcommand: the ledger, the job queue,
//! and Pi (the Platform API client with its rate limiter, and Horizon), or the built-in
//! simulator when no Pi API key is configured. `serve`, `api` and `worker` take all of it
//! through [`Services::connect`]; each CLI subcommand opens only the parts it needs with the
//! same functions ([`open_ledger`], [`open_queue`], [`PiServices::connect`]), so a connection's
//! settings and error messages are written once.

use crate::config::{Config, ConfigError, PiTarget, QueueTarget};
use anyhow::Context;
use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::payout::PayoutProcessor;
use pi_payments_core::pi_client::{PiClient, PiClientConfig};
use pi_payments_core::rate_limit::{RateLimiter, budget_key};
use pi_payments_core::stellar::{Network, Wallet};
use pi_payments_worker::{Queue, QueueConfig, connect_queue};
use std::num::NonZeroU32;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

/// How long a Horizon request of the service may take (a submission waits for a ledger close).
pub const HORIZON_TIMEOUT: Duration = Duration::from_secs(30);

/// Where Pi and Horizon are for this run (resolved: the simulator's URLs when it runs).
#[derive(Clone)]
pub struct PiEndpoints {
    /// Platform API base URL (without `/v2`).
    pub api_base_url: String,
    /// Horizon base URL.
    pub horizon_url: String,
    /// Server API key; private so that only [`PiServices::connect`] hands it to the client.
    api_key: String,
    /// The app wallet's G… address.
    pub app_wallet: String,
    /// Network passphrase.
    pub network: String,
}

impl std::fmt::Debug for PiEndpoints {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PiEndpoints")
            .field("api_base_url", &self.api_base_url)
            .field("horizon_url", &self.horizon_url)
            .field("api_key", &"<redacted>")
            .field("app_wallet", &self.app_wallet)
            .field("network", &self.network)
            .finish()
    }
}

impl PiEndpoints {
    /// The API key, for `serve`'s banner only: the embedded simulator's key is printed so that
    /// `reconcile --report` and other tools can reach it. Never log it.
    pub(crate) fn api_key(&self) -> &str {
        &self.api_key
    }

    /// The configured Pi (`PI_API_KEY` and its URLs); `None` when the configuration asks for
    /// the built-in simulator, which only [`Services::connect`] starts.
    pub fn remote(config: &Config) -> Option<PiEndpoints> {
        match &config.pi {
            PiTarget::Remote {
                api_key,
                api_base_url,
                horizon_url,
                network,
                app_wallet,
            } => Some(PiEndpoints {
                api_base_url: api_base_url.clone(),
                horizon_url: horizon_url.clone(),
                api_key: api_key.expose().to_string(),
                app_wallet: app_wallet.clone(),
                network: network.clone(),
            }),
            PiTarget::Simulator { .. } => None,
        }
    }

    /// The endpoints of a simulator started for this process; a configured `PI_APP_WALLET`
    /// overrides the simulator's wallet.
    fn simulated(sim: &pi_sim::RunningSim, config: &Config) -> PiEndpoints {
        let app_wallet = match &config.pi {
            PiTarget::Simulator { app_wallet } => app_wallet.as_ref(),
            PiTarget::Remote { .. } => None,
        };
        PiEndpoints {
            api_base_url: sim.platform_url.clone(),
            horizon_url: sim.horizon_url.clone(),
            api_key: sim.api_key.clone(),
            app_wallet: app_wallet
                .cloned()
                .unwrap_or_else(|| sim.app_wallet_public_key.clone()),
            network: sim.network_passphrase.clone(),
        }
    }
}

/// Pi as this process talks to it: one Platform API client and one Horizon client, each with
/// its rate limiter shared by everything the process does, and, with `REDIS_URL`, by every
/// process of the deployment (see [`budget_limiter`]).
#[derive(Debug, Clone)]
pub struct PiServices {
    /// Where Pi and Horizon are.
    pub endpoints: PiEndpoints,
    /// The Platform API client, rate-limited by `PI_RATE_LIMIT`.
    pub client: PiClient,
    /// The Horizon client, rate-limited by `HORIZON_RATE_LIMIT`.
    pub horizon: HorizonClient,
}

impl PiServices {
    /// The clients for `endpoints`; Horizon requests may take `horizon_timeout`.
    pub fn connect(
        endpoints: PiEndpoints,
        config: &Config,
        horizon_timeout: Duration,
    ) -> anyhow::Result<PiServices> {
        // The Platform API's budget belongs to the API key (at its base URL); Horizon's to the
        // Horizon (its public one limits per client IP, which a deployment's processes share).
        let pi_limiter = budget_limiter(
            config,
            "pi",
            &[&endpoints.api_key, &endpoints.api_base_url],
            config.rate_limit,
        )?;
        let horizon_limiter = budget_limiter(
            config,
            "horizon",
            &[&endpoints.horizon_url],
            config.horizon_rate_limit,
        )?;
        pi_payments_core::telemetry::set_rate_limits(
            config.rate_limit.get(),
            config.horizon_rate_limit.get(),
        );
        tracing::info!(
            pi_rate_limit = config.rate_limit.get(),
            horizon_rate_limit = config.horizon_rate_limit.get(),
            shared_through_redis = pi_limiter.is_shared(),
            "rate limits of this deployment (requests per second)"
        );
        let client = PiClient::new(PiClientConfig::new(
            endpoints.api_base_url.clone(),
            endpoints.api_key.clone(),
            pi_limiter,
        ))?
        .with_unverified_share(config.unverified_share);
        let horizon = HorizonClient::new(&endpoints.horizon_url, horizon_timeout)?
            .with_rate_limiter(horizon_limiter);
        Ok(PiServices {
            endpoints,
            client,
            horizon,
        })
    }

    /// Stop (a [`ConfigError`] on `PI_NETWORK`, exit 2) when the Horizon at `PI_HORIZON_URL`
    /// serves another network than `PI_NETWORK`: payouts would be signed for one network and
    /// sent to another. A Horizon that does not answer only costs a warning: the check runs
    /// again at the next start, and an envelope signed for the wrong network cannot land.
    pub async fn check_network(&self) -> anyhow::Result<()> {
        match self.horizon.network_passphrase().await {
            Ok(served) if served == self.endpoints.network => Ok(()),
            Ok(served) => Err(ConfigError::network_mismatch(
                &self.endpoints.network,
                &served,
                &self.endpoints.horizon_url,
            )
            .into()),
            Err(error) => {
                tracing::warn!(%error, network = %self.endpoints.network, "could not read Horizon's network at start; not checked");
                Ok(())
            }
        }
    }

    /// The A2U payout pipeline on these clients: payments from the app `wallet`, carried by
    /// the `channels` accounts (none: the wallet is the transactions' source too).
    pub fn payout_processor(
        &self,
        ledger: &Ledger,
        wallet: Wallet,
        channels: Vec<Wallet>,
    ) -> PayoutProcessor {
        PayoutProcessor::new(
            ledger.clone(),
            self.client.clone(),
            self.horizon.clone(),
            wallet,
            Network::new(&self.endpoints.network),
            channels,
        )
    }
}

/// The limiter of one upstream budget (`per_second` for the whole deployment): with `REDIS_URL`
/// a schedule in Redis shared by every process whose `identity` (e.g. API key and URL) is the
/// same, keyed by a hash of it; without Redis this process is the deployment, so an in-process
/// limiter.
pub fn budget_limiter(
    config: &Config,
    kind: &str,
    identity: &[&str],
    per_second: NonZeroU32,
) -> anyhow::Result<Arc<RateLimiter>> {
    let limiter = match &config.queue {
        QueueTarget::Redis(url) => {
            RateLimiter::shared_at(url, budget_key(kind, identity), per_second)
                .context("connecting the shared rate limit (REDIS_URL)")?
        }
        QueueTarget::Sqlite(_) => RateLimiter::new(per_second),
    };
    Ok(Arc::new(limiter))
}

/// How long a start waits for the ledger's database or Redis to accept a connection before it
/// stops with one line naming the variable (instead of retrying in silence).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// `host:port` of a server URL, without user or password, for messages.
fn server_of(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(u) => match (u.host_str(), u.port()) {
            (Some(host), Some(port)) => format!("{host}:{port}"),
            (Some(host), None) => host.to_string(),
            _ => "(no host)".to_string(),
        },
        Err(_) => "(unparsable URL)".to_string(),
    }
}

/// Connect to the ledger of `DATABASE_URL` without migrating, within [`CONNECT_TIMEOUT`] for a
/// server (a SQLite file opens locally).
async fn connect_ledger(config: &Config) -> anyhow::Result<Ledger> {
    let url = &config.database_url;
    let connect = Ledger::connect_without_migrating(url);
    if url.starts_with("sqlite:") {
        return connect.await.context("opening the ledger (DATABASE_URL)");
    }
    let server = server_of(url);
    match tokio::time::timeout(CONNECT_TIMEOUT, connect).await {
        Ok(Ok(ledger)) => Ok(ledger),
        Ok(Err(err)) => Err(anyhow::anyhow!(
            "DATABASE_URL: the ledger's database at {server} refused the connection ({err}): check the user, password and database name in DATABASE_URL"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "DATABASE_URL: the ledger's database at {server} did not accept a connection within {} s: check that PostgreSQL runs there and that DATABASE_URL points at it",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Open the ledger of `DATABASE_URL`, applying its migrations; repeated callbacks of a row
/// idle for `STUCK_AFTER` re-enqueue its job.
pub async fn open_ledger(config: &Config) -> anyhow::Result<Ledger> {
    let ledger = connect_ledger(config).await?;
    ledger
        .migrate()
        .await
        .context("migrating the ledger (DATABASE_URL)")?;
    Ok(ledger.with_stuck_after(config.reconcile.stuck_after))
}

/// Apply the ledger migrations and close it again (`pi-payments migrate`).
pub async fn migrate(config: &Config) -> anyhow::Result<()> {
    let ledger = connect_ledger(config).await?;
    ledger.migrate().await?;
    ledger.close().await;
    Ok(())
}

/// Connect the job queue: Redis (`REDIS_URL`, within [`CONNECT_TIMEOUT`]) or the embedded
/// SQLite queue file.
pub async fn open_queue(config: &Config) -> anyhow::Result<Queue> {
    let (redis_url, sqlite_path) = match &config.queue {
        QueueTarget::Redis(url) => (Some(url.clone()), PathBuf::new()),
        QueueTarget::Sqlite(path) => (None, path.clone()),
    };
    let queue_config = QueueConfig {
        redis_url: redis_url.clone(),
        sqlite_path,
        namespace: config.queue_namespace.clone(),
    };
    let Some(url) = redis_url else {
        return connect_queue(&queue_config)
            .await
            .context("opening the embedded job queue file");
    };
    let server = server_of(&url);
    match tokio::time::timeout(CONNECT_TIMEOUT, connect_queue(&queue_config)).await {
        Ok(Ok(queue)) => Ok(queue),
        Ok(Err(err)) => Err(anyhow::anyhow!(
            "REDIS_URL: Redis at {server} refused the connection ({err}): check REDIS_URL (password, database number)"
        )),
        Err(_) => Err(anyhow::anyhow!(
            "REDIS_URL: Redis at {server} did not accept a connection within {} s: check that Redis runs there and that REDIS_URL points at it",
            CONNECT_TIMEOUT.as_secs()
        )),
    }
}

/// Start pi-sim on free ports (`PI_API_KEY` is unset): a given `PI_WALLET_SEED` becomes the
/// simulated app wallet (funded), so payouts run against it; otherwise the simulator makes
/// one (used for payouts too).
async fn start_simulator(config: &Config) -> anyhow::Result<pi_sim::RunningSim> {
    pi_sim::start(pi_sim::SimConfig {
        platform_port: 0,
        horizon_port: 0,
        app_wallet_seed: config.wallet_seed.as_ref().map(|s| s.expose().to_string()),
        // Kept beside the ledger: a restart finds what the ledger remembers.
        state_file: config.sim_state_file.clone(),
        ..pi_sim::SimConfig::default()
    })
    .await
    .context("starting the built-in Pi simulator (PI_API_KEY is unset)")
}

/// Everything a long-running process (`serve`, `api`, `worker`) works with.
pub struct Services {
    /// The ledger, migrated, with its WAL checkpointer running.
    pub ledger: Ledger,
    /// The job queue.
    pub queue: Queue,
    /// Pi, or the in-process simulator.
    pub pi: PiServices,
    /// The simulator, when it runs in this process (`PI_API_KEY` unset).
    pub sim: Option<pi_sim::RunningSim>,
}

impl std::fmt::Debug for Services {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Services")
            .field("pi", &self.pi.endpoints)
            .field("simulated", &self.sim.is_some())
            .finish_non_exhaustive()
    }
}

impl Services {
    /// Open the ledger (migrating it), connect the queue, and connect to Pi, starting the
    /// built-in simulator when no Pi API key is configured.
    pub async fn connect(config: &Config) -> anyhow::Result<Services> {
        pi_payments_core::pi_client::install_crypto_provider();
        let ledger = open_ledger(config).await?;
        ledger.spawn_checkpointer();
        let queue = open_queue(config).await?;
        let (endpoints, sim) = match PiEndpoints::remote(config) {
            Some(endpoints) => (endpoints, None),
            None => {
                let sim = start_simulator(config).await?;
                (PiEndpoints::simulated(&sim, config), Some(sim))
            }
        };
        let simulated = sim.is_some();
        let pi = PiServices::connect(endpoints, config, HORIZON_TIMEOUT)?;
        if !simulated {
            pi.check_network().await?;
        }
        Ok(Services {
            ledger,
            queue,
            pi,
            sim,
        })
    }
}
