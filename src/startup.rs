//! Running the service from a [`Config`]: the API and the workers on the ledger, queue and Pi
//! that [`Services::connect`] opens (pi-sim in-process when no Pi API key is configured).
//! `main` and the end-to-end tests both go through [`RunningApp::start`], so the tests run the
//! real wiring.

use crate::config::{Config, ConfigError, DEFAULT_WORKER_ADDR, PiTarget};
use crate::services::{PiEndpoints, PiServices, Services};
use anyhow::Context;
use pi_payments_api::ApiState;
use pi_payments_core::jobs::JobKind;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::payout::PayoutProcessor;
use pi_payments_core::products::Catalogue;
use pi_payments_core::stellar::Wallet;
use pi_payments_worker::{JobRetry, WebhookConfig, WorkerConfig, WorkerDeps};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

/// Which parts of the service this process runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// API and workers (`serve`, the default).
    Serve,
    /// Only the HTTP API (`api`).
    Api,
    /// Only the workers (`worker`).
    Worker,
}

impl Role {
    /// The subcommand that runs this role.
    pub fn name(self) -> &'static str {
        match self {
            Role::Serve => "serve",
            Role::Api => "api",
            Role::Worker => "worker",
        }
    }

    /// Refuse what this role must not run with: `api` and `worker` never start a simulator of
    /// their own (a missing `PI_API_KEY` in production must not fail open, and processes that
    /// each had their own simulator could not see each other's payments). Only `serve` embeds one.
    pub fn check(self, config: &Config) -> Result<(), ConfigError> {
        match (self, &config.pi) {
            (Role::Api | Role::Worker, PiTarget::Simulator { .. }) => {
                Err(ConfigError::pi_api_key_required(self.name()))
            }
            _ => Ok(()),
        }
    }

    fn runs_api(self) -> bool {
        matches!(self, Role::Serve | Role::Api)
    }

    fn runs_workers(self) -> bool {
        matches!(self, Role::Serve | Role::Worker)
    }
}

/// A started service: its address, the simulator's endpoints when one runs, and the handle to
/// stop it.
pub struct RunningApp {
    /// The API's bound address (`None` for [`Role::Worker`]).
    pub addr: Option<SocketAddr>,
    /// Where this process serves the worker probes (`WORKER_ADDR`), if it does.
    pub probe_addr: Option<SocketAddr>,
    /// Where Pi is (the in-process simulator's URLs when `simulated`).
    pub pi: PiEndpoints,
    /// Whether pi-sim runs inside this process.
    pub simulated: bool,
    /// The ledger, for tests that inspect it.
    pub ledger: Ledger,
    /// The operator token `serve` generated (embedded simulator, loopback bind, no
    /// `ADMIN_TOKEN`): printed once in the banner, then this process's `ADMIN_TOKEN`.
    pub generated_admin_token: Option<pi_payments_api::auth::Secret>,
    /// Whether the embedded simulator found its state file (a restart).
    pub sim_restored: bool,
    /// `DATABASE_URL`, for the banner's `reconcile --report` line.
    database_url: String,
    /// The embedded simulator's state file, for the banner.
    sim_state_file: Option<std::path::PathBuf>,
    stop: CancellationToken,
    tasks: JoinSet<anyhow::Result<()>>,
    sim: Option<pi_sim::RunningSim>,
}

impl std::fmt::Debug for RunningApp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunningApp")
            .field("addr", &self.addr)
            .field("probe_addr", &self.probe_addr)
            .field("pi", &self.pi)
            .field("simulated", &self.simulated)
            .finish_non_exhaustive()
    }
}

