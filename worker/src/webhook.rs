//! The webhook deliverer: sends outbox events to `APP_WEBHOOK_URL`, signed, until the app
//! acknowledges each with a 2xx.
//!
//! The ledger writes exactly one event per (type, payment) in the same transaction as the state
//! change; this loop only moves them. It claims due events with a lease (so two processes do not
//! send the same event at once), POSTs each with `Pi-Payments-Signature: t=<unix>,v1=<hex>`,
//! marks it delivered on 2xx, and otherwise stores the error and the next attempt time
//! (exponential backoff, capped). Delivery is at least once: apps dedupe by the event `id`.

use futures::StreamExt;
use pi_payments_core::events::{SIGNATURE_HEADER, WebhookBody, sign_webhook};
use pi_payments_core::ledger::{EventRow, Ledger, now_ms};
use pi_payments_core::secret::Secret;
use rand::Rng;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::{Notify, watch};
use tracing::Instrument;

/// Where events go and the secret that signs them.
#[derive(Clone, Debug)]
pub struct WebhookConfig {
    /// `APP_WEBHOOK_URL`.
    pub url: String,
    /// `APP_WEBHOOK_SECRET` (a [`Secret`]: never logged).
    pub secret: Secret,
}

/// Events sent at once.
const PARALLEL: usize = 8;
/// Events claimed per round.
const BATCH: i64 = 64;
/// How long a claimed event is reserved for this deliverer before another may take it.
const LEASE_MS: i64 = 60_000;
/// Polling period when nothing nudges the loop (events written by other processes).
const IDLE_POLL: Duration = Duration::from_secs(1);
/// Backoff bounds between failed deliveries of one event.
const BACKOFF_BASE_MS: i64 = 1_000;
const BACKOFF_MAX_MS: i64 = 10 * 60_000;
/// Per-request timeout: a slow app must not hold events back.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Deliver due events until `stop` turns true. `nudge` wakes the loop early (a handler just
/// wrote an event).
pub(crate) async fn run_deliverer(
    ledger: Ledger,
    hook: WebhookConfig,
    nudge: Arc<Notify>,
    mut stop: watch::Receiver<bool>,
) {
    let client = match reqwest::Client::builder()
        .timeout(REQUEST_TIMEOUT)
        .connect_timeout(Duration::from_secs(5))
        .user_agent(concat!("pi-payments-webhook/", env!("CARGO_PKG_VERSION")))
        .build()
    {
        Ok(client) => client,
        Err(error) => {
            tracing::error!(%error, "cannot build the webhook HTTP client; events stay in the outbox (GET /events)");
            return;
        }
    };
    let deliverer = Deliverer {
        ledger,
        hook,
        client,
    };
    while !*stop.borrow() {
        let sent = match deliverer.round().await {
            Ok(n) => n,
            Err(error) => {
                tracing::warn!(%error, "webhook round failed; retrying");
                0
            }
        };
        if sent == BATCH as usize {
            continue; // More may be due right away.
        }
        tokio::select! {
            _ = nudge.notified() => {}
            _ = tokio::time::sleep(IDLE_POLL) => {}
            // A dropped sender also means stop.
            changed = stop.changed() => if changed.is_err() { return; }
        }
    }
}

struct Deliverer {
    ledger: Ledger,
    hook: WebhookConfig,
    client: reqwest::Client,
}

impl Deliverer {
    /// Claim and send one batch of due events; returns how many were claimed.
    async fn round(&self) -> Result<usize, pi_payments_core::ledger::LedgerError> {
        let events = self
            .ledger
            .claim_deliveries(now_ms(), LEASE_MS, BATCH)
            .await?;
        let n = events.len();
        futures::stream::iter(events)
            .for_each_concurrent(PARALLEL, |event| async move { self.deliver(event).await })
            .await;
        Ok(n)
    }

    async fn deliver(&self, event: EventRow) {
        let span = tracing::info_span!(
            "webhook",
            event_id = event.id,
            event_type = %event.event_type,
            payment_id = %event.subject_id
        );
        async {
        let outcome = self.post(&event).await;
        pi_payments_core::telemetry::record_webhook(outcome.is_ok());
        let result = match outcome {
            Ok(()) => self.ledger.mark_delivered(event.id).await,
            Err(error) => {
                let next = now_ms().saturating_add(backoff_ms(event.delivery_attempts));
                tracing::warn!(%error, attempts = event.delivery_attempts + 1, "webhook delivery failed; will retry");
                self.ledger
                    .mark_delivery_failed(event.id, &error, next)
                    .await
            }
        };
        if let Err(error) = result {
            // The lease expires and the event is sent again: at least once.
            tracing::warn!(%error, "could not record the delivery outcome");
        }
        }
        .instrument(span)
        .await
    }

    /// POST one event; `Ok` only on a 2xx.
    async fn post(&self, event: &EventRow) -> Result<(), String> {
        let body = serde_json::to_vec(&WebhookBody::from_row(event))
            .map_err(|e| format!("could not encode the event: {e}"))?;
        let ts = chrono::Utc::now().timestamp();
        let signature = sign_webhook(self.hook.secret.expose().as_bytes(), ts, &body);
        let response = self
            .client
            .post(&self.hook.url)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .body(body)
            .send()
            .await
            .map_err(|e| format!("POST to the webhook failed: {}", without_url(e)))?;
        let status = response.status();
        if status.is_success() {
            Ok(())
        } else {
            Err(format!("the webhook answered {status}"))
        }
    }
}

/// reqwest errors include the URL, which may carry credentials in its query: keep the kind.
fn without_url(e: reqwest::Error) -> String {
    e.without_url().to_string()
}

/// Exponential backoff with jitter after `attempts` failed deliveries.
fn backoff_ms(attempts: i64) -> i64 {
    let exp = u32::try_from(attempts.clamp(0, 20)).unwrap_or(20);
    let ceiling = BACKOFF_BASE_MS
        .saturating_mul(1_i64 << exp)
        .min(BACKOFF_MAX_MS);
    // Between half and all of the ceiling: spread, but never much sooner than planned.
    rand::thread_rng().gen_range(ceiling / 2..=ceiling)
}

#[cfg(test)]
mod tests {
    use crate::webhook::{BACKOFF_MAX_MS, backoff_ms};

    #[test]
    fn backoff_grows_and_is_capped() {
        assert!((500..=1_000).contains(&backoff_ms(0)));
        assert!((1_000..=2_000).contains(&backoff_ms(1)));
        assert!(backoff_ms(50) <= BACKOFF_MAX_MS);
        assert!(backoff_ms(50) >= BACKOFF_MAX_MS / 2);
    }
}
