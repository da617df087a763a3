//! The command line: every subcommand with its own flags. The service's settings come in groups
//! (ledger, queue, Pi, API, workers, timing, payouts, operator), each flattened only into the
//! subcommands that use it, so that `pi-payments <command> --help` lists what that command
//! reads and nothing else. Every setting can also come from the environment variable of the
//! same meaning (clap's `env`), named as before the split. All clap types live here, so the
//! subcommand modules depend on the command line and never the other way round. Values are
//! taken as text here and checked in [`crate::config`], so that a bad value gets one line
//! naming the variable rather than clap's generic message.

use clap::{Args, Parser, Subcommand};
use std::path::PathBuf;

/// `pi-payments`: a Pi Network payments backend (U2A callbacks, an exact ledger, workers).
#[derive(Debug, Parser)]
#[command(name = "pi-payments", version, about, long_about = None)]
pub struct Cli {
    /// What to run; `serve` when omitted (with its settings from the environment).
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Only check the configuration the command would run with, connecting nothing: print a
    /// summary and exit 0, or the error and exit 2.
    #[arg(long, global = true)]
    pub check_config: bool,
    /// Print the command's report as JSON (`--check-config`, `migrate`, `reconcile`,
    /// `payouts import`/`status`, `channels create`).
    #[arg(long, global = true)]
    pub json: bool,
}

impl Cli {
    /// The subcommand to run: the one given, or `serve` with its settings read from the
    /// environment (clap reads a group's variables only for a subcommand it parses).
    pub fn command_or_serve(&self) -> Result<Command, clap::Error> {
        match &self.command {
            Some(command) => Ok(command.clone()),
            None => Cli::try_parse_from(["pi-payments", "serve"]).map(|cli| {
                cli.command
                    .unwrap_or_else(|| Command::Serve(Box::default()))
            }),
        }
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// API and workers in one process (the default). Without PI_API_KEY it embeds the Pi
    /// simulator (a trial run, never real Pi) and says so.
    // Boxed: it holds every group of flags, the other variants far fewer (clippy: large_enum_variant).
    Serve(Box<ServeArgs>),
    /// Only the HTTP API (workers run elsewhere, sharing the ledger and Redis). Needs
    /// PI_API_KEY: Pi's, or a shared simulator's (`pi-payments sim`).
    Api(ApiRoleArgs),
    /// Only the workers. Needs PI_API_KEY: Pi's, or a shared simulator's (`pi-payments sim`).
    Worker(WorkerRoleArgs),
    /// Apply the ledger's database migrations and exit.
    Migrate(MigrateArgs),
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

impl Command {
    /// The service settings this subcommand reads, as one [`ConfigArgs`] (the groups it does
    /// not take stay unset, i.e. their defaults); `None` for `sim` and `bench`, which take
    /// flags of their own.
    pub fn config_args(&self) -> Option<ConfigArgs> {
        let mut out = ConfigArgs::default();
        match self {
            Command::Serve(a) => {
                a.ledger.fill(&mut out);
                a.queue.fill(&mut out);
                a.pi.fill(&mut out);
                a.api.fill(&mut out);
                a.workers.fill(&mut out);
                a.timing.fill(&mut out);
                a.payouts.fill(&mut out);
                a.operator.fill(&mut out);
            }
            Command::Api(a) => {
                a.ledger.fill(&mut out);
                a.queue.fill(&mut out);
                a.pi.fill(&mut out);
                a.api.fill(&mut out);
                a.timing.fill(&mut out);
                a.operator.fill(&mut out);
            }
            Command::Worker(a) => {
                a.ledger.fill(&mut out);
                a.queue.fill(&mut out);
                a.pi.fill(&mut out);
                a.workers.fill(&mut out);
                a.timing.fill(&mut out);
                a.payouts.fill(&mut out);
                // A worker serves no operator routes: its seed needs no ADMIN_TOKEN.
                out.no_operator_routes = true;
            }
            Command::Migrate(a) => a.ledger.fill(&mut out),
            Command::Reconcile(a) => {
                a.ledger.fill(&mut out);
                a.queue.fill(&mut out);
                a.pi.fill(&mut out);
                a.timing.fill(&mut out);
            }
            Command::Payouts(PayoutsCommand::Import(a)) => {
                a.ledger.fill(&mut out);
                a.queue.fill(&mut out);
            }
            Command::Payouts(PayoutsCommand::Status(a)) => a.ledger.fill(&mut out),
            Command::Channels(ChannelsCommand::Create(a)) => {
                a.ledger.fill(&mut out);
                a.pi.fill(&mut out);
                a.payouts.fill(&mut out);
                // Funding channels is an operator's act at a shell, not a route to guard.
                out.no_operator_routes = true;
            }
            Command::Sim(_) | Command::Bench(_) => return None,
        }
        Some(out)
    }

    /// The subcommand's name as the user typed it (`payouts import`), for summaries.
    pub fn name(&self) -> &'static str {
        match self {
            Command::Serve(_) => "serve",
            Command::Api(_) => "api",
            Command::Worker(_) => "worker",
            Command::Migrate(_) => "migrate",
            Command::Sim(_) => "sim",
            Command::Bench(_) => "bench",
            Command::Reconcile(_) => "reconcile",
            Command::Payouts(PayoutsCommand::Import(_)) => "payouts import",
            Command::Payouts(PayoutsCommand::Status(_)) => "payouts status",
            Command::Channels(ChannelsCommand::Create(_)) => "channels create",
        }
    }
}

/// Flags of `serve`: every group.
#[derive(Debug, Clone, Default, Args)]
pub struct ServeArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub pi: PiArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub workers: WorkerArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub payouts: PayoutArgs,
    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// Flags of `api`: no worker or payout settings (the API never signs).
#[derive(Debug, Clone, Default, Args)]
pub struct ApiRoleArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub pi: PiArgs,
    #[command(flatten)]
    pub api: ApiArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub operator: OperatorArgs,
}

