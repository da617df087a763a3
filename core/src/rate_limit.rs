//! Rate limiters for every call this deployment makes to an upstream (Pi's Platform API, Horizon).
//!
//! Pi documents no rate limit but has one; exceeding it costs 429s and delays for every
//! payment. A permit is taken before *every* attempt, retries included, so retries spend the
//! same budget. The limit is the whole deployment's: with a shared Redis every process reserves
//! its slots from one GCRA schedule kept in Redis ([`RateLimiter::shared`]); a single process
//! uses an in-process governor ([`RateLimiter::new`]). When Redis cannot be reached, a shared
//! limiter falls back to its process's share of the budget (divided by the processes Redis last
//! saw sharing it, at least [`FALLBACK_SHARE`]): the deployment slows down, never speeds up.
//! A shared limiter also counts its permits per second in Redis, so that an operator sees the
//! deployment's call rate from any process ([`RateLimiter::deployment_calls_last_minute`]).

use governor::{DefaultDirectRateLimiter, Quota};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use sha2::{Digest, Sha256};
use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, LazyLock};
use std::time::{Duration, Instant};

/// `PI_RATE_LIMIT`'s default: requests per second to Pi.
pub const DEFAULT_PI_RATE_LIMIT: NonZeroU32 = NonZeroU32::new(10).unwrap();

/// `HORIZON_RATE_LIMIT`'s default: requests per second to Horizon. Pi's public Horizon is a
/// Stellar Horizon, whose stock limit is 3,600 requests per hour per client IP (GCRA: one per
/// second on average, after a burst); Pi publishes no other figure. A deployment usually leaves
/// through one IP, so one request per second for all its processes never runs into that limit.
/// Raise it for a Horizon of your own.
pub const DEFAULT_HORIZON_RATE_LIMIT: NonZeroU32 = NonZeroU32::new(1).unwrap();

/// Prefix of the Redis keys holding shared schedules (see [`budget_key`]).
const KEY_PREFIX: &str = "pi-payments:rate";

/// How long a connection to Redis, or an answer from it, may take before a shared limiter
/// gives up on it for this permit.
const REDIS_TIMEOUT: Duration = Duration::from_millis(400);

/// The part of the budget one process may use while Redis is unreachable: its limit divided
/// by this, or by the number of processes last seen sharing the budget if that is larger, so
/// that all of them falling back together stay under the limit.
pub const FALLBACK_SHARE: u32 = 4;

/// A process counts as sharing a budget while it reserved a slot within this long.
const PROCESS_SEEN_FOR: Duration = Duration::from_secs(30);

/// How long a reservation may take before the process stops waiting for Redis and uses its
/// fallback share for this permit.
const RESERVE_TIMEOUT: Duration = Duration::from_millis(500);

/// How many times a permit whose holder woke up too late takes a fresh slot before it goes
/// anyway (see [`SharedSchedule::acquire`]).
const LATE_RESERVATIONS: usize = 3;

/// Lateness always tolerated, whatever the interval: at high rates a few milliseconds of
/// crowding are a tiny share of a second, and re-reserving would cost more than it saves.
const LATENESS_TOLERATED: Duration = Duration::from_millis(5);

/// After a failed reservation, how long permits come from the fallback share without asking
/// Redis: a Redis that does not answer would otherwise cost every permit [`RESERVE_TIMEOUT`].
const RETRY_REDIS_AFTER: Duration = Duration::from_secs(1);

/// How long a clock sample (see [`RedisClock`]) is trusted before a worse but newer one may
/// replace it: both clocks drift a little, and a stale best sample would carry that drift.
const CLOCK_SAMPLE_LIFETIME: Duration = Duration::from_secs(10);

/// Reserves the next free slot of a GCRA schedule whose "theoretical arrival time" (TAT, in
/// microseconds of Redis' own clock, so that every process agrees on "now") is stored at
/// KEYS[1]. ARGV[1] is the emission interval in microseconds. Returns the slot and Redis' now,
/// both in microseconds of Redis' clock, and how many processes reserved a slot within
/// ARGV[4] µs: KEYS[2] is a sorted set of process ids (ARGV[2]) by last reservation (ARGV[3]:
/// write it this time, "0" only reads). Both keys expire once the schedule is idle.
const RESERVE_SLOT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local interval = tonumber(ARGV[1])
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local next_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%d', next_tat), 'PX', math.floor((next_tat - now) / 1000) + 1000)
local seen_for = tonumber(ARGV[4])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[2], now, ARGV[2])
  redis.call('ZREMRANGEBYSCORE', KEYS[2], '-inf', now - seen_for)
  redis.call('PEXPIRE', KEYS[2], math.floor(seen_for / 1000) * 2)
