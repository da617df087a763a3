//! The payment state machine: the ONE place where payment transitions are defined.
//!
//! Every state change in the ledger goes through [`next`] (or [`start`] when a payment is first
//! recorded), so what can happen to a payment is readable in one table and tested exhaustively.
//! The ledger stores states as the strings of [`PaymentState::as_str`].
//!
//! A transition into the state a payment is already in (or a step it has already passed, such as
//! a late "Pi approved" for a payment already completing) is allowed and returns the current
//! state: callers detect the no-op with `to == from` instead of failing a job that simply ran
//! twice (jobs are delivered at least once).

use crate::ids::Txid;
use std::fmt;

/// Where a U2A payment stands in our ledger.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PaymentState {
    /// The approve callback was recorded; the approve job is due.
    Received,
    /// Pi has approved the payment (we approved it, or it was approved already).
    Approved,
    /// The complete callback brought a txid; verification and `/complete` are due.
    Completing,
    /// Pi answered 2xx to `/complete`. Terminal.
    Completed,
    /// Cancelled by us after a refusal, by the Pioneer or by Pi. Terminal; the reason is stored.
    Cancelled,
    /// Retries exhausted or verification failed: a person must look (reason stored). An
    /// operator or the sweeper may send it back to `received` or `completing`.
    NeedsAttention,
}

/// Every state, for tests and for listing.
pub const ALL_STATES: [PaymentState; 6] = [
    PaymentState::Received,
    PaymentState::Approved,
    PaymentState::Completing,
    PaymentState::Completed,
    PaymentState::Cancelled,
    PaymentState::NeedsAttention,
];

impl PaymentState {
    /// The text stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PaymentState::Received => "received",
            PaymentState::Approved => "approved",
            PaymentState::Completing => "completing",
            PaymentState::Completed => "completed",
            PaymentState::Cancelled => "cancelled",
            PaymentState::NeedsAttention => "needs_attention",
        }
    }

    /// Parse the database text; `None` for anything else.
    pub fn parse(text: &str) -> Option<PaymentState> {
        ALL_STATES.into_iter().find(|s| s.as_str() == text)
    }

    /// The states nothing more happens to (the ledger's queries list them from here).
    pub const TERMINAL: [PaymentState; 2] = [PaymentState::Completed, PaymentState::Cancelled];

    /// The states where a job should be working on the payment (what the sweeper looks at).
    pub const IN_FLIGHT: [PaymentState; 3] = [
        PaymentState::Received,
        PaymentState::Approved,
        PaymentState::Completing,
    ];

    /// Nothing more will happen to a payment in this state.
    pub fn is_terminal(self) -> bool {
        PaymentState::TERMINAL.contains(&self)
    }

    /// States where a job should be working on the payment (what the sweeper looks at).
    pub fn is_in_flight(self) -> bool {
        PaymentState::IN_FLIGHT.contains(&self)
    }
}

impl fmt::Display for PaymentState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which step an operator or the sweeper sends a `needs_attention` payment back to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum RetryStep {
    /// Back to `received`: the approve job runs again.
    Approve,
    /// Back to `completing`: verification and `/complete` run again (needs a stored txid).
    Complete,
}

/// Why a payment changes state: every cause the system knows, with what it carries.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Transition {
    /// The frontend's approve callback arrived (creates the payment as `received`).
    ApproveCallback,
    /// Pi shows the payment approved (our `/approve` succeeded, or it was already approved).
    PiApproved,
    /// A complete (or incomplete-with-txid) callback brought the transaction id.
    CompleteCallback { txid: Txid },
    /// Pi answered 2xx to `/complete`.
    PiCompleted,
    /// We refused the payment (checks failed, or an abandoned approved payment) and cancelled it
    /// at Pi.
    Refused { reason: String },
    /// Pi reports the payment cancelled (by the Pioneer or by Pi itself).
    CancelledAtPi { reason: String },
    /// Retries exhausted or a verification failure a person must look at.
    GaveUp { reason: String },
    /// An operator or the sweeper sends a `needs_attention` payment back to a step.
    Retry(RetryStep),
}

