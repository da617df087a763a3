//! The drift report: where the ledger, Pi and the chain disagree, for operators
//! (`pi-payments reconcile --report`, `GET /admin/drift`). Read-only: it changes nothing.
//!
//! What is compared:
//! - **payments** (U2A) open in the ledger, or changed within [`DriftOptions::since`]: the
//!   ledger's state, amount and txid against `GET /v2/payments/{id}` (completed here but not at
//!   Pi, cancelled here but open or completed at Pi, open here but settled at Pi for longer than
//!   `STUCK_AFTER`, …);
//! - **payouts** (A2U) the same way, through their Pi payment;
//! - **the chain**: the app wallet's newest transactions on Horizon. An outgoing payment must
//!   belong to a payout (its memo is the payout's Pi payment id) with the same amount and
//!   destination, and a payout must be paid by one transaction only; an incoming payment with a
//!   memo must belong to a ledger payment;
//! - **incomplete server payments** at Pi that no payout of ours matches.
//!
//! Rows in `needs_attention` are listed separately: they are known problems, not drift.

use super::config::{DEFAULT_STUCK_AFTER, ms};
use super::reconciler::Reconciler;
use super::server::{UNKNOWN_SERVER_PAYMENT, describe, payout_for};
use crate::amount::PiAmount;
use crate::dto::PaymentDto;
use crate::horizon::{HorizonClient, Order};
use crate::ids::PaymentId;
use crate::ledger::{Ledger, LedgerError, PaymentRow, PayoutRow, RunRow, now_ms};
use crate::pi_client::{PiClient, PiError};
use crate::state::{PaymentState, PayoutState};
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// What kind of disagreement an item is.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum DriftKind {
    /// The ledger and Pi disagree on where a payment or payout stands.
    StateMismatch,
    /// The ledger's amount differs from Pi's or the chain's.
    AmountMismatch,
    /// The ledger's transaction differs from the one Pi linked (or a second one paid it).
    TxidMismatch,
    /// The ledger has a payment Pi does not know.
    MissingAtPi,
    /// The app wallet paid someone and no payout has that memo.
    ChainPaymentWithoutPayout,
    /// A chain payment belongs to a payout but pays another amount or destination.
    ChainPaymentMismatch,
    /// One payout was paid by more than one transaction.
    DuplicateChainPayment,
    /// Someone paid the app wallet with a memo no ledger payment has.
    UnknownIncomingPayment,
    /// Pi lists an incomplete server payment that is not one of our payouts.
    UnknownIncompleteServerPayment,
}

impl DriftKind {
    /// The snake_case name (as in JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            DriftKind::StateMismatch => "state_mismatch",
            DriftKind::AmountMismatch => "amount_mismatch",
            DriftKind::TxidMismatch => "txid_mismatch",
            DriftKind::MissingAtPi => "missing_at_pi",
            DriftKind::ChainPaymentWithoutPayout => "chain_payment_without_payout",
            DriftKind::ChainPaymentMismatch => "chain_payment_mismatch",
            DriftKind::DuplicateChainPayment => "duplicate_chain_payment",
            DriftKind::UnknownIncomingPayment => "unknown_incoming_payment",
            DriftKind::UnknownIncompleteServerPayment => "unknown_incomplete_server_payment",
        }
    }
}

/// One disagreement.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriftItem {
    pub kind: DriftKind,
    /// `payment`, `payout`, `transaction` or `pi_payment`.
    pub subject_type: String,
    /// Its id (payment id, payout id, transaction hash).
    pub subject: String,
    /// What the ledger says, if it says anything.
    pub ledger: Option<String>,
    /// What Pi says.
    pub pi: Option<String>,
    /// What the chain says.
    pub chain: Option<String>,
    /// The disagreement in words, and what to look at.
    pub detail: String,
}