/// Flags of `worker`: no listener or operator settings.
#[derive(Debug, Clone, Default, Args)]
pub struct WorkerRoleArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub pi: PiArgs,
    #[command(flatten)]
    pub workers: WorkerArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
    #[command(flatten)]
    pub payouts: PayoutArgs,
}

/// Flags of `migrate`: only the ledger.
#[derive(Debug, Clone, Default, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

/// Flags of `reconcile`.
#[derive(Debug, Clone, Args)]
pub struct ReconcileArgs {
    /// Only report drift (ledger vs Pi vs chain); change nothing. Exit code 1 when there is
    /// drift or a source could not be read, 0 when clean.
    #[arg(long)]
    pub report: bool,
    /// With --report: settled rows changed within this many hours are compared with Pi.
    #[arg(long, default_value_t = 24)]
    pub since_hours: u64,
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
    #[command(flatten)]
    pub pi: PiArgs,
    #[command(flatten)]
    pub timing: TimingArgs,
}

/// Benchmarks.
#[derive(Debug, Clone, Subcommand)]
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
#[derive(Debug, Clone, Subcommand)]
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
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub queue: QueueArgs,
}

/// Flags of `payouts status`.
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// Only this batch (`bat_…`, printed by `payouts import` and `POST /payouts/bulk`).
    #[arg(long)]
    pub batch: Option<String>,
    #[command(flatten)]
    pub ledger: LedgerArgs,
}

/// `pi-payments channels …`.
#[derive(Debug, Clone, Subcommand)]
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
    #[command(flatten)]
    pub ledger: LedgerArgs,
    #[command(flatten)]
    pub pi: PiArgs,
    #[command(flatten)]
    pub payouts: PayoutArgs,
}

/// `DATABASE_URL`: the ledger.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Ledger")]
pub struct LedgerArgs {
    /// Ledger database [default: sqlite://pi-payments.db].
    #[arg(long, env = "DATABASE_URL", hide_env_values = true)]
    pub database_url: Option<String>,
}

impl LedgerArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.database_url.clone_from(&self.database_url);
    }
}

/// `REDIS_URL`: the job queue.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Job queue")]
pub struct QueueArgs {
    /// Redis for the job queue; unset → embedded SQLite queue next to the ledger.
    #[arg(long, env = "REDIS_URL", hide_env_values = true)]
    pub redis_url: Option<String>,
}

impl QueueArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.redis_url.clone_from(&self.redis_url);
    }
}

