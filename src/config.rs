//! The service's configuration, checked once at start. Every value comes from a flag or its
//! environment variable (the groups of [`crate::cli`], gathered in [`crate::cli::ConfigArgs`]);
//! a subcommand reads only the groups it uses, the others keep their defaults. A bad value
//! becomes a [`ConfigError`] whose text is one line naming the variable and saying what a good
//! value looks like. Secret values are never echoed back.
//!
//! Two variables are read outside this configuration, because logging starts before it:
//! `RUST_LOG` (the log filter, default `info`) and `LOG_FORMAT` (`text`, the default, or `json`:
//! one JSON object per line; anything else stops the process with exit code 2), both in
//! [`crate::telemetry`].

use crate::cli::ConfigArgs;
use pi_payments_api::auth::{self as api_auth, AuthConfig};
use pi_payments_core::rate_limit::DEFAULT_HORIZON_RATE_LIMIT;
use std::net::SocketAddr;
use std::num::NonZeroU32;
use std::path::PathBuf;

/// `PI_NETWORK` of Pi's mainnet: its network passphrase, as Pi's payment DTOs name it.
pub const PI_MAINNET: &str = "Pi Network";
/// `PI_NETWORK` of Pi's testnet (the default).
pub const PI_TESTNET: &str = "Pi Testnet";

/// `HORIZON_RATE_LIMIT`'s default with the built-in simulator (without `PI_API_KEY`); against a
/// real Horizon it is [`DEFAULT_HORIZON_RATE_LIMIT`].
pub const SIMULATOR_HORIZON_RATE_LIMIT: u32 = 100;
/// Pi's production Platform API.
pub const DEFAULT_PI_API_BASE_URL: &str = "https://api.minepi.com";
/// Horizon of Pi's mainnet.
pub const MAINNET_HORIZON_URL: &str = "https://api.mainnet.minepi.com";
/// Horizon of Pi's testnet.
pub const TESTNET_HORIZON_URL: &str = "https://api.testnet.minepi.com";
/// The ledger used when `DATABASE_URL` is unset.
pub const DEFAULT_DATABASE_URL: &str = "sqlite://pi-payments.db";
/// The queue namespace of a deployment (tests use their own).
pub const DEFAULT_QUEUE_NAMESPACE: &str = "prod";
/// Where the API listens when `BIND_ADDR` is unset.
pub const DEFAULT_BIND_ADDR: &str = "127.0.0.1:8080";
/// Where `pi-payments worker` serves its probes and metrics when `WORKER_ADDR` is unset: on
/// loopback (a scraper on another host needs an explicit `0.0.0.0:8081`), next to the API's
/// port and clear of Prometheus' own 9090.
pub const DEFAULT_WORKER_ADDR: &str = "127.0.0.1:8081";

/// A configuration value that cannot be used. `Display` is the one line the user sees.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}{shown} {problem}")]
pub struct ConfigError {
    /// The environment variable (same meaning as its `--flag`).
    pub variable: &'static str,
    /// `="value"` for non-secrets, empty for secrets and missing values.
    shown: String,
    /// What is wrong and what to write instead.
    pub problem: String,
}

impl ConfigError {
    /// `PI_NETWORK` names `configured` but the Horizon at `horizon_url` serves `served`.
    pub fn network_mismatch(configured: &str, served: &str, horizon_url: &str) -> ConfigError {
        ConfigError::new(
            "PI_NETWORK",
            Some(configured),
            format!(
                "does not match the Horizon at {horizon_url}, which serves {served:?}: set PI_NETWORK to the network of your app (and its API key), or point PI_HORIZON_URL at that network's Horizon"
            ),
        )
    }

    /// `PI_API_KEY` is unset for a process `role` (`api`, `worker`) that must never fall back
    /// to a simulator of its own: a missing secret in production must not fail open.
    pub fn pi_api_key_required(role: &str) -> ConfigError {
        ConfigError::new(
            "PI_API_KEY",
            None,
            format!(
                "is not set: `pi-payments {role}` talks to Pi and never starts a simulator of its own. Set PI_API_KEY and PI_APP_WALLET (Pi Developer Portal); for a trial, start one `pi-payments sim` and give every process its PI_API_BASE_URL, PI_HORIZON_URL, PI_API_KEY and PI_APP_WALLET (from its ready line), or run `pi-payments serve`, which embeds a simulator"
            ),
        )
    }

