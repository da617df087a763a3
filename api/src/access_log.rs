//! The access log and request ids: one info line per request (method, path, status, latency,
//! request id) and an `X-Request-Id` on every answer, so that a client's report, the API's
//! log and the jobs a request caused (they carry the id, see
//! `pi_payments_core::jobs::ApproveJob::request_id`) can be joined.
//!
//! The id is the request's own `X-Request-Id` when it is sane (1 to [`MAX_REQUEST_ID_LEN`]
//! visible ASCII characters: a proxy's or the app's id passes through), otherwise a new ULID.
//! The line never holds the query string, headers or body: tokens travel there.
//!
//! tower-http's request-id layer keeps whatever a client sends; this one refuses hostile ids
//! (control characters, megabytes) before they reach a log line.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::http::header::HeaderName;
use axum::middleware::Next;
use axum::response::Response;
use std::fmt;
use std::time::Instant;
use tracing::Instrument;

/// The header that carries the request id, both ways.
pub const REQUEST_ID_HEADER: HeaderName = HeaderName::from_static("x-request-id");

/// The longest request id taken from a client (a UUID is 36, a ULID 26).
pub const MAX_REQUEST_ID_LEN: usize = 64;

/// The longest path written to the access log (paths are client input).
const MAX_LOGGED_PATH: usize = 200;

/// The id of one request: in the request's extensions for handlers (callbacks put it into the
/// jobs they enqueue), in the access log line and in the answer's `X-Request-Id`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct RequestId(String);

impl RequestId {
    /// A fresh id (a ULID: unique across processes, sortable by time).
    pub fn generate() -> RequestId {
        RequestId(ulid::Ulid::generate().to_string())
    }

    /// The client's id if it is sane: 1 to [`MAX_REQUEST_ID_LEN`] visible ASCII characters.
    pub fn from_client(value: &HeaderValue) -> Option<RequestId> {
        let bytes = value.as_bytes();
        let sane = (1..=MAX_REQUEST_ID_LEN).contains(&bytes.len())
            && bytes.iter().all(|b| b.is_ascii_graphic());
        sane.then(|| RequestId(String::from_utf8_lossy(bytes).into_owned()))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

tokio::task_local! {
    /// The id of the request whose handler runs on this task (set by [`log_requests`]).
    static CURRENT: RequestId;
}

/// The id of the request being handled, when called from a handler (or anything it awaits
/// on its own task; not from tasks it spawns).
pub fn current() -> Option<RequestId> {
    CURRENT.try_with(RequestId::clone).ok()
}

/// `job`, marked with the id of the request being handled (if any), so that the worker's
/// logs of it join this request's access log line.
pub fn tag(job: pi_payments_core::jobs::Job) -> pi_payments_core::jobs::Job {
    match current() {
        Some(id) => job.with_request_id(id.as_str()),
        None => job,
    }
}

/// Middleware: give the request its id, run it inside a `request{method, path, request_id}`
/// span (every log line of its handler carries them), log one access line, and answer with
/// `X-Request-Id`.
pub async fn log_requests(mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(&REQUEST_ID_HEADER)
        .and_then(RequestId::from_client)
        .unwrap_or_else(RequestId::generate);
    let method = req.method().clone();
    let path: String = req.uri().path().chars().take(MAX_LOGGED_PATH).collect();
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        // Handlers that read the header see the id that is logged, never a refused one.
        req.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    req.extensions_mut().insert(id.clone());
    let span = tracing::info_span!("request", %method, %path, request_id = %id);
    let started = Instant::now();
    let mut response = CURRENT
        .scope(id.clone(), next.run(req).instrument(span.clone()))
        .await;
    let latency_ms = (started.elapsed().as_secs_f64() * 1000.0 * 1000.0).round() / 1000.0;
    let status = response.status().as_u16();
    span.in_scope(|| tracing::info!(status, latency_ms, "request served"));
    if let Ok(value) = HeaderValue::from_str(id.as_str()) {
        response.headers_mut().insert(REQUEST_ID_HEADER, value);
    }
    response
}

#[cfg(test)]
mod tests {
    use crate::access_log::*;

    #[test]
    fn only_sane_client_ids_are_kept() {
        let ok = HeaderValue::from_static("abc-123_DEF.456");
        assert_eq!(
            RequestId::from_client(&ok).unwrap().as_str(),
            "abc-123_DEF.456"
        );
        let max = "a".repeat(MAX_REQUEST_ID_LEN);
        assert!(RequestId::from_client(&HeaderValue::from_str(&max).unwrap()).is_some());
        let refused = [
            String::new(),
            "a".repeat(MAX_REQUEST_ID_LEN + 1),
            "has space".to_string(),
            "tab\there".to_string(),
        ];
        for text in refused {
            let value = HeaderValue::from_str(&text).unwrap();
            assert!(RequestId::from_client(&value).is_none(), "{text:?}");
        }
        let high = HeaderValue::from_bytes(b"caf\xc3\xa9").unwrap();
        assert!(RequestId::from_client(&high).is_none());
        assert_eq!(RequestId::generate().as_str().len(), 26);
        assert_ne!(RequestId::generate(), RequestId::generate());
    }
}