end
local processes = redis.call('ZCOUNT', KEYS[2], now - seen_for, '+inf')
return {tat, now, processes}
";

/// Counts `ARGV[2]` calls in the budget's per-second counters: `KEYS[1]` plus `:` and the second of
/// Redis' clock (one key per second, gone after [`CALL_COUNT_TTL_SECS`]), so that every
/// process of the deployment adds to, and reads, the same figures.
const COUNT_CALL: &str = r"
local t = redis.call('TIME')
local k = KEYS[1] .. ':' .. t[1]
redis.call('INCRBY', k, tonumber(ARGV[2]))
redis.call('EXPIRE', k, tonumber(ARGV[1]))
return 1
";

/// Sums the per-second counters of `KEYS[1]` (see [`COUNT_CALL`]) over the last `ARGV[1]`
/// seconds of Redis' clock, the current one included.
const SUM_CALLS: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1])
local total = 0
for i = 0, tonumber(ARGV[1]) - 1 do
  total = total + tonumber(redis.call('GET', KEYS[1] .. ':' .. string.format('%d', now - i)) or '0')
end
return total
";

/// The two scripts above, hashed once.
static COUNT_CALL_SCRIPT: LazyLock<redis::Script> =
    LazyLock::new(|| redis::Script::new(COUNT_CALL));
static SUM_CALLS_SCRIPT: LazyLock<redis::Script> = LazyLock::new(|| redis::Script::new(SUM_CALLS));

/// How often a process adds its permits to the deployment's count.
const COUNT_FLUSH_EVERY: Duration = Duration::from_millis(500);

/// How long a per-second call counter lives: past the minute it is read over.
const CALL_COUNT_TTL_SECS: u64 = crate::call_window::WINDOW_SECS + 10;

/// How often a process writes itself into a budget's set of processes (every reservation
/// would cost Redis a sorted-set write per request for nothing).
const PROCESS_MARK_EVERY: Duration = Duration::from_secs(5);

/// Where Redis' clock stands against this process' monotonic clock. A slot is a moment of
/// Redis' clock; the answer carrying it may reach us late (a stalled process, a slow network),
/// and "wait the rest from when the answer arrived" would then send late, together with the
/// holders of the next slots: a burst the upstream counts against us. Placing the slot on our
/// own clock through this offset shows such an answer as late instead. The offset comes from
/// the round trip with the smallest delay seen lately (its error is at most half that delay).
#[derive(Debug, Default)]
struct RedisClock {
    /// `(redis_us - local_us, round trip µs, local µs when taken)` of the best recent sample.
    best: Option<(i64, u64, u64)>,
}

impl RedisClock {
    /// Learn from one round trip: asked at `sent` and answered at `received` (µs of the local
    /// clock), Redis' clock read `redis_now` in between.
    fn sample(&mut self, sent: u64, received: u64, redis_now: i64) {
        let rtt = received.saturating_sub(sent);
        let midpoint = sent.saturating_add(rtt / 2);
        let offset = redis_now.saturating_sub(i64::try_from(midpoint).unwrap_or(i64::MAX));
        let keep = self.best.is_some_and(|(_, best_rtt, taken)| {
            best_rtt <= rtt
                && received.saturating_sub(taken) < CLOCK_SAMPLE_LIFETIME.as_micros() as u64
        });
        if !keep {
            self.best = Some((offset, rtt, received));
        }
    }

    /// The local moment (µs) of `redis_us` on Redis' clock, once a sample was taken.
    fn local(&self, redis_us: i64) -> Option<i64> {
        self.best
            .map(|(offset, _, _)| redis_us.saturating_sub(offset))
    }
}

/// A smooth requests-per-second limiter (burst of 1: permits are spaced evenly, so a backlog
/// drains at the configured rate instead of in bursts the upstream may reject).
pub struct RateLimiter {
    per_second: NonZeroU32,
    backend: Backend,
    /// Permits this process took in the last minute (the operator dashboard shows it).
    recent: crate::call_window::CallWindow,
}

