//! Serving the API (HTTP/1.1) on a TCP listener with bounds, so that clients that never finish
//! cannot pile up: a header-read timeout on every connection, a cap on open connections, and (with
//! [`crate::request_timeout`]) a deadline on every request.
//!
//! Without them, 3,000 half-sent requests held 3,053 file descriptors for as long as their
//! clients liked (axum's own `serve` sets no header timer).

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use std::future::Future;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tower::ServiceExt;

/// `HTTP_HEADER_TIMEOUT`'s default: long enough for any real client on a slow mobile link,
/// short enough that a slot held by a client that stalls mid-headers frees soon.
pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// `HTTP_REQUEST_TIMEOUT`'s default: a callback is answered in milliseconds; this bounds a
/// slow body or a stuck dependency.
pub const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// `HTTP_MAX_CONNECTIONS`'s default: far above what the callbacks need (tens of keep-alive
/// connections), well below a process's usual 1,024 file descriptors.
pub const DEFAULT_MAX_CONNECTIONS: usize = 512;

/// How long to wait before accepting again after `accept` failed (e.g. out of file
/// descriptors): retrying at once would spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// The bounds of the API's listener, from `HTTP_HEADER_TIMEOUT`, `HTTP_REQUEST_TIMEOUT` and
/// `HTTP_MAX_CONNECTIONS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ServerLimits {
    /// A connection whose request head is not complete this long after it started waiting for
    /// one is closed (also ends idle keep-alive connections).
    pub header_read_timeout: Duration,
    /// A request not answered within this is answered 503 ([`crate::request_timeout`]).
    pub request_timeout: Duration,
    /// Connections open at once; further ones wait in the kernel's accept queue until one
    /// closes.
    pub max_connections: usize,
}

impl Default for ServerLimits {
    fn default() -> ServerLimits {
        ServerLimits {
            header_read_timeout: DEFAULT_HEADER_READ_TIMEOUT,
            request_timeout: DEFAULT_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// Serve `app` on `listener` within `limits` until `shutdown` resolves; then stop accepting,
/// let every open connection finish its requests in flight, and return.
///
/// Each request carries the peer's address as [`ConnectInfo`]`<SocketAddr>`, as axum's
/// `into_make_service_with_connect_info` would give it.
pub async fn serve_bounded(
    listener: TcpListener,
    app: Router,
    limits: ServerLimits,
    shutdown: impl Future<Output = ()> + Send + 'static,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections.max(1)));
    let graceful = GracefulShutdown::new();
    // HTTP/1 only: the header timer starts as soon as the connection waits for a request
    // head (HTTP/2 detection would first wait for bytes with no timer), and the API's clients
    // (the Pi SDK through a browser, apps' backends, proxies) all speak HTTP/1.1.
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    tokio::pin!(shutdown);
    loop {
        // A free slot first: at the cap, new connections wait in the accept queue (the
        // header timeout frees a slot held by a stalled client within its bound).
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => slot,
            () = &mut shutdown => break,
        };
        let Ok(slot) = slot else { break };
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(err) => {
                    if !is_connection_error(&err) {
                        tracing::warn!(error = %err, "accepting a connection failed; retrying shortly");
                        tokio::time::sleep(ACCEPT_BACKOFF).await;
                    }
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Small request/response pairs on keep-alive connections: never wait for Nagle.
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::debug!(error = %err, "could not set TCP_NODELAY");
        }
        let service = app
            .clone()
            .map_request(move |mut req: hyper::Request<Incoming>| {
                req.extensions_mut().insert(ConnectInfo(peer));
                req.map(Body::new)
            });
        let conn = builder.serve_connection(TokioIo::new(tcp), TowerToHyperService::new(service));
        let conn = graceful.watch(conn);
        tokio::spawn(async move {
            if let Err(err) = conn.await {
                tracing::trace!(error = %err, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// Errors of one connection that `accept` reports; the listener itself is fine.
fn is_connection_error(err: &std::io::Error) -> bool {
    matches!(
        err.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