impl Transition {
    /// Stable name stored as `payment_events.cause`.
    pub fn cause(&self) -> &'static str {
        match self {
            Transition::ApproveCallback => "approve_callback",
            Transition::PiApproved => "pi_approved",
            Transition::CompleteCallback { .. } => "complete_callback",
            Transition::PiCompleted => "pi_completed",
            Transition::Refused { .. } => "refused",
            Transition::CancelledAtPi { .. } => "cancelled_at_pi",
            Transition::GaveUp { .. } => "gave_up",
            Transition::Retry(RetryStep::Approve) => "retry_approve",
            Transition::Retry(RetryStep::Complete) => "retry_complete",
        }
    }

    /// The human reason this transition carries, stored in `payments.reason`.
    pub fn reason(&self) -> Option<&str> {
        match self {
            Transition::Refused { reason }
            | Transition::CancelledAtPi { reason }
            | Transition::GaveUp { reason } => Some(reason),
            _ => None,
        }
    }

    /// The txid this transition carries, if any.
    pub fn txid(&self) -> Option<&Txid> {
        match self {
            Transition::CompleteCallback { txid } => Some(txid),
            _ => None,
        }
    }
}

/// A transition that the state machine does not allow from the payment's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "payment in state {from} cannot take {cause}: the payment moved on (look at its events with GET /payments/{{id}})"
)]
pub struct InvalidTransition {
    pub from: PaymentState,
    pub cause: &'static str,
}

/// The state a payment starts in when `transition` is the first thing we hear about it.
///
/// Callbacks other than approve/complete also create the row (as `received`) so that their job
/// has a row to work on; those do not go through this function.
pub fn start(transition: &Transition) -> Result<PaymentState, InvalidTransition> {
    match transition {
        Transition::ApproveCallback => Ok(PaymentState::Received),
        Transition::CompleteCallback { .. } => Ok(PaymentState::Completing),
        other => Err(InvalidTransition {
            from: PaymentState::Received,
            cause: other.cause(),
        }),
    }
}

/// The state after `transition` from `from`. `Ok(from)` means "already there": a no-op.
pub fn next(
    from: PaymentState,
    transition: &Transition,
) -> Result<PaymentState, InvalidTransition> {
    use PaymentState as S;
    use Transition as T;
    let to = match (from, transition) {
        // A repeated approve callback never moves anything.
        (s, T::ApproveCallback) => s,

        (S::Received | S::NeedsAttention, T::PiApproved) => S::Approved,
        // Already approved, or already past approval: a late approve job is a no-op.
        (S::Approved | S::Completing | S::Completed, T::PiApproved) => from,

        (S::Received | S::Approved | S::NeedsAttention, T::CompleteCallback { .. }) => {
            S::Completing
        }
        // Same txid is checked by the ledger; here it is a repeat.
        (S::Completing | S::Completed, T::CompleteCallback { .. }) => from,

        (S::Completing | S::NeedsAttention, T::PiCompleted) => S::Completed,
        (S::Completed, T::PiCompleted) => from,

        // Refusing needs no tx on chain: Pi refuses to cancel once a tx is linked.
        (S::Received | S::Approved | S::NeedsAttention, T::Refused { .. }) => S::Cancelled,
        (
            S::Received | S::Approved | S::Completing | S::NeedsAttention,
            T::CancelledAtPi { .. },
        ) => S::Cancelled,
        (S::Cancelled, T::Refused { .. } | T::CancelledAtPi { .. }) => from,

        (S::Received | S::Approved | S::Completing, T::GaveUp { .. }) => S::NeedsAttention,
        (S::NeedsAttention, T::GaveUp { .. }) => from,

        (S::NeedsAttention, T::Retry(RetryStep::Approve)) => S::Received,
        (S::NeedsAttention, T::Retry(RetryStep::Complete)) => S::Completing,
        (S::Received, T::Retry(RetryStep::Approve)) => from,
        (S::Completing, T::Retry(RetryStep::Complete)) => from,

        (from, t) => {
            return Err(InvalidTransition {
                from,
                cause: t.cause(),
            });
        }
    };
    Ok(to)
}

// ---------------------------------------------------------------------------------------------
// A2U payouts
// ---------------------------------------------------------------------------------------------

