//! Fault injection knobs and their decisions: latency, a per-`Authorization` sliding-window rate
//! limit, injected 500s and dropped connections, at random rates or deterministically
//! (`fail_next` / `drop_next`), restricted to named endpoints and targets. The decisions are
//! made here; `layer.rs` applies them to requests.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Deserializer, Serialize};

/// Which listener a request arrived on.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Target {
    /// The Platform API listener (`/v2/...`).
    Platform,
    /// The Horizon listener.
    Horizon,
}

impl Target {
    /// As used in JSON and in `--fault-targets`.
    pub fn as_str(self) -> &'static str {
        match self {
            Target::Platform => "platform",
            Target::Horizon => "horizon",
        }
    }

    /// Parses `platform` or `horizon`.
    pub fn parse(text: &str) -> Option<Target> {
        match text.trim() {
            "platform" => Some(Target::Platform),
            "horizon" => Some(Target::Horizon),
            _ => None,
        }
    }
}

/// Endpoint names that `endpoints` may list (also the keys of the request log).
pub const ENDPOINTS: &[&str] = &[
    "me",
    "create_payment",
    "get_payment",
    "approve",
    "complete",
    "cancel",
    "incomplete_server_payments",
    "ads_status",
    "platform_unknown",
    "horizon_submit",
    "horizon_account",
    "horizon_transaction",
    "horizon_fee_stats",
    "horizon_ledgers",
    "horizon_root",
    "horizon_account_transactions",
    "horizon_account_payments",
    "horizon_transaction_operations",
    "horizon_transaction_payments",
    "horizon_unknown",
];

/// The knobs, as `GET /_sim/faults` shows them.
#[derive(Clone, Debug, Serialize)]
pub struct FaultKnobs {
    /// Added before every faulted request.
    pub latency_ms: u64,
    /// Requests per second per `Authorization` value (sliding 1 s window); `None` or 0 = unlimited.
    pub rate_limit: Option<u32>,
    /// Probability of a 500 before the handler.
    pub fail_rate: f64,
    /// Probability that the handler runs and the connection is then closed unanswered.
    pub drop_rate: f64,
    /// The next N faulted requests get a 500.
    pub fail_next: u32,
    /// The next N faulted requests are dropped after the handler.
    pub drop_next: u32,
    /// The next N faulted requests get a 429 WITHOUT `Retry-After` (throttling that does not
    /// say how long; `rate_limit` sends one).
    pub throttle_next: u32,
    /// The next N faulted requests get a 503 (an overloaded server).
    pub unavailable_next: u32,
    /// The next N completions (U2A or A2U) find their transaction not yet indexed by Pi
    /// although it landed (`verification_failed`, `transaction_not_found`): Pi's view of the
    /// chain lags.
    /// Not limited to `endpoints`/`targets`.
    pub verification_lag_next: u32,
    /// Only these endpoints are faulted; `None` = all.
    pub endpoints: Option<Vec<String>>,
    /// Only these listeners are faulted.
    pub targets: Vec<Target>,
    /// Seed of the fault RNG.
    pub seed: u64,
    /// The chain's ledger interval (forwarded to the chain).
    pub ledger_seconds: f64,
    /// The chain's per-account ledger capacity (forwarded to the chain).
    pub max_tx_per_ledger: Option<u32>,
    /// The chain's clock minus the real clock, in seconds (forwarded to the chain).
    pub clock_offset_seconds: i64,
}

/// A partial update (`POST /_sim/faults`): absent fields stay, `null` clears optional ones.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FaultUpdate {
    pub latency_ms: Option<u64>,
    #[serde(default, deserialize_with = "present")]
    pub rate_limit: Option<Option<u32>>,
    pub fail_rate: Option<f64>,
    pub drop_rate: Option<f64>,
    pub fail_next: Option<u32>,
    pub drop_next: Option<u32>,
    pub throttle_next: Option<u32>,
    pub unavailable_next: Option<u32>,
    pub verification_lag_next: Option<u32>,
    #[serde(default, deserialize_with = "present")]
    pub endpoints: Option<Option<Vec<String>>>,
    pub targets: Option<Vec<Target>>,
    pub seed: Option<u64>,
    pub ledger_seconds: Option<f64>,
    #[serde(default, deserialize_with = "present")]
    pub max_tx_per_ledger: Option<Option<u32>>,
    pub clock_offset_seconds: Option<i64>,
}

/// Distinguishes a field set to `null` (`Some(None)`) from an absent one (`None`).
fn present<'de, D, T>(de: D) -> Result<Option<Option<T>>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    Option::<T>::deserialize(de).map(Some)
}

