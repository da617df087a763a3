//! Channel accounts: creating and funding the extra source accounts (`PI_CHANNEL_SEEDS`) that let
//! several payouts land in one ledger (see [`crate::payout::lane`]). Operator commands, not
//! pipeline steps: `pi-payments channels create N --fund 2`.

use super::error::PayoutError;
use super::lane::LaneGuard;
use super::processor::PayoutProcessor;
use crate::amount::PiAmount;
use crate::stellar::{MAX_OPS_PER_TX, PaymentTx, Wallet};

impl PayoutProcessor {
    /// Create `n` channel accounts funded with `fund` each from the app wallet
    /// (`pi-payments channels create N --fund 2`). The caller must store the returned seeds
    /// (`PI_CHANNEL_SEEDS`); prefer generating them first and calling
    /// [`PayoutProcessor::fund_channels`], so a seed is saved before any Pi is sent to it.
    pub async fn create_channels(
        &self,
        n: usize,
        fund: PiAmount,
    ) -> Result<Vec<Wallet>, PayoutError> {
        let wallets: Vec<Wallet> = (0..n).map(|_| Wallet::generate()).collect();
        self.fund_channels(&wallets, fund).await?;
        Ok(wallets)
    }

    /// Create (with `create_account` operations from the app wallet, up to 100 per transaction)
    /// every account of `wallets` that does not exist yet. Idempotent: run it again after a
    /// failure; existing accounts are skipped.
    pub async fn fund_channels(
        &self,
        wallets: &[Wallet],
        fund: PiAmount,
    ) -> Result<(), PayoutError> {
        let mut missing = Vec::new();
        for w in wallets {
            if self.horizon.account(&w.public_key()).await?.is_none() {
                missing.push(w.public_key());
            }
        }
        for chunk in missing.chunks(MAX_OPS_PER_TX) {
            let fee = self.base_fee().await?;
            let max_time = self.max_time_from_chain().await?;
            let mut lane: LaneGuard = self.lanes.acquire_app().await;
            let sequence = lane.next_sequence(&self.horizon).await?;
            let mut tx = PaymentTx::new(&self.app_address, sequence)
                .fee_per_op(fee)
                .max_time(max_time);
            for account in chunk {
                tx = tx.create_account(account, fund);
            }
            let signed = match tx.sign(&[&self.app], &self.network) {
                Ok(s) => s,
                Err(e) => {
                    lane.invalidate();
                    return Err(e.into());
                }
            };
            loop {
                let outcome = self.horizon.submit(&signed.envelope_b64).await;
                lane.after_submit(&outcome);
                match outcome {
                    Ok(_) => break,
                    Err(e)
                        if e.may_have_landed()
                            && !self
                                .chain_passed(i64::try_from(signed.max_time).unwrap_or(0))
                                .await? =>
                    {
                        tokio::time::sleep(self.config.resubmit_delay).await;
                    }
                    Err(e) => {
                        if self
                            .horizon
                            .transaction(&signed.hash_hex)
                            .await?
                            .is_some_and(|t| t.successful)
                        {
                            break;
                        }
                        return Err(PayoutError::ChannelFunding(e.to_string()));
                    }
                }
            }
        }
        Ok(())
    }
}
