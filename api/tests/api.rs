//! The API end to end at the HTTP level, against a real SQLite ledger in a temp dir and the
//! in-memory RecordingQueue: every callback body spelling, the Bearer header, 400s that store
//! nothing, 404/405/413 as JSON, repeated callbacks enqueue once, orders, events, readiness.

// Test code: a failed unwrap is a failed test (the workspace denies unwrap outside tests).
#![allow(clippy::unwrap_used)]

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use pi_payments_api::admin::AdminAuth;
use pi_payments_api::auth::Secret;
use pi_payments_api::{ApiState, router};
use pi_payments_core::jobs::{ApproveCredential, Job, RecordingQueue};
use pi_payments_core::ledger::Ledger;
use pi_payments_core::products::Catalogue;
use pi_payments_core::secret::AccessToken;
use pi_payments_core::{PaymentId, Txid};
use serde_json::{Value, json};
use std::sync::Arc;
use tower::ServiceExt;

struct TestApi {
    router: Router,
    state: ApiState,
    queue: RecordingQueue,
    ledger: Ledger,
    _dir: tempfile::TempDir,
}

const BACKEND: &str = "api-tests-backend-token-0123456789";

const TX: &str = "7a3c5e9f00112233445566778899aabbccddeeff00112233445566778899aabb";

fn pid(n: u32) -> String {
    format!("testPayment{n:017}")
}

impl TestApi {
    async fn new() -> TestApi {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite://{}", dir.path().join("ledger.db").display());
        let ledger = Ledger::connect(&url).await.unwrap();
        let queue = RecordingQueue::new();
        // Reads of payments, orders and events need a reason: these tests read as the app's
        // backend (`APP_API_TOKEN`); tests/reads.rs covers who else may.
        let state = ApiState::new(ledger.clone(), Arc::new(queue.clone()), Catalogue::demo())
            .with_app_api(AdminAuth::new(Some(&Secret::new(BACKEND))));
        TestApi {
            router: router(state.clone()),
            state,
            queue,
            ledger,
            _dir: dir,
        }
    }

    async fn send(&self, req: Request<Body>) -> (StatusCode, Value) {
        let response = self.router.clone().oneshot(req).await.unwrap();
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let value = serde_json::from_slice(&bytes).unwrap_or_else(|_| {
            panic!(
                "non-JSON answer ({status}): {}",
                String::from_utf8_lossy(&bytes)
            )
        });
        (status, value)
    }