impl RunningApp {
    /// Open the ledger (migrating it), connect the queue, start the simulator if needed, bind
    /// the API and spawn what `role` runs. Returns once the API listens.
    pub async fn start(mut config: Config, role: Role) -> anyhow::Result<RunningApp> {
        role.check(&config)?;
        // Before anything records (the clients set their rate-limit gauges when built).
        pi_payments_api::metrics::install();
        let generated_admin_token = operator_token_for_trial(&mut config, role);
        let Services {
            ledger,
            queue,
            pi,
            sim,
        } = Services::connect(&config).await?;
        let stop = CancellationToken::new();
        let mut tasks = JoinSet::new();

        let mut addr = None;
        if role.runs_api() {
            let products = Catalogue::load_or_demo(config.products_file.as_deref())?;
            let listener = tokio::net::TcpListener::bind(config.bind_addr)
                .await
                .with_context(|| {
                    format!(
                        "cannot listen on BIND_ADDR={}: is another process using it?",
                        config.bind_addr
                    )
                })?;
            let bound = listener.local_addr()?;
            addr = Some(bound);
            let state = ApiState::new(ledger.clone(), Arc::new(queue.clone()), products)
                .with_auth(pi.client.clone(), config.auth.clone())
                .context("APP_ORIGINS or the session settings were refused")?
                .with_client_limit(config.client_limit, config.auth.trust_proxy)
                // Wrong operator tokens counted for the whole deployment when it shares Redis.
                .with_token_guesses(token_guesses(&config)?)
                // GET /admin/drift: the drift report, on the same Pi client (rate limiter).
                .with_drift(pi_payments_core::reconcile::DriftChecker::new(
                    ledger.clone(),
                    pi.client.clone(),
                    pi.horizon.clone(),
                    pi.endpoints.app_wallet.clone(),
                    pi_payments_core::reconcile::DriftOptions {
                        stuck_after: config.reconcile.stuck_after,
                        ..Default::default()
                    },
                ));
            // The demo storefront exists only beside the built-in simulator (its wallet signs).
            let state = match &sim {
                Some(sim) => {
                    let demo = crate::demo::router(
                        state.products.clone(),
                        crate::demo::sim_proxy::SimProxy::new(sim)?,
                        state.client_limit.clone(),
                    );
                    state.with_demo(demo)
                }
                None => state,
            };
            let shutdown = stop.clone().cancelled_owned();
            let server_limits = config.server_limits;
            tasks.spawn(async move {
                tracing::info!(addr = %bound, "API listening");
                pi_payments_api::serve(listener, state, server_limits, shutdown)
                    .await
                    .context("the HTTP server failed")
            });
        }
        let mut probe_addr = None;
        if let Some(listener) = probe_listener(&config, role).await? {
            let bound = listener.local_addr()?;
            probe_addr = Some(bound);
            let (ledger, queue) = (ledger.clone(), Arc::new(queue.clone()));
            let shutdown = stop.clone().cancelled_owned();
            tasks.spawn(async move {
                tracing::info!(addr = %bound, "worker probes listening (/healthz, /readyz, /metrics)");
                pi_payments_api::probes::serve(listener, ledger, queue, shutdown).await;
                Ok(())
            });
        }
        if role.runs_workers() {
            let webhook = match (&config.webhook_url, &config.webhook_secret) {
                (Some(url), Some(secret)) => Some(WebhookConfig {
                    url: url.clone(),
                    secret: secret.clone(),
                }),
                _ => None,
            };
            let worker_config = WorkerConfig {
                concurrency: config.worker_concurrency,
                kinds: config.worker_queues.clone(),
                ..WorkerConfig::default()
            };
            // Only a process that runs payouts holds payout lanes (leases shared with the
            // other workers, so any number of them may run payouts).
            let payouts = if worker_config.kinds.contains(&JobKind::Payout) {
                payout_processor(&config, &pi, sim.as_ref(), &ledger)?.map(|p| {
                    p.with_lane_leases(&worker_config.worker_id)
                        .with_queue(Arc::new(queue.clone()))
                })
            } else {
                None
            };
            let deps = WorkerDeps {
                ledger: ledger.clone(),
                pi: pi.client.clone(),
                horizon: pi.horizon.clone(),
                app_wallet: pi.endpoints.app_wallet.clone(),
                network: pi.endpoints.network.clone(),
                require_order: config.require_order,
                anonymous_cancel_grace: config.anonymous_cancel_grace,
                webhook,
                retry: JobRetry {
                    max_attempts: config.job_max_attempts,
                    ..JobRetry::default()
                },
                // A2U payouts (PI_WALLET_SEED, or the simulator's wallet); None: jobs wait.
                payouts: payouts.clone(),
            };
            let shutdown = stop.clone().cancelled_owned();
            let reconcile_config = config.reconcile.clone();
            tasks.spawn(async move {
                tracing::info!(
                    concurrency = worker_config.concurrency,
                    queues = ?worker_config.kinds,
                    "workers starting"
                );
                // The sweeper and Pi's incomplete server payments, on RECONCILE_EVERY.
                let schedule = pi_payments_worker::ScheduleConfig {
                    reconcile: reconcile_config,
                };
                let ran = pi_payments_worker::run_workers_with_schedule(
                    deps,
                    queue,
                    worker_config,
                    Some(schedule),
                    shutdown,
                )
                .await;
                // Stopped: hand the payout lanes to the other workers at once.
                if let Some(payouts) = &payouts {
                    payouts.release_lanes().await;
                }
                ran.context("the workers failed")
            });
        }
        if role.runs_api() && config.auth.admin_token.is_none() {
            tracing::warn!(
                "ADMIN_TOKEN is unset: the operator routes (/admin, /payouts) answer 401 to everyone; set ADMIN_TOKEN to use them"
            );
        }
        Ok(RunningApp {
            addr,
            probe_addr,
            generated_admin_token,
            sim_restored: sim.as_ref().is_some_and(pi_sim::RunningSim::restored),
            database_url: config.database_url.clone(),
            sim_state_file: config.sim_state_file.clone(),
            simulated: sim.is_some(),
            pi: pi.endpoints,
            ledger,
            stop,
            tasks,
            sim,
        })
    }

