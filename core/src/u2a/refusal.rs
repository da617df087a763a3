//! Refusing a U2A payment: the checks that decide it ([`approval_verdict`]: which network, who
//! pays, and whether the order takes exactly this amount) and the refusal itself ([`refuse`]:
//! cancel at Pi, then record `refused` with the reason).

use super::deps::{U2aDeps, patch_from};
use super::outcome::{StepError, StepResult, pi_failure};
use crate::dto::PaymentDto;
use crate::ids::{OrderId, PaymentId, Uid};
use crate::jobs::ApproveCredential;
use crate::ledger::OrderState;
use crate::pi_client::PiError;
use crate::secret::AccessToken;
use crate::state::Transition;

/// What the approve step may do with a payment.
#[derive(Debug)]
pub(crate) enum Verdict {
    /// Every check passed.
    Approve,
    /// Refuse it, for this reason.
    Refuse(String),
    /// Nothing says who pays (a job without its callback's credential): wait for the Pi SDK's
    /// next approve callback, which brings the token again.
    AwaitCallback,
}

/// The refusal a Pioneer mismatch gets, whichever credential showed it.
const OTHER_PIONEER: &str = "the payment belongs to a different Pioneer than the access token";

/// Who a callback's credential says is paying, checked before Pi is asked about the payment.
#[derive(Debug)]
pub(crate) enum Who {
    /// A Pioneer Pi vouched for: by `/me` for a token, at sign-in for a session.
    Pioneer { uid: Uid, via_session: bool },
    /// The credential proves nothing (a token Pi refused, or none at all): approval refuses
    /// the payment for this reason.
    Refused(String),
    /// A job without a credential (the sweeper's): nobody said.
    Unknown,
}

impl Who {
    /// Whether Pi vouched for a Pioneer (the work may use the whole Pi budget).
    pub(crate) fn is_verified(&self) -> bool {
        matches!(self, Who::Pioneer { .. })
    }

    /// Whether this is `uid`, as Pi vouched.
    pub(crate) fn is(&self, uid: &Uid) -> bool {
        matches!(self, Who::Pioneer { uid: who, .. } if who == uid)
    }
}

/// Resolve `credential` (what the callback said about who sent it; `None` for a job that
/// carries none, then a token an older version stored, if any, is used). A token costs one
/// `GET /v2/me`, unless Pi refused it lately (the client's negative cache answers).
pub(crate) async fn who_sent(
    deps: &U2aDeps,
    id: &PaymentId,
    credential: Option<&ApproveCredential>,
) -> Result<Who, StepError> {
    match credential {
        Some(ApproveCredential::AccessToken(token)) => token_owner(deps, token).await,
        Some(ApproveCredential::Session(uid)) => Ok(Who::Pioneer {
            uid: uid.clone(),
            via_session: true,
        }),
        Some(ApproveCredential::Missing) => Ok(Who::Refused(
            "no access token came with the approve callback: send accessToken (or an Authorization: Bearer header) so the Pioneer can be verified".into(),
        )),
        None => match deps.ledger.access_token(id).await? {
            Some(token) => token_owner(deps, &token).await,
            None => Ok(Who::Unknown),
        },
    }
}

/// Whose `token` is (`GET /v2/me`).
async fn token_owner(deps: &U2aDeps, token: &AccessToken) -> Result<Who, StepError> {
    match deps.pi.me(token).await {
        Ok(me) => Ok(Who::Pioneer {
            uid: me.uid,
            via_session: false,
        }),
        Err(e) => match e.root() {
            PiError::InvalidToken | PiError::Unauthorized => Ok(Who::Refused(
                "the access token is invalid or expired (Pi answered 401 on /me)".into(),
            )),
            _ => Err(pi_failure("reading the Pioneer at Pi (/me)", e)),
        },
    }
}

/// Whether this payment may be approved, `who` being what the approve callback's credential
/// showed ([`who_sent`]).
pub(crate) async fn approval_verdict(
    deps: &U2aDeps,
    id: &PaymentId,
    dto: &PaymentDto,
    who: &Who,
) -> Result<Verdict, StepError> {
    // Which network: Pi's own word on the payment (when it gives one) must be ours.
    if let Some(theirs) = &dto.network
        && *theirs != deps.network
    {
        return Ok(Verdict::Refuse(format!(
            "the payment is on {theirs:?} and this app runs on {:?} (PI_NETWORK): it is never approved",
            deps.network
        )));
    }
    // Who is paying: the credential's Pioneer must be the payment's.
    let refusal = match who {
        Who::Pioneer { uid, via_session } => (*uid != dto.user_uid).then(|| {
            if *via_session {
                "the payment belongs to a different Pioneer than the signed-in session".to_string()
            } else {
                OTHER_PIONEER.to_string()
            }
        }),
        Who::Refused(reason) => Some(reason.clone()),
        Who::Unknown => return Ok(Verdict::AwaitCallback),
    };
    if let Some(reason) = refusal {
        return Ok(Verdict::Refuse(reason));
    }
    Ok(match order_refusal(deps, id, dto).await? {
        Some(reason) => Verdict::Refuse(reason),
        None => Verdict::Approve,
    })
}

/// What is being paid: the order's price, exactly (or no order, unless `REQUIRE_ORDER`).
async fn order_refusal(
    deps: &U2aDeps,
    id: &PaymentId,
    dto: &PaymentDto,
) -> Result<Option<String>, StepError> {
    let raw = match dto.metadata.get("orderId") {
        None | Some(serde_json::Value::Null) => {
            return Ok(deps.require_order.then(|| {
                "REQUIRE_ORDER is on and the payment's metadata has no orderId".to_string()
            }));
        }
        Some(raw) => raw,
    };
    let Some(order_id) = raw.as_str().and_then(|s| OrderId::parse(s).ok()) else {
        return Ok(Some(
            "the payment's metadata.orderId is not a valid order id".into(),
        ));
    };
    let Some(order) = deps.ledger.order(&order_id).await? else {
        return Ok(Some(format!("order {order_id} does not exist")));
    };
    if order.state != OrderState::Open {
        return Ok(Some(format!(
            "order {order_id} is {} and cannot be paid",
            order.state.as_str()
        )));
    }
    if let Some(other) = &order.payment_id
        && other != id
    {
        return Ok(Some(format!(
            "order {order_id} is already being paid by another payment"
        )));
    }
    if order.amount != dto.amount {
        return Ok(Some(format!(
            "amount {} differs from the order's price {}",
            dto.amount, order.amount
        )));
    }
    Ok(None)
}

/// Cancel the payment at Pi and record it as refused, with the reason.
pub(crate) async fn refuse(
    deps: &U2aDeps,
    id: &PaymentId,
    dto: &PaymentDto,
    reason: String,
    attempt: usize,
) -> StepResult {
    tracing::warn!(%reason, "refusing the payment");
    match deps.pi.cancel(id).await {
        Ok(_) => {}
        Err(e) => match e.root() {
            // Cancelled already (our earlier attempt, or the Pioneer): the outcome is the same.
            PiError::CancelledPayment => {}
            PiError::AlreadyCompleted { .. } | PiError::PaymentTxPresent => {
                return Err(StepError::Attention(format!(
                    "refused ({reason}) but Pi would not cancel it: {e}"
                )));
            }
            _ => return Err(pi_failure("cancelling at Pi", e)),
        },
    }
    let mut patch = patch_from(dto);
    patch.order_id = None;
    deps.apply(id, Transition::Refused { reason }, attempt, patch)
        .await?;
    Ok(())
}