    async fn post_raw(
        &self,
        path: &str,
        body: impl Into<Body>,
        bearer: Option<&str>,
    ) -> (StatusCode, Value) {
        let mut req = Request::post(path).header(header::CONTENT_TYPE, "application/json");
        if let Some(token) = bearer {
            req = req.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(req.body(body.into()).unwrap()).await
    }

    async fn post(&self, path: &str, body: Value) -> (StatusCode, Value) {
        self.post_raw(path, body.to_string(), None).await
    }

    /// GET as the app's backend.
    async fn get(&self, path: &str) -> (StatusCode, Value) {
        self.send(
            Request::get(path)
                .header(header::AUTHORIZATION, format!("Bearer {BACKEND}"))
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }

    /// The jobs pushed so far, once every answered callback's push has happened.
    /// The jobs enqueued so far, without the request ids they carry (every request has one;
    /// `callbacks_carry_their_request_id_into_the_job` checks them).
    async fn jobs(&self) -> Vec<Job> {
        self.state.callbacks.flush().await;
        self.queue
            .jobs()
            .into_iter()
            .map(|job| {
                let mut value = serde_json::to_value(&job).unwrap();
                value.as_object_mut().unwrap().remove("request_id");
                serde_json::from_value(value).unwrap()
            })
            .collect()
    }

    async fn payment_count(&self) -> i64 {
        sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM payments")
            .fetch_one(self.ledger.pool())
            .await
            .unwrap()
    }
}

#[tokio::test]
async fn approve_is_recorded_enqueued_and_answered_202() {
    let api = TestApi::new().await;
    let (status, body) = api
        .post(
            "/pi_payment/approve",
            json!({"paymentId": pid(1), "accessToken": "tok-1"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED, "{body}");
    assert_eq!(body, json!({"payment_id": pid(1), "state": "received"}));
    // The token rides in the job; the ledger never stores it.
    let id = PaymentId::parse(&pid(1)).unwrap();
    assert_eq!(
        api.jobs().await,
        vec![Job::approve_with(
            id.clone(),
            ApproveCredential::from_token(AccessToken::new("tok-1"))
        )]
    );
    assert!(api.ledger.access_token(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn both_prefixes_serve_the_callbacks() {
    let api = TestApi::new().await;
    let (status, _) = api
        .post("/api/pi_payment/approve", json!({"paymentId": pid(2)}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let (status, _) = api
        .post("/api/pi_payment/cancel", json!({"paymentId": pid(2)}))
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(api.jobs().await.len(), 2);
}

#[tokio::test]
async fn bearer_header_is_an_access_token() {
    let api = TestApi::new().await;
    let (status, _) = api
        .post_raw(
            "/pi_payment/approve",
            json!({"paymentId": pid(3)}).to_string(),
            Some("bearer-tok"),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    let id = PaymentId::parse(&pid(3)).unwrap();
    assert_eq!(
        api.jobs().await,
        vec![Job::approve_with(
            id.clone(),
            ApproveCredential::from_token(AccessToken::new("bearer-tok"))
        )]
    );
    assert!(api.ledger.access_token(&id).await.unwrap().is_none());
}

#[tokio::test]
async fn complete_accepts_transaction_id_and_txid() {
    let api = TestApi::new().await;
    for (n, field) in [(4, "transactionId"), (5, "txid")] {
        api.post(
            "/pi_payment/approve",
            json!({"paymentId": pid(n), "accessToken": "t"}),
        )
        .await;
        let tx = format!("{n:0>64}");
        let (status, body) = api
            .post(
                "/pi_payment/complete",
                json!({"paymentId": pid(n), field: tx}),
            )
            .await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        // The txid is a claim: nothing is bound until the complete job reads Pi's.
        assert_eq!(body["state"], "received");
        let row = api
            .ledger
            .payment(&PaymentId::parse(&pid(n)).unwrap())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(row.txid, None);
    }
    let jobs = api.jobs().await;
    assert_eq!(
        jobs.iter()
            .filter(|j| matches!(j, Job::Complete(_)))
            .count(),
        2
    );
}

#[tokio::test]
async fn cancel_error_and_incomplete_spellings() {
    let api = TestApi::new().await;
    let (s, _) = api
        .post("/pi_payment/cancel", json!({"paymentId": pid(6)}))
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    for (n, error) in [
        (7, json!({})),
        (8, json!("user closed the dialog")),
        (9, json!([1, {"x": null}])),
    ] {
        let (s, b) = api
            .post(
                "/pi_payment/error",
                json!({"paymentId": pid(n), "error": error}),
            )
            .await;
        assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    }
    let (s, _) = api
        .post(
            "/pi_payment/incomplete",
            json!({"paymentId": pid(10), "transactionId": null}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED);
    let (s, b) = api
        .post(
            "/pi_payment/incomplete",
            json!({"paymentId": pid(11), "transactionId": TX}),
        )
        .await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::ACCEPTED, Some("received"))
    );
    // A full PaymentDTO: only identifier and transaction.txid are taken.
    let dto = json!({"payment": {
        "identifier": pid(12), "user_uid": "someone", "amount": 99999, "memo": "forged",
        "metadata": {"orderId": "ord_forged"}, "to_address": "GFORGED", "status": {},
        "transaction": {"txid": "ab".repeat(32), "verified": true, "_link": "https://x"}}});
    let (s, b) = api.post("/pi_payment/incomplete", dto).await;
    assert_eq!(
        (s, b["state"].as_str()),
        (StatusCode::ACCEPTED, Some("received"))
    );
    let id = PaymentId::parse(&pid(12)).unwrap();
    let row = api.ledger.payment(&id).await.unwrap().unwrap();
    // The DTO's txid rides in the complete job as a claim; nothing is bound.
    assert_eq!(row.txid, None);
    let claim = Txid::parse(&"ab".repeat(32)).unwrap();
    assert!(api.jobs().await.contains(&Job::complete_hinted(id, claim)));
    assert_eq!(
        (row.amount, row.memo, row.metadata, row.uid),
        (None, None, None, None)
    );
}

#[tokio::test]
async fn repeated_callbacks_enqueue_once() {
    let api = TestApi::new().await;
    let approve = json!({"paymentId": pid(20), "accessToken": "t"});
    let complete = json!({"paymentId": pid(20), "txid": TX});
    for _ in 0..3 {
        assert_eq!(
            api.post("/pi_payment/approve", approve.clone()).await.0,
            StatusCode::ACCEPTED
        );
    }
    for _ in 0..3 {
        assert_eq!(
            api.post("/pi_payment/complete", complete.clone()).await.0,
            StatusCode::ACCEPTED
        );
    }
    let id = PaymentId::parse(&pid(20)).unwrap();
    assert_eq!(
        api.jobs().await,
        vec![
            Job::approve_with(
                id.clone(),
                ApproveCredential::from_token(AccessToken::new("t"))
            ),
            Job::complete_hinted(id, Txid::parse(TX).unwrap())
        ]
    );
}

#[tokio::test]
async fn concurrent_callbacks_are_group_committed_and_enqueued_once_each() {
    let api = Arc::new(TestApi::new().await);
    let tasks: Vec<_> = (0..200u32)
        .map(|i| {
            let api = api.clone();
            tokio::spawn(async move {
                // Every payment twice, concurrently: one job each.
                let body = json!({"paymentId": pid(1000 + i % 100), "accessToken": "t"});
                api.post("/pi_payment/approve", body).await.0
            })
        })
        .collect();
    for t in tasks {
        assert_eq!(t.await.unwrap(), StatusCode::ACCEPTED);
    }
    assert_eq!(api.jobs().await.len(), 100);
    assert_eq!(api.payment_count().await, 100);
}

/// A txid in a callback is a claim: a second, different one is accepted and binds nothing
/// either (the complete job binds the one Pi linked).
#[tokio::test]
async fn txids_in_callbacks_bind_nothing() {
    let api = TestApi::new().await;
    api.post(
        "/pi_payment/complete",
        json!({"paymentId": pid(21), "txid": TX}),
    )
    .await;
    let (s, b) = api
        .post(
            "/pi_payment/complete",
            json!({"paymentId": pid(21), "txid": "cd".repeat(32)}),
        )
        .await;
    assert_eq!(s, StatusCode::ACCEPTED, "{b}");
    let row = api
        .ledger
        .payment(&PaymentId::parse(&pid(21)).unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_eq!((row.state.as_str(), row.txid), ("received", None));
}

#[tokio::test]
async fn bad_bodies_get_400_and_store_nothing() {
    let api = TestApi::new().await;
    let cases: Vec<(&str, String)> = vec![
        ("approve", "not json".into()),
        ("approve", "".into()),
        ("approve", "[1,2]".into()),
        ("approve", "{}".into()),
        ("approve", json!({"paymentId": 12345}).to_string()),
        ("approve", json!({"paymentId": "../../etc"}).to_string()),
        (
            "approve",
            json!({"paymentId": pid(30), "accessToken": {"a": 1}}).to_string(),
        ),
        ("complete", json!({"paymentId": pid(31)}).to_string()),
        (
            "complete",
            json!({"paymentId": pid(31), "txid": "xyz"}).to_string(),
        ),
        (
            "complete",
            json!({"paymentId": pid(31), "txid": 7}).to_string(),
        ),
        ("cancel", json!({"id": pid(32)}).to_string()),
        ("incomplete", json!({"payment": "nope"}).to_string()),
        (
            "incomplete",
            json!({"payment": {"identifier": pid(33), "transaction": 5}}).to_string(),
        ),
    ];
    for (step, body) in cases {
        let (status, answer) = api
            .post_raw(&format!("/pi_payment/{step}"), body.clone(), None)
            .await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{step} {body}: {answer}");
        assert!(answer["error"].is_string(), "{answer}");
        let message = answer["message"].as_str().unwrap();
        assert!(
            message.contains("send") || message.contains("paymentId"),
            "{message}"
        );
    }
    assert_eq!(api.payment_count().await, 0);
    assert!(api.jobs().await.is_empty());
}

#[tokio::test]
async fn oversized_bodies_get_413_json() {
    let api = TestApi::new().await;
    let big = json!({"paymentId": pid(40), "error": "x".repeat(70 * 1024)}).to_string();
    let (status, body) = api.post_raw("/pi_payment/error", big, None).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(body["error"], "payload_too_large");
    assert_eq!(api.payment_count().await, 0);
}

#[tokio::test]
async fn unknown_routes_and_methods_are_json() {
    let api = TestApi::new().await;
    let (status, body) = api.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(body["error"], "not_found");
    let (status, body) = api.get("/pi_payment/approve").await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(body["error"], "method_not_allowed");
}

#[tokio::test]
async fn payments_show_row_and_history() {
    let api = TestApi::new().await;
    api.post(
        "/pi_payment/approve",
        json!({"paymentId": pid(50), "accessToken": "secret-tok"}),
    )
    .await;
    let (status, body) = api.get(&format!("/payments/{}", pid(50))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["payment"]["state"], "received");
    assert_eq!(body["events"][0]["cause"], "approve_callback");
    assert!(!body.to_string().contains("secret-tok"));
    let (status, body) = api.get(&format!("/payments/{}", pid(51))).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("payment_not_found"))
    );
    let (status, _) = api.get("/payments/bad%20id").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn orders_are_priced_by_the_server() {
    let api = TestApi::new().await;
    let (status, order) = api
        .post("/orders", json!({"productId": "coffee", "quantity": 3}))
        .await;
    assert_eq!(status, StatusCode::CREATED, "{order}");
    assert_eq!(order["amount"], json!("4.5"));
    assert_eq!(order["product_id"], "coffee");
    // The metadata is what the frontend passes to Pi.createPayment: the app's own object.
    assert_eq!(order["metadata"], json!({"orderId": order["id"]}));
    assert!(order["memo"].as_str().unwrap().contains("coffee"));
    let (status, again) = api
        .get(&format!("/orders/{}", order["id"].as_str().unwrap()))
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(again["amount"], order["amount"]);
    assert_eq!(again["state"], "open");

    let (status, one) = api.post("/orders", json!({"productId": "sticker"})).await;
    assert_eq!(
        (status, one["quantity"].as_u64()),
        (StatusCode::CREATED, Some(1))
    );
    let (status, body) = api.post("/orders", json!({"productId": "unicorn"})).await;
    assert_eq!(
        (status, body["error"].as_str()),
        (StatusCode::NOT_FOUND, Some("unknown_product"))
    );
    let (status, _) = api
        .post("/orders", json!({"productId": "coffee", "quantity": 0}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api
        .post("/orders", json!({"productId": "coffee", "quantity": "2"}))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.post("/orders", json!({"amount": 1})).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let (status, _) = api.get("/orders/ord_00000000000000000000").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn events_poll_the_outbox() {
    let api = TestApi::new().await;
    let (status, body) = api.get("/events").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["events"], json!([]));
    assert_eq!(body["next_after"], 0);
    // Write two outbox events through the ledger's own state machine.
    use pi_payments_core::ledger::PaymentPatch;
    use pi_payments_core::state::Transition;
    for n in [60, 61] {
        api.post(
            "/pi_payment/approve",
            json!({"paymentId": pid(n), "accessToken": "t"}),
        )
        .await;
        let id = PaymentId::parse(&pid(n)).unwrap();
        api.ledger
            .apply(
                &id,
                Transition::PiApproved,
                None,
                1,
                PaymentPatch::default(),
            )
            .await
            .unwrap();
    }
    let (_, page) = api.get("/events?after=0&limit=1").await;
    assert_eq!(page["events"].as_array().unwrap().len(), 1);
    assert_eq!(page["events"][0]["type"], "payment.approved");
    let next = page["next_after"].as_i64().unwrap();
    let (_, rest) = api.get(&format!("/events?after={next}")).await;
    assert_eq!(rest["events"].as_array().unwrap().len(), 1);
    assert_ne!(rest["events"][0]["id"], page["events"][0]["id"]);
    let (status, _) = api.get("/events?after=abc").await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

#[tokio::test]
async fn health_and_readiness() {
    let api = TestApi::new().await;
    let (status, body) = api.get("/healthz").await;
    assert_eq!(
        (status, body["status"].as_str()),
        (StatusCode::OK, Some("ok"))
    );
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.queue.set_failing(true);
    let (status, body) = api.get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body["ledger"], "ok");
    assert_ne!(body["queue"], "ok");
    assert!(body["message"].as_str().unwrap().contains("queue"));
    api.ledger.close().await;
    let (_, body) = api.get("/readyz").await;
    assert_ne!(body["ledger"], "ok");
}

/// A worker's probe server (`WORKER_ADDR`): the same readiness as the API's, Prometheus text at
/// `/metrics`, JSON 404 elsewhere.
#[tokio::test]
async fn worker_probes_answer_health_readiness_and_metrics() {
    let api = TestApi::new().await;
    let probes = pi_payments_api::probes::router(api.ledger.clone(), Arc::new(api.queue.clone()));
    let get = |path: &str| {
        let probes = probes.clone();
        let req = Request::get(path).body(Body::empty()).unwrap();
        async move {
            let response = probes.oneshot(req).await.unwrap();
            let status = response.status();
            let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
                .await
                .unwrap();
            (status, String::from_utf8(bytes.to_vec()).unwrap())
        }
    };
    assert_eq!(get("/healthz").await.0, StatusCode::OK);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, StatusCode::OK, "{body}");
    api.queue.set_failing(true);
    let (status, body) = get("/readyz").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    let body: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(body["error"], "not_ready");
    assert!(
        body["message"].as_str().unwrap().starts_with("queue"),
        "{body}"
    );
    let (status, text) = get("/metrics").await;
    assert_eq!(status, StatusCode::OK);
    // The ledger gauges, read at scrape time.
    assert!(
        text.contains("pi_payments_payments{state=\"completed\"} 0"),
        "{text}"
    );
    let (status, body) = get("/elsewhere").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert!(body.contains("/readyz"), "{body}");
}

#[tokio::test]
async fn a_failing_queue_still_answers_202_after_the_write() {
    let api = TestApi::new().await;
    api.queue.set_failing(true);
    let (status, _) = api
        .post(
            "/pi_payment/approve",
            json!({"paymentId": pid(70), "accessToken": "t"}),
        )
        .await;
    assert_eq!(status, StatusCode::ACCEPTED);
    assert_eq!(api.payment_count().await, 1);
}

/// Serve `api` on a fresh loopback port within `limits`; the sender stops the server.
async fn serve_on_loopback(
    api: &TestApi,
    limits: pi_payments_api::ServerLimits,
) -> (
    std::net::SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(pi_payments_api::serve(
        listener,
        api.state.clone(),
        limits,
        async move {
            let _ = stopped.await;
        },
    ));
    (addr, stop, server)
}

/// Whether the server closed `conn`: end of stream or a reset, within `within`.
async fn closed_within(conn: &mut tokio::net::TcpStream, within: std::time::Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut buf = [0u8; 1024];
    let deadline = tokio::time::Instant::now() + within;
    loop {
        match tokio::time::timeout_at(deadline, conn.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            // An answer (e.g. 408) before the close is fine; keep reading.
            Ok(Ok(_)) => continue,
        }
    }
}

/// 3,000 half-sent requests once held 3,053 file descriptors for a minute: a client that
/// trickles its headers is disconnected within the header timeout (however often it sends a
/// byte), one that sends nothing too, and at the connection cap a well-behaved client is served
/// as soon as such a stalled client is cut.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_are_cut_and_the_connection_cap_holds() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = TestApi::new().await;
    let limits = pi_payments_api::ServerLimits {
        header_read_timeout: Duration::from_secs(1),
        request_timeout: Duration::from_secs(30),
        max_connections: 2,
    };
    let (addr, stop, server) = serve_on_loopback(&api, limits).await;

    // Two stalled clients take both slots: one trickles a header byte every 100 ms, one
    // sends nothing at all.
    let mut trickler = tokio::net::TcpStream::connect(addr).await.unwrap();
    trickler
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
        .await
        .unwrap();
    let trickling = tokio::spawn(async move {
        let started = std::time::Instant::now();
        loop {
            if trickler.write_all(b"a").await.is_err() {
                break;
            }
            if closed_within(&mut trickler, Duration::from_millis(100)).await {
                break;
            }
            // Generous: the timeout is 1 s; without one it would trickle for ever.
            assert!(
                started.elapsed() < Duration::from_secs(15),
                "a client trickling its headers was never disconnected"
            );
        }
    });
    let mut silent = tokio::net::TcpStream::connect(addr).await.unwrap();

    // A well-behaved client beyond the cap: answered once a stalled one is cut.
    let mut polite = tokio::net::TcpStream::connect(addr).await.unwrap();
    polite
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), polite.read_to_end(&mut answer))
        .await
        .expect("a well-behaved client was not served within 15 s at the connection cap")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");

    assert!(
        closed_within(&mut silent, Duration::from_secs(15)).await,
        "a client that sent nothing was never disconnected"
    );
    trickling.await.unwrap();
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

/// A request not answered within `HTTP_REQUEST_TIMEOUT` (here: a body that never finishes)
/// gets the JSON 503 `request_timeout`, not an open connection for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_that_never_finishes_times_out_with_json() {
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let api = TestApi::new().await;
    let limits = pi_payments_api::ServerLimits {
        header_read_timeout: Duration::from_secs(5),
        request_timeout: Duration::from_secs(1),
        max_connections: 8,
    };
    let (addr, stop, server) = serve_on_loopback(&api, limits).await;
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(
        b"POST /pi_payment/approve HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\nConnection: close\r\n\r\n{\"paymentId\":",
    )
    .await
    .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(Duration::from_secs(15), conn.read_to_end(&mut answer))
        .await
        .expect("a request with an unfinished body was never answered")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 503"), "{answer}");
    assert!(answer.contains("\"error\":\"request_timeout\""), "{answer}");
    assert_eq!(api.payment_count().await, 0);
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}

#[tokio::test]
async fn callbacks_carry_their_request_id_into_the_job() {
    let api = TestApi::new().await;
    let send = |id: &str, request_id: Option<&str>| {
        let mut req =
            Request::post("/pi_payment/cancel").header(header::CONTENT_TYPE, "application/json");
        if let Some(request_id) = request_id {
            req = req.header("x-request-id", request_id);
        }
        let req = req
            .body(Body::from(json!({ "paymentId": id }).to_string()))
            .unwrap();
        let router = api.router.clone();
        async move {
            let response = router.oneshot(req).await.unwrap();
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_string()
        }
    };
    // The client's own id, when sane, is echoed and reaches the job.
    let echoed = send(&pid(1), Some("abc-client-id-42")).await;
    assert_eq!(echoed, "abc-client-id-42");
    // Without one, or with one that is not sane, a new id is made.
    let made = send(&pid(2), None).await;
    assert_eq!(made.len(), 26, "{made}");
    let hostile = "x".repeat(65);
    let replaced = send(&pid(3), Some(&hostile)).await;
    assert_ne!(replaced, hostile);
    assert_eq!(replaced.len(), 26, "{replaced}");
    api.state.callbacks.flush().await;
    let ids: Vec<(String, Option<String>)> = api
        .queue
        .jobs()
        .iter()
        .map(|job| {
            (
                job.payment_id().unwrap().to_string(),
                job.request_id().map(str::to_string),
            )
        })
        .collect();
    assert_eq!(
        ids,
        vec![
            (pid(1), Some("abc-client-id-42".to_string())),
            (pid(2), Some(made)),
            (pid(3), Some(replaced)),
        ]
    );
    // Every answer carries one, errors included.
    let response = api
        .router
        .clone()
        .oneshot(Request::get("/no/such/route").body(Body::empty()).unwrap())
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::NOT_FOUND);
    assert_eq!(response.headers()["x-request-id"].len(), 26);
}