/// Where Pi is and how fast the deployment may call it.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Pi")]
pub struct PiArgs {
    /// Pi server API key. Unset: `serve` embeds the simulator; `api`, `worker` and the tools
    /// refuse to run.
    #[arg(long, env = "PI_API_KEY", hide_env_values = true)]
    pub pi_api_key: Option<String>,
    /// Pi Platform API base URL (the service appends /v2) [default: https://api.minepi.com].
    #[arg(long, env = "PI_API_BASE_URL")]
    pub pi_api_base_url: Option<String>,
    /// Horizon URL of the Pi blockchain [default: Pi Testnet's, or mainnet's for PI_NETWORK="Pi Network"].
    #[arg(long, env = "PI_HORIZON_URL")]
    pub pi_horizon_url: Option<String>,
    /// Network passphrase: "Pi Network" or "Pi Testnet" [default: Pi Testnet].
    #[arg(long, env = "PI_NETWORK")]
    pub pi_network: Option<String>,
    /// The app wallet's G… address that receives U2A payments (required with PI_API_KEY).
    #[arg(long, env = "PI_APP_WALLET")]
    pub pi_app_wallet: Option<String>,
    /// Requests per second to Pi for the whole deployment: with REDIS_URL every process
    /// sharing the API key takes its turn from one schedule in Redis [default: 10].
    #[arg(long, env = "PI_RATE_LIMIT")]
    pub pi_rate_limit: Option<String>,
    /// Requests per second to Horizon for the whole deployment (shared through REDIS_URL like
    /// PI_RATE_LIMIT) [default: 1, Horizon's stock 3,600 requests an hour per IP].
    #[arg(long, env = "HORIZON_RATE_LIMIT")]
    pub horizon_rate_limit: Option<String>,
    /// Percent of PI_RATE_LIMIT that work for payments nobody vouched for (no valid token or
    /// session, never approved) may use [default: 20].
    #[arg(long, env = "PI_UNVERIFIED_SHARE")]
    pub pi_unverified_share: Option<String>,
}

impl PiArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.pi_api_key.clone_from(&self.pi_api_key);
        out.pi_api_base_url.clone_from(&self.pi_api_base_url);
        out.pi_horizon_url.clone_from(&self.pi_horizon_url);
        out.pi_network.clone_from(&self.pi_network);
        out.pi_app_wallet.clone_from(&self.pi_app_wallet);
        out.pi_rate_limit.clone_from(&self.pi_rate_limit);
        out.horizon_rate_limit.clone_from(&self.horizon_rate_limit);
        out.pi_unverified_share
            .clone_from(&self.pi_unverified_share);
    }
}

/// The HTTP API: its listener, the browser and Pioneer posture, per-client limits.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "HTTP API")]
pub struct ApiArgs {
    /// Address the API listens on [default: 127.0.0.1:8080].
    #[arg(long, env = "BIND_ADDR")]
    pub bind_addr: Option<String>,
    /// Seconds a client may take to send a request's headers; also ends idle keep-alive
    /// connections [default: 10].
    #[arg(long, env = "HTTP_HEADER_TIMEOUT")]
    pub http_header_timeout: Option<String>,
    /// Seconds within which every request is answered (503 request_timeout otherwise;
    /// POST /payouts/bulk gets at least 600) [default: 30].
    #[arg(long, env = "HTTP_REQUEST_TIMEOUT")]
    pub http_request_timeout: Option<String>,
    /// Connections the API keeps open at once; more wait to be accepted [default: 512].
    #[arg(long, env = "HTTP_MAX_CONNECTIONS")]
    pub http_max_connections: Option<String>,
    /// TOML products catalogue for POST /orders.
    #[arg(long, env = "PRODUCTS_FILE")]
    pub products_file: Option<String>,
    /// The app's own origins (comma-separated, e.g. https://app.example.com): allowed by CORS
    /// with credentials, trusted for cookie-authenticated changes, allowed to frame the app.
    #[arg(long, env = "APP_ORIGINS")]
    pub app_origins: Option<String>,
    /// Requests per second each client (IP address) may send to the public routes (callbacks,
    /// /auth/pi, /ads/claim, /orders); 0 turns the limit off [default: 5].
    #[arg(long, env = "CLIENT_RATE_LIMIT")]
    pub client_rate_limit: Option<String>,
    /// Requests a client may send at once before CLIENT_RATE_LIMIT applies [default: 50].
    #[arg(long, env = "CLIENT_RATE_BURST")]
    pub client_rate_burst: Option<String>,
    /// true → a TLS-terminating proxy sits in front: trust X-Forwarded-Host/-Proto for the
    /// API's own origin [default: false].
    #[arg(long, env = "TRUST_PROXY")]
    pub trust_proxy: Option<String>,
    /// Read-only Bearer token for the app's own backend: GET /events and any payment or
    /// order; at least 16 characters. Unset → only ADMIN_TOKEN reads /events.
    #[arg(long, env = "APP_API_TOKEN", hide_env_values = true)]
    pub app_api_token: Option<String>,
    /// Longest Pioneer session, in seconds (never beyond the Pi token's validity) [default: 86400].
    #[arg(long, env = "SESSION_TTL")]
    pub session_ttl: Option<String>,
}

