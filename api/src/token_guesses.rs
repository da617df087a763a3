//! A brake on guessing `ADMIN_TOKEN`: the operator routes (`/admin/*`, `/payouts`, the
//! dashboard and its login form) are reachable by anyone who can reach the API, and the token
//! is whatever the operator chose (16 characters at least). A client address that presents
//! [`WRONG_PER_WINDOW`] wrong tokens within a minute gets 429 `too_many_wrong_tokens` on every
//! operator route until that minute is over, even with the right token: otherwise the one
//! answer that is not a refusal would still tell a guesser it had won.
//!
//! A client is its address as in [`crate::client_limit`] (`TRUST_PROXY` reads
//! `X-Forwarded-For`); IPv6 addresses count by their /64, which one host usually holds whole.
//! With `REDIS_URL` the counts are the deployment's ([`SharedStrikes`], set with
//! [`TokenGuesses::shared`]): every API process sees the wrong tokens presented to the others.
//! Each process also counts on its own, so a Redis that does not answer weakens the brake to
//! per process, never removes it.

use crate::client_limit::client_address;
use crate::error::ApiError;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use pi_payments_core::shared_strikes::SharedStrikes;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Wrong tokens one client address may present per [`WINDOW`].
pub const WRONG_PER_WINDOW: u32 = 10;

/// The window wrong tokens are counted in; a locked-out client waits for its end.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Past this many addresses, the ones whose window is over are dropped (memory stays bounded
/// by the addresses that presented a wrong token within the last minute).
const PRUNE_ABOVE: usize = 4096;

/// The wrong-token counts of one API process; cheap to clone.
#[derive(Clone)]
pub struct TokenGuesses {
    inner: Arc<Inner>,
}

struct Inner {
    trust_proxy: bool,
    /// Per client: when its window started and the wrong tokens presented in it.
    windows: Mutex<HashMap<IpAddr, (Instant, u32)>>,
    /// The deployment's counts, in Redis.
    shared: Option<SharedStrikes>,
}

impl std::fmt::Debug for TokenGuesses {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TokenGuesses")
            .field("trust_proxy", &self.inner.trust_proxy)
            .field("shared", &self.inner.shared.is_some())
            .finish_non_exhaustive()
    }
}

impl Default for TokenGuesses {
    /// Clients are their peer addresses (no `TRUST_PROXY`).
    fn default() -> TokenGuesses {
        TokenGuesses::new(false)
    }
}

/// The key a client counts under: its IPv4 address, or its IPv6 /64.
fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let prefix = u128::from(v6) & !((1u128 << 64) - 1);
                IpAddr::V6(Ipv6Addr::from(prefix))
            }
        },
    }
}

impl TokenGuesses {
    /// Counts per client address; `trust_proxy` reads it from `X-Forwarded-For`.
    pub fn new(trust_proxy: bool) -> TokenGuesses {
        TokenGuesses {
            inner: Arc::new(Inner {
                trust_proxy,
                windows: Mutex::new(HashMap::new()),
                shared: None,
            }),
        }
    }

    /// Counts shared by every process using the Redis at `redis_url` with the same
    /// `namespace` (the queue's), besides this process's own. Only a malformed URL is an
    /// error; Redis is reached on first use.
    pub fn shared(
        trust_proxy: bool,
        redis_url: &str,
        namespace: &str,
    ) -> Result<TokenGuesses, String> {
        let prefix = format!("pi-payments:{namespace}:operator-guesses");
        let strikes = SharedStrikes::at(redis_url, &prefix, WINDOW).map_err(|e| e.to_string())?;
        Ok(TokenGuesses {
            inner: Arc::new(Inner {
                trust_proxy,
                windows: Mutex::new(HashMap::new()),
                shared: Some(strikes),
            }),
        })
    }

    /// How long `client` is locked out, by this process's count or the deployment's.
    async fn locked(&self, client: IpAddr) -> Option<Duration> {
        if let Some(wait) = self.locked_for(client, Instant::now()) {
            return Some(wait);
        }
        let shared = self.inner.shared.as_ref()?;
        let (wrong, left) = shared.count(&client_key(client).to_string()).await?;
        (wrong >= WRONG_PER_WINDOW && !left.is_zero()).then_some(left)
    }

    /// Count a wrong token of `client` here and in the deployment's count.
    async fn count_wrong(&self, client: IpAddr) {
        self.wrong(client, Instant::now());
        if let Some(shared) = &self.inner.shared
            && shared
                .strike(&client_key(client).to_string())
                .await
                .is_none()
        {
            tracing::debug!("a wrong operator token was not counted in Redis");
        }
    }

