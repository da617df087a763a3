//! End to end: the app learns of each completed payment from exactly one signed webhook.
//!
//! An in-test HTTP receiver stands in for the app (`APP_WEBHOOK_URL`): it answers 500 to the
//! first delivery of every event and 200 to the next, and keeps every request. Payments go
//! through the real callbacks against pi-sim, on both stacks (SQLite + embedded queue;
//! Postgres + Redis when reachable). Then, once the outbox shows everything delivered, each
//! payment has exactly one acknowledged `payment.completed` delivery, every delivery carries a
//! valid `Pi-Payments-Signature`, and each refused first attempt was retried.

use crate::support::{DEADLINE, Harness, Options, Stack};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use pi_payments_core::events::{SIGNATURE_HEADER, verify_webhook};
use serde_json::Value;
use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SECRET: &str = "whsec-e2e-0123456789abcdef0123456789abcdef";

/// One request the receiver got, and how it answered.
#[derive(Clone, Debug)]
struct Delivery {
    signature: Option<String>,
    body: Bytes,
    answered: u16,
}

impl Delivery {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The app's webhook endpoint: 500 to the first delivery of each event id, then 200.
struct Receiver {
    url: String,
    deliveries: Arc<Mutex<Vec<Delivery>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Receiver {
    async fn start() -> Receiver {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hooks/pi", listener.local_addr().unwrap());
        let deliveries: Arc<Mutex<Vec<Delivery>>> = Arc::default();
        let seen: Arc<Mutex<HashSet<i64>>> = Arc::default();
        let log = deliveries.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                let (log, seen) = (log.clone(), seen.clone());
                tokio::spawn(async move {
                    let service = service_fn(move |req: Request<hyper::body::Incoming>| {
                        let (log, seen) = (log.clone(), seen.clone());
                        async move {
                            let signature = req
                                .headers()
                                .get(SIGNATURE_HEADER)
                                .and_then(|v| v.to_str().ok())
                                .map(str::to_string);
                            let body = req.into_body().collect().await.unwrap().to_bytes();
                            let id = serde_json::from_slice::<Value>(&body)
                                .ok()
                                .and_then(|v| v["id"].as_i64());
                            // The first delivery of each event fails, as a flaky app would.
                            let first = id.is_none_or(|id| seen.lock().unwrap().insert(id));
                            let status = if first {
                                StatusCode::INTERNAL_SERVER_ERROR
                            } else {
                                StatusCode::OK
                            };
                            log.lock().unwrap().push(Delivery {
                                signature,
                                body,
                                answered: status.as_u16(),
                            });
                            let mut response = Response::new(Full::new(Bytes::new()));
                            *response.status_mut() = status;
                            Ok::<_, Infallible>(response)
                        }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Receiver {
            url,
            deliveries,
            task,
        }
    }

    fn deliveries(&self) -> Vec<Delivery> {
        self.deliveries.lock().unwrap().clone()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Wait (up to the deadline) until the outbox holds at least `expected` events and every one
/// of them is marked delivered: from then on nothing is sent again.
async fn wait_until_all_delivered(h: &Harness, expected: i64) {
    let start = Instant::now();
    let (mut total, mut pending) = (0, -1);
    while start.elapsed() < DEADLINE {
        total = sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events")
            .fetch_one(h.app.ledger.pool())
            .await
            .unwrap();
        pending =
            sqlx::query_scalar::<_, i64>("SELECT COUNT(*) FROM events WHERE delivered_at IS NULL")
                .fetch_one(h.app.ledger.pool())
                .await
                .unwrap();
        if total >= expected && pending == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("outbox not delivered: {total} events, {pending} pending (expected {expected})");
}

async fn one_signed_completed_webhook_per_payment(stack: Stack) {
    let receiver = Receiver::start().await;
    let Some(h) = Harness::start(
        stack,
        Options {
            webhook: Some((receiver.url.clone(), SECRET.to_string())),
            ..Options::default()
        },
    )
    .await
    else {
        return;
    };
    let h = Arc::new(h);
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..5 {
        let h = h.clone();
        tasks.spawn(async move { h.purchase(&format!("hooked-{i}"), 3).await });
    }
    let mut ids = Vec::new();
    while let Some(id) = tasks.join_next().await {
        ids.push(id.unwrap());
    }
    // payment.approved and payment.completed for each.
    wait_until_all_delivered(&h, 2 * ids.len() as i64).await;

    let deliveries = receiver.deliveries();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    for d in &deliveries {
        let header = d
            .signature
            .as_deref()
            .expect("a Pi-Payments-Signature header");
        verify_webhook(SECRET.as_bytes(), header, &d.body, now, 600)
            .unwrap_or_else(|e| panic!("bad signature {header}: {e}"));
        // The signature binds the secret: another one does not verify.
        assert!(verify_webhook(b"another secret", header, &d.body, now, 600).is_err());
    }
    // Every event was refused once, retried, and acknowledged exactly once.
    let mut by_event: HashMap<i64, Vec<&Delivery>> = HashMap::new();
    for d in &deliveries {
        by_event
            .entry(d.json()["id"].as_i64().unwrap())
            .or_default()
            .push(d);
    }
    for (event, tries) in &by_event {
        assert_eq!(tries[0].answered, 500, "event {event}");
        let acked = tries.iter().filter(|d| d.answered == 200).count();
        assert_eq!(acked, 1, "event {event} acknowledged {acked} times");
        assert!(
            tries.windows(2).all(|w| w[0].body == w[1].body),
            "event {event} changed"
        );
    }
    // Exactly one acknowledged payment.completed per payment, describing it.
    let outbox = h.events().await;
    for id in &ids {
        let completed: Vec<Value> = deliveries
            .iter()
            .filter(|d| d.answered == 200)
            .map(Delivery::json)
            .filter(|e| e["type"] == "payment.completed" && e["data"]["payment"]["id"] == *id)
            .collect();
        assert_eq!(completed.len(), 1, "payment.completed webhooks for {id}");
        let event = &completed[0];
        assert_eq!(event["data"]["payment"]["state"], "completed", "{event}");
        assert_eq!(event["data"]["order"]["state"], "paid", "{event}");
        // The same event as GET /events shows.
        let polled: Vec<&Value> = outbox
            .iter()
            .filter(|e| e["type"] == "payment.completed" && e["data"]["payment"]["id"] == *id)
            .collect();
        assert_eq!(polled.len(), 1);
        assert_eq!(polled[0]["id"], event["id"]);
    }
    let acked_completed = deliveries
        .iter()
        .filter(|d| d.answered == 200 && d.json()["type"] == "payment.completed")
        .count();
    assert_eq!(acked_completed, ids.len());
    Arc::into_inner(h).unwrap().stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_sqlite_and_embedded_queue() {
    one_signed_completed_webhook_per_payment(Stack::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhooks_postgres_and_redis() {
    one_signed_completed_webhook_per_payment(Stack::PostgresRedis).await;
}
