//! Horizon's HTTP routes over the [`crate::chain::Chain`]. OWNER: helper "sim-chain".
//!
//! Shapes follow real Horizon: HAL resources (`_links`, `_embedded.records`), amounts as
//! 7-decimal strings, int64 fields as strings, errors as `application/problem+json` with
//! `{type, title, status, detail, extras?}`.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::SecondsFormat;
use serde_json::{Value, json};

use crate::amount::format_amount;
use crate::chain::handle::Chain;
use crate::chain::records::{
    BASE_FEE, LedgerInfo, MIN_BALANCE, OpRecord, ResultCodes, SubmitOutcome, TxRecord,
};

/// The protocol version Horizon reports (Pi's mainnet runs protocol 19).
const PROTOCOL_VERSION: u32 = 19;
/// Horizon's page-size bounds.
const DEFAULT_LIMIT: usize = 10;
const MAX_LIMIT: usize = 200;

/// The Horizon router (root paths). The platform helper wraps it with the fault layer.
pub fn router(chain: Chain) -> axum::Router {
    let mut router = axum::Router::new()
        .route("/", get(root))
        .route("/accounts/{id}", get(account))
        .route("/accounts/{id}/transactions", get(account_transactions))
        .route("/fee_stats", get(fee_stats))
        .route("/ledgers", get(ledgers))
        .route("/ledgers/{n}", get(ledger))
        .route("/transactions", post(submit))
        .route("/transactions/{hash}", get(transaction));
    // Only payments and account creations exist on this chain, so an account's or a
    // transaction's `payments` and `operations` are the same records.
    for list in ["payments", "operations"] {
        router = router
            .route(&format!("/accounts/{{id}}/{list}"), get(account_operations))
            .route(
                &format!("/transactions/{{hash}}/{list}"),
                get(transaction_operations),
            );
    }
    router.fallback(not_found_route).with_state(chain)
}

// ---------- responses ----------

/// A HAL resource with Horizon's content type.
fn hal(status: StatusCode, body: Value) -> Response {
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/hal+json; charset=utf-8"),
    );
    r
}

/// A Horizon problem document.
fn problem(
    status: StatusCode,
    kind: &str,
    title: &str,
    detail: &str,
    extras: Option<Value>,
) -> Response {
    let mut body = json!({
        "type": format!("https://stellar.org/horizon-errors/{kind}"),
        "title": title,
        "status": status.as_u16(),
        "detail": detail,
    });
    if let Some(extras) = extras {
        body["extras"] = extras;
    }
    let mut r = (status, body.to_string()).into_response();
    r.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/problem+json; charset=utf-8"),
    );
    r
}

fn not_found() -> Response {
    problem(
        StatusCode::NOT_FOUND,
        "not_found",
        "Resource Missing",
        "The resource at the url requested was not found.  This usually occurs for one of two \
         reasons:  The url requested is not valid, or no data in our database could be found \
         with the parameters provided.",
        None,
    )
}

async fn not_found_route() -> Response {
    not_found()
}

/// A query or path parameter Horizon refuses (kept small; turned into a 400 by `into_response`).
struct BadParam {
    field: &'static str,
    reason: &'static str,
}

impl IntoResponse for BadParam {
    fn into_response(self) -> Response {
        bad_request(self.field, self.reason)
    }
}

fn bad_request(field: &str, reason: &str) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "bad_request",
        "Bad Request",
        "The request you sent was invalid in some way.",
        Some(json!({"invalid_field": field, "reason": reason})),
    )
}

