//! Comparing a ledger row (payment or payout) with its Pi payment: how each kind of row and Pi
//! can disagree, and the words the report shows for both sides.

use super::drift_report::{AttentionItem, DriftItem, DriftKind, DriftReport};
use crate::dto::PaymentDto;
use crate::ledger::{PaymentRow, PayoutRow};
use crate::pi_client::PiError;
use crate::state::{PaymentState, PayoutState};

/// A ledger row (payment or payout) the report compares with its Pi payment. `stale`: the row
/// has not changed for `STUCK_AFTER` (an open row younger than that is in flight, not drift).
pub(super) trait ComparedWithPi {
    /// Whether the row waits for a person (listed apart: a known problem, not drift).
    fn waits_for_a_person(&self) -> bool;

    /// The line in `errors` when reading its Pi payment failed.
    fn read_failed(&self, error: &PiError) -> String;

    /// What Pi not knowing its payment means.
    fn not_found(&self, shown: &Shown, stale: bool, report: &mut DriftReport);

    /// How the ledger's state and Pi's disagree, if they do.
    fn state_mismatch(&self, dto: &PaymentDto, stale: bool) -> Option<String>;

    /// Amount and transaction disagreements.
    fn value_mismatches(&self, dto: &PaymentDto) -> Vec<(DriftKind, String)>;
}

/// Compare each row with Pi's answer for its payment, into `report`. `old`: rows changed at or
/// before it (unix ms) are stale.
pub(super) fn compare_with_pi<'r, R>(
    rows: impl Iterator<Item = (&'r R, Result<PaymentDto, PiError>)>,
    old: i64,
    report: &mut DriftReport,
) where
    R: ComparedWithPi + 'r,
    Shown: From<&'r R>,
{
    for (row, answer) in rows {
        let shown = Shown::from(row);
        let stale = shown.since <= old;
        let dto = match answer {
            Ok(dto) => dto,
            Err(e) if matches!(e.root(), PiError::PaymentNotFound) => {
                row.not_found(&shown, stale, report);
                continue;
            }
            Err(e) => {
                report.error(row.read_failed(&e));
                continue;
            }
        };
        let pi = Some(pi_view(&dto));
        if row.waits_for_a_person() {
            report.needs_attention.push(shown.attention(pi.clone()));
        }
        if let Some(detail) = row.state_mismatch(&dto, stale) {
            report.push(shown.drift(DriftKind::StateMismatch, pi.clone(), detail));
        }
        for (kind, detail) in row.value_mismatches(&dto) {
            report.push(shown.drift(kind, pi.clone(), detail));
        }
    }
}

impl ComparedWithPi for PaymentRow {
    fn state_mismatch(&self, dto: &PaymentDto, stale: bool) -> Option<String> {
        let completed_at_pi = dto.status.developer_completed;
        match self.state {
            PaymentState::Completed if !completed_at_pi => Some(
                "completed in the ledger but not completed at Pi: the order may have been delivered without Pi's completion; look at the payment's history".to_string(),
            ),
            PaymentState::Cancelled if completed_at_pi => Some(
                "cancelled in the ledger but completed at Pi: the Pioneer paid and was not delivered; retry it or refund".to_string(),
            ),
            PaymentState::Cancelled if !pi_cancelled(dto) => Some(
                "cancelled in the ledger but still open at Pi: the Pioneer may be blocked from paying again; cancel it at Pi".to_string(),
            ),
            s if s.is_in_flight() && stale && completed_at_pi => Some(format!(
                "{s} in the ledger but completed at Pi: the ledger missed the completion"
            )),
            s if s.is_in_flight() && stale && pi_cancelled(dto) => Some(format!(
                "{s} in the ledger but cancelled at Pi: the ledger missed the cancellation"
            )),
            _ => None,
        }
    }

    fn value_mismatches(&self, dto: &PaymentDto) -> Vec<(DriftKind, String)> {
        let mut found = Vec::new();
        if let Some(amount) = self.amount
            && amount != dto.amount
        {
            let detail = format!("the ledger records {amount} Pi, Pi shows {} Pi", dto.amount);
            found.push((DriftKind::AmountMismatch, detail));
        }
        if let (Some(ours), Some(theirs)) = (&self.txid, dto.txid())
            && ours != theirs
        {
            let detail = format!("the ledger records tx {ours}, Pi linked tx {theirs}");
            found.push((DriftKind::TxidMismatch, detail));
        }
        found
    }

    fn not_found(&self, shown: &Shown, stale: bool, report: &mut DriftReport) {
        if self.state == PaymentState::NeedsAttention {
            report
                .needs_attention
                .push(shown.attention(Some("not found at Pi".into())));
        } else if stale {
            report.push(shown.drift(
                DriftKind::MissingAtPi,
                Some("payment_not_found".into()),
                "the ledger has this payment but Pi does not know it: check that PI_API_KEY belongs to the app that received the callback".into(),
            ));
        }
    }

    fn waits_for_a_person(&self) -> bool {
        self.state == PaymentState::NeedsAttention
    }

    fn read_failed(&self, error: &PiError) -> String {
        format!("payment {}: reading it at Pi failed: {error}", self.id)
    }
}

impl ComparedWithPi for PayoutRow {
    fn read_failed(&self, error: &PiError) -> String {
        format!("payout {}: reading its Pi payment failed: {error}", self.id)
    }

