//! What the service counts and measures for Prometheus: every metric's name, help text and
//! labels, described once here, and one recording function per metric, so that the Pi and
//! Horizon clients (this crate), the job handlers and webhook deliverer (worker crate) and the
//! HTTP layer (api crate) label the same metric the same way.
//!
//! Recording goes through the `metrics` facade: without an installed recorder (the CLI
//! subcommands, most tests) it costs an atomic load and records nothing. The API crate installs
//! the Prometheus recorder and renders `GET /metrics` (`pi_payments_api::metrics`).
//!
//! Labels are low-cardinality by construction: route and endpoint *templates*
//! (`/v2/payments/{id}/approve`), job kinds, states and outcomes from fixed lists, HTTP status
//! codes. Never a payment id, a Pioneer uid, a URL with values in it, or anything secret.

use crate::jobs::{JobKind, QueueDepth};
use crate::state::{PaymentState, PayoutState};
use ::metrics::{
    Unit, counter, describe_counter, describe_gauge, describe_histogram, gauge, histogram,
};
use std::time::Duration;

/// Requests the API answered, by method, route template and status (Pi's frontend callbacks
/// are the `/pi_payment/*` and `/api/pi_payment/*` routes).
pub const HTTP_REQUESTS: &str = "pi_payments_http_requests_total";
/// How long the API took to answer, by method and route template.
pub const HTTP_DURATION: &str = "pi_payments_http_request_duration_seconds";
/// Jobs that ended, by kind and outcome.
pub const JOBS: &str = "pi_payments_jobs_total";
/// How long a job ran (throttle waits included), by kind and outcome.
pub const JOB_DURATION: &str = "pi_payments_job_duration_seconds";
/// Jobs waiting in the queue, by kind and whether they may run now.
pub const QUEUE_DEPTH: &str = "pi_payments_queue_depth";
/// Requests sent to Pi's Platform API (one per attempt), by method, endpoint template, status.
pub const PI_REQUESTS: &str = "pi_payments_pi_requests_total";
/// How long Pi took to answer one attempt, by endpoint template.
pub const PI_DURATION: &str = "pi_payments_pi_request_duration_seconds";
/// Requests sent to Horizon (one per attempt), by method, endpoint template, status.
pub const HORIZON_REQUESTS: &str = "pi_payments_horizon_requests_total";
/// How long Horizon took to answer one attempt, by endpoint template.
pub const HORIZON_DURATION: &str = "pi_payments_horizon_request_duration_seconds";
/// 429 answers from an upstream (`pi` or `horizon`).
pub const UPSTREAM_429: &str = "pi_payments_upstream_429_total";
/// How long a request waited for its rate-limiter permit, by upstream.
pub const LIMITER_WAIT: &str = "pi_payments_limiter_wait_seconds";
/// `PI_RATE_LIMIT`: the deployment's requests per second to Pi.
pub const PI_RATE_LIMIT: &str = "pi_payments_pi_rate_limit";
/// `HORIZON_RATE_LIMIT`: the deployment's requests per second to Horizon.
pub const HORIZON_RATE_LIMIT: &str = "pi_payments_horizon_rate_limit";
/// U2A payments in the ledger, by state.
pub const PAYMENTS: &str = "pi_payments_payments";
/// A2U payouts in the ledger, by state.
pub const PAYOUTS: &str = "pi_payments_payouts";
/// Scheduled reconcile runs in this process, by outcome.
pub const RECONCILE_RUNS: &str = "pi_payments_reconcile_runs_total";
/// What reconcile runs found and did, by kind.
pub const RECONCILE_FINDINGS: &str = "pi_payments_reconcile_findings_total";
/// Webhook deliveries attempted, by outcome.
pub const WEBHOOK_DELIVERIES: &str = "pi_payments_webhook_deliveries_total";
/// Readings of the ledger or queue for this endpoint that failed, by source.
pub const SCRAPE_ERRORS: &str = "pi_payments_scrape_errors_total";
/// Always 1; its `version` label is the running build.
pub const BUILD_INFO: &str = "pi_payments_build_info";

/// Histogram buckets (seconds) of HTTP answers, jobs and upstream calls: from a fast callback
/// (1 ms) to a Horizon submission waiting for a ledger close (tens of seconds).
pub const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Histogram buckets (seconds) of rate-limiter waits: zero-ish when under the limit, up to
/// many seconds when a backlog drains at the limit.
pub const LIMITER_BUCKETS: &[f64] = &[
    0.0001, 0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// An upstream the service calls, rate-limited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Upstream {
    /// Pi's Platform API.
    Pi,
    /// Horizon (the Pi blockchain).
    Horizon,
}

impl Upstream {
    /// The `upstream` label.
    pub fn as_str(self) -> &'static str {
        match self {
            Upstream::Pi => "pi",
            Upstream::Horizon => "horizon",
        }
    }
}

/// How a call to an upstream ended, as the `status` label: the HTTP status code, or why no
/// answer came.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CallStatus {
    /// An answer with this status code.
    Http(u16),
    /// No answer within the timeout.
    Timeout,
    /// The connection failed or broke.
    ConnectionError,
}

