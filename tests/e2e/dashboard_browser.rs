//! The operator dashboard of `pi-payments serve` (embedded mode) in headless Chromium: a
//! purchase made in `/demo` seen in the dashboard after logging in with the operator token,
//! and a payment the service gave up on (Pi's complete endpoint failing) retried from the
//! needs-attention page until it completes. Everything goes through the real service: the
//! demo page, the simulator's fault knobs and the dashboard's forms; the ledger is only read.

use crate::support::browser::{BrowserTest, STEP_DEADLINE};
use fantoccini::Locator;
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// The service's `ADMIN_TOKEN` (passed in, so the test need not read the generated one).
const ADMIN_TOKEN: &str = "dashboard-browser-test-operator-token-0123";

/// `JOB_MAX_ATTEMPTS` of the retry test: the worker hands a payment it cannot complete to a
/// person after two tries (the default, eight, takes about two minutes of backoff).
const JOB_MAX_ATTEMPTS: &str = "2";

/// How long the worker may take to give up on a payment whose completion keeps failing (two
/// tries, each with the Pi client's own retries). A deadline, not a measurement.
const GIVE_UP_DEADLINE: Duration = Duration::from_secs(120);

/// Buy `product` in `/demo` and return the payment's id once the page has sent the complete
/// callback.
async fn buy_in_demo(t: &BrowserTest, product: &str) -> String {
    t.open("/demo").await;
    t.wait_for_step("authenticated", 1).await;
    t.click(&format!("button[data-product='{product}']")).await;
    let complete = t.wait_for_step("complete", 1).await;
    complete.attr("data-payment-id").await.unwrap().unwrap()
}

/// Open `path` of the dashboard without a login: the browser lands on the login form, where
/// the operator pastes the token; afterwards the dashboard shows `path`.
async fn log_in(t: &BrowserTest, path: &str) {
    t.open(path).await;
    t.wait_for("#login-form").await;
    let url = t.browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), "/dashboard/login", "{url}");
    t.wait_for("#token")
        .await
        .send_keys(ADMIN_TOKEN)
        .await
        .unwrap();
    t.click("#login-submit").await;
    t.wait_for("#nav-overview").await;
    let url = t.browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), path, "{url}");
}

/// The `data-cause` of every row of the page's history table, in order.
async fn history_causes(t: &BrowserTest) -> Vec<String> {
    let mut causes = Vec::new();
    for row in t
        .browser
        .client
        .find_all(Locator::Css("#history [data-testid='history-row']"))
        .await
        .unwrap()
    {
        causes.push(row.attr("data-cause").await.unwrap().unwrap_or_default());
    }
    causes
}

/// Scroll the history table into view, so that the screenshot shows it (WebDriver's script
/// runs outside the page's CSP, which allows the page itself no script).
async fn show_history(t: &BrowserTest) {
    t.browser
        .client
        .execute(
            "document.getElementById('history').scrollIntoView()",
            vec![],
        )
        .await
        .unwrap();
}

