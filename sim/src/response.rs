//! JSON answers, written the same way by every simulator route.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

/// A JSON answer with the given status (serialization of our own types cannot fail; if it
/// somehow did, the client gets a 500 saying so).
pub(crate) fn json_response(status: StatusCode, value: &impl serde::Serialize) -> Response {
    match serde_json::to_vec(value) {
        Ok(body) => {
            let mut response = (status, body).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            );
            response
        }
        Err(error) => (
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("pi-sim could not serialize its answer: {error}"),
        )
            .into_response(),
    }
}
