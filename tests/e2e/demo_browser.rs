//! The `/demo` storefront of `pi-payments serve` (embedded mode) in headless Chromium: a
//! purchase from the click to "delivered", a rewarded ad to its reward, and a payment left
//! incomplete (the app closed after the Pioneer signed) finished by `onIncompletePaymentFound`
//! at the next sign-in. Each checks the page's step log and then the ledger through the API.

use crate::support::browser::BrowserTest;

/// The steps of `log` in order, keeping only those in `wanted` (first occurrence of each).
fn order_of(log: &[(String, String)], wanted: &[&str]) -> Vec<String> {
    let mut seen: Vec<String> = Vec::new();
    for (step, _) in log {
        if wanted.contains(&step.as_str()) && !seen.contains(step) {
            seen.push(step.clone());
        }
    }
    seen
}

/// The ledger's view of a payment and its order, as the app's backend reads them.
async fn assert_paid(t: &BrowserTest, payment_id: &str, order_id: &str) {
    let (status, payment) = t
        .serve
        .get_as_backend(&format!("/payments/{payment_id}"))
        .await;
    assert_eq!(status, 200, "{payment}");
    assert_eq!(payment["payment"]["state"], "completed", "{payment}");
    let (status, order) = t.serve.get_as_backend(&format!("/orders/{order_id}")).await;
    assert_eq!(status, 200, "{order}");
    assert_eq!(order["state"], "paid", "{order}");
    assert_eq!(order["payment_id"], payment_id, "{order}");
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_purchase_goes_from_click_to_delivered() {
    let Some(t) = BrowserTest::start("demo_purchase", &[]).await else {
        return;
    };
    t.open("/demo").await;
    t.wait_for_step("authenticated", 1).await;
    t.browser.screenshot("signed-in").await;

    t.click("button[data-product='coffee']").await;
    let delivered = t.wait_for_step("delivered", 1).await;
    t.browser.screenshot("delivered").await;

    let payment_id = delivered.attr("data-payment-id").await.unwrap().unwrap();
    let order_id = delivered.attr("data-order-id").await.unwrap().unwrap();
    let log = t.steps().await;
    assert_eq!(
        order_of(
            &log,
            &[
                "authenticated",
                "order",
                "approve",
                "signed",
                "complete",
                "completed",
                "delivered"
            ]
        ),
        [
            "authenticated",
            "order",
            "approve",
            "signed",
            "complete",
            "completed",
            "delivered"
        ],
        "{log:#?}"
    );
    assert_paid(&t, &payment_id, &order_id).await;
    // Exactly one payment.completed event for it in the outbox (what the app delivers from).
    let (_, events) = t.serve.get_as_backend("/events?limit=1000").await;
    let completed = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| {
            e["type"] == "payment.completed" && e["data"]["payment"]["id"] == payment_id.as_str()
        })
        .count();
    assert_eq!(completed, 1, "{events:#}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_rewarded_ad_gives_its_reward() {
    let Some(t) = BrowserTest::start("demo_rewarded_ad", &[]).await else {
        return;
    };
    t.open("/demo").await;
    t.wait_for_step("authenticated", 1).await;
    t.click("#watch-ad:not([disabled])").await;
    let rewarded = t.wait_for_step("rewarded", 1).await;
    t.browser.screenshot("rewarded").await;

    let ad_id = rewarded.attr("data-ad-id").await.unwrap().unwrap();
    let coins = t.wait_for("#coins").await.text().await.unwrap();
    assert_eq!(coins, "10");
    // The grant is in the ledger's outbox, once.
    let (_, events) = t.serve.get_as_backend("/events?limit=1000").await;
    let granted: Vec<_> = events["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ad.granted" && e.to_string().contains(&ad_id))
        .collect();
    assert_eq!(granted.len(), 1, "{events:#}");
    t.finish().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn demo_incomplete_payment_is_finished_at_the_next_sign_in() {
    let Some(t) = BrowserTest::start("demo_incomplete", &[]).await else {
        return;
    };
    t.open("/demo").await;
    t.wait_for_step("authenticated", 1).await;
    // The app "closes" right after the Pioneer signs: no complete callback is sent.
    t.click("#pi-sim-close-after-signing").await;
    t.click("button[data-product='sticker']").await;
    let interrupted = t.wait_for_step("interrupted", 1).await;
    let payment_id = interrupted.attr("data-payment-id").await.unwrap().unwrap();
    t.browser.screenshot("interrupted").await;

    // Opening the app again signs the same Pioneer in; Pi hands over the unfinished payment.
    t.browser.client.refresh().await.unwrap();
    let found = t.wait_for_step("incomplete-found", 1).await;
    assert_eq!(
        found.attr("data-payment-id").await.unwrap().unwrap(),
        payment_id
    );
    let delivered = t.wait_for_step("delivered", 1).await;
    t.browser.screenshot("delivered").await;
    assert_eq!(
        delivered.attr("data-payment-id").await.unwrap().unwrap(),
        payment_id
    );
    let order_id = delivered.attr("data-order-id").await.unwrap().unwrap();
    assert_paid(&t, &payment_id, &order_id).await;
    t.finish().await;
}
