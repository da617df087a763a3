//! The control API under `/_sim` (Platform listener): what the Pioneer, the wallet and the test
//! harness do in real life (users, tokens, U2A payments and their submission, ads), plus the
//! simulator's own knobs and reports (faults, log, audit, payments, reset). Never faulted.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use axum::routing::{get, post};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use serde_json::value::RawValue;

use crate::amount::parse_stroops;
use crate::audit::audit;
use crate::chain::records::SubmitOutcome;
use crate::shared::Shared;

use crate::error::ApiError;
use crate::faults::FaultUpdate;
use crate::platform::{parse_new_payment, payment_response, valid_until_json};
use crate::state::{PaymentDto, random_alphanumeric};

/// How long a timed-out submission is watched for its late landing before giving up.
const LATE_LINK_WINDOW: Duration = Duration::from_secs(600);

/// The `/_sim` routes.
pub fn routes() -> Router<Arc<Shared>> {
    pioneer_routes().merge(simulator_routes())
}

/// What Pioneers, their wallets and the ad network do in real life.
fn pioneer_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/users", get(list_users).post(create_user))
        .route("/_sim/tokens", post(create_token))
        .route("/_sim/u2a", post(create_u2a))
        .route("/_sim/u2a/{id}/submit", post(submit_u2a))
        .route("/_sim/u2a/{id}/user_cancel", post(user_cancel))
        .route("/_sim/ads", post(set_ad))
}

/// The simulator's own state, knobs and reports.
fn simulator_routes() -> Router<Arc<Shared>> {
    Router::new()
        .route("/_sim/info", get(info))
        .route("/_sim/faults", get(get_faults).post(update_faults))
        .route("/_sim/log", get(get_log))
        .route("/_sim/audit", get(get_audit))
        .route("/_sim/payments", get(list_payments))
        .route("/_sim/reset", post(reset))
}

/// Parses a JSON body; an empty body is `{}`.
fn parse_body<T: DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(
            "invalid_arguments",
            format!("Invalid JSON body: {e}; see the control API in the pi-sim README"),
        )
    })
}

fn ok(value: &impl serde::Serialize) -> Response {
    crate::response::json_response(StatusCode::OK, value)
}

async fn info(State(shared): State<Arc<Shared>>) -> Response {
    let mut info = shared.ready_json();
    if let Some(map) = info.as_object_mut() {
        map.remove("event");
        let platform = shared.platform();
        map.insert("payments".into(), platform.payments().len().into());
        map.insert("users".into(), platform.users().count().into());
    }
    ok(&info)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UserRequest {
    uid: String,
    username: Option<String>,
}

fn user_json(user: &crate::state::User) -> serde_json::Value {
    json!({
        "uid": user.uid,
        "username": user.username,
        "wallet_address": user.wallet.public_key(),
        "wallet_seed": user.wallet.secret_seed(),
    })
}

async fn create_user(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let req: UserRequest = parse_body(&body)?;
    if req.uid.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_arguments",
            "`uid` must not be empty",
        ));
    }
    let user = shared.platform().ensure_user(
        &req.uid,
        req.username.as_deref(),
        &shared.settings,
        &shared.chain,
    );
    Ok(ok(&user_json(&user)))
}

