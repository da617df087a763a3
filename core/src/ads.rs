//! Rewarded ads, granted exactly once (pi-platform.md §8).
//!
//! The frontend sends the `adId` the SDK's `AD_REWARDED` result gave it; the client's word
//! decides nothing. The first Pioneer to claim an `adId` owns it (the ledger's primary key),
//! Pi's `GET /v2/ads_network/status/{adId}` decides whether the reward is due, and the ledger's
//! conditional status change (see [`crate::ledger::ad_claims`]) makes the reward and its
//! `ad.granted` event happen once however many claims race. A grant Pi later revokes is marked
//! revoked with an `ad.revoked` event, found by a later claim or by [`AdRewards::reconcile`].

use crate::dto::MediatorAckStatus;
use crate::ids::Uid;
use crate::ledger::{AdBinding, AdClaimRow, AdObservation, AdUpdate, Ledger, LedgerError, now_ms};
use crate::pi_client::{PiClient, PiError};

/// The longest `adId` accepted; Pi's are far shorter.
pub const MAX_AD_ID_LEN: usize = 200;

/// The longest `productId` accepted.
pub const MAX_PRODUCT_ID_LEN: usize = 100;

/// Why a claim could not be decided.
#[derive(Debug, thiserror::Error)]
pub enum AdError {
    /// The `adId` is empty, too long or has characters Pi's ids never have.
    #[error(
        "adId is invalid: send the adId from the SDK's AD_REWARDED result (1 to {MAX_AD_ID_LEN} visible ASCII characters)"
    )]
    InvalidAdId,
    /// The `productId` is empty, too long or not printable.
    #[error(
        "productId is invalid: send 1 to {MAX_PRODUCT_ID_LEN} visible ASCII characters, or leave it out"
    )]
    InvalidProductId,
    /// Pi does not know the ad.
    #[error(
        "Pi does not know this ad: the adId must come from the SDK's AD_REWARDED result; show the ad again"
    )]
    NotFound,
    /// Another Pioneer claimed this ad first.
    #[error(
        "this ad was claimed by another Pioneer: each ad rewards only the Pioneer who watched it"
    )]
    ClaimedByAnother,
    /// Pi could not be asked right now.
    #[error("Pi could not report the ad's status right now ({0}); claim again in a few seconds")]
    PiUnavailable(#[source] PiError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

fn visible_ascii(s: &str, max: usize) -> bool {
    (1..=max).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_graphic())
}

/// Pi's `mediator_ack_status` as an observation; values we do not know count as pending (the
/// safe side: no reward until Pi says `granted`).
pub fn observe(status: Option<&MediatorAckStatus>) -> AdObservation {
    match status {
        Some(MediatorAckStatus::Granted) => AdObservation::Granted,
        Some(MediatorAckStatus::Failed) => AdObservation::Failed,
        Some(MediatorAckStatus::Revoked) => AdObservation::Revoked,
        Some(MediatorAckStatus::Unknown(other)) => {
            tracing::warn!(status = %other, "unknown mediator_ack_status; treating the ad as pending");
            AdObservation::Pending
        }
        None => AdObservation::Pending,
    }
}

/// What a reconcile pass did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    /// Claims re-checked with Pi.
    pub checked: usize,
    /// Pending claims that became granted.
    pub granted: usize,
    /// Granted claims Pi revoked.
    pub revoked: usize,
    /// Pending claims Pi failed.
    pub denied: usize,
    /// Claims that could not be checked (Pi unavailable, unknown ad); left for the next pass.
    pub errors: usize,
}

/// The rewarded-ad service; cheap to clone.
#[derive(Clone, Debug)]
pub struct AdRewards {
    ledger: Ledger,
    pi: PiClient,
}

impl AdRewards {
    /// Use `pi` (the process's shared client, with its limiter) and `ledger`.
    pub fn new(ledger: Ledger, pi: PiClient) -> AdRewards {
        AdRewards { ledger, pi }
    }

    /// `uid` claims the reward of `ad_id` (for `product_id`, if the app names rewards). The
    /// answer is the claim after this check; its `status` is what the client is told.
    pub async fn claim(
        &self,
        ad_id: &str,
        uid: &Uid,
        product_id: Option<&str>,
    ) -> Result<AdClaimRow, AdError> {
        if !visible_ascii(ad_id, MAX_AD_ID_LEN) {
            return Err(AdError::InvalidAdId);
        }
        if let Some(p) = product_id
            && !visible_ascii(p, MAX_PRODUCT_ID_LEN)
        {
            return Err(AdError::InvalidProductId);
        }
        // Cheap refusals first: someone else's ad, or one already decided for good.
        if let Some(existing) = self.ledger.ad_claim(ad_id).await? {
            if &existing.uid != uid {
                return Err(AdError::ClaimedByAnother);
            }
            if existing.status.is_final() {
                return Ok(existing);
            }
        }
        // Ask Pi before binding, so ids Pi never issued leave no rows behind.
        let seen = self.ask_pi(ad_id).await?;
        match self
            .ledger
            .bind_ad_claim(ad_id, uid, product_id, now_ms())
            .await?
        {
            AdBinding::Theirs(_) => return Err(AdError::ClaimedByAnother),
            AdBinding::Ours(_) => {}
        }
        let update = self.ledger.record_ad_status(ad_id, seen, now_ms()).await?;
        log_update(&update);
        Ok(update.row)
    }

