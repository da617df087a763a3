//! `/demo/sim/*`: the few simulator calls the demo's `window.Pi` stand-in needs, so that the
//! page talks to one origin. They stand for what the Pi Browser and the Pioneer's wallet do in
//! real life: sign a Pioneer in, start a U2A payment, watch its status, sign and submit its
//! transaction, and play a rewarded ad.
//!
//! Every call but sign-in names its Pioneer with the simulated access token
//! (`Authorization: Bearer`), checked by pi-sim's `GET /v2/me`, and touches only that
//! Pioneer's payments: the page cannot see or sign anybody else's. The server API key stays
//! here (status reads use it, as Pi's own SDK reads with the Pioneer's session). The
//! simulator's answers (status and JSON body, its `{error, error_message}` shape included)
//! are passed on as they are; the writes count against `CLIENT_RATE_LIMIT`.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use pi_payments_api::ApiError;
use pi_payments_api::ClientLimiter;
use pi_payments_api::extract::{JsonBody, bearer_from_headers};
use serde_json::{Value, json};
use std::time::Duration;

/// How long one simulator call may take (a submission waits for the simulated ledger close).
const SIM_TIMEOUT: Duration = Duration::from_secs(30);

/// The in-process simulator's Platform listener, as the demo proxy reaches it.
#[derive(Clone)]
pub struct SimProxy {
    http: reqwest::Client,
    platform_url: String,
    api_key: String,
}

impl std::fmt::Debug for SimProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimProxy")
            .field("platform_url", &self.platform_url)
            .finish_non_exhaustive()
    }
}

impl SimProxy {
    /// A proxy to `sim` (its Platform URL and server API key).
    pub fn new(sim: &pi_sim::RunningSim) -> anyhow::Result<SimProxy> {
        let http = reqwest::Client::builder()
            .timeout(SIM_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("building the demo's HTTP client failed: {e}"))?;
        Ok(SimProxy {
            http,
            platform_url: sim.platform_url.trim_end_matches('/').to_string(),
            api_key: sim.api_key.clone(),
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.platform_url)
    }

    /// Send `request` to the simulator; its status and JSON body as they are.
    async fn send(
        &self,
        request: reqwest::RequestBuilder,
    ) -> Result<(StatusCode, Bytes), ApiError> {
        let answer = request.send().await.map_err(|e| unreachable_sim(&e))?;
        let status =
            StatusCode::from_u16(answer.status().as_u16()).unwrap_or(StatusCode::BAD_GATEWAY);
        let body = answer.bytes().await.map_err(|e| unreachable_sim(&e))?;
        Ok((status, body))
    }

    /// The simulator's answer, passed on.
    async fn forward(&self, request: reqwest::RequestBuilder) -> Result<Response, ApiError> {
        let (status, body) = self.send(request).await?;
        Ok(json_response(status, body))
    }

    /// A successful answer's JSON (a failed one is passed on as the error response).
    async fn json(&self, request: reqwest::RequestBuilder) -> Result<Value, Response> {
        let (status, body) = self
            .send(request)
            .await
            .map_err(IntoResponse::into_response)?;
        if !status.is_success() {
            return Err(json_response(status, body));
        }
        serde_json::from_slice(&body).map_err(|_| {
            ApiError::unavailable(
                "simulator_answer_unreadable",
                "the built-in simulator answered something that is not JSON; restart `pi-payments serve`",
            )
            .into_response()
        })
    }

    /// The uid of the request's simulated access token (pi-sim's `GET /v2/me`).
    async fn pioneer(&self, headers: &HeaderMap) -> Result<String, Response> {
        let token = bearer_from_headers(headers)
            .map_err(IntoResponse::into_response)?
            .ok_or_else(|| {
                ApiError::unauthorized(
                    "not_authenticated",
                    "call Pi.authenticate() first: the stand-in sends its access token as `Authorization: Bearer`",
                )
                .into_response()
            })?;
        let me = self
            .http
            .get(self.url("/v2/me"))
            .bearer_auth(token.expose());
        let (status, body) = self.send(me).await.map_err(IntoResponse::into_response)?;
        if status == StatusCode::UNAUTHORIZED {
            return Err(ApiError::unauthorized(
                "invalid_token",
                "the simulated access token is not valid (the simulator starts empty with every `serve`): reload the page to authenticate again",
            )
            .into_response());
        }
        if !status.is_success() {
            return Err(json_response(status, body));
        }
        serde_json::from_slice::<Value>(&body)
            .ok()
            .and_then(|user| user.get("uid").and_then(Value::as_str).map(str::to_string))
            .ok_or_else(|| {
                ApiError::unavailable(
                    "simulator_answer_unreadable",
                    "pi-sim's /v2/me answered without a uid; restart `pi-payments serve`",
                )
                .into_response()
            })
    }

    /// Pi's DTO of payment `id` when it is the Pioneer `uid`'s; 404 otherwise.
    async fn own_payment(&self, uid: &str, id: &str) -> Result<Value, Response> {
        let read = self
            .http
            .get(self.url(&format!("/v2/payments/{id}")))
            .header(header::AUTHORIZATION, format!("Key {}", self.api_key));
        let payment = self.json(read).await?;
        if payment.get("user_uid").and_then(Value::as_str) != Some(uid) {
            return Err(payment_not_found(id));
        }
        Ok(payment)
    }
}

fn unreachable_sim(err: &reqwest::Error) -> ApiError {
    tracing::warn!(error = %err, "the demo could not reach the built-in simulator");
    ApiError::unavailable(
        "simulator_unreachable",
        "the built-in Pi simulator did not answer; retry, or restart `pi-payments serve`",
    )
}

fn json_response(status: StatusCode, body: Bytes) -> Response {
    let mut response = (status, body).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn payment_not_found(id: &str) -> Response {
    ApiError::not_found(
        "payment_not_found",
        format!("no payment {id} of this Pioneer at the simulator"),
    )
    .into_response()
}

/// A Pi payment id as the simulator makes them (letters and digits), so that it can go into
/// a URL path as is.
fn checked_payment_id(id: &str) -> Result<&str, ApiError> {
    if (1..=64).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_alphanumeric()) {
        Ok(id)
    } else {
        Err(ApiError::bad_request(
            "invalid_payment_id",
            "a Pi payment id is letters and digits",
        ))
    }
}

/// A demo Pioneer's uid or username: 1 to 64 letters, digits, `-` or `_`.
fn checked_name(value: Option<&Value>, field: &str) -> Result<Option<String>, ApiError> {
    match value {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s))
            if (1..=64).contains(&s.len())
                && s.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_')) =>
        {
            Ok(Some(s.clone()))
        }
        Some(_) => Err(ApiError::bad_request(
            "invalid_arguments",
            format!("{field} must be 1 to 64 letters, digits, '-' or '_'"),
        )),
    }
}