    fn new(variable: &'static str, value: Option<&str>, problem: impl Into<String>) -> ConfigError {
        let shown = value
            .map(|v| format!("={:?}", v.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        ConfigError {
            variable,
            shown,
            problem: problem.into(),
        }
    }
}

/// The secret type of every secret value here (API key, webhook secret, seeds): redacted in
/// `Debug` and `Display`.
pub use pi_payments_core::secret::Secret;

/// Where the Pi Platform API and Horizon are, and with which key: either Pi's (a key was
/// given) or the built-in simulator, started by [`crate::startup`].
#[derive(Debug, Clone)]
pub enum PiTarget {
    /// The real Pi (or any server speaking its API) with a server API key.
    Remote {
        /// Server API key (`Authorization: Key …`).
        api_key: Secret,
        /// Base URL without `/v2`.
        api_base_url: String,
        /// Horizon of the network.
        horizon_url: String,
        /// The network passphrase.
        network: String,
        /// The app wallet's G… address.
        app_wallet: String,
    },
    /// No key: run pi-sim in-process. URLs given explicitly are ignored (the sim's own are
    /// used); an explicit wallet overrides the sim's.
    Simulator {
        /// `PI_APP_WALLET`, if given.
        app_wallet: Option<String>,
    },
}

/// The job queue: Redis, or an embedded SQLite file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QueueTarget {
    /// `REDIS_URL`.
    Redis(String),
    /// The embedded queue's database file (or `:memory:`), apart from the ledger.
    Sqlite(PathBuf),
}

/// The whole configuration, checked.
#[derive(Debug, Clone)]
pub struct Config {
    /// Pi (or the simulator).
    pub pi: PiTarget,
    /// The ledger's database URL (sqlite:… or postgres:…).
    pub database_url: String,
    /// The job queue.
    pub queue: QueueTarget,
    /// Where the embedded simulator keeps its state across restarts (see
    /// [`sim_state_file_for`]); `None`: in memory. Used only without `PI_API_KEY`.
    pub sim_state_file: Option<PathBuf>,
    /// Requests per second to Pi.
    pub rate_limit: NonZeroU32,
    /// Requests per second to Horizon (`HORIZON_RATE_LIMIT`).
    pub horizon_rate_limit: NonZeroU32,
    /// Jobs run at once by this process's workers.
    pub worker_concurrency: usize,
    /// `JOB_MAX_ATTEMPTS`: tries of one payment or payout job (the first included) before the
    /// row goes to `needs_attention` (default 8, about two minutes of backoff). Fewer hands a
    /// stuck payment to a person sooner; the sweeper still re-enqueues stuck rows.
    pub job_max_attempts: u32,
    /// The API's listening address.
    pub bind_addr: SocketAddr,
    /// `WORKER_ADDR`: where a worker process serves `/healthz`, `/readyz` and `/metrics`.
    /// `None` when unset: `worker` then tries [`DEFAULT_WORKER_ADDR`] (and runs without probes
    /// if that port is taken, e.g. by a second worker on the host); `serve` serves none.
    pub worker_addr: Option<SocketAddr>,
    /// `HTTP_HEADER_TIMEOUT`, `HTTP_REQUEST_TIMEOUT`, `HTTP_MAX_CONNECTIONS`: the bounds of
    /// the API's listener.
    pub server_limits: pi_payments_api::ServerLimits,
    /// The TOML products catalogue, if any.
    pub products_file: Option<PathBuf>,
    /// Refuse payments without an order.
    pub require_order: bool,
    /// Webhook destination.
    pub webhook_url: Option<String>,
    /// Webhook signing key.
    pub webhook_secret: Option<Secret>,
    /// Pioneer sign-in, browser posture and operator auth: `APP_ORIGINS`, `TRUST_PROXY`,
    /// `ADMIN_TOKEN` and `APP_API_TOKEN` (redacted in `Debug`), `SESSION_TTL`.
    pub auth: AuthConfig,
    /// `PI_WALLET_SEED`: the app wallet seed for A2U payouts (checked to be an `S…` seed;
    /// used by the payout wiring). Its presence requires `ADMIN_TOKEN`.
    pub wallet_seed: Option<Secret>,
    /// `PI_CHANNEL_SEEDS`: channel accounts (`S…` seeds) that are the source of payout
    /// transactions so that several land per ledger (redacted in `Debug`; may be empty).
    pub channel_seeds: Vec<Secret>,
    /// `RECONCILE_EVERY`, `STUCK_AFTER`, `ABANDON_AFTER`: the sweeper and scheduled
    /// reconciliation.
    pub reconcile: pi_payments_core::reconcile::ReconcileConfig,
    /// Prefix of the queue names. Not a flag: tests set a unique one to share one Redis.
    pub queue_namespace: String,
    /// `WORKER_QUEUES`: the job kinds this process's workers run (default: every kind).
    pub worker_queues: Vec<pi_payments_core::jobs::JobKind>,
    /// `CLIENT_RATE_LIMIT` / `CLIENT_RATE_BURST`: per-client limits of the public routes
    /// (`None`: off).
    pub client_limit: Option<pi_payments_api::ClientLimit>,
    /// `PI_UNVERIFIED_SHARE`: percent of `PI_RATE_LIMIT` for work nobody vouched for.
    pub unverified_share: u8,
    /// `ANONYMOUS_CANCEL_GRACE`: see `U2aDeps::anonymous_cancel_grace`.
    pub anonymous_cancel_grace: std::time::Duration,
}

/// `CLIENT_RATE_LIMIT`, `CLIENT_RATE_BURST`, `PI_UNVERIFIED_SHARE` and `ANONYMOUS_CANCEL_GRACE`:
/// what strangers may spend.
fn abuse_settings(
    args: &ConfigArgs,
) -> Result<
    (
        Option<pi_payments_api::ClientLimit>,
        u8,
        std::time::Duration,
    ),
    ConfigError,
> {
    use pi_payments_api::ClientLimit;
    let defaults = ClientLimit::default();
    let per_second = match given(&args.client_rate_limit) {
        Some("0") => None,
        Some(v) => Some(whole_number(
            "CLIENT_RATE_LIMIT",
            v,
            "requests per second per client (e.g. 5; 0 turns the limit off)",
        )?),
        None => Some(defaults.per_second.get()),
    };
    let burst = match given(&args.client_rate_burst) {
        Some(v) => whole_number("CLIENT_RATE_BURST", v, "requests (e.g. 50)")?,
        None => defaults.burst.get(),
    };
    let client_limit = per_second.map(|n| ClientLimit {
        per_second: NonZeroU32::new(n).unwrap_or(defaults.per_second),
        burst: NonZeroU32::new(burst).unwrap_or(defaults.burst),
    });
    let share = match given(&args.pi_unverified_share) {
        Some(v) => {
            whole_number("PI_UNVERIFIED_SHARE", v, "percent (1 to 100, e.g. 20)").and_then(|n| {
                u8::try_from(n).ok().filter(|n| *n <= 100).ok_or_else(|| {
                    ConfigError::new(
                        "PI_UNVERIFIED_SHARE",
                        Some(v),
                        "is not a percent from 1 to 100",
                    )
                })
            })?
        }
        None => pi_payments_core::rate_limit::DEFAULT_UNVERIFIED_SHARE_PERCENT,
    };
    let grace = match given(&args.anonymous_cancel_grace) {
        Some(v) => std::time::Duration::from_secs(
            whole_number("ANONYMOUS_CANCEL_GRACE", v, "seconds (e.g. 300)")?.into(),
        ),
        None => pi_payments_core::u2a::DEFAULT_ANONYMOUS_CANCEL_GRACE,
    };
    Ok((client_limit, share, grace))
}

/// Unset and empty are the same: compose files pass `${VAR:-}` as an empty string.
fn given(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

fn http_url(variable: &'static str, value: &str) -> Result<String, ConfigError> {
    match url::Url::parse(value) {
        Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
            Ok(value.trim_end_matches('/').to_string())
        }
        _ => Err(ConfigError::new(
            variable,
            Some(value),
            "is not an http(s) URL (e.g. https://api.minepi.com)",
        )),
    }
}

fn whole_number(variable: &'static str, value: &str, what: &str) -> Result<u32, ConfigError> {
    value.parse::<u32>().ok().filter(|n| *n > 0).ok_or_else(|| {
        ConfigError::new(
            variable,
            Some(value),
            format!("is not a whole number of {what}"),
        )
    })
}

fn boolean(variable: &'static str, value: &str) -> Result<bool, ConfigError> {
    match value.to_ascii_lowercase().as_str() {
        "true" | "1" | "yes" | "on" => Ok(true),
        "false" | "0" | "no" | "off" => Ok(false),
        _ => Err(ConfigError::new(
            variable,
            Some(value),
            "is not true or false",
        )),
    }
}

fn database_url(value: &str) -> Result<String, ConfigError> {
    let ok = ["sqlite:", "postgres://", "postgresql://"]
        .iter()
        .any(|p| value.starts_with(p));
    if ok {
        Ok(value.to_string())
    } else {
        // The URL may carry a password: name the variable, not the value.
        Err(ConfigError::new(
            "DATABASE_URL",
            None,
            "is not a sqlite: or postgres:// URL (e.g. sqlite://pi-payments.db or postgres://user:pass@host/db)",
        ))
    }
}

/// The embedded queue's file: next to the ledger's file, `<name>-queue.db`; in memory when
/// the ledger is; `pi-payments-queue.db` in the working directory for a Postgres ledger.
pub fn queue_file_for(database_url: &str) -> PathBuf {
    let Some(rest) = database_url.strip_prefix("sqlite:") else {
        return PathBuf::from("pi-payments-queue.db");
    };
    let path = rest.trim_start_matches("//");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return PathBuf::from(":memory:");
    }
    let path = PathBuf::from(path);
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_else(|| "pi-payments".to_string());
    path.with_file_name(format!("{stem}-queue.db"))
}

