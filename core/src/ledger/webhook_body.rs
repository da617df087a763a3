//! The webhook body of one outbox row: what `POST APP_WEBHOOK_URL` carries and `GET /events`
//! lists for an [`EventRow`]. Built here, next to the outbox rows, so that `crate::events`
//! (event types and signatures, which the ledger uses) does not depend on the ledger.

use crate::events::WebhookBody;
use crate::ledger::outbox::EventRow;

impl WebhookBody {
    /// The body for one outbox row.
    pub fn from_row(row: &EventRow) -> WebhookBody {
        let created_at = chrono::DateTime::from_timestamp_millis(row.created_at)
            .unwrap_or_default()
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        WebhookBody {
            id: row.id,
            event_type: row.event_type.clone(),
            created_at,
            data: row.payload.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use crate::events::WebhookBody;
    use crate::ledger::outbox::EventRow;

    #[test]
    fn webhook_body_shape() {
        let row = EventRow {
            id: 7,
            event_type: "payment.completed".into(),
            subject_id: "abc".into(),
            payload: serde_json::json!({"payment": {"id": "abc"}}),
            created_at: 1_700_000_000_123,
            delivered_at: None,
            delivery_attempts: 0,
            next_attempt_at: None,
            last_error: None,
        };
        let body = serde_json::to_value(WebhookBody::from_row(&row)).unwrap();
        assert_eq!(
            body,
            serde_json::json!({
                "id": 7,
                "type": "payment.completed",
                "created_at": "2023-11-14T22:13:20.123Z",
                "data": {"payment": {"id": "abc"}}
            })
        );
    }
}
