//! [`PayoutConfig`]: the pipeline's tunables (timeouts, retries, backoff), kept apart from the
//! steps so a deployment or a test can change them without reading the pipeline.

use std::time::Duration;

/// Tunables of the pipeline. `Default` is what production uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PayoutConfig {
    /// `max_time = chain time + tx_validity` on every envelope, the chain's time being the
    /// latest ledger's close (keep it within 60..180 s on Pi: long enough to land under load,
    /// short enough that a lost envelope is rebuilt soon). An envelope Horizon does not know is
    /// dead once a ledger closed after its `max_time`.
    pub tx_validity: Duration,
    /// Failed attempts of one step before the payout goes to `needs_attention`.
    pub max_attempts: i64,
    /// First backoff after a transient failure (doubles per attempt).
    pub base_backoff: Duration,
    /// Longest backoff.
    pub max_backoff: Duration,
    /// Pause before resubmitting the same envelope after an unknown outcome.
    pub resubmit_delay: Duration,
    /// How long `/fee_stats` is cached, shared by all payouts of the process: about one ledger
    /// (Pi closes one every ~5 s), so the fee follows the network without a read per payout.
    pub fee_cache: Duration,
}

impl Default for PayoutConfig {
    fn default() -> PayoutConfig {
        PayoutConfig {
            tx_validity: Duration::from_secs(120),
            max_attempts: 8,
            base_backoff: Duration::from_secs(2),
            max_backoff: Duration::from_secs(300),
            resubmit_delay: Duration::from_secs(1),
            fee_cache: Duration::from_secs(5),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::payout::config::PayoutConfig;

    #[test]
    fn defaults_respect_pi_time_bounds() {
        let c = PayoutConfig::default();
        assert!((60..=180).contains(&c.tx_validity.as_secs()));
        assert!(c.max_attempts > 1);
    }
}
