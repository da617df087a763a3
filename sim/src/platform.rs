//! The Platform API v2 routes (`/v2/...`), as `../shared/pi-platform.md` §3 describes them.
//! Each handler checks the server key first, then parses, then changes state in one locked step.

use std::sync::Arc;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Serialize;
use serde_json::value::RawValue;

use crate::amount::parse_stroops;
use crate::shared::Shared;

use crate::error::{ApiError, PaymentRef};
use crate::state::{NewPayment, Payment, PaymentDto};

/// The `/v2` routes (the caller adds `/_sim`, the fallbacks and the fault layer).
pub fn routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/v2/me", get(me))
        .route("/v2/payments", post(create_payment))
        .route(
            "/v2/payments/incomplete_server_payments",
            get(incomplete_server_payments),
        )
        .route("/v2/payments/{id}", get(get_payment))
        .route("/v2/payments/{id}/approve", post(approve))
        .route("/v2/payments/{id}/complete", post(complete))
        .route("/v2/payments/{id}/cancel", post(cancel))
        .route("/v2/ads_network/status/{ad_id}", get(ads_status))
}

/// A payment answer, tagged for the request log.
pub fn payment_response(shared: &Shared, payment: &Payment) -> Response {
    let mut response =
        crate::response::json_response(StatusCode::OK, &payment.dto(&shared.settings));
    response
        .extensions_mut()
        .insert(PaymentRef(payment.identifier.clone()));
    response
}

fn require_key(shared: &Shared, headers: &HeaderMap) -> Result<(), ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Key "))
        .map(str::trim);
    match presented {
        Some(key) if key == shared.settings.api_key => Ok(()),
        _ => Err(ApiError::unauthorized()),
    }
}

#[derive(Serialize)]
struct ValidUntil {
    timestamp: i64,
    iso8601: String,
}

#[derive(Serialize)]
struct Credentials<'a> {
    scopes: &'a [String],
    valid_until: ValidUntil,
}

#[derive(Serialize)]
struct UserDto<'a> {
    uid: &'a str,
    credentials: Credentials<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<&'a str>,
}

/// `{timestamp, iso8601}` as Pi writes `valid_until`.
pub fn valid_until_json(at: chrono::DateTime<chrono::Utc>) -> serde_json::Value {
    serde_json::json!({
        "timestamp": at.timestamp(),
        "iso8601": at.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
    })
}

async fn me(State(shared): State<Arc<Shared>>, headers: HeaderMap) -> Result<Response, ApiError> {
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Send the Pioneer's access token: `Authorization: Bearer <accessToken>`",
            )
        })?;
    let platform = shared.platform();
    let (record, user) = platform.token(token)?;
    let dto = UserDto {
        uid: &user.uid,
        credentials: Credentials {
            scopes: &record.scopes,
            valid_until: ValidUntil {
                timestamp: record.valid_until.timestamp(),
                iso8601: record
                    .valid_until
                    .to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            },
        },
        username: record
            .scopes
            .iter()
            .any(|s| s == "username")
            .then_some(user.username.as_str()),
    };
    Ok(crate::response::json_response(StatusCode::OK, &dto))
}

/// Parses `{uid, amount, memo, metadata}` exactly (amount from its JSON text). Shared by A2U
/// creates and the control API's U2A creates.
pub fn parse_new_payment(fields: &str) -> Result<NewPayment, ApiError> {
    let invalid = |msg: &str| ApiError::bad_request("invalid_arguments", msg);
    let map: std::collections::HashMap<String, &RawValue> = serde_json::from_str(fields)
        .map_err(|_| invalid("The payment must be a JSON object {amount, memo, metadata, uid}"))?;
    for field in ["amount", "memo", "metadata", "uid"] {
        if !map.contains_key(field) {
            return Err(invalid(&format!(
                "Missing field `{field}`; send {{amount, memo, metadata, uid}}"
            )));
        }
    }
    let amount_text = map["amount"].get();
    let amount = amount_text
        .starts_with(|c: char| c.is_ascii_digit() || c == '-')
        .then(|| parse_stroops(amount_text))
        .flatten()
        .filter(|&a| a > 0)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_amount",
                "`amount` must be a JSON number greater than 0 with at most 7 decimals",
            )
        })?;
    let memo: String =
        serde_json::from_str(map["memo"].get()).map_err(|_| invalid("`memo` must be a string"))?;
    let uid: String =
        serde_json::from_str(map["uid"].get()).map_err(|_| invalid("`uid` must be a string"))?;
    if uid.is_empty() {
        return Err(invalid("`uid` must not be empty"));
    }
    let metadata = map["metadata"];
    let is_object = serde_json::from_str::<serde_json::Value>(metadata.get())
        .map(|v| v.is_object())
        .unwrap_or(false);
    if !is_object {
        return Err(ApiError::bad_request(
            "invalid_metadata",
            "`metadata` must be a JSON object",
        ));
    }
    Ok(NewPayment {
        uid,
        amount,
        memo,
        metadata: metadata.to_owned(),
    })
}

async fn create_payment(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    #[derive(serde::Deserialize)]
    struct Body<'a> {
        #[serde(borrow)]
        payment: Option<&'a RawValue>,
    }
    let payment = serde_json::from_slice::<Body>(&body)
        .ok()
        .and_then(|b| b.payment)
        .ok_or_else(|| {
            ApiError::bad_request(
                "invalid_arguments",
                "Send {\"payment\": {amount, memo, metadata, uid}}",
            )
        })?;
    let new = parse_new_payment(payment.get())?;
    let payment = shared.platform().create_a2u(new, &shared.settings)?;
    Ok(payment_response(&shared, &payment))
}

async fn get_payment(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    let payment = shared
        .platform()
        .payment(&id)
        .cloned()
        .ok_or_else(|| ApiError::payment_not_found(&id))?;
    Ok(payment_response(&shared, &payment))
}

async fn approve(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    let payment = shared.platform().approve(&id, &shared.settings)?;
    Ok(payment_response(&shared, &payment))
}

async fn complete(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    let txid = serde_json::from_slice::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v.get("txid").and_then(|t| t.as_str()).map(str::to_owned));
    let lagging = shared.faults().take_verification_lag();
    let payment = shared
        .platform()
        .complete(&id, txid.as_deref(), lagging, &shared.chain)?;
    Ok(payment_response(&shared, &payment))
}

async fn cancel(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    let payment = shared.platform().cancel(&id)?;
    Ok(payment_response(&shared, &payment))
}

#[derive(Serialize)]
struct Incomplete {
    incomplete_server_payments: Vec<PaymentDto>,
}

async fn incomplete_server_payments(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    let list = shared
        .platform()
        .incomplete_server_payments()
        .into_iter()
        .map(|p| p.dto(&shared.settings))
        .collect();
    Ok(crate::response::json_response(
        StatusCode::OK,
        &Incomplete {
            incomplete_server_payments: list,
        },
    ))
}

async fn ads_status(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    Path(ad_id): Path<String>,
) -> Result<Response, ApiError> {
    require_key(&shared, &headers)?;
    let ad = shared.platform().ad(&ad_id).cloned().ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "ad_not_found",
            format!("No rewarded ad {ad_id:?}; the adId comes from the AD_REWARDED result"),
        )
    })?;
    Ok(crate::response::json_response(StatusCode::OK, &ad))
}

/// Unknown paths: 404 `not_found`.
pub async fn not_found() -> Response {
    ApiError::not_found().into_response()
}

/// Known path, wrong method.
pub async fn method_not_allowed() -> Response {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "This path does not accept this HTTP method; see the Platform API v2 reference",
    )
    .into_response()
}
