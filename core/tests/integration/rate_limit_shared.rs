//! The deployment-wide limiter: several "processes" (limiters with their own Redis connections)
//! sharing one budget send no faster together than the budget allows.

use pi_payments_core::rate_limit::RateLimiter;
use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn redis_url() -> String {
    std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

async fn connection() -> redis::aio::ConnectionManager {
    let client = redis::Client::open(redis_url()).expect("TEST_REDIS_URL is a Redis URL");
    redis::aio::ConnectionManager::new(client)
        .await
        .expect("Redis answers at TEST_REDIS_URL")
}

fn unique_key(name: &str) -> String {
    format!("pi-payments-test:{name}:{}", rand::random::<u64>())
}

#[tokio::test]
async fn three_processes_share_one_budget() {
    let key = unique_key("share");
    let per_second = NonZeroU32::new(50).unwrap();
    let mut limiters = Vec::new();
    for _ in 0..3 {
        limiters.push(Arc::new(RateLimiter::shared(
            connection().await,
            key.clone(),
            per_second,
        )));
    }
    let start = Instant::now();
    let mut tasks = Vec::new();
    for limiter in &limiters {
        for _ in 0..4 {
            let limiter = limiter.clone();
            tasks.push(tokio::spawn(async move {
                let mut times = Vec::new();
                for _ in 0..10 {
                    limiter.acquire().await;
                    times.push(start.elapsed());
                }
                times
            }));
        }
    }
    let mut times: Vec<Duration> = Vec::new();
    for task in tasks {
        times.extend(task.await.unwrap());
    }
    times.sort();
    // 120 permits at 50/s, evenly spaced: the last one no earlier than 119 intervals of 20 ms.
    assert_eq!(times.len(), 120);
    assert!(
        times[119] >= Duration::from_millis(119 * 20 - 5),
        "last permit at {:?}",
        times[119]
    );
    // No one-second window holds more than the budget (+1 for the window's edges).
    for (i, t) in times.iter().enumerate() {
        let in_window = times[i..]
            .iter()
            .take_while(|u| **u < *t + Duration::from_secs(1))
            .count();
        assert!(in_window <= 51, "{in_window} permits within 1 s from {t:?}");
    }
}

#[tokio::test]
async fn an_idle_budget_gives_its_first_permit_at_once() {
    let limiter = RateLimiter::shared(
        connection().await,
        unique_key("idle"),
        NonZeroU32::new(5).unwrap(),
    );
    let start = Instant::now();
    limiter.acquire().await;
    assert!(start.elapsed() < Duration::from_millis(150));
    assert!(limiter.is_shared());
}

/// The operator dashboard's figure: permits this process took in the last minute, counted by
/// local and shared limiters alike (each process its own).
#[tokio::test]
async fn limiters_count_the_calls_of_the_last_minute() {
    let local = RateLimiter::new(NonZeroU32::new(1000).unwrap());
    let shared = RateLimiter::shared(
        connection().await,
        unique_key("count"),
        NonZeroU32::new(1000).unwrap(),
    );
    for limiter in [&local, &shared] {
        assert_eq!(limiter.calls_last_minute(), 0);
        for _ in 0..3 {
            limiter.acquire().await;
        }
        assert_eq!(limiter.calls_last_minute(), 3);
    }
}

#[tokio::test]
async fn without_redis_a_process_slows_to_its_fallback_share() {
    // Nothing listens on port 1: every reservation fails, so permits come from this process's
    // fallback share (40/s ÷ FALLBACK_SHARE = 10/s), never from an unlimited path.
    let limiter = RateLimiter::shared_at(
        "redis://127.0.0.1:1",
        unique_key("down"),
        NonZeroU32::new(40).unwrap(),
    )
    .expect("a well-formed URL is accepted without connecting");
    assert_eq!(pi_payments_core::rate_limit::FALLBACK_SHARE, 4);
    let start = Instant::now();
    for _ in 0..11 {
        limiter.acquire().await;
    }
    // 11 permits at 10/s need at least 10 intervals of 100 ms (at 40/s: 250 ms).
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(990), "{elapsed:?}");
    // ... and Redis being down does not cost each permit a timeout.
    assert!(elapsed < Duration::from_secs(4), "{elapsed:?}");
}