/// The embedded simulator's state file (`serve` without `PI_API_KEY`): beside the ledger's
/// file, `<name>-sim.json`, so that a restart finds at the simulated Pi what the ledger
/// remembers; `None` for an in-memory ledger; `pi-payments-sim.json` in the working directory
/// for a Postgres ledger.
pub fn sim_state_file_for(database_url: &str) -> Option<PathBuf> {
    match queue_file_for(database_url) {
        path if path == std::path::Path::new(":memory:") => None,
        path => {
            let stem = path
                .file_stem()
                .map(|s| s.to_string_lossy().into_owned())
                .unwrap_or_default();
            let stem = stem.strip_suffix("-queue").unwrap_or(&stem).to_string();
            Some(path.with_file_name(format!("{stem}-sim.json")))
        }
    }
}

fn app_wallet(value: &str) -> Result<String, ConfigError> {
    match stellar_strkey::ed25519::PublicKey::from_string(value) {
        Ok(_) => Ok(value.to_string()),
        Err(_) => Err(ConfigError::new(
            "PI_APP_WALLET",
            Some(value),
            "is not a Stellar public key (G… , 56 characters): copy the app wallet's address from the Pi Developer Portal",
        )),
    }
}

/// An auth setting the API crate refused, as our one-line error naming `variable` (the API
/// crate's text already starts with the variable's name; it is not repeated).
fn auth_error(variable: &'static str, err: &api_auth::ConfigError) -> ConfigError {
    let text = err.to_string();
    let problem = text
        .strip_prefix(variable)
        .map(str::trim_start)
        .unwrap_or(&text)
        .to_string();
    ConfigError::new(variable, None, problem)
}

