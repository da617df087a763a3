//! The Pi client against a scripted stub server (every error code, HTML pages, 429s, 5xx,
//! dropped connections, timeouts, the shared limiter, secrets) and against pi-sim.
//!
//! The stub is a few lines of raw tokio TCP rather than axum so that it can also drop a
//! connection mid-request, which a router cannot do cleanly.

use crate::support::sim::{SimEnv, start};
use pi_payments_core::dto::{CreatePaymentRequest, Direction, MediatorAckStatus};
use pi_payments_core::pi_client::{
    PiClient, PiClientConfig, PiError, VerificationError, install_crypto_provider,
};
use pi_payments_core::rate_limit::PiRateLimiter;
use pi_payments_core::retry::RetryPolicy;
use pi_payments_core::secret::AccessToken;
use pi_payments_core::{PaymentId, PiAmount, Txid, Uid};
use pi_sim::SimConfig;
use pi_sim::control_client::{TokenRequest, U2aRequest};
use serde_json::{Value, json};
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

const KEY: &str = "server-key-SECRET-123";
const TOKEN: &str = "access-token-SECRET-456";

/// [`TOKEN`] as the client takes it.
fn token() -> AccessToken {
    AccessToken::stored(TOKEN.to_string())
}
const PID: &str = "aBcD1234eFgH5678iJkL9012mNoP";

// ---------------------------------------------------------------- stub server

/// A request as the stub saw it.
#[derive(Clone, Debug)]
struct Seen {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: String,
}

impl Seen {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// What the stub does with the n-th request.
enum Reply {
    Http {
        status: u16,
        headers: Vec<(&'static str, String)>,
        content_type: &'static str,
        body: String,
    },
    /// Read the request, then close the connection without answering.
    Drop,
    /// Wait, then reply.
    Delay(Duration, Box<Reply>),
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply::Http {
        status,
        headers: vec![],
        content_type: "application/json",
        body: body.to_string(),
    }
}

fn html_reply(status: u16, body: &str) -> Reply {
    Reply::Http {
        status,
        headers: vec![],
        content_type: "text/html",
        body: body.to_string(),
    }
}

struct Stub {
    url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Stub {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
    fn count(&self) -> usize {
        self.seen.lock().unwrap().len()
    }
}

/// Start a stub answering the n-th request (0-based) with `script(n, &request)`.
async fn stub<F>(script: F) -> Stub
where
    F: Fn(usize, &Seen) -> Reply + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(Mutex::new(Vec::new()));
    let script = Arc::new(script);
    let seen2 = seen.clone();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                return;
            };
            let (seen, script) = (seen2.clone(), script.clone());
            tokio::spawn(async move {
                let _ = serve_one(sock, seen, script).await;
            });
        }
    });
    Stub { url, seen }
}

async fn serve_one<F>(
    mut sock: TcpStream,
    seen: Arc<Mutex<Vec<Seen>>>,
    script: Arc<F>,
) -> std::io::Result<()>
where
    F: Fn(usize, &Seen) -> Reply,
{
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut first = lines.next().unwrap_or("").split(' ');
    let method = first.next().unwrap_or("").to_string();
    let path = first.next().unwrap_or("").to_string();
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
        .collect();
    let len: usize = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = sock.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..]).to_string();
    let req = Seen {
        method,
        path,
        headers,
        body,
    };
    let reply = {
        let mut seen = seen.lock().unwrap();
        let n = seen.len();
        seen.push(req.clone());
        script(n, &req)
    };
    let mut reply = reply;
    while let Reply::Delay(d, inner) = reply {
        tokio::time::sleep(d).await;
        reply = *inner;
    }
    match reply {
        Reply::Drop | Reply::Delay(..) => Ok(()),
        Reply::Http {
            status,
            headers,
            content_type,
            body,
        } => {
            let mut out = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n",
                body.len()
            );
            for (k, v) in headers {
                out.push_str(&format!("{k}: {v}\r\n"));
            }
            out.push_str("\r\n");
            out.push_str(&body);
            sock.write_all(out.as_bytes()).await?;
            sock.shutdown().await
        }
    }
}

// ---------------------------------------------------------------- helpers

