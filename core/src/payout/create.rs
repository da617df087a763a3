//! The `requested` stage: create the Pi payment for a payout (`POST /v2/payments` with
//! `metadata.payout_id`) and bind it, storing its identifier before anything else. On
//! `ongoing_payment_found` nothing is created blindly: ours is adopted, another payout of ours
//! is stepped first, an unknown one is waited for.

use super::error::PayoutError;
use super::fault::CrashPoint;
use super::outcome::Flow;
use super::processor::PayoutProcessor;
use crate::dto::{CreatePaymentRequest, Direction as PiDirection, PaymentDto};
use crate::ids::Uid;
use crate::ids::{PaymentId, PayoutId};
use crate::ledger::payouts::PAYOUT_ID_METADATA_KEY;
use crate::ledger::{LedgerError, PayoutPatch, PayoutRow, now_ms};
use crate::pi_client::PiError;
use crate::state::{PayoutState, PayoutTransition};

/// A payout ahead that has not moved for this long may have lost its job: a waiter steps it.
const STALE_AHEAD_MS: i64 = 30_000;

impl PayoutProcessor {
    pub(super) async fn create_at_pi(
        &self,
        row: &PayoutRow,
        resolve_others: bool,
    ) -> Result<Flow, PayoutError> {
        let mut metadata = serde_json::Map::new();
        if let serde_json::Value::Object(user) = &row.metadata {
            metadata.extend(user.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        metadata.insert(
            PAYOUT_ID_METADATA_KEY.to_string(),
            serde_json::Value::String(row.id.to_string()),
        );
        let req = CreatePaymentRequest {
            amount: row.amount,
            memo: row.memo.clone(),
            metadata: serde_json::Value::Object(metadata),
            uid: row.uid.clone(),
        };
        match self.pi.create_payment(&req).await {
            Ok(dto) => {
                self.crash_if(CrashPoint::AfterPiCreate)?;
                self.adopt(row, dto).await
            }
            Err(e) => self.create_failed(row, e, resolve_others).await,
        }
    }

    /// Bind the Pi payment `dto` to the payout (its identifier is the first thing stored).
    async fn adopt(&self, row: &PayoutRow, dto: PaymentDto) -> Result<Flow, PayoutError> {
        let pid = dto.identifier.clone();
        if dto.user_uid != row.uid
            || dto.amount != row.amount
            || matches!(dto.direction, Some(PiDirection::UserToApp))
        {
            return self
                .give_up(
                    row,
                    format!(
                        "Pi payment {pid} carries this payout's id but is for {} {} (payout: {} {}): it was not created by this payout; cancel it at Pi",
                        dto.user_uid,
                        dto.amount.to_fixed7(),
                        row.uid,
                        row.amount.to_fixed7()
                    ),
                )
                .await;
        }
        if !dto.is_open() {
            return self
                .give_up(
                    row,
                    format!("Pi payment {pid} of this payout is already closed at Pi (completed or cancelled) but the payout never stored it: check it on Pi and Horizon"),
                )
                .await;
        }
        if let Some(theirs) = &dto.network
            && theirs != self.network.passphrase()
        {
            // Never signed: an envelope for our network paying a payment Pi keeps on another.
            return self
                .give_up(
                    row,
                    format!(
                        "Pi created payment {pid} on {theirs:?} but this app runs on {:?} (PI_NETWORK): nothing was signed; check that PI_API_KEY and PI_NETWORK belong to the same app, then cancel the payment at Pi",
                        self.network.passphrase()
                    ),
                )
                .await;
        }
        let Some(to) = dto.to_address.clone() else {
            return self
                .retry_later(
                    row,
                    "pi_no_to_address",
                    &format!("Pi payment {pid} has no to_address yet"),
                    None,
                )
                .await;
        };
        if let Some(from) = &dto.from_address
            && from != &self.app_address
        {
            return self
                .give_up(
                    row,
                    format!(
                        "Pi expects payment {pid} from wallet {from}, but PI_WALLET_SEED is the key of {}: configure the app wallet's seed of this app",
                        self.app_address
                    ),
                )
                .await;
        }
        let patch = PayoutPatch {
            pi_payment_id: Some(pid.clone()),
            to_address: Some(to),
            from_address: dto.from_address.clone(),
            ..PayoutPatch::default()
        };
        match self
            .ledger
            .apply_payout(&row.id, PayoutTransition::PiCreated, None, 0, patch)
            .await
        {
            Ok(_) => Ok(Flow::Continue),
            Err(LedgerError::InvalidPayoutTransition(_)) => {
                self.close_unbound(row, &pid).await?;
                Ok(Flow::Continue)
            }
            Err(LedgerError::PayoutConflict { detail, .. }) => {
                if self.close_unbound(row, &pid).await? {
                    return Ok(Flow::Continue);
                }
                self.give_up(row, format!("cannot bind Pi payment {pid}: {detail}"))
                    .await
            }
            Err(e) => Err(e.into()),
        }
    }

    /// The payout moved on while Pi created `pid` for it: withdrawn, or bound to another Pi
    /// payment by a step that ran beside this one (a duplicate job whose create reached Pi
    /// after the payout was already paid and completed). `pid` is bound to nothing, so it was
    /// never signed; cancel it so that it does not block the Pioneer's next payout. A failed
    /// cancel is left to the reconciler, which closes such payments too. `false` when the
    /// payout is not in that case.
    async fn close_unbound(&self, row: &PayoutRow, pid: &PaymentId) -> Result<bool, PayoutError> {
        let Some(now) = self.ledger.payout(&row.id).await? else {
            return Ok(false);
        };
        let unbound = match &now.pi_payment_id {
            Some(bound) => bound != pid,
            None => now.state == PayoutState::Cancelled,
        };
        if !unbound {
            return Ok(false);
        }
        tracing::warn!(payout_id = %row.id, pi_payment_id = %pid, state = %now.state, "Pi created a payment for a payout that had moved on; cancelling it (never signed)");
        if let Err(e) = self.cancel_at_pi(row, pid).await {
            tracing::warn!(payout_id = %row.id, "cancelling unbound Pi payment {pid} failed: {e}; the reconciler closes it later");
        }
        Ok(true)
    }

    async fn create_failed(
        &self,
        row: &PayoutRow,
        e: PiError,
        resolve_others: bool,
    ) -> Result<Flow, PayoutError> {
        let uid = &row.uid;
        match e.root() {
            PiError::OngoingPaymentFound { payment } => {
                let open = match payment {
                    Some(p) => Some((**p).clone()),
                    None => match self.open_payment_of(uid).await {
                        Ok(p) => p,
                        Err(e) => {
                            return self
                                .retry_later_on(row, "pi_list_failed", &e)
                                .await;
                        }
                    },
                };
                match open {
                    Some(p) => self.resolve_ongoing(row, p, resolve_others).await,
                    None => {
                        self.retry_later(
                            row,
                            "ongoing_payment_unlisted",
                            &format!("Pi reports an open payment for uid {uid} but does not list it yet"),
                            None,
                        )
                        .await
                    }
                }
            }
            PiError::MissingScope => {
                self.fail(
                    row,
                    format!(
                        "missing_scope: Pioneer {uid} has not granted the wallet_address scope to this app; ask them to sign in again (Pi.authenticate with wallet_address), then request a new payout"
                    ),
                    false,
                    0,
                )
                .await
            }
            PiError::UserNotFound => {
                self.fail(
                    row,
                    format!(
                        "user_not_found: Pi does not know uid {uid} for this app; use the uid /v2/me returned for this app (it changes if the Pioneer revokes the app)"
                    ),
                    false,
                    0,
                )
                .await
            }
            PiError::InvalidAmount { message }
            | PiError::InvalidArguments { message }
            | PiError::InvalidMetadata { message } => {
                let code = e.code().unwrap_or("invalid_arguments").to_string();
                self.fail(
                    row,
                    format!("{code}: Pi refused the payout ({message}); fix it and request a new payout"),
                    false,
                    0,
                )
                .await
            }
            PiError::Unauthorized => {
                self.give_up(row, format!("creating the Pi payment failed: {e}"))
                    .await
            }
            PiError::TooManyPayments | PiError::TooManyCancelledPayments => {
                self.retry_later_on(row, "pi_too_many", &e)
                    .await
            }
            _ if e.is_retryable() => {
                self.retry_later_on(row, "pi_create_failed", &e)
                    .await
            }
            _ => {
                self.give_up(row, format!("creating the Pi payment failed: {e}"))
                    .await
            }
        }
    }

    /// The open A2U payment of `uid` at Pi, if it lists one.
    async fn open_payment_of(&self, uid: &Uid) -> Result<Option<PaymentDto>, PiError> {
        Ok(self
            .pi
            .incomplete_server_payments()
            .await?
            .into_iter()
            .find(|p| &p.user_uid == uid && p.is_open()))
    }

    /// `ongoing_payment_found`: never create blindly. Ours → adopt; another payout of ours →
    /// step it first; unknown → wait, with the reason visible, until someone closes it.
    async fn resolve_ongoing(
        &self,
        row: &PayoutRow,
        open: PaymentDto,
        resolve_others: bool,
    ) -> Result<Flow, PayoutError> {
        let tagged = open
            .metadata
            .get(PAYOUT_ID_METADATA_KEY)
            .and_then(|v| v.as_str())
            .map(str::to_string);
        if tagged.as_deref() == Some(row.id.as_str()) {
            tracing::info!(payout_id = %row.id, pi_payment_id = %open.identifier, "adopting the open Pi payment created for this payout");
            return self.adopt(row, open).await;
        }
        let mut other = self.ledger.payout_by_pi_payment(&open.identifier).await?;
        if other.is_none()
            && let Some(id) = tagged.as_deref().and_then(|t| PayoutId::parse(t).ok())
        {
            other = self.ledger.payout(&id).await?;
        }
        let pid = &open.identifier;
        match other {
            Some(o) if o.id != row.id => {
                let mut other_state = o.state;
                // Step the payout ahead here only when it looks abandoned (its job lost): a
                // moving one has its own job, and every waiter stepping it would be a herd.
                let stale = now_ms().saturating_sub(o.updated_at) > STALE_AHEAD_MS;
                if resolve_others && stale && o.state.is_in_flight() {
                    match self.step_with(&o.id, false).await {
                        Ok(outcome) => {
                            tracing::info!(payout_id = %row.id, other = %o.id, ?outcome, "stepped the payout holding the Pioneer's open Pi payment");
                        }
                        Err(e) => {
                            tracing::warn!(payout_id = %row.id, other = %o.id, "stepping the payout ahead failed: {e}");
                        }
                    }
                    if let Some(now) = self.ledger.payout(&o.id).await? {
                        other_state = now.state;
                    }
                }
                let detail = format!(
                    "uid {} has an open Pi payment {pid} of payout {} ({other_state}); this payout is created when that one finishes",
                    row.uid, o.id
                );
                if other_state.is_terminal() {
                    // Just finished: Pi closes its payment at once; a short, uncounted wait.
                    return self
                        .wait_behind(row, "waiting_for_payout", &detail, self.config.base_backoff)
                        .await;
                }
                // Ahead of us (moving, or about to bind the payment Pi just created for it):
                // wait, uncounted, until it settles and wakes this payout; the long fallback
                // covers a wake lost in a crash.
                self.ledger.block_payout_behind(&row.id, &o.id).await?;
                let settled_meanwhile = self
                    .ledger
                    .payout(&o.id)
                    .await?
                    .is_some_and(|now| now.state.is_terminal());
                let delay = if settled_meanwhile {
                    self.config.base_backoff
                } else {
                    self.config.max_backoff
                };
                self.wait_behind(row, "waiting_for_payout", &detail, delay)
                    .await
            }
            _ => {
                self.retry_later(
                    row,
                    "blocked_by_unknown_payment",
                    &format!(
                        "uid {} has an open Pi payment {pid} that pi-payments did not create; it is never paid blindly: finish or cancel it (see incomplete_server_payments), then this payout proceeds",
                        row.uid
                    ),
                    None,
                )
                .await
            }
        }
    }
}