    fn waits_for_a_person(&self) -> bool {
        self.state == PayoutState::NeedsAttention
    }

    fn not_found(&self, shown: &Shown, _stale: bool, report: &mut DriftReport) {
        report.push(shown.drift(
            DriftKind::MissingAtPi,
            Some("payment_not_found".into()),
            "the payout's Pi payment is unknown to Pi: check PI_API_KEY".into(),
        ));
    }

    fn value_mismatches(&self, dto: &PaymentDto) -> Vec<(DriftKind, String)> {
        let mut found = Vec::new();
        if self.amount != dto.amount {
            found.push((
                DriftKind::AmountMismatch,
                format!(
                    "the payout is {} Pi, its Pi payment {} Pi",
                    self.amount, dto.amount
                ),
            ));
        }
        // Only a completed payout's transaction is final (an expired envelope is replaced).
        if self.state == PayoutState::Completed
            && let (Some(ours), Some(theirs)) = (&self.tx_hash, dto.txid())
            && ours != theirs.as_str()
        {
            found.push((
                DriftKind::TxidMismatch,
                format!("the payout records tx {ours}, Pi linked tx {theirs}"),
            ));
        }
        found
    }

    fn state_mismatch(&self, dto: &PaymentDto, stale: bool) -> Option<String> {
        let completed_at_pi = dto.status.developer_completed;
        match self.state {
            PayoutState::Completed if !completed_at_pi => {
                Some("completed in the ledger but not completed at Pi".to_string())
            }
            PayoutState::Failed | PayoutState::Cancelled if completed_at_pi => Some(format!(
                "{} in the ledger but completed at Pi: the Pioneer may have been paid; check the chain",
                self.state
            )),
            PayoutState::Failed | PayoutState::Cancelled if stale && !pi_cancelled(dto) => {
                Some(format!(
                    "{} in the ledger but still open at Pi: it blocks the next payout to this Pioneer (ongoing_payment_found)",
                    self.state
                ))
            }
            s if s.is_in_flight() && stale && completed_at_pi => Some(format!(
                "{s} in the ledger but completed at Pi: the ledger missed the completion"
            )),
            s if s.is_in_flight() && stale && pi_cancelled(dto) => {
                Some(format!("{s} in the ledger but cancelled at Pi"))
            }
            _ => None,
        }
    }
}

/// Pi's view of a payment in a few words.
pub(super) fn pi_view(dto: &PaymentDto) -> String {
    let s = &dto.status;
    let state = if s.developer_completed {
        "completed"
    } else if s.user_cancelled {
        "user_cancelled"
    } else if s.cancelled {
        "cancelled"
    } else if s.developer_approved {
        "approved"
    } else {
        "pending"
    };
    match dto.txid() {
        Some(t) => format!("{state}, {} Pi, tx {}", dto.amount, short(t.as_str())),
        None => format!("{state}, {} Pi", dto.amount),
    }
}

/// The first 12 characters of a hash, for reading.
pub(super) fn short(hash: &str) -> String {
    if hash.len() > 12 {
        format!("{}…", &hash[..12])
    } else {
        hash.to_string()
    }
}

fn pi_cancelled(dto: &PaymentDto) -> bool {
    dto.status.cancelled || dto.status.user_cancelled
}

/// A ledger row (payment or payout) as the report shows it.
pub(super) struct Shown {
    /// `payment` or `payout`.
    subject_type: &'static str,
    subject: String,
    /// The ledger's view in a few words (state, amount, transaction).
    pub(super) view: String,
    reason: Option<String>,
    /// Unix milliseconds of the row's last change.
    since: i64,
}

impl Shown {
    fn new(
        subject_type: &'static str,
        id: &impl std::fmt::Display,
        view: String,
        reason: &Option<String>,
        since: i64,
    ) -> Shown {
        Shown {
            subject_type,
            subject: id.to_string(),
            view,
            reason: reason.clone(),
            since,
        }
    }

    /// A disagreement between this row and Pi (the chain is not involved).
    fn drift(&self, kind: DriftKind, pi: Option<String>, detail: String) -> DriftItem {
        DriftItem {
            kind,
            subject_type: self.subject_type.into(),
            subject: self.subject.clone(),
            ledger: Some(self.view.clone()),
            pi,
            chain: None,
            detail,
        }
    }

    /// This row waiting for a person.
    pub(super) fn attention(&self, pi: Option<String>) -> AttentionItem {
        AttentionItem {
            subject_type: self.subject_type.into(),
            subject: self.subject.clone(),
            reason: self.reason.clone(),
            since: self.since,
            pi,
        }
    }
}

impl From<&PaymentRow> for Shown {
    fn from(row: &PaymentRow) -> Shown {
        let mut view = row.state.to_string();
        if let Some(a) = row.amount {
            view.push_str(&format!(", {a} Pi"));
        }
        if let Some(t) = &row.txid {
            view.push_str(&format!(", tx {}", short(t.as_str())));
        }
        Shown::new("payment", &row.id, view, &row.reason, row.updated_at)
    }
}

impl From<&PayoutRow> for Shown {
    fn from(row: &PayoutRow) -> Shown {
        let tx = row.tx_hash.as_deref().map(short);
        let view = match tx {
            Some(tx) => format!("{}, {} Pi, tx {tx}", row.state, row.amount),
            None => format!("{}, {} Pi", row.state, row.amount),
        };
        Shown::new("payout", &row.id, view, &row.reason, row.updated_at)
    }
}