/// A row waiting for a person.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AttentionItem {
    /// `payment` or `payout`.
    pub subject_type: String,
    pub subject: String,
    pub reason: Option<String>,
    /// Unix milliseconds of its last change.
    pub since: i64,
    /// What Pi says about it, when it was read.
    pub pi: Option<String>,
}

/// How much was looked at.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Checked {
    pub payments: u64,
    pub payouts: u64,
    pub chain_transactions: u64,
    pub incomplete_server_payments: u64,
    /// Settled rows older than this (unix ms) were not compared.
    pub settled_since: i64,
}

/// The report.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct DriftReport {
    /// Unix milliseconds.
    pub generated_at: i64,
    /// No drift and every source could be read.
    pub clean: bool,
    pub checked: Checked,
    pub drift: Vec<DriftItem>,
    pub needs_attention: Vec<AttentionItem>,
    /// Sources that could not be read: the report is incomplete.
    pub errors: Vec<String>,
    /// The latest reconcile run.
    pub last_run: Option<RunRow>,
}

/// What the report looks at.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DriftOptions {
    /// Open rows younger than this are in flight, not drift.
    pub stuck_after: Duration,
    /// Settled rows changed within this window are compared with Pi.
    pub since: Duration,
    /// Rows of each kind compared with Pi, at most (newest first).
    pub max_rows: i64,
    /// Newest app-wallet transactions read from Horizon.
    pub chain_limit: u32,
    /// Pi reads in flight at once (the shared rate limiter still applies).
    pub concurrency: usize,
}

impl Default for DriftOptions {
    fn default() -> Self {
        DriftOptions {
            stuck_after: DEFAULT_STUCK_AFTER,
            since: Duration::from_secs(24 * 3600),
            max_rows: 500,
            chain_limit: 200,
            concurrency: 8,
        }
    }
}

/// Most errors listed; the rest are counted.
const MAX_ERRORS: usize = 20;

/// Computes [`DriftReport`]s. Cheap to clone.
#[derive(Clone)]
pub struct DriftChecker {
    ledger: Ledger,
    pi: PiClient,
    horizon: HorizonClient,
    app_wallet: String,
    options: DriftOptions,
}

impl std::fmt::Debug for DriftChecker {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DriftChecker")
            .field("app_wallet", &self.app_wallet)
            .field("options", &self.options)
            .finish_non_exhaustive()
    }
}

impl Reconciler {
    /// The drift checker over the same ledger, Pi and Horizon.
    pub fn drift_checker(&self) -> DriftChecker {
        DriftChecker::new(
            self.ledger.clone(),
            self.pi.clone(),
            self.horizon.clone(),
            self.app_wallet.clone(),
            DriftOptions {
                stuck_after: self.config.stuck_after,
                ..DriftOptions::default()
            },
        )
    }
}

