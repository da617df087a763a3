//! The payout side of the harness: processors wired to a [`SimEnv`], payout requests, and an
//! in-process driver that steps payouts until they settle (what the worker does with
//! `Job::Payout`).

use pi_payments_core::ledger::{PayoutRequest, PayoutRow};
use pi_payments_core::payout::{PayoutConfig, PayoutId, PayoutProcessor, StepOutcome};
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::stellar::Wallet;
use pi_payments_core::{PiAmount, Uid};
use serde_json::json;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use super::ledger::outbox_types;
use super::sim::SimEnv;

/// Backoffs in milliseconds so tests settle quickly.
pub fn test_config() -> PayoutConfig {
    PayoutConfig {
        tx_validity: Duration::from_secs(60),
        max_attempts: 30,
        base_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(500),
        resubmit_delay: Duration::from_millis(100),
        fee_cache: Duration::from_secs(5),
    }
}

/// A payout requested for a new Pioneer, and what the test checks against afterwards.
pub struct Requested {
    /// The payout as requested.
    pub row: PayoutRow,
    /// The Pioneer's wallet.
    pub address: String,
    /// Its balance before the payout, in stroops.
    pub balance_before: i64,
}

impl SimEnv {
    /// A processor as one worker process would build it (its own sequence lanes).
    pub fn processor(&self, channels: Vec<Wallet>) -> PayoutProcessor {
        self.processor_with(channels, RetryPolicy::fast())
    }

    pub fn processor_with(&self, channels: Vec<Wallet>, retry: RetryPolicy) -> PayoutProcessor {
        PayoutProcessor::new(
            self.ledger.clone(),
            self.pi(retry),
            self.horizon(),
            self.app_wallet(),
            self.network(),
            channels,
        )
        .with_config(test_config())
    }

    /// Pioneer `uid` (new and funded), their balance now, then a payout of `amount` to them
    /// under idempotency key `key`.
    pub async fn request_for_new_pioneer(&self, uid: &str, amount: &str, key: &str) -> Requested {
        let address = self.pioneer(uid).await;
        let balance_before = self.balance(&address).await;
        let row = self.request(uid, amount, key).await;
        Requested {
            row,
            address,
            balance_before,
        }
    }

    /// A payout of `amount` to Pioneer `uid` (made known to Pi first: Pi pays only Pioneers who
    /// used the app) under idempotency key `key`.
    pub async fn request(&self, uid: &str, amount: &str, key: &str) -> PayoutRow {
        self.pioneer(uid).await;
        let (row, created) = self
            .ledger
            .request_payout(PayoutRequest {
                uid: Uid::parse(uid).unwrap(),
                amount: PiAmount::parse(amount).unwrap(),
                memo: format!("Reward {key}"),
                metadata: json!({"campaign": "test"}),
                idempotency_key: key.to_string(),
                batch_id: None,
            })
            .await
            .unwrap();
        assert!(created);
        row
    }

    pub async fn row(&self, id: &PayoutId) -> PayoutRow {
        self.ledger.payout(id).await.unwrap().unwrap()
    }

    /// Outbox event types about one payout.
    pub async fn outbox(&self, id: &PayoutId) -> Vec<String> {
        outbox_types(&self.ledger, id.as_str()).await
    }
}

/// Step one payout until it settles (Done / Failed / NeedsAttention), sleeping on RetryAt.
pub async fn settle(p: &PayoutProcessor, id: &PayoutId) -> StepOutcome {
    for _ in 0..3_000 {
        match p.step(id).await {
            Ok(StepOutcome::Again) => {}
            Ok(StepOutcome::RetryAt(d)) => tokio::time::sleep(d.min(Duration::from_secs(2))).await,
            Ok(outcome) => return outcome,
            Err(e) => panic!("step {id} failed: {e}"),
        }
    }
    panic!("payout {id} did not settle");
}

/// The in-process driver: step every payout until it settles, `concurrency` at a time.
pub async fn drive(
    p: &PayoutProcessor,
    ids: &[PayoutId],
    concurrency: usize,
) -> HashMap<PayoutId, StepOutcome> {
    let sem = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    for id in ids {
        let (p, id, sem) = (p.clone(), id.clone(), sem.clone());
        set.spawn(async move {
            let _permit = sem.acquire_owned().await.unwrap();
            let outcome = settle(&p, &id).await;
            (id, outcome)
        });
    }
    let mut out = HashMap::new();
    while let Some(r) = set.join_next().await {
        let (id, outcome) = r.unwrap();
        out.insert(id, outcome);
    }
    out
}
