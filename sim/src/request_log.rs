//! The request log behind `GET /_sim/log`: counters per endpoint and per payment, and the
//! highest number of requests seen in any 1 s window (overall per listener, per endpoint, per
//! key). Tools (benchmarks, the lead's checks) read its exact shape, so it is typed here.

use std::collections::{BTreeMap, VecDeque};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::faults::Target;

/// How many recent requests `?requests=1` can show.
const RECENT_CAPACITY: usize = 1000;

/// Arrivals in the last second, and the most ever seen at once.
#[derive(Default)]
struct Window {
    arrivals: VecDeque<Instant>,
    max: u64,
}

impl Window {
    fn arrive(&mut self, now: Instant) {
        while self
            .arrivals
            .front()
            .is_some_and(|t| now.duration_since(*t) >= Duration::from_secs(1))
        {
            self.arrivals.pop_front();
        }
        self.arrivals.push_back(now);
        self.max = self.max.max(self.arrivals.len() as u64);
    }
}

/// Counters of one endpoint.
#[derive(Default)]
struct EndpointStats {
    pub calls: u64,
    pub rate_limited: u64,
    pub injected_500: u64,
    pub dropped: u64,
    /// Status code (as text) → how many clients saw it; dropped requests are not here.
    pub status: BTreeMap<String, u64>,
}

/// Counters of one payment: calls, calls per endpoint, faults.
#[derive(Default, Serialize)]
pub struct PaymentStats {
    pub calls: u64,
    pub injected_500: u64,
    pub dropped: u64,
    #[serde(flatten)]
    pub per_endpoint: BTreeMap<String, u64>,
}

/// Totals over all requests.
#[derive(Default, Serialize, Clone, Copy)]
pub struct Totals {
    pub calls: u64,
    pub rate_limited: u64,
    pub injected_500: u64,
    pub dropped: u64,
}

/// One request as `?requests=1` lists it.
#[derive(Serialize, Clone)]
pub struct RecentRequest {
    pub target: &'static str,
    pub method: String,
    pub path: String,
    pub endpoint: &'static str,
    /// `None` when the connection was dropped.
    pub status: Option<u16>,
    pub payment: Option<String>,
    pub at: String,
}

/// How a request ended.
#[derive(Debug, Clone, Copy)]
pub enum Outcome {
    /// Answered with this status by the handler.
    Answered(u16),
    /// 429 by the rate limiter.
    RateLimited,
    /// Injected 500.
    Injected500,
    /// The handler ran; the connection was closed without an answer.
    Dropped,
}

/// The log itself.
#[derive(Default)]
pub struct RequestLog {
    platform: Window,
    horizon: Window,
    per_key: BTreeMap<String, Window>,
    endpoint_windows: BTreeMap<&'static str, Window>,
    endpoints: BTreeMap<&'static str, EndpointStats>,
    payments: BTreeMap<String, PaymentStats>,
    totals: Totals,
    recent: VecDeque<RecentRequest>,
}

/// `GET /_sim/log`.
#[derive(Serialize)]
pub struct LogReport<'a> {
    pub total_requests: u64,
    pub max_rate_1s: MaxRates,
    pub max_rate_1s_per_key: BTreeMap<&'a str, u64>,
    pub endpoints: BTreeMap<&'static str, EndpointReport<'a>>,
    pub payments: &'a BTreeMap<String, PaymentStats>,
    pub totals: Totals,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests: Option<&'a VecDeque<RecentRequest>>,
}

/// `max_rate_1s` per listener.
#[derive(Serialize)]
pub struct MaxRates {
    pub platform: u64,
    pub horizon: u64,
}

/// An endpoint's counters with its max rate filled in.
#[derive(Serialize)]
pub struct EndpointReport<'a> {
    pub calls: u64,
    pub rate_limited: u64,
    pub injected_500: u64,
    pub dropped: u64,
    pub status: &'a BTreeMap<String, u64>,
    pub max_rate_1s: u64,
}

impl RequestLog {
    /// A request arrived (counts even if it is then rate limited).
    pub fn arrive(&mut self, target: Target, endpoint: &'static str, key: &str, now: Instant) {
        match target {
            Target::Platform => self.platform.arrive(now),
            Target::Horizon => self.horizon.arrive(now),
        }
        let key = format!("{}:{key}", target.as_str());
        self.per_key.entry(key).or_default().arrive(now);
        self.endpoint_windows
            .entry(endpoint)
            .or_default()
            .arrive(now);
        self.endpoints.entry(endpoint).or_default().calls += 1;
        self.totals.calls += 1;
    }

    /// The request ended; count its outcome (and its payment, if it concerns one).
    pub fn finish(
        &mut self,
        target: Target,
        endpoint: &'static str,
        method: &str,
        path: &str,
        payment: Option<&str>,
        outcome: Outcome,
    ) {
        let stats = self.endpoints.entry(endpoint).or_default();
        let status = match outcome {
            Outcome::Answered(code) => Some(code),
            Outcome::RateLimited => {
                stats.rate_limited += 1;
                self.totals.rate_limited += 1;
                Some(429)
            }
            Outcome::Injected500 => {
                stats.injected_500 += 1;
                self.totals.injected_500 += 1;
                Some(500)
            }
            Outcome::Dropped => {
                stats.dropped += 1;
                self.totals.dropped += 1;
                None
            }
        };
        if let Some(code) = status {
            *stats.status.entry(code.to_string()).or_default() += 1;
        }
        if let Some(id) = payment {
            let p = self.payments.entry(id.to_owned()).or_default();
            p.calls += 1;
            *p.per_endpoint.entry(endpoint.to_owned()).or_default() += 1;
            match outcome {
                Outcome::Injected500 => p.injected_500 += 1,
                Outcome::Dropped => p.dropped += 1,
                _ => {}
            }
        }
        if self.recent.len() == RECENT_CAPACITY {
            self.recent.pop_front();
        }
        self.recent.push_back(RecentRequest {
            target: target.as_str(),
            method: method.to_owned(),
            path: path.to_owned(),
            endpoint,
            status,
            payment: payment.map(str::to_owned),
            at: crate::state::now_iso(),
        });
    }

    /// The report; with `requests`, the recent requests too.
    pub fn report(&self, requests: bool) -> LogReport<'_> {
        LogReport {
            total_requests: self.totals.calls,
            max_rate_1s: MaxRates {
                platform: self.platform.max,
                horizon: self.horizon.max,
            },
            max_rate_1s_per_key: self
                .per_key
                .iter()
                .map(|(k, w)| (k.as_str(), w.max))
                .collect(),
            endpoints: self
                .endpoints
                .iter()
                .map(|(name, s)| {
                    let max = self.endpoint_windows.get(name).map_or(0, |w| w.max);
                    (
                        *name,
                        EndpointReport {
                            calls: s.calls,
                            rate_limited: s.rate_limited,
                            injected_500: s.injected_500,
                            dropped: s.dropped,
                            status: &s.status,
                            max_rate_1s: max,
                        },
                    )
                })
                .collect(),
            payments: &self.payments,
            totals: self.totals,
            requests: requests.then_some(&self.recent),
        }
    }
}
