//! A deployment of the real binary as separate processes (`api`, `worker`, `migrate`) against
//! one pi-sim on a runtime of its own, for the tests that measure a whole deployment
//! (`deployment`, `chaos`): starting, killing and restarting processes, driving Pioneers'
//! payments through the APIs, and reading the shared ledger.
//!
//! Processes log to `{name}.log` in a scratch directory, or in `DEPLOYMENT_TEST_LOGS` to keep
//! them after the run.

use pi_payments_core::ledger::Ledger;
use pi_payments_core::ledger::scratch::ScratchDatabase;
use pi_payments_core::stellar::Wallet;
use pi_sim::control_client::{SimControl, U2aRequest};
use pi_sim::faults::Target;
use pi_sim::{RunningSim, SimConfig};
use serde_json::{Value, json};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The processes of a deployment; all killed when the test ends (or fails).
pub struct Deployment {
    children: Vec<(String, Child)>,
    dir: tempfile::TempDir,
    /// The environment every process gets (nothing else is inherited but `PATH`).
    pub env: Vec<(&'static str, String)>,
}

impl Drop for Deployment {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Deployment {
    /// A deployment whose processes get `env`; none started yet.
    pub fn new(env: Vec<(&'static str, String)>) -> Deployment {
        Deployment {
            children: Vec::new(),
            dir: tempfile::tempdir().unwrap(),
            env,
        }
    }

    fn log_path(&self, name: &str) -> PathBuf {
        std::env::var_os("DEPLOYMENT_TEST_LOGS")
            .map_or_else(|| self.dir.path().to_path_buf(), PathBuf::from)
            .join(format!("{name}.log"))
    }

    /// `pi-payments {role}` named `name` (its `HOSTNAME`, so its worker id and lease holder
    /// start with it), output in `{name}.log`.
    pub fn command(&self, role: &str, name: &str) -> Command {
        // At a lower priority than pi-sim, which stands in for Pi's own machines: on the 2 cores
        // they share here, the stand-in would otherwise stamp requests when a CPU frees up, not
        // when they arrive, and report bunches no limiter sent (peaks of 47-55/s against 40/s
        // measured so; 42/s with this).
        let mut cmd = Command::new("nice");
        cmd.args(["-n", "10", env!("CARGO_BIN_EXE_pi-payments")]);
        cmd.arg(role).env_clear();
        if let Ok(path) = std::env::var("PATH") {
            cmd.env("PATH", path);
        }
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        let log = std::fs::File::create(self.log_path(name)).unwrap();
        cmd.env("HOSTNAME", name)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log);
        cmd
    }

    /// `pi-payments migrate`, to the end.
    pub fn migrate(&self) {
        let migrated = self
            .command("migrate", "migrate")
            .status()
            .expect("migrate runs");
        assert!(migrated.success(), "migrate failed");
    }

    /// Start `pi-payments {role}` named `name`.
    pub fn spawn(&mut self, role: &str, name: &str) {
        let child = self
            .command(role, name)
            .spawn()
            .expect("pi-payments starts");
        self.children.push((name.to_string(), child));
    }

    /// Fails if any process exited.
    pub fn assert_alive(&mut self) {
        let mut exited = None;
        for (name, child) in &mut self.children {
            if let Ok(Some(exit)) = child.try_wait() {
                exited = Some((name.clone(), exit));
                break;
            }
        }
        if let Some((name, exit)) = exited {
            let log = std::fs::read_to_string(self.log_path(&name));
            panic!("{name} exited ({exit}): {}", tail(&log.unwrap_or_default()));
        }
    }

    /// SIGKILL the process `name`.
    pub fn kill(&mut self, name: &str) {
        let at = self.children.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut child) = self.children.remove(at);
        child.kill().expect("SIGKILL");
        child.wait().unwrap();
    }