/// `PI_UNVERIFIED_SHARE`'s default: the percent of `PI_RATE_LIMIT` that work for payments
/// nobody has vouched for may use (see [`UnverifiedShare`]).
pub const DEFAULT_UNVERIFIED_SHARE_PERCENT: u8 = 20;

/// The bounded share of the Pi budget for work that carries no verified Pioneer and that the
/// ledger has not seen approved (a callback with a bogus or no token, or a random payment id):
/// a stranger can spend this share, never the rest. Each process takes its part of the share:
/// the share divided by the processes sharing the Pi budget (for a budget shared through
/// Redis, at least [`FALLBACK_SHARE`]), so the deployment as a whole stays within it. It only
/// says "not now" and never waits, so a deferred job does not hold a worker slot.
pub struct UnverifiedShare {
    total: NonZeroU32,
    percent: u8,
    /// The divisor the limiter was built for, and the limiter.
    part: std::sync::Mutex<(u32, Arc<DefaultDirectRateLimiter>)>,
}

impl UnverifiedShare {
    /// `percent` (1 to 100) of `total` requests per second, at least one every 10 s.
    pub fn new(total: NonZeroU32, percent: u8) -> UnverifiedShare {
        UnverifiedShare {
            total,
            percent,
            part: std::sync::Mutex::new((1, Arc::new(share_limiter(total, percent, 1)))),
        }
    }

    /// Take a permit now, or say how long until one is free; `processes` is how many
    /// processes share the budget ([`RateLimiter::sharing_processes`]).
    pub fn try_take(&self, processes: u32) -> Result<(), Duration> {
        use governor::clock::{Clock, DefaultClock};
        let processes = processes.max(1);
        let limiter = {
            let mut part = self.part.lock().unwrap_or_else(|e| e.into_inner());
            if part.0 != processes {
                *part = (
                    processes,
                    Arc::new(share_limiter(self.total, self.percent, processes)),
                );
            }
            part.1.clone()
        };
        limiter
            .check()
            .map_err(|not_until| not_until.wait_time_from(DefaultClock::default().now()))
    }
}

/// `percent` of `total` requests per second divided among `processes`, at least one every
/// 10 s, bursts of one.
fn share_limiter(total: NonZeroU32, percent: u8, processes: u32) -> DefaultDirectRateLimiter {
    let per_100s = u64::from(total.get()) * u64::from(percent.clamp(1, 100));
    // One permit every `100 s × processes / per_100s`.
    let period = Duration::from_micros(
        (100_000_000 * u64::from(processes.max(1)) / per_100s.max(1)).clamp(1, 10_000_000),
    );
    let quota = Quota::with_period(period)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MIN))
        .allow_burst(NonZeroU32::MIN);
    DefaultDirectRateLimiter::direct(quota)
}

impl std::fmt::Debug for UnverifiedShare {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UnverifiedShare").finish_non_exhaustive()
    }
}

/// Calls to Pi's Platform API are limited by a [`RateLimiter`]; the name stays for callers.
pub type PiRateLimiter = RateLimiter;

enum Backend {
    Local(DefaultDirectRateLimiter),
    Shared(Box<SharedSchedule>),
}

/// One GCRA schedule in Redis, shared by every process using the same key.
struct SharedSchedule {
    conn: ConnectionManager,
    key: String,
    script: redis::Script,
    interval_us: u64,
    /// Used for each permit whose reservation failed (Redis down or slow): the budget divided
    /// by the processes last seen sharing it (at least [`FALLBACK_SHARE`]), and that divisor.
    fallback: std::sync::Mutex<(u32, Arc<DefaultDirectRateLimiter>)>,
    /// The budget's whole rate, from which the fallback share is cut.
    per_second: NonZeroU32,
    /// This process among those sharing the budget (random, per limiter).
    process_id: String,
    /// When this process last wrote itself into the set of processes (µs since `started`, 0:
    /// never).
    marked_at: AtomicU64,
    /// The origin of `degraded_until`.
    started: Instant,
    /// While degraded: until when (µs since `started`, at least 1) permits skip Redis; 0 when
    /// Redis answered last. Also makes the switch logged once, not per permit.
    degraded_until: AtomicU64,
    /// Redis' clock against ours (µs since `started`).
    clock: std::sync::Mutex<RedisClock>,
    /// Permits not yet added to the deployment's count, and whether a flush of them is
    /// scheduled (see [`SharedSchedule::count_call`]).
    uncounted: Arc<(AtomicU64, std::sync::atomic::AtomicBool)>,
}

