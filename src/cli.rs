//! The command line: every subcommand with its flags, and the configuration flags, each of
//! which can also come from the environment variable of the same meaning (clap's `env`). All
//! clap types live here, so the subcommand modules depend on the command line and never the
//! other way round. Values are taken as text here and checked in [`crate::config`], so that a
//! bad value gets one line naming the variable rather than clap's generic message.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `pi-payments`: a Pi Network payments backend (U2A callbacks, an exact ledger, workers).
#[derive(Debug, Parser)]
#[command(name = "pi-payments", version, about, long_about = None)]
pub struct Cli {
    /// What to run; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Only check the configuration the command would run with, connecting nothing: print a
    /// summary and exit 0, or the error and exit 2.
    #[arg(long, global = true)]
    pub check_config: bool,
    /// Configuration shared by every subcommand.
    #[command(flatten)]
    pub config: ConfigArgs,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// API and workers in one process (the default).
    Serve,
    /// Only the HTTP API (workers run elsewhere, sharing the ledger and Redis).
    Api,
    /// Only the workers.
    Worker,
    /// Apply the ledger's database migrations and exit.
    Migrate,
    /// Run the Pi Platform + Horizon simulator on its own.
    Sim(pi_sim::cli::SimArgs),
    /// Measure the service on this machine.
    #[command(subcommand)]
    Bench(BenchCommand),
    /// Reconcile now (sweep stuck rows, resume Pi's incomplete server payments), or with
    /// --report print where the ledger, Pi and the chain disagree (exit 1 on drift).
    Reconcile(ReconcileArgs),
    /// A2U payouts: import a file of payouts, or show where they stand.
    #[command(subcommand)]
    Payouts(PayoutsCommand),
    /// Channel accounts that let several payouts land per ledger.
    #[command(subcommand)]
    Channels(ChannelsCommand),
}

/// Flags of `reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Only report drift (ledger vs Pi vs chain); change nothing. Exit code 1 when there is
    /// drift or a source could not be read, 0 when clean.
    #[arg(long)]
    pub report: bool,
    /// Print JSON instead of a table.
    #[arg(long)]
    pub json: bool,
    /// With --report: settled rows changed within this many hours are compared with Pi.
    #[arg(long, default_value_t = 24)]
    pub since_hours: u64,
}

/// Benchmarks.
#[derive(Debug, Subcommand)]
pub enum BenchCommand {
    /// Approve-callback throughput and latency next to `/healthz`, in one run.
    Callbacks(BenchCallbacksArgs),
    /// A2U payouts end to end against an in-process pi-sim: wall time against the chain's bound.
    Payouts(BenchPayoutsArgs),
}

/// Flags of `bench callbacks`.
#[derive(Debug, Clone, Args)]
pub struct BenchCallbacksArgs {
    /// How long each phase (callbacks, then /healthz) runs, in seconds.
    #[arg(long, default_value_t = 10)]
    pub seconds: u64,
    /// Concurrent keep-alive connections.
    #[arg(long, default_value_t = 64)]
    pub connections: usize,
    /// Also run the workers during the run (they drain the queue against pi-sim).
    #[arg(long)]
    pub workers: bool,
    /// Put the ledger on this PostgreSQL server instead of a scratch SQLite file: the bench
    /// creates a scratch database there (`pi_payments_bench_…`) and drops it afterwards. Any
    /// database of the server the user may connect to and create databases from will do.
    #[arg(long, value_name = "URL")]
    pub postgres: Option<String>,
    /// Put the queue on this Redis instead of the embedded SQLite queue, under a scratch
    /// namespace whose keys are deleted afterwards.
    #[arg(long, value_name = "URL")]
    pub redis: Option<String>,
}

/// Flags of `bench payouts`.
#[derive(Debug, Clone, Args)]
pub struct BenchPayoutsArgs {
    /// Payouts to make.
    #[arg(long, default_value_t = 10_000)]
    pub count: usize,
    /// Seconds between ledger closes on the simulated chain (Pi: about 5).
    #[arg(long, default_value_t = 1.0)]
    pub ledger_seconds: f64,
    /// Channel accounts (0 = the app wallet is the only transaction source).
    #[arg(long, default_value_t = 0)]
    pub channels: usize,
    /// Worker concurrency [default: 4 × max(1, channels) + 16].
    #[arg(long)]
    pub concurrency: Option<usize>,
    /// PI_RATE_LIMIT for the run, in requests per second [default: high enough not to be the
    /// bottleneck: 4 × the calls the chain's pace needs, at least 100].
    #[arg(long)]
    pub rate_limit: Option<u32>,
    /// Amount of each payout, in Pi.
    #[arg(long, default_value = "0.1")]
    pub amount: String,
}

/// `pi-payments payouts …`.
#[derive(Debug, Subcommand)]
pub enum PayoutsCommand {
    /// Import a CSV (uid,amount,memo,idempotency_key; header optional) or JSON-lines file of
    /// payouts. Running it again skips rows already accepted. Exit 1 if a row was rejected.
    Import(ImportArgs),
    /// Payouts per state (of one batch, or all), and the failed ones with their reasons.
    Status(StatusArgs),
}