    /// The API address `name` logged ("API listening addr=…"), waiting up to `deadline`.
    pub async fn api_url(&mut self, name: &str, deadline: Duration) -> String {
        let start = Instant::now();
        loop {
            let log = std::fs::read_to_string(self.log_path(name)).unwrap_or_default();
            if let Some(addr) = log
                .lines()
                .filter(|l| l.contains("API listening"))
                .find_map(|l| l.split("addr=").nth(1))
            {
                return format!("http://{}", addr.split_whitespace().next().unwrap());
            }
            self.assert_alive();
            assert!(start.elapsed() < deadline, "{name} never listened");
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

/// pi-sim with its own runtime and threads, as the real Pi has its own machines: it stamps each
/// request when it arrives, so sharing the test's runtime (busy driving hundreds of Pioneers)
/// would delay and bunch those stamps and report peaks no client sent. Stopped by
/// [`SimThread::stop`].
pub struct SimThread {
    pub sim: RunningSim,
    stop: tokio::sync::oneshot::Sender<()>,
    thread: std::thread::JoinHandle<()>,
}

impl SimThread {
    /// pi-sim with `config` (a fresh API key, so budgets in Redis are this run's alone), and
    /// `channels` (public keys) funded with 10 Pi each.
    pub async fn start(config: SimConfig, channels: Vec<String>) -> SimThread {
        pi_payments_core::pi_client::install_crypto_provider();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let (stop, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("pi-sim")
                .enable_all()
                .build()
                .expect("pi-sim's runtime");
            runtime.block_on(async move {
                let sim = pi_sim::start(SimConfig {
                    api_key: Some(pi_payments_core::ids::random_alnum(32)),
                    ..config
                })
                .await
                .expect("pi-sim starts");
                for w in &channels {
                    sim.chain().fund_account(w, 10 * 10_000_000);
                }
                let _ = ready_tx.send(sim);
                let _ = stop_rx.await;
            });
        });
        let sim = ready_rx.await.expect("pi-sim starts on its thread");
        SimThread { sim, stop, thread }
    }

    pub async fn stop(self) {
        self.sim.shutdown().await;
        let _ = self.stop.send(());
        let _ = tokio::task::spawn_blocking(move || self.thread.join()).await;
    }
}

/// A fresh Postgres database on `TEST_DATABASE_URL` named after `prefix`; `None` (with a message)
/// when Postgres is unreachable outside CI.
pub async fn scratch_postgres(prefix: &str) -> Option<ScratchDatabase> {
    let server_url = std::env::var("TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    match tokio::time::timeout(
        Duration::from_secs(5),
        ScratchDatabase::create(&server_url, prefix),
    )
    .await
    {
        Ok(Ok(pg)) => Some(pg),
        _ => {
            assert!(
                std::env::var_os("CI").is_none(),
                "Postgres is not reachable"
            );
            eprintln!("skipping: Postgres at TEST_DATABASE_URL is not reachable");
            None
        }
    }
}

/// A deployment's Pi: pi-sim on its own threads rate-limiting Platform and Horizon at
/// `sim_limit` per key, simulated ledgers every 0.2 s, and `channels` funded channel accounts.
pub async fn pi_with_channels(sim_limit: u32, channels: usize) -> (SimThread, Vec<Wallet>) {
    let channels: Vec<Wallet> = (0..channels).map(|_| Wallet::generate()).collect();
    let sim = SimThread::start(
        SimConfig {
            rate_limit: Some(sim_limit),
            fault_targets: vec![Target::Platform, Target::Horizon],
            ledger_seconds: 0.2,
            ..SimConfig::default()
        },
        channels.iter().map(Wallet::public_key).collect(),
    )
    .await;
    (sim, channels)
}

/// What every process of a test deployment gets: `sim` as Pi with the `channels`, the ledger at
/// `database_url`, the queue and budgets in `redis_url`, `limit` for both budgets, an operator
/// token, reconciliation every 2 s and `STUCK_AFTER` = `stuck_after` seconds.
pub fn service_env(
    sim: &RunningSim,
    channels: &[Wallet],
    database_url: &str,
    redis_url: &str,
    limit: u32,
    stuck_after: &str,
) -> Vec<(&'static str, String)> {
    let channel_seeds: Vec<String> = channels.iter().map(Wallet::expose_seed).collect();
    vec![
        ("PI_API_KEY", sim.api_key.clone()),
        ("PI_API_BASE_URL", sim.platform_url.clone()),
        ("PI_HORIZON_URL", sim.horizon_url.clone()),
        ("PI_NETWORK", sim.network_passphrase.clone()),
        ("PI_APP_WALLET", sim.app_wallet_public_key.clone()),
        ("PI_WALLET_SEED", sim.app_wallet_seed.clone()),
        ("PI_CHANNEL_SEEDS", channel_seeds.join(",")),
        ("ADMIN_TOKEN", super::payouts::ADMIN_TOKEN.to_string()),
        ("DATABASE_URL", database_url.to_string()),
        ("REDIS_URL", redis_url.to_string()),
        ("PI_RATE_LIMIT", limit.to_string()),
        ("HORIZON_RATE_LIMIT", limit.to_string()),
        ("BIND_ADDR", "127.0.0.1:0".to_string()),
        // Every simulated Pioneer calls from 127.0.0.1: one client to the per-client limit.
        ("CLIENT_RATE_LIMIT", "0".to_string()),
        ("RECONCILE_EVERY", "2".to_string()),
        ("STUCK_AFTER", stuck_after.to_string()),
        ("RUST_LOG", "info".to_string()),
    ]
}

/// One U2A payment of Pioneer `uid`: created by the Pioneer, approved through `approve_api`,
/// submitted by the Pioneer, completed through `complete_api`; each wait at most `deadline`.
/// Returns the payment id.
pub async fn u2a(
    http: reqwest::Client,
    control: SimControl,
    (approve_api, complete_api): (String, String),
    uid: String,
    deadline: Duration,
) -> String {
    let id = control
        .create_u2a_id(&U2aRequest::new(&uid, "1").memo("deploy"))
        .await
        .unwrap();
    let token = control.token(&uid).await.unwrap();
    let approve = json!({"paymentId": id, "accessToken": token});
    let approve_url = format!("{approve_api}/pi_payment/approve");
    post_until_accepted(&http, &approve_url, &approve, deadline).await;
    // As Pi's SDK does, the approve callback comes again about every 10 s until the payment is
    // approved: a job lost with a killed worker (or a restarted Redis) is re-enqueued by the
    // sweeper without the token, which is never stored, and waits for it.
    let start = Instant::now();
    loop {
        let left = deadline.saturating_sub(start.elapsed());
        let wait = left.min(Duration::from_secs(10));
        if try_wait_payment(&http, &complete_api, &id, "approved", wait).await {
            break;
        }
        assert!(start.elapsed() < deadline, "payment {id} never approved");
        post_until_accepted(&http, &approve_url, &approve, left).await;
    }
    let txid = control.submit_with(&id, &json!({})).await.unwrap().txid;
    let complete = json!({"paymentId": id, "txid": txid});
    let url = format!("{complete_api}/api/pi_payment/complete");
    post_until_accepted(&http, &url, &complete, deadline).await;
    wait_payment(&http, &approve_api, &id, "completed", deadline).await;
    id
}

/// POST a callback until the service answers 202, as Pi's SDK re-sends them: a 5xx (its queue
/// being restarted) or no answer is tried again after a second; any 4xx fails the test.
async fn post_until_accepted(http: &reqwest::Client, url: &str, body: &Value, deadline: Duration) {
    let start = Instant::now();
    loop {
        match http.post(url).json(body).send().await {
            Ok(res) if res.status().as_u16() == 202 => return,
            Ok(res) => {
                let status = res.status();
                let text = res.text().await.unwrap_or_default();
                assert!(status.is_server_error(), "{url}: {status} {text}");
            }
            Err(_) => {}
        }
        assert!(start.elapsed() < deadline, "{url} never accepted {body}");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

/// Poll an API until the payment is in `state` (a final state other than it fails).
pub async fn wait_payment(
    http: &reqwest::Client,
    api: &str,
    id: &str,
    state: &str,
    deadline: Duration,
) {
    assert!(
        try_wait_payment(http, api, id, state, deadline).await,
        "payment {id} never reached {state}"
    );
}

/// [`wait_payment`] for at most `wait`: whether the payment reached `state` by then.
async fn try_wait_payment(
    http: &reqwest::Client,
    api: &str,
    id: &str,
    state: &str,
    wait: Duration,
) -> bool {
    let start = Instant::now();
    loop {
        // An API that is not answering (being restarted) is waited for like a slow payment.
        let body: Value = match http
            .get(format!("{api}/payments/{id}"))
            .bearer_auth(super::payouts::ADMIN_TOKEN)
            .send()
            .await
        {
            Ok(res) => res.json().await.unwrap_or(Value::Null),
            Err(_) => Value::Null,
        };
        let now = body["payment"]["state"].as_str().unwrap_or("");
        if now == state {
            return true;
        }
        assert!(
            !super::is_final(now),
            "payment {id} settled as {now}, not {state}: {body}"
        );
        if start.elapsed() >= wait {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(1000)).await;
    }
}

/// Create a payout to `uid` (known to Pi) through `api`'s admin route; its id.
pub async fn request_payout(
    http: &reqwest::Client,
    control: &SimControl,
    api: &str,
    admin_token: &str,
    uid: &str,
    i: usize,
) -> String {
    control.user(uid).await.unwrap();
    let amount = format!("0.{:07}", 1_000 + i);
    let body = json!({"uid": uid, "amount": amount, "memo": "deploy", "idempotency_key": format!("deploy-{i}")});
    let res = http
        .post(format!("{api}/payouts"))
        .bearer_auth(admin_token)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 202, "POST /payouts {i}");
    let body: Value = res.json().await.unwrap();
    body["payout"]["id"].as_str().unwrap().to_string()
}

/// One number from the ledger.
pub async fn count(ledger: &Ledger, sql: &'static str) -> i64 {
    sqlx::query_scalar(sql)
        .fetch_one(ledger.pool())
        .await
        .unwrap()
}

/// The payout lanes (`payout-lane:*` leases) and their holders, live ones only.
pub async fn live_lanes(ledger: &Ledger) -> Vec<(String, String)> {
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap();
    sqlx::query_as(
        "SELECT name, holder FROM leases WHERE name LIKE 'payout-lane:%' AND expires_at > $1 \
         ORDER BY name",
    )
    .bind(now)
    .fetch_all(ledger.pool())
    .await
    .unwrap()
}

/// The worker (by name) holding a lease: holders are `{HOSTNAME}-{pid}-{random}` and the
/// tests' names have no `-`.
pub fn holder_name(holder: &str) -> String {
    holder.split('-').next().unwrap_or_default().to_string()
}