#[test]
fn a_malformed_redis_url_is_an_error() {
    assert!(RateLimiter::shared_at("not a url", "k", NonZeroU32::MIN).is_err());
}

#[tokio::test]
async fn holders_woken_late_take_fresh_slots_instead_of_sending_together() {
    // 20/s: slots every 50 ms. Six callers reserve slots 0..250 ms, then the process stalls
    // for 400 ms (the thread is blocked). Woken together, the five late holders would send at
    // once; they take fresh slots instead, so their permits stay spaced.
    let limiter = Arc::new(RateLimiter::shared(
        connection().await,
        unique_key("stall"),
        NonZeroU32::new(20).unwrap(),
    ));
    let start = Instant::now();
    let tasks: Vec<_> = (0..6)
        .map(|_| {
            let limiter = limiter.clone();
            tokio::spawn(async move {
                limiter.acquire().await;
                start.elapsed()
            })
        })
        .collect();
    // Let every caller reserve its slot and go to sleep, then stall past all of them.
    tokio::time::sleep(Duration::from_millis(30)).await;
    std::thread::sleep(Duration::from_millis(400));
    let mut times = Vec::new();
    for task in tasks {
        times.push(task.await.unwrap());
    }
    times.sort();
    let late: Vec<Duration> = times
        .iter()
        .copied()
        .filter(|t| *t >= Duration::from_millis(400))
        .collect();
    assert!(late.len() >= 4, "{times:?}");
    for pair in late.windows(2) {
        assert!(
            pair[1] - pair[0] >= Duration::from_millis(35),
            "late permits crowd together: {times:?}"
        );
    }
}

/// A redis-server of this test alone (so that it can be stopped), on a free port; `None` when
/// `redis-server` is not installed outside CI.
fn private_redis() -> Option<(std::process::Child, u16)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .ok()?
        .local_addr()
        .ok()?
        .port();
    let spawned = std::process::Command::new("redis-server")
        .args(["--bind", "127.0.0.1", "--port", &port.to_string()])
        .args(["--save", "", "--appendonly", "no"])
        .stdout(std::process::Stdio::null())
        .spawn();
    let Ok(child) = spawned else {
        assert!(
            std::env::var_os("CI").is_none(),
            "redis-server is not installed"
        );
        return None;
    };
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "redis-server never listened"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    Some((child, port))
}

#[tokio::test]
async fn with_more_processes_than_the_fallback_share_each_falls_back_to_less() {
    let Some((mut redis, port)) = private_redis() else {
        return;
    };
    let url = format!("redis://127.0.0.1:{port}");
    let key = unique_key("fallback-share");
    let per_second = NonZeroU32::new(60).unwrap();
    // Six processes share the budget; the last one to reserve learns there are six.
    let others: Vec<RateLimiter> = (0..5)
        .map(|_| RateLimiter::shared_at(&url, key.clone(), per_second).unwrap())
        .collect();
    for limiter in &others {
        limiter.acquire().await;
    }
    let limiter = RateLimiter::shared_at(&url, key.clone(), per_second).unwrap();
    limiter.acquire().await;
    // Redis goes away: this process now takes 1/6 of 60/s (10/s), not 1/4 (15/s), so that six
    // processes falling back together stay under the limit.
    redis.kill().unwrap();
    redis.wait().unwrap();
    let start = Instant::now();
    for _ in 0..8 {
        limiter.acquire().await;
    }
    // 8 permits at 10/s need at least 7 intervals of 100 ms (at 15/s: 467 ms).
    let elapsed = start.elapsed();
    assert!(elapsed >= Duration::from_millis(650), "{elapsed:?}");
}