impl CallStatus {
    fn label(self) -> String {
        match self {
            CallStatus::Http(code) => code.to_string(),
            CallStatus::Timeout => "timeout".into(),
            CallStatus::ConnectionError => "connection_error".into(),
        }
    }
}

/// How a job ended, as the `outcome` label.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobOutcome {
    /// The job did its work (or found it done).
    Ok,
    /// The attempt failed; the queue runs the job again.
    Retry,
    /// The job gave up for good (its row says why, e.g. `needs_attention`).
    GaveUp,
}

impl JobOutcome {
    /// The `outcome` label.
    pub fn as_str(self) -> &'static str {
        match self {
            JobOutcome::Ok => "ok",
            JobOutcome::Retry => "retry",
            JobOutcome::GaveUp => "gave_up",
        }
    }
}

/// Give every metric its help text and unit (call once, after installing a recorder; the
/// exporter prints them as `# HELP`), and set [`BUILD_INFO`].
pub fn describe() {
    describe_counter!(
        HTTP_REQUESTS,
        "Requests the API answered, by method, route template and status code (Pi callbacks: route /pi_payment/* and /api/pi_payment/*)"
    );
    describe_histogram!(
        HTTP_DURATION,
        Unit::Seconds,
        "Time the API took to answer, by method and route template"
    );
    describe_counter!(
        JOBS,
        "Jobs that ended, by kind and outcome (ok, retry: run again, gave_up: left to the ledger's needs_attention or the sweeper)"
    );
    describe_histogram!(
        JOB_DURATION,
        Unit::Seconds,
        "Time one job run took (throttle waits included), by kind and outcome"
    );
    describe_gauge!(
        QUEUE_DEPTH,
        "Jobs waiting in the queue at the last scrape, by kind and state (ready: may run now, scheduled: waits for its time)"
    );
    describe_counter!(
        PI_REQUESTS,
        "Requests sent to the Pi Platform API (one per attempt), by method, endpoint template and status (code, timeout or connection_error); rate() of it is the live Pi call rate to compare with pi_payments_pi_rate_limit"
    );
    describe_histogram!(
        PI_DURATION,
        Unit::Seconds,
        "Time Pi took to answer one attempt, by endpoint template"
    );
    describe_counter!(
        HORIZON_REQUESTS,
        "Requests sent to Horizon (one per attempt), by method, endpoint template and status (code, timeout or connection_error)"
    );
    describe_histogram!(
        HORIZON_DURATION,
        Unit::Seconds,
        "Time Horizon took to answer one attempt, by endpoint template"
    );
    describe_counter!(
        UPSTREAM_429,
        "429 Too Many Requests answers, by upstream (pi, horizon): the rate limit is set higher than the upstream allows"
    );
    describe_histogram!(
        LIMITER_WAIT,
        Unit::Seconds,
        "Time a request waited for its rate-limiter permit before it was sent, by upstream (pi, horizon)"
    );
    describe_gauge!(
        PI_RATE_LIMIT,
        "PI_RATE_LIMIT: requests per second to Pi allowed for the whole deployment"
    );
    describe_gauge!(
        HORIZON_RATE_LIMIT,
        "HORIZON_RATE_LIMIT: requests per second to Horizon allowed for the whole deployment"
    );
    describe_gauge!(
        PAYMENTS,
        "U2A payments in the ledger by state, read at scrape time (cached a few seconds)"
    );
    describe_gauge!(
        PAYOUTS,
        "A2U payouts in the ledger by state, read at scrape time (cached a few seconds)"
    );
    describe_counter!(
        RECONCILE_RUNS,
        "Scheduled reconcile runs in this process, by outcome (ran, skipped: another process held the lease, failed)"
    );
    describe_counter!(
        RECONCILE_FINDINGS,
        "What reconcile runs found and did, by kind (requeued_payment, requeued_payout, gave_up, server_payment, server_resumed, server_waiting, server_unknown, server_settled, server_superseded, error)"
    );
    describe_counter!(
        WEBHOOK_DELIVERIES,
        "Webhook deliveries attempted, by outcome (delivered: the app answered 2xx, failed: retried later)"
    );
    describe_counter!(
        SCRAPE_ERRORS,
        "Scrapes whose reading of the ledger or queue failed (the last values stay), by source"
    );
    describe_gauge!(
        BUILD_INFO,
        "Always 1; the version label is the running pi-payments build"
    );
    gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
}

/// One request the API answered. `route` must be a template or a fixed name, never a raw path.
pub fn record_http(method: &'static str, route: &str, status: u16, elapsed: Duration) {
    let route = route.to_string();
    counter!(HTTP_REQUESTS, "method" => method, "route" => route.clone(), "status" => status.to_string())
        .increment(1);
    histogram!(HTTP_DURATION, "method" => method, "route" => route).record(elapsed.as_secs_f64());
}