/// How much wider than `1 / per_second` a shared schedule spaces its slots, in percent. A
/// permit leaves its process a little after its slot (scheduling, the HTTP stack), by a delay
/// that differs from process to process; this margin keeps those differences from adding up to
/// more than the limit in any one second at the upstream.
pub const SHARED_SPACING_MARGIN_PERCENT: u64 = 2;

/// The slot spacing of a shared schedule for `per_second`: rounded up, so it never runs faster.
fn shared_interval_us(per_second: NonZeroU32) -> u64 {
    (1_000_000 * (100 + SHARED_SPACING_MARGIN_PERCENT)).div_ceil(100 * u64::from(per_second.get()))
}

/// One process's share of `per_second` among `processes` (at least one request per second).
fn fallback_rate(per_second: NonZeroU32, processes: u32) -> NonZeroU32 {
    NonZeroU32::new(per_second.get() / processes.max(1)).unwrap_or(NonZeroU32::MIN)
}

fn even_quota(per_second: NonZeroU32) -> DefaultDirectRateLimiter {
    DefaultDirectRateLimiter::direct(Quota::per_second(per_second).allow_burst(NonZeroU32::MIN))
}

impl RateLimiter {
    /// A limiter of this process alone allowing `per_second` requests per second, evenly spaced.
    pub fn new(per_second: NonZeroU32) -> RateLimiter {
        RateLimiter {
            per_second,
            backend: Backend::Local(even_quota(per_second)),
            recent: crate::call_window::CallWindow::new(),
        }
    }

    /// A limiter shared by every process that uses the same Redis and `key`: together they send
    /// at most `per_second` requests per second. `key` names the budget (e.g. one per API key
    /// or Horizon URL), so that unrelated deployments on one Redis do not share it.
    pub fn shared(
        conn: ConnectionManager,
        key: impl Into<String>,
        per_second: NonZeroU32,
    ) -> RateLimiter {
        RateLimiter {
            per_second,
            backend: Backend::Shared(Box::new(SharedSchedule {
                conn,
                key: key.into(),
                script: redis::Script::new(RESERVE_SLOT),
                interval_us: shared_interval_us(per_second),
                fallback: std::sync::Mutex::new((
                    FALLBACK_SHARE,
                    Arc::new(even_quota(fallback_rate(per_second, FALLBACK_SHARE))),
                )),
                per_second,
                process_id: crate::ids::random_alnum(16),
                marked_at: AtomicU64::new(0),
                started: Instant::now(),
                degraded_until: AtomicU64::new(0),
                clock: std::sync::Mutex::new(RedisClock::default()),
                uncounted: Arc::default(),
            })),
            recent: crate::call_window::CallWindow::new(),
        }
    }

    /// A limiter shared through the Redis at `redis_url` (see [`RateLimiter::shared`]). It
    /// connects on first use and reconnects by itself, so a Redis that is down at start-up
    /// only means the fallback share until it answers; only a malformed URL is an error.
    pub fn shared_at(
        redis_url: &str,
        key: impl Into<String>,
        per_second: NonZeroU32,
    ) -> redis::RedisResult<RateLimiter> {
        let client = redis::Client::open(redis_url)?;
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(REDIS_TIMEOUT))
            .set_response_timeout(Some(REDIS_TIMEOUT))
            // Few quick retries: a permit waits at most RESERVE_TIMEOUT for Redis anyway.
            .set_number_of_retries(1);
        let conn = ConnectionManager::new_lazy_with_config(client, config)?;
        Ok(RateLimiter::shared(conn, key, per_second))
    }

    /// The configured rate (of the whole deployment for a shared limiter).
    pub fn per_second(&self) -> NonZeroU32 {
        self.per_second
    }

    /// Wait until one request may be sent. Call before every attempt.
    pub async fn acquire(&self) {
        match &self.backend {
            Backend::Local(limiter) => limiter.until_ready().await,
            Backend::Shared(schedule) => {
                schedule.acquire().await;
                schedule.count_call();
            }
        }
        self.recent.record();
    }

    /// Permits this process took in the last minute (each one a call attempt upstream). Of
    /// this process only, also when the budget is shared through Redis.
    pub fn calls_last_minute(&self) -> u64 {
        self.recent.last_minute()
    }

    /// Permits every process sharing this budget took in the last minute, as counted in
    /// Redis: what an operator compares with the limit, since in a deployment of several
    /// processes the one asked (an API) is rarely the one calling Pi (the workers). `None`
    /// for a limiter of this process alone, or when Redis does not answer in time; permits
    /// taken while Redis was unreachable are not in it.
    pub async fn deployment_calls_last_minute(&self) -> Option<u64> {
        match &self.backend {
            Backend::Local(_) => None,
            Backend::Shared(schedule) => schedule.calls_last_minute().await,
        }
    }

    /// How many processes share this budget: 1 for a limiter of this process alone; for a
    /// shared one, those last seen in Redis, at least [`FALLBACK_SHARE`] (a process that has
    /// not yet seen the others assumes a few).
    pub fn sharing_processes(&self) -> u32 {
        match &self.backend {
            Backend::Local(_) => 1,
            Backend::Shared(schedule) => {
                schedule
                    .fallback
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        }
    }

    /// Whether this limiter is shared through Redis.
    pub fn is_shared(&self) -> bool {
        matches!(self.backend, Backend::Shared(_))
    }
}