    /// Run until `shutdown` resolves or a part fails, then stop everything gracefully: the API
    /// finishes its requests, the workers their in-flight jobs, the simulator last.
    pub async fn run_until(
        mut self,
        shutdown: impl std::future::Future<Output = ()>,
    ) -> anyhow::Result<()> {
        let first_failure = tokio::select! {
            () = shutdown => None,
            Some(done) = self.tasks.join_next() => Some(flatten(done)),
        };
        if let Some(result) = &first_failure {
            match result {
                Ok(()) => {
                    tracing::warn!("a part of the service stopped on its own; stopping the rest")
                }
                Err(err) => tracing::error!(error = %format!("{err:#}"), "stopping the service"),
            }
        }
        let rest = self.shutdown().await;
        match first_failure {
            Some(Err(err)) => Err(err),
            _ => rest,
        }
    }

    /// Stop now (graceful) and wait until everything has stopped.
    pub async fn stop(self) -> anyhow::Result<()> {
        self.shutdown().await
    }

    async fn shutdown(mut self) -> anyhow::Result<()> {
        self.stop.cancel();
        let mut result = Ok(());
        while let Some(done) = self.tasks.join_next().await {
            if let Err(err) = flatten(done) {
                result = Err(err);
            }
        }
        if let Some(sim) = self.sim.take() {
            sim.shutdown().await;
        }
        self.ledger.close().await;
        result
    }

    /// What `serve` prints on start with its embedded simulator: that it is a simulator (not
    /// real Pi), its URLs and key, a `reconcile --report` line that works, the demo and
    /// dashboard addresses, the operator token it generated, and a walk-through of one
    /// payment. `None` against a real Pi.
    pub fn walkthrough(&self) -> Option<String> {
        self.walkthrough_running("pi-payments")
    }

