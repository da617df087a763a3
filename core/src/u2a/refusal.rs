//! Refusing a U2A payment: the checks that decide it ([`approval_verdict`]: which network, who
//! pays, and whether the order takes exactly this amount) and the refusal itself ([`refuse`]:
//! cancel at Pi, then record `refused` with the reason).

use super::deps::{U2aDeps, patch_from};
use super::outcome::{StepError, StepResult, pi_failure};
use crate::dto::PaymentDto;
use crate::ids::{OrderId, PaymentId};
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

/// Whether this payment may be approved. `credential` is what the approve callback said about
/// who pays; `None` for a job that carries none (then a token an older version stored, if
/// any, is used).
pub(crate) async fn approval_verdict(
    deps: &U2aDeps,
    id: &PaymentId,
    dto: &PaymentDto,
    credential: Option<&ApproveCredential>,
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
    let refusal = match credential {
        Some(ApproveCredential::AccessToken(token)) => token_refusal(deps, token, dto).await?,
        // A signed-in session: its uid was verified with Pi at sign-in.
        Some(ApproveCredential::Session(uid)) => (*uid != dto.user_uid).then(|| {
            "the payment belongs to a different Pioneer than the signed-in session".to_string()
        }),
        Some(ApproveCredential::Missing) => Some(
            "no access token came with the approve callback: send accessToken (or an Authorization: Bearer header) so the Pioneer can be verified".into(),
        ),
        None => match deps.ledger.access_token(id).await? {
            Some(token) => token_refusal(deps, &token, dto).await?,
            None => return Ok(Verdict::AwaitCallback),
        },
    };
    if let Some(reason) = refusal {
        return Ok(Verdict::Refuse(reason));
    }
    Ok(match order_refusal(deps, id, dto).await? {
        Some(reason) => Verdict::Refuse(reason),
        None => Verdict::Approve,
    })
}

/// Why `token` does not show the payment's Pioneer (`GET /v2/me`), or `None` when it does.
async fn token_refusal(
    deps: &U2aDeps,
    token: &AccessToken,
    dto: &PaymentDto,
) -> Result<Option<String>, StepError> {
    let me = match deps.pi.me(token).await {
        Ok(me) => me,
        Err(e) => match e.root() {
            PiError::InvalidToken | PiError::Unauthorized => {
                return Ok(Some(
                    "the access token is invalid or expired (Pi answered 401 on /me)".into(),
                ));
            }
            _ => return Err(pi_failure("reading the Pioneer at Pi (/me)", e)),
        },
    };
    Ok((me.uid != dto.user_uid).then(|| OTHER_PIONEER.to_string()))
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
