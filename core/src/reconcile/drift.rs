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
use super::drift_compare::{Shown, compare_with_pi, pi_view, short};
use super::drift_report::{Checked, DriftItem, DriftKind, DriftReport};
use super::reconciler::Reconciler;
use super::server::{UNKNOWN_SERVER_PAYMENT, describe, payout_for};
use crate::amount::PiAmount;
use crate::dto::PaymentDto;
use crate::horizon::{HorizonClient, Order};
use crate::ids::PaymentId;
use crate::ledger::{Ledger, LedgerError, PaymentRow, PayoutRow, now_ms};
use crate::pi_client::{PiClient, PiError};
use crate::state::PayoutState;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

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
        // Open rows changed at or before `old` are stale: no longer in flight.
        let old = now.saturating_sub(ms(self.options.stuck_after));
        let max = self.options.max_rows;
        let payments = self.ledger.payments_for_drift(since, max).await?;
        self.check_payments(&payments, old, &mut report).await;
        let payouts = self.ledger.payouts_for_drift(since, max).await?;
        self.check_payouts(&payouts, old, &mut report).await;
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

    async fn check_payments(&self, rows: &[PaymentRow], old: i64, report: &mut DriftReport) {
        report.checked.payments = rows.len() as u64;
        let answers = self
            .read_pi(rows.iter().map(|r| r.id.clone()).collect())
            .await;
        compare_with_pi(rows.iter().zip(answers), old, report);
    }

    async fn check_payouts(&self, rows: &[PayoutRow], old: i64, report: &mut DriftReport) {
        report.checked.payouts = rows.len() as u64;
        let (with_pi, without_pi): (Vec<&PayoutRow>, Vec<&PayoutRow>) =
            rows.iter().partition(|r| r.pi_payment_id.is_some());
        for row in without_pi {
            if row.state == PayoutState::NeedsAttention {
                report
                    .needs_attention
                    .push(Shown::from(row).attention(None));
            }
        }
        let pi_ids = with_pi.iter().filter_map(|r| r.pi_payment_id.clone());
        let answers = self.read_pi(pi_ids.collect()).await;
        compare_with_pi(with_pi.into_iter().zip(answers), old, report);
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
