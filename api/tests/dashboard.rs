//! The operator dashboard over HTTP (the real router, a SQLite ledger in a temp dir, the
//! in-memory RecordingQueue): who may see it (401, the login redirect, the login cookie, the
//! Bearer token), the pages listing payments by state with their histories, a
//! `needs_attention` payment retried through the dashboard's form, a webhook delivery
//! re-armed, and cross-site form posts refused.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Request, StatusCode, header};
use pi_payments_api::admin::AdminAuth;
use pi_payments_api::auth::Secret;
use pi_payments_api::token_guesses::TokenGuesses;
use pi_payments_api::{ApiState, router};
use pi_payments_core::PaymentId;
use pi_payments_core::jobs::{Job, RecordingQueue};
use pi_payments_core::ledger::{Ledger, PaymentPatch, PayoutPatch, PayoutRequest, now_ms};
use pi_payments_core::state::{PaymentState, PayoutState, PayoutTransition, Transition};
use pi_payments_core::{PiAmount, Uid};
use std::sync::Arc;
use tower::ServiceExt;

const TOKEN: &str = "dashboard-test-admin-token-0123456789";
const HOST: &str = "api.example.com";
const OWN_ORIGIN: &str = "http://api.example.com";

struct Dash {
    router: Router,
    queue: RecordingQueue,
    ledger: Ledger,
    _dir: tempfile::TempDir,
}

struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Answer {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|_| panic!("not JSON ({}): {}", self.status, self.body))
    }

    fn location(&self) -> &str {
        self.headers[header::LOCATION].to_str().unwrap()
    }
}

fn pid(n: u32) -> PaymentId {
    PaymentId::parse(&format!("dashPayment{n:017}")).unwrap()
}

impl Dash {
    async fn new() -> Dash {
        Dash::with_guesses(None).await
    }