/// The proxy's routes (relative to `/demo`).
pub fn routes(proxy: SimProxy, limiter: Option<ClientLimiter>) -> Router {
    let writes = Router::new()
        .route("/sim/authenticate", post(authenticate))
        .route("/sim/payments", post(create_payment))
        .route("/sim/payments/{id}/submit", post(submit))
        .route("/sim/payments/{id}/user_cancel", post(user_cancel))
        .route("/sim/ads", post(play_ad));
    let writes = match limiter {
        Some(limiter) => limiter.protect(writes),
        None => writes,
    };
    // Status reads are polled while a payment is in flight: cheap, so not limited.
    let reads = Router::new()
        .route("/sim/incomplete", get(incomplete))
        .route("/sim/payments/{id}", get(show_payment));
    writes.merge(reads).with_state(proxy)
}

/// `POST /demo/sim/authenticate {uid, username?, scopes?}` → `{access_token, uid, username,
/// valid_until}`: the Pioneer (made if new, with a funded wallet) and a fresh access token.
async fn authenticate(
    State(proxy): State<SimProxy>,
    JsonBody(body): JsonBody,
) -> Result<Response, Response> {
    let uid = checked_name(body.get("uid"), "uid")
        .map_err(IntoResponse::into_response)?
        .ok_or_else(|| {
            ApiError::bad_request("invalid_arguments", "send {\"uid\": \"demo-pioneer-1\"}")
                .into_response()
        })?;
    let username =
        checked_name(body.get("username"), "username").map_err(IntoResponse::into_response)?;
    let scopes = match body.get("scopes") {
        Some(Value::Array(list)) if list.iter().all(Value::is_string) && list.len() <= 8 => {
            Some(list.clone())
        }
        None | Some(Value::Null) => None,
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_arguments",
                "scopes must be a list of names, e.g. [\"username\", \"payments\"]",
            )
            .into_response());
        }
    };
    let request = proxy
        .http
        .post(proxy.url("/_sim/tokens"))
        .json(&json!({ "uid": uid, "username": username, "scopes": scopes }));
    proxy
        .forward(request)
        .await
        .map_err(IntoResponse::into_response)
}