    /// Re-check one claimed ad with Pi (whoever owns it) and apply the answer: the entry point
    /// for a reconcile job that looks for revoked grants and decided pending ads.
    pub async fn recheck(&self, ad_id: &str) -> Result<AdUpdate, AdError> {
        if self.ledger.ad_claim(ad_id).await?.is_none() {
            return Err(AdError::NotFound);
        }
        let seen = self.ask_pi(ad_id).await?;
        let update = self.ledger.record_ad_status(ad_id, seen, now_ms()).await?;
        log_update(&update);
        Ok(update)
    }

    /// Re-check up to `limit` pending or granted claims last checked more than `min_age`
    /// ago, oldest first. Failures of single ads are counted and left for the next pass.
    pub async fn reconcile(
        &self,
        min_age: std::time::Duration,
        limit: i64,
    ) -> Result<ReconcileReport, AdError> {
        let age = i64::try_from(min_age.as_millis()).unwrap_or(i64::MAX);
        let due = self
            .ledger
            .ad_claims_to_recheck(now_ms().saturating_sub(age), limit)
            .await?;
        let mut report = ReconcileReport::default();
        for claim in due {
            report.checked += 1;
            match self.recheck(&claim.ad_id).await {
                Ok(update) if update.changed_from.is_some() => match update.row.status {
                    crate::ledger::AdClaimStatus::Granted => report.granted += 1,
                    crate::ledger::AdClaimStatus::Revoked => report.revoked += 1,
                    crate::ledger::AdClaimStatus::Denied => report.denied += 1,
                    crate::ledger::AdClaimStatus::Pending => {}
                },
                Ok(_) => {}
                Err(AdError::Ledger(e)) => return Err(AdError::Ledger(e)),
                Err(e) => {
                    tracing::warn!(ad_id = %claim.ad_id, error = %e, "ad re-check failed; will retry");
                    report.errors += 1;
                }
            }
        }
        Ok(report)
    }

    async fn ask_pi(&self, ad_id: &str) -> Result<AdObservation, AdError> {
        match self.pi.ad_status(ad_id).await {
            Ok(dto) => Ok(observe(dto.mediator_ack_status.as_ref())),
            Err(e) => match e.root() {
                PiError::AdNotFound => Err(AdError::NotFound),
                _ => Err(AdError::PiUnavailable(e)),
            },
        }
    }
}

fn log_update(update: &AdUpdate) {
    if let Some(from) = update.changed_from {
        tracing::info!(
            ad_id = %update.row.ad_id,
            uid = %update.row.uid,
            from = from.as_str(),
            to = update.row.status.as_str(),
            "ad claim changed"
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::event_type::EventType;
    use crate::ledger::AdClaimStatus as S;
    use crate::ledger::ad_claims::next_ad_status;

    #[test]
    fn statuses_move_only_forward() {
        use AdObservation as O;
        assert_eq!(
            next_ad_status(S::Pending, O::Granted),
            (S::Granted, Some(EventType::AdGranted))
        );
        assert_eq!(next_ad_status(S::Pending, O::Pending), (S::Pending, None));
        assert_eq!(next_ad_status(S::Pending, O::Failed), (S::Denied, None));
        assert_eq!(next_ad_status(S::Pending, O::Revoked), (S::Denied, None));
        assert_eq!(
            next_ad_status(S::Granted, O::Revoked),
            (S::Revoked, Some(EventType::AdRevoked))
        );
        for o in [O::Pending, O::Granted, O::Failed] {
            assert_eq!(next_ad_status(S::Granted, o), (S::Granted, None));
        }
        for o in [O::Pending, O::Granted, O::Failed, O::Revoked] {
            assert_eq!(next_ad_status(S::Denied, o), (S::Denied, None));
            assert_eq!(next_ad_status(S::Revoked, o), (S::Revoked, None));
        }
    }

    #[test]
    fn unknown_pi_statuses_grant_nothing() {
        assert_eq!(
            observe(Some(&MediatorAckStatus::Unknown("weird".into()))),
            AdObservation::Pending
        );
        assert_eq!(observe(None), AdObservation::Pending);
    }

    #[test]
    fn ad_ids_are_checked() {
        assert!(visible_ascii("abc123", MAX_AD_ID_LEN));
        assert!(!visible_ascii("", MAX_AD_ID_LEN));
        assert!(!visible_ascii("a b", MAX_AD_ID_LEN));
        assert!(!visible_ascii(&"a".repeat(201), MAX_AD_ID_LEN));
    }
}