impl ApiArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.bind_addr.clone_from(&self.bind_addr);
        out.http_header_timeout
            .clone_from(&self.http_header_timeout);
        out.http_request_timeout
            .clone_from(&self.http_request_timeout);
        out.http_max_connections
            .clone_from(&self.http_max_connections);
        out.products_file.clone_from(&self.products_file);
        out.app_origins.clone_from(&self.app_origins);
        out.client_rate_limit.clone_from(&self.client_rate_limit);
        out.client_rate_burst.clone_from(&self.client_rate_burst);
        out.trust_proxy.clone_from(&self.trust_proxy);
        out.app_api_token.clone_from(&self.app_api_token);
        out.session_ttl.clone_from(&self.session_ttl);
    }
}

/// The workers: how many jobs, which kinds, what they refuse, where webhooks go.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Workers")]
pub struct WorkerArgs {
    /// Jobs run at once per worker process [default: 16].
    #[arg(long, env = "WORKER_CONCURRENCY")]
    pub worker_concurrency: Option<String>,
    /// Job kinds this process's workers run, comma-separated (approve, complete, cancel,
    /// record-error, incomplete, payout) [default: all].
    #[arg(long, env = "WORKER_QUEUES")]
    pub worker_queues: Option<String>,
    /// true → refuse payments whose metadata carries no orderId [default: false].
    #[arg(long, env = "REQUIRE_ORDER")]
    pub require_order: Option<String>,
    /// Seconds after approval before an anonymous incomplete callback may have an approved
    /// payment without a transaction cancelled (its Pioneer may at once) [default: 300].
    #[arg(long, env = "ANONYMOUS_CANCEL_GRACE")]
    pub anonymous_cancel_grace: Option<String>,
    /// Tries of one payment or payout job (the first included) before the payment or payout
    /// is handed to an operator (`needs_attention`); the waits between tries double from 1 s
    /// to 30 s [default: 8, about two minutes].
    #[arg(long, env = "JOB_MAX_ATTEMPTS")]
    pub job_max_attempts: Option<String>,
    /// Where the app's webhooks are POSTed.
    #[arg(long, env = "APP_WEBHOOK_URL")]
    pub app_webhook_url: Option<String>,
    /// HMAC-SHA256 key of the webhook signature.
    #[arg(long, env = "APP_WEBHOOK_SECRET", hide_env_values = true)]
    pub app_webhook_secret: Option<String>,
    /// Address a worker process serves /healthz, /readyz and /metrics on [default for
    /// `worker`: 127.0.0.1:8081; `serve` binds it only when set, its API has them already].
    #[arg(long, env = "WORKER_ADDR")]
    pub worker_addr: Option<String>,
}

impl WorkerArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.worker_concurrency.clone_from(&self.worker_concurrency);
        out.worker_queues.clone_from(&self.worker_queues);
        out.require_order.clone_from(&self.require_order);
        out.anonymous_cancel_grace
            .clone_from(&self.anonymous_cancel_grace);
        out.job_max_attempts.clone_from(&self.job_max_attempts);
        out.app_webhook_url.clone_from(&self.app_webhook_url);
        out.app_webhook_secret.clone_from(&self.app_webhook_secret);
        out.worker_addr.clone_from(&self.worker_addr);
    }
}

/// When rows count as stuck or abandoned, and how often reconciliation runs.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Reconciliation")]
pub struct TimingArgs {
    /// Seconds between reconcile runs (sweeper + incomplete server payments); a worker that
    /// dies mid-run blocks the next one for about two of these [default: 60].
    #[arg(long, env = "RECONCILE_EVERY")]
    pub reconcile_every: Option<String>,
    /// Seconds an in-flight payment or payout may stay unchanged before its job is
    /// re-enqueued (by the sweeper, or at once by a repeated approve/complete callback, at
    /// most once per this interval) [default: 120].
    #[arg(long, env = "STUCK_AFTER")]
    pub stuck_after: Option<String>,
    /// Seconds after which an approved U2A payment without a transaction is cancelled at Pi
    /// (the Pioneer is unblocked) [default: 300].
    #[arg(long, env = "ABANDON_AFTER")]
    pub abandon_after: Option<String>,
}

