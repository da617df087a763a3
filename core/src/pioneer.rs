//! Who a request comes from: Pi access tokens verified with `GET /v2/me`, the verification
//! cached until Pi's `credentials.valid_until`, and sign-in sessions for browsers.
//!
//! Identity always comes from Pi's answer (the uid `/v2/me` returned), never from anything the
//! client sent alongside the token. Verifications are cached in memory (per process) and in the
//! `sessions` table (shared, survives restarts), both keyed by the SHA-256 of the token, so a
//! Pioneer who signs in once and then calls with a Bearer token or a cookie costs one call to
//! Pi per token lifetime.
//!
//! A session id is 32 random bytes (base64url in the cookie); the ledger stores only its
//! SHA-256, and of the token only its SHA-256 too: a session is the verified uid, scopes and
//! expiry, never the access token (Pi's guidance: no tokens at rest). Tokens and session ids
//! never reach logs: both are [`crate::secret`] types, which
//! redact themselves, and no error here carries either.

use crate::dto::UserDto;
use crate::ids::Uid;
use crate::ledger::{Ledger, LedgerError, NewSession, SessionRow, now_ms};
use crate::pi_client::{PiClient, PiError};
use crate::secret::{AccessToken, Secret};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use rand::RngCore;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How long a browser session lasts at most (it never outlives the token's `valid_until`).
pub const DEFAULT_SESSION_TTL: Duration = Duration::from_secs(24 * 3600);

/// Verified tokens kept in memory per process; beyond this the expired ones are dropped, then
/// (if still full) all of them: a miss only costs a database read or a call to `/v2/me`.
const MEMORY_CACHE_CAPACITY: usize = 100_000;

/// Length of a session id in bytes before base64url (256 bits of entropy).
const SESSION_ID_BYTES: usize = 32;

/// A Pioneer whose access token Pi confirmed.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct VerifiedPioneer {
    /// From `/v2/me`.
    pub uid: Uid,
    /// Only with the `username` scope.
    pub username: Option<String>,
    /// The scopes the token carries.
    pub scopes: Vec<String>,
    /// Pi's `credentials.valid_until`, unix ms: the verification holds until then.
    pub valid_until_ms: i64,
}

impl VerifiedPioneer {
    fn from_user(user: &UserDto) -> VerifiedPioneer {
        VerifiedPioneer {
            uid: user.uid.clone(),
            username: user.username.clone(),
            scopes: user.credentials.scopes.clone(),
            valid_until_ms: user.credentials.valid_until.timestamp.saturating_mul(1000),
        }
    }

    fn from_session(row: SessionRow) -> VerifiedPioneer {
        VerifiedPioneer {
            uid: row.uid,
            username: row.username,
            scopes: row.scopes,
            valid_until_ms: row.valid_until,
        }
    }

    /// Whether the Pioneer granted `scope`.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }
}

/// A session id as the cookie carries it: a [`Secret`], so `Debug` is redacted; the cookie
/// writer reads it with [`SessionSecret::expose`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SessionSecret(Secret);

impl SessionSecret {
    /// A fresh random session id.
    fn generate() -> SessionSecret {
        let mut bytes = [0u8; SESSION_ID_BYTES];
        rand::rngs::OsRng.fill_bytes(&mut bytes);
        SessionSecret(Secret::new(URL_SAFE_NO_PAD.encode(bytes)))
    }

    /// Accept a cookie value only if it has the shape of ids we mint (anything else cannot be a
    /// session, so it is not worth a database read).
    pub fn from_cookie(value: &str) -> Option<SessionSecret> {
        let well_formed = value.len() == 43
            && value
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        well_formed.then(|| SessionSecret(Secret::new(value)))
    }

    /// The cookie value.
    pub fn expose(&self) -> &str {
        self.0.expose()
    }

    fn hash(&self) -> String {
        sha256_hex(self.expose().as_bytes())
    }
}

/// The result of a sign-in: who, and the new session to put in the cookie.
#[derive(Clone, Debug)]
pub struct SignedIn {
    pub pioneer: VerifiedPioneer,
    /// The cookie value.
    pub session: SessionSecret,
    /// When the session ends (unix ms): the cookie's Max-Age is counted to it.
    pub expires_at_ms: i64,
}

/// Why a token or session could not be accepted.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// Pi answered 401 on `/v2/me`, or the token's `valid_until` has passed.
    #[error(
        "the Pi access token is invalid or expired: call Pi.authenticate() again in the frontend and send the new token"
    )]
    InvalidToken,
    /// Pi could not be asked (outage, timeout, 5xx, rate limit): not the Pioneer's fault.
    #[error("Pi could not verify the access token right now ({0}); retry in a few seconds")]
    PiUnavailable(#[source] PiError),
    /// The ledger failed.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}

impl AuthError {
    fn from_pi(err: PiError) -> AuthError {
        match err.root() {
            PiError::InvalidToken => AuthError::InvalidToken,
            _ => AuthError::PiUnavailable(err),
        }
    }
}

/// Token verification and sessions; cheap to clone (clones share the memory cache).
#[derive(Clone)]
pub struct PioneerAuth {
    inner: Arc<Inner>,
}

struct Inner {
    ledger: Ledger,
    pi: PiClient,
    session_ttl: Duration,
    /// SHA-256 of the token → its verification.
    cache: Mutex<HashMap<[u8; 32], VerifiedPioneer>>,
}

impl fmt::Debug for PioneerAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PioneerAuth")
            .field("session_ttl", &self.inner.session_ttl)
            .finish_non_exhaustive()
    }
}

fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(sha256(bytes))
}

