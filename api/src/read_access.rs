//! Who may read what. The outbox (`GET /events`) holds every Pioneer's uids, amounts, txids
//! and wallet addresses, so it answers only the app's backend (`APP_API_TOKEN`) and the
//! operator (`ADMIN_TOKEN`). A payment or an order is also shown to its own Pioneer (Bearer
//! access token or session cookie, verified as sign-in does); anyone else gets the same 404 as
//! an id that does not exist, so a stranger cannot even learn that an id is real.

use crate::auth;
use crate::error::ApiError;
use crate::state::ApiState;
use axum::http::{HeaderMap, StatusCode};
use pi_payments_core::Uid;

/// Who a read request comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Reader {
    /// `ADMIN_TOKEN` or `APP_API_TOKEN`: reads everything.
    Backend,
    /// A verified Pioneer: reads what is theirs.
    Pioneer(Uid),
    /// No credential, or one that is not valid: reads nothing.
    Nobody,
}

impl Reader {
    /// Whether this reader may see a resource owned by `owner` (`None`: no Pioneer is known
    /// yet, so only the backend may).
    pub fn may_read(&self, owner: Option<&Uid>) -> bool {
        match self {
            Reader::Backend => true,
            Reader::Pioneer(uid) => owner == Some(uid),
            Reader::Nobody => false,
        }
    }
}

/// Whether the request carries `ADMIN_TOKEN` or `APP_API_TOKEN` as its Bearer token (both
/// compared in constant time).
pub fn is_backend(state: &ApiState, headers: &HeaderMap) -> bool {
    // Evaluate both, so that which token matched does not show in the timing.
    let admin = state.admin.accepts(headers);
    let app = state.app_api.accepts(headers);
    admin | app
}

/// Who the request is. The backend tokens are checked first, so they are never sent to Pi as
/// access tokens. An invalid Pioneer credential is [`Reader::Nobody`] (the caller answers 404,
/// not 401); only Pi or the ledger being unreachable is an error (503, retry).
pub async fn reader(state: &ApiState, headers: &HeaderMap) -> Result<Reader, ApiError> {
    if is_backend(state, headers) {
        return Ok(Reader::Backend);
    }
    let Some(pioneers) = &state.pioneers else {
        return Ok(Reader::Nobody);
    };
    match auth::authenticate(&pioneers.auth, headers).await {
        Ok(who) => Ok(Reader::Pioneer(who.pioneer.uid)),
        Err(err) if err.status() == StatusCode::SERVICE_UNAVAILABLE => Err(err),
        Err(_) => Ok(Reader::Nobody),
    }
}

/// `Ok` for the backend tokens, else 401 saying which token to send.
pub fn require_backend(state: &ApiState, headers: &HeaderMap) -> Result<(), ApiError> {
    if is_backend(state, headers) {
        return Ok(());
    }
    if !state.admin.is_configured() && !state.app_api.is_configured() {
        return Err(ApiError::unauthorized(
            "events_disabled",
            "GET /events is closed: the server has neither APP_API_TOKEN nor ADMIN_TOKEN; set APP_API_TOKEN and send `Authorization: Bearer <APP_API_TOKEN>` from your backend",
        ));
    }
    Err(ApiError::unauthorized(
        "events_unauthorized",
        "GET /events is for the app's backend: send `Authorization: Bearer <APP_API_TOKEN>` (or the operator's ADMIN_TOKEN)",
    ))
}

#[cfg(test)]
mod tests {
    use crate::read_access::*;

    #[test]
    fn pioneers_read_only_their_own() {
        let alice = Uid::parse("alice").unwrap();
        let bob = Uid::parse("bob").unwrap();
        assert!(Reader::Backend.may_read(None));
        assert!(Reader::Pioneer(alice.clone()).may_read(Some(&alice)));
        assert!(!Reader::Pioneer(alice.clone()).may_read(Some(&bob)));
        assert!(!Reader::Pioneer(alice).may_read(None));
        assert!(!Reader::Nobody.may_read(Some(&bob)));
    }
}
