//! The `created` and `signed` stages: build, sign and STORE the envelope, then submit it; resubmit
//! the SAME envelope until it lands or is proven dead (`tx_bad_seq` with the sequence consumed
//! and the hash unknown, a ledger closed after its `max_time` with the hash unknown, or
//! `tx_insufficient_fee`), and only after scanning the app wallet's transactions for the memo go
//! back to `created`.
//!
//! Time bounds come from the chain's clock ([`super::chain_clock`]), never this server's. A
//! rebuild reuses the dead envelope's source and sequence number while the account has not
//! used it, so the old and the new envelope exclude each other: at most one can ever land.

use super::error::PayoutError;
use super::fault::CrashPoint;
use super::lane::{HeldElsewhere, SequenceError};
use super::lane_lease::LANE_RENEW_EVERY;
use super::outcome::Flow;
use super::processor::PayoutProcessor;
use crate::horizon::{SubmitError, SubmitOk};
use crate::ledger::{LedgerError, PayoutApplied, PayoutPatch, PayoutRow};
use crate::state::PayoutTransition;
use crate::stellar::{PaymentTx, TxFailure, Wallet};
use std::time::Duration;

/// How far before the payout's creation the memo scan still looks: a margin for the clocks of
/// our servers and of Pi's ledgers disagreeing (no transaction of the payout can be older). A
/// scan that stopped too early would miss a landed transaction and pay again, so the margin is
/// generous: an hour of the wallet's history costs a few more pages at most (and the scan never
/// reads more than its page cap).
const MEMO_SCAN_CLOCK_MARGIN_MS: i64 = 3_600_000;

