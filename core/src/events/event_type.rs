//! The kinds of app-facing events: what the outbox's `event_type` column holds and what a webhook's
//! `type` says. The ledger writes them; the webhook sender and the API only read them.

use std::fmt;

/// Every event type the service emits (the outbox's `event_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
pub enum EventType {
    #[serde(rename = "payment.approved")]
    PaymentApproved,
    #[serde(rename = "payment.completed")]
    PaymentCompleted,
    #[serde(rename = "payment.cancelled")]
    PaymentCancelled,
    #[serde(rename = "payment.needs_attention")]
    PaymentNeedsAttention,
    #[serde(rename = "payout.completed")]
    PayoutCompleted,
    #[serde(rename = "payout.failed")]
    PayoutFailed,
    #[serde(rename = "ad.granted")]
    AdGranted,
    #[serde(rename = "ad.revoked")]
    AdRevoked,
}

impl EventType {
    /// The dotted name, e.g. `payment.completed`.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::PaymentApproved => "payment.approved",
            EventType::PaymentCompleted => "payment.completed",
            EventType::PaymentCancelled => "payment.cancelled",
            EventType::PaymentNeedsAttention => "payment.needs_attention",
            EventType::PayoutCompleted => "payout.completed",
            EventType::PayoutFailed => "payout.failed",
            EventType::AdGranted => "ad.granted",
            EventType::AdRevoked => "ad.revoked",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use crate::events::event_type::*;

    #[test]
    fn event_types_serialize_dotted() {
        assert_eq!(
            serde_json::to_string(&EventType::PaymentCompleted).unwrap(),
            "\"payment.completed\""
        );
        assert_eq!(
            EventType::PaymentNeedsAttention.as_str(),
            "payment.needs_attention"
        );
    }
}