impl SharedSchedule {
    fn now_us(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_micros()).unwrap_or(u64::MAX)
    }

    /// Reserve a slot and wait for it. A holder that reaches its slot later than an interval
    /// (a stalled process, or an answer from Redis that arrived late) would send together with
    /// the next slots' holders, a burst the upstream counts against us; it takes a fresh slot
    /// instead, so requests stay spaced. The slot is placed on our clock through [`RedisClock`],
    /// not counted from when the answer arrived, so a late answer shows as lateness.
    async fn acquire(&self) {
        let tolerated = Duration::from_micros(self.interval_us).max(LATENESS_TOLERATED);
        for _ in 0..=LATE_RESERVATIONS {
            let degraded_until = self.degraded_until.load(Ordering::Relaxed);
            if degraded_until != 0 && self.now_us() < degraded_until {
                self.fallback().until_ready().await;
                return;
            }
            let sent = self.now_us();
            let (slot, redis_now, processes) =
                match tokio::time::timeout(RESERVE_TIMEOUT, self.reserve(sent)).await {
                    Ok(Ok(answer)) => answer,
                    failed => {
                        self.degrade(failed).await;
                        return;
                    }
                };
            let received = self.now_us();
            self.saw_processes(processes);
            if self.degraded_until.swap(0, Ordering::Relaxed) != 0 {
                tracing::info!(key = %self.key, "shared rate limit reachable again");
            }
            let slot_local = {
                let mut clock = self.clock.lock().unwrap_or_else(|e| e.into_inner());
                clock.sample(sent, received, redis_now);
                clock.local(slot)
            };
            // Redis ran the script between `sent` and `received`, so that is where the slot lies
            // on our clock, `wait` later; the offset only picks the point (and a Redis whose
            // clock jumped, e.g. after a failover, cannot make us wait longer than it said).
            let wait = u64::try_from(slot.saturating_sub(redis_now)).unwrap_or(0);
            let slot_local = slot_local
                .map_or(received, |us| u64::try_from(us).unwrap_or(0))
                .clamp(sent.saturating_add(wait), received.saturating_add(wait));
            let due = self.started + Duration::from_micros(slot_local);
            tokio::time::sleep_until(due.into()).await;
            if Instant::now() <= due + tolerated {
                return;
            }
        }
    }

    /// The key prefix of this budget's per-second call counters.
    fn calls_key(&self) -> String {
        format!("{}:calls", self.key)
    }

    /// Add this permit to the deployment's call count, off the caller's path and in one
    /// Redis call per [`COUNT_FLUSH_EVERY`] per process, not one per permit: the reservations
    /// share the connection, and a count queued before one would delay its slot. A count that
    /// fails (Redis down) is dropped: the figure is for operators, the limit does not depend
    /// on it.
    fn count_call(&self) {
        let (pending, scheduled) = &*self.uncounted;
        pending.fetch_add(1, Ordering::Relaxed);
        if scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        let uncounted = self.uncounted.clone();
        let mut conn = self.conn.clone();
        let key = self.calls_key();
        let budget = self.key.clone();
        tokio::spawn(async move {
            tokio::time::sleep(COUNT_FLUSH_EVERY).await;
            let (pending, scheduled) = &*uncounted;
            scheduled.store(false, Ordering::Release);
            let calls = pending.swap(0, Ordering::AcqRel);
            let mut invocation = COUNT_CALL_SCRIPT.key(key);
            invocation.arg(CALL_COUNT_TTL_SECS).arg(calls);
            let counted = invocation.invoke_async::<i64>(&mut conn);
            if !matches!(
                tokio::time::timeout(REDIS_TIMEOUT, counted).await,
                Ok(Ok(_))
            ) {
                tracing::debug!(key = %budget, calls, "calls were not counted in Redis");
            }
        });
    }

    /// The deployment's calls in the last minute (see [`RateLimiter::deployment_calls_last_minute`]).
    async fn calls_last_minute(&self) -> Option<u64> {
        let mut conn = self.conn.clone();
        let mut invocation = SUM_CALLS_SCRIPT.key(self.calls_key());
        invocation.arg(crate::call_window::WINDOW_SECS);
        let summed = invocation.invoke_async::<u64>(&mut conn);
        tokio::time::timeout(REDIS_TIMEOUT, summed).await.ok()?.ok()
    }

    /// Note a failed reservation (logged once per outage) and wait for a fallback permit.
    async fn degrade(
        &self,
        failed: Result<redis::RedisResult<(i64, i64, i64)>, tokio::time::error::Elapsed>,
    ) {
        let retry_at = self.now_us() + RETRY_REDIS_AFTER.as_micros() as u64;
        if self.degraded_until.swap(retry_at.max(1), Ordering::Relaxed) == 0 {
            let reason = match failed {
                Ok(Err(e)) => e.to_string(),
                _ => format!("no answer within {RESERVE_TIMEOUT:?}"),
            };
            let share = self.fallback.lock().map_or(FALLBACK_SHARE, |held| held.0);
            tracing::warn!(
                key = %self.key,
                %reason,
                "shared rate limit unreachable: using 1/{share} of the budget in this process until Redis answers"
            );
        }
        self.fallback().until_ready().await;
    }

    /// The fallback limiter for this permit.
    fn fallback(&self) -> Arc<DefaultDirectRateLimiter> {
        let held = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
        held.1.clone()
    }

    /// Redis saw `processes` sharing the budget lately: cut the fallback share to match, so
    /// that all of them falling back at once (Redis down) stay under the limit.
    fn saw_processes(&self, processes: i64) {
        let divisor = u32::try_from(processes)
            .unwrap_or(u32::MAX)
            .max(FALLBACK_SHARE);
        let mut held = self.fallback.lock().unwrap_or_else(|e| e.into_inner());
        if held.0 != divisor {
            *held = (
                divisor,
                Arc::new(even_quota(fallback_rate(self.per_second, divisor))),
            );
        }
    }

    /// Reserve the next slot: `(slot, Redis' now)` in µs of Redis' clock, and how many
    /// processes share the budget lately. `now` (µs since `started`) decides whether this
    /// reservation also marks this process as one of them.
    async fn reserve(&self, now: u64) -> redis::RedisResult<(i64, i64, i64)> {
        let marked = self.marked_at.load(Ordering::Relaxed);
        let mark =
            marked == 0 || now.saturating_sub(marked) >= PROCESS_MARK_EVERY.as_micros() as u64;
        if mark {
            self.marked_at.store(now.max(1), Ordering::Relaxed);
        }
        let mut conn = self.conn.clone();
        self.script
            .key(&self.key)
            .key(format!("{}:processes", self.key))
            .arg(self.interval_us)
            .arg(&self.process_id)
            .arg(if mark { "1" } else { "0" })
            .arg(PROCESS_SEEN_FOR.as_micros() as u64)
            .invoke_async(&mut conn)
            .await
    }
}