impl PayoutProcessor {
    pub(super) async fn sign_and_submit(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(pid), Some(to)) = (&row.pi_payment_id, &row.to_address) else {
            return self
                .give_up(
                    row,
                    "payout is created but has no Pi payment or destination stored".into(),
                )
                .await;
        };
        if let Some(from) = &row.from_address
            && from != &self.app_address
        {
            return self
                .give_up(
                    row,
                    format!(
                        "Pi expects payment {pid} from wallet {from}, but PI_WALLET_SEED is the key of {}",
                        self.app_address
                    ),
                )
                .await;
        }
        let fee = match self.base_fee().await {
            Ok(f) => f,
            Err(e) => {
                return self.retry_later_on(row, "horizon_fee_failed", &e).await;
            }
        };
        let max_time = match self.max_time_from_chain().await {
            Ok(t) => t,
            Err(e) => {
                return self.retry_later_on(row, "horizon_ledger_failed", &e).await;
            }
        };
        // A rebuild goes back to the dead envelope's source: its sequence number is reused
        // when the account has not consumed it (see `rebuild_sequence`).
        let previous = row.tx_source.as_deref().zip(row.sequence);
        let lane = match previous {
            Some((source, _)) => match self.lanes.acquire_account(source).await {
                Ok(Some(lane)) => Some(lane),
                // No longer one of our sources (channels changed): any lane will do.
                Ok(None) => self.lanes.acquire_for_payment().await,
                Err(HeldElsewhere) => return self.lane_held_elsewhere(row).await,
            },
            None => self.lanes.acquire_for_payment().await,
        };
        let Some(mut lane) = lane else {
            return self.lane_held_elsewhere(row).await;
        };
        if previous.is_some() {
            // The lane's cached counter may be past the dead envelope's sequence.
            lane.invalidate();
        }
        let sequence = match lane.next_sequence(&self.horizon).await {
            Ok(s) => s,
            Err(SequenceError::NoAccount(a)) => {
                drop(lane);
                return self
                    .give_up(row, SequenceError::NoAccount(a).to_string())
                    .await;
            }
            Err(e) => {
                drop(lane);
                return self.retry_later_on(row, "horizon_account_failed", &e).await;
            }
        };
        let source = lane.account().to_string();
        let via_channel = source != self.app_address;
        let tx = if via_channel {
            PaymentTx::new(&source, sequence).payment_from(&self.app_address, to, row.amount)
        } else {
            PaymentTx::new(&source, sequence).payment(to, row.amount)
        };
        if let Some((_, old)) = previous {
            tracing::info!(payout_id = %row.id, old_sequence = old, sequence, reused = old == sequence, "rebuilding the payout's envelope");
        }
        let tx = tx
            .fee_per_op(fee)
            .memo_text(pid.as_str())
            .max_time(max_time);
        let signers: Vec<&Wallet> = if via_channel {
            vec![lane.wallet(), &self.app]
        } else {
            vec![&self.app]
        };
        let signed = match tx.sign(&signers, &self.network) {
            Ok(s) => s,
            Err(e) => {
                lane.invalidate();
                drop(lane);
                return self
                    .give_up(
                        row,
                        format!("the payout's transaction cannot be built: {e}"),
                    )
                    .await;
            }
        };
        let patch = PayoutPatch {
            tx_source: Some(signed.source.clone()),
            sequence: Some(signed.sequence),
            envelope_b64: Some(signed.envelope_b64.clone()),
            tx_hash: Some(signed.hash_hex.clone()),
            max_time: Some(i64::try_from(signed.max_time).unwrap_or(i64::MAX)),
            ..PayoutPatch::default()
        };
        // STORE before submitting: after a crash the step resubmits exactly this envelope.
        let stored = match self
            .apply(row, PayoutTransition::Signed, None, patch)
            .await?
        {
            Some(PayoutApplied::Moved { row: stored, .. }) => stored,
            _ => {
                // Another worker stored its envelope first (or the payout was withdrawn): this
                // one is never submitted, and its sequence number was not used.
                lane.invalidate();
                return Ok(Flow::Continue);
            }
        };
        self.crash_if(CrashPoint::AfterEnvelopeStored)?;
        let outcome = self.horizon.submit(&signed.envelope_b64).await;
        lane.after_submit(&outcome);
        drop(lane);
        self.handle_submit(&stored, outcome).await
    }

    pub(super) async fn resubmit(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(envelope), Some(hash), Some(max_time)) =
            (&row.envelope_b64, &row.tx_hash, row.max_time)
        else {
            return self
                .give_up(
                    row,
                    "payout is signed but its envelope is not stored".into(),
                )
                .await;
        };
        let expired = match self.chain_passed(max_time).await {
            Ok(e) => e,
            Err(e) => return self.retry_later_on(row, "horizon_ledger_failed", &e).await,
        };
        if expired {
            // A ledger closed after max_time: the envelope can never land; had it landed,
            // Horizon (which showed us that ledger) would know it.
            match self.horizon.transaction(hash).await {
                Ok(Some(tx)) if tx.successful => {
                    return self.confirm(row, hash, i64::from(tx.ledger), 0).await;
                }
                // Failed in a ledger: resubmitting answers its recorded result codes.
                Ok(Some(_)) => {}
                Ok(None) => {
                    return self
                        .envelope_dead(
                            row,
                            "expired: a ledger closed after its max_time and Horizon does not know the transaction",
                            0,
                        )
                        .await;
                }
                Err(e) => {
                    return self.retry_later_on(row, "horizon_lookup_failed", &e).await;
                }
            }
        }
        let mut lane = match &row.tx_source {
            Some(source) => match self.lanes.acquire_account(source).await {
                Ok(lane) => lane,
                // Its holder submits in order; this envelope waits for the lane.
                Err(HeldElsewhere) => return self.lane_held_elsewhere(row).await,
            },
            None => None,
        };
        let outcome = self.horizon.submit(envelope).await;
        if let Some(lane) = lane.as_mut() {
            lane.after_submit(&outcome);
        }
        drop(lane);
        self.handle_submit(row, outcome).await
    }

    /// Another worker process holds the source lane(s) this step needs: wait a lease tick
    /// and try again (any process may pick the job up), without counting an attempt.
    async fn lane_held_elsewhere(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        self.wait_behind(
            row,
            "payout_lane_held_elsewhere",
            &HeldElsewhere.to_string(),
            LANE_RENEW_EVERY,
        )
        .await
    }

    /// `max_time` for a new envelope: the chain's time now + [`PayoutConfig::tx_validity`].
    ///
    /// [`PayoutConfig::tx_validity`]: super::config::PayoutConfig::tx_validity
    pub(super) async fn max_time_from_chain(&self) -> Result<u64, crate::horizon::HorizonError> {
        let now = self.chain_clock.estimate_now(&self.horizon).await?;
        let validity = i64::try_from(self.config.tx_validity.as_secs().max(1)).unwrap_or(120);
        Ok(u64::try_from(now.saturating_add(validity)).unwrap_or(0))
    }

    /// Whether an envelope bounded by `max_time` can no longer land: a ledger closed after
    /// it (the chain's rule). Reads Horizon only once the estimate says it may have.
    pub(super) async fn chain_passed(
        &self,
        max_time: i64,
    ) -> Result<bool, crate::horizon::HorizonError> {
        if self.chain_clock.estimate_now(&self.horizon).await? <= max_time {
            return Ok(false);
        }
        self.chain_clock.closed_after(&self.horizon, max_time).await
    }

    /// Act on Horizon's answer to a submission of `row`'s stored envelope.
    async fn handle_submit(
        &self,
        row: &PayoutRow,
        outcome: Result<SubmitOk, SubmitError>,
    ) -> Result<Flow, PayoutError> {
        let hash = row.tx_hash.clone().unwrap_or_default();
        let max_time = row.max_time.unwrap_or(0);
        match outcome {
            Ok(ok) => {
                self.crash_if(CrashPoint::AfterSubmit)?;
                if ok.hash != hash {
                    return self
                        .give_up(
                            row,
                            format!("Horizon confirmed transaction {} but the stored envelope is {hash}", ok.hash),
                        )
                        .await;
                }
                self.confirm(row, &hash, i64::from(ok.ledger), 1).await
            }
            Err(SubmitError::Failed { failure, .. }) => match &failure {
                f if f.consumed_sequence() => self.in_ledger_failure(row, f).await,
                TxFailure::BadSeq => self.bad_seq(row).await,
                TxFailure::InsufficientFee => {
                    self.envelope_dead(row, "tx_insufficient_fee: the base fee rose; rebuilding with the current fee", 1)
                        .await
                }
                TxFailure::TooLate | TxFailure::TooEarly => {
                    self.until_expiry(row, failure.code(), max_time).await
                }
                TxFailure::BadAuth => {
                    self.give_up(
                        row,
                        format!(
                            "tx_bad_auth: Horizon rejected the signatures; check that PI_NETWORK ({}) is the network of PI_HORIZON_URL and that the channel seeds are current",
                            self.network.passphrase()
                        ),
                    )
                    .await
                }
                TxFailure::InsufficientBalance => {
                    self.give_up(
                        row,
                        format!(
                            "tx_insufficient_balance: source account {} cannot pay the fee; top it up, then retry the payout",
                            row.tx_source.as_deref().unwrap_or("?")
                        ),
                    )
                    .await
                }
                f if f.is_definite() => {
                    self.give_up(row, format!("Horizon refused the transaction ({f}); check the payout's envelope"))
                        .await
                }
                _ => self.until_expiry(row, failure.code(), max_time).await,
            },
            Err(SubmitError::Malformed(detail)) => {
                self.give_up(row, format!("Horizon says the envelope is malformed: {detail}"))
                    .await
            }
            Err(e @ (SubmitError::Timeout | SubmitError::Transport(_))) => {
                self.until_expiry(row, &e.to_string(), max_time).await
            }
        }
    }

    /// The outcome is unknown (or not final): resubmit the same envelope after a pause, until
    /// `max_time` (+ margin) passes; then the `signed` step checks Horizon by hash.
    async fn until_expiry(
        &self,
        row: &PayoutRow,
        why: &str,
        max_time: i64,
    ) -> Result<Flow, PayoutError> {
        let passed = self
            .chain_clock
            .cached_estimate()
            .await
            .is_some_and(|now| now > max_time);
        let delay = if passed {
            Duration::ZERO
        } else {
            self.config.resubmit_delay
        };
        self.wait(
            row,
            "submit_unknown",
            &format!("{why}; resubmitting the same envelope until its max_time"),
            delay,
            true,
        )
        .await
    }

    /// `tx_bad_seq`: dead only if the sequence is consumed and not by this envelope.
    async fn bad_seq(&self, row: &PayoutRow) -> Result<Flow, PayoutError> {
        let (Some(source), Some(sequence), Some(hash)) =
            (&row.tx_source, row.sequence, &row.tx_hash)
        else {
            return self
                .give_up(
                    row,
                    "tx_bad_seq on a payout without a stored envelope".into(),
                )
                .await;
        };
        let account = match self.horizon.account(source).await {
            Ok(Some(a)) => a,
            Ok(None) => {
                return self
                    .give_up(row, SequenceError::NoAccount(source.clone()).to_string())
                    .await;
            }
            Err(e) => {
                return self.retry_later_on(row, "horizon_account_failed", &e).await;
            }
        };
        if account.sequence < sequence {
            // Ahead of the account: it may still become valid. Keep resubmitting until expiry.
            return self
                .until_expiry(
                    row,
                    "tx_bad_seq (sequence ahead of the account)",
                    row.max_time.unwrap_or(0),
                )
                .await;
        }
        match self.horizon.transaction(hash).await {
            Ok(Some(tx)) if tx.successful => self.confirm(row, hash, i64::from(tx.ledger), 1).await,
            Ok(Some(_)) => self.until_expiry(row, "tx_bad_seq after an in-ledger failure", 0).await,
            Ok(None) => {
                self.envelope_dead(
                    row,
                    &format!("tx_bad_seq: sequence {sequence} of {source} was used by another transaction"),
                    1,
                )
                .await
            }
            Err(e) => self.retry_later_on(row, "horizon_lookup_failed", &e).await,
        }
    }

    /// The stored envelope will never land. Before a new one is built, look for ANY landed
    /// transaction of this payout (its memo) among the app wallet's transactions.
    async fn envelope_dead(
        &self,
        row: &PayoutRow,
        why: &str,
        submits: i64,
    ) -> Result<Flow, PayoutError> {
        let (Some(pid), Some(hash)) = (&row.pi_payment_id, &row.tx_hash) else {
            return self
                .give_up(row, format!("{why}; but no envelope is stored"))
                .await;
        };
        match self
            .horizon
            .find_transaction_by_memo(
                &self.app_address,
                pid.as_str(),
                None,
                Some(row.created_at.saturating_sub(MEMO_SCAN_CLOCK_MARGIN_MS)),
            )
            .await
        {
            Ok(Some(tx)) => {
                tracing::warn!(payout_id = %row.id, tx = %tx.hash, "found a landed transaction of this payout by its memo; adopting it");
                self.confirm(row, &tx.hash, i64::from(tx.ledger), submits)
                    .await
            }
            Ok(None) => {
                tracing::info!(payout_id = %row.id, "envelope {hash} is dead ({why}); building a new one");
                self.apply(
                    row,
                    PayoutTransition::Expired {
                        tx_hash: hash.clone(),
                        reason: why.to_string(),
                    },
                    None,
                    PayoutPatch {
                        submits,
                        ..PayoutPatch::default()
                    },
                )
                .await?;
                Ok(Flow::Continue)
            }
            Err(e) => self.retry_later_on(row, "horizon_scan_failed", &e).await,
        }
    }

    /// `tx_failed`: applied in a ledger, nothing paid, the sequence consumed.
    async fn in_ledger_failure(
        &self,
        row: &PayoutRow,
        failure: &TxFailure,
    ) -> Result<Flow, PayoutError> {
        let ops = failure.failed_ops();
        let reason = if ops.contains(&"op_underfunded") {
            format!(
                "op_underfunded: the app wallet {} has too little Pi to pay {} Pi (plus fee and reserve); top it up and request a new payout",
                self.app_address,
                row.amount.to_fixed7()
            )
        } else if ops.contains(&"op_no_destination") {
            format!(
                "op_no_destination: the Pioneer's wallet {} does not exist on chain (never activated); they must activate it, then request a new payout",
                row.to_address.as_deref().unwrap_or("?")
            )
        } else {
            format!(
                "the transaction failed on chain ({failure}); nothing was paid: request a new payout"
            )
        };
        self.fail(row, reason, true, 1).await
    }

    async fn confirm(
        &self,
        row: &PayoutRow,
        hash: &str,
        ledger: i64,
        submits: i64,
    ) -> Result<Flow, PayoutError> {
        let patch = PayoutPatch {
            tx_hash: Some(hash.to_string()),
            ledger: Some(ledger),
            submits,
            ..PayoutPatch::default()
        };
        match self
            .ledger
            .apply_payout(&row.id, PayoutTransition::Confirmed, None, 0, patch)
            .await
        {
            Ok(_) | Err(LedgerError::InvalidPayoutTransition(_)) => Ok(Flow::Continue),
            Err(LedgerError::PayoutConflict { detail, .. }) => {
                self.give_up(
                    row,
                    format!("transaction {hash} landed but cannot be recorded: {detail}"),
                )
                .await
            }
            Err(e) => Err(e.into()),
        }
    }
}