async fn list_users(State(shared): State<Arc<Shared>>) -> Response {
    let users: Vec<_> = shared.platform().users().map(user_json).collect();
    ok(&json!({ "users": users }))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TokenRequest {
    uid: String,
    username: Option<String>,
    scopes: Option<Vec<String>>,
    /// Seconds from now; negative = already expired. Default one hour.
    expires_in: Option<i64>,
}

async fn create_token(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: TokenRequest = parse_body(&body)?;
    if req.uid.is_empty() {
        return Err(ApiError::bad_request(
            "invalid_arguments",
            "`uid` must not be empty",
        ));
    }
    let scopes = req.scopes.unwrap_or_else(|| {
        ["username", "payments", "wallet_address"]
            .map(String::from)
            .to_vec()
    });
    let expires_in = req
        .expires_in
        .unwrap_or(3600)
        .clamp(-10 * 365 * 86_400, 10 * 365 * 86_400);
    let valid_until = chrono::Utc::now() + chrono::Duration::seconds(expires_in);
    let (token, user) = shared.platform().mint_token(
        &req.uid,
        req.username.as_deref(),
        scopes,
        valid_until,
        &shared.settings,
        &shared.chain,
    );
    Ok(ok(&json!({
        "access_token": token,
        "uid": user.uid,
        "username": user.username,
        "valid_until": valid_until_json(valid_until),
    })))
}

async fn create_u2a(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    // memo and metadata may be left out here for convenience; Pi's SDK always sends them.
    let mut fields: HashMap<String, Box<RawValue>> = parse_body(&body)?;
    // `network`: the Pioneer pays on another network than the simulator's (tests of an app
    // that must refuse it). Not a field of Pi's createPayment.
    let network = match fields.remove("network") {
        None => None,
        Some(raw) => Some(serde_json::from_str::<String>(raw.get()).map_err(|_| {
            ApiError::bad_request("invalid_arguments", "`network` must be a string")
        })?),
    };
    for (name, default) in [("memo", "\"\""), ("metadata", "{}")] {
        if !fields.contains_key(name) {
            let raw = RawValue::from_string(default.to_owned()).unwrap_or_default();
            fields.insert(name.to_owned(), raw);
        }
    }
    let text = serde_json::to_string(&fields).map_err(|e| {
        ApiError::bad_request("invalid_arguments", format!("Invalid payment fields: {e}"))
    })?;
    let new = parse_new_payment(&text)?;
    let payment = shared
        .platform()
        .create_u2a(new, network, &shared.settings, &shared.chain);
    Ok(payment_response(&shared, &payment))
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
struct SubmitRequest {
    /// Tamper: pay this amount instead (JSON number or decimal string).
    amount: Option<Box<RawValue>>,
    /// Tamper: use this text memo instead of the identifier.
    memo: Option<String>,
    /// Tamper: pay this account instead of the app wallet.
    to: Option<String>,
}

#[derive(serde::Serialize)]
struct SubmitAnswer {
    txid: String,
    payment: PaymentDto,
}

async fn submit_u2a(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req: SubmitRequest = parse_body(&body)?;
    let amount_override = match &req.amount {
        None => None,
        Some(raw) => {
            let text = raw.get().trim_matches('"');
            Some(parse_stroops(text).filter(|&a| a > 0).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_amount",
                    "`amount` must be a number greater than 0 with at most 7 decimals",
                )
            })?)
        }
    };
    let (payment, wallet) = shared.platform().begin_submit(&id)?;
    let amount = amount_override.unwrap_or(payment.amount);
    let memo = req.memo.unwrap_or_else(|| payment.identifier.clone());
    let to = req.to.unwrap_or_else(|| payment.to_address.clone());

    // On its own task: the submission and the link happen even if the caller goes away.
    let task_shared = shared.clone();
    let task_id = id.clone();
    let outcome = tokio::spawn(async move {
        let shared = task_shared;
        let outcome = shared.chain.pay(&wallet, &to, amount, &memo).await;
        match &outcome {
            SubmitOutcome::Applied(tx) => {
                shared.platform().end_submit(&task_id, Some(tx));
            }
            SubmitOutcome::Timeout { hash } => {
                // The tx still lands; link it when it does.
                let hash = hash.clone();
                tokio::spawn(async move {
                    let deadline = tokio::time::Instant::now() + LATE_LINK_WINDOW;
                    while tokio::time::Instant::now() < deadline {
                        if let Some(tx) = shared.chain.transaction(&hash) {
                            shared.platform().end_submit(&task_id, Some(&tx));
                            return;
                        }
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    shared.platform().end_submit(&task_id, None);
                });
            }
            _ => {
                shared.platform().end_submit(&task_id, None);
            }
        }
        outcome
    })
    .await
    .map_err(|_| {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            "The submission task failed; check the simulator's log",
        )
    })?;
    match outcome {
        SubmitOutcome::Applied(tx) => {
            let payment = shared
                .platform()
                .payment(&id)
                .cloned()
                .ok_or_else(|| ApiError::payment_not_found(&id))?;
            let mut response = ok(&SubmitAnswer {
                txid: tx.hash,
                payment: payment.dto(&shared.settings),
            });
            response
                .extensions_mut()
                .insert(crate::error::PaymentRef(id));
            Ok(response)
        }
        SubmitOutcome::Rejected { codes, hash, .. } => Err(ApiError::bad_request(
            "transaction_rejected",
            format!(
                "The chain rejected transaction {hash}: {} {:?}; nothing was linked",
                codes.transaction, codes.operations
            ),
        )),
        SubmitOutcome::Malformed(reason) => Err(ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_error",
            format!("The simulator built a malformed transaction: {reason}"),
        )),
        SubmitOutcome::Timeout { hash } => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            "submit_timeout",
            format!(
                "Transaction {hash} did not land within the submit timeout; it will be linked when it lands"
            ),
        )),
    }
}