/// Where an A2U payout stands. Each state names the step that is persisted, so a retry resumes
/// from it (pi-platform.md §5): `requested` → `created` (Pi payment identifier stored) →
/// `signed` (envelope, hash and max time stored: it may have been submitted) → `confirmed` (the
/// transaction is in a ledger, successful) → `completed` (Pi answered 2xx to `/complete`).
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PayoutState {
    /// Accepted; no Pi payment yet.
    Requested,
    /// The Pi payment exists and its identifier is stored; no live envelope.
    Created,
    /// A signed envelope is stored; it may be in flight. Only this envelope may be submitted
    /// until it is proven dead.
    Signed,
    /// The transaction landed successfully; `/complete` is due.
    Confirmed,
    /// Pi completed the payment. Terminal.
    Completed,
    /// Definitely not paid (business failure, reason stored). Terminal.
    Failed,
    /// Withdrawn before any envelope was stored. Terminal.
    Cancelled,
    /// A person must look (reason stored); an operator or the sweeper may retry it.
    NeedsAttention,
}

/// Every payout state, for tests and for listing.
pub const ALL_PAYOUT_STATES: [PayoutState; 8] = [
    PayoutState::Requested,
    PayoutState::Created,
    PayoutState::Signed,
    PayoutState::Confirmed,
    PayoutState::Completed,
    PayoutState::Failed,
    PayoutState::Cancelled,
    PayoutState::NeedsAttention,
];

impl PayoutState {
    /// The text stored in the database and shown by the API.
    pub fn as_str(self) -> &'static str {
        match self {
            PayoutState::Requested => "requested",
            PayoutState::Created => "created",
            PayoutState::Signed => "signed",
            PayoutState::Confirmed => "confirmed",
            PayoutState::Completed => "completed",
            PayoutState::Failed => "failed",
            PayoutState::Cancelled => "cancelled",
            PayoutState::NeedsAttention => "needs_attention",
        }
    }

    /// Parse the database (or query string) text; `None` for anything else.
    pub fn parse(text: &str) -> Option<PayoutState> {
        ALL_PAYOUT_STATES.into_iter().find(|s| s.as_str() == text)
    }

    /// The states nothing more happens to (the ledger's queries list them from here).
    pub const TERMINAL: [PayoutState; 3] = [
        PayoutState::Completed,
        PayoutState::Failed,
        PayoutState::Cancelled,
    ];

    /// The states a job should be working on (what the sweeper re-enqueues).
    pub const IN_FLIGHT: [PayoutState; 4] = [
        PayoutState::Requested,
        PayoutState::Created,
        PayoutState::Signed,
        PayoutState::Confirmed,
    ];

    /// Nothing more will happen to a payout in this state.
    pub fn is_terminal(self) -> bool {
        PayoutState::TERMINAL.contains(&self)
    }

    /// States a job should be working on (what the sweeper re-enqueues).
    pub fn is_in_flight(self) -> bool {
        PayoutState::IN_FLIGHT.contains(&self)
    }
}

impl fmt::Display for PayoutState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a payout changes state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PayoutTransition {
    /// The Pi payment was created (or an open one carrying our payout id was adopted).
    PiCreated,
    /// A signed envelope was stored (before it is submitted).
    Signed,
    /// The stored envelope (hash `tx_hash`) is proven dead (never landed, never will): back to
    /// `created` so a new one is built. Carries the dead hash so a stale worker cannot discard a
    /// newer envelope.
    Expired { tx_hash: String, reason: String },
    /// The payout's transaction is in a ledger, successful.
    Confirmed,
    /// Pi answered 2xx to `/complete` (or confirmed it was already completed with our txid).
    PiCompleted,
    /// Definitely not paid, never retried: `missing_scope`, `user_not_found`, `op_underfunded`…
    Failed { reason: String },
    /// Withdrawn by the operator before any envelope was stored.
    Cancelled { reason: String },
    /// Retries exhausted or a state only a person can resolve.
    GaveUp { reason: String },
    /// An operator or the sweeper sends a `needs_attention` payout back to a working state (the
    /// one its stored data implies, see `Ledger::retry_payout`).
    Retry(PayoutState),
}

