//! What one reconcile run did, as the sweep and the server-payment phase fill it in.

/// What one run did (stored as JSON in `reconcile_runs.summary`).
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RunSummary {
    /// The run's id in `reconcile_runs`.
    pub run_id: i64,
    /// Payments whose job was re-enqueued, as `id:job`.
    pub requeued_payments: Vec<String>,
    /// Payouts whose job was re-enqueued.
    pub requeued_payouts: Vec<String>,
    /// Rows sent to `needs_attention` because sweeping did not move them.
    pub gave_up: Vec<String>,
    /// Incomplete server payments Pi listed.
    pub server_payments: u64,
    /// Of those, payouts of ours resumed through their job.
    pub server_resumed: Vec<String>,
    /// Of those, payouts of ours waiting for a retry time they chose (left to it).
    pub server_waiting: Vec<String>,
    /// Of those, ones we do not know (reported, never paid).
    pub server_unknown: Vec<String>,
    /// Of those, ones whose payout is settled here (reported).
    pub server_settled: Vec<String>,
    /// Of those, ones created for a payout bound to another Pi payment (never signed):
    /// cancelled at Pi.
    #[serde(default)]
    pub server_superseded: Vec<String>,
    /// Parts that failed (the rest of the run still happened).
    pub errors: Vec<String>,
}

impl RunSummary {
    /// What the run found and did, by kind, as counts: the labels of the
    /// `pi_payments_reconcile_findings_total` metric.
    pub fn findings(&self) -> [(&'static str, usize); 10] {
        [
            ("requeued_payment", self.requeued_payments.len()),
            ("requeued_payout", self.requeued_payouts.len()),
            ("gave_up", self.gave_up.len()),
            (
                "server_payment",
                usize::try_from(self.server_payments).unwrap_or(usize::MAX),
            ),
            ("server_resumed", self.server_resumed.len()),
            ("server_waiting", self.server_waiting.len()),
            ("server_unknown", self.server_unknown.len()),
            ("server_settled", self.server_settled.len()),
            ("server_superseded", self.server_superseded.len()),
            ("error", self.errors.len()),
        ]
    }
}
