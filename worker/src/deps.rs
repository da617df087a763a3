//! What the worker runs with: [`WorkerDeps`] (the ledger, the clients, the app's rules) and
//! [`JobRetry`] (how often and how patiently a job is tried).

use crate::webhook::WebhookConfig;
use pi_payments_core::horizon::HorizonClient;
use pi_payments_core::ledger::Ledger;
use pi_payments_core::payout::PayoutProcessor;
use pi_payments_core::pi_client::PiClient;
use pi_payments_core::u2a::U2aDeps;
use std::time::Duration;

/// How many times a job is tried, and the backoff between tries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobRetry {
    /// Total tries of one job (the first included); at the last failed one the payment goes to
    /// `needs_attention`.
    pub max_attempts: u32,
    /// First backoff; doubles per try, with jitter. Also the first wait of a U2A step that Pi
    /// or Horizon throttled without a `Retry-After` (a wait that is not a try).
    pub base_delay: Duration,
    /// Backoff ceiling (also of throttled waits).
    pub max_delay: Duration,
}

impl Default for JobRetry {
    /// 8 tries, 1 s doubling to 30 s: about two minutes of trying (on top of the Pi client's own
    /// short retries) before a person is asked to look.
    fn default() -> Self {
        JobRetry {
            max_attempts: 8,
            base_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(30),
        }
    }
}

/// What the handlers need: the ledger, the clients, and the app's rules.
#[derive(Clone)]
pub struct WorkerDeps {
    /// The payments ledger (its own database; never the queue's).
    pub ledger: Ledger,
    /// The Pi Platform client; it holds the ONE rate limiter every Pi call goes through.
    pub pi: PiClient,
    /// Horizon, to verify U2A transactions on chain.
    pub horizon: HorizonClient,
    /// The app wallet's public key (`G…`): where U2A payments must go.
    pub app_wallet: String,
    /// `PI_NETWORK` (the passphrase): a payment Pi shows on another network is never approved.
    pub network: String,
    /// `REQUIRE_ORDER`: refuse U2A payments whose metadata carries no `orderId`.
    pub require_order: bool,
    /// `ANONYMOUS_CANCEL_GRACE`: see [`U2aDeps::anonymous_cancel_grace`].
    pub anonymous_cancel_grace: std::time::Duration,
    /// `APP_WEBHOOK_URL` / `APP_WEBHOOK_SECRET`; `None` leaves events to `GET /events` polling.
    pub webhook: Option<WebhookConfig>,
    /// How many times a job is tried and how long it waits between tries.
    pub retry: JobRetry,
    /// The A2U payout pipeline (needs `PI_WALLET_SEED`); `None` runs no payout worker, and
    /// payout jobs wait in their queue.
    pub payouts: Option<PayoutProcessor>,
}

impl WorkerDeps {
    /// What core's U2A steps work with.
    pub(crate) fn u2a(&self) -> U2aDeps {
        U2aDeps {
            ledger: self.ledger.clone(),
            pi: self.pi.clone(),
            horizon: self.horizon.clone(),
            app_wallet: self.app_wallet.clone(),
            network: self.network.clone(),
            require_order: self.require_order,
            anonymous_cancel_grace: self.anonymous_cancel_grace,
        }
    }
}

impl std::fmt::Debug for WorkerDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WorkerDeps")
            .field("pi", &self.pi)
            .field("app_wallet", &self.app_wallet)
            .field("require_order", &self.require_order)
            .field("webhook", &self.webhook)
            .field("retry", &self.retry)
            .field("payouts", &self.payouts)
            .finish_non_exhaustive()
    }
}