impl FaultUpdate {
    /// Checks ranges and names before anything is applied, so a bad update changes nothing.
    pub fn validate(&self) -> Result<(), String> {
        for (name, rate) in [("fail_rate", self.fail_rate), ("drop_rate", self.drop_rate)] {
            if let Some(r) = rate
                && !(0.0..=1.0).contains(&r)
            {
                return Err(format!("{name} must be between 0 and 1, got {r}"));
            }
        }
        if let Some(Some(endpoints)) = &self.endpoints
            && let Some(bad) = endpoints.iter().find(|e| !ENDPOINTS.contains(&e.as_str()))
        {
            return Err(format!(
                "unknown endpoint {bad:?}; known endpoints: {}",
                ENDPOINTS.join(", ")
            ));
        }
        if let Some(s) = self.ledger_seconds
            && !(s.is_finite() && s >= 0.0)
        {
            return Err(
                "ledger_seconds must be a number >= 0 (0 = one ledger per submission)".into(),
            );
        }
        if let Some(o) = self.clock_offset_seconds
            && o.abs() > 86_400
        {
            return Err("clock_offset_seconds must be within a day (-86400..=86400)".into());
        }
        Ok(())
    }
}

/// What to do with a request before its handler runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Run the handler.
    Pass,
    /// Answer 429 with this `Retry-After` (seconds).
    RateLimited(u64),
    /// Answer 500 without running the handler.
    Fail,
    /// Answer 429 without `Retry-After` (`throttle_next`).
    Throttled,
    /// Answer 503 without running the handler (`unavailable_next`).
    Unavailable,
}

/// The knobs plus the state their decisions need (RNG, rate windows).
pub struct Faults {
    knobs: FaultKnobs,
    rng: StdRng,
    /// "<target>:<Authorization>" → arrival times of admitted requests in the last second.
    windows: HashMap<String, VecDeque<Instant>>,
}

impl Faults {
    /// Faults with these knobs.
    pub fn new(knobs: FaultKnobs) -> Faults {
        Faults {
            rng: StdRng::seed_from_u64(knobs.seed),
            knobs,
            windows: HashMap::new(),
        }
    }

    /// The current knobs.
    pub fn knobs(&self) -> &FaultKnobs {
        &self.knobs
    }

    /// Applies a validated partial update.
    pub fn update(&mut self, u: FaultUpdate) {
        let k = &mut self.knobs;
        if let Some(v) = u.latency_ms {
            k.latency_ms = v;
        }
        if let Some(v) = u.rate_limit {
            k.rate_limit = v;
            self.windows.clear();
        }
        if let Some(v) = u.fail_rate {
            k.fail_rate = v;
        }
        if let Some(v) = u.drop_rate {
            k.drop_rate = v;
        }
        if let Some(v) = u.fail_next {
            k.fail_next = v;
        }
        if let Some(v) = u.drop_next {
            k.drop_next = v;
        }
        if let Some(v) = u.throttle_next {
            k.throttle_next = v;
        }
        if let Some(v) = u.unavailable_next {
            k.unavailable_next = v;
        }
        if let Some(v) = u.verification_lag_next {
            k.verification_lag_next = v;
        }
        if let Some(v) = u.endpoints {
            k.endpoints = v;
        }
        if let Some(v) = u.targets {
            k.targets = v;
        }
        if let Some(v) = u.seed {
            k.seed = v;
            self.rng = StdRng::seed_from_u64(v);
        }
        if let Some(v) = u.ledger_seconds {
            k.ledger_seconds = v;
        }
        if let Some(v) = u.max_tx_per_ledger {
            k.max_tx_per_ledger = v;
        }
        if let Some(v) = u.clock_offset_seconds {
            k.clock_offset_seconds = v;
        }
    }

    /// Whether the knobs apply to this request at all.
    /// Whether this A2U completion finds Pi's index behind the chain (`verification_lag_next`).
    pub fn take_verification_lag(&mut self) -> bool {
        if self.knobs.verification_lag_next == 0 {
            return false;
        }
        self.knobs.verification_lag_next -= 1;
        true
    }

    pub fn applies(&self, target: Target, endpoint: &str) -> bool {
        self.knobs.targets.contains(&target)
            && self
                .knobs
                .endpoints
                .as_ref()
                .is_none_or(|list| list.iter().any(|e| e == endpoint))
    }

