//! A short negative cache of access tokens Pi refused (`GET /v2/me` → 401), so that a client
//! repeating one bogus token costs Pi one call per [`BAD_TOKEN_TTL`], not one per request.
//!
//! Only a SHA-256 of the token is kept, never the token. The cache is per process: each API or
//! worker process pays at most one `/me` per bad token per TTL (a deployment-wide cache would
//! need Redis for a saving of a few calls).

use crate::secret::AccessToken;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a refused token is answered from the cache. Short: a token Pi refused stays
/// refused, but a Pioneer who signs in again gets a new one anyway.
pub const BAD_TOKEN_TTL: Duration = Duration::from_secs(60);

/// Most tokens remembered; past it, expired entries are dropped, then the oldest half.
const MAX_ENTRIES: usize = 10_000;

/// Hashes of tokens Pi refused, with when they were refused.
#[derive(Default)]
pub(crate) struct BadTokens {
    seen: Mutex<HashMap<[u8; 32], Instant>>,
}

fn digest(token: &AccessToken) -> [u8; 32] {
    Sha256::digest(token.expose().as_bytes()).into()
}

impl BadTokens {
    /// Whether Pi refused `token` within the last [`BAD_TOKEN_TTL`].
    pub(crate) fn is_bad(&self, token: &AccessToken) -> bool {
        let key = digest(token);
        let Ok(seen) = self.seen.lock() else {
            return false;
        };
        seen.get(&key)
            .is_some_and(|at| at.elapsed() < BAD_TOKEN_TTL)
    }

    /// Remember that Pi refused `token`.
    pub(crate) fn remember(&self, token: &AccessToken) {
        let key = digest(token);
        let Ok(mut seen) = self.seen.lock() else {
            return;
        };
        if seen.len() >= MAX_ENTRIES {
            seen.retain(|_, at| at.elapsed() < BAD_TOKEN_TTL);
            if seen.len() >= MAX_ENTRIES {
                let mut ages: Vec<Instant> = seen.values().copied().collect();
                ages.sort_unstable();
                let cutoff = ages[ages.len() / 2];
                seen.retain(|_, at| *at > cutoff);
            }
        }
        seen.insert(key, Instant::now());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_a_hash_for_a_while() {
        let cache = BadTokens::default();
        let bad = AccessToken::stored("bogus".to_string());
        let good = AccessToken::stored("good".to_string());
        assert!(!cache.is_bad(&bad));
        cache.remember(&bad);
        assert!(cache.is_bad(&bad));
        assert!(!cache.is_bad(&good));
    }

    #[test]
    fn stays_bounded() {
        let cache = BadTokens::default();
        for i in 0..(MAX_ENTRIES + 10) {
            cache.remember(&AccessToken::stored(format!("t{i}")));
        }
        assert!(cache.seen.lock().unwrap().len() <= MAX_ENTRIES);
    }
}
