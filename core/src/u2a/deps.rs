//! [`U2aDeps`]: what every U2A step reads and writes through, and the reads and writes the
//! steps share (the ledger row, a transition that may have been made already, Pi's view).

use super::outcome::{StepError, pi_failure};
use crate::dto::PaymentDto;
use crate::horizon::HorizonClient;
use crate::ids::PaymentId;
use crate::ledger::{
    Applied, Direction, Ledger, LedgerError, PaymentPatch, PaymentRow, Swept, now_ms,
};
use crate::pi_client::{PiClient, PiError};
use crate::state::Transition;
use std::time::Duration;

/// The ledger, the clients and the app's rules the U2A steps work with.
#[derive(Clone)]
pub struct U2aDeps {
    /// The payments ledger: every step's decision ends as a transition in it.
    pub ledger: Ledger,
    /// The Pi Platform client (it holds the one rate limiter every Pi call goes through).
    pub pi: PiClient,
    /// Horizon, to verify a payment's transaction on chain before completing it.
    pub horizon: HorizonClient,
    /// The app wallet's public key (`G…`): where U2A payments must go.
    pub app_wallet: String,
    /// `PI_NETWORK` (the passphrase): a payment whose DTO names another network is refused.
    pub network: String,
    /// `REQUIRE_ORDER`: refuse payments whose metadata carries no `orderId`.
    pub require_order: bool,
    /// `ANONYMOUS_CANCEL_GRACE`: how long after approval an anonymous incomplete callback
    /// (no token, no session) may have an approved payment without a transaction cancelled.
    /// Its own Pioneer may at once.
    pub anonymous_cancel_grace: Duration,
}

/// `ANONYMOUS_CANCEL_GRACE`'s default: 5 minutes (as `ABANDON_AFTER`), far longer than a Pioneer takes to sign,
/// short enough that a stuck payment does not block the Pioneer for long.
pub const DEFAULT_ANONYMOUS_CANCEL_GRACE: Duration = Duration::from_secs(300);

impl std::fmt::Debug for U2aDeps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("U2aDeps")
            .field("pi", &self.pi)
            .field("app_wallet", &self.app_wallet)
            .field("require_order", &self.require_order)
            .field("anonymous_cancel_grace", &self.anonymous_cancel_grace)
            .finish_non_exhaustive()
    }
}

impl U2aDeps {
    /// Load the ledger row of a U2A payment; `None` (with a log line) if no callback ever
    /// recorded it, if Pi does not know it (answered 404 before), or if it is one of our A2U
    /// payouts (a U2A step must never touch those,
    /// e.g. cancel them because someone sent a payout's id to the approve callback).
    pub(crate) async fn load(&self, id: &PaymentId) -> Result<Option<PaymentRow>, StepError> {
        let row = self.ledger.payment(id).await?;
        match &row {
            None => tracing::warn!("job for a payment the ledger does not know; dropping it"),
            Some(r) if r.direction != Direction::UserToApp => {
                tracing::warn!("U2A job for an app-to-user payment; ignoring it");
                return Ok(None);
            }
            Some(r) if !r.state.is_terminal() && self.ledger.is_unknown_at_pi(id).await? => {
                // Pi answered 404 for it once: that was its one call.
                tracing::debug!("job for a payment Pi does not know; dropping it");
                return Ok(None);
            }
            Some(_) => {}
        }
        Ok(row)
    }

