//! One Pi budget and one Horizon budget per deployment: two processes' worth of clients, each
//! built through the wiring path (`PiServices::connect`, its own limiters and Redis
//! connection, as a separate process would have) with the same `REDIS_URL`, together stay
//! within `PI_RATE_LIMIT` and `HORIZON_RATE_LIMIT` at a pi-sim that rate-limits 10 % above them:
//! no 429, a measured 1 s peak within the limit, and the pace of one budget, not two.

use pi_payments::cli::ConfigArgs;
use pi_payments::config::Config;
use pi_payments::services::{HORIZON_TIMEOUT, PiEndpoints, PiServices};
use pi_sim::control_client::SimControl;
use pi_sim::faults::Target;
use pi_sim::{RunningSim, SimConfig};
use serde_json::Value;
use std::time::{Duration, Instant};

/// `PI_RATE_LIMIT` and `HORIZON_RATE_LIMIT` of the deployment (pi-sim has one rate-limit knob
/// for both listeners, so both budgets are the same size; they are still separate budgets).
const LIMIT: u32 = 20;
/// "Processes" sharing the budgets, and concurrent callers in each.
const PROCESSES: usize = 2;
const CALLERS: usize = 4;
/// Calls per caller: Platform, Horizon.
const PI_CALLS: usize = 8;
const HORIZON_CALLS: usize = 8;

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

async fn sim() -> RunningSim {
    pi_payments_core::pi_client::install_crypto_provider();
    pi_sim::start(SimConfig {
        platform_port: 0,
        horizon_port: 0,
        // A fresh key: the budget in Redis is this test run's alone.
        api_key: Some(pi_payments_core::ids::random_alnum(32)),
        rate_limit: Some(LIMIT + LIMIT / 10),
        fault_targets: vec![Target::Platform, Target::Horizon],
        ..SimConfig::default()
    })
    .await
    .expect("pi-sim starts")
}

fn config(sim: &RunningSim) -> Config {
    Config::from_args(&ConfigArgs {
        pi_api_key: Some(sim.api_key.clone()),
        pi_api_base_url: Some(sim.platform_url.clone()),
        pi_horizon_url: Some(sim.horizon_url.clone()),
        pi_network: Some(sim.network_passphrase.clone()),
        pi_app_wallet: Some(sim.app_wallet_public_key.clone()),
        redis_url: Some(redis_url()),
        pi_rate_limit: Some(LIMIT.to_string()),
        horizon_rate_limit: Some(LIMIT.to_string()),
        ..ConfigArgs::default()
    })
    .expect("a valid configuration")
}

async fn sim_log(sim: &RunningSim) -> Value {
    let control = SimControl::of(sim).expect("pi-sim's control API");
    control.log().await.expect("pi-sim answers with its log")
}

/// Every caller of every process makes its calls; how long they all took.
async fn run_load(processes: &[PiServices], app_wallet: &str) -> Duration {
    let start = Instant::now();
    let mut tasks = Vec::new();
    for pi in processes {
        for _ in 0..CALLERS {
            let client = pi.client.clone();
            tasks.push(tokio::spawn(async move {
                for _ in 0..PI_CALLS {
                    client
                        .incomplete_server_payments()
                        .await
                        .expect("Pi answers within its limit");
                }
            }));
            let horizon = pi.horizon.clone();
            let wallet = app_wallet.to_string();
            tasks.push(tokio::spawn(async move {
                for _ in 0..HORIZON_CALLS {
                    horizon
                        .account(&wallet)
                        .await
                        .expect("Horizon answers within its limit");
                }
            }));
        }
    }
    for task in tasks {
        task.await.expect("a caller finished");
    }
    start.elapsed()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn processes_sharing_redis_stay_within_one_pi_and_one_horizon_budget() {
    let sim = sim().await;
    let config = config(&sim);
    let processes: Vec<PiServices> = (0..PROCESSES)
        .map(|_| {
            let endpoints = PiEndpoints::remote(&config).expect("a remote Pi is configured");
            PiServices::connect(endpoints, &config, HORIZON_TIMEOUT).expect("clients build")
        })
        .collect();
    for pi in &processes {
        let horizon_limiter = pi.horizon.rate_limiter().expect("Horizon is rate-limited");
        assert!(horizon_limiter.is_shared());
        assert_eq!(horizon_limiter.per_second().get(), LIMIT);
    }

    let elapsed = run_load(&processes, &sim.app_wallet_public_key).await;

    let log = sim_log(&sim).await;
    assert_eq!(
        log["totals"]["rate_limited"], 0,
        "pi-sim answered 429s: {log:#}"
    );
    for target in ["platform", "horizon"] {
        let peak = log["max_rate_1s"][target]
            .as_u64()
            .expect("a peak per listener");
        // One more than the limit may fall in a sliding 1 s window at its edges.
        assert!(
            peak <= u64::from(LIMIT) + 1,
            "{target} peak {peak}/s: {log:#}"
        );
    }
    let calls = |endpoint: &str| log["endpoints"][endpoint]["calls"].as_u64().unwrap_or(0);
    let pi_calls = PROCESSES * CALLERS * PI_CALLS;
    let horizon_calls = PROCESSES * CALLERS * HORIZON_CALLS;
    assert_eq!(calls("incomplete_server_payments"), pi_calls as u64);
    assert_eq!(calls("horizon_account"), horizon_calls as u64);
    // The dashboard's figure: every process reads the deployment's calls from Redis (counted
    // off the callers' path, so they may land a moment later), besides its own.
    for pi in &processes {
        let limiter = pi.client.limiter();
        assert_eq!(limiter.calls_last_minute(), (CALLERS * PI_CALLS) as u64);
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let counted = limiter.deployment_calls_last_minute().await;
            if counted == Some(pi_calls as u64) {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "Redis counted {counted:?} Pi calls, not {pi_calls}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    // The pace of one budget for all processes (each alone would have taken half as long).
    let one_budget =
        Duration::from_secs_f64((pi_calls.max(horizon_calls) - 1) as f64 / f64::from(LIMIT));
    assert!(
        elapsed >= one_budget.mul_f64(0.97),
        "{pi_calls} Pi and {horizon_calls} Horizon calls took {elapsed:?}, under {one_budget:?}"
    );
}
