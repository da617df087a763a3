//! Issue 8 at the service level: the real service (started from a Config exactly as `main`
//! does) against pi-sim. Sign-in sets an iframe-proof cookie, an approve callback with only
//! that cookie gets the payment approved, cross-origin cookie requests are refused, ads are
//! granted once, operator routes need ADMIN_TOKEN, and the binary refuses a payout wallet
//! without an admin token. Issue 16: after sign-in and payments no access token is in the
//! ledger's files, and a cookie-only approve is accepted only for the session's own payment.

use crate::support::http::{Answer, send, wait_for_payment_state};
use pi_payments::cli::ConfigArgs;
use pi_payments::{Config, Role, RunningApp};
use pi_sim::control_client::{SimControl, U2aRequest};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use std::path::Path;

const APP_ORIGIN: &str = "https://app.example.com";
const EVIL_ORIGIN: &str = "https://evil.example";
const ADMIN_TOKEN: &str = "e2e-admin-token-0123456789abcdef";
/// `APP_API_TOKEN`: the app's backend reads payments and events with it.
const BACKEND_TOKEN: &str = "e2e-backend-token-0123456789abcdef";

struct Harness {
    app: RunningApp,
    http: reqwest::Client,
    api: String,
    control: SimControl,
    _dir: tempfile::TempDir,
}

impl Harness {
    async fn start(admin_token: Option<&str>) -> Harness {
        Harness::start_on(admin_token, "127.0.0.1:0").await
    }

    /// The service listening on `bind` (a wildcard address is reached through loopback).
    async fn start_on(admin_token: Option<&str>, bind: &str) -> Harness {
        let dir = tempfile::tempdir().unwrap();
        let args = ConfigArgs {
            database_url: Some(format!(
                "sqlite://{}",
                dir.path().join("ledger.db").display()
            )),
            bind_addr: Some(bind.into()),
            app_origins: Some(APP_ORIGIN.into()),
            admin_token: admin_token.map(str::to_string),
            app_api_token: Some(BACKEND_TOKEN.into()),
            ..ConfigArgs::default()
        };
        let mut config = Config::from_args(&args).unwrap();
        config.queue_namespace = format!("test{}", pi_payments_core::ids::random_alnum(10));
        config.queue = pi_payments::config::QueueTarget::Sqlite(dir.path().join("queue.db"));
        let app = RunningApp::start(config, Role::Serve).await.unwrap();
        let port = app.addr.unwrap().port();
        let api = format!("http://127.0.0.1:{port}");
        let control = SimControl::new(&app.pi.api_base_url).unwrap();
        Harness {
            app,
            http: reqwest::Client::new(),
            api,
            control,
            _dir: dir,
        }
    }

    /// A request to the API with extra headers; the answer's status, headers and JSON body.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<Value>,
    ) -> Answer {
        let url = format!("{}{path}", self.api);
        send(&self.http, method, url, headers, body).await
    }

    async fn token(&self, uid: &str) -> String {
        self.control.token(uid).await.unwrap()
    }

    /// An order and the Pioneer's payment for it, created in the (simulated) Pi Browser.
    async fn new_payment(&self, uid: &str) -> String {
        let order = self
            .send(
                reqwest::Method::POST,
                "/orders",
                &[],
                Some(json!({"productId": "coffee"})),
            )
            .await;
        assert_eq!(order.status, 201, "{}", order.body);
        let request = U2aRequest::new(uid, "1.5")
            .memo("coffee")
            .metadata(order.body["metadata"].clone());
        self.control.create_u2a_id(&request).await.unwrap()
    }

    async fn wait_for_state(&self, payment: &str, state: &str) {
        wait_for_payment_state(&self.http, &self.api, BACKEND_TOKEN, payment, state).await;
    }
}

fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sign_in_sets_an_iframe_cookie_that_approves_payments_from_listed_origins_only() {
    let h = Harness::start(Some(ADMIN_TOKEN)).await;
    let uid = "pioneer-cookie";
    let token = h.token(uid).await;

    // Sign in from the app's page; a uid in the body is ignored.
    let signed = h
        .send(
            reqwest::Method::POST,
            "/auth/pi",
            &[("origin", APP_ORIGIN)],
            Some(json!({"accessToken": token, "uid": "someone-else"})),
        )
        .await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    assert_eq!(signed.body["uid"], uid);
    let set_cookie = header(&signed.headers, "set-cookie").unwrap().to_string();
    for attribute in [
        "SameSite=None",
        "Secure",
        "HttpOnly",
        "Partitioned",
        "Path=/",
    ] {
        assert!(
            set_cookie.contains(attribute),
            "{attribute} missing: {set_cookie}"
        );
    }
    assert!(signed.headers.get("x-frame-options").is_none());
    let csp = header(&signed.headers, "content-security-policy").unwrap();
    assert!(
        csp.starts_with("frame-ancestors") && csp.contains(APP_ORIGIN),
        "{csp}"
    );
    assert_eq!(
        header(&signed.headers, "access-control-allow-origin"),
        Some(APP_ORIGIN)
    );
    assert_eq!(
        header(&signed.headers, "access-control-allow-credentials"),
        Some("true")
    );
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    let me = h
        .send(reqwest::Method::GET, "/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.body["uid"], uid);

    // The approve callback with only the cookie: the session's Pioneer pays, so it is approved.
    let payment = h.new_payment(uid).await;
    let approved = h
        .send(
            reqwest::Method::POST,
            "/pi_payment/approve",
            &[("cookie", &cookie), ("origin", APP_ORIGIN)],
            Some(json!({"paymentId": payment})),
        )
        .await;
    assert_eq!(approved.status, 202, "{}", approved.body);
    h.wait_for_state(&payment, "approved").await;

    // The same cookie from an unlisted origin changes nothing.
    let other = h.new_payment(uid).await;
    let refused = h
        .send(
            reqwest::Method::POST,
            "/pi_payment/approve",
            &[("cookie", &cookie), ("origin", EVIL_ORIGIN)],
            Some(json!({"paymentId": other})),
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    assert_eq!(refused.body["error"], "csrf_origin_refused");
    assert!(refused.headers.get("access-control-allow-origin").is_none());
    let unknown = h
        .send(
            reqwest::Method::GET,
            &format!("/payments/{other}"),
            &[],
            None,
        )
        .await;
    assert_eq!(unknown.status, 404, "the refused callback stored nothing");
    let logout = h
        .send(
            reqwest::Method::POST,
            "/auth/logout",
            &[("cookie", &cookie), ("origin", EVIL_ORIGIN)],
            None,
        )
        .await;
    assert_eq!(logout.status, 403);

    // Logging out from the app ends the session.
    let logout = h
        .send(
            reqwest::Method::POST,
            "/auth/logout",
            &[("cookie", &cookie), ("origin", APP_ORIGIN)],
            None,
        )
        .await;
    assert_eq!(logout.status, 200, "{}", logout.body);
    let me = h
        .send(reqwest::Method::GET, "/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(me.status, 401);
    h.app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ad_is_rewarded_once_and_another_pioneers_claim_is_refused() {
    let h = Harness::start(Some(ADMIN_TOKEN)).await;
    let ad_id = format!("ad{}", pi_payments_core::ids::random_alnum(12));
    h.control.set_ad(Some(&ad_id), None).await.unwrap();
    let alice = format!("Bearer {}", h.token("pioneer-alice").await);
    let bob = format!("Bearer {}", h.token("pioneer-bob").await);
    let claim = |auth: String| {
        let ad_id = ad_id.clone();
        let h = &h;
        async move {
            h.send(
                reqwest::Method::POST,
                "/ads/claim",
                &[("authorization", &auth)],
                Some(json!({"adId": ad_id})),
            )
            .await
        }
    };
    let pending = claim(alice.clone()).await;
    assert_eq!(pending.status, 202, "{}", pending.body);
    assert_eq!(pending.body["status"], "pending");
    h.control
        .set_ad(Some(&ad_id), Some("granted"))
        .await
        .unwrap();
    for _ in 0..3 {
        let granted = claim(alice.clone()).await;
        assert_eq!(granted.status, 200, "{}", granted.body);
        assert_eq!(granted.body["status"], "granted");
    }
    let stolen = claim(bob).await;
    assert_eq!(stolen.status, 403, "{}", stolen.body);
    let events = h
        .send(
            reqwest::Method::GET,
            "/events?after=0&limit=1000",
            &[("authorization", &format!("Bearer {BACKEND_TOKEN}"))],
            None,
        )
        .await;
    let grants = events.body["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "ad.granted")
        .count();
    assert_eq!(grants, 1, "{}", events.body);
    h.app.stop().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn operator_routes_need_the_admin_token() {
    let h = Harness::start(Some(ADMIN_TOKEN)).await;
    let right = format!("Bearer {ADMIN_TOKEN}");
    for path in ["/admin/ping", "/admin/drift"] {
        let none = h.send(reqwest::Method::GET, path, &[], None).await;
        assert_eq!(none.status, 401, "{path}: {}", none.body);
        let wrong = h
            .send(
                reqwest::Method::GET,
                path,
                &[("authorization", "Bearer e2e-admin-token-0123456789abcdeX")],
                None,
            )
            .await;
        assert_eq!(wrong.status, 401, "{path}: {}", wrong.body);
        assert!(!wrong.body.to_string().contains(ADMIN_TOKEN));
        let ok = h
            .send(
                reqwest::Method::GET,
                path,
                &[("authorization", &right)],
                None,
            )
            .await;
        assert_eq!(ok.status, 200, "{path}: {}", ok.body);
    }
    // The Pioneer routes do not take the admin token for a Pi token, and vice versa.
    let me = h
        .send(
            reqwest::Method::GET,
            "/me",
            &[("authorization", &right)],
            None,
        )
        .await;
    assert_eq!(me.status, 401, "{}", me.body);
    h.app.stop().await.unwrap();

    // Without ADMIN_TOKEN, on an address other machines reach, the operator routes are
    // closed to everyone: nothing is generated or opened silently.
    let h = Harness::start_on(None, "0.0.0.0:0").await;
    assert!(h.app.generated_admin_token.is_none());
    let closed = h
        .send(
            reqwest::Method::GET,
            "/admin/ping",
            &[("authorization", &right)],
            None,
        )
        .await;
    assert_eq!(closed.status, 401);
    assert_eq!(closed.body["error"], "admin_disabled");
    h.app.stop().await.unwrap();

    // On loopback, `serve` with its embedded simulator generates an operator token: it opens
    // the operator routes, and only it.
    let h = Harness::start(None).await;
    let generated = h
        .app
        .generated_admin_token
        .as_ref()
        .expect("a generated operator token")
        .expose()
        .to_string();
    assert!(h.app.walkthrough().unwrap().contains(&generated));
    let open = h
        .send(
            reqwest::Method::GET,
            "/admin/ping",
            &[("authorization", &format!("Bearer {generated}"))],
            None,
        )
        .await;
    assert_eq!(open.status, 200, "{}", open.body);
    let closed = h
        .send(
            reqwest::Method::GET,
            "/admin/ping",
            &[("authorization", &right)],
            None,
        )
        .await;
    assert_eq!(closed.status, 401);
    h.app.stop().await.unwrap();
}

#[test]
fn the_binary_refuses_a_payout_wallet_without_an_admin_token() {
    let dir = tempfile::tempdir().unwrap();
    // A valid seed (generated for this test; it holds nothing anywhere).
    let seed = "SCTK2ZM24AOEPCWDM5BGYGIJYQXMJ6ICF74FAG7WFUJ6OBYYOCLWVBG7";
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .arg("serve")
        .env_clear()
        .env("PI_WALLET_SEED", seed)
        .env(
            "DATABASE_URL",
            format!("sqlite://{}", dir.path().join("ledger.db").display()),
        )
        .env("BIND_ADDR", "127.0.0.1:0")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "one line: {stderr}");
    assert!(stderr.contains("ADMIN_TOKEN"), "{stderr}");
    assert!(!stderr.contains(seed), "{stderr}");
    assert!(out.stdout.is_empty());

    // A short admin token is refused the same way.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_pi-payments"))
        .arg("serve")
        .env_clear()
        .env("PI_WALLET_SEED", seed)
        .env("ADMIN_TOKEN", "short-token")
        .current_dir(dir.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("ADMIN_TOKEN is shorter"), "{stderr}");
    assert!(!stderr.contains("short-token"), "{stderr}");
}

/// Every file of the SQLite ledger at `db` (the database and its WAL, when there is one), as
/// raw bytes: whether `needle` is anywhere in them.
fn ledger_files_contain(db: &Path, needle: &str) -> bool {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    [db.to_path_buf(), wal.into()].iter().any(|file| {
        let bytes = std::fs::read(file).unwrap_or_default();
        bytes
            .windows(needle.len())
            .any(|window| window == needle.as_bytes())
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_access_token_is_in_the_ledger_files_after_sign_in_and_payments() {
    let h = Harness::start(Some(ADMIN_TOKEN)).await;
    let db = h._dir.path().join("ledger.db");
    let uid = "pioneer-at-rest";
    let token = h.token(uid).await;
    let signed = h
        .send(
            reqwest::Method::POST,
            "/auth/pi",
            &[("origin", APP_ORIGIN)],
            Some(json!({"accessToken": token})),
        )
        .await;
    assert_eq!(signed.status, 200, "{}", signed.body);
    let set_cookie = header(&signed.headers, "set-cookie").unwrap().to_string();
    let cookie = set_cookie.split(';').next().unwrap().to_string();

    // One payment as the SDK sends it (the token in the approve body), one with the cookie
    // only; both complete.
    let with_token = h.new_payment(uid).await;
    let cookie_only = h.new_payment(uid).await;
    for (payment, headers, body) in [
        (
            &with_token,
            vec![("origin", APP_ORIGIN)],
            json!({"paymentId": with_token, "accessToken": token}),
        ),
        (
            &cookie_only,
            vec![("cookie", cookie.as_str()), ("origin", APP_ORIGIN)],
            json!({"paymentId": cookie_only}),
        ),
    ] {
        let approved = h
            .send(
                reqwest::Method::POST,
                "/pi_payment/approve",
                &headers,
                Some(body),
            )
            .await;
        assert_eq!(approved.status, 202, "{}", approved.body);
        h.wait_for_state(payment, "approved").await;
        let txid = h.control.submit(payment).await.unwrap();
        let completed = h
            .send(
                reqwest::Method::POST,
                "/pi_payment/complete",
                &[],
                Some(json!({"paymentId": payment, "txid": txid})),
            )
            .await;
        assert_eq!(completed.status, 202, "{}", completed.body);
        h.wait_for_state(payment, "completed").await;
    }

    // Another Pioneer's payment sent with this session's cookie only: refused, cancelled at Pi.
    let foreign = h.new_payment("pioneer-someone-else").await;
    let sent = h
        .send(
            reqwest::Method::POST,
            "/pi_payment/approve",
            &[("cookie", &cookie), ("origin", APP_ORIGIN)],
            Some(json!({"paymentId": foreign})),
        )
        .await;
    assert_eq!(sent.status, 202, "{}", sent.body);
    h.wait_for_state(&foreign, "cancelled").await;
    assert_eq!(
        h.control.payment_calls(&foreign, "approve").await.unwrap(),
        0
    );

    // The session still works, and neither the database nor its WAL holds the token: while the
    // service runs, and after it stopped (the WAL checkpointed into the file).
    let me = h
        .send(reqwest::Method::GET, "/me", &[("cookie", &cookie)], None)
        .await;
    assert_eq!(me.status, 200, "{}", me.body);
    assert!(db.exists());
    assert!(
        !ledger_files_contain(&db, &token),
        "the access token is in the ledger's files"
    );
    h.app.stop().await.unwrap();
    assert!(
        !ledger_files_contain(&db, &token),
        "the access token is in the ledger file after shutdown"
    );
}
