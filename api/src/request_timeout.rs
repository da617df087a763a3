//! A deadline on every request (`HTTP_REQUEST_TIMEOUT`): a client that trickles its body, or a
//! handler stuck on a dependency, cannot hold a connection and its task for ever. The answer
//! is the usual JSON error, so clients (and the Pi SDK, which re-sends) know to retry.

use crate::error::ApiError;
use axum::extract::{Request, State};
use axum::http::Method;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::time::Duration;

/// The deadline of `POST /payouts/bulk` (operator only): a 16 MiB upload and a 200k-row
/// import take minutes, not seconds. The import itself runs in its own task and finishes even
/// if the answer times out.
pub const BULK_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);

/// Answer 503 `request_timeout` when the rest of the stack has not answered within `limit`
/// (or [`BULK_REQUEST_TIMEOUT`] for a bulk upload, if longer).
pub async fn enforce(State(limit): State<Duration>, req: Request, next: Next) -> Response {
    let limit = if req.method() == Method::POST && req.uri().path().ends_with("/payouts/bulk") {
        limit.max(BULK_REQUEST_TIMEOUT)
    } else {
        limit
    };
    match tokio::time::timeout(limit, next.run(req)).await {
        Ok(response) => response,
        Err(_) => ApiError::retry_later(
            "request_timeout",
            format!(
                "the request was not answered within {} s; send it again (a repeated request does nothing twice)",
                limit.as_secs()
            ),
        )
        .into_response(),
    }
}