impl PayoutTransition {
    /// Stable name stored as `payout_events.cause`.
    pub fn cause(&self) -> &'static str {
        match self {
            PayoutTransition::PiCreated => "pi_created",
            PayoutTransition::Signed => "signed",
            PayoutTransition::Expired { .. } => "envelope_dead",
            PayoutTransition::Confirmed => "confirmed",
            PayoutTransition::PiCompleted => "pi_completed",
            PayoutTransition::Failed { .. } => "failed",
            PayoutTransition::Cancelled { .. } => "cancelled",
            PayoutTransition::GaveUp { .. } => "gave_up",
            PayoutTransition::Retry(_) => "retry",
        }
    }

    /// The human reason stored in `payouts.reason`, if the transition carries one.
    pub fn reason(&self) -> Option<&str> {
        match self {
            PayoutTransition::Expired { reason, .. }
            | PayoutTransition::Failed { reason }
            | PayoutTransition::Cancelled { reason }
            | PayoutTransition::GaveUp { reason } => Some(reason),
            _ => None,
        }
    }
}

/// A payout transition the state machine does not allow from the payout's current state.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "payout in state {from} cannot take {cause}: it moved on (look at its events with GET /payouts/{{id}})"
)]
pub struct InvalidPayoutTransition {
    pub from: PayoutState,
    pub cause: &'static str,
}

/// The state after `transition` from `from`. `Ok(from)` means "already there": a no-op, so a
/// step that runs twice (or two workers racing) records one move.
pub fn next_payout(
    from: PayoutState,
    transition: &PayoutTransition,
) -> Result<PayoutState, InvalidPayoutTransition> {
    use PayoutState as S;
    use PayoutTransition as T;
    let to = match (from, transition) {
        (S::Requested | S::NeedsAttention, T::PiCreated) => S::Created,
        (S::Created | S::Signed | S::Confirmed | S::Completed, T::PiCreated) => from,

        (S::Created, T::Signed) => S::Signed,
        // Someone else stored an envelope first: theirs is the one to submit.
        (S::Signed | S::Confirmed | S::Completed, T::Signed) => from,

        (S::Signed | S::NeedsAttention, T::Expired { .. }) => S::Created,
        (S::Created, T::Expired { .. }) => from,

        // `created` → `confirmed`: a transaction with the payout's memo was found on chain
        // (adoption by the reconciler after a lost envelope).
        (S::Created | S::Signed | S::NeedsAttention, T::Confirmed) => S::Confirmed,
        (S::Confirmed | S::Completed, T::Confirmed) => from,

        (S::Confirmed | S::NeedsAttention, T::PiCompleted) => S::Completed,
        (S::Completed, T::PiCompleted) => from,

        // `signed` may fail only on an in-ledger failure (tx_failed): that envelope is spent.
        (S::Requested | S::Created | S::Signed | S::NeedsAttention, T::Failed { .. }) => S::Failed,
        (S::Failed, T::Failed { .. }) => from,

        (S::Requested | S::Created, T::Cancelled { .. }) => S::Cancelled,
        (S::Cancelled, T::Cancelled { .. }) => from,

        (S::Requested | S::Created | S::Signed | S::Confirmed, T::GaveUp { .. }) => {
            S::NeedsAttention
        }
        (S::NeedsAttention, T::GaveUp { .. }) => from,

        (
            S::NeedsAttention,
            T::Retry(to @ (S::Requested | S::Created | S::Signed | S::Confirmed)),
        ) => *to,
        (s, T::Retry(to)) if s == *to && s.is_in_flight() => from,

        (from, t) => {
            return Err(InvalidPayoutTransition {
                from,
                cause: t.cause(),
            });
        }
    };
    Ok(to)
}

#[cfg(test)]
mod tests {
    use super::*;
    use PaymentState as S;

    fn txid() -> Txid {
        Txid::parse(&"ab".repeat(32)).unwrap()
    }

    fn all_transitions() -> Vec<Transition> {
        vec![
            Transition::ApproveCallback,
            Transition::PiApproved,
            Transition::CompleteCallback { txid: txid() },
            Transition::PiCompleted,
            Transition::Refused { reason: "r".into() },
            Transition::CancelledAtPi { reason: "c".into() },
            Transition::GaveUp { reason: "g".into() },
            Transition::Retry(RetryStep::Approve),
            Transition::Retry(RetryStep::Complete),
        ]
    }