fn client_with(url: &str, retry: RetryPolicy, limiter: Arc<PiRateLimiter>) -> PiClient {
    install_crypto_provider();
    let mut cfg = PiClientConfig::new(url, KEY, limiter);
    cfg.retry = retry;
    cfg.timeout = Duration::from_secs(5);
    PiClient::new(cfg).unwrap()
}

fn client(url: &str, retry: RetryPolicy) -> PiClient {
    let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(1000).unwrap()));
    client_with(url, retry, limiter)
}

fn pid() -> PaymentId {
    PaymentId::parse(PID).unwrap()
}

fn txid() -> Txid {
    Txid::parse(&"ab".repeat(32)).unwrap()
}

fn payment_json() -> Value {
    json!({
        "identifier": PID,
        "user_uid": "uid-1",
        "amount": 3.1234567,
        "memo": "Order",
        "metadata": {"orderId": "ord_abcdefghij0123456789"},
        "from_address": "GAAA",
        "to_address": "GBBB",
        "direction": "user_to_app",
        "created_at": "2024-05-01T12:34:56.789Z",
        "network": "Pi Testnet",
        "status": {"developer_approved": true, "transaction_verified": false,
                   "developer_completed": false, "cancelled": false, "user_cancelled": false},
        "transaction": null
    })
}

fn error_body(code: &str) -> Value {
    json!({"error": code, "error_message": format!("msg for {code}")})
}

// ---------------------------------------------------------------- error decoding

#[tokio::test]
async fn every_error_code_decodes_to_its_variant() {
    type Check = fn(&PiError) -> bool;
    let with_payment = |code: &str| {
        let mut b = error_body(code);
        b["payment"] = payment_json();
        b
    };
    let cases: Vec<(u16, Value, Check)> = vec![
        (401, error_body("unauthorized"), |e| {
            matches!(e, PiError::Unauthorized)
        }),
        (401, error_body("missing_scope"), |e| {
            matches!(e, PiError::MissingScope)
        }),
        (404, error_body("payment_not_found"), |e| {
            matches!(e, PiError::PaymentNotFound)
        }),
        (
            400,
            error_body("invalid_amount"),
            |e| matches!(e, PiError::InvalidAmount { message } if message == "msg for invalid_amount"),
        ),
        (400, error_body("invalid_arguments"), |e| {
            matches!(e, PiError::InvalidArguments { .. })
        }),
        (400, error_body("invalid_metadata"), |e| {
            matches!(e, PiError::InvalidMetadata { .. })
        }),
        (
            400,
            with_payment("ongoing_payment_found"),
            |e| matches!(e, PiError::OngoingPaymentFound { payment: Some(p) } if p.identifier.as_str() == PID),
        ),
        (400, error_body("ongoing_payment_found"), |e| {
            matches!(e, PiError::OngoingPaymentFound { payment: None })
        }),
        (404, error_body("user_not_found"), |e| {
            matches!(e, PiError::UserNotFound)
        }),
        (400, error_body("too_many_payments"), |e| {
            matches!(e, PiError::TooManyPayments)
        }),
        (400, error_body("too_many_cancelled_payments"), |e| {
            matches!(e, PiError::TooManyCancelledPayments)
        }),
        (
            400,
            with_payment("already_approved"),
            |e| matches!(e, PiError::AlreadyApproved { payment: Some(p) } if p.amount.stroops() == 31_234_567),
        ),
        (400, error_body("cancelled_payment"), |e| {
            matches!(e, PiError::CancelledPayment)
        }),
        (400, error_body("missing_txid"), |e| {
            matches!(e, PiError::MissingTxid)
        }),
        (400, with_payment("already_completed"), |e| {
            matches!(e, PiError::AlreadyCompleted { payment: Some(_) })
        }),
        (400, error_body("txid_mismatch"), |e| {
            matches!(e, PiError::TxidMismatch)
        }),
        (400, error_body("not_verified"), |e| {
            matches!(e, PiError::NotVerified)
        }),
        (400, error_body("payment_tx_present"), |e| {
            matches!(e, PiError::PaymentTxPresent)
        }),
        (404, error_body("ad_not_found"), |e| {
            matches!(e, PiError::AdNotFound)
        }),
        (
            418,
            error_body("brand_new_code"),
            |e| matches!(e, PiError::Other { status: 418, code, .. } if code == "brand_new_code"),
        ),
        (401, json!({}), |e| matches!(e, PiError::Unauthorized)),
    ];
    for (status, body, check) in cases {
        let text = body.to_string();
        let s = stub(move |_, _| json_reply(status, body.clone())).await;
        let err = client(&s.url, RetryPolicy::fast())
            .approve(&pid())
            .await
            .unwrap_err();
        assert!(check(&err), "{status} {text} decoded as {err:?}");
        assert!(!err.is_retryable(), "{err:?}");
        assert_eq!(s.count(), 1, "business errors are not retried: {text}");
        assert!(!err.to_string().is_empty());
    }
}

