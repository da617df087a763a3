//! The webhook body of one outbox row: what `POST APP_WEBHOOK_URL` carries and `GET /events`
//! lists for an [`EventRow`]. Built here, next to the outbox rows, so that `crate::events`
//! (event types and signatures, which the ledger uses) does not depend on the ledger.

use crate::events::WebhookBody;
use crate::ledger::outbox::EventRow;
use crate::timestamp::rfc3339_ms;
use serde_json::Value;

impl WebhookBody {
    /// The body for one outbox row.
    pub fn from_row(row: &EventRow) -> WebhookBody {
        WebhookBody {
            id: row.id,
            event_type: row.event_type.clone(),
            created_at: rfc3339_ms(row.created_at),
            data: upgrade_legacy(row.payload.clone()),
        }
    }
}

/// Time fields of the rows an event carries, in unix milliseconds when written by older
/// versions.
const LEGACY_MS_FIELDS: &[&str] = &[
    "created_at",
    "updated_at",
    "next_check_at",
    "paid_at",
    "claimed_at",
    "checked_at",
    "granted_at",
    "revoked_at",
];

/// Events stored before amounts became strings and times RFC 3339 carry numbers there: give
/// them today's shape, so that every event (old or new) reads the same. Only the rows at the
/// top of `data` (`payment`, `order`, `payout`, `ad`) are touched; `metadata` is the app's.
fn upgrade_legacy(mut data: Value) -> Value {
    if let Value::Object(rows) = &mut data {
        for row in rows.values_mut() {
            let Value::Object(fields) = row else { continue };
            for (key, value) in fields.iter_mut() {
                let Value::Number(n) = value else { continue };
                let upgraded = match key.as_str() {
                    "amount" => Some(Value::String(n.to_string())),
                    "max_time" => n
                        .as_i64()
                        .map(|s| rfc3339_ms(s.saturating_mul(1000)).into()),
                    k if LEGACY_MS_FIELDS.contains(&k) => {
                        n.as_i64().map(|ms| rfc3339_ms(ms).into())
                    }
                    _ => None,
                };
                if let Some(v) = upgraded {
                    *value = v;
                }
            }
        }
    }
    data
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
        let legacy = EventRow {
            payload: serde_json::json!({
                "payment": {"id": "abc", "amount": 1.5, "created_at": 1_700_000_000_123_i64,
                            "next_check_at": null, "metadata": {"amount": 2}},
                "order": null,
            }),
            ..row.clone()
        };
        let upgraded = serde_json::to_value(WebhookBody::from_row(&legacy)).unwrap();
        assert_eq!(
            upgraded["data"],
            serde_json::json!({
                "payment": {"id": "abc", "amount": "1.5", "created_at": "2023-11-14T22:13:20.123Z",
                            "next_check_at": null, "metadata": {"amount": 2}},
                "order": null,
            })
        );
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