    /// [`RunningApp::walkthrough`] with `program` as the command its lines run (`main` passes
    /// the path of the running binary, so that they work before `pi-payments` is installed).
    pub fn walkthrough_running(&self, program: &str) -> Option<String> {
        if !self.simulated {
            return None;
        }
        let addr = self.addr?;
        Some(banner_text(&Banner {
            addr,
            pi: &self.pi,
            database_url: &self.database_url,
            sim_state_file: self.sim_state_file.as_deref(),
            generated_admin_token: self
                .generated_admin_token
                .as_ref()
                .map(pi_payments_api::auth::Secret::expose),
            restored: self.sim_restored,
            program,
        }))
    }
}

/// The listener of the worker probes (`/healthz`, `/readyz`, `/metrics`), if this process
/// serves them: a `worker` always tries, on `WORKER_ADDR` or [`DEFAULT_WORKER_ADDR`]; `serve`
/// only with `WORKER_ADDR` set (its API has the same routes); `api` never. An explicit address
/// that cannot be bound stops the start; the default one only costs a warning (a second worker
/// on the same host runs on, without probes, until it is given its own `WORKER_ADDR`).
async fn probe_listener(
    config: &Config,
    role: Role,
) -> anyhow::Result<Option<tokio::net::TcpListener>> {
    match (config.worker_addr, role) {
        (Some(addr), Role::Worker | Role::Serve) => tokio::net::TcpListener::bind(addr)
            .await
            .map(Some)
            .with_context(|| {
                format!(
                    "cannot listen on WORKER_ADDR={addr}: is another process using it? give each worker process its own port"
                )
            }),
        (None, Role::Worker) => {
            let addr = DEFAULT_WORKER_ADDR;
            match tokio::net::TcpListener::bind(addr).await {
                Ok(listener) => Ok(Some(listener)),
                Err(error) => {
                    tracing::warn!(
                        %error,
                        addr,
                        "worker probes off: the default WORKER_ADDR is taken (another worker on this host?); set WORKER_ADDR to a free address:port for /healthz, /readyz and /metrics"
                    );
                    Ok(None)
                }
            }
        }
        _ => Ok(None),
    }
}

/// `serve` with its embedded simulator on a loopback address and no `ADMIN_TOKEN`: a random
/// operator token becomes this process's `ADMIN_TOKEN` (printed once in the banner), so that
/// payouts and the dashboard work out of the box on the developer's machine. Never on another
/// address: there, unset stays closed (401), as everywhere else.
fn operator_token_for_trial(
    config: &mut Config,
    role: Role,
) -> Option<pi_payments_api::auth::Secret> {
    let trial = role == Role::Serve
        && matches!(config.pi, PiTarget::Simulator { .. })
        && config.auth.admin_token.is_none()
        && config.bind_addr.ip().is_loopback();
    if !trial {
        return None;
    }
    let token = pi_payments_api::auth::Secret::new(format!(
        "op_{}",
        pi_payments_core::ids::random_alnum(32)
    ));
    config.auth.admin_token = Some(token.clone());
    Some(token)
}