/// One attempt of a call to `upstream` at `endpoint` (a template such as
/// `/v2/payments/{id}/approve`).
pub fn record_upstream_call(
    upstream: Upstream,
    method: &str,
    endpoint: &'static str,
    status: CallStatus,
    elapsed: Duration,
) {
    let (requests, duration) = match upstream {
        Upstream::Pi => (PI_REQUESTS, PI_DURATION),
        Upstream::Horizon => (HORIZON_REQUESTS, HORIZON_DURATION),
    };
    let method = method_label(method);
    counter!(requests, "method" => method, "endpoint" => endpoint, "status" => status.label())
        .increment(1);
    histogram!(duration, "endpoint" => endpoint).record(elapsed.as_secs_f64());
    if status == CallStatus::Http(429) {
        counter!(UPSTREAM_429, "upstream" => upstream.as_str()).increment(1);
    }
}

/// A request to `upstream` waited `waited` for its rate-limiter permit.
pub fn record_limiter_wait(upstream: Upstream, waited: Duration) {
    histogram!(LIMITER_WAIT, "upstream" => upstream.as_str()).record(waited.as_secs_f64());
}

/// The configured rate limits (requests per second for the whole deployment).
pub fn set_rate_limits(pi_per_second: u32, horizon_per_second: u32) {
    gauge!(PI_RATE_LIMIT).set(f64::from(pi_per_second));
    gauge!(HORIZON_RATE_LIMIT).set(f64::from(horizon_per_second));
}

/// One job of `kind` ended with `outcome` after `elapsed`.
pub fn record_job(kind: JobKind, outcome: JobOutcome, elapsed: Duration) {
    counter!(JOBS, "kind" => kind.name(), "outcome" => outcome.as_str()).increment(1);
    histogram!(JOB_DURATION, "kind" => kind.name(), "outcome" => outcome.as_str())
        .record(elapsed.as_secs_f64());
}

/// The queue's depth per kind, as read now.
pub fn set_queue_depths(depths: &[QueueDepth]) {
    for d in depths {
        gauge!(QUEUE_DEPTH, "kind" => d.kind.name(), "state" => "ready").set(d.ready as f64);
        gauge!(QUEUE_DEPTH, "kind" => d.kind.name(), "state" => "scheduled")
            .set(d.scheduled as f64);
    }
}

/// Payments per state, as read now; states missing from `counts` are 0.
pub fn set_payment_states(counts: &[(PaymentState, i64)]) {
    for state in crate::state::ALL_STATES {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        gauge!(PAYMENTS, "state" => state.as_str()).set(n as f64);
    }
}

/// Payouts per state, as read now; states missing from `counts` are 0.
pub fn set_payout_states(counts: &[(PayoutState, i64)]) {
    for state in crate::state::ALL_PAYOUT_STATES {
        let n = counts
            .iter()
            .find(|(s, _)| *s == state)
            .map_or(0, |(_, n)| *n);
        gauge!(PAYOUTS, "state" => state.as_str()).set(n as f64);
    }
}

/// Reading `source` (`ledger` or `queue`) for a scrape failed.
pub fn record_scrape_error(source: &'static str) {
    counter!(SCRAPE_ERRORS, "source" => source).increment(1);
}

/// How a scheduled reconcile tick ended.
#[derive(Clone, Copy, Debug)]
pub enum ReconcileTick<'a> {
    /// It ran and did this.
    /// Its findings, by kind (`RunSummary::findings`).
    Ran(&'a [(&'static str, usize)]),
    /// Another process held the lease.
    Skipped,
    /// It failed; the next tick tries again.
    Failed,
}

/// One scheduled reconcile tick, and for a run what it found, by kind.
pub fn record_reconcile(tick: ReconcileTick<'_>) {
    let findings = match tick {
        ReconcileTick::Ran(findings) => findings,
        ReconcileTick::Skipped => {
            counter!(RECONCILE_RUNS, "outcome" => "skipped").increment(1);
            return;
        }
        ReconcileTick::Failed => {
            counter!(RECONCILE_RUNS, "outcome" => "failed").increment(1);
            return;
        }
    };
    counter!(RECONCILE_RUNS, "outcome" => "ran").increment(1);
    for &(kind, n) in findings {
        // Registered even at 0, so a dashboard sees the series from the first run.
        counter!(RECONCILE_FINDINGS, "kind" => kind).increment(n as u64);
    }
}

/// One webhook delivery attempt: `delivered` when the app answered 2xx.
pub fn record_webhook(delivered: bool) {
    let outcome = if delivered { "delivered" } else { "failed" };
    counter!(WEBHOOK_DELIVERIES, "outcome" => outcome).increment(1);
}

/// A method as a label from a fixed list: a client may send any token as its method, and each
/// would otherwise become a series of its own.
pub fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 7] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"];
    KNOWN
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .unwrap_or("OTHER")
}

#[cfg(test)]
mod tests {
    use crate::telemetry::{CallStatus, method_label};

    #[test]
    fn labels_come_from_fixed_lists() {
        assert_eq!(method_label("post"), "POST");
        assert_eq!(method_label("X-SECRET-METHOD"), "OTHER");
        assert_eq!(CallStatus::Http(429).label(), "429");
        assert_eq!(CallStatus::Timeout.label(), "timeout");
    }
}