    /// How long `client` is still locked out, if it is.
    fn locked_for(&self, client: IpAddr, now: Instant) -> Option<Duration> {
        let windows = self.inner.windows.lock().unwrap_or_else(|e| e.into_inner());
        let (started, wrong) = windows.get(&client_key(client))?;
        let ends = *started + WINDOW;
        (*wrong >= WRONG_PER_WINDOW && now < ends).then(|| ends - now)
    }

    /// Count one wrong token presented by `client`.
    fn wrong(&self, client: IpAddr, now: Instant) {
        let mut windows = self.inner.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() > PRUNE_ABOVE {
            windows.retain(|_, (started, _)| now < *started + WINDOW);
        }
        let entry = windows.entry(client_key(client)).or_insert((now, 0));
        if now >= entry.0 + WINDOW {
            *entry = (now, 0);
        }
        entry.1 = entry.1.saturating_add(1);
    }

    /// `router` with every route behind this brake (see the module docs).
    pub fn protect<S: Clone + Send + Sync + 'static>(&self, router: Router<S>) -> Router<S> {
        router.route_layer(middleware::from_fn_with_state(self.clone(), guard))
    }
}

/// Whether `req` presents an operator credential that a 401 would call wrong: a Bearer
/// token, or the dashboard's login form (a login cookie is signed, so it is not guessed).
fn presents_token(req: &Request) -> bool {
    req.headers().contains_key(header::AUTHORIZATION)
        || (req.method() == Method::POST && req.uri().path() == "/dashboard/login")
}

async fn guard(State(guesses): State<TokenGuesses>, req: Request, next: Next) -> Response {
    let client = client_address(&req, guesses.inner.trust_proxy);
    if let Some(wait) = guesses.locked(client).await {
        let retry_after_secs = u32::try_from(wait.as_secs())
            .unwrap_or(u32::MAX)
            .saturating_add(1);
        return ApiError::TooManyWrongTokens {
            retry_after_secs,
            per_window: WRONG_PER_WINDOW,
        }
        .into_response();
    }
    let presented = presents_token(&req);
    let response = next.run(req).await;
    if presented && response.status() == StatusCode::UNAUTHORIZED {
        guesses.count_wrong(client).await;
        tracing::warn!(%client, "wrong operator token");
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_client_is_locked_out_after_too_many_wrong_tokens_until_its_window_ends() {
        let guesses = TokenGuesses::default();
        let start = Instant::now();
        let guesser: IpAddr = "203.0.113.7".parse().unwrap();
        let other: IpAddr = "203.0.113.8".parse().unwrap();
        for _ in 0..WRONG_PER_WINDOW - 1 {
            guesses.wrong(guesser, start);
        }
        assert_eq!(guesses.locked_for(guesser, start), None);
        guesses.wrong(guesser, start);
        let wait = guesses.locked_for(guesser, start + Duration::from_secs(10));
        assert_eq!(wait, Some(Duration::from_secs(50)));
        assert_eq!(guesses.locked_for(other, start), None);
        assert_eq!(guesses.locked_for(guesser, start + WINDOW), None);
        // A new window starts from zero.
        guesses.wrong(guesser, start + WINDOW);
        assert_eq!(guesses.locked_for(guesser, start + WINDOW), None);
    }

    #[test]
    fn ipv6_clients_count_by_their_64_prefix() {
        let guesses = TokenGuesses::default();
        let now = Instant::now();
        for i in 0..WRONG_PER_WINDOW {
            let ip: IpAddr = format!("2001:db8:1:2::{i:x}").parse().unwrap();
            guesses.wrong(ip, now);
        }
        let same_64: IpAddr = "2001:db8:1:2:ffff::1".parse().unwrap();
        let other_64: IpAddr = "2001:db8:1:3::1".parse().unwrap();
        assert!(guesses.locked_for(same_64, now).is_some());
        assert_eq!(guesses.locked_for(other_64, now), None);
        let mapped: IpAddr = "::ffff:203.0.113.7".parse().unwrap();
        assert_eq!(client_key(mapped), "203.0.113.7".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn memory_is_bounded_by_recent_guessers() {
        let guesses = TokenGuesses::default();
        let start = Instant::now();
        for i in 0..=PRUNE_ABOVE as u32 {
            guesses.wrong(IpAddr::from(i.to_be_bytes()), start);
        }
        guesses.wrong("198.51.100.1".parse().unwrap(), start + WINDOW);
        let held = guesses.inner.windows.lock().unwrap().len();
        assert_eq!(held, 1);
    }
}