async fn user_cancel(
    State(shared): State<Arc<Shared>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let payment = shared.platform().user_cancel(&id)?;
    Ok(payment_response(&shared, &payment))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AdRequest {
    ad_id: Option<String>,
    #[serde(default)]
    status: Option<String>,
}

async fn set_ad(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let req: AdRequest = parse_body(&body)?;
    if let Some(status) = &req.status
        && !["granted", "revoked", "failed"].contains(&status.as_str())
    {
        return Err(ApiError::bad_request(
            "invalid_arguments",
            "`status` must be \"granted\", \"revoked\", \"failed\" or null",
        ));
    }
    let ad_id = req.ad_id.unwrap_or_else(|| random_alphanumeric(24));
    let ad = shared.platform().set_ad(ad_id, req.status);
    Ok(ok(&ad))
}

async fn get_faults(State(shared): State<Arc<Shared>>) -> Response {
    ok(shared.faults().knobs())
}

async fn update_faults(
    State(shared): State<Arc<Shared>>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let update: FaultUpdate = parse_body(&body)?;
    update
        .validate()
        .map_err(|e| ApiError::bad_request("invalid_arguments", e))?;
    if let Some(seconds) = update.ledger_seconds {
        shared.chain.set_ledger_seconds(seconds);
    }
    if let Some(max) = update.max_tx_per_ledger {
        shared.chain.set_max_tx_per_ledger(max);
    }
    if let Some(offset) = update.clock_offset_seconds {
        shared.chain.set_clock_offset(offset);
    }
    let mut faults = shared.faults();
    faults.update(update);
    Ok(ok(faults.knobs()))
}

#[derive(Deserialize)]
struct LogQuery {
    requests: Option<String>,
}

async fn get_log(State(shared): State<Arc<Shared>>, Query(q): Query<LogQuery>) -> Response {
    let with_requests = q
        .requests
        .is_some_and(|v| !matches!(v.as_str(), "0" | "false" | ""));
    let log = shared.log();
    ok(&log.report(with_requests))
}

async fn get_audit(State(shared): State<Arc<Shared>>) -> Response {
    let txs = shared.chain.transactions();
    let platform = shared.platform();
    ok(&audit(
        platform.payments(),
        &txs,
        &shared.settings.app_address,
    ))
}

async fn list_payments(State(shared): State<Arc<Shared>>) -> Response {
    // Typed, not json!: a `Value` would turn the exact amounts into floats.
    #[derive(serde::Serialize)]
    struct Payments {
        payments: Vec<PaymentDto>,
    }
    let platform = shared.platform();
    let payments = platform
        .payments()
        .iter()
        .map(|p| p.dto(&shared.settings))
        .collect();
    ok(&Payments { payments })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetRequest {
    what: Option<String>,
}

async fn reset(State(shared): State<Arc<Shared>>, body: Bytes) -> Result<Response, ApiError> {
    let req: ResetRequest = parse_body(&body)?;
    match req.what.as_deref().unwrap_or("all") {
        "log" => shared.reset_log(),
        "all" => shared.reset_all(),
        other => {
            return Err(ApiError::bad_request(
                "invalid_arguments",
                format!("Cannot reset {other:?}; use \"all\" or \"log\""),
            ));
        }
    }
    Ok(ok(
        &json!({ "reset": req.what.as_deref().unwrap_or("all") }),
    ))
}