    /// Apply a transition; a transition the payment has moved past is not an error (another
    /// run of this job, or another job, got there first).
    pub(crate) async fn apply(
        &self,
        id: &PaymentId,
        transition: Transition,
        attempt: usize,
        patch: PaymentPatch,
    ) -> Result<Option<Applied>, StepError> {
        let detail = transition.reason().map(str::to_string);
        match self
            .ledger
            .apply(id, transition, detail.as_deref(), attempt as i64, patch)
            .await
        {
            Ok(applied) => Ok(Some(applied)),
            Err(LedgerError::InvalidTransition(e)) => {
                tracing::info!(error = %e, "payment moved on; nothing to record");
                Ok(None)
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Record that Pi shows the payment cancelled (`reason` says by whom), with Pi's facts.
    pub(crate) async fn record_cancelled(
        &self,
        id: &PaymentId,
        reason: String,
        attempt: usize,
        patch: PaymentPatch,
    ) -> Result<(), StepError> {
        self.apply(id, Transition::CancelledAtPi { reason }, attempt, patch)
            .await?;
        Ok(())
    }

    /// The payment as Pi shows it now, unless Pi shows it cancelled: then that is recorded
    /// (with Pi's facts) and `None` says the step has nothing left to do. `None` too when Pi
    /// does not know the payment (see [`U2aDeps::read_known_at_pi`]).
    pub(crate) async fn read_open_at_pi(
        &self,
        id: &PaymentId,
        attempt: usize,
    ) -> Result<Option<PaymentDto>, StepError> {
        let Some(dto) = self
            .read_known_at_pi(id, attempt, "reading the payment at Pi")
            .await?
        else {
            return Ok(None);
        };
        match cancelled_reason(&dto) {
            Some(reason) => {
                self.record_cancelled(id, reason, attempt, patch_from(&dto))
                    .await?;
                Ok(None)
            }
            None => Ok(Some(dto)),
        }
    }

    /// The payment as Pi shows it now, or `None` when Pi answers 404 `payment_not_found`: the
    /// id is then remembered as unknown (no further call, no `needs_attention`).
    pub(crate) async fn read_known_at_pi(
        &self,
        id: &PaymentId,
        attempt: usize,
        what: &str,
    ) -> Result<Option<PaymentDto>, StepError> {
        match self.pi.get_payment(id).await {
            Ok(dto) => Ok(Some(dto)),
            Err(e) if matches!(e.root(), PiError::PaymentNotFound) => {
                tracing::info!("Pi does not know this payment; remembering the id");
                self.ledger.mark_unknown_at_pi(id, attempt as i64).await?;
                Ok(None)
            }
            Err(e) => Err(pi_failure(what, e)),
        }
    }

    /// Work nobody vouched for (no verified Pioneer, and the ledger never saw the payment
    /// approved) may use only its share of the Pi budget ([`PiClient::unverified_permit`]).
    /// `true`: go ahead. `false`: the share is spent; the payment is held off until a permit
    /// is free and the sweeper brings it back, behind the rest, while this job ends at once
    /// (it holds no worker slot while it waits).
    pub(crate) async fn unverified_permit(&self, id: &PaymentId) -> Result<bool, StepError> {
        let Err(wait) = self.pi.unverified_permit() else {
            return Ok(true);
        };
        tracing::debug!(
            wait_ms = wait.as_millis() as u64,
            "unverified share of the Pi budget spent; deferring"
        );
        let wait_ms = i64::try_from(wait.as_millis()).unwrap_or(i64::MAX);
        let until = now_ms().saturating_add(wait_ms.max(1_000));
        self.ledger
            .throttled(Swept::Payment, id.as_str(), until)
            .await?;
        Ok(false)
    }

    /// The payment as Pi shows it now; a failure is classified for `what` the step was doing.
    pub(crate) async fn read_at_pi(
        &self,
        id: &PaymentId,
        what: &str,
    ) -> Result<PaymentDto, StepError> {
        self.pi
            .get_payment(id)
            .await
            .map_err(|e| pi_failure(what, e))
    }
}

/// Facts read from Pi's DTO, stored with the transition.
pub(crate) fn patch_from(dto: &PaymentDto) -> PaymentPatch {
    PaymentPatch {
        uid: Some(dto.user_uid.clone()),
        amount: Some(dto.amount),
        memo: Some(dto.memo.clone()),
        metadata: Some(dto.metadata.clone()),
        ..PaymentPatch::default()
    }
}

/// Why Pi shows the payment cancelled, or `None` if it does not.
pub(crate) fn cancelled_reason(dto: &PaymentDto) -> Option<String> {
    if dto.status.user_cancelled {
        Some("cancelled by the Pioneer (Pi shows user_cancelled)".to_string())
    } else if dto.status.cancelled {
        Some("cancelled at Pi (Pi shows cancelled)".to_string())
    } else {
        None
    }
}