    /// The full table: (from, cause) -> Some(to) when allowed, None when forbidden.
    fn expected(from: S, t: &Transition) -> Option<S> {
        let to = match (from, t.cause()) {
            (s, "approve_callback") => s,
            (S::Received, "pi_approved") => S::Approved,
            (S::Approved, "pi_approved") => S::Approved,
            (S::Completing, "pi_approved") => S::Completing,
            (S::Completed, "pi_approved") => S::Completed,
            (S::NeedsAttention, "pi_approved") => S::Approved,
            (S::Received | S::Approved | S::NeedsAttention, "complete_callback") => S::Completing,
            (S::Completing, "complete_callback") => S::Completing,
            (S::Completed, "complete_callback") => S::Completed,
            (S::Completing | S::NeedsAttention | S::Completed, "pi_completed") => S::Completed,
            (S::Received | S::Approved | S::NeedsAttention | S::Cancelled, "refused") => {
                S::Cancelled
            }
            (
                S::Received | S::Approved | S::Completing | S::NeedsAttention | S::Cancelled,
                "cancelled_at_pi",
            ) => S::Cancelled,
            (S::Received | S::Approved | S::Completing | S::NeedsAttention, "gave_up") => {
                S::NeedsAttention
            }
            (S::NeedsAttention | S::Received, "retry_approve") => S::Received,
            (S::NeedsAttention | S::Completing, "retry_complete") => S::Completing,
            _ => return None,
        };
        Some(to)
    }

    #[test]
    fn every_pair_matches_the_table() {
        let mut allowed = 0;
        let mut forbidden = 0;
        for from in ALL_STATES {
            for t in all_transitions() {
                match (next(from, &t), expected(from, &t)) {
                    (Ok(got), Some(want)) => {
                        assert_eq!(got, want, "{from} + {}", t.cause());
                        allowed += 1;
                    }
                    (Err(e), None) => {
                        assert_eq!(e.from, from);
                        assert_eq!(e.cause, t.cause());
                        forbidden += 1;
                    }
                    (got, want) => panic!("{from} + {}: got {got:?}, want {want:?}", t.cause()),
                }
            }
        }
        assert_eq!(allowed + forbidden, 6 * 9);
        assert!(forbidden > 10, "the table forbids real moves");
    }

    #[test]
    fn the_happy_path() {
        let mut s = start(&Transition::ApproveCallback).unwrap();
        assert_eq!(s, S::Received);
        s = next(s, &Transition::PiApproved).unwrap();
        assert_eq!(s, S::Approved);
        s = next(s, &Transition::CompleteCallback { txid: txid() }).unwrap();
        assert_eq!(s, S::Completing);
        s = next(s, &Transition::PiCompleted).unwrap();
        assert_eq!(s, S::Completed);
        assert!(s.is_terminal());
    }

    #[test]
    fn terminal_states_do_not_move() {
        for t in all_transitions() {
            if let Ok(to) = next(S::Completed, &t) {
                assert_eq!(to, S::Completed, "{}", t.cause());
            }
            if let Ok(to) = next(S::Cancelled, &t) {
                assert_eq!(to, S::Cancelled, "{}", t.cause());
            }
        }
    }

    #[test]
    fn forbidden_samples() {
        let no = |from, t: Transition| assert!(next(from, &t).is_err(), "{from} + {}", t.cause());
        no(S::Received, Transition::PiCompleted);
        no(S::Approved, Transition::PiCompleted);
        no(S::Completing, Transition::Refused { reason: "x".into() });
        no(
            S::Completed,
            Transition::CancelledAtPi { reason: "x".into() },
        );
        no(S::Completed, Transition::GaveUp { reason: "x".into() });
        no(S::Cancelled, Transition::PiApproved);
        no(S::Cancelled, Transition::CompleteCallback { txid: txid() });
        no(S::Cancelled, Transition::PiCompleted);
        no(S::Approved, Transition::Retry(RetryStep::Approve));
        no(S::Completed, Transition::Retry(RetryStep::Complete));
    }

    #[test]
    fn repeats_are_detectable_no_ops() {
        for (from, t) in [
            (S::Approved, Transition::PiApproved),
            (S::Completing, Transition::PiApproved),
            (S::Completed, Transition::PiCompleted),
            (
                S::Cancelled,
                Transition::Refused {
                    reason: "again".into(),
                },
            ),
            (
                S::NeedsAttention,
                Transition::GaveUp {
                    reason: "again".into(),
                },
            ),
            (S::Received, Transition::ApproveCallback),
        ] {
            assert_eq!(next(from, &t), Ok(from));
        }
    }