/// `APP_ORIGINS`, `TRUST_PROXY`, `ADMIN_TOKEN`, `APP_API_TOKEN`, `SESSION_TTL` and
/// `PI_WALLET_SEED`, checked
/// together: a wallet seed without an admin token is refused (the payout routes would have no
/// operator), and so is a short admin token. Secret values are never echoed.
fn auth_settings(args: &ConfigArgs) -> Result<(AuthConfig, Option<Secret>), ConfigError> {
    let app_origins = match given(&args.app_origins) {
        Some(text) => api_auth::parse_origins(text).map_err(|e| auth_error("APP_ORIGINS", &e))?,
        None => Vec::new(),
    };
    let trust_proxy = given(&args.trust_proxy)
        .map(|v| boolean("TRUST_PROXY", v))
        .transpose()?
        .unwrap_or(false);
    let session_ttl = match given(&args.session_ttl) {
        Some(v) => std::time::Duration::from_secs(u64::from(whole_number(
            "SESSION_TTL",
            v,
            "seconds (e.g. 86400 for a day)",
        )?)),
        None => pi_payments_core::pioneer::DEFAULT_SESSION_TTL,
    };
    let wallet_seed = match given(&args.pi_wallet_seed) {
        Some(seed) if stellar_strkey::ed25519::PrivateKey::from_string(seed).is_ok() => {
            Some(Secret::new(seed))
        }
        Some(_) => {
            return Err(ConfigError::new(
                "PI_WALLET_SEED",
                None,
                "is not a Stellar secret seed (S…, 56 characters): copy the app wallet's seed from where you created the wallet, or unset it to run without payouts",
            ));
        }
        None => None,
    };
    let admin_token = given(&args.admin_token);
    // The rule guards the payout routes; a process that serves none (a worker, `channels
    // create`) holds the seed without them.
    let seed_needs_operator = wallet_seed.is_some() && !args.no_operator_routes;
    pi_payments_api::admin::check_startup(seed_needs_operator, admin_token)
        .map_err(|e| auth_error("ADMIN_TOKEN", &e))?;
    let app_api_token = given(&args.app_api_token);
    pi_payments_api::admin::check_app_api_token(app_api_token)
        .map_err(|e| auth_error("APP_API_TOKEN", &e))?;
    let auth = AuthConfig {
        app_origins,
        trust_proxy,
        admin_token: admin_token.map(api_auth::Secret::new),
        app_api_token: app_api_token.map(api_auth::Secret::new),
        session_ttl,
        ..AuthConfig::default()
    };
    // The browser layers are built from these at start; refuse anything they would refuse now.
    pi_payments_api::browser::BrowserPolicy::new(&auth)
        .map_err(|e| auth_error("APP_ORIGINS", &e))?;
    Ok((auth, wallet_seed))
}

/// `WORKER_QUEUES`: job kind names, comma-separated; unset or empty means every kind.
fn worker_queues(args: &ConfigArgs) -> Result<Vec<pi_payments_core::jobs::JobKind>, ConfigError> {
    use pi_payments_core::jobs::JobKind;
    let Some(list) = given(&args.worker_queues) else {
        return Ok(JobKind::ALL.to_vec());
    };
    let kinds = JobKind::parse_list(list).map_err(|e| {
        ConfigError::new(
            "WORKER_QUEUES",
            Some(list),
            format!(
                "names an unknown job kind {:?}: use a comma-separated list of {}",
                e.name, e.known
            ),
        )
    })?;
    if kinds.is_empty() {
        return Err(ConfigError::new(
            "WORKER_QUEUES",
            Some(list),
            "names no job kind: unset it to run every kind",
        ));
    }
    Ok(kinds)
}

/// `RECONCILE_EVERY`, `STUCK_AFTER` and `ABANDON_AFTER`, in whole seconds.
fn reconcile_settings(
    args: &ConfigArgs,
) -> Result<pi_payments_core::reconcile::ReconcileConfig, ConfigError> {
    use pi_payments_core::reconcile::ReconcileConfig;
    use std::time::Duration;
    let seconds = |variable: &'static str, value: &Option<String>, default: Duration| {
        given(value)
            .map(|v| whole_number(variable, v, "seconds (e.g. 60)"))
            .transpose()
            .map(|n| n.map(|n| Duration::from_secs(n.into())).unwrap_or(default))
    };
    let defaults = ReconcileConfig::default();
    let every = seconds("RECONCILE_EVERY", &args.reconcile_every, defaults.every)?;
    let stuck_after = seconds("STUCK_AFTER", &args.stuck_after, defaults.stuck_after)?;
    let abandon_after = seconds("ABANDON_AFTER", &args.abandon_after, defaults.abandon_after)?;
    Ok(ReconcileConfig {
        every,
        stuck_after,
        abandon_after,
        // Runs renew the lease while they last; a dead holder blocks about one missed run.
        lease_ttl: ReconcileConfig::lease_ttl_for(every),
        ..defaults
    })
}

