//! `GET /_sim/audit`: the payments as the Platform records them against what the chain shows.
//! This is the test oracle for "never pay twice": it finds double payments, payments paid but
//! cancelled, wrong amounts, completions without a transaction, and app payments nobody asked for.

use std::collections::{HashMap, HashSet};

use serde::Serialize;
use serde_json::value::RawValue;

use crate::chain::records::TxRecord;
use crate::state::{Direction, Payment, amount_json, memo_matches, paid_amount};

/// One payment's audit line.
#[derive(Serialize)]
pub struct PaymentAudit {
    pub identifier: String,
    pub direction: Direction,
    pub amount: Box<RawValue>,
    pub completed: bool,
    pub cancelled: bool,
    pub linked_txid: Option<String>,
    pub chain_txids: Vec<String>,
    pub paid_on_chain: bool,
    pub problems: Vec<&'static str>,
}

/// One problem: a payment's, or the app's payments without a payment.
#[derive(Serialize)]
#[serde(untagged)]
pub enum Problem {
    /// A problem of one payment.
    Payment {
        identifier: String,
        problem: &'static str,
    },
    /// Successful payments from the app wallet whose memo names no payment.
    Orphans {
        problem: &'static str,
        txids: Vec<String>,
    },
}

/// The whole report.
#[derive(Serialize)]
pub struct AuditReport {
    pub ok: bool,
    pub problems: Vec<Problem>,
    pub payments: Vec<PaymentAudit>,
}

/// Audits `payments` against the applied transactions `txs` (oldest first).
pub fn audit(payments: &[Payment], txs: &[TxRecord], app_address: &str) -> AuditReport {
    let mut problems = Vec::new();
    let mut lines = Vec::with_capacity(payments.len());
    // Successful text-memo transactions by memo, so the audit stays linear.
    let mut by_memo: HashMap<&str, Vec<&TxRecord>> = HashMap::new();
    for tx in txs
        .iter()
        .filter(|tx| tx.successful && tx.memo_type == "text")
    {
        if let Some(memo) = tx.memo.as_deref() {
            by_memo.entry(memo).or_default().push(tx);
        }
    }
    for payment in payments {
        // The successful transactions that pay this payment: its memo, and a payment op
        // in its direction (U2A: Pioneer → app; A2U: app → Pioneer).
        let paying: Vec<&TxRecord> = by_memo
            .get(payment.identifier.as_str())
            .into_iter()
            .flatten()
            .filter(|tx| memo_matches(payment, tx) && paid_amount(payment, tx) > 0)
            .copied()
            .collect();
        let mut found = Vec::new();
        if paying.len() > 1 {
            found.push("double_paid");
        }
        if !paying.is_empty() && payment.is_cancelled() {
            found.push("paid_but_cancelled");
        }
        if paying
            .iter()
            .any(|tx| paid_amount(payment, tx) != payment.amount)
        {
            found.push("amount_differs");
        }
        if payment.status.developer_completed && paying.is_empty() {
            found.push("completed_without_chain_tx");
        }
        for problem in &found {
            problems.push(Problem::Payment {
                identifier: payment.identifier.clone(),
                problem,
            });
        }
        lines.push(PaymentAudit {
            identifier: payment.identifier.clone(),
            direction: payment.direction,
            amount: amount_json(payment.amount),
            completed: payment.status.developer_completed,
            cancelled: payment.is_cancelled(),
            linked_txid: payment.transaction.as_ref().map(|t| t.txid.clone()),
            chain_txids: paying.iter().map(|tx| tx.hash.clone()).collect(),
            paid_on_chain: !paying.is_empty(),
            problems: found,
        });
    }
    let identifiers: HashSet<&str> = payments.iter().map(|p| p.identifier.as_str()).collect();
    let orphans: Vec<String> = txs
        .iter()
        .filter(|tx| {
            tx.successful
                && tx
                    .ops
                    .iter()
                    .any(|op| op.kind == "payment" && op.from == app_address)
                && !(tx.memo_type == "text"
                    && tx.memo.as_deref().is_some_and(|m| identifiers.contains(m)))
        })
        .map(|tx| tx.hash.clone())
        .collect();
    if !orphans.is_empty() {
        problems.push(Problem::Orphans {
            problem: "app_payments_without_payment",
            txids: orphans,
        });
    }
    AuditReport {
        ok: problems.is_empty(),
        problems,
        payments: lines,
    }
}
