//! `POST /ads/claim {adId, productId?}`: a signed-in Pioneer claims the reward of a rewarded
//! ad they watched (pi-platform.md §8). The decision is [`AdRewards::claim`]'s: Pi's ad status,
//! the first claimant owns the ad, the reward is recorded once.
//!
//! Answers `{"status", "ad_id"}`: `granted` / `denied` / `revoked` with 200, `pending` with 202
//! (claim again in a few seconds). Another Pioneer's ad is 403, an ad Pi does not know 404,
//! Pi unreachable 503.

use crate::auth::{AuthState, AuthenticatedPioneer};
use crate::error::{ApiError, ErrorBody, FIELDS_SIZE_ADVICE};
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

/// `POST /ads/claim`'s body (`ad_id` / `product_id` are read too).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)] // Describes the body for the OpenAPI document; `claim_body` reads it.
pub struct AdClaimRequest {
    /// The `adId` of the SDK's `AD_REWARDED` result.
    ad_id: String,
    /// What the reward is for, if the app says.
    product_id: Option<String>,
}

/// The state of a claim.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct AdClaimAnswer {
    /// `granted`, `denied`, `revoked` (200) or `pending` (202: claim again in a few seconds).
    #[schema(example = "granted")]
    status: &'static str,
    /// The ad claimed.
    ad_id: String,
}

/// Claim the reward of a rewarded ad the signed-in Pioneer watched.
///
/// Pi's ad status decides; the first claimant owns the ad; the reward is recorded once.
#[utoipa::path(
    post,
    path = "/ads/claim",
    tag = "pioneers",
    operation_id = "claim_ad",
    request_body = AdClaimRequest,
    security(("pioneer_token" = []), ("session_cookie" = [])),
    responses(
        (status = 200, description = "Granted, denied or revoked", body = AdClaimAnswer),
        (status = 202, description = "Pi has not decided yet: claim again in a few seconds", body = AdClaimAnswer),
        (status = 400, description = "Bad body", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Another Pioneer's ad, or a browser request from an origin that is not allowed", body = ErrorBody),
        (status = 404, description = "Pi does not know the ad", body = ErrorBody),
        (status = 413, description = "Body over 64 KiB", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Pi or the ledger unreachable; retry (Retry-After)", body = ErrorBody),
    )
)]
pub(crate) async fn claim(
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
    let body = AdClaimAnswer {
        status: row.status.as_str(),
        ad_id: row.ad_id,
    };
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
