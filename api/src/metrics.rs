//! `GET /metrics`: the process's metrics in the Prometheus text format, and the middleware that
//! counts and times every request by route template.
//!
//! What is recorded, and under which names and labels, is core's `telemetry` module; this
//! module installs the Prometheus recorder that keeps it ([`install`], once per process) and
//! renders it. The gauges read from the ledger and the queue (payments and payouts by state,
//! queue depth) are refreshed at scrape time, at most every [`crate::scrape_gauges::REFRESH_EVERY`], so a flood of
//! scrapes costs at most one `GROUP BY` per interval.
//!
//! The route is open, like `/healthz`: every label comes from a fixed list or a route
//! template, so the text holds no payment id, uid, token or URL; and counts of payments are
//! no secret (every payment to the app wallet is public on the chain). Keep it off the public
//! internet at the proxy if its traffic figures should stay private.

use crate::scrape_gauges::ScrapeGauges;
use crate::state::ApiState;
use axum::extract::{MatchedPath, Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use pi_payments_core::jobs::JobQueue;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::telemetry;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// How often histogram samples are folded into their buckets between scrapes (otherwise they
/// pile up in memory while nobody scrapes).
const UPKEEP_EVERY: Duration = Duration::from_secs(5);
/// The `route` label of requests no route matched (404s): one series, whatever the path.
pub const UNMATCHED_ROUTE: &str = "unmatched";
/// The content type of the Prometheus text format.
const TEXT_FORMAT: &str = "text/plain; version=0.0.4; charset=utf-8";

static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();

/// Install the Prometheus recorder for this process (the first call; later calls return the
/// same handle), describe every metric and start the upkeep thread. Call it before anything
/// records (the binary does so before connecting), or early values are lost.
pub fn install() -> &'static PrometheusHandle {
    HANDLE.get_or_init(|| {
        let handle = match builder().install_recorder() {
            Ok(handle) => handle,
            Err(error) => {
                // Another recorder is installed: serve an empty page rather than fail.
                tracing::warn!(%error, "metrics recorder not installed; /metrics stays empty");
                builder().build_recorder().handle()
            }
        };
        telemetry::describe();
        let upkeep = handle.clone();
        let spawned = std::thread::Builder::new()
            .name("metrics-upkeep".into())
            .spawn(move || {
                loop {
                    std::thread::sleep(UPKEEP_EVERY);
                    upkeep.run_upkeep();
                }
            });
        if let Err(error) = spawned {
            tracing::warn!(%error, "no metrics upkeep thread; histograms are folded at scrapes only");
        }
        handle
    })
}

/// Histograms as real Prometheus histograms (aggregatable across processes), not summaries.
fn builder() -> PrometheusBuilder {
    let with_buckets = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(telemetry::LIMITER_WAIT.to_string()),
            telemetry::LIMITER_BUCKETS,
        )
        .and_then(|b| {
            b.set_buckets_for_metric(
                Matcher::Suffix("_seconds".to_string()),
                telemetry::LATENCY_BUCKETS,
            )
        });
    // Only an empty bucket list is refused, and ours are constants.
    with_buckets.unwrap_or_else(|_| PrometheusBuilder::new())
}

/// The recorded metrics as a Prometheus text page, the ledger and queue gauges refreshed
/// through `gauges` first (the API's `/metrics` and a worker's).
pub async fn scrape(gauges: &ScrapeGauges, ledger: &Ledger, queue: &dyn JobQueue) -> Response {
    // Installed before the gauges are set (it is at start already; this covers a router
    // built on its own, as in tests).
    let handle = install();
    gauges.refresh(ledger, queue).await;
    ([(CONTENT_TYPE, TEXT_FORMAT)], handle.render()).into_response()
}

/// `GET /metrics` of the API.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    operation_id = "metrics",
    description = "Prometheus text exposition: HTTP requests by route template and status, jobs by kind and outcome, queue depth, Pi and Horizon calls by endpoint and status, 429s, limiter waits, payments and payouts by state, reconcile findings, webhook deliveries. Counts only: no ids, uids or secrets. Worker processes serve the same on WORKER_ADDR.",
    responses((status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain; version=0.0.4", body = String))
)]
pub async fn metrics(State(state): State<ApiState>) -> Response {
    scrape(&state.scrape_gauges, &state.ledger, &*state.queue).await
}

/// Middleware: count and time every request by method, route template (never the raw path:
/// `/payments/{id}`, or [`UNMATCHED_ROUTE`]) and status.
pub async fn record_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = telemetry::method_label(request.method().as_str());
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_string());
    let response = next.run(request).await;
    telemetry::record_http(
        method,
        route.as_deref().unwrap_or(UNMATCHED_ROUTE),
        response.status().as_u16(),
        started.elapsed(),
    );
    response
}