/// The payment as the app's backend reads it (`GET /payments/{id}`).
async fn payment(t: &BrowserTest, id: &str) -> Value {
    let (status, body) = t.serve.get_as_backend(&format!("/payments/{id}")).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Poll the API until payment `id` is in `state` (bounded by `deadline`).
async fn wait_for_state(t: &BrowserTest, id: &str, state: &str, deadline: Duration) -> Value {
    let until = Instant::now() + deadline;
    loop {
        let body = payment(t, id).await;
        if body["payment"]["state"] == state {
            return body;
        }
        if Instant::now() > until {
            return t
                .fail(&format!("payment {id} never reached {state}: {body:#}"))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The embedded simulator's base URL, from the banner `serve` prints ("simulated Pi Platform
/// API: <url>/v2   (control API: <url>/_sim/...)").
async fn simulator_url(t: &BrowserTest) -> String {
    const LABEL: &str = "simulated Pi Platform API:";
    let until = Instant::now() + STEP_DEADLINE;
    loop {
        let log = t.serve.log();
        let found = log.lines().find_map(|line| {
            let rest = line.split_once(LABEL)?.1.trim();
            let url = rest.split_whitespace().next()?;
            Some(url.trim_end_matches("/v2").to_string())
        });
        if let Some(url) = found {
            return url;
        }
        if Instant::now() > until {
            return t.fail("serve printed no simulator address").await;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Set the simulator's fault knobs (`POST /_sim/faults`).
async fn set_faults(t: &BrowserTest, sim: &str, knobs: Value) {
    let answer = t
        .serve
        .http
        .post(format!("{sim}/_sim/faults"))
        .json(&knobs)
        .send()
        .await
        .unwrap();
    let status = answer.status();
    let body = answer.text().await.unwrap_or_default();
    assert!(status.is_success(), "{status}: {body}");
}

#[tokio::test(flavor = "multi_thread")]
async fn the_dashboard_shows_the_demo_purchase() {
    let Some(t) =
        BrowserTest::start("dashboard_demo_purchase", &[("ADMIN_TOKEN", ADMIN_TOKEN)]).await
    else {
        return;
    };
    let id = buy_in_demo(&t, "coffee").await;
    let delivered = t.wait_for_step("delivered", 1).await;
    assert_eq!(
        delivered.attr("data-payment-id").await.unwrap().unwrap(),
        id
    );

    // The operator opens the dashboard in the same browser and logs in.
    log_in(&t, "/dashboard").await;
    let completed = t
        .wait_for("[data-testid='payment-count-completed']")
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(completed.trim(), "1");
    t.wait_for("#pi-rate").await;
    t.browser.screenshot("overview").await;

    // The payments listing shows it among the completed ones.
    t.click("#nav-payments").await;
    let row = t
        .wait_for(&format!("#payments-completed #payment-{id}"))
        .await;
    assert_eq!(
        row.attr("data-state").await.unwrap().as_deref(),
        Some("completed")
    );

    // Its page: completed, with Pi's approval and completion in the history.
    t.click(&format!("#payment-{id} a")).await;
    let detail = t.wait_for("#payment-detail").await;
    assert_eq!(
        detail.attr("data-state").await.unwrap().as_deref(),
        Some("completed")
    );
    let causes = history_causes(&t).await;
    for cause in [
        "approve_callback",
        "pi_approved",
        "complete_callback",
        "pi_completed",
    ] {
        assert!(
            causes.iter().any(|c| c == cause),
            "no {cause} in {causes:?}"
        );
    }
    show_history(&t).await;
    t.browser.screenshot("payment").await;
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_needs_attention_payment_is_retried_from_the_dashboard() {
    let env = [
        ("ADMIN_TOKEN", ADMIN_TOKEN),
        ("JOB_MAX_ATTEMPTS", JOB_MAX_ATTEMPTS),
    ];
    let Some(t) = BrowserTest::start("dashboard_retry", &env).await else {
        return;
    };
    // Pi's complete endpoint fails (500) on every call until further notice: the worker tries,
    // backs off and after JOB_MAX_ATTEMPTS tries hands the payment to a person.
    let sim = simulator_url(&t).await;
    set_faults(
        &t,
        &sim,
        json!({"fail_rate": 1.0, "endpoints": ["complete"], "targets": ["platform"]}),
    )
    .await;
    let id = buy_in_demo(&t, "coffee").await;
    let stuck = wait_for_state(&t, &id, "needs_attention", GIVE_UP_DEADLINE).await;
    let reason = stuck["payment"]["reason"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert!(!reason.is_empty(), "{stuck:#}");
    // Pi is well again.
    set_faults(&t, &sim, json!({"fail_rate": 0.0, "endpoints": null})).await;

    // The operator logs in straight to the needs-attention page and sees it with its reason.
    log_in(&t, "/dashboard/attention").await;
    let row = t
        .wait_for(&format!("#attention-payments #payment-{id}"))
        .await;
    assert_eq!(
        row.attr("data-state").await.unwrap().as_deref(),
        Some("needs_attention")
    );
    let shown = row
        .find(Locator::Css(".reason"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(shown.trim(), reason.trim());
    t.browser.screenshot("before-retry").await;

    // Retry: the dashboard says so and shows the payment's page.
    t.click(&format!("#retry-button-{id}")).await;
    t.wait_for("#flash").await;
    let url = t.browser.client.current_url().await.unwrap();
    assert_eq!(url.path(), format!("/dashboard/payments/{id}"), "{url}");

    // The re-enqueued complete job finishes it: reload until the page shows it completed.
    let until = Instant::now() + STEP_DEADLINE;
    loop {
        let detail = t.wait_for("#payment-detail").await;
        if detail.attr("data-state").await.unwrap().as_deref() == Some("completed") {
            break;
        }
        if Instant::now() > until {
            let now = payment(&t, &id).await;
            return t
                .fail(&format!(
                    "payment {id} did not complete after the retry: {now:#}"
                ))
                .await;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
        t.browser.client.refresh().await.unwrap();
    }
    show_history(&t).await;
    t.browser.screenshot("after-retry").await;

    // The history says who retried it, and that Pi completed it afterwards.
    let causes = history_causes(&t).await;
    let gave_up = causes.iter().position(|c| c == "gave_up");
    let retried = causes.iter().position(|c| c == "retry_complete");
    let completed = causes.iter().rposition(|c| c == "pi_completed");
    assert!(
        matches!((gave_up, retried, completed), (Some(g), Some(r), Some(c)) if g < r && r < c),
        "{causes:?}"
    );
    let retry_row = t
        .wait_for("#history [data-testid='history-row'][data-cause='retry_complete']")
        .await
        .text()
        .await
        .unwrap();
    assert!(
        retry_row.contains("operator (dashboard)"),
        "the retry is not recorded as the operator's: {retry_row}"
    );
    assert_eq!(payment(&t, &id).await["payment"]["state"], "completed");
    t.finish().await;
}
