//! Running the service from a [`Config`]: the API and the workers on the ledger, queue and Pi
//! that [`Services::connect`] opens (pi-sim in-process when no Pi API key is configured).
//! `main` and the end-to-end tests both go through [`RunningApp::start`], so the tests run the
//! real wiring.

use crate::config::{Config, DEFAULT_WORKER_ADDR};
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
    pub async fn start(config: Config, role: Role) -> anyhow::Result<RunningApp> {
        // Before anything records (the clients set their rate-limit gauges when built).
        pi_payments_api::metrics::install();
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
                retry: JobRetry::default(),
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
        Ok(RunningApp {
            addr,
            probe_addr,
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

    /// The simulator's control URL and a ready-to-paste walk-through of one payment, when the
    /// simulator runs in this process.
    pub fn walkthrough(&self) -> Option<String> {
        if !self.simulated {
            return None;
        }
        let api = self.addr.map(|a| format!("http://{a}"))?;
        Some(walkthrough_text(&api, &self.pi))
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
    tracing::info!(
        app_wallet = %pi.app_wallet,
        channels = channels.len(),
        "A2U payouts enabled"
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

fn walkthrough_text(api: &str, pi: &PiEndpoints) -> String {
    let sim = &pi.api_base_url;
    format!(
        r#"
PI_API_KEY is unset: running against the built-in Pi simulator (for trying things out only).
  simulated Pi Platform API: {sim}/v2   (control API: {sim}/_sim/...)
  simulated Horizon:         {horizon}
  app wallet:                {wallet}
  pi-payments API:           {api}

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
"#,
        horizon = pi.horizon_url,
        wallet = pi.app_wallet,
    )
}