/// Pi's view of a payment in a few words.
fn pi_view(dto: &PaymentDto) -> String {
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

fn short(hash: &str) -> String {
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
struct Shown {
    /// `payment` or `payout`.
    subject_type: &'static str,
    subject: String,
    /// The ledger's view in a few words (state, amount, transaction).
    view: String,
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
    fn attention(&self, pi: Option<String>) -> AttentionItem {
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

impl DriftReport {
    fn push(&mut self, item: DriftItem) {
        let dup = self
            .drift
            .iter()
            .any(|d| d.kind == item.kind && d.subject == item.subject);
        if !dup {
            self.drift.push(item);
        }
    }

    fn error(&mut self, text: String) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(text);
        } else if self.errors.len() == MAX_ERRORS {
            self.errors
                .push("more sources failed; see the service logs".to_string());
        }
    }
}

impl DriftChecker {
    /// A checker over the ledger, Pi, Horizon and the app wallet (`G…`).
    pub fn new(
        ledger: Ledger,
        pi: PiClient,
        horizon: HorizonClient,
        app_wallet: String,
        options: DriftOptions,
    ) -> DriftChecker {
        DriftChecker {
            ledger,
            pi,
            horizon,
            app_wallet,
            options,
        }
    }

    /// Compare everything once. Pi or Horizon failures are listed in `errors` (and make the
    /// report not clean); a ledger failure is an error.
    pub async fn report(&self) -> Result<DriftReport, LedgerError> {
        let now = now_ms();
        let since = now.saturating_sub(ms(self.options.since));
        let mut report = DriftReport {
            generated_at: now,
            clean: false,
            checked: Checked {
                settled_since: since,
                ..Checked::default()
            },
            drift: Vec::new(),
            needs_attention: Vec::new(),
            errors: Vec::new(),
            last_run: None,
        };
        self.check_payments(now, since, &mut report).await?;
        self.check_payouts(now, since, &mut report).await?;
        self.check_chain(&mut report).await?;
        self.check_server_payments(&mut report).await?;
        report.last_run = self.ledger.reconcile_runs(1).await?.into_iter().next();
        report
            .drift
            .sort_by(|a, b| a.kind.cmp(&b.kind).then(a.subject.cmp(&b.subject)));
        report.clean = report.drift.is_empty() && report.errors.is_empty();
        Ok(report)
    }

    /// `GET /v2/payments/{id}` for many ids, a few at a time, in input order.
    async fn read_pi(&self, ids: Vec<PaymentId>) -> Vec<Result<PaymentDto, PiError>> {
        let mut out = Vec::with_capacity(ids.len());
        for chunk in ids.chunks(self.options.concurrency.max(1)) {
            let mut set = tokio::task::JoinSet::new();
            for (i, id) in chunk.iter().enumerate() {
                let pi = self.pi.clone();
                let id = id.clone();
                set.spawn(async move { (i, pi.get_payment(&id).await) });
            }
            let mut results: Vec<Option<Result<PaymentDto, PiError>>> =
                (0..chunk.len()).map(|_| None).collect();
            while let Some(done) = set.join_next().await {
                if let Ok((i, r)) = done {
                    results[i] = Some(r);
                }
            }
            out.extend(results.into_iter().map(|r| {
                r.unwrap_or_else(|| {
                    Err(PiError::Request {
                        detail: "the read task failed".into(),
                    })
                })
            }));
        }
        out
    }

    async fn check_payments(
        &self,
        now: i64,
        since: i64,
        report: &mut DriftReport,
    ) -> Result<(), LedgerError> {
        let rows = self
            .ledger
            .payments_for_drift(since, self.options.max_rows)
            .await?;
        report.checked.payments = rows.len() as u64;
        let old = now.saturating_sub(ms(self.options.stuck_after));
        let dtos = self
            .read_pi(rows.iter().map(|r| r.id.clone()).collect())
            .await;
        for (row, dto) in rows.iter().zip(dtos) {
            let shown = Shown::from(row);
            let item = |kind, pi, detail| shown.drift(kind, pi, detail);
            let dto = match dto {
                Ok(dto) => dto,
                Err(e) => {
                    if !matches!(e.root(), PiError::PaymentNotFound) {
                        report.error(format!("payment {}: reading it at Pi failed: {e}", row.id));
                    } else if row.state == PaymentState::NeedsAttention {
                        report
                            .needs_attention
                            .push(shown.attention(Some("not found at Pi".into())));
                    } else if row.updated_at <= old {
                        report.push(item(
                            DriftKind::MissingAtPi,
                            Some("payment_not_found".into()),
                            "the ledger has this payment but Pi does not know it: check that PI_API_KEY belongs to the app that received the callback".into(),
                        ));
                    }
                    continue;
                }
            };
            let pi = Some(pi_view(&dto));
            let completed_at_pi = dto.status.developer_completed;
            let mismatch = match row.state {
                PaymentState::NeedsAttention => {
                    report.needs_attention.push(shown.attention(pi.clone()));
                    None
                }
                PaymentState::Completed if !completed_at_pi => Some(
                    "completed in the ledger but not completed at Pi: the order may have been delivered without Pi's completion; look at the payment's history".to_string(),
                ),
                PaymentState::Cancelled if completed_at_pi => Some(
                    "cancelled in the ledger but completed at Pi: the Pioneer paid and was not delivered; retry it or refund".to_string(),
                ),
                PaymentState::Cancelled if !pi_cancelled(&dto) => Some(
                    "cancelled in the ledger but still open at Pi: the Pioneer may be blocked from paying again; cancel it at Pi".to_string(),
                ),
                s if s.is_in_flight() && row.updated_at <= old && completed_at_pi => Some(format!(
                    "{s} in the ledger but completed at Pi: the ledger missed the completion"
                )),
                s if s.is_in_flight() && row.updated_at <= old && pi_cancelled(&dto) => Some(
                    format!("{s} in the ledger but cancelled at Pi: the ledger missed the cancellation"),
                ),
                _ => None,
            };
            if let Some(detail) = mismatch {
                report.push(item(DriftKind::StateMismatch, pi.clone(), detail));
            }
            if let Some(amount) = row.amount
                && amount != dto.amount
            {
                report.push(item(
                    DriftKind::AmountMismatch,
                    pi.clone(),
                    format!("the ledger records {amount} Pi, Pi shows {} Pi", dto.amount),
                ));
            }
            if let (Some(ours), Some(theirs)) = (&row.txid, dto.txid())
                && ours != theirs
            {
                report.push(item(
                    DriftKind::TxidMismatch,
                    pi.clone(),
                    format!("the ledger records tx {ours}, Pi linked tx {theirs}"),
                ));
            }
        }
        Ok(())
    }

    async fn check_payouts(
        &self,
        now: i64,
        since: i64,
        report: &mut DriftReport,
    ) -> Result<(), LedgerError> {
        let rows = self
            .ledger
            .payouts_for_drift(since, self.options.max_rows)
            .await?;
        report.checked.payouts = rows.len() as u64;
        let with_pi: Vec<&PayoutRow> = rows.iter().filter(|r| r.pi_payment_id.is_some()).collect();
        for row in rows.iter().filter(|r| r.pi_payment_id.is_none()) {
            if row.state == PayoutState::NeedsAttention {
                report
                    .needs_attention
                    .push(Shown::from(row).attention(None));
            }
        }
        let dtos = self
            .read_pi(
                with_pi
                    .iter()
                    .filter_map(|r| r.pi_payment_id.clone())
                    .collect(),
            )
            .await;
        let old = now.saturating_sub(ms(self.options.stuck_after));
        for (row, dto) in with_pi.into_iter().zip(dtos) {
            let shown = Shown::from(row);
            let item = |kind, pi, detail| shown.drift(kind, pi, detail);
            let dto = match dto {
                Ok(dto) => dto,
                Err(e) if matches!(e.root(), PiError::PaymentNotFound) => {
                    report.push(item(
                        DriftKind::MissingAtPi,
                        Some("payment_not_found".into()),
                        "the payout's Pi payment is unknown to Pi: check PI_API_KEY".into(),
                    ));
                    continue;
                }
                Err(e) => {
                    report.error(format!(
                        "payout {}: reading its Pi payment failed: {e}",
                        row.id
                    ));
                    continue;
                }
            };
            let pi = Some(pi_view(&dto));
            let completed_at_pi = dto.status.developer_completed;
            let mismatch = match row.state {
                PayoutState::NeedsAttention => {
                    report.needs_attention.push(shown.attention(pi.clone()));
                    None
                }
                PayoutState::Completed if !completed_at_pi => {
                    Some("completed in the ledger but not completed at Pi".to_string())
                }
                PayoutState::Failed | PayoutState::Cancelled if completed_at_pi => Some(format!(
                    "{} in the ledger but completed at Pi: the Pioneer may have been paid; check the chain",
                    row.state
                )),
                PayoutState::Failed | PayoutState::Cancelled
                    if row.updated_at <= old && !pi_cancelled(&dto) =>
                {
                    Some(format!(
                        "{} in the ledger but still open at Pi: it blocks the next payout to this Pioneer (ongoing_payment_found)",
                        row.state
                    ))
                }
                s if s.is_in_flight() && row.updated_at <= old && completed_at_pi => Some(format!(
                    "{s} in the ledger but completed at Pi: the ledger missed the completion"
                )),
                s if s.is_in_flight() && row.updated_at <= old && pi_cancelled(&dto) => {
                    Some(format!("{s} in the ledger but cancelled at Pi"))
                }
                _ => None,
            };
            if let Some(detail) = mismatch {
                report.push(item(DriftKind::StateMismatch, pi.clone(), detail));
            }
            if row.amount != dto.amount {
                report.push(item(
                    DriftKind::AmountMismatch,
                    pi.clone(),
                    format!(
                        "the payout is {} Pi, its Pi payment {} Pi",
                        row.amount, dto.amount
                    ),
                ));
            }
            if let (Some(ours), Some(theirs)) = (&row.tx_hash, dto.txid())
                && ours != theirs.as_str()
                && row.state == PayoutState::Completed
            {
                report.push(item(
                    DriftKind::TxidMismatch,
                    pi,
                    format!("the payout records tx {ours}, Pi linked tx {theirs}"),
                ));
            }
        }
        Ok(())
    }

    async fn check_chain(&self, report: &mut DriftReport) -> Result<(), LedgerError> {
        let page = match self
            .horizon
            .account_transactions(
                &self.app_wallet,
                None,
                self.options.chain_limit,
                Order::Desc,
            )
            .await
        {
            Ok(page) => page,
            Err(e) => {
                report.error(format!(
                    "reading the app wallet's transactions on Horizon failed: {e}"
                ));
                return Ok(());
            }
        };
        report.checked.chain_transactions = page.records.len() as u64;
        // payout id → the transactions that paid it.
        let mut paid_by: BTreeMap<String, (PayoutRow, Vec<String>)> = BTreeMap::new();
        for tx in page.records.iter().filter(|t| t.successful) {
            let ops = match self.horizon.transaction_payments(&tx.hash).await {
                Ok(ops) => ops,
                Err(e) => {
                    report.error(format!(
                        "reading transaction {} on Horizon failed: {e}",
                        tx.hash
                    ));
                    continue;
                }
            };
            let memo = tx.memo.as_deref().filter(|_| tx.memo_type == "text");
            for op in ops
                .iter()
                .filter(|o| o.kind == "payment" && o.asset_type == "native")
            {
                let chain = Some(format!(
                    "{} Pi from {} to {}, memo {:?}",
                    PiAmount::from_stroops(op.amount_stroops)
                        .map(|a| a.to_string())
                        .unwrap_or_else(|| format!("{} stroops", op.amount_stroops)),
                    short(&op.from),
                    short(&op.to),
                    memo.unwrap_or("")
                ));
                let item = |kind, ledger: Option<String>, detail: String| DriftItem {
                    kind,
                    subject_type: "transaction".into(),
                    subject: tx.hash.clone(),
                    ledger,
                    pi: None,
                    chain: chain.clone(),
                    detail,
                };
                let pid = memo.and_then(|m| PaymentId::parse(m).ok());
                if op.from == self.app_wallet && op.to != self.app_wallet {
                    let payout = match &pid {
                        Some(pid) => self.ledger.payout_by_pi_payment(pid).await?,
                        None => None,
                    };
                    let Some(payout) = payout else {
                        report.push(item(
                            DriftKind::ChainPaymentWithoutPayout,
                            None,
                            "the app wallet paid this and no payout has its memo: money left the wallet outside pi-payments".into(),
                        ));
                        continue;
                    };
                    let wrong_amount = payout.amount.stroops() != op.amount_stroops;
                    let wrong_dest = payout.to_address.as_deref().is_some_and(|d| d != op.to);
                    if wrong_amount || wrong_dest {
                        report.push(item(
                            DriftKind::ChainPaymentMismatch,
                            Some(Shown::from(&payout).view),
                            format!(
                                "pays payout {} but {}",
                                payout.id,
                                if wrong_amount {
                                    "another amount"
                                } else {
                                    "another destination"
                                }
                            ),
                        ));
                    }
                    paid_by
                        .entry(payout.id.to_string())
                        .or_insert_with(|| (payout.clone(), Vec::new()))
                        .1
                        .push(tx.hash.clone());
                } else if op.to == self.app_wallet
                    && op.from != self.app_wallet
                    && let Some(pid) = &pid
                {
                    match self.ledger.payment(pid).await? {
                        None => {
                            if self.ledger.payout_by_pi_payment(pid).await?.is_none() {
                                report.push(item(
                                    DriftKind::UnknownIncomingPayment,
                                    None,
                                    format!("someone paid the app wallet for Pi payment {pid}, which the ledger does not have"),
                                ));
                            }
                        }
                        Some(row) => {
                            if row.amount.is_some_and(|a| a.stroops() != op.amount_stroops) {
                                report.push(item(
                                    DriftKind::AmountMismatch,
                                    Some(Shown::from(&row).view),
                                    format!("payment {pid} is for another amount than this transaction pays"),
                                ));
                            }
                            if row.txid.as_ref().is_some_and(|t| t.as_str() != tx.hash) {
                                report.push(item(
                                    DriftKind::TxidMismatch,
                                    Some(Shown::from(&row).view),
                                    format!("a second transaction with payment {pid}'s memo: the Pioneer may have paid twice (refund it)"),
                                ));
                            }
                        }
                    }
                }
            }
        }
        for (payout_id, (payout, hashes)) in paid_by {
            let distinct: HashSet<&String> = hashes.iter().collect();
            if distinct.len() > 1 {
                report.push(DriftItem {
                    kind: DriftKind::DuplicateChainPayment,
                    subject_type: "payout".into(),
                    subject: payout_id,
                    ledger: Some(Shown::from(&payout).view),
                    pi: None,
                    chain: Some(
                        distinct.iter().map(|h| short(h)).collect::<Vec<_>>().join(", "),
                    ),
                    detail: format!(
                        "the payout was paid by {} transactions: the Pioneer was paid more than once",
                        distinct.len()
                    ),
                });
            }
        }
        Ok(())
    }

    async fn check_server_payments(&self, report: &mut DriftReport) -> Result<(), LedgerError> {
        let open = match self.pi.incomplete_server_payments().await {
            Ok(open) => open,
            Err(e) => {
                report.error(format!(
                    "reading incomplete server payments at Pi failed: {e}"
                ));
                // What reconcile runs recorded is the best we have.
                for f in self
                    .ledger
                    .open_findings(Some(UNKNOWN_SERVER_PAYMENT))
                    .await?
                {
                    report.push(DriftItem {
                        kind: DriftKind::UnknownIncompleteServerPayment,
                        subject_type: "pi_payment".into(),
                        subject: f.subject,
                        ledger: None,
                        pi: None,
                        chain: None,
                        detail: format!(
                            "{} (as of the last reconcile run)",
                            f.detail.unwrap_or_default()
                        ),
                    });
                }
                return Ok(());
            }
        };
        report.checked.incomplete_server_payments = open.len() as u64;
        for dto in &open {
            if payout_for(&self.ledger, dto).await?.is_none() {
                report.push(DriftItem {
                    kind: DriftKind::UnknownIncompleteServerPayment,
                    subject_type: "pi_payment".into(),
                    subject: dto.identifier.to_string(),
                    ledger: None,
                    pi: Some(pi_view(dto)),
                    chain: None,
                    detail: format!(
                        "{}; not created by pi-payments, so it is never paid: cancel it at Pi if it is not yours",
                        describe(dto)
                    ),
                });
            }
        }
        Ok(())
    }
}