/// The A2U payout pipeline for this process's workers: the app wallet from `PI_WALLET_SEED`
/// (with the built-in simulator and no seed, the simulator's own app wallet, so payouts work
/// out of the box) and the channel accounts of `PI_CHANNEL_SEEDS`. `None` without a seed:
/// payout jobs then wait in their queue. Seeds are never logged; errors name the variable.
fn payout_processor(
    config: &Config,
    services: &PiServices,
    sim: Option<&pi_sim::RunningSim>,
    ledger: &Ledger,
) -> anyhow::Result<Option<PayoutProcessor>> {
    let pi = &services.endpoints;
    let seed = match (&config.wallet_seed, sim) {
        (Some(seed), _) => seed.expose().to_string(),
        (None, Some(sim)) if sim.app_wallet_public_key == pi.app_wallet => {
            sim.app_wallet_seed.clone()
        }
        _ => {
            tracing::info!("PI_WALLET_SEED is unset: A2U payouts are off (payout jobs wait)");
            return Ok(None);
        }
    };
    let wallet = Wallet::from_seed(&seed).map_err(|_| {
        anyhow::anyhow!(
            "PI_WALLET_SEED is not a usable Stellar seed: give the app wallet's S… seed"
        )
    })?;
    if wallet.public_key() != pi.app_wallet {
        anyhow::bail!(
            "PI_WALLET_SEED is not the seed of the app wallet {} (PI_APP_WALLET): payouts must come from the app wallet",
            pi.app_wallet
        );
    }
    let mut channels = Vec::with_capacity(config.channel_seeds.len());
    for (i, seed) in config.channel_seeds.iter().enumerate() {
        let channel = Wallet::from_seed(seed.expose()).map_err(|_| {
            anyhow::anyhow!(
                "PI_CHANNEL_SEEDS entry {} is not a usable Stellar seed: use the seeds `pi-payments channels create` printed",
                i + 1
            )
        })?;
        if let Some(sim) = sim {
            // The simulator's chain starts empty: give the channels their accounts.
            let address = channel.public_key();
            if sim.chain().account(&address).is_none() {
                sim.chain()
                    .fund_account(&address, 2 * pi_payments_core::amount::STROOPS_PER_PI);
            }
        }
        channels.push(channel);
    }
    if let Some(sim) = sim {
        // The channels funded above belong in the simulator's state file at once.
        if let Err(error) = sim.save_state() {
            tracing::warn!(%error, "could not save the simulator's state file");
        }
    }
    tracing::info!(
        app_wallet = %pi.app_wallet,
        channels = channels.len(),
        "A2U payouts: this process's workers sign and send them"
    );
    Ok(Some(services.payout_processor(ledger, wallet, channels)))
}

fn flatten(done: Result<anyhow::Result<()>, tokio::task::JoinError>) -> anyhow::Result<()> {
    match done {
        Ok(result) => result,
        Err(err) => Err(anyhow::anyhow!(
            "a service task panicked or was cancelled: {err}"
        )),
    }
}

/// What the embedded-mode banner shows.
struct Banner<'a> {
    addr: SocketAddr,
    pi: &'a PiEndpoints,
    database_url: &'a str,
    sim_state_file: Option<&'a std::path::Path>,
    generated_admin_token: Option<&'a str>,
    restored: bool,
    /// How the banner's command lines name this binary.
    program: &'a str,
}

/// A value for a shell line: single-quoted unless plainly safe.
fn shell_word(value: &str) -> String {
    let plain = value
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "-_./:@%+=,".contains(c));
    if plain && !value.is_empty() {
        value.to_string()
    } else {
        format!("'{}'", value.replace('\'', "'\\''"))
    }
}

/// The `reconcile --report` line for the embedded simulator: every variable it needs, pasted
/// into another shell (in the same directory) while `serve` runs.
pub fn reconcile_line(pi: &PiEndpoints, database_url: &str, program: &str) -> String {
    // A server URL may carry a password: refer to the variable rather than print it.
    let database = if database_url.starts_with("sqlite:") {
        shell_word(database_url)
    } else {
        "\"$DATABASE_URL\"".to_string()
    };
    format!(
        "PI_API_KEY={} PI_API_BASE_URL={} PI_HORIZON_URL={} PI_APP_WALLET={} PI_NETWORK={} DATABASE_URL={database} {} reconcile --report",
        shell_word(pi.api_key()),
        shell_word(&pi.api_base_url),
        shell_word(&pi.horizon_url),
        shell_word(&pi.app_wallet),
        shell_word(&pi.network),
        shell_word(program),
    )
}