/// `HTTP_HEADER_TIMEOUT`, `HTTP_REQUEST_TIMEOUT` (whole seconds) and `HTTP_MAX_CONNECTIONS`.
fn server_limits(args: &ConfigArgs) -> Result<pi_payments_api::ServerLimits, ConfigError> {
    use std::time::Duration;
    let defaults = pi_payments_api::ServerLimits::default();
    let seconds = |variable: &'static str, value: &Option<String>, default: Duration| {
        given(value)
            .map(|v| whole_number(variable, v, "seconds (e.g. 10)"))
            .transpose()
            .map(|n| n.map(|n| Duration::from_secs(n.into())).unwrap_or(default))
    };
    let max_connections = match given(&args.http_max_connections) {
        Some(v) => usize::try_from(whole_number(
            "HTTP_MAX_CONNECTIONS",
            v,
            "connections (e.g. 512)",
        )?)
        .unwrap_or(defaults.max_connections),
        None => defaults.max_connections,
    };
    Ok(pi_payments_api::ServerLimits {
        header_read_timeout: seconds(
            "HTTP_HEADER_TIMEOUT",
            &args.http_header_timeout,
            defaults.header_read_timeout,
        )?,
        request_timeout: seconds(
            "HTTP_REQUEST_TIMEOUT",
            &args.http_request_timeout,
            defaults.request_timeout,
        )?,
        max_connections,
    })
}

/// `PI_CHANNEL_SEEDS` (each entry an `S…` seed), and, against a real Pi, that
/// `PI_WALLET_SEED` is the seed of `PI_APP_WALLET` (Pi pays out only from the app's wallet).
/// Seeds are never echoed: errors name the entry by its position.
fn payout_settings(
    args: &ConfigArgs,
    pi: &PiTarget,
    wallet_seed: Option<&Secret>,
) -> Result<Vec<Secret>, ConfigError> {
    if let (Some(seed), PiTarget::Remote { app_wallet, .. }) = (wallet_seed, pi) {
        let address = pi_payments_core::stellar::Wallet::from_seed(seed.expose())
            .map(|w| w.public_key())
            .ok();
        if address.as_deref() != Some(app_wallet.as_str()) {
            return Err(ConfigError::new(
                "PI_WALLET_SEED",
                None,
                format!(
                    "is not the seed of PI_APP_WALLET ({app_wallet}): payouts must come from the app wallet, so give that wallet's seed"
                ),
            ));
        }
    }
    let Some(text) = given(&args.pi_channel_seeds) else {
        return Ok(Vec::new());
    };
    let mut seeds: Vec<Secret> = Vec::new();
    for (i, entry) in text.split(',').map(str::trim).enumerate() {
        if entry.is_empty() {
            continue;
        }
        if stellar_strkey::ed25519::PrivateKey::from_string(entry).is_err() {
            return Err(ConfigError::new(
                "PI_CHANNEL_SEEDS",
                None,
                format!(
                    "entry {} is not a Stellar secret seed (S…, 56 characters): give comma-separated seeds as printed by `pi-payments channels create`",
                    i + 1
                ),
            ));
        }
        if seeds.iter().any(|s| s.expose() == entry) {
            return Err(ConfigError::new(
                "PI_CHANNEL_SEEDS",
                None,
                format!(
                    "entry {} repeats an earlier seed: list each channel once",
                    i + 1
                ),
            ));
        }
        seeds.push(Secret::new(entry));
    }
    if !seeds.is_empty() && wallet_seed.is_none() && matches!(pi, PiTarget::Remote { .. }) {
        return Err(ConfigError::new(
            "PI_CHANNEL_SEEDS",
            None,
            "is set but PI_WALLET_SEED is not: channels only speed up payouts, which need the app wallet's seed",
        ));
    }
    Ok(seeds)
}

