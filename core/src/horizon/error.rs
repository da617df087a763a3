//! Why a Horizon call failed: [`HorizonError`] for reads, [`SubmitError`] for `POST
//! /transactions`, whose variants the payout state machine acts on ([`SubmitError::Failed`] is a
//! verdict; [`SubmitError::Timeout`] and [`SubmitError::Transport`] mean "the transaction may
//! still land: resubmit the same envelope").

use crate::stellar::TxFailure;
use crate::throttle::{Throttle, Throttling, is_throttling_status};

/// Errors talking to Horizon (other than submission, see [`SubmitError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HorizonError {
    /// The request did not get an answer (connection refused/reset, DNS, TLS, dropped).
    #[error(
        "could not reach Horizon at {url} ({detail}): check PI_HORIZON_URL and that Horizon is up, then retry"
    )]
    Transport {
        /// The URL requested.
        url: String,
        /// What failed.
        detail: String,
    },
    /// No answer within the client's timeout.
    #[error("Horizon did not answer {url} in time: retry later")]
    Timeout {
        /// The URL requested.
        url: String,
    },
    /// An unexpected HTTP status.
    #[error("Horizon answered {status} to {url}: {detail}")]
    Status {
        /// The URL requested.
        url: String,
        /// HTTP status.
        status: u16,
        /// Problem title/detail or the start of the body.
        detail: String,
    },
    /// The answer was not the JSON we expect.
    #[error(
        "Horizon's answer to {url} could not be read ({detail}): check that PI_HORIZON_URL points at a Horizon server"
    )]
    Decode {
        /// The URL requested.
        url: String,
        /// What was wrong.
        detail: String,
    },
    /// An argument cannot be put in a Horizon URL.
    #[error("invalid Horizon request: {0}")]
    BadInput(String),
}

impl HorizonError {
    /// Whether retrying the same request later may succeed (transport, timeouts, 429, 5xx).
    pub fn is_transient(&self) -> bool {
        match self {
            HorizonError::Transport { .. } | HorizonError::Timeout { .. } => true,
            HorizonError::Status { status, .. } => *status == 429 || *status >= 500,
            HorizonError::Decode { .. } | HorizonError::BadInput(_) => false,
        }
    }
}

impl HorizonError {
    /// A failed read worth repeating at once: the connection dropped, or a 5xx that does not
    /// ask us to slow down (Horizon's or a proxy's hiccup).
    pub fn is_flaky_read(&self) -> bool {
        match self {
            HorizonError::Transport { .. } => true,
            HorizonError::Status { status, .. } => {
                (500..600).contains(status) && !is_throttling_status(*status)
            }
            _ => false,
        }
    }
}

impl Throttling for HorizonError {
    /// 429, 503/504 and timeouts only ask us to slow down (Horizon sends no `Retry-After` we
    /// keep); other errors are failures.
    fn throttle(&self) -> Option<Throttle> {
        match self {
            HorizonError::Timeout { .. } => Some(Throttle { retry_after: None }),
            HorizonError::Status { status, .. } if is_throttling_status(*status) => {
                Some(Throttle { retry_after: None })
            }
            _ => None,
        }
    }
}

/// Why `POST /transactions` did not confirm the transaction.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SubmitError {
    /// Horizon's verdict `400 transaction_failed` with its result codes.
    #[error("Horizon refused the transaction: {failure}")]
    Failed {
        /// The parsed result codes.
        failure: TxFailure,
        /// `extras.result_xdr`, kept for the record.
        result_xdr: Option<String>,
    },
    /// Horizon could not decode the envelope (`transaction_malformed` or another 4xx).
    #[error(
        "Horizon says the envelope is malformed ({0}): it will never land; rebuild it only after checking the chain for the payment's memo"
    )]
    Malformed(String),
    /// 504 or client timeout: the transaction may still land.
    #[error(
        "Horizon timed out waiting for the ledger: the transaction may still land; resubmit the same envelope until its max time"
    )]
    Timeout,
    /// Connection failure, dropped answer, 429 or 5xx: the transaction may have landed.
    #[error(
        "submitting to Horizon failed ({0}): the transaction may have landed; resubmit the same envelope until its max time"
    )]
    Transport(String),
}

impl SubmitError {
    /// Whether the transaction may have landed or still land: resubmit the same envelope (never a
    /// new one) until its `max_time`, then look it up by hash.
    pub fn may_have_landed(&self) -> bool {
        match self {
            SubmitError::Timeout | SubmitError::Transport(_) => true,
            SubmitError::Failed { failure, .. } => !failure.is_definite(),
            SubmitError::Malformed(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::horizon::error::*;

    #[test]
    fn throttling_is_429_503_504_and_timeouts() {
        let status = |status| HorizonError::Status {
            url: "u".into(),
            status,
            detail: String::new(),
        };
        assert!(status(429).throttle().is_some() && status(503).throttle().is_some());
        assert!(
            HorizonError::Timeout { url: "u".into() }
                .throttle()
                .is_some()
        );
        assert!(status(500).throttle().is_none() && status(404).throttle().is_none());
        let transport = HorizonError::Transport {
            url: "u".into(),
            detail: "reset".into(),
        };
        assert!(transport.throttle().is_none());
    }
}
