//! Strikes against a key (e.g. wrong operator tokens from one client address) counted in
//! Redis, so that every process of a deployment sees the same count: a limit kept in one
//! process lets a client that is spread over N processes by the load balancer try N times as
//! often. A key's window starts at its first strike and lasts [`SharedStrikes::window`]; keys
//! are hashed, so Redis holds no client address.
//!
//! Redis is asked with a short timeout and an answer that does not come is `None`: callers
//! keep a count of their own beside it, so a Redis outage weakens the limit to per-process,
//! never removes it.

use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use std::sync::LazyLock;
use std::time::Duration;

/// How long a connection to Redis, or an answer from it, may take.
const REDIS_TIMEOUT: Duration = Duration::from_millis(400);

/// Adds a strike to `KEYS[1]`, starting its window (`ARGV[1]` ms) at the first; the count.
const STRIKE: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 or redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// The strikes of `KEYS[1]` and the milliseconds left in its window (`{0, 0}` without any).
const COUNT: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
return {tonumber(n), redis.call('PTTL', KEYS[1])}
";

static STRIKE_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(STRIKE));
static COUNT_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(COUNT));

/// Strike counts of one kind (`prefix`) in one Redis; cheap to clone.
#[derive(Clone)]
pub struct SharedStrikes {
    conn: ConnectionManager,
    prefix: String,
    window: Duration,
}

impl std::fmt::Debug for SharedStrikes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SharedStrikes")
            .field("prefix", &self.prefix)
            .field("window", &self.window)
            .finish_non_exhaustive()
    }
}

impl SharedStrikes {
    /// Counts under `prefix` (name the kind and the deployment, e.g. with the queue
    /// namespace) in the Redis at `redis_url`, windows of `window`. It connects on first use
    /// and reconnects by itself; only a malformed URL is an error.
    pub fn at(redis_url: &str, prefix: &str, window: Duration) -> redis::RedisResult<Self> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            .set_number_of_retries(1);
        Ok(SharedStrikes {
            conn: ConnectionManager::new_lazy_with_config(client, config)?,
            prefix: prefix.to_string(),
            window,
        })
    }

    /// How long a key's window lasts.
    pub fn window(&self) -> Duration {
        self.window
    }

    fn redis_key(&self, key: &str) -> String {
        let digest = hex::encode(Sha256::digest(key.as_bytes()));
        format!("{}:{}", self.prefix, &digest[..32])
    }

    /// `key`'s strikes and the time left in its window; `None` when Redis does not answer
    /// within 400 ms.
    pub async fn count(&self, key: &str) -> Option<(u32, Duration)> {
        let mut conn = self.conn.clone();
        let invocation = COUNT_SCRIPT.key(self.redis_key(key));
        let asked = invocation.invoke_async::<(i64, i64)>(&mut conn);
        let (n, ttl_ms) = tokio::time::timeout(REDIS_TIMEOUT, asked)
            .await
            .ok()?
            .ok()?;
        Some((
            u32::try_from(n).unwrap_or(u32::MAX),
            Duration::from_millis(u64::try_from(ttl_ms).unwrap_or(0)),
        ))
    }

    /// Add a strike against `key`; its count now, `None` when Redis does not answer.
    pub async fn strike(&self, key: &str) -> Option<u32> {
        let mut conn = self.conn.clone();
        let window_ms = u64::try_from(self.window.as_millis())
            .unwrap_or(u64::MAX)
            .max(1);
        let mut invocation = STRIKE_SCRIPT.key(self.redis_key(key));
        invocation.arg(window_ms);
        let struck = invocation.invoke_async::<i64>(&mut conn);
        let n = tokio::time::timeout(REDIS_TIMEOUT, struck)
            .await
            .ok()?
            .ok()?;
        Some(u32::try_from(n).unwrap_or(u32::MAX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_unreachable_redis_answers_none_quickly() {
        let strikes =
            SharedStrikes::at("redis://127.0.0.1:1", "test", Duration::from_secs(60)).unwrap();
        let started = std::time::Instant::now();
        assert_eq!(strikes.strike("203.0.113.7").await, None);
        assert_eq!(strikes.count("203.0.113.7").await, None);
        assert!(started.elapsed() < Duration::from_secs(3));
    }

    #[tokio::test]
    async fn processes_share_counts_and_windows_end() {
        let url = std::env::var("TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
        let prefix = format!("pi-payments:test-strikes:{}", crate::ids::random_alnum(12));
        let one = SharedStrikes::at(&url, &prefix, Duration::from_millis(600)).unwrap();
        let other = SharedStrikes::at(&url, &prefix, Duration::from_millis(600)).unwrap();
        assert_eq!(one.count("a").await, Some((0, Duration::ZERO)));
        assert_eq!(one.strike("a").await, Some(1));
        assert_eq!(other.strike("a").await, Some(2));
        let (n, left) = one.count("a").await.unwrap();
        assert_eq!(n, 2);
        assert!(left > Duration::ZERO && left <= Duration::from_millis(600));
        assert_eq!(other.count("b").await, Some((0, Duration::ZERO)));
        tokio::time::sleep(Duration::from_millis(700)).await;
        assert_eq!(other.count("a").await, Some((0, Duration::ZERO)));
    }
}