    /// The latency to add and the verdict for a request arriving `now`.
    pub fn before(
        &mut self,
        target: Target,
        endpoint: &str,
        authorization: &str,
        now: Instant,
    ) -> (Duration, Verdict) {
        if !self.applies(target, endpoint) {
            return (Duration::ZERO, Verdict::Pass);
        }
        let latency = Duration::from_millis(self.knobs.latency_ms);
        // 0, like null, turns the limit off (a limit of nothing would refuse everything).
        if let Some(limit) = self.knobs.rate_limit.filter(|limit| *limit > 0) {
            let window = self
                .windows
                .entry(format!("{}:{authorization}", target.as_str()))
                .or_default();
            while window
                .front()
                .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
            {
                window.pop_front();
            }
            if window.len() >= limit as usize {
                // The oldest admitted request leaves the window at oldest + 1 s.
                let wait = window
                    .front()
                    .map(|t| Duration::from_secs(1).saturating_sub(now.duration_since(*t)))
                    .unwrap_or(Duration::from_secs(1));
                let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
                return (latency, Verdict::RateLimited(seconds.max(1)));
            }
            window.push_back(now);
        }
        if self.knobs.throttle_next > 0 {
            self.knobs.throttle_next -= 1;
            return (latency, Verdict::Throttled);
        }
        if self.knobs.unavailable_next > 0 {
            self.knobs.unavailable_next -= 1;
            return (latency, Verdict::Unavailable);
        }
        if self.knobs.fail_next > 0 {
            self.knobs.fail_next -= 1;
            return (latency, Verdict::Fail);
        }
        if self.knobs.fail_rate > 0.0 && self.rng.gen_bool(self.knobs.fail_rate) {
            return (latency, Verdict::Fail);
        }
        (latency, Verdict::Pass)
    }

    /// After the handler ran: drop the connection instead of answering?
    pub fn drop_after(&mut self, target: Target, endpoint: &str) -> bool {
        if !self.applies(target, endpoint) {
            return false;
        }
        if self.knobs.drop_next > 0 {
            self.knobs.drop_next -= 1;
            return true;
        }
        self.knobs.drop_rate > 0.0 && self.rng.gen_bool(self.knobs.drop_rate)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knobs() -> FaultKnobs {
        FaultKnobs {
            latency_ms: 0,
            rate_limit: None,
            fail_rate: 0.0,
            drop_rate: 0.0,
            fail_next: 0,
            drop_next: 0,
            throttle_next: 0,
            unavailable_next: 0,
            verification_lag_next: 0,
            endpoints: None,
            targets: vec![Target::Platform],
            seed: 7,
            ledger_seconds: 0.0,
            max_tx_per_ledger: None,
            clock_offset_seconds: 0,
        }
    }

    #[test]
    fn sliding_window_admits_limit_then_refuses_until_the_oldest_leaves() {
        let mut f = Faults::new(FaultKnobs {
            rate_limit: Some(2),
            ..knobs()
        });
        let t0 = Instant::now();
        let me = |f: &mut Faults, t| f.before(Target::Platform, "me", "Key a", t).1;
        assert_eq!(me(&mut f, t0), Verdict::Pass);
        assert_eq!(me(&mut f, t0 + Duration::from_millis(500)), Verdict::Pass);
        assert_eq!(
            me(&mut f, t0 + Duration::from_millis(600)),
            Verdict::RateLimited(1)
        );
        // Another key has its own window.
        assert_eq!(
            f.before(
                Target::Platform,
                "me",
                "Key b",
                t0 + Duration::from_millis(600)
            )
            .1,
            Verdict::Pass
        );
        assert_eq!(me(&mut f, t0 + Duration::from_millis(1000)), Verdict::Pass);
    }

    #[test]
    fn a_rate_limit_of_zero_is_no_limit() {
        let mut f = Faults::new(FaultKnobs {
            rate_limit: Some(0),
            ..knobs()
        });
        let now = Instant::now();
        for _ in 0..100 {
            assert_eq!(
                f.before(Target::Platform, "me", "Key a", now).1,
                Verdict::Pass
            );
        }
    }

    #[test]
    fn restrictions_and_counts() {
        let mut f = Faults::new(FaultKnobs {
            fail_next: 1,
            drop_next: 1,
            endpoints: Some(vec!["approve".into()]),
            ..knobs()
        });
        let now = Instant::now();
        assert_eq!(f.before(Target::Platform, "me", "", now).1, Verdict::Pass);
        assert_eq!(
            f.before(Target::Horizon, "approve", "", now).1,
            Verdict::Pass
        );
        assert_eq!(
            f.before(Target::Platform, "approve", "", now).1,
            Verdict::Fail
        );
        assert_eq!(
            f.before(Target::Platform, "approve", "", now).1,
            Verdict::Pass
        );
        assert!(!f.drop_after(Target::Platform, "me"));
        assert!(f.drop_after(Target::Platform, "approve"));
        assert!(!f.drop_after(Target::Platform, "approve"));
    }

    #[test]
    fn throttle_and_unavailable_next_come_before_injected_500s() {
        let mut f = Faults::new(FaultKnobs {
            throttle_next: 1,
            unavailable_next: 1,
            fail_next: 1,
            ..knobs()
        });
        let t = Instant::now();
        let mut next = || f.before(Target::Platform, "approve", "Key a", t).1;
        assert_eq!(next(), Verdict::Throttled);
        assert_eq!(next(), Verdict::Unavailable);
        assert_eq!(next(), Verdict::Fail);
        assert_eq!(next(), Verdict::Pass);
    }
}
