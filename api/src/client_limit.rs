//! Per-client rate limits of the public routes (the Pi callbacks, `/auth/pi`, `/ads/claim`,
//! `/orders`): one client cannot flood the ledger, the queue or, through them, the app's Pi
//! budget. A client is its IP address: the peer's, or with `TRUST_PROXY` the last address of
//! `X-Forwarded-For` (the one the trusted proxy appended; earlier ones are the client's word).
//! Over the limit, 429 `too_many_requests` with `Retry-After`. Limits are per process (GCRA
//! from `governor`, keyed by address).

use crate::error::ApiError;
use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use governor::clock::{Clock, DefaultClock};
use governor::state::keyed::DefaultKeyedStateStore;
use governor::{Quota, RateLimiter};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU32;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

/// How many requests each client may send (`CLIENT_RATE_LIMIT`, `CLIENT_RATE_BURST`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ClientLimit {
    /// Sustained requests per second.
    pub per_second: NonZeroU32,
    /// Requests at once before the sustained rate applies.
    pub burst: NonZeroU32,
}

impl Default for ClientLimit {
    /// 5 per second, bursts of 50: a Pioneer's SDK sends a few callbacks per payment (approve
    /// and complete repeat every ~10 s), so this leaves room for many Pioneers behind one NAT.
    fn default() -> ClientLimit {
        ClientLimit {
            per_second: NonZeroU32::new(5).unwrap_or(NonZeroU32::MIN),
            burst: NonZeroU32::new(50).unwrap_or(NonZeroU32::MIN),
        }
    }
}

/// Drop idle clients' state after this many checks (keeps memory bounded under many clients).
const PRUNE_EVERY: u64 = 4096;

/// The limiter the public routes share; cheap to clone.
#[derive(Clone)]
pub struct ClientLimiter {
    inner: Arc<Inner>,
}

struct Inner {
    limiter: RateLimiter<IpAddr, DefaultKeyedStateStore<IpAddr>, DefaultClock>,
    trust_proxy: bool,
    checks: AtomicU64,
}

impl std::fmt::Debug for ClientLimiter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClientLimiter")
            .field("trust_proxy", &self.inner.trust_proxy)
            .finish_non_exhaustive()
    }
}

impl ClientLimiter {
    /// A limiter of `limit` per client; `trust_proxy` reads the client from `X-Forwarded-For`.
    pub fn new(limit: ClientLimit, trust_proxy: bool) -> ClientLimiter {
        let quota = Quota::per_second(limit.per_second).allow_burst(limit.burst);
        ClientLimiter {
            inner: Arc::new(Inner {
                limiter: RateLimiter::keyed(quota),
                trust_proxy,
                checks: AtomicU64::new(0),
            }),
        }
    }

    /// Who sent `req`: see [`client_address`].
    fn client(&self, req: &Request) -> IpAddr {
        client_address(req, self.inner.trust_proxy)
    }

    /// Let one request of `client` through, or say how many whole seconds to wait.
    fn check(&self, client: IpAddr) -> Result<(), u32> {
        let inner = &self.inner;
        if inner.checks.fetch_add(1, Ordering::Relaxed) % PRUNE_EVERY == PRUNE_EVERY - 1 {
            inner.limiter.retain_recent();
            inner.limiter.shrink_to_fit();
        }
        inner.limiter.check_key(&client).map_err(|not_until| {
            let wait = not_until.wait_time_from(DefaultClock::default().now());
            u32::try_from(wait.as_secs())
                .unwrap_or(u32::MAX)
                .saturating_add(1)
        })
    }

    /// `router` with every route behind this limiter.
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self.clone(), limit))
    }
}

/// Who sent `req`: the peer's address, or with `trust_proxy` the last address of
/// `X-Forwarded-For` (see the module docs). Unknown (no peer address, e.g. in-process tests)
/// counts as one client, `0.0.0.0`.
pub(crate) fn client_address(req: &Request, trust_proxy: bool) -> IpAddr {
    if trust_proxy && let Some(ip) = forwarded_client(req) {
        return ip;
    }
    req.extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|ConnectInfo(addr)| addr.ip())
        .unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
}

/// The last address of the last `X-Forwarded-For` header, if it parses.
fn forwarded_client(req: &Request) -> Option<IpAddr> {
    let header = req
        .headers()
        .get_all("x-forwarded-for")
        .iter()
        .next_back()?;
    let last = header.to_str().ok()?.rsplit(',').next()?.trim();
    last.parse::<IpAddr>()
        .ok()
        .or_else(|| last.parse::<SocketAddr>().ok().map(|a| a.ip()))
}

async fn limit(State(limiter): State<ClientLimiter>, req: Request, next: Next) -> Response {
    let client = limiter.client(&req);
    match limiter.check(client) {
        Ok(()) => next.run(req).await,
        Err(retry_after_secs) => {
            tracing::debug!(%client, retry_after_secs, "client over its rate limit");
            ApiError::TooManyRequests { retry_after_secs }.into_response()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::Body;

    fn request(xff: Option<&str>, peer: Option<&str>) -> Request {
        let mut req = Request::new(Body::empty());
        if let Some(xff) = xff {
            req.headers_mut()
                .insert("x-forwarded-for", xff.parse().unwrap());
        }
        if let Some(peer) = peer {
            req.extensions_mut()
                .insert(ConnectInfo(peer.parse::<SocketAddr>().unwrap()));
        }
        req
    }

    #[test]
    fn client_is_the_peer_unless_a_proxy_is_trusted() {
        let direct = ClientLimiter::new(ClientLimit::default(), false);
        let proxied = ClientLimiter::new(ClientLimit::default(), true);
        let req = request(Some("1.1.1.1, 10.0.0.7"), Some("127.0.0.1:5000"));
        assert_eq!(direct.client(&req).to_string(), "127.0.0.1");
        assert_eq!(proxied.client(&req).to_string(), "10.0.0.7");
        let junk = request(Some("nonsense"), Some("127.0.0.1:5000"));
        assert_eq!(proxied.client(&junk).to_string(), "127.0.0.1");
    }

    #[test]
    fn over_the_burst_says_when_to_retry() {
        let limit = ClientLimit {
            per_second: NonZeroU32::MIN,
            burst: NonZeroU32::new(3).unwrap(),
        };
        let limiter = ClientLimiter::new(limit, false);
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        for _ in 0..3 {
            assert!(limiter.check(a).is_ok());
        }
        assert_eq!(limiter.check(a), Err(1));
        assert!(limiter.check(b).is_ok());
    }
}