/// `GET /demo/sim/incomplete` → `{"payment": PaymentDTO | null}`: the Pioneer's U2A payment
/// Pi would hand to `onIncompletePaymentFound` (approved or signed, neither completed nor
/// cancelled), the latest if several.
async fn incomplete(
    State(proxy): State<SimProxy>,
    headers: HeaderMap,
) -> Result<Response, Response> {
    let uid = proxy.pioneer(&headers).await?;
    let all = proxy
        .json(proxy.http.get(proxy.url("/_sim/payments")))
        .await?;
    let flag = |p: &Value, name: &str| p["status"][name].as_bool().unwrap_or(false);
    let found = all["payments"]
        .as_array()
        .into_iter()
        .flatten()
        .rfind(|p| {
            p["user_uid"].as_str() == Some(uid.as_str())
                && p["direction"].as_str() == Some("user_to_app")
                && !flag(p, "developer_completed")
                && !flag(p, "cancelled")
                && !flag(p, "user_cancelled")
                && (flag(p, "developer_approved") || !p["transaction"].is_null())
        })
        .cloned();
    Ok(axum::Json(json!({ "payment": found })).into_response())
}

/// `POST /demo/sim/payments {amount, memo, metadata}` → PaymentDTO: what the Pi Browser does
/// for `Pi.createPayment`, for the token's Pioneer.
async fn create_payment(
    State(proxy): State<SimProxy>,
    headers: HeaderMap,
    JsonBody(body): JsonBody,
) -> Result<Response, Response> {
    let uid = proxy.pioneer(&headers).await?;
    let Some(fields) = body.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_arguments",
            "send {\"amount\": 1.5, \"memo\": \"…\", \"metadata\": {…}}",
        )
        .into_response());
    };
    let payment = json!({
        "uid": uid,
        "amount": fields.get("amount").cloned().unwrap_or(Value::Null),
        "memo": fields.get("memo").cloned().unwrap_or_else(|| json!("")),
        "metadata": fields.get("metadata").cloned().unwrap_or_else(|| json!({})),
    });
    let request = proxy.http.post(proxy.url("/_sim/u2a")).json(&payment);
    proxy
        .forward(request)
        .await
        .map_err(IntoResponse::into_response)
}

/// `GET /demo/sim/payments/{id}` → PaymentDTO, for the Pioneer who pays it.
async fn show_payment(
    State(proxy): State<SimProxy>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    let id = checked_payment_id(&id).map_err(IntoResponse::into_response)?;
    let uid = proxy.pioneer(&headers).await?;
    let payment = proxy.own_payment(&uid, id).await?;
    Ok(axum::Json(payment).into_response())
}

/// `POST /demo/sim/payments/{id}/submit` → `{txid, payment}`: the Pioneer's wallet signs the
/// payment's transaction and submits it (pi-sim refuses before the app approved it).
async fn submit(
    State(proxy): State<SimProxy>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    wallet_action(&proxy, &headers, &id, "submit").await
}

/// `POST /demo/sim/payments/{id}/user_cancel` → PaymentDTO: the Pioneer closes the payment
/// dialog without paying.
async fn user_cancel(
    State(proxy): State<SimProxy>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, Response> {
    wallet_action(&proxy, &headers, &id, "user_cancel").await
}

async fn wallet_action(
    proxy: &SimProxy,
    headers: &HeaderMap,
    id: &str,
    action: &str,
) -> Result<Response, Response> {
    let id = checked_payment_id(id).map_err(IntoResponse::into_response)?;
    let uid = proxy.pioneer(headers).await?;
    proxy.own_payment(&uid, id).await?;
    let request = proxy
        .http
        .post(proxy.url(&format!("/_sim/u2a/{id}/{action}")))
        .json(&json!({}));
    proxy
        .forward(request)
        .await
        .map_err(IntoResponse::into_response)
}

/// `POST /demo/sim/ads` → `{identifier, mediator_ack_status: "granted", …}`: a rewarded ad the
/// signed-in Pioneer watched to the end, as Pi's ad network reports it.
async fn play_ad(State(proxy): State<SimProxy>, headers: HeaderMap) -> Result<Response, Response> {
    proxy.pioneer(&headers).await?;
    let request = proxy
        .http
        .post(proxy.url("/_sim/ads"))
        .json(&json!({ "status": "granted" }));
    proxy
        .forward(request)
        .await
        .map_err(IntoResponse::into_response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_names_are_checked_before_they_reach_a_url() {
        assert!(checked_payment_id("abcDEF123").is_ok());
        for bad in ["", "../_sim/reset", "a/b", "a?x=1", &"a".repeat(65)] {
            assert!(checked_payment_id(bad).is_err(), "{bad}");
        }
        assert_eq!(
            checked_name(Some(&json!("demo-pioneer_1")), "uid").ok(),
            Some(Some("demo-pioneer_1".to_string()))
        );
        assert!(checked_name(Some(&json!("a b")), "uid").is_err());
        assert!(checked_name(Some(&json!(5)), "uid").is_err());
        assert_eq!(checked_name(None, "uid").ok(), Some(None));
    }
}
