//! The state every simulator handler shares: settings, the chain and the locked Platform state.

use std::sync::atomic::AtomicU64;
use std::sync::{Mutex, MutexGuard};

use crate::chain::Chain;
use crate::faults::{FaultKnobs, Faults};
use crate::request_log::RequestLog;
use crate::state::{PlatformState, Settings};

/// Everything the handlers share: settings, the chain, and the locked state.
pub(crate) struct Shared {
    pub(crate) settings: Settings,
    pub(crate) chain: Chain,
    pub(crate) platform: Mutex<PlatformState>,
    pub(crate) faults: Mutex<Faults>,
    pub(crate) log: Mutex<RequestLog>,
    /// The knobs at start, restored by a full reset.
    pub(crate) initial_knobs: FaultKnobs,
    pub(crate) platform_port: u16,
    pub(crate) horizon_port: u16,
    /// Requests answered that may have changed state (anything but GET/HEAD): the state
    /// file's saver writes when this moves.
    pub(crate) changes: AtomicU64,
    /// Whether the state came from the state file.
    pub(crate) restored: bool,
}

/// Locks a mutex; a panicked holder cannot leave these states half-changed (every change is a
/// single assignment sequence without awaits), so a poisoned lock is still usable.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl Shared {
    pub(crate) fn platform(&self) -> MutexGuard<'_, PlatformState> {
        lock(&self.platform)
    }

    pub(crate) fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.faults)
    }

    pub(crate) fn log(&self) -> MutexGuard<'_, RequestLog> {
        lock(&self.log)
    }

    /// The ready line's fields, in the documented order.
    pub(crate) fn ready_line(&self) -> String {
        /// Typed so the fields keep the documented order on the wire.
        #[derive(serde::Serialize)]
        struct Ready<'a> {
            event: &'a str,
            platform_url: &'a str,
            horizon_url: &'a str,
            platform_port: u16,
            horizon_port: u16,
            api_key: &'a str,
            app_wallet_public_key: &'a str,
            app_wallet_seed: String,
            network_passphrase: &'a str,
            ledger: u32,
        }
        let s = &self.settings;
        let ready = Ready {
            event: "ready",
            platform_url: &s.platform_url,
            horizon_url: &s.horizon_url,
            platform_port: self.platform_port,
            horizon_port: self.horizon_port,
            api_key: &s.api_key,
            app_wallet_public_key: &s.app_address,
            app_wallet_seed: s.app_wallet.secret_seed(),
            network_passphrase: &s.network,
            ledger: self.chain.latest_ledger().sequence,
        };
        serde_json::to_string(&ready).unwrap_or_default()
    }

    pub(crate) fn ready_json(&self) -> serde_json::Value {
        serde_json::from_str(&self.ready_line()).unwrap_or_default()
    }

    pub(crate) fn reset_log(&self) {
        *self.log() = RequestLog::default();
    }

    /// Forgets payments, users, tokens, ads, the log and the chain; restores the start knobs
    /// and re-funds the app wallet.
    pub(crate) fn reset_all(&self) {
        let mut platform = self.platform();
        *platform = PlatformState::default();
        self.chain.reset();
        self.chain
            .fund_account(&self.settings.app_address, self.settings.app_balance);
        let knobs = self.initial_knobs.clone();
        self.chain.set_ledger_seconds(knobs.ledger_seconds);
        self.chain.set_max_tx_per_ledger(knobs.max_tx_per_ledger);
        self.chain.set_clock_offset(knobs.clock_offset_seconds);
        *self.faults() = Faults::new(knobs);
        drop(platform);
        self.reset_log();
    }
}