/// `http://host` of this request, for `_links`.
fn base_url(headers: &HeaderMap) -> String {
    let host = headers
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

fn time(t: &chrono::DateTime<chrono::Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn href(url: String) -> Value {
    json!({ "href": url })
}

// ---------- paging ----------

/// Horizon's `order`, `cursor`, `limit` and `include_failed` query parameters.
struct Page {
    desc: bool,
    cursor: Option<i64>,
    limit: usize,
    include_failed: bool,
}

fn parse_page(q: &HashMap<String, String>) -> Result<Page, BadParam> {
    let desc = match q.get("order").map(String::as_str) {
        None | Some("") | Some("asc") => false,
        Some("desc") => true,
        Some(_) => {
            return Err(BadParam {
                field: "order",
                reason: "order must be \"asc\" or \"desc\"",
            });
        }
    };
    let cursor = match q.get("cursor").map(String::as_str) {
        None | Some("") => None,
        Some("now") => Some(i64::MAX),
        Some(c) => match c.parse::<i64>() {
            Ok(v) if v >= 0 => Some(v),
            _ => {
                return Err(BadParam {
                    field: "cursor",
                    reason: "cursor must be a paging_token or \"now\"",
                });
            }
        },
    };
    let limit = match q.get("limit").map(String::as_str) {
        None | Some("") => DEFAULT_LIMIT,
        Some(l) => match l.parse::<usize>() {
            Ok(v) if (1..=MAX_LIMIT).contains(&v) => v,
            _ => {
                return Err(BadParam {
                    field: "limit",
                    reason: "limit must be between 1 and 200",
                });
            }
        },
    };
    let include_failed = match q.get("include_failed").map(String::as_str) {
        None | Some("") | Some("false") => false,
        Some("true") => true,
        Some(_) => {
            return Err(BadParam {
                field: "include_failed",
                reason: "must be true or false",
            });
        }
    };
    Ok(Page {
        desc,
        cursor,
        limit,
        include_failed,
    })
}

/// One page of `items` (any order in) by their paging token, plus HAL links.
fn paged<T>(
    mut items: Vec<T>,
    token: impl Fn(&T) -> i64,
    render: impl Fn(&T) -> Value,
    page: &Page,
    self_path: &str,
) -> Response {
    items.sort_by_key(&token);
    if page.desc {
        items.reverse();
    }
    let selected: Vec<T> = items
        .into_iter()
        .filter(|i| match page.cursor {
            None => true,
            Some(c) if page.desc => token(i) < c,
            Some(c) => token(i) > c,
        })
        .take(page.limit)
        .collect();
    let order = if page.desc { "desc" } else { "asc" };
    let reverse = if page.desc { "asc" } else { "desc" };
    let cursor_text = page.cursor.map(|c| c.to_string()).unwrap_or_default();
    let next = selected
        .last()
        .map(|i| token(i).to_string())
        .unwrap_or(cursor_text.clone());
    let prev = selected
        .first()
        .map(|i| token(i).to_string())
        .unwrap_or(cursor_text.clone());
    let link = |cursor: &str, order: &str| {
        href(format!(
            "{self_path}?cursor={cursor}&limit={}&order={order}",
            page.limit
        ))
    };
    hal(
        StatusCode::OK,
        json!({
            "_links": {
                "self": link(&cursor_text, order),
                "next": link(&next, order),
                "prev": link(&prev, reverse),
            },
            "_embedded": { "records": selected.iter().map(render).collect::<Vec<_>>() },
        }),
    )
}

fn token_of(text: &str) -> i64 {
    text.parse().unwrap_or(0)
}

// ---------- renderers ----------

fn ledger_token(seq: u32) -> i64 {
    i64::from(seq) << 32
}

fn ledger_json(base: &str, l: &LedgerInfo, prev_hash: Option<String>) -> Value {
    let mut v = json!({
        "_links": {
            "self": href(format!("{base}/ledgers/{}", l.sequence)),
            "transactions": href(format!("{base}/ledgers/{}/transactions", l.sequence)),
            "operations": href(format!("{base}/ledgers/{}/operations", l.sequence)),
            "payments": href(format!("{base}/ledgers/{}/payments", l.sequence)),
        },
        "id": l.hash,
        "paging_token": ledger_token(l.sequence).to_string(),
        "hash": l.hash,
        "sequence": l.sequence,
        "successful_transaction_count": l.successful_transaction_count,
        "failed_transaction_count": l.failed_transaction_count,
        "operation_count": l.operation_count,
        "tx_set_operation_count": l.operation_count,
        "closed_at": time(&l.closed_at),
        "base_fee_in_stroops": l.base_fee_in_stroops,
        "base_reserve_in_stroops": MIN_BALANCE / 2,
        "max_tx_set_size": 1000,
        "protocol_version": PROTOCOL_VERSION,
    });
    if let Some(p) = prev_hash {
        v["prev_hash"] = json!(p);
    }
    v
}

/// The links every operation and transaction carries: itself (`path`), its effects, and the
/// records before and after it in the `list` they are paged in.
fn record_links(base: &str, path: &str, list: &str, paging_token: &str) -> Value {
    json!({
        "self": href(format!("{base}/{path}")),
        "effects": href(format!("{base}/{path}/effects")),
        "succeeds": href(format!("{base}/{list}?order=desc&cursor={paging_token}")),
        "precedes": href(format!("{base}/{list}?order=asc&cursor={paging_token}")),
    })
}

fn op_json(base: &str, op: &OpRecord, source: &str) -> Value {
    let path = format!("operations/{}", op.id);
    let mut links = record_links(base, &path, "effects", &op.paging_token);
    links["transaction"] = href(format!("{base}/transactions/{}", op.tx_hash));
    let mut v = json!({
        "_links": links,
        "id": op.id,
        "paging_token": op.paging_token,
        "transaction_successful": op.transaction_successful,
        "source_account": source,
        "type": op.kind,
        "created_at": time(&op.created_at),
        "transaction_hash": op.tx_hash,
    });
    match op.kind.as_str() {
        "create_account" => {
            v["type_i"] = json!(0);
            v["starting_balance"] = json!(format_amount(op.amount));
            v["funder"] = json!(op.from);
            v["account"] = json!(op.to);
        }
        _ => {
            v["type_i"] = json!(1);
            v["asset_type"] = json!("native");
            v["from"] = json!(op.from);
            v["to"] = json!(op.to);
            v["amount"] = json!(format_amount(op.amount));
        }
    }
    v
}

fn tx_json(base: &str, t: &TxRecord) -> Value {
    use base64::Engine as _;
    let b64 = base64::engine::general_purpose::STANDARD;
    let path = format!("transactions/{}", t.hash);
    let mut links = record_links(base, &path, "transactions", &t.paging_token);
    links["account"] = href(format!("{base}/accounts/{}", t.source_account));
    links["ledger"] = href(format!("{base}/ledgers/{}", t.ledger));
    links["operations"] = href(format!("{base}/{path}/operations"));
    links["transaction"] = href(format!("{base}/{path}"));
    let mut v = json!({
        "_links": links,
        "id": t.hash,
        "paging_token": t.paging_token,
        "successful": t.successful,
        "hash": t.hash,
        "ledger": t.ledger,
        "created_at": time(&t.created_at),
        "source_account": t.source_account,
        "source_account_sequence": t.source_account_sequence.to_string(),
        "fee_account": t.fee_account,
        "fee_charged": t.fee_charged.to_string(),
        "max_fee": t.max_fee.to_string(),
        "operation_count": t.operation_count,
        "envelope_xdr": t.envelope_xdr,
        "result_xdr": t.result_xdr,
        "memo_type": t.memo_type,
        "signatures": [],
    });
    if let Some(memo) = &t.memo {
        v["memo"] = json!(memo);
    }
    // Signatures, time bounds and memo bytes come from the stored envelope.
    if let Ok(d) = crate::chain_xdr::decode(&t.envelope_xdr, [0; 32]) {
        v["signatures"] = json!(
            d.signatures
                .iter()
                .map(|s| b64.encode(s.signature.0.as_slice()))
                .collect::<Vec<_>>()
        );
        if let stellar_xdr::Memo::Text(text) = &d.tx.memo {
            v["memo_bytes"] = json!(b64.encode(text.as_slice()));
        }
        if let Some(tb) = crate::chain_xdr::time_bounds(&d.tx.cond) {
            let at = |s: u64| {
                chrono::DateTime::from_timestamp(i64::try_from(s).unwrap_or(i64::MAX), 0)
                    .map(|t| time(&t))
            };
            let mut bounds = json!({ "min_time": tb.min_time.0.to_string() });
            v["valid_after"] = json!(at(tb.min_time.0));
            if tb.max_time.0 != 0 {
                v["valid_before"] = json!(at(tb.max_time.0));
                bounds["max_time"] = json!(tb.max_time.0.to_string());
            }
            v["preconditions"] = json!({ "timebounds": bounds });
        }
    }
    v
}

fn failed_problem(
    hash: &str,
    envelope_xdr: &str,
    result_xdr: &str,
    codes: &ResultCodes,
) -> Response {
    problem(
        StatusCode::BAD_REQUEST,
        "transaction_failed",
        "Transaction Failed",
        "The transaction failed when submitted to the stellar network. The `extras.result_codes` \
         field on this response contains further details.  Descriptions of each code can be \
         found at: https://developers.stellar.org/docs/data/horizon/api-reference/errors/result-codes/transactions",
        Some(json!({
            "hash": hash,
            "envelope_xdr": envelope_xdr,
            "result_xdr": result_xdr,
            "result_codes": codes,
        })),
    )
}

// ---------- handlers ----------

async fn root(State(chain): State<Chain>, headers: HeaderMap) -> Response {
    let base = base_url(&headers);
    let l = chain.latest_ledger();
    hal(
        StatusCode::OK,
        json!({
            "_links": {
                "account": href(format!("{base}/accounts/{{account_id}}")),
                "fee_stats": href(format!("{base}/fee_stats")),
                "ledger": href(format!("{base}/ledgers/{{sequence}}")),
                "ledgers": href(format!("{base}/ledgers{{?cursor,limit,order}}")),
                "transaction": href(format!("{base}/transactions/{{hash}}")),
                "transactions": href(format!("{base}/transactions{{?cursor,limit,order}}")),
            },
            "horizon_version": concat!("pi-sim-", env!("CARGO_PKG_VERSION")),
            "core_version": "pi-sim",
            "ingest_latest_ledger": l.sequence,
            "history_latest_ledger": l.sequence,
            "history_latest_ledger_closed_at": time(&l.closed_at),
            "history_elder_ledger": 1,
            "core_latest_ledger": l.sequence,
            "network_passphrase": chain.passphrase(),
            "current_protocol_version": PROTOCOL_VERSION,
            "supported_protocol_version": PROTOCOL_VERSION,
            "core_supported_protocol_version": PROTOCOL_VERSION,
        }),
    )
}

fn check_account_id(id: &str) -> Result<(), BadParam> {
    match crate::keys::decode_account_id(id) {
        Some(_) => Ok(()),
        None => Err(BadParam {
            field: "account_id",
            reason: "Account ID must start with `G` and contain 56 alphanum characters",
        }),
    }
}

async fn account(
    State(chain): State<Chain>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, BadParam> {
    check_account_id(&id)?;
    let Some(a) = chain.account(&id) else {
        return Ok(not_found());
    };
    let base = base_url(&headers);
    let ledger_time = chain
        .ledger(a.last_modified_ledger)
        .map(|l| time(&l.closed_at));
    Ok(hal(
        StatusCode::OK,
        json!({
            "_links": {
                "self": href(format!("{base}/accounts/{id}")),
                "transactions": href(format!("{base}/accounts/{id}/transactions{{?cursor,limit,order}}")),
                "operations": href(format!("{base}/accounts/{id}/operations{{?cursor,limit,order}}")),
                "payments": href(format!("{base}/accounts/{id}/payments{{?cursor,limit,order}}")),
            },
            "id": a.account_id,
            "account_id": a.account_id,
            "sequence": a.sequence.to_string(),
            "subentry_count": 0,
            "last_modified_ledger": a.last_modified_ledger,
            "last_modified_time": ledger_time,
            "thresholds": {"low_threshold": 0, "med_threshold": 0, "high_threshold": 0},
            "flags": {"auth_required": false, "auth_revocable": false, "auth_immutable": false, "auth_clawback_enabled": false},
            "balances": [{
                "balance": format_amount(a.balance),
                "buying_liabilities": "0.0000000",
                "selling_liabilities": "0.0000000",
                "asset_type": "native",
            }],
            "signers": [{"weight": 1, "key": a.account_id, "type": "ed25519_public_key"}],
            "data": {},
            "num_sponsoring": 0,
            "num_sponsored": 0,
            "paging_token": a.account_id,
        }),
    ))
}

async fn account_transactions(
    State(chain): State<Chain>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, BadParam> {
    check_account_id(&id)?;
    let page = parse_page(&q)?;
    let base = base_url(&headers);
    let txs: Vec<TxRecord> = chain
        .account_transactions(&id)
        .into_iter()
        .filter(|t| page.include_failed || t.successful)
        .collect();
    Ok(paged(
        txs,
        |t| token_of(&t.paging_token),
        |t| tx_json(&base, t),
        &page,
        &format!("{base}/accounts/{id}/transactions"),
    ))
}

/// The operations of an account's transactions it took part in, with their op source.
fn account_ops(chain: &Chain, id: &str, include_failed: bool) -> Vec<(OpRecord, String)> {
    chain
        .account_transactions(id)
        .into_iter()
        .filter(|t| include_failed || t.successful)
        .flat_map(|t| t.ops.into_iter())
        .filter(|o| o.from == id || o.to == id)
        .map(|o| {
            let source = o.from.clone();
            (o, source)
        })
        .collect()
}

/// `/accounts/{id}/payments` and `/accounts/{id}/operations` (the same records here: only
/// payments and account creations exist on this chain).
async fn account_operations(
    State(chain): State<Chain>,
    Path(id): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, BadParam> {
    check_account_id(&id)?;
    let page = parse_page(&q)?;
    let base = base_url(&headers);
    Ok(paged(
        account_ops(&chain, &id, page.include_failed),
        |(o, _)| token_of(&o.paging_token),
        |(o, s)| op_json(&base, o, s),
        &page,
        &format!("{base}{}", uri.path()),
    ))
}

async fn fee_stats(State(chain): State<Chain>) -> Response {
    let l = chain.latest_ledger();
    let fee = BASE_FEE.to_string();
    let dist = json!({
        "max": fee, "min": fee, "mode": fee,
        "p10": fee, "p20": fee, "p30": fee, "p40": fee, "p50": fee,
        "p60": fee, "p70": fee, "p80": fee, "p90": fee, "p95": fee, "p99": fee,
    });
    hal(
        StatusCode::OK,
        json!({
            "last_ledger": l.sequence.to_string(),
            "last_ledger_base_fee": l.base_fee_in_stroops.to_string(),
            "ledger_capacity_usage": "0.00",
            "fee_charged": dist,
            "max_fee": dist,
        }),
    )
}

async fn ledgers(
    State(chain): State<Chain>,
    Query(q): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Result<Response, BadParam> {
    let page = parse_page(&q)?;
    let base = base_url(&headers);
    let latest = chain.latest_ledger().sequence;
    // Walk from the cursor in the asked order, taking at most `limit` ledgers.
    let start_after = page.cursor.map(|c| (c >> 32) as u32);
    let seqs: Vec<u32> = if page.desc {
        let top = start_after
            .map(|s| s.saturating_sub(1).min(latest))
            .unwrap_or(latest);
        (1..=top).rev().take(page.limit).collect()
    } else {
        let from = start_after.map(|s| s.saturating_add(1)).unwrap_or(1);
        (from..=latest).take(page.limit).collect()
    };
    let items: Vec<(LedgerInfo, Option<String>)> = seqs
        .into_iter()
        .filter_map(|s| {
            let l = chain.ledger(s)?;
            let prev = s
                .checked_sub(1)
                .and_then(|p| chain.ledger(p))
                .map(|p| p.hash);
            Some((l, prev))
        })
        .collect();
    Ok(paged(
        items,
        |(l, _)| ledger_token(l.sequence),
        |(l, p)| ledger_json(&base, l, p.clone()),
        &Page {
            cursor: None,
            ..page
        },
        &format!("{base}/ledgers"),
    ))
}

async fn ledger(State(chain): State<Chain>, Path(n): Path<String>, headers: HeaderMap) -> Response {
    let Ok(seq) = n.parse::<u32>() else {
        return bad_request("sequence", "sequence must be a ledger number");
    };
    let Some(l) = chain.ledger(seq) else {
        return not_found();
    };
    let prev = seq
        .checked_sub(1)
        .and_then(|p| chain.ledger(p))
        .map(|p| p.hash);
    hal(StatusCode::OK, ledger_json(&base_url(&headers), &l, prev))
}

async fn submit(State(chain): State<Chain>, headers: HeaderMap, body: bytes::Bytes) -> Response {
    let form: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let Some(tx) = form.get("tx").filter(|t| !t.is_empty()) else {
        return bad_request(
            "tx",
            "Transaction envelope must be base64 in the form field `tx`",
        );
    };
    let base = base_url(&headers);
    match chain.submit(tx).await {
        SubmitOutcome::Applied(t) if t.successful => hal(StatusCode::OK, tx_json(&base, &t)),
        SubmitOutcome::Applied(t) => {
            let codes = t.result_codes.clone().unwrap_or(ResultCodes {
                transaction: "tx_failed".into(),
                operations: Vec::new(),
            });
            failed_problem(&t.hash, &t.envelope_xdr, &t.result_xdr, &codes)
        }
        SubmitOutcome::Rejected {
            hash,
            envelope_xdr,
            result_xdr,
            codes,
        } => failed_problem(&hash, &envelope_xdr, &result_xdr, &codes),
        SubmitOutcome::Malformed(_) => problem(
            StatusCode::BAD_REQUEST,
            "transaction_malformed",
            "Transaction Malformed",
            "Horizon could not decode the transaction envelope in this request. A transaction \
             should be an XDR TransactionEnvelope struct encoded using base64.  The envelope \
             read from this request is echoed in the `extras.envelope_xdr` field of this \
             response for your convenience.",
            Some(json!({ "envelope_xdr": tx })),
        ),
        SubmitOutcome::Timeout { hash } => problem(
            StatusCode::GATEWAY_TIMEOUT,
            "timeout",
            "Timeout",
            "Your request timed out before completing.  Please try your request again. If you \
             are submitting a transaction make sure you are sending exactly the same \
             transaction (with the same sequence number).",
            Some(json!({ "hash": hash })),
        ),
    }
}

/// A transaction hash in a path: 64 hex digits.
fn check_tx_hash(hash: &str) -> Result<(), BadParam> {
    if hash.len() == 64 && hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(())
    } else {
        Err(BadParam {
            field: "tx_id",
            reason: "Transaction hash must be a hex-encoded, lowercase SHA-256 hash",
        })
    }
}

async fn transaction(
    State(chain): State<Chain>,
    Path(hash): Path<String>,
    headers: HeaderMap,
) -> Result<Response, BadParam> {
    check_tx_hash(&hash)?;
    Ok(match chain.transaction(&hash) {
        Some(t) => hal(StatusCode::OK, tx_json(&base_url(&headers), &t)),
        None => not_found(),
    })
}

async fn transaction_operations(
    State(chain): State<Chain>,
    Path(hash): Path<String>,
    Query(q): Query<HashMap<String, String>>,
    uri: axum::http::Uri,
    headers: HeaderMap,
) -> Result<Response, BadParam> {
    check_tx_hash(&hash)?;
    let page = parse_page(&q)?;
    let Some(t) = chain.transaction(&hash) else {
        return Ok(not_found());
    };
    let base = base_url(&headers);
    let ops: Vec<(OpRecord, String)> = t
        .ops
        .into_iter()
        .map(|o| {
            let s = o.from.clone();
            (o, s)
        })
        .collect();
    Ok(paged(
        ops,
        |(o, _)| token_of(&o.paging_token),
        |(o, s)| op_json(&base, o, s),
        &page,
        &format!("{base}{}", uri.path()),
    ))
}