    #[test]
    fn start_states() {
        assert_eq!(start(&Transition::ApproveCallback), Ok(S::Received));
        assert_eq!(
            start(&Transition::CompleteCallback { txid: txid() }),
            Ok(S::Completing)
        );
        assert!(start(&Transition::PiCompleted).is_err());
    }

    #[test]
    fn names_round_trip() {
        for s in ALL_STATES {
            assert_eq!(PaymentState::parse(s.as_str()), Some(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert_eq!(PaymentState::parse("bogus"), None);
    }

    mod payouts {
        use super::super::*;
        use PayoutState as S;

        fn all() -> Vec<PayoutTransition> {
            vec![
                PayoutTransition::PiCreated,
                PayoutTransition::Signed,
                PayoutTransition::Expired {
                    tx_hash: "h".into(),
                    reason: "r".into(),
                },
                PayoutTransition::Confirmed,
                PayoutTransition::PiCompleted,
                PayoutTransition::Failed { reason: "f".into() },
                PayoutTransition::Cancelled { reason: "c".into() },
                PayoutTransition::GaveUp { reason: "g".into() },
                PayoutTransition::Retry(S::Signed),
            ]
        }

        #[test]
        fn happy_path_and_rebuild() {
            let mut s = S::Requested;
            for t in [
                PayoutTransition::PiCreated,
                PayoutTransition::Signed,
                PayoutTransition::Expired {
                    tx_hash: "h".into(),
                    reason: "tx_bad_seq".into(),
                },
                PayoutTransition::Signed,
                PayoutTransition::Confirmed,
                PayoutTransition::PiCompleted,
            ] {
                s = next_payout(s, &t).unwrap();
            }
            assert_eq!(s, S::Completed);
            assert!(s.is_terminal());
        }

        #[test]
        fn terminal_states_never_move() {
            for from in [S::Completed, S::Failed, S::Cancelled] {
                for t in all() {
                    if let Ok(to) = next_payout(from, &t) {
                        assert_eq!(to, from, "{from} + {}", t.cause());
                    }
                }
            }
        }

        #[test]
        fn no_cancel_once_an_envelope_may_be_in_flight() {
            let cancel = PayoutTransition::Cancelled { reason: "x".into() };
            for from in [S::Signed, S::Confirmed, S::Completed, S::NeedsAttention] {
                assert!(next_payout(from, &cancel).is_err(), "{from}");
            }
            assert_eq!(next_payout(S::Created, &cancel), Ok(S::Cancelled));
        }

        #[test]
        fn only_in_ledger_failures_fail_a_signed_payout_and_confirmed_never_fails() {
            let fail = PayoutTransition::Failed { reason: "x".into() };
            assert_eq!(next_payout(S::Signed, &fail), Ok(S::Failed));
            assert!(next_payout(S::Confirmed, &fail).is_err());
            assert!(next_payout(S::Completed, &fail).is_err());
        }

        #[test]
        fn repeats_are_no_ops() {
            assert_eq!(
                next_payout(S::Signed, &PayoutTransition::Signed),
                Ok(S::Signed)
            );
            assert_eq!(
                next_payout(S::Completed, &PayoutTransition::PiCompleted),
                Ok(S::Completed)
            );
            assert_eq!(
                next_payout(S::Confirmed, &PayoutTransition::PiCreated),
                Ok(S::Confirmed)
            );
        }

        #[test]
        fn retry_targets() {
            for to in [S::Requested, S::Created, S::Signed, S::Confirmed] {
                assert_eq!(
                    next_payout(S::NeedsAttention, &PayoutTransition::Retry(to)),
                    Ok(to)
                );
            }
            assert!(
                next_payout(S::NeedsAttention, &PayoutTransition::Retry(S::Completed)).is_err()
            );
            assert!(next_payout(S::Failed, &PayoutTransition::Retry(S::Requested)).is_err());
        }

        #[test]
        fn names_round_trip() {
            for s in ALL_PAYOUT_STATES {
                assert_eq!(PayoutState::parse(s.as_str()), Some(s));
            }
        }
    }
}