    /// An API process whose brake on guessing the token is `guesses` (default: its own).
    async fn with_guesses(guesses: Option<TokenGuesses>) -> Dash {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = Ledger::connect(&url).await.unwrap();
        let queue = RecordingQueue::new();
        let state = ApiState::new(
            ledger.clone(),
            Arc::new(queue.clone()),
            pi_payments_core::products::Catalogue::demo(),
        )
        .with_admin(AdminAuth::new(Some(&Secret::new(TOKEN))));
        let state = match guesses {
            Some(guesses) => state.with_token_guesses(guesses),
            None => state,
        };
        Dash {
            router: router(state),
            queue,
            ledger,
            _dir: dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> Answer {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        Answer {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, path: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::get(path).header(header::HOST, HOST);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, path: &str, form: &str, headers: &[(&str, &str)]) -> Answer {
        let mut req = Request::post(path)
            .header(header::HOST, HOST)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        self.send(req.body(Body::from(form.to_string())).unwrap())
            .await
    }

    /// Log in through the form; the `name=value` a browser sends back.
    async fn login(&self) -> String {
        let form = serde_urlencoded::to_string([("token", TOKEN), ("next", "/dashboard")]).unwrap();
        let a = self
            .post_form("/dashboard/login", &form, &[("origin", OWN_ORIGIN)])
            .await;
        assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
        let set = a.headers[header::SET_COOKIE].to_str().unwrap().to_string();
        set.split(';').next().unwrap().trim().to_string()
    }

    async fn payment_needing_attention(&self, n: u32, reason: &str) -> PaymentId {
        let id = pid(n);
        self.ledger
            .record_approve_callback(&id, None)
            .await
            .unwrap();
        self.ledger
            .apply(
                &id,
                Transition::GaveUp {
                    reason: reason.into(),
                },
                Some(reason),
                5,
                PaymentPatch::default(),
            )
            .await
            .unwrap();
        id
    }
}

fn bearer() -> String {
    format!("Bearer {TOKEN}")
}

#[tokio::test]
async fn without_credentials_it_is_401_or_the_login_form() {
    let d = Dash::new().await;
    // API-style: 401 JSON naming the token.
    let a = d.get("/dashboard", &[]).await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert_eq!(a.json()["error"], "admin_unauthorized");
    let a = d
        .get(
            "/dashboard/payments",
            &[("authorization", "Bearer wrong-token-0123456789")],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // A browser: redirected to the login form, which comes back to the page asked for.
    let html = [("accept", "text/html,application/xhtml+xml")];
    let a = d.get("/dashboard/payments?state=received", &html).await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(
        a.location(),
        "/dashboard/login?next=%2Fdashboard%2Fpayments%3Fstate%3Dreceived"
    );
    let form = d.get(a.location(), &html).await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.body.contains(r#"id="login-form""#), "{}", form.body);
    assert!(
        form.body
            .contains(r#"value="/dashboard/payments?state=received""#)
    );
    // A forged cookie is no credential.
    let a = d
        .get("/dashboard", &[("cookie", "pp_operator=4102444800.00ff")])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    // Actions too.
    let id = d.payment_needing_attention(1, "stuck").await;
    let a = d
        .post_form(
            &format!("/dashboard/payments/{id}/retry"),
            "",
            &[("origin", OWN_ORIGIN)],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    let a = d
        .post_form(&format!("/admin/payments/{id}/retry"), "", &[])
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(d.queue.jobs().is_empty());
}

#[tokio::test]
async fn the_login_cookie_works_and_does_not_contain_the_token() {
    let d = Dash::new().await;
    // A wrong token: the form again, 401, no cookie.
    let a = d
        .post_form(
            "/dashboard/login",
            "token=not-the-token-0123456789&next=%2Fdashboard",
            &[("origin", OWN_ORIGIN)],
        )
        .await;
    assert_eq!(a.status, StatusCode::UNAUTHORIZED);
    assert!(a.headers.get(header::SET_COOKIE).is_none());
    assert!(a.body.contains(r#"id="login-error""#));

    let form =
        serde_urlencoded::to_string([("token", TOKEN), ("next", "/dashboard/attention")]).unwrap();
    let a = d
        .post_form("/dashboard/login", &form, &[("origin", OWN_ORIGIN)])
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    assert_eq!(a.location(), "/dashboard/attention");
    let set = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(!set.contains(TOKEN), "{set}");
    for attr in ["HttpOnly", "SameSite=Strict", "Path=/dashboard", "Max-Age="] {
        assert!(set.contains(attr), "{attr} missing: {set}");
    }
    let cookie = set.split(';').next().unwrap().to_string();
    assert!(cookie.starts_with("pp_operator="));

    let page = d.get("/dashboard", &[("cookie", &cookie)]).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert!(page.body.contains(r#"data-testid="needs-attention-count""#));
    // Nobody may frame or cache it.
    let csp = page.headers[header::CONTENT_SECURITY_POLICY]
        .to_str()
        .unwrap();
    assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
    assert_eq!(page.headers[header::CACHE_CONTROL], "no-store");

    // `next` never leads off the dashboard.
    let form =
        serde_urlencoded::to_string([("token", TOKEN), ("next", "//evil.example/x")]).unwrap();
    let a = d
        .post_form("/dashboard/login", &form, &[("origin", OWN_ORIGIN)])
        .await;
    assert_eq!(a.location(), "/dashboard");
    // A login posted from another site is refused.
    let form = serde_urlencoded::to_string([("token", TOKEN)]).unwrap();
    let a = d
        .post_form(
            "/dashboard/login",
            &form,
            &[("origin", "https://evil.example")],
        )
        .await;
    assert_eq!(a.status, StatusCode::FORBIDDEN);

    // Logging out clears the cookie.
    let a = d
        .post_form(
            "/dashboard/logout",
            "",
            &[("cookie", &cookie), ("origin", OWN_ORIGIN)],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER);
    let cleared = a.headers[header::SET_COOKIE].to_str().unwrap();
    assert!(cleared.starts_with("pp_operator=;"), "{cleared}");
    assert!(cleared.contains("Max-Age=0"), "{cleared}");
}

#[tokio::test]
async fn bearer_renders_the_pages_and_json_twins() {
    let d = Dash::new().await;
    let id = d.payment_needing_attention(1, "verification failed").await;
    let auth = bearer();
    for path in [
        "/dashboard",
        "/dashboard/attention",
        "/dashboard/payments",
        "/dashboard/payouts",
        "/dashboard/webhooks",
        "/dashboard/batches",
        "/dashboard/drift",
    ] {
        let a = d.get(path, &[("authorization", &auth)]).await;
        assert_eq!(a.status, StatusCode::OK, "{path}: {}", a.body);
        assert!(
            a.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{path}"
        );
    }
    let overview = d.get("/dashboard", &[("authorization", &auth)]).await;
    assert!(
        overview
            .body
            .contains(r#"data-testid="needs-attention-count">1<"#),
        "{}",
        overview.body
    );
    let json = d.get("/admin/overview", &[("authorization", &auth)]).await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.json()["payments"]["needs_attention"], 1);
    assert_eq!(json.json()["needs_attention"], 1);
    let list = d
        .get(
            "/admin/payments?state=needs_attention",
            &[("authorization", &auth)],
        )
        .await;
    assert_eq!(list.json()["payments"][0]["id"], id.as_str());
    let bad = d
        .get("/admin/payments?state=lost", &[("authorization", &auth)])
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert_eq!(bad.json()["error"], "invalid_state");
    // The drift report needs Pi: this API has none, said on the page (503), never run on a view.
    let drift = d
        .post_form("/dashboard/drift", "", &[("authorization", &auth)])
        .await;
    assert_eq!(drift.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(drift.json()["error"], "drift_unavailable");
    // A browser gets the same refusal as a page.
    let drift = d
        .post_form(
            "/dashboard/drift",
            "",
            &[("authorization", &auth), ("accept", "text/html")],
        )
        .await;
    assert_eq!(drift.status, StatusCode::SERVICE_UNAVAILABLE);
    assert!(
        drift.body.contains(r#"data-code="drift_unavailable""#),
        "{}",
        drift.body
    );
}

#[tokio::test]
async fn pages_list_a_payment_by_state_and_its_history() {
    let d = Dash::new().await;
    let stuck = d
        .payment_needing_attention(1, "approve failed 5 times")
        .await;
    let fresh = pid(2);
    d.ledger
        .record_approve_callback(&fresh, None)
        .await
        .unwrap();
    let cookie = d.login().await;
    let c = [("cookie", cookie.as_str())];

    // Without a filter: one table per state.
    let all = d.get("/dashboard/payments", &c).await;
    assert_eq!(all.status, StatusCode::OK);
    let attention_table = all
        .body
        .split(r#"<table id="payments-needs_attention""#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(attention_table.contains(&format!(r#"id="payment-{stuck}""#)));
    assert!(!attention_table.contains(&format!(r#"id="payment-{fresh}""#)));
    let received_table = all
        .body
        .split(r#"<table id="payments-received""#)
        .nth(1)
        .unwrap()
        .split("</table>")
        .next()
        .unwrap();
    assert!(received_table.contains(&format!(r#"id="payment-{fresh}""#)));

    // Filtered by state, and searched by id.
    let received = d.get("/dashboard/payments?state=received", &c).await;
    assert!(received.body.contains(r#"id="payments-received""#));
    assert!(received.body.contains(&format!(r#"id="payment-{fresh}""#)));
    assert!(!received.body.contains(&format!(r#"id="payment-{stuck}""#)));
    let found = d.get(&format!("/dashboard/payments?q={stuck}"), &c).await;
    assert!(found.body.contains(&format!(r#"id="payment-{stuck}""#)));
    assert!(!found.body.contains(&format!(r#"id="payment-{fresh}""#)));
    let since = d
        .get("/dashboard/payments?state=received&since=2999-01-01", &c)
        .await;
    assert!(!since.body.contains(&format!(r#"id="payment-{fresh}""#)));

    // The detail page: the reason, the history with its causes and times, the retry form.
    let detail = d.get(&format!("/dashboard/payments/{stuck}"), &c).await;
    assert_eq!(detail.status, StatusCode::OK);
    assert!(detail.body.contains("approve failed 5 times"));
    assert!(detail.body.contains(r#"data-cause="approve_callback""#));
    assert!(detail.body.contains(r#"data-cause="gave_up""#));
    assert!(detail.body.contains(&format!(r#"id="retry-{stuck}""#)));
    assert!(detail.body.contains(" UTC"));
    let no_retry = d.get(&format!("/dashboard/payments/{fresh}"), &c).await;
    assert!(!no_retry.body.contains(&format!(r#"id="retry-{fresh}""#)));
    // The needs_attention page lists it with its reason.
    let attention = d.get("/dashboard/attention", &c).await;
    assert!(attention.body.contains(&format!(r#"id="payment-{stuck}""#)));
    assert!(attention.body.contains("approve failed 5 times"));
    // An unknown payment: a 404 page.
    let missing = d.get(&format!("/dashboard/payments/{}", pid(9)), &c).await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn a_needs_attention_payment_retried_from_the_dashboard_is_reenqueued_by_the_operator() {
    let d = Dash::new().await;
    let id = d
        .payment_needing_attention(1, "approve failed 5 times")
        .await;
    let cookie = d.login().await;
    let a = d
        .post_form(
            &format!("/dashboard/payments/{id}/retry"),
            "",
            &[
                ("cookie", &cookie),
                ("origin", OWN_ORIGIN),
                ("x-request-id", "op-retry-1"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    assert_eq!(
        a.location(),
        format!("/dashboard/payments/{id}?done=retried")
    );
    // Re-enqueued: the approve job (no txid stored), once, carrying the operator's request id
    // so that the worker's logs of it join the access log.
    assert_eq!(
        d.queue.jobs(),
        vec![Job::approve(id.clone()).with_request_id("op-retry-1")]
    );
    let row = d.ledger.payment(&id).await.unwrap().unwrap();
    assert_eq!(row.state, PaymentState::Received);
    let history = d.ledger.payment_events(&id).await.unwrap();
    let last = history.last().unwrap();
    assert_eq!(last.cause, "retry_approve");
    assert_eq!(last.from_state, Some(PaymentState::NeedsAttention));
    assert!(
        last.detail
            .as_deref()
            .unwrap()
            .contains("operator (dashboard)")
    );
    // The page shows it, with the flash.
    let page = d.get(a.location(), &[("cookie", &cookie)]).await;
    assert!(page.body.contains(r#"id="flash""#));
    assert!(page.body.contains(r#"data-cause="retry_approve""#));
    assert!(page.body.contains("operator (dashboard): retry"));
    // A second click: 409, nothing enqueued again.
    let again = d
        .post_form(
            &format!("/dashboard/payments/{id}/retry"),
            "",
            &[("cookie", &cookie), ("origin", OWN_ORIGIN)],
        )
        .await;
    assert_eq!(again.status, StatusCode::CONFLICT);
    assert_eq!(again.json()["error"], "not_needs_attention");
    assert_eq!(d.queue.jobs().len(), 1);

    // The JSON twin, for scripts: a payout in needs_attention.
    let (payout, _) = d
        .ledger
        .request_payout(PayoutRequest {
            uid: Uid::parse("pioneer-p").unwrap(),
            amount: PiAmount::parse("1").unwrap(),
            memo: "Reward".into(),
            metadata: serde_json::json!({}),
            idempotency_key: "dash-payout-1".into(),
            batch_id: None,
        })
        .await
        .unwrap();
    d.ledger
        .apply_payout(
            &payout.id,
            PayoutTransition::GaveUp {
                reason: "stuck".into(),
            },
            None,
            0,
            PayoutPatch::default(),
        )
        .await
        .unwrap();
    let a = d
        .post_form(
            &format!("/admin/payouts/{}/retry", payout.id),
            "",
            &[("authorization", &bearer())],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    assert_eq!(a.json()["payout"]["state"], "requested");
    let request_id = a.headers["x-request-id"].to_str().unwrap();
    assert!(
        d.queue
            .jobs()
            .contains(&Job::payout(payout.id.clone()).with_request_id(request_id))
    );
    let back = d.ledger.payout(&payout.id).await.unwrap().unwrap();
    assert_eq!(back.state, PayoutState::Requested);
    let events = d.ledger.payout_events(&payout.id).await.unwrap();
    assert!(
        events
            .last()
            .unwrap()
            .detail
            .as_deref()
            .unwrap()
            .contains("operator (admin API)")
    );
}

#[tokio::test]
async fn a_webhook_delivery_is_shown_and_resent() {
    let d = Dash::new().await;
    let id = d.payment_needing_attention(1, "stuck").await;
    let event = d
        .ledger
        .events_after(0, 10)
        .await
        .unwrap()
        .into_iter()
        .find(|e| e.subject_id == id.as_str())
        .unwrap();
    let later = now_ms() + 3_600_000;
    d.ledger
        .mark_delivery_failed(event.id, "connection refused by the app", later)
        .await
        .unwrap();
    let cookie = d.login().await;
    let c = [("cookie", cookie.as_str())];
    let list = d.get("/dashboard/webhooks?undelivered=1", &c).await;
    assert!(list.body.contains(&format!(r#"id="event-{}""#, event.id)));
    assert!(list.body.contains("connection refused by the app"));
    assert!(list.body.contains(&format!(r#"id="resend-{}""#, event.id)));

    let a = d
        .post_form(
            &format!("/dashboard/webhooks/{}/resend", event.id),
            "",
            &[
                ("cookie", &cookie),
                ("referer", "http://api.example.com/dashboard/webhooks"),
            ],
        )
        .await;
    assert_eq!(a.status, StatusCode::SEE_OTHER, "{}", a.body);
    let row = d.ledger.event(event.id).await.unwrap().unwrap();
    assert!(row.next_attempt_at.unwrap() <= now_ms(), "due now");
    assert_eq!(row.delivery_attempts, 1);
    assert_eq!(
        d.ledger.due_deliveries(now_ms(), 10).await.unwrap().len(),
        1
    );
    let page = d.get(a.location(), &c).await;
    assert!(
        page.body.contains(r#"data-action="webhook_resend""#),
        "{}",
        page.body
    );
    assert!(page.body.contains("operator (dashboard)"));

    // The JSON twin, and an unknown event.
    let a = d
        .post_form(
            &format!("/admin/webhooks/{}/resend", event.id),
            "",
            &[("authorization", &bearer())],
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
    assert_eq!(a.json()["rearmed"], true);
    let a = d
        .post_form(
            "/admin/webhooks/987654/resend",
            "",
            &[("authorization", &bearer())],
        )
        .await;
    assert_eq!(a.status, StatusCode::NOT_FOUND);
    let actions = d
        .ledger
        .operator_actions("event", &event.id.to_string(), 10)
        .await
        .unwrap();
    assert_eq!(actions.len(), 2);
}

#[tokio::test]
async fn a_cross_site_form_post_is_refused() {
    let d = Dash::new().await;
    let id = d.payment_needing_attention(1, "stuck").await;
    let cookie = d.login().await;
    for headers in [
        vec![
            ("cookie", cookie.as_str()),
            ("origin", "https://evil.example"),
        ],
        vec![("cookie", cookie.as_str()), ("origin", "null")],
        vec![
            ("cookie", cookie.as_str()),
            ("referer", "https://evil.example/page"),
        ],
        // Neither Origin nor Referer: refused too.
        vec![("cookie", cookie.as_str())],
        // Another port of the same host is another origin.
        vec![
            ("cookie", cookie.as_str()),
            ("origin", "http://api.example.com:8443"),
        ],
    ] {
        let a = d
            .post_form(&format!("/dashboard/payments/{id}/retry"), "", &headers)
            .await;
        assert_eq!(a.status, StatusCode::FORBIDDEN, "{headers:?}: {}", a.body);
        assert_eq!(a.json()["error"], "csrf_origin_refused");
    }
    assert!(d.queue.jobs().is_empty());
    assert_eq!(
        d.ledger.payment(&id).await.unwrap().unwrap().state,
        PaymentState::NeedsAttention
    );
}

#[tokio::test]
async fn an_address_presenting_too_many_wrong_tokens_is_locked_out_even_with_the_right_one() {
    use axum::extract::ConnectInfo;
    use pi_payments_api::token_guesses::WRONG_PER_WINDOW;
    use std::net::SocketAddr;
    let d = Dash::new().await;
    let guesser: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let operator: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    let from = |addr: SocketAddr, req: axum::http::request::Builder| {
        req.header(header::HOST, HOST).extension(ConnectInfo(addr))
    };
    let login = |addr: SocketAddr, token: &str| {
        let form = serde_urlencoded::to_string([("token", token), ("next", "/dashboard")]).unwrap();
        from(addr, Request::post("/dashboard/login"))
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("origin", OWN_ORIGIN)
            .header("accept", "text/html")
            .body(Body::from(form))
            .unwrap()
    };
    let ping = |addr: SocketAddr, token: &str| {
        from(addr, Request::get("/admin/ping"))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    // Wrong guesses through the form and as Bearer tokens count alike.
    for i in 0..WRONG_PER_WINDOW {
        let a = if i % 2 == 0 {
            d.send(login(guesser, &format!("guess-{i:016}"))).await
        } else {
            d.send(ping(guesser, &format!("guess-{i:016}"))).await
        };
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "guess {i}: {}", a.body);
    }
    // Now even the right token is refused, so a lucky guess would not show.
    let a = d.send(ping(guesser, TOKEN)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(a.json()["error"], "too_many_wrong_tokens");
    assert!(a.headers.contains_key(header::RETRY_AFTER));
    // The form answers a browser with a page, and sets no cookie.
    let a = d.send(login(guesser, TOKEN)).await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    assert!(a.body.contains("too_many_wrong_tokens"), "{}", a.body);
    assert!(!a.headers.contains_key(header::SET_COOKIE));
    let a = d
        .send(
            from(guesser, Request::get("/dashboard"))
                .header(header::AUTHORIZATION, bearer())
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS);
    // Another address is not affected; public routes are not affected either.
    assert_eq!(d.send(ping(operator, TOKEN)).await.status, StatusCode::OK);
    assert_eq!(
        d.send(login(operator, TOKEN)).await.status,
        StatusCode::SEE_OTHER
    );
    let a = d
        .send(
            from(guesser, Request::get("/healthz"))
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(a.status, StatusCode::OK);
}

#[tokio::test]
async fn wrong_tokens_count_across_the_api_processes_sharing_redis() {
    use axum::extract::ConnectInfo;
    use pi_payments_api::token_guesses::WRONG_PER_WINDOW;
    use std::net::SocketAddr;
    let redis =
        std::env::var("TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    // A namespace of this test's own (as a deployment's queue namespace would be).
    let namespace = format!("test-guesses-{}", pi_payments_core::ids::random_alnum(12));
    let shared = || Some(TokenGuesses::shared(false, &redis, &namespace).unwrap());
    let (one, other) = (
        Dash::with_guesses(shared()).await,
        Dash::with_guesses(shared()).await,
    );
    let guesser: SocketAddr = "203.0.113.7:40000".parse().unwrap();
    let ping = |token: &str, addr: SocketAddr| {
        Request::get("/admin/ping")
            .header(header::HOST, HOST)
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .extension(ConnectInfo(addr))
            .body(Body::empty())
            .unwrap()
    };
    // Half the guesses to each process: neither alone reaches the limit.
    for i in 0..WRONG_PER_WINDOW {
        let api = if i % 2 == 0 { &one } else { &other };
        let a = api.send(ping(&format!("guess-{i:016}"), guesser)).await;
        assert_eq!(a.status, StatusCode::UNAUTHORIZED, "guess {i}");
    }
    for api in [&one, &other] {
        let a = api.send(ping(TOKEN, guesser)).await;
        assert_eq!(a.status, StatusCode::TOO_MANY_REQUESTS, "{}", a.body);
        assert_eq!(a.json()["error"], "too_many_wrong_tokens");
    }
    let operator: SocketAddr = "198.51.100.9:40000".parse().unwrap();
    assert_eq!(one.send(ping(TOKEN, operator)).await.status, StatusCode::OK);
    // An API of another deployment (namespace) on the same Redis is not affected.
    let elsewhere = Dash::with_guesses(Some(
        TokenGuesses::shared(false, &redis, &format!("{namespace}-other")).unwrap(),
    ))
    .await;
    assert_eq!(
        elsewhere.send(ping(TOKEN, guesser)).await.status,
        StatusCode::OK
    );
}

#[tokio::test]
async fn operator_payout_requests_carry_their_request_id_into_the_jobs() {
    let d = Dash::new().await;
    let send = |path: &str, content_type: &str, body: String, request_id: &str| {
        Request::post(path)
            .header(header::HOST, HOST)
            .header(header::AUTHORIZATION, bearer())
            .header(header::CONTENT_TYPE, content_type)
            .header("x-request-id", request_id)
            .body(Body::from(body))
            .unwrap()
    };
    let one = serde_json::json!({"uid": "pioneer-r", "amount": "1", "memo": "Reward",
        "idempotency_key": "req-id-1"});
    let a = d
        .send(send(
            "/payouts",
            "application/json",
            one.to_string(),
            "op-payout-1",
        ))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let single = a.json()["payout"]["id"].as_str().unwrap().to_string();
    let csv = "pioneer-s,2,Reward,req-id-2\npioneer-t,3,Reward,req-id-3\n".to_string();
    let a = d
        .send(send("/payouts/bulk", "text/csv", csv, "op-bulk-1"))
        .await;
    assert_eq!(a.status, StatusCode::ACCEPTED, "{}", a.body);
    let a = d
        .send(send(
            &format!("/payouts/{single}/cancel"),
            "application/json",
            String::new(),
            "op-cancel-1",
        ))
        .await;
    assert_eq!(a.status, StatusCode::OK, "{}", a.body);
    let ids: Vec<(String, Option<String>)> = d
        .queue
        .jobs()
        .iter()
        .map(|job| {
            (
                job.payout_id().unwrap().to_string(),
                job.request_id().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(ids.len(), 4, "{ids:?}");
    assert_eq!(ids[0], (single.clone(), Some("op-payout-1".to_string())));
    assert_ne!(ids[1].0, single);
    assert_eq!(ids[1].1.as_deref(), Some("op-bulk-1"));
    assert_eq!(ids[2].1.as_deref(), Some("op-bulk-1"));
    assert_eq!(ids[3], (single, Some("op-cancel-1".to_string())));
}