/// The Redis key of the budget named by `kind` (e.g. "pi", "horizon") and `identity` (what
/// makes two deployments' budgets the same, e.g. the API key and base URL): a hash, so that
/// a secret in `identity` never reaches Redis.
pub fn budget_key(kind: &str, identity: &[&str]) -> String {
    let mut hash = Sha256::new();
    for part in identity {
        hash.update(part.as_bytes());
        // A separator, so that ("ab", "c") and ("a", "bc") are different budgets.
        hash.update([0u8]);
    }
    let digest = hex::encode(hash.finalize());
    format!("{KEY_PREFIX}:{kind}:{}", &digest[..32])
}

impl Default for RateLimiter {
    /// [`DEFAULT_PI_RATE_LIMIT`] requests per second, in this process.
    fn default() -> Self {
        RateLimiter::new(DEFAULT_PI_RATE_LIMIT)
    }
}

impl std::fmt::Debug for RateLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RateLimiter")
            .field("per_second", &self.per_second)
            .field("shared", &self.is_shared())
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Instant;

    #[test]
    fn the_unverified_share_is_divided_among_the_processes_sharing_the_budget() {
        let share = UnverifiedShare::new(NonZeroU32::new(100).unwrap(), 20);
        // Alone: 20 % of 100/s, one permit every 50 ms.
        assert!(share.try_take(1).is_ok());
        let alone = share.try_take(1).unwrap_err();
        assert!(alone <= Duration::from_millis(50), "{alone:?}");
        // Four processes share the budget: each gets a quarter of the share, one per 200 ms.
        assert!(share.try_take(4).is_ok());
        let quarter = share.try_take(4).unwrap_err();
        assert!(quarter > Duration::from_millis(150), "{quarter:?}");
        assert_eq!(
            RateLimiter::new(NonZeroU32::new(10).unwrap()).sharing_processes(),
            1
        );
    }

    #[test]
    fn budget_keys_hide_the_identity_and_tell_budgets_apart() {
        let key = budget_key("pi", &["sekrit-api-key", "https://api.minepi.com"]);
        assert!(key.starts_with("pi-payments:rate:pi:"), "{key}");
        assert!(!key.contains("sekrit"));
        assert_eq!(
            key,
            budget_key("pi", &["sekrit-api-key", "https://api.minepi.com"])
        );
        assert_ne!(
            key,
            budget_key("pi", &["other-key", "https://api.minepi.com"])
        );
        assert_ne!(
            key,
            budget_key("pi", &["sekrit-api-ke", "yhttps://api.minepi.com"])
        );
        assert_ne!(
            key,
            budget_key("horizon", &["sekrit-api-key", "https://api.minepi.com"])
        );
    }

    #[tokio::test]
    async fn only_a_shared_budget_has_a_deployment_count_and_an_unreachable_redis_gives_none() {
        let local = RateLimiter::new(NonZeroU32::new(100).unwrap());
        local.acquire().await;
        assert_eq!(local.calls_last_minute(), 1);
        assert_eq!(local.deployment_calls_last_minute().await, None);
        // Nothing listens on port 1: the figure is missing, quickly, and permits still come.
        let shared =
            RateLimiter::shared_at("redis://127.0.0.1:1", "test", NonZeroU32::new(100).unwrap())
                .unwrap();
        shared.acquire().await;
        assert_eq!(shared.calls_last_minute(), 1);
        let started = Instant::now();
        assert_eq!(shared.deployment_calls_last_minute().await, None);
        assert!(started.elapsed() < Duration::from_secs(2));
    }

    #[test]
    fn a_late_answer_shows_as_lateness_not_as_a_later_slot() {
        let mut clock = RedisClock::default();
        // Redis' clock is 1,000,000 µs ahead; a quick round trip (100 µs) tells us so.
        clock.sample(10_000, 10_100, 1_010_050);
        assert_eq!(clock.local(1_010_050), Some(10_050));
        // Then an answer held up 400 ms (the process stalled after Redis ran the script):
        // its slot, "now" on Redis' clock at 20,000 µs local, stays at 20,000 on our clock
        // instead of moving to when the answer arrived.
        clock.sample(20_000, 420_000, 1_020_000);
        assert_eq!(clock.local(1_020_000), Some(20_000));
        // A newer sample replaces the best one once that is stale.
        let later = 10_100 + CLOCK_SAMPLE_LIFETIME.as_micros() as u64;
        clock.sample(later, later + 300, 1_000_000 + later as i64 + 150 + 7);
        assert_eq!(clock.local(1_000_007), Some(0));
    }

    #[tokio::test]
    async fn spaces_permits_evenly() {
        let limiter = RateLimiter::new(NonZeroU32::new(20).unwrap());
        let start = Instant::now();
        for _ in 0..5 {
            limiter.acquire().await;
        }
        // 5 permits with burst 1 at 20/s need at least 4 intervals of 50 ms.
        assert!(start.elapsed() >= std::time::Duration::from_millis(190));
    }
}
