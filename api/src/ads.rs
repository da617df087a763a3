//! `POST /ads/claim {adId, productId?}`: a signed-in Pioneer claims the reward of a rewarded
//! ad they watched (pi-platform.md §8). The decision is [`AdRewards::claim`]'s: Pi's ad status,
//! the first claimant owns the ad, the reward is recorded once.
//!
//! Answers `{"status", "ad_id"}`: `granted` / `denied` / `revoked` with 200, `pending` with 202
//! (claim again in a few seconds). Another Pioneer's ad is 403, an ad Pi does not know 404,
//! Pi unreachable 503.

use crate::auth::{AuthState, AuthenticatedPioneer};
use crate::error::{ApiError, FIELDS_SIZE_ADVICE};
use crate::extract::{BODY_LIMIT, body_error};
use axum::Json;
use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{FromRef, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use pi_payments_core::ads::{AdError, AdRewards};
use pi_payments_core::ledger::AdClaimStatus;

/// The ad routes, for any router state that gives an [`AuthState`] and an [`AdRewards`].
pub fn routes<S>() -> Router<S>
where
    S: Clone + Send + Sync + 'static,
    AuthState: FromRef<S>,
    AdRewards: FromRef<S>,
{
    Router::new().route("/ads/claim", post(claim))
}

impl From<AdError> for ApiError {
    fn from(err: AdError) -> ApiError {
        match err {
            AdError::InvalidAdId => ApiError::bad_request("invalid_ad_id", err.to_string()),
            AdError::InvalidProductId => {
                ApiError::bad_request("invalid_product_id", err.to_string())
            }
            AdError::NotFound => ApiError::not_found("ad_not_found", err.to_string()),
            AdError::ClaimedByAnother => {
                ApiError::forbidden("ad_claimed_by_another", err.to_string())
            }
            AdError::PiUnavailable(e) => {
                tracing::warn!(error = %e, "could not read an ad's status from Pi");
                ApiError::retry_later(
                    "pi_unavailable",
                    "Pi could not report the ad's status right now; claim again in a few seconds",
                )
            }
            AdError::Ledger(e) => ApiError::ledger_retry_later(&e),
        }
    }
}

/// `{adId, productId?}` (also `ad_id` / `product_id`); other fields are ignored.
fn claim_body(body: &[u8]) -> Result<(String, Option<String>), ApiError> {
    let value: serde_json::Value = serde_json::from_slice(body).map_err(|_| {
        ApiError::bad_request(
            "invalid_json",
            "the body must be JSON such as {\"adId\": \"<adId from AD_REWARDED>\", \"productId\": \"<optional>\"}",
        )
    })?;
    let field = |a: &str, b: &str| value.get(a).or_else(|| value.get(b)).cloned();
    let ad_id = match field("adId", "ad_id") {
        Some(serde_json::Value::String(s)) => s,
        _ => {
            return Err(ApiError::bad_request(
                "missing_ad_id",
                "send {\"adId\": \"<adId from the SDK's AD_REWARDED result>\"}",
            ));
        }
    };
    let product_id = match field("productId", "product_id") {
        None | Some(serde_json::Value::Null) => None,
        Some(serde_json::Value::String(s)) => Some(s),
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_product_id",
                "productId must be a string, or left out",
            ));
        }
    };
    Ok((ad_id, product_id))
}

async fn claim(
    State(rewards): State<AdRewards>,
    who: AuthenticatedPioneer,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let body =
        body.map_err(|e| body_error(&e, ApiError::too_large(BODY_LIMIT, FIELDS_SIZE_ADVICE)))?;
    let (ad_id, product_id) = claim_body(&body)?;
    let row = rewards
        .claim(&ad_id, &who.pioneer.uid, product_id.as_deref())
        .await?;
    let status = match row.status {
        AdClaimStatus::Pending => StatusCode::ACCEPTED,
        _ => StatusCode::OK,
    };
    let body = serde_json::json!({ "status": row.status.as_str(), "ad_id": row.ad_id });
    Ok((status, Json(body)).into_response())
}

#[cfg(test)]
mod tests {
    use crate::ads::*;

    #[test]
    fn bodies() {
        assert_eq!(
            claim_body(br#"{"adId": "a1", "productId": "coins"}"#).unwrap(),
            ("a1".to_string(), Some("coins".to_string()))
        );
        assert_eq!(
            claim_body(br#"{"ad_id": "a1"}"#).unwrap(),
            ("a1".to_string(), None)
        );
        assert_eq!(claim_body(b"{}").unwrap_err().code(), "missing_ad_id");
        assert_eq!(
            claim_body(br#"{"adId": 1}"#).unwrap_err().code(),
            "missing_ad_id"
        );
        assert_eq!(
            claim_body(br#"{"adId": "a", "productId": 3}"#)
                .unwrap_err()
                .code(),
            "invalid_product_id"
        );
        assert_eq!(claim_body(b"x").unwrap_err().code(), "invalid_json");
    }
}
