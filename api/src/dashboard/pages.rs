//! The dashboard's pages and form posts. Stable hooks for browser tests:
//!
//! - overview: `data-testid="payment-count-<state>"`, `"payout-count-<state>"`,
//!   `"needs-attention-count"`, `"undelivered-count"`, `#pi-rate` (`data-calls`, `data-limit`);
//! - listings: one `<table id="payments-<state>">` (`payouts-<state>`; `-all` without a state)
//!   per state, rows `id="payment-<id>"` / `id="payout-<id>"` with `data-state`;
//! - details: `#payment-detail` / `#payout-detail`, history `<table id="history">` with rows
//!   `data-testid="history-row"` and `data-cause`;
//! - retry: `<form id="retry-<payment or payout id>">` with `<button id="retry-button-<id>">`;
//! - webhooks: `<table id="webhooks">`, rows `id="event-<id>"`, `<form id="resend-<id>">`;
//! - batches: `<table id="batches">`, rows `id="batch-<id>"` with `data-completed`,
//!   `data-failed`; drift: `#drift-run` (the button's form), `#drift-report` (`data-clean`);
//! - after an action: `#flash`; errors: `#error`.

use super::html::{count, page, state_badge, time, time_opt};
use crate::error::{ApiError, ErrorBody};
use crate::extract::PathId;
use crate::operator_actions::{self, Via, event_id, payment_id, payout_id};
use crate::operator_views::{self, CountedIn, Params};
use crate::state::ApiState;
use axum::extract::{Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use maud::{Markup, html};
use pi_payments_core::ledger::{EventRow, LedgerError, PaymentRow, PayoutRow};
use pi_payments_core::state::{ALL_PAYOUT_STATES, ALL_STATES, PaymentState, PayoutState};

/// Rows per state on the listings without a state filter.
const PER_STATE: i64 = 10;

type PageResult = Result<Markup, ApiError>;

fn flash(params: &Params) -> Markup {
    let text = match params.get("done").map(String::as_str) {
        Some("retried") => Some("Retried: the job is enqueued and the history records it."),
        Some("resent") => Some("Re-armed: the deliverer sends this event again shortly."),
        _ => None,
    };
    html! { @if let Some(t) = text { p #flash .flash { (t) } } }
}

/// The dashboard's overview page.
///
/// Needs-attention and undelivered-webhook counts, payments and payouts per state, the Pi
/// call rate.
#[utoipa::path(
    get,
    path = "/dashboard",
    tag = "dashboard",
    operation_id = "dashboard_overview",
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn overview(State(state): State<ApiState>) -> PageResult {
    let o = operator_views::overview(&state).await?;
    let cap = o.count_cap;
    let body = html! {
        div.cards {
            div.card { div { "Needs attention" }
                div.n.alert data-testid="needs-attention-count" { (count(o.needs_attention(), cap)) }
                a href="/dashboard/attention" { "see and retry" } }
            div.card { div { "Undelivered webhooks" }
                div.n data-testid="undelivered-count" { (count(o.undelivered_webhooks, cap)) }
                a href="/dashboard/webhooks?undelivered=1" { "see" } }
            @match o.pi_calls {
                Some(rate) => {
                    div.card #pi-rate data-calls=(rate.calls_last_minute) data-limit=(rate.limit_per_minute) {
                        div { "Pi calls, last minute" }
                        div.n { (rate.calls_last_minute) " / " (rate.limit_per_minute) }
                        div.muted data-counted-in=(rate.counted_in.as_str()) { "PI_RATE_LIMIT = " (rate.limit_per_second) "/s; "
                            @match (rate.counted_in, rate.shared) {
                                (CountedIn::Deployment, _) => { "calls of every process sharing the budget through Redis ("
                                    (rate.process_calls_last_minute) " by this one)" },
                                (CountedIn::Process, true) => { "calls made by this process only: Redis, where the deployment's are counted, did not answer" },
                                (CountedIn::Process, false) => { "calls made by this process (the budget is not shared: no REDIS_URL)" },
                            } }
                    }
                },
                None => { div.card #pi-rate { div { "Pi calls" } div.muted { "this API has no Pi client" } } }
            }
        }
        h2 { "Payments by state" }
        table #payment-counts {
            tr { th { "state" } th.num { "payments" } }
            @for (s, n) in &o.payments {
                tr { td { a href=(format!("/dashboard/payments?state={}", s.as_str())) { (state_badge(s.as_str())) } }
                     td.num data-testid=(format!("payment-count-{}", s.as_str())) { (count(*n, cap)) } }
            }
        }
        h2 { "Payouts by state" }
        table #payout-counts {
            tr { th { "state" } th.num { "payouts" } }
            @for (s, n) in &o.payouts {
                tr { td { a href=(format!("/dashboard/payouts?state={}", s.as_str())) { (state_badge(s.as_str())) } }
                     td.num data-testid=(format!("payout-count-{}", s.as_str())) { (count(*n, cap)) } }
            }
        }
        p.muted { "Counts stop at " (cap) " per state." }
    };
    Ok(page("Overview", body))
}

fn payments_table(id: &str, rows: &[PaymentRow], state: Option<PaymentState>) -> Markup {
    html! {
        table id=(id) data-testid="payments-table" data-state=[state.map(PaymentState::as_str)] {
            tr { th { "payment" } th { "state" } th { "uid" } th.num { "amount" } th { "memo" }
                 th { "created" } th { "updated" } th { "reason" } }
            @if rows.is_empty() { tr { td.muted colspan="8" { "none" } } }
            @for r in rows {
                tr id=(format!("payment-{}", r.id)) data-state=(r.state.as_str()) {
                    td { a.mono href=(format!("/dashboard/payments/{}", r.id)) { (r.id) } }
                    td { (state_badge(r.state.as_str())) }
                    td.mono { (r.uid.as_ref().map(|u| u.as_str()).unwrap_or("—")) }
                    td.num { (r.amount.map(|a| a.to_string()).unwrap_or_else(|| "—".into())) }
                    td { (r.memo.as_deref().unwrap_or("")) }
                    td { (time(r.created_at)) }
                    td { (time(r.updated_at)) }
                    td { (r.reason.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

fn payouts_table(id: &str, rows: &[PayoutRow], state: Option<PayoutState>) -> Markup {
    html! {
        table id=(id) data-testid="payouts-table" data-state=[state.map(PayoutState::as_str)] {
            tr { th { "payout" } th { "state" } th { "uid" } th.num { "amount" } th { "memo" }
                 th { "batch" } th { "created" } th { "updated" } th { "reason" } }
            @if rows.is_empty() { tr { td.muted colspan="9" { "none" } } }
            @for r in rows {
                tr id=(format!("payout-{}", r.id)) data-state=(r.state.as_str()) {
                    td { a.mono href=(format!("/dashboard/payouts/{}", r.id)) { (r.id) } }
                    td { (state_badge(r.state.as_str())) }
                    td.mono { (r.uid) }
                    td.num { (r.amount) }
                    td { (r.memo) }
                    td.mono { (r.batch_id.as_ref().map(|b| b.as_str()).unwrap_or("—")) }
                    td { (time(r.created_at)) }
                    td { (time(r.updated_at)) }
                    td { (r.reason.as_deref().unwrap_or("")) }
                }
            }
        }
    }
}

fn filters(action: &str, params: &Params, states: &[&'static str], extra: Markup) -> Markup {
    let get = |k: &str| params.get(k).cloned().unwrap_or_default();
    let chosen = get("state");
    html! {
        form.filters #filters method="get" action=(action) {
            label { "state"
                select #filter-state name="state" {
                    option value="" { "every state" }
                    @for s in states { option value=(s) selected[chosen == *s] { (s) } }
                }
            }
            label { "created since" input #filter-since type="date" name="since" value=(get("since")); }
            label { "id or uid" input #filter-q type="search" name="q" value=(get("q")) size="30"; }
            (extra)
            button #filter-apply type="submit" { "Filter" }
            a href=(action) { "clear" }
        }
    }
}

fn next_link(base: &str, params: &Params, next: Option<&String>) -> Markup {
    let Some(next) = next else {
        return html! {};
    };
    let mut query: Vec<(String, String)> = params
        .iter()
        .filter(|(k, v)| k.as_str() != "before" && k.as_str() != "done" && !v.is_empty())
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    query.sort();
    query.push(("before".into(), next.clone()));
    let qs = serde_urlencoded::to_string(&query).unwrap_or_default();
    html! { p { a #next-page href=(format!("{base}?{qs}")) { "Older →" } } }
}

fn has_filter(params: &Params) -> bool {
    ["state", "since", "q", "before", "batch"]
        .iter()
        .any(|k| params.get(*k).is_some_and(|v| !v.trim().is_empty()))
}

/// The payments page, by state, with filters.
#[utoipa::path(
    get,
    path = "/dashboard/payments",
    tag = "dashboard",
    operation_id = "dashboard_payments",
    params(
        ("state" = Option<PaymentState>, Query, description = "Only payments in this state (without any filter: the newest of every state)"),
        ("since" = Option<String>, Query, description = "Only rows created since this date (`2026-01-31`) or RFC 3339 time"),
        ("q" = Option<String>, Query, description = "An id or a Pioneer uid (at most 128 characters)"),
        ("before" = Option<String>, Query, description = "The cursor of the \"Older\" link"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Bad filter (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn payments(State(state): State<ApiState>, Query(params): Query<Params>) -> PageResult {
    let states = ALL_STATES.map(PaymentState::as_str);
    let form = filters("/dashboard/payments", &params, &states, html! {});
    let body = if has_filter(&params) {
        let chosen = operator_views::payment_state(&params)?;
        let p = operator_views::payments(&state, &params, operator_views::DEFAULT_PAGE).await?;
        let id = format!("payments-{}", chosen.map_or("all", PaymentState::as_str));
        html! { (form) (payments_table(&id, &p.rows, chosen))
        (next_link("/dashboard/payments", &params, p.next.as_ref())) }
    } else {
        let mut sections = Vec::new();
        for s in ALL_STATES {
            let mut one = Params::new();
            one.insert("state".into(), s.as_str().into());
            let p = operator_views::payments(&state, &one, PER_STATE).await?;
            sections.push((s, p));
        }
        html! {
            (form)
            @for (s, p) in &sections {
                h2 { (state_badge(s.as_str())) }
                (payments_table(&format!("payments-{}", s.as_str()), &p.rows, Some(*s)))
                @if p.next.is_some() {
                    p { a href=(format!("/dashboard/payments?state={}", s.as_str())) { "all " (s.as_str()) " payments →" } }
                }
            }
        }
    };
    Ok(page("Payments", body))
}

/// The payouts page, by state, with filters.
#[utoipa::path(
    get,
    path = "/dashboard/payouts",
    tag = "dashboard",
    operation_id = "dashboard_payouts",
    params(
        ("state" = Option<PayoutState>, Query, description = "Only payouts in this state (without any filter: the newest of every state)"),
        ("since" = Option<String>, Query, description = "Only rows created since this date (`2026-01-31`) or RFC 3339 time"),
        ("q" = Option<String>, Query, description = "An id or a Pioneer uid (at most 128 characters)"),
        ("batch" = Option<String>, Query, description = "Only payouts of this bulk batch"),
        ("before" = Option<String>, Query, description = "The cursor of the \"Older\" link"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Bad filter (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn payouts(State(state): State<ApiState>, Query(params): Query<Params>) -> PageResult {
    let states = ALL_PAYOUT_STATES.map(PayoutState::as_str);
    let batch = params.get("batch").cloned().unwrap_or_default();
    let extra = html! { label { "batch" input #filter-batch type="text" name="batch" value=(batch) size="26"; } };
    let form = filters("/dashboard/payouts", &params, &states, extra);
    let body = if has_filter(&params) {
        let chosen = operator_views::payout_state(&params)?;
        let p = operator_views::payouts(&state, &params, operator_views::DEFAULT_PAGE).await?;
        let id = format!("payouts-{}", chosen.map_or("all", PayoutState::as_str));
        html! { (form) (payouts_table(&id, &p.rows, chosen))
        (next_link("/dashboard/payouts", &params, p.next.as_ref())) }
    } else {
        let mut sections = Vec::new();
        for s in ALL_PAYOUT_STATES {
            let mut one = Params::new();
            one.insert("state".into(), s.as_str().into());
            let p = operator_views::payouts(&state, &one, PER_STATE).await?;
            sections.push((s, p));
        }
        html! {
            (form)
            @for (s, p) in &sections {
                h2 { (state_badge(s.as_str())) }
                (payouts_table(&format!("payouts-{}", s.as_str()), &p.rows, Some(*s)))
                @if p.next.is_some() {
                    p { a href=(format!("/dashboard/payouts?state={}", s.as_str())) { "all " (s.as_str()) " payouts →" } }
                }
            }
        }
    };
    Ok(page("Payouts", body))
}

fn retry_form(kind: &str, id: &str) -> Markup {
    html! {
        form.inline id=(format!("retry-{id}")) method="post" action=(format!("/dashboard/{kind}/{id}/retry")) {
            button id=(format!("retry-button-{id}")) data-testid="retry" type="submit" { "Retry" }
        }
    }
}

/// One history line, payment or payout.
struct HistoryLine<'a> {
    at: i64,
    from: Option<&'a str>,
    to: &'a str,
    cause: &'a str,
    detail: Option<&'a str>,
    attempt: i64,
}

fn history(lines: &[HistoryLine<'_>]) -> Markup {
    html! {
        h2 { "History" }
        table #history {
            tr { th { "time" } th { "from" } th { "to" } th { "cause" } th { "by / detail" } th.num { "attempt" } }
            @for l in lines {
                tr data-testid="history-row" data-cause=(l.cause) {
                    td.nowrap { (time(l.at)) }
                    td { @if let Some(f) = l.from { (state_badge(f)) } @else { "—" } }
                    td { (state_badge(l.to)) }
                    td.mono.nowrap { (l.cause) }
                    td { (l.detail.unwrap_or("")) }
                    td.num { (l.attempt) }
                }
            }
        }
    }
}

/// One payment's page: its fields, its history and, when it needs attention, the retry button.
#[utoipa::path(
    get,
    path = "/dashboard/payments/{id}",
    tag = "dashboard",
    operation_id = "dashboard_payment",
    params(
        ("id" = String, Path, description = "The payment id"),
        ("done" = Option<String>, Query, description = "Set by the redirect after an action (`retried`, `resent`): shows a confirmation"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Not a payment id (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such payment (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn payment(
    State(state): State<ApiState>,
    PathId(id): PathId,
    Query(params): Query<Params>,
) -> PageResult {
    let id = payment_id(&id)?;
    let row = state
        .ledger
        .payment(&id)
        .await?
        .ok_or_else(|| ApiError::from(LedgerError::PaymentNotFound(id.clone())))?;
    let events = state.ledger.payment_events(&id).await?;
    let lines: Vec<HistoryLine<'_>> = events
        .iter()
        .map(|e| HistoryLine {
            at: e.at,
            from: e.from_state.map(PaymentState::as_str),
            to: e.to_state.as_str(),
            cause: &e.cause,
            detail: e.detail.as_deref(),
            attempt: e.attempt,
        })
        .collect();
    let metadata = row
        .metadata
        .as_ref()
        .map(|m| serde_json::to_string_pretty(m).unwrap_or_default());
    let body = html! {
        (flash(&params))
        table #payment-detail data-state=(row.state.as_str()) {
            tr { th { "id" } td.mono { (row.id) } }
            tr { th { "state" } td { (state_badge(row.state.as_str())) } }
            tr { th { "reason" } td #reason { (row.reason.as_deref().unwrap_or("")) } }
            tr { th { "direction" } td { (row.direction.as_str()) } }
            tr { th { "uid" } td.mono { (row.uid.as_ref().map(|u| u.as_str()).unwrap_or("—")) } }
            tr { th { "amount" } td { (row.amount.map(|a| a.to_string()).unwrap_or_else(|| "—".into())) } }
            tr { th { "memo" } td { (row.memo.as_deref().unwrap_or("")) } }
            tr { th { "order" } td.mono { (row.order_id.as_ref().map(|o| o.as_str()).unwrap_or("—")) } }
            tr { th { "txid" } td.mono { (row.txid.as_ref().map(|t| t.as_str()).unwrap_or("—")) } }
            tr { th { "attempts" } td { (row.attempts) } }
            tr { th { "created" } td { (time(row.created_at)) } }
            tr { th { "updated" } td { (time(row.updated_at)) } }
            tr { th { "next sweep" } td { (time_opt(row.next_check_at)) } }
        }
        @if row.state == PaymentState::NeedsAttention {
            p { "This payment waits for an operator. Retry sends it back to "
                @if row.txid.is_some() { "completing (verify on chain, then complete at Pi)" } @else { "received (approval runs again)" }
                ": " (retry_form("payments", row.id.as_str())) }
        }
        @if let Some(m) = metadata { h2 { "Metadata" } pre { (m) } }
        (history(&lines))
    };
    Ok(page(&format!("Payment {}", row.id), body))
}

/// One payout's page: its fields, its history and, when it needs attention, the retry button.
#[utoipa::path(
    get,
    path = "/dashboard/payouts/{id}",
    tag = "dashboard",
    operation_id = "dashboard_payout",
    params(
        ("id" = String, Path, description = "The payout id"),
        ("done" = Option<String>, Query, description = "Set by the redirect after an action (`retried`, `resent`): shows a confirmation"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Not a payout id (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such payout (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn payout(
    State(state): State<ApiState>,
    PathId(id): PathId,
    Query(params): Query<Params>,
) -> PageResult {
    let id = payout_id(&id)?;
    let row = state
        .ledger
        .payout(&id)
        .await?
        .ok_or_else(|| ApiError::from(LedgerError::PayoutNotFound(id.clone())))?;
    let events = state.ledger.payout_events(&id).await?;
    let lines: Vec<HistoryLine<'_>> = events
        .iter()
        .map(|e| HistoryLine {
            at: e.at,
            from: e.from_state.map(PayoutState::as_str),
            to: e.to_state.as_str(),
            cause: &e.cause,
            detail: e.detail.as_deref(),
            attempt: e.attempt,
        })
        .collect();
    let body = html! {
        (flash(&params))
        table #payout-detail data-state=(row.state.as_str()) {
            tr { th { "id" } td.mono { (row.id) } }
            tr { th { "state" } td { (state_badge(row.state.as_str())) } }
            tr { th { "reason" } td #reason { (row.reason.as_deref().unwrap_or("")) } }
            tr { th { "uid" } td.mono { (row.uid) } }
            tr { th { "amount" } td { (row.amount) } }
            tr { th { "memo" } td { (row.memo) } }
            tr { th { "batch" } td.mono { (row.batch_id.as_ref().map(|b| b.as_str()).unwrap_or("—")) } }
            tr { th { "idempotency key" } td.mono { (row.idempotency_key) } }
            tr { th { "Pi payment" } td.mono { (row.pi_payment_id.as_ref().map(|p| p.as_str()).unwrap_or("—")) } }
            tr { th { "tx hash" } td.mono { (row.tx_hash.as_deref().unwrap_or("—")) } }
            tr { th { "ledger" } td { (row.ledger.map(|l| l.to_string()).unwrap_or_else(|| "—".into())) } }
            tr { th { "submit attempts" } td { (row.submit_attempts) } }
            tr { th { "attempts" } td { (row.attempts) } }
            tr { th { "created" } td { (time(row.created_at)) } }
            tr { th { "updated" } td { (time(row.updated_at)) } }
            tr { th { "next check" } td { (time_opt(row.next_check_at)) } }
        }
        @if row.state == PayoutState::NeedsAttention {
            p { "This payout waits for an operator. Retry resumes it from its last stored step: "
                (retry_form("payouts", row.id.as_str())) }
        }
        (history(&lines))
    };
    Ok(page(&format!("Payout {}", row.id), body))
}

/// The needs-attention page: every `needs_attention` payment and payout with its reason.
///
/// Each row has a retry button.
#[utoipa::path(
    get,
    path = "/dashboard/attention",
    tag = "dashboard",
    operation_id = "dashboard_attention",
    params(
        ("done" = Option<String>, Query, description = "Set by the redirect after an action (`retried`, `resent`): shows a confirmation"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn attention(State(state): State<ApiState>, Query(params): Query<Params>) -> PageResult {
    let mut one = Params::new();
    one.insert("state".into(), "needs_attention".into());
    let payments = operator_views::payments(&state, &one, operator_views::DEFAULT_PAGE).await?;
    let payouts = operator_views::payouts(&state, &one, operator_views::DEFAULT_PAGE).await?;
    let body = html! {
        (flash(&params))
        h2 { "Payments" }
        table #attention-payments data-testid="payments-table" data-state="needs_attention" {
            tr { th { "payment" } th { "since" } th { "reason" } th { "" } }
            @if payments.rows.is_empty() { tr { td.muted colspan="4" { "none" } } }
            @for r in &payments.rows {
                tr id=(format!("payment-{}", r.id)) data-state=(r.state.as_str()) {
                    td { a.mono href=(format!("/dashboard/payments/{}", r.id)) { (r.id) } }
                    td { (time(r.updated_at)) }
                    td.reason { (r.reason.as_deref().unwrap_or("")) }
                    td { (retry_form("payments", r.id.as_str())) }
                }
            }
        }
        @if payments.next.is_some() { p { a href="/dashboard/payments?state=needs_attention" { "more payments →" } } }
        h2 { "Payouts" }
        table #attention-payouts data-testid="payouts-table" data-state="needs_attention" {
            tr { th { "payout" } th { "since" } th { "reason" } th { "" } }
            @if payouts.rows.is_empty() { tr { td.muted colspan="4" { "none" } } }
            @for r in &payouts.rows {
                tr id=(format!("payout-{}", r.id)) data-state=(r.state.as_str()) {
                    td { a.mono href=(format!("/dashboard/payouts/{}", r.id)) { (r.id) } }
                    td { (time(r.updated_at)) }
                    td.reason { (r.reason.as_deref().unwrap_or("")) }
                    td { (retry_form("payouts", r.id.as_str())) }
                }
            }
        }
        @if payouts.next.is_some() { p { a href="/dashboard/payouts?state=needs_attention" { "more payouts →" } } }
    };
    Ok(page("Needs attention", body))
}

/// The retry button of a payment that needs attention.
///
/// Does what `POST /admin/payments/{id}/retry` does (recorded as done from the dashboard), then
/// shows the payment.
#[utoipa::path(
    post,
    path = "/dashboard/payments/{id}/retry",
    tag = "dashboard",
    operation_id = "dashboard_retry_payment",
    params(
        ("id" = String, Path, description = "The payment id"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 303, description = "Retried: sent to `/dashboard/payments/{id}?done=retried`"),
        (status = 400, description = "Not a payment id (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No or wrong credential", body = ErrorBody),
        (status = 403, description = "A cookie-authenticated form posted from another origin (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such payment (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "The payment is not in needs_attention (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "Ledger or queue unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn retry_payment(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let id = payment_id(&id)?;
    operator_actions::retry_payment(&state, &id, Via::Dashboard).await?;
    Ok(Redirect::to(&format!("/dashboard/payments/{id}?done=retried")).into_response())
}

/// The retry button of a payout that needs attention.
///
/// Does what `POST /admin/payouts/{id}/retry` does (recorded as done from the dashboard), then
/// shows the payout.
#[utoipa::path(
    post,
    path = "/dashboard/payouts/{id}/retry",
    tag = "dashboard",
    operation_id = "dashboard_retry_payout",
    params(
        ("id" = String, Path, description = "The payout id"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 303, description = "Retried: sent to `/dashboard/payouts/{id}?done=retried`"),
        (status = 400, description = "Not a payout id (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No or wrong credential", body = ErrorBody),
        (status = 403, description = "A cookie-authenticated form posted from another origin (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such payout (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 409, description = "The payout is not in needs_attention (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "Ledger or queue unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn retry_payout(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let id = payout_id(&id)?;
    operator_actions::retry_payout(&state, &id, Via::Dashboard).await?;
    Ok(Redirect::to(&format!("/dashboard/payouts/{id}?done=retried")).into_response())
}

fn resend_form(id: i64) -> Markup {
    html! {
        form.inline id=(format!("resend-{id}")) method="post" action=(format!("/dashboard/webhooks/{id}/resend")) {
            button id=(format!("resend-button-{id}")) data-testid="resend" type="submit" { "Resend" }
        }
    }
}

fn delivery_cells(e: &EventRow) -> Markup {
    html! {
        td { (time(e.created_at)) }
        td { @if let Some(d) = e.delivered_at { "delivered " (time(d)) } @else { span.alert { "pending" } } }
        td.num.attempts { (e.delivery_attempts) }
        td { @if e.delivered_at.is_none() { (time_opt(e.next_attempt_at)) } @else { "—" } }
        td.last-error { (e.last_error.as_deref().unwrap_or("")) }
    }
}

/// The webhook deliveries page: outbox events with attempts, last error and resend buttons.
#[utoipa::path(
    get,
    path = "/dashboard/webhooks",
    tag = "dashboard",
    operation_id = "dashboard_webhooks",
    params(
        ("undelivered" = Option<String>, Query, description = "`1` (or `true`, `on`) for only the events the app has not acknowledged"),
        ("before" = Option<i64>, Query, description = "The cursor of the \"Older\" link (an event id)"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Bad query (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn webhooks(State(state): State<ApiState>, Query(params): Query<Params>) -> PageResult {
    let p = operator_views::deliveries(&state, &params, operator_views::DEFAULT_PAGE).await?;
    let undelivered = matches!(
        params.get("undelivered").map(String::as_str),
        Some("1" | "true" | "on")
    );
    let body = html! {
        form.filters #filters method="get" action="/dashboard/webhooks" {
            label { "only undelivered" input #filter-undelivered type="checkbox" name="undelivered" value="1" checked[undelivered]; }
            button #filter-apply type="submit" { "Filter" }
        }
        p.muted { "Events go to APP_WEBHOOK_URL, signed, until the app answers 2xx; failures back off up to 10 minutes. Resend makes one due now (again, if it was delivered: apps dedupe by event id)." }
        table #webhooks {
            tr { th { "event" } th { "type" } th { "subject" } th { "created" } th { "delivery" }
                 th.num { "attempts" } th { "next attempt" } th { "last error" } th { "" } }
            @if p.rows.is_empty() { tr { td.muted colspan="9" { "none" } } }
            @for e in &p.rows {
                tr id=(format!("event-{}", e.id)) data-delivered=(e.delivered_at.is_some()) {
                    td { a href=(format!("/dashboard/webhooks/{}", e.id)) { (e.id) } }
                    td.mono { (e.event_type) }
                    td.mono { (e.subject_id) }
                    (delivery_cells(e))
                    td { (resend_form(e.id)) }
                }
            }
        }
        (next_link("/dashboard/webhooks", &params, p.next.as_ref()))
    };
    Ok(page("Webhook deliveries", body))
}

/// One webhook event's page: its delivery state, its body and what operators did to it.
#[utoipa::path(
    get,
    path = "/dashboard/webhooks/{id}",
    tag = "dashboard",
    operation_id = "dashboard_webhook",
    params(
        ("id" = i64, Path, description = "The outbox event id"),
        ("done" = Option<String>, Query, description = "Set by the redirect after an action (`retried`, `resent`): shows a confirmation"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Not an event id (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such event (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn webhook(
    State(state): State<ApiState>,
    PathId(id): PathId,
    Query(params): Query<Params>,
) -> PageResult {
    let id = event_id(&id)?;
    let event =
        state.ledger.event(id).await?.ok_or_else(|| {
            ApiError::not_found("event_not_found", format!("no outbox event {id}"))
        })?;
    let actions = state
        .ledger
        .operator_actions("event", &id.to_string(), 50)
        .await?;
    let body_json =
        serde_json::to_string_pretty(&pi_payments_core::events::WebhookBody::from_row(&event))
            .unwrap_or_default();
    let body = html! {
        (flash(&params))
        table #webhooks {
            tr { th { "event" } th { "type" } th { "subject" } th { "created" } th { "delivery" }
                 th.num { "attempts" } th { "next attempt" } th { "last error" } th { "" } }
            tr id=(format!("event-{}", event.id)) data-delivered=(event.delivered_at.is_some()) {
                td { (event.id) }
                td.mono { (event.event_type) }
                td.mono { (event.subject_id) }
                (delivery_cells(&event))
                td { (resend_form(event.id)) }
            }
        }
        h2 { "Operator actions" }
        table #operator-actions {
            tr { th { "time" } th { "action" } th { "by / detail" } }
            @if actions.is_empty() { tr { td.muted colspan="3" { "none" } } }
            @for a in &actions {
                tr data-testid="action-row" data-action=(a.action) {
                    td { (time(a.at)) } td.mono { (a.action) } td { (a.detail.as_deref().unwrap_or("")) }
                }
            }
        }
        h2 { "Body" }
        pre #event-body { (body_json) }
    };
    Ok(page(&format!("Webhook event {id}"), body))
}

/// The resend button of a webhook event.
///
/// Does what `POST /admin/webhooks/{id}/resend` does (recorded as done from the dashboard), then
/// shows the event.
#[utoipa::path(
    post,
    path = "/dashboard/webhooks/{id}/resend",
    tag = "dashboard",
    operation_id = "dashboard_resend_webhook",
    params(
        ("id" = i64, Path, description = "The outbox event id"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 303, description = "Re-armed: sent to `/dashboard/webhooks/{id}?done=resent`"),
        (status = 400, description = "Not an event id (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No or wrong credential", body = ErrorBody),
        (status = 403, description = "A cookie-authenticated form posted from another origin (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 404, description = "No such event (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn resend_webhook(
    State(state): State<ApiState>,
    PathId(id): PathId,
) -> Result<Response, ApiError> {
    let id = event_id(&id)?;
    operator_actions::resend_webhook(&state, id, Via::Dashboard).await?;
    Ok(Redirect::to(&format!("/dashboard/webhooks/{id}?done=resent")).into_response())
}

/// The bulk batches page: each import with its counts and progress.
#[utoipa::path(
    get,
    path = "/dashboard/batches",
    tag = "dashboard",
    operation_id = "dashboard_batches",
    params(
        ("before" = Option<String>, Query, description = "The cursor of the \"Older\" link"),
    ),
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 400, description = "Bad query (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
        (status = 503, description = "Ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn batches(State(state): State<ApiState>, Query(params): Query<Params>) -> PageResult {
    let p = operator_views::batches(&state, &params, 20).await?;
    let cap = pi_payments_core::ledger::operator_views::BATCH_COUNT_CAP;
    let body = html! {
        table #batches {
            tr { th { "batch" } th { "source" } th { "imported" } th.num { "new" } th.num { "duplicates" }
                 th.num { "rejected" } th.num { "paid" } th.num { "failed" } th.num { "needs attention" } th { "progress" } }
            @if p.rows.is_empty() { tr { td.muted colspan="10" { "none" } } }
            @for b in &p.rows {
                tr id=(format!("batch-{}", b.batch.id)) data-completed=(b.completed) data-failed=(b.failed) {
                    td { a.mono href=(format!("/dashboard/payouts?batch={}", b.batch.id)) { (b.batch.id) } }
                    td { (b.batch.source.as_deref().unwrap_or("")) }
                    td { (time(b.batch.created_at)) }
                    td.num { (b.batch.accepted) }
                    td.num { (b.batch.duplicates) }
                    td.num { (b.batch.rejected) }
                    td.num { (count(b.completed, cap)) }
                    td.num { (count(b.failed, cap)) }
                    td.num { (count(b.needs_attention, cap)) }
                    td { @if b.batch.accepted > 0 {
                        progress max=(b.batch.accepted) value=((b.completed + b.failed).min(b.batch.accepted)) {} } }
                }
            }
        }
        p.muted { "Paid, failed and needs-attention counts stop at " (cap) " on this page." }
        (next_link("/dashboard/batches", &params, p.next.as_ref()))
    };
    Ok(page("Bulk batches", body))
}

fn drift_button() -> Markup {
    html! {
        form #drift-run method="post" action="/dashboard/drift" {
            button #drift-button type="submit" { "Run the drift report now" }
        }
        p.muted { "It compares the ledger with Pi and the chain (one Pi call per payment compared, within PI_RATE_LIMIT), so it runs only when asked." }
    }
}

/// The drift report page: only its button.
///
/// The report calls Pi, so it never runs on a page view.
#[utoipa::path(
    get,
    path = "/dashboard/drift",
    tag = "dashboard",
    operation_id = "dashboard_drift_form",
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The page", content_type = "text/html", body = String),
        (status = 303, description = "A browser asking for HTML without a credential: sent to `/dashboard/login?next=<this page>`"),
        (status = 401, description = "No credential (not a browser), or a wrong or unset ADMIN_TOKEN", body = ErrorBody),
    )
)]
pub async fn drift_form() -> Markup {
    page("Drift report", drift_button())
}

/// Run the drift report and show it.
///
/// Compares the ledger with Pi and the chain (one Pi call per payment compared), one report
/// at a time per process.
#[utoipa::path(
    post,
    path = "/dashboard/drift",
    tag = "dashboard",
    operation_id = "dashboard_drift_run",
    security(("admin_token" = []), ("operator_cookie" = [])),
    responses(
        (status = 200, description = "The report", content_type = "text/html", body = String),
        (status = 401, description = "No or wrong credential", body = ErrorBody),
        (status = 403, description = "A cookie-authenticated form posted from another origin (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
        (status = 503, description = "No Pi and Horizon clients, a report already running (retry later), or Pi, Horizon or the ledger unreachable (an error page for a browser asking for HTML)", content((ErrorBody = "application/json"), (String = "text/html"))),
    )
)]
pub async fn drift_run(State(state): State<ApiState>) -> PageResult {
    let Some(checker) = &state.drift else {
        return Err(ApiError::unavailable(
            "drift_unavailable",
            "this API runs without Pi and Horizon clients, so it cannot compare: run `pi-payments reconcile --report` instead",
        ));
    };
    let Ok(_permit) = state.dashboard.drift_gate().clone().try_acquire_owned() else {
        return Err(ApiError::retry_later(
            "drift_running",
            "a drift report is already running in this process; wait for it and try again",
        ));
    };
    let report = checker.report().await?;
    let body = html! {
        (drift_button())
        div #drift-report data-clean=(report.clean) {
            p { "Generated " (time(report.generated_at)) ": "
                @if report.clean { strong { "clean" } } @else { strong.alert { "drift found" } } }
            p.muted { "Compared " (report.checked.payments) " payments, " (report.checked.payouts) " payouts, "
                (report.checked.chain_transactions) " chain transactions, "
                (report.checked.incomplete_server_payments) " incomplete server payments (settled rows since "
                (time(report.checked.settled_since)) ")." }
            h2 { "Drift" }
            table #drift-items {
                tr { th { "kind" } th { "subject" } th { "ledger" } th { "Pi" } th { "chain" } th { "detail" } }
                @if report.drift.is_empty() { tr { td.muted colspan="6" { "none" } } }
                @for d in &report.drift {
                    tr data-kind=(d.kind.as_str()) {
                        td.mono { (d.kind.as_str()) }
                        td.mono { (d.subject_type) " " (d.subject) }
                        td { (d.ledger.as_deref().unwrap_or("—")) }
                        td { (d.pi.as_deref().unwrap_or("—")) }
                        td { (d.chain.as_deref().unwrap_or("—")) }
                        td { (d.detail) }
                    }
                }
            }
            h2 { "Needs attention" }
            table #drift-attention {
                tr { th { "subject" } th { "since" } th { "reason" } th { "Pi" } }
                @if report.needs_attention.is_empty() { tr { td.muted colspan="4" { "none" } } }
                @for item in &report.needs_attention {
                    tr {
                        td.mono { (item.subject_type) " "
                            @if item.subject_type == "payment" { a href=(format!("/dashboard/payments/{}", item.subject)) { (item.subject) } }
                            @else if item.subject_type == "payout" { a href=(format!("/dashboard/payouts/{}", item.subject)) { (item.subject) } }
                            @else { (item.subject) } }
                        td { (time(item.since)) }
                        td { (item.reason.as_deref().unwrap_or("")) }
                        td { (item.pi.as_deref().unwrap_or("—")) }
                    }
                }
            }
            @if !report.errors.is_empty() {
                h2 { "Sources that could not be read (the report is incomplete)" }
                ul #drift-errors { @for e in &report.errors { li { (e) } } }
            }
        }
    };
    Ok(page("Drift report", body))
}