#[tokio::test]
async fn verification_errors_decode() {
    // The two values seen from the real API (pi-apps/pi-ruby issue 4); anything else is kept
    // verbatim, Pi's own words.
    let codes = [
        (
            "tx_memo_payment_identifier_mismatch",
            VerificationError::MemoMismatch,
        ),
        (
            "payment_already_linked_with_a_tx",
            VerificationError::AlreadyLinked,
        ),
        (
            "transaction_not_found",
            VerificationError::Other("transaction_not_found".into()),
        ),
        (
            "something_new",
            VerificationError::Other("something_new".into()),
        ),
    ];
    for (code, want) in codes {
        for shape in [json!(code), json!({"error": code})] {
            let mut body = error_body("verification_failed");
            body["verification_error"] = shape;
            let s = stub(move |_, _| json_reply(400, body.clone())).await;
            let err = client(&s.url, RetryPolicy::fast())
                .complete(&pid(), &txid())
                .await
                .unwrap_err();
            match err {
                PiError::VerificationFailed { verification_error } => {
                    assert_eq!(verification_error, want)
                }
                other => panic!("{code}: {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn me_401_is_an_invalid_token_whatever_the_body() {
    let s = stub(|_, _| html_reply(401, "<h1>nope</h1>")).await;
    let err = client(&s.url, RetryPolicy::fast())
        .me(&token())
        .await
        .unwrap_err();
    assert!(matches!(err, PiError::InvalidToken), "{err:?}");
    assert_eq!(s.count(), 1);
}

#[tokio::test]
async fn html_502_is_non_json_and_retried() {
    let s =
        stub(|_, _| html_reply(502, "<html><body><h1>502 Bad Gateway</h1></body></html>")).await;
    let err = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap_err();
    match &err {
        PiError::RetriesExhausted { attempts: 5, last } => match last.as_ref() {
            PiError::NonJson {
                status: 502,
                snippet,
            } => assert!(snippet.contains("Bad Gateway")),
            other => panic!("{other:?}"),
        },
        other => panic!("{other:?}"),
    }
    assert_eq!(s.count(), 5);
    assert_eq!(err.attempts(), 5);
}

#[tokio::test]
async fn non_json_and_misshapen_success_bodies() {
    let s = stub(|_, _| html_reply(200, "<html>maintenance</html>")).await;
    let err = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PiError::NonJson { status: 200, .. }),
        "{err:?}"
    );
    assert_eq!(s.count(), 1, "a 200 page is not retried");

    let s = stub(|_, _| json_reply(200, json!({"identifier": 5}))).await;
    let err = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap_err();
    assert!(matches!(err, PiError::Decode { .. }), "{err:?}");

    let s = stub(|_, _| html_reply(404, "Not Found")).await;
    let err = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PiError::NonJson { status: 404, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("PI_API_BASE_URL"));
}

// ---------------------------------------------------------------- retries

#[tokio::test]
async fn too_many_requests_waits_at_least_retry_after() {
    let s = stub(|n, _| {
        if n == 0 {
            Reply::Http {
                status: 429,
                headers: vec![("retry-after", "1".into())],
                content_type: "application/json",
                body: error_body("too_many_requests").to_string(),
            }
        } else {
            json_reply(200, payment_json())
        }
    })
    .await;
    let start = Instant::now();
    let p = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap();
    assert!(
        start.elapsed() >= Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(p.identifier, pid());
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn too_long_retry_after_gives_up_with_the_wait() {
    let s = stub(|_, _| Reply::Http {
        status: 429,
        headers: vec![("Retry-After", "3600".into())],
        content_type: "text/plain",
        body: "slow down".into(),
    })
    .await;
    let err = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(3600)));
    assert!(
        matches!(err.root(), PiError::TooManyRequests { .. }),
        "{err:?}"
    );
    assert_eq!(s.count(), 1);
}

#[tokio::test]
async fn server_error_then_success() {
    let s = stub(|n, _| {
        if n == 0 {
            json_reply(
                500,
                json!({"error": "internal_error", "error_message": "boom"}),
            )
        } else {
            json_reply(200, payment_json())
        }
    })
    .await;
    let p = client(&s.url, RetryPolicy::fast())
        .approve(&pid())
        .await
        .unwrap();
    assert!(p.status.developer_approved);
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn dropped_connection_is_retried() {
    let s = stub(|n, _| {
        if n < 2 {
            Reply::Drop
        } else {
            json_reply(200, payment_json())
        }
    })
    .await;
    let p = client(&s.url, RetryPolicy::fast())
        .complete(&pid(), &txid())
        .await
        .unwrap();
    assert_eq!(p.identifier, pid());
    assert_eq!(s.count(), 3);

    let s = stub(|_, _| Reply::Drop).await;
    let err = client(&s.url, RetryPolicy::fast())
        .get_payment(&pid())
        .await
        .unwrap_err();
    assert!(matches!(err.root(), PiError::Connection { .. }), "{err:?}");
    assert_eq!(err.attempts(), 5);
}

#[tokio::test]
async fn timeout_is_retried() {
    let s = stub(|n, _| {
        if n == 0 {
            Reply::Delay(
                Duration::from_secs(3),
                Box::new(json_reply(200, payment_json())),
            )
        } else {
            json_reply(200, payment_json())
        }
    })
    .await;
    install_crypto_provider();
    let mut cfg = PiClientConfig::new(
        &s.url,
        KEY,
        Arc::new(PiRateLimiter::new(NonZeroU32::new(1000).unwrap())),
    );
    cfg.retry = RetryPolicy::fast();
    cfg.timeout = Duration::from_millis(300);
    let p = PiClient::new(cfg)
        .unwrap()
        .get_payment(&pid())
        .await
        .unwrap();
    assert_eq!(p.identifier, pid());
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn already_approved_after_a_lost_answer_is_surfaced() {
    // The first approve reached "Pi" but its answer was lost; the retry learns it is done.
    let s = stub(|n, _| {
        if n == 0 {
            Reply::Drop
        } else {
            let mut b = error_body("already_approved");
            b["payment"] = payment_json();
            json_reply(400, b)
        }
    })
    .await;
    let err = client(&s.url, RetryPolicy::fast())
        .approve(&pid())
        .await
        .unwrap_err();
    assert!(
        matches!(err, PiError::AlreadyApproved { payment: Some(_) }),
        "{err:?}"
    );
    assert_eq!(s.count(), 2);
}

// ---------------------------------------------------------------- requests

#[tokio::test]
async fn requests_carry_the_right_paths_auth_and_bodies() {
    let s = stub(|_, req| match req.path.as_str() {
        "/v2/me" => json_reply(
            200,
            json!({"uid": "uid-1", "credentials": {"scopes": ["payments"],
                   "valid_until": {"timestamp": 1, "iso8601": "1970-01-01T00:00:01Z"}}}),
        ),
        "/v2/payments/incomplete_server_payments" => {
            json_reply(200, json!({"incomplete_server_payments": [payment_json()]}))
        }
        p if p.starts_with("/v2/ads_network/status/") => json_reply(
            200,
            json!({"identifier": "ad 1/x", "mediator_ack_status": "granted",
                                   "mediator_granted_at": null, "mediator_revoked_at": null}),
        ),
        _ => json_reply(200, payment_json()),
    })
    .await;
    // The trailing /v2/ form is accepted too.
    let c = client(&format!("{}/v2/", s.url), RetryPolicy::fast());
    assert_eq!(c.me(&token()).await.unwrap().uid.as_str(), "uid-1");
    c.get_payment(&pid()).await.unwrap();
    c.approve(&pid()).await.unwrap();
    c.complete(&pid(), &txid()).await.unwrap();
    c.cancel(&pid()).await.unwrap();
    let req = CreatePaymentRequest {
        amount: PiAmount::parse("0.5").unwrap(),
        memo: "Reward".into(),
        metadata: json!({"k": 1}),
        uid: Uid::parse("uid-1").unwrap(),
    };
    c.create_payment(&req).await.unwrap();
    assert_eq!(c.incomplete_server_payments().await.unwrap().len(), 1);
    let ad = c.ad_status("ad 1/x").await.unwrap();
    assert_eq!(ad.mediator_ack_status, Some(MediatorAckStatus::Granted));

    let seen = s.seen();
    let summary: Vec<(String, String)> = seen
        .iter()
        .map(|r| (r.method.clone(), r.path.clone()))
        .collect();
    let want = [
        ("GET", "/v2/me".to_string()),
        ("GET", format!("/v2/payments/{PID}")),
        ("POST", format!("/v2/payments/{PID}/approve")),
        ("POST", format!("/v2/payments/{PID}/complete")),
        ("POST", format!("/v2/payments/{PID}/cancel")),
        ("POST", "/v2/payments".to_string()),
        ("GET", "/v2/payments/incomplete_server_payments".to_string()),
        ("GET", "/v2/ads_network/status/ad%201%2Fx".to_string()),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(m, p)| (m.to_string(), p.clone()))
        .collect();
    assert_eq!(summary, want);
    assert_eq!(
        seen[0].header("authorization"),
        Some(format!("Bearer {TOKEN}").as_str())
    );
    for r in &seen[1..] {
        assert_eq!(
            r.header("authorization"),
            Some(format!("Key {KEY}").as_str()),
            "{}",
            r.path
        );
    }
    let complete: Value = serde_json::from_str(&seen[3].body).unwrap();
    assert_eq!(complete, json!({"txid": "ab".repeat(32)}));
    assert_eq!(
        seen[5].body,
        r#"{"payment":{"amount":0.5,"memo":"Reward","metadata":{"k":1},"uid":"uid-1"}}"#
    );
}

// ---------------------------------------------------------------- limiter

#[tokio::test]
async fn limiter_is_shared_across_clones_and_clients() {
    let s = stub(|_, _| json_reply(200, payment_json())).await;
    let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(4).unwrap()));
    let a = client_with(&s.url, RetryPolicy::fast(), limiter.clone());
    let b = a.clone();
    let c = client_with(&s.url, RetryPolicy::fast(), limiter);
    let start = Instant::now();
    let mut tasks = Vec::new();
    for i in 0..9 {
        let cl = [&a, &b, &c][i % 3].clone();
        tasks.push(tokio::spawn(async move { cl.get_payment(&pid()).await }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    // 9 permits at 4/s with burst 1 need >= 8 intervals = 2 s if (and only if) the limiter is
    // shared; three separate limiters would finish in about 0.5 s.
    assert!(
        start.elapsed() >= Duration::from_millis(1900),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.count(), 9);
}

#[tokio::test]
async fn retries_take_permits_too() {
    let s = stub(|n, _| {
        if n < 4 {
            json_reply(503, json!({}))
        } else {
            json_reply(200, payment_json())
        }
    })
    .await;
    let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(5).unwrap()));
    let start = Instant::now();
    client_with(&s.url, RetryPolicy::fast(), limiter)
        .get_payment(&pid())
        .await
        .unwrap();
    // 5 attempts at 5/s: at least 4 intervals of 200 ms.
    assert!(
        start.elapsed() >= Duration::from_millis(750),
        "{:?}",
        start.elapsed()
    );
    assert_eq!(s.count(), 5);
}

// ---------------------------------------------------------------- secrets

#[tokio::test]
async fn secrets_never_show_in_errors_or_debug() {
    // A misbehaving proxy echoes our headers back in an HTML page.
    let s = stub(|_, req| {
        let echo = format!("<pre>{}</pre>", req.header("authorization").unwrap_or(""));
        html_reply(502, &echo)
    })
    .await;
    let c = client(&s.url, RetryPolicy::none());
    let texts = [
        {
            let e = c.get_payment(&pid()).await.unwrap_err();
            format!("{e} {e:?}")
        },
        {
            let e = c.me(&token()).await.unwrap_err();
            format!("{e} {e:?}")
        },
        format!("{c:?}"),
        format!(
            "{:?}",
            PiClientConfig::new(&s.url, KEY, Arc::new(PiRateLimiter::default()))
        ),
    ];
    for t in texts {
        assert!(!t.contains(KEY) && !t.contains(TOKEN), "secret leaked: {t}");
    }
    let e = c.get_payment(&pid()).await.unwrap_err();
    assert!(e.to_string().contains("[redacted]"), "{e}");
}

// ---------------------------------------------------------------- against pi-sim

impl SimEnv {
    fn client(&self) -> PiClient {
        self.pi(RetryPolicy::fast())
    }
}

#[tokio::test]
async fn sim_a2u_create_get_cancel_and_incomplete() {
    let sim = start(SimConfig::default()).await;
    sim.pioneer("pioneer-a2u").await;
    let c = sim.client();
    let req = CreatePaymentRequest {
        amount: PiAmount::parse("1.2345678").unwrap(),
        memo: "Reward".into(),
        metadata: json!({"payoutId": "p1"}),
        uid: Uid::parse("pioneer-a2u").unwrap(),
    };
    let created = c.create_payment(&req).await.unwrap();
    assert_eq!(created.amount.stroops(), 12_345_678);
    assert_eq!(created.direction, Some(Direction::AppToUser));
    assert!(created.status.developer_approved);

    let got = c.get_payment(&created.identifier).await.unwrap();
    assert_eq!(got, created);

    // A2U payments are created approved.
    let err = c.approve(&created.identifier).await.unwrap_err();
    assert!(matches!(err, PiError::AlreadyApproved { .. }), "{err:?}");

    // One open A2U payment per user: a second create names the open one.
    let err = c.create_payment(&req).await.unwrap_err();
    match err {
        PiError::OngoingPaymentFound { payment: Some(p) } => {
            assert_eq!(p.identifier, created.identifier)
        }
        other => panic!("{other:?}"),
    }

    let open = c.incomplete_server_payments().await.unwrap();
    assert!(open.iter().any(|p| p.identifier == created.identifier));

    let cancelled = c.cancel(&created.identifier).await.unwrap();
    assert!(cancelled.status.cancelled);
    let open = c.incomplete_server_payments().await.unwrap();
    assert!(!open.iter().any(|p| p.identifier == created.identifier));

    let err = c.cancel(&created.identifier).await.unwrap_err();
    assert!(matches!(err, PiError::CancelledPayment), "{err:?}");
    let missing = PaymentId::parse("nopenopenopenopenopenopenope").unwrap();
    let err = c.get_payment(&missing).await.unwrap_err();
    assert!(matches!(err, PiError::PaymentNotFound), "{err:?}");
}

#[tokio::test]
async fn sim_me_with_a_minted_token_and_a_bad_one() {
    let sim = start(SimConfig::default()).await;
    let c = sim.client();
    let request = TokenRequest {
        username: Some("alice".into()),
        ..TokenRequest::for_uid("pioneer-me")
    };
    let minted = sim.control.mint_token(&request).await.unwrap();
    let me = c
        .me(&AccessToken::new(&minted.access_token).unwrap())
        .await
        .unwrap();
    assert_eq!(me.uid.as_str(), "pioneer-me");
    assert_eq!(me.username.as_deref(), Some("alice"));
    assert!(me.has_scope("payments"));
    let err = c
        .me(&AccessToken::new("not-a-real-token").unwrap())
        .await
        .unwrap_err();
    assert!(matches!(err, PiError::InvalidToken), "{err:?}");
}

#[tokio::test]
async fn sim_u2a_approve_complete_and_lost_answers() {
    let sim = start(SimConfig::default()).await;
    let c = sim.client();
    let request = U2aRequest::new("pioneer-u2a", "0.5")
        .memo("Cup")
        .metadata(json!({"orderId": "o1"}));
    let id = sim.control.create_u2a_id(&request).await.unwrap();
    let id = PaymentId::parse(&id).unwrap();

    // The approve is applied but its answer is dropped: the retry learns it is done.
    sim.faults(json!({"drop_next": 1})).await;
    let err = c.approve(&id).await.unwrap_err();
    assert!(matches!(err, PiError::AlreadyApproved { .. }), "{err:?}");
    assert!(c.get_payment(&id).await.unwrap().status.developer_approved);

    let submitted = sim.control.submit(id.as_str()).await.unwrap();
    let txid = Txid::parse_lenient(&submitted).unwrap();

    // An injected 500 is retried.
    sim.faults(json!({"fail_next": 1})).await;
    let done = c.complete(&id, &txid).await.unwrap();
    assert!(done.status.developer_completed);
    assert_eq!(done.txid(), Some(&txid));
    let err = c.complete(&id, &txid).await.unwrap_err();
    assert!(matches!(err, PiError::AlreadyCompleted { .. }), "{err:?}");
}

#[tokio::test]
async fn sim_rate_limit_is_honoured() {
    let sim = start(SimConfig::default()).await;
    let c = sim.client();
    sim.faults(json!({"rate_limit": 2})).await;
    // Our limiter allows 1000/s; pi-sim's 2/s answers 429 + Retry-After, which we wait out.
    for _ in 0..4 {
        c.incomplete_server_payments().await.unwrap();
    }
    let log = sim.control.log().await.unwrap();
    let endpoint = &log["endpoints"]["incomplete_server_payments"];
    assert!(endpoint["rate_limited"].as_u64().unwrap() >= 1, "{log}");
    assert_eq!(endpoint["status"]["200"].as_u64(), Some(4), "{log}");
}

#[tokio::test]
async fn sim_ad_status() {
    let sim = start(SimConfig::default()).await;
    let c = sim.client();
    sim.control
        .set_ad(Some("ad-granted"), Some("granted"))
        .await
        .unwrap();
    sim.control.set_ad(Some("ad-pending"), None).await.unwrap();
    let ad = c.ad_status("ad-granted").await.unwrap();
    assert_eq!(ad.identifier, "ad-granted");
    assert_eq!(ad.mediator_ack_status, Some(MediatorAckStatus::Granted));
    assert_eq!(
        c.ad_status("ad-pending").await.unwrap().mediator_ack_status,
        None
    );
    let err = c.ad_status("ad-unknown").await.unwrap_err();
    assert!(matches!(err, PiError::AdNotFound), "{err:?}");
}

#[test]
fn requests_wait_as_long_as_pis_own_sdks() {
    // Pi's SDKs give Pi 20 s; a create that timed out sooner is a payment in doubt.
    let limiter = Arc::new(PiRateLimiter::new(NonZeroU32::new(10).unwrap()));
    let cfg = PiClientConfig::new("http://127.0.0.1:1", KEY, limiter);
    assert_eq!(cfg.timeout, Duration::from_secs(20));
}

#[tokio::test]
async fn an_unreadable_incomplete_server_payment_hides_none_of_the_others() {
    let mut broken = payment_json();
    broken["amount"] = json!("lots");
    let s = stub(move |_, _| {
        json_reply(
            200,
            json!({"incomplete_server_payments": [broken.clone(), payment_json(), {"no": "id"}]}),
        )
    })
    .await;
    let c = client(&s.url, RetryPolicy::fast());
    let (payments, unreadable) = c.incomplete_server_payments_read().await.unwrap();
    assert_eq!(payments.len(), 1);
    assert_eq!(payments[0].identifier.as_str(), PID);
    assert_eq!(unreadable.len(), 2);
    assert_eq!(unreadable[0].index, 0);
    assert_eq!(unreadable[0].identifier.as_deref(), Some(PID));
    assert!(!unreadable[0].problem.is_empty());
    assert_eq!(unreadable[1].identifier, None);
    assert_eq!(c.incomplete_server_payments().await.unwrap().len(), 1);
}