impl TimingArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.reconcile_every.clone_from(&self.reconcile_every);
        out.stuck_after.clone_from(&self.stuck_after);
        out.abandon_after.clone_from(&self.abandon_after);
    }
}

/// The seeds that sign A2U payouts.
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Payouts (A2U)")]
pub struct PayoutArgs {
    /// The app wallet seed (S…) for A2U payouts; `serve` also needs the operator token with it.
    #[arg(long, env = "PI_WALLET_SEED", hide_env_values = true)]
    pub pi_wallet_seed: Option<String>,
    /// Channel accounts for A2U payouts: comma-separated S… seeds (see `channels create`);
    /// each one lets one more payout land per ledger.
    #[arg(long, env = "PI_CHANNEL_SEEDS", hide_env_values = true)]
    pub pi_channel_seeds: Option<String>,
}

impl PayoutArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.pi_wallet_seed.clone_from(&self.pi_wallet_seed);
        out.pi_channel_seeds.clone_from(&self.pi_channel_seeds);
    }
}

/// The operator's token (routes under /admin, /payouts).
#[derive(Debug, Clone, Default, Args)]
#[command(next_help_heading = "Operator")]
pub struct OperatorArgs {
    /// Bearer token of the operator routes (/admin, /payouts); at least 16 characters.
    /// Unset → those routes answer 401 to everyone, except that `serve` with its embedded
    /// simulator on a loopback address generates one and prints it.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    pub admin_token: Option<String>,
}

impl OperatorArgs {
    fn fill(&self, out: &mut ConfigArgs) {
        out.admin_token.clone_from(&self.admin_token);
    }
}

/// Every configuration value, as text (see [`crate::config::Config`] for their meaning and
/// defaults): what [`crate::config::Config::from_args`] checks. The subcommands fill the
/// groups they take ([`Command::config_args`]); tests and benchmarks fill it directly.
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    pub pi_api_key: Option<String>,
    pub pi_api_base_url: Option<String>,
    pub pi_horizon_url: Option<String>,
    pub pi_network: Option<String>,
    pub pi_app_wallet: Option<String>,
    pub database_url: Option<String>,
    pub redis_url: Option<String>,
    pub pi_rate_limit: Option<String>,
    pub horizon_rate_limit: Option<String>,
    pub worker_concurrency: Option<String>,
    pub job_max_attempts: Option<String>,
    pub bind_addr: Option<String>,
    pub http_header_timeout: Option<String>,
    pub http_request_timeout: Option<String>,
    pub http_max_connections: Option<String>,
    pub products_file: Option<String>,
    pub require_order: Option<String>,
    pub app_webhook_url: Option<String>,
    pub app_webhook_secret: Option<String>,
    pub app_origins: Option<String>,
    pub client_rate_limit: Option<String>,
    pub client_rate_burst: Option<String>,
    pub pi_unverified_share: Option<String>,
    pub anonymous_cancel_grace: Option<String>,
    pub trust_proxy: Option<String>,
    pub admin_token: Option<String>,
    pub app_api_token: Option<String>,
    pub session_ttl: Option<String>,
    pub pi_wallet_seed: Option<String>,
    pub pi_channel_seeds: Option<String>,
    pub reconcile_every: Option<String>,
    pub stuck_after: Option<String>,
    pub abandon_after: Option<String>,
    pub worker_queues: Option<String>,
    pub worker_addr: Option<String>,
    /// This process serves no operator routes (`worker`, `channels create`): a wallet seed
    /// then needs no `ADMIN_TOKEN`.
    pub no_operator_routes: bool,
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
        assert!(matches!(cli.command_or_serve(), Ok(Command::Serve(_))));
        let cli =
            Cli::try_parse_from(["pi-payments", "serve", "--bind-addr", "0.0.0.0:1"]).unwrap();
        let args = cli.command.unwrap().config_args().unwrap();
        assert_eq!(args.bind_addr.as_deref(), Some("0.0.0.0:1"));
    }

    #[test]
    fn a_subcommand_takes_only_its_groups() {
        assert!(Cli::try_parse_from(["pi-payments", "migrate", "--pi-rate-limit", "3"]).is_err());
        assert!(Cli::try_parse_from(["pi-payments", "worker", "--admin-token", "x"]).is_err());
        let cli = Cli::try_parse_from([
            "pi-payments",
            "channels",
            "create",
            "2",
            "--pi-wallet-seed",
            "S",
        ])
        .unwrap();
        let args = cli.command.unwrap().config_args().unwrap();
        assert!(args.no_operator_routes && args.pi_wallet_seed.is_some());
    }
}