fn duration_ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl PioneerAuth {
    /// Verify tokens with `pi` (share the process's client: it carries the rate limiter) and
    /// keep sessions in `ledger` for at most `session_ttl`.
    pub fn new(ledger: Ledger, pi: PiClient, session_ttl: Duration) -> PioneerAuth {
        PioneerAuth {
            inner: Arc::new(Inner {
                ledger,
                pi,
                session_ttl,
                cache: Mutex::new(HashMap::new()),
            }),
        }
    }

    /// The ledger this service writes to.
    pub fn ledger(&self) -> &Ledger {
        &self.inner.ledger
    }

    /// Who `token` belongs to: from the memory cache, else a session created with it, else
    /// `GET /v2/me` (then the Pioneer row is upserted). A verification is used only until its
    /// `valid_until`.
    pub async fn verify_token(&self, token: &AccessToken) -> Result<VerifiedPioneer, AuthError> {
        let key = sha256(token.expose().as_bytes());
        let now = now_ms();
        if let Some(hit) = self.cached(&key, now) {
            return Ok(hit);
        }
        if let Some(row) = self
            .inner
            .ledger
            .session_by_token_hash(&hex::encode(key), now)
            .await?
        {
            let pioneer = VerifiedPioneer::from_session(row);
            self.remember(key, pioneer.clone(), now);
            return Ok(pioneer);
        }
        let user = self.inner.pi.me(token).await.map_err(AuthError::from_pi)?;
        let pioneer = VerifiedPioneer::from_user(&user);
        if pioneer.valid_until_ms <= now {
            return Err(AuthError::InvalidToken);
        }
        self.inner
            .ledger
            .upsert_pioneer(&pioneer.uid, pioneer.username.as_deref(), &pioneer.scopes)
            .await?;
        tracing::info!(uid = %pioneer.uid, "Pioneer verified with Pi");
        self.remember(key, pioneer.clone(), now);
        Ok(pioneer)
    }

    /// Verify `token` and open a session for its Pioneer. The session ends at the earlier of
    /// now + the session TTL and the token's `valid_until`.
    pub async fn sign_in(&self, token: &AccessToken) -> Result<SignedIn, AuthError> {
        let pioneer = self.verify_token(token).await?;
        // verify_token may have answered from a cache: make sure the Pioneer row exists even
        // if the database was reset underneath (sessions reference it).
        let ledger = &self.inner.ledger;
        if ledger.pioneer(&pioneer.uid).await?.is_none() {
            ledger
                .upsert_pioneer(&pioneer.uid, pioneer.username.as_deref(), &pioneer.scopes)
                .await?;
        }
        let now = now_ms();
        let expires_at_ms = now
            .saturating_add(duration_ms(self.inner.session_ttl))
            .min(pioneer.valid_until_ms);
        let session = SessionSecret::generate();
        let id_hash = session.hash();
        let token_hash = sha256_hex(token.expose().as_bytes());
        ledger
            .insert_session(&NewSession {
                id_hash: &id_hash,
                uid: &pioneer.uid,
                token_hash: &token_hash,
                username: pioneer.username.as_deref(),
                scopes: &pioneer.scopes,
                valid_until: pioneer.valid_until_ms,
                created_at: now,
                expires_at: expires_at_ms,
            })
            .await?;
        tracing::info!(uid = %pioneer.uid, "Pioneer signed in");
        Ok(SignedIn {
            pioneer,
            session,
            expires_at_ms,
        })
    }

    /// The Pioneer of a live session, or `None` (unknown, signed out or expired).
    pub async fn session(
        &self,
        session: &SessionSecret,
    ) -> Result<Option<VerifiedPioneer>, AuthError> {
        let row = self.inner.ledger.session(&session.hash(), now_ms()).await?;
        Ok(row.map(VerifiedPioneer::from_session))
    }

    /// End a session; whether one was there. The token itself stays valid at Pi (Bearer calls
    /// with it still work until its `valid_until`).
    pub async fn sign_out(&self, session: &SessionSecret) -> Result<bool, AuthError> {
        Ok(self.inner.ledger.delete_session(&session.hash()).await?)
    }

    fn cached(&self, key: &[u8; 32], now: i64) -> Option<VerifiedPioneer> {
        let cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        cache.get(key).filter(|p| p.valid_until_ms > now).cloned()
    }

    fn remember(&self, key: [u8; 32], pioneer: VerifiedPioneer, now: i64) {
        let mut cache = self.inner.cache.lock().unwrap_or_else(|p| p.into_inner());
        if cache.len() >= MEMORY_CACHE_CAPACITY {
            cache.retain(|_, p| p.valid_until_ms > now);
            if cache.len() >= MEMORY_CACHE_CAPACITY {
                cache.clear();
            }
        }
        cache.insert(key, pioneer);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids_are_random_redacted_and_well_formed() {
        let a = SessionSecret::generate();
        let b = SessionSecret::generate();
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 43);
        assert_eq!(SessionSecret::from_cookie(a.expose()), Some(a.clone()));
        assert!(!format!("{a:?}").contains(a.expose()));
        assert_eq!(a.hash().len(), 64);
        for bad in [
            "",
            "short",
            &"a".repeat(44),
            &format!("{}=", "a".repeat(42)),
        ] {
            assert!(SessionSecret::from_cookie(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn only_invalid_token_is_the_pioneers_fault() {
        assert!(matches!(
            AuthError::from_pi(PiError::InvalidToken),
            AuthError::InvalidToken
        ));
        assert!(matches!(
            AuthError::from_pi(PiError::Timeout),
            AuthError::PiUnavailable(_)
        ));
        let exhausted = PiError::RetriesExhausted {
            attempts: 3,
            last: Box::new(PiError::Server {
                status: 502,
                detail: String::new(),
            }),
        };
        assert!(matches!(
            AuthError::from_pi(exhausted),
            AuthError::PiUnavailable(_)
        ));
    }
}