/// Flags of `payouts import`.
#[derive(Debug, Clone, Args)]
pub struct ImportArgs {
    /// The file: `.csv`, or `.jsonl` / `.ndjson` (one JSON payout per line).
    pub file: PathBuf,
}

/// Flags of `payouts status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Only this batch (`bat_…`, printed by `payouts import` and `POST /payouts/bulk`).
    #[arg(long)]
    pub batch: Option<String>,
}

/// `pi-payments channels …`.
#[derive(Debug, Subcommand)]
pub enum ChannelsCommand {
    /// Generate N channel accounts, print (and save) their seeds, then create and fund them
    /// from the app wallet (PI_WALLET_SEED).
    Create(CreateArgs),
}

/// Flags of `channels create`.
#[derive(Debug, Clone, Args)]
pub struct CreateArgs {
    /// How many channel accounts.
    pub count: usize,
    /// Pi sent to each new account (it pays the fees of the payouts it carries).
    #[arg(long, default_value = "2")]
    pub fund: String,
    /// Also write `PI_CHANNEL_SEEDS=…` to this file (created with mode 0600; never overwritten).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// Every configuration value, as text (see [`crate::config::Config`] for their meaning and
/// defaults). Secrets hide their environment values from `--help`.
#[derive(Debug, Clone, Default, Args)]
pub struct ConfigArgs {
    /// Pi server API key; unset → run against the built-in simulator.
    #[arg(long, env = "PI_API_KEY", global = true, hide_env_values = true)]
    pub pi_api_key: Option<String>,
    /// Pi Platform API base URL (the service appends /v2) [default: https://api.minepi.com].
    #[arg(long, env = "PI_API_BASE_URL", global = true)]
    pub pi_api_base_url: Option<String>,
    /// Horizon URL of the Pi blockchain [default: Pi Testnet's, or mainnet's for PI_NETWORK="Pi Network"].
    #[arg(long, env = "PI_HORIZON_URL", global = true)]
    pub pi_horizon_url: Option<String>,
    /// Network passphrase: "Pi Network" or "Pi Testnet" [default: Pi Testnet].
    #[arg(long, env = "PI_NETWORK", global = true)]
    pub pi_network: Option<String>,
    /// The app wallet's G… address that receives U2A payments (required with PI_API_KEY).
    #[arg(long, env = "PI_APP_WALLET", global = true)]
    pub pi_app_wallet: Option<String>,
    /// Ledger database [default: sqlite://pi-payments.db].
    #[arg(long, env = "DATABASE_URL", global = true, hide_env_values = true)]
    pub database_url: Option<String>,
    /// Redis for the job queue; unset → embedded SQLite queue next to the ledger.
    #[arg(long, env = "REDIS_URL", global = true, hide_env_values = true)]
    pub redis_url: Option<String>,
    /// Requests per second to Pi for the whole deployment: with REDIS_URL every process
    /// sharing the API key takes its turn from one schedule in Redis [default: 10].
    #[arg(long, env = "PI_RATE_LIMIT", global = true)]
    pub pi_rate_limit: Option<String>,
    /// Requests per second to Horizon for the whole deployment (shared through REDIS_URL like
    /// PI_RATE_LIMIT) [default: 1, Horizon's stock 3,600 requests an hour per IP].
    #[arg(long, env = "HORIZON_RATE_LIMIT", global = true)]
    pub horizon_rate_limit: Option<String>,
    /// Jobs run at once per worker process [default: 16].
    #[arg(long, env = "WORKER_CONCURRENCY", global = true)]
    pub worker_concurrency: Option<String>,
    /// Address the API listens on [default: 127.0.0.1:8080].
    #[arg(long, env = "BIND_ADDR", global = true)]
    pub bind_addr: Option<String>,
    /// Address a worker process serves /healthz, /readyz and /metrics on [default for
    /// `worker`: 127.0.0.1:8081; `serve` binds it only when set; `api` never: its /metrics is
    /// on BIND_ADDR].
    #[arg(long, env = "WORKER_ADDR", global = true)]
    pub worker_addr: Option<String>,
    /// Seconds a client may take to send a request's headers; also ends idle keep-alive
    /// connections [default: 10].
    #[arg(long, env = "HTTP_HEADER_TIMEOUT", global = true)]
    pub http_header_timeout: Option<String>,
    /// Seconds within which every request is answered (503 request_timeout otherwise;
    /// POST /payouts/bulk gets at least 600) [default: 30].
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT", global = true)]
    pub http_request_timeout: Option<String>,
    /// Connections the API keeps open at once; more wait to be accepted [default: 512].
    #[arg(long, env = "HTTP_MAX_CONNECTIONS", global = true)]
    pub http_max_connections: Option<String>,
    /// TOML products catalogue for POST /orders.
    #[arg(long, env = "PRODUCTS_FILE", global = true)]
    pub products_file: Option<String>,
    /// true → refuse payments whose metadata carries no orderId [default: false].
    #[arg(long, env = "REQUIRE_ORDER", global = true)]
    pub require_order: Option<String>,
    /// Where the app's webhooks are POSTed.
    #[arg(long, env = "APP_WEBHOOK_URL", global = true)]
    pub app_webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhook signature.
    #[arg(
        long,
        env = "APP_WEBHOOK_SECRET",
        global = true,
        hide_env_values = true
    )]
    pub app_webhook_secret: Option<String>,
    /// The app's own origins (comma-separated, e.g. https://app.example.com): allowed by CORS
    /// with credentials, trusted for cookie-authenticated changes, allowed to frame the app.
    #[arg(long, env = "APP_ORIGINS", global = true)]
    pub app_origins: Option<String>,
    /// Requests per second each client (IP address) may send to the public routes (callbacks,
    /// /auth/pi, /ads/claim, /orders); 0 turns the limit off [default: 5].
    #[arg(long, env = "CLIENT_RATE_LIMIT", global = true)]
    pub client_rate_limit: Option<String>,
    /// Requests a client may send at once before CLIENT_RATE_LIMIT applies [default: 50].
    #[arg(long, env = "CLIENT_RATE_BURST", global = true)]
    pub client_rate_burst: Option<String>,
    /// Percent of PI_RATE_LIMIT that work for payments nobody vouched for (no valid token or
    /// session, never approved) may use [default: 20].
    #[arg(long, env = "PI_UNVERIFIED_SHARE", global = true)]
    pub pi_unverified_share: Option<String>,
    /// Seconds after approval before an anonymous incomplete callback may have an approved
    /// payment without a transaction cancelled (its Pioneer may at once) [default: 300].
    #[arg(long, env = "ANONYMOUS_CANCEL_GRACE", global = true)]
    pub anonymous_cancel_grace: Option<String>,
    /// true → a TLS-terminating proxy sits in front: trust X-Forwarded-Host/-Proto for the
    /// API's own origin [default: false].
    #[arg(long, env = "TRUST_PROXY", global = true)]
    pub trust_proxy: Option<String>,
    /// Bearer token of the operator routes (/admin, /payouts); at least 16 characters.
    /// Unset → those routes answer 401 to everyone.
    #[arg(long, env = "ADMIN_TOKEN", global = true, hide_env_values = true)]
    pub admin_token: Option<String>,
    /// Read-only Bearer token for the app's own backend: GET /events and any payment or
    /// order; at least 16 characters. Unset → only ADMIN_TOKEN reads /events.
    #[arg(long, env = "APP_API_TOKEN", global = true, hide_env_values = true)]
    pub app_api_token: Option<String>,
    /// Longest Pioneer session, in seconds (never beyond the Pi token's validity) [default: 86400].
    #[arg(long, env = "SESSION_TTL", global = true)]
    pub session_ttl: Option<String>,
    /// The app wallet seed (S…) for A2U payouts; requires ADMIN_TOKEN.
    #[arg(long, env = "PI_WALLET_SEED", global = true, hide_env_values = true)]
    pub pi_wallet_seed: Option<String>,
    /// Channel accounts for A2U payouts: comma-separated S… seeds (see `channels create`);
    /// each one lets one more payout land per ledger.
    #[arg(long, env = "PI_CHANNEL_SEEDS", global = true, hide_env_values = true)]
    pub pi_channel_seeds: Option<String>,
    /// Seconds between reconcile runs (sweeper + incomplete server payments); a worker that
    /// dies mid-run blocks the next one for about two of these [default: 60].
    #[arg(long, env = "RECONCILE_EVERY", global = true)]
    pub reconcile_every: Option<String>,
    /// Seconds an in-flight payment or payout may stay unchanged before its job is
    /// re-enqueued (by the sweeper, or at once by a repeated approve/complete callback, at
    /// most once per this interval) [default: 120].
    #[arg(long, env = "STUCK_AFTER", global = true)]
    pub stuck_after: Option<String>,
    /// Seconds after which an approved U2A payment without a transaction is cancelled at Pi
    /// (the Pioneer is unblocked) [default: 300].
    #[arg(long, env = "ABANDON_AFTER", global = true)]
    pub abandon_after: Option<String>,
    /// Job kinds this process's workers run, comma-separated (approve, complete, cancel,
    /// record-error, incomplete, payout) [default: all].
    #[arg(long, env = "WORKER_QUEUES", global = true)]
    pub worker_queues: Option<String>,
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_subcommand_means_serve() {
        let cli = Cli::try_parse_from(["pi-payments"]).unwrap();
        assert!(cli.command.is_none());
        let cli =
            Cli::try_parse_from(["pi-payments", "serve", "--bind-addr", "0.0.0.0:1"]).unwrap();
        assert!(matches!(cli.command, Some(Command::Serve)));
        assert_eq!(cli.config.bind_addr.as_deref(), Some("0.0.0.0:1"));
    }
}