fn banner_text(b: &Banner<'_>) -> String {
    let api = format!("http://{}", b.addr);
    let sim = &b.pi.api_base_url;
    let operator = match b.generated_admin_token {
        Some(token) => format!(
            "{token}\n                             (generated for this run: this process's ADMIN_TOKEN for /dashboard, /payouts, /admin; shown only here)"
        ),
        None if b.addr.ip().is_loopback() => "ADMIN_TOKEN as you set it".to_string(),
        None => "none: BIND_ADDR is not a loopback address, so no token is generated; set ADMIN_TOKEN to open /dashboard, /payouts, /admin".to_string(),
    };
    let state = match (b.sim_state_file, b.restored) {
        (Some(path), true) => format!(
            "{} (restored: same key, wallet, payments and chain as before)",
            path.display()
        ),
        (Some(path), false) => format!("{} (new; kept across restarts)", path.display()),
        (None, _) => "in memory only (the ledger is in memory too)".to_string(),
    };
    let rule = "=".repeat(78);
    format!(
        r#"
{rule}
  SIMULATED PI. PI_API_KEY is unset, so this process runs pi-sim, a local stand-in for
  Pi's Platform API and blockchain: no real Pi moves and no real Pioneer is involved.
  For real Pi set PI_API_KEY and PI_APP_WALLET (`pi-payments serve --help`).
{rule}
  demo storefront:           {api}/demo
  operator dashboard:        {api}/dashboard
  operator token:            {operator}
  pi-payments API:           {api}
  simulated Pi Platform API: {sim}/v2   (control API: {sim}/_sim/...)
  simulated Horizon:         {horizon}
  simulator API key:         {key}
  app wallet:                {wallet}
  simulator state:           {state}

Drift report (ledger vs the simulator and its chain), from another shell in this directory:
  {reconcile}

One U2A payment, end to end (paste into a shell; needs only curl and sed):

API={api}; SIM={sim}; J='content-type: application/json'
# 1. the app asks for an order: the server sets the price
ORDER=$(curl -s -X POST $API/orders -H "$J" -d '{{"product_id":"coffee"}}' | sed -n 's/.*"id":"\(ord_[^"]*\)".*/\1/p'); echo "order $ORDER"
# 2. the Pioneer creates the payment in the Pi Browser (simulated)
PAYMENT=$(curl -s -X POST $SIM/_sim/u2a -H "$J" -d '{{"uid":"pioneer-1","amount":1.5,"memo":"A cup of coffee","metadata":{{"orderId":"'$ORDER'"}}}}' | sed -n 's/.*"identifier":"\([^"]*\)".*/\1/p'); echo "payment $PAYMENT"
# 3. the Pioneer's access token (Pi.authenticate in real life)
TOKEN=$(curl -s -X POST $SIM/_sim/tokens -H "$J" -d '{{"uid":"pioneer-1"}}' | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
# 4. onReadyForServerApproval -> our approve callback (answers 202 at once; a worker approves at Pi)
curl -s -X POST $API/pi_payment/approve -H "$J" -d '{{"paymentId":"'$PAYMENT'","accessToken":"'$TOKEN'"}}'; echo; sleep 2
# 5. the Pioneer signs and submits the transaction (simulated wallet)
TXID=$(curl -s -X POST $SIM/_sim/u2a/$PAYMENT/submit -H "$J" -d '{{}}' | sed -n 's/.*"txid":"\([^"]*\)".*/\1/p'); echo "txid $TXID"
# 6. onReadyForServerCompletion -> our complete callback (a worker verifies on chain and completes at Pi)
curl -s -X POST $API/pi_payment/complete -H "$J" -d '{{"paymentId":"'$PAYMENT'","txid":"'$TXID'"}}'; echo; sleep 3
# 7. the ledger's view, as the Pioneer who paid: state "completed" and the payment's history
curl -s -H "Authorization: Bearer $TOKEN" $API/payments/$PAYMENT; echo

One A2U payout (the app pays the Pioneer 0.5 Pi), with the operator token:

OP="Authorization: Bearer {operator_token}"
# 8. request it (idempotent by key: the same request again answers the same payout)
PAYOUT=$(curl -s -X POST $API/payouts -H "$OP" -H "$J" -d '{{"uid":"pioneer-1","amount":"0.5","memo":"Welcome reward","idempotency_key":"welcome-pioneer-1"}}' | sed -n 's/.*"id":"\(po_[^"]*\)".*/\1/p'); echo "payout $PAYOUT"; sleep 5
# 9. the payout and its history: created at Pi, signed, confirmed on chain, completed
curl -s -H "$OP" $API/payouts/$PAYOUT; echo
"#,
        horizon = b.pi.horizon_url,
        key = b.pi.api_key(),
        wallet = b.pi.app_wallet,
        reconcile = reconcile_line(b.pi, b.database_url, b.program),
        operator_token = b.generated_admin_token.unwrap_or("$ADMIN_TOKEN"),
    )
}

/// The brake on guessing `ADMIN_TOKEN`: shared through `REDIS_URL` when the deployment has
/// one (every API process sees the others' wrong tokens), this process's alone otherwise.
fn token_guesses(config: &Config) -> anyhow::Result<pi_payments_api::token_guesses::TokenGuesses> {
    use pi_payments_api::token_guesses::TokenGuesses;
    let trust_proxy = config.auth.trust_proxy;
    Ok(match &config.queue {
        crate::config::QueueTarget::Redis(url) => {
            TokenGuesses::shared(trust_proxy, url, &config.queue_namespace)
                .map_err(|e| anyhow::anyhow!("REDIS_URL is not a Redis URL ({e})"))?
        }
        crate::config::QueueTarget::Sqlite(_) => TokenGuesses::new(trust_proxy),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cli::ConfigArgs;

    fn config(bind: &str, admin_token: Option<&str>) -> Config {
        Config::from_args(&ConfigArgs {
            bind_addr: Some(bind.into()),
            admin_token: admin_token.map(str::to_string),
            ..ConfigArgs::default()
        })
        .unwrap()
    }

    #[test]
    fn an_operator_token_is_generated_only_for_serve_on_loopback_without_one() {
        let mut c = config("127.0.0.1:8080", None);
        let token = operator_token_for_trial(&mut c, Role::Serve).expect("generated");
        assert!(token.expose().len() >= pi_payments_api::admin::MIN_ADMIN_TOKEN_LEN);
        assert_eq!(
            c.auth.admin_token.as_ref().map(|t| t.expose().to_string()),
            Some(token.expose().to_string())
        );
        let mut c = config("[::1]:8080", None);
        assert!(operator_token_for_trial(&mut c, Role::Serve).is_some());
        // Reachable from other machines: nothing is opened silently.
        let mut c = config("0.0.0.0:8080", None);
        assert!(operator_token_for_trial(&mut c, Role::Serve).is_none());
        assert!(c.auth.admin_token.is_none());
        // A token given is kept.
        let mut c = config("127.0.0.1:8080", Some("0123456789abcdef-given"));
        assert!(operator_token_for_trial(&mut c, Role::Serve).is_none());
        // Against a real Pi there is no trial token either.
        let mut c = Config::from_args(&ConfigArgs {
            pi_api_key: Some("key".into()),
            pi_app_wallet: Some(pi_payments_core::stellar::Wallet::generate().public_key()),
            ..ConfigArgs::default()
        })
        .unwrap();
        assert!(operator_token_for_trial(&mut c, Role::Serve).is_none());
    }

    #[test]
    fn api_and_worker_need_a_key_serve_does_not() {
        let c = config("127.0.0.1:8080", None);
        assert!(Role::Serve.check(&c).is_ok());
        for role in [Role::Api, Role::Worker] {
            let err = role.check(&c).unwrap_err();
            assert_eq!(err.variable, "PI_API_KEY");
            assert!(!err.to_string().contains('\n'));
        }
    }

    #[test]
    fn the_reconcile_line_quotes_what_the_shell_would_split() {
        assert_eq!(shell_word("Pi Testnet"), "'Pi Testnet'");
        assert_eq!(shell_word("it's"), "'it'\\''s'");
        assert_eq!(shell_word("sqlite:///tmp/x.db"), "sqlite:///tmp/x.db");
    }
}