impl Config {
    /// Check every value; the first bad one is the error.
    pub fn from_args(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let network = match given(&args.pi_network) {
            None => PI_TESTNET.to_string(),
            Some(v) if v == PI_MAINNET || v == PI_TESTNET => v.to_string(),
            Some(v) => {
                return Err(ConfigError::new(
                    "PI_NETWORK",
                    Some(v),
                    format!(
                        "is not a Pi network: use \"{PI_MAINNET}\" (mainnet) or \"{PI_TESTNET}\" (testnet), as the Pi Developer Portal names your app's network"
                    ),
                ));
            }
        };
        let wallet = given(&args.pi_app_wallet).map(app_wallet).transpose()?;
        let base_url = given(&args.pi_api_base_url)
            .map(|v| http_url("PI_API_BASE_URL", v))
            .transpose()?;
        let horizon_url = given(&args.pi_horizon_url)
            .map(|v| http_url("PI_HORIZON_URL", v))
            .transpose()?;
        let pi = match given(&args.pi_api_key) {
            Some(key) => PiTarget::Remote {
                api_key: Secret::new(key),
                api_base_url: base_url
                    .map(|u| u.strip_suffix("/v2").map(str::to_string).unwrap_or(u))
                    .unwrap_or_else(|| DEFAULT_PI_API_BASE_URL.to_string()),
                horizon_url: horizon_url.unwrap_or_else(|| {
                    if network == PI_MAINNET { MAINNET_HORIZON_URL } else { TESTNET_HORIZON_URL }
                        .to_string()
                }),
                network,
                app_wallet: wallet.ok_or_else(|| {
                    ConfigError::new(
                        "PI_APP_WALLET",
                        None,
                        "is required when PI_API_KEY is set: give the G… address of your app's wallet (Pi Developer Portal)",
                    )
                })?,
            },
            None => PiTarget::Simulator { app_wallet: wallet },
        };
        let database_url = database_url(given(&args.database_url).unwrap_or(DEFAULT_DATABASE_URL))?;
        let queue = match given(&args.redis_url) {
            Some(url) if url.starts_with("redis://") || url.starts_with("rediss://") => {
                QueueTarget::Redis(url.to_string())
            }
            Some(_) => {
                return Err(ConfigError::new(
                    "REDIS_URL",
                    None,
                    "is not a redis:// URL (e.g. redis://127.0.0.1:6379); unset it to use the embedded queue",
                ));
            }
            None => QueueTarget::Sqlite(queue_file_for(&database_url)),
        };
        let rate_limit = match given(&args.pi_rate_limit) {
            Some(v) => whole_number("PI_RATE_LIMIT", v, "requests per second (e.g. 10)")?,
            None => 10,
        };
        let horizon_rate_limit = match given(&args.horizon_rate_limit) {
            Some(v) => whole_number("HORIZON_RATE_LIMIT", v, "requests per second (e.g. 1)")?,
            // The built-in simulator is no public Horizon: its default budget would make a trial
            // run wait a second per payout for nothing.
            None if matches!(pi, PiTarget::Simulator { .. }) => SIMULATOR_HORIZON_RATE_LIMIT,
            None => DEFAULT_HORIZON_RATE_LIMIT.get(),
        };
        let worker_concurrency = match given(&args.worker_concurrency) {
            Some(v) => whole_number("WORKER_CONCURRENCY", v, "jobs at once (e.g. 16)")?,
            None => 16,
        };
        let job_max_attempts = match given(&args.job_max_attempts) {
            Some(v) => whole_number("JOB_MAX_ATTEMPTS", v, "tries (e.g. 8)")?,
            None => pi_payments_worker::JobRetry::default().max_attempts,
        };
        let bind = given(&args.bind_addr).unwrap_or(DEFAULT_BIND_ADDR);
        let bind_addr = bind.parse::<SocketAddr>().map_err(|_| {
            ConfigError::new(
                "BIND_ADDR",
                Some(bind),
                "is not an address:port (e.g. 127.0.0.1:8080 or 0.0.0.0:8080)",
            )
        })?;
        let worker_addr = given(&args.worker_addr)
            .map(|addr| {
                addr.parse::<SocketAddr>().map_err(|_| {
                    ConfigError::new(
                        "WORKER_ADDR",
                        Some(addr),
                        "is not an address:port (e.g. 127.0.0.1:8081 or 0.0.0.0:8081)",
                    )
                })
            })
            .transpose()?;
        let products_file = given(&args.products_file).map(PathBuf::from);
        if let Some(path) = &products_file
            && !path.is_file()
        {
            return Err(ConfigError::new(
                "PRODUCTS_FILE",
                Some(&path.display().to_string()),
                "is not a readable file: point it at your TOML products catalogue",
            ));
        }
        let require_order = given(&args.require_order)
            .map(|v| boolean("REQUIRE_ORDER", v))
            .transpose()?
            .unwrap_or(false);
        let webhook_url = given(&args.app_webhook_url)
            .map(|v| http_url("APP_WEBHOOK_URL", v))
            .transpose()?;
        let webhook_secret = given(&args.app_webhook_secret).map(Secret::new);
        if webhook_url.is_some() && webhook_secret.is_none() {
            return Err(ConfigError::new(
                "APP_WEBHOOK_SECRET",
                None,
                "is required when APP_WEBHOOK_URL is set: webhooks are signed with it (any long random string)",
            ));
        }
        let (auth, wallet_seed) = auth_settings(args)?;
        let reconcile = reconcile_settings(args)?;
        let channel_seeds = payout_settings(args, &pi, wallet_seed.as_ref())?;
        let (client_limit, unverified_share, anonymous_cancel_grace) = abuse_settings(args)?;
        Ok(Config {
            pi,
            sim_state_file: sim_state_file_for(&database_url),
            database_url,
            queue,
            rate_limit: NonZeroU32::new(rate_limit).unwrap_or(NonZeroU32::MIN),
            horizon_rate_limit: NonZeroU32::new(horizon_rate_limit)
                .unwrap_or(DEFAULT_HORIZON_RATE_LIMIT),
            worker_concurrency: usize::try_from(worker_concurrency).unwrap_or(16),
            job_max_attempts,
            bind_addr,
            worker_addr,
            server_limits: server_limits(args)?,
            products_file,
            require_order,
            webhook_url,
            webhook_secret,
            auth,
            wallet_seed,
            channel_seeds,
            reconcile,
            queue_namespace: DEFAULT_QUEUE_NAMESPACE.to_string(),
            worker_queues: worker_queues(args)?,
            client_limit,
            unverified_share,
            anonymous_cancel_grace,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_run_on_the_simulator_with_sqlite() {
        let config = Config::from_args(&ConfigArgs::default()).unwrap();
        assert!(matches!(
            config.pi,
            PiTarget::Simulator { app_wallet: None }
        ));
        assert_eq!(config.database_url, DEFAULT_DATABASE_URL);
        assert_eq!(
            config.queue,
            QueueTarget::Sqlite("pi-payments-queue.db".into())
        );
        assert_eq!(config.rate_limit.get(), 10);
        assert_eq!(
            config.horizon_rate_limit.get(),
            SIMULATOR_HORIZON_RATE_LIMIT
        );
        assert_eq!(config.worker_concurrency, 16);
        assert_eq!(config.job_max_attempts, 8);
        assert_eq!(config.bind_addr.to_string(), DEFAULT_BIND_ADDR);
        assert_eq!(config.worker_addr, None);
    }

    #[test]
    fn worker_addr_is_an_address() {
        let with = |v: &str| {
            Config::from_args(&ConfigArgs {
                worker_addr: Some(v.into()),
                ..Default::default()
            })
        };
        assert_eq!(
            with("0.0.0.0:9000").unwrap().worker_addr,
            Some("0.0.0.0:9000".parse().unwrap())
        );
        let err = with("localhost").unwrap_err().to_string();
        assert!(
            err.starts_with(r#"WORKER_ADDR="localhost" is not an address:port"#),
            "{err}"
        );
    }

    #[test]
    fn bad_values_name_their_variable() {
        let args = ConfigArgs {
            pi_rate_limit: Some("abc".into()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert_eq!(
            err,
            r#"PI_RATE_LIMIT="abc" is not a whole number of requests per second (e.g. 10)"#
        );
        let args = ConfigArgs {
            pi_network: Some("mainnet".into()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert!(
            err.starts_with(r#"PI_NETWORK="mainnet" is not a Pi network: use "Pi Network""#),
            "{err}"
        );
        let args = ConfigArgs {
            horizon_rate_limit: Some("0".into()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert_eq!(
            err,
            r#"HORIZON_RATE_LIMIT="0" is not a whole number of requests per second (e.g. 1)"#
        );
        let args = ConfigArgs {
            horizon_rate_limit: Some("25".into()),
            ..Default::default()
        };
        assert_eq!(
            Config::from_args(&args).unwrap().horizon_rate_limit.get(),
            25
        );
        // Against a real Horizon the default is the public one's budget.
        let remote = ConfigArgs {
            pi_api_key: Some("key".into()),
            pi_app_wallet: Some(pi_payments_core::stellar::Wallet::generate().public_key()),
            ..Default::default()
        };
        assert_eq!(
            Config::from_args(&remote).unwrap().horizon_rate_limit,
            DEFAULT_HORIZON_RATE_LIMIT
        );
        let args = ConfigArgs {
            pi_api_key: Some("key".into()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert!(err.starts_with("PI_APP_WALLET is required"), "{err}");
        assert!(!err.contains("key\""));
    }

    #[test]
    fn secrets_are_not_echoed() {
        let args = ConfigArgs {
            database_url: Some("mysql://u:hunter2@h/db".into()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert!(err.starts_with("DATABASE_URL "), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn auth_settings_are_checked() {
        let args = ConfigArgs {
            app_origins: Some("https://App.example.com/, http://localhost:3000".into()),
            trust_proxy: Some("yes".into()),
            admin_token: Some("0123456789abcdef-admin".into()),
            app_api_token: Some("0123456789abcdef-backend".into()),
            session_ttl: Some("3600".into()),
            ..Default::default()
        };
        let config = Config::from_args(&args).unwrap();
        assert!(config.auth.app_api_token.is_some());
        assert!(!format!("{config:?}").contains("0123456789abcdef-backend"));
        assert_eq!(
            config.auth.app_origins,
            vec!["https://app.example.com", "http://localhost:3000"]
        );
        assert!(config.auth.trust_proxy);
        assert_eq!(config.auth.session_ttl.as_secs(), 3600);
        assert!(!format!("{config:?}").contains("0123456789abcdef-admin"));

        let err = |args: ConfigArgs| Config::from_args(&args).unwrap_err().to_string();
        let bad_origin = err(ConfigArgs {
            app_origins: Some("app.example.com".into()),
            ..Default::default()
        });
        assert!(bad_origin.starts_with("APP_ORIGINS entry"), "{bad_origin}");
        let short = err(ConfigArgs {
            admin_token: Some("tiny-secret".into()),
            ..Default::default()
        });
        assert!(short.starts_with("ADMIN_TOKEN is shorter"), "{short}");
        assert!(!short.contains("tiny-secret"));
        let short = err(ConfigArgs {
            app_api_token: Some("tiny-backend".into()),
            ..Default::default()
        });
        assert!(short.starts_with("APP_API_TOKEN is shorter"), "{short}");
        assert!(!short.contains("tiny-backend"));
        let ttl = err(ConfigArgs {
            session_ttl: Some("1d".into()),
            ..Default::default()
        });
        assert!(ttl.starts_with("SESSION_TTL=\"1d\""), "{ttl}");
    }

    #[test]
    fn a_process_without_operator_routes_holds_a_seed_without_an_admin_token() {
        let args = ConfigArgs {
            pi_wallet_seed: Some(pi_payments_core::stellar::Wallet::generate().expose_seed()),
            no_operator_routes: true,
            ..Default::default()
        };
        assert!(Config::from_args(&args).unwrap().wallet_seed.is_some());
    }

    #[test]
    fn a_wallet_seed_needs_an_admin_token() {
        let seed = "SCTK2ZM24AOEPCWDM5BGYGIJYQXMJ6ICF74FAG7WFUJ6OBYYOCLWVBG7".to_string();
        let args = ConfigArgs {
            pi_wallet_seed: Some(seed.clone()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert!(err.starts_with("ADMIN_TOKEN is not set"), "{err}");
        assert!(!err.contains(&seed) && !err.contains('\n'), "{err}");
        let args = ConfigArgs {
            pi_wallet_seed: Some(seed.clone()),
            admin_token: Some("0123456789abcdef-admin".into()),
            ..Default::default()
        };
        let config = Config::from_args(&args).unwrap();
        assert!(config.wallet_seed.is_some());
        assert!(!format!("{config:?}").contains(&seed));
        let args = ConfigArgs {
            pi_wallet_seed: Some("S-not-a-seed-hunter2".into()),
            admin_token: Some("0123456789abcdef-admin".into()),
            ..Default::default()
        };
        let err = Config::from_args(&args).unwrap_err().to_string();
        assert!(err.starts_with("PI_WALLET_SEED is not"), "{err}");
        assert!(!err.contains("hunter2"));
    }

    #[test]
    fn channel_seeds_are_checked_and_the_wallet_seed_must_match_the_app_wallet() {
        let app = pi_payments_core::stellar::Wallet::generate();
        let channel = pi_payments_core::stellar::Wallet::generate().expose_seed();
        let remote = |seed: String, channels: Option<String>| ConfigArgs {
            pi_api_key: Some("key".into()),
            pi_app_wallet: Some(app.public_key()),
            pi_wallet_seed: Some(seed),
            pi_channel_seeds: channels,
            admin_token: Some("0123456789abcdef-admin".into()),
            ..Default::default()
        };
        let config =
            Config::from_args(&remote(app.expose_seed(), Some(format!(" {channel} ,")))).unwrap();
        assert_eq!(config.channel_seeds.len(), 1);
        assert!(!format!("{config:?}").contains(&channel));
        let other = pi_payments_core::stellar::Wallet::generate().expose_seed();
        let err = Config::from_args(&remote(other.clone(), None))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("PI_WALLET_SEED is not the seed of PI_APP_WALLET"),
            "{err}"
        );
        assert!(!err.contains(&other));
        let err = Config::from_args(&remote(
            app.expose_seed(),
            Some(format!("{channel},{channel}")),
        ))
        .unwrap_err()
        .to_string();
        assert!(err.starts_with("PI_CHANNEL_SEEDS entry 2 repeats"), "{err}");
        let err = Config::from_args(&remote(app.expose_seed(), Some("Shunter2".into())))
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("PI_CHANNEL_SEEDS entry 1 is not"), "{err}");
        assert!(!err.contains("hunter2") && !err.contains('\n'));
    }

    #[test]
    fn worker_queues_pick_job_kinds() {
        use pi_payments_core::jobs::JobKind;
        let config = Config::from_args(&ConfigArgs::default()).unwrap();
        assert_eq!(config.worker_queues, JobKind::ALL);
        let with = |v: &str| {
            Config::from_args(&ConfigArgs {
                worker_queues: Some(v.into()),
                ..Default::default()
            })
        };
        assert_eq!(with("payout").unwrap().worker_queues, vec![JobKind::Payout]);
        let err = with("approve,refund").unwrap_err().to_string();
        assert!(
            err.starts_with(r#"WORKER_QUEUES="approve,refund" names an unknown job kind "refund""#),
            "{err}"
        );
        assert!(!err.contains('\n'));
        assert!(
            with(" , ")
                .unwrap_err()
                .to_string()
                .contains("names no job kind")
        );
    }

    #[test]
    fn queue_file_sits_next_to_the_ledger() {
        assert_eq!(
            queue_file_for("sqlite:///var/lib/pi/ledger.db"),
            PathBuf::from("/var/lib/pi/ledger-queue.db")
        );
        assert_eq!(
            queue_file_for("sqlite://data/x.db?mode=rwc"),
            PathBuf::from("data/x-queue.db")
        );
        assert_eq!(queue_file_for("sqlite::memory:"), PathBuf::from(":memory:"));
        assert_eq!(
            queue_file_for("postgres://h/db"),
            PathBuf::from("pi-payments-queue.db")
        );
        assert_eq!(
            sim_state_file_for("sqlite:///var/lib/pi/ledger.db"),
            Some(PathBuf::from("/var/lib/pi/ledger-sim.json"))
        );
        assert_eq!(
            sim_state_file_for(DEFAULT_DATABASE_URL),
            Some(PathBuf::from("pi-payments-sim.json"))
        );
        assert_eq!(sim_state_file_for("sqlite::memory:"), None);
    }
}
