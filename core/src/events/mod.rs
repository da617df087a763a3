//! App-facing events: [`event_type`] (what happened: `payment.completed`, …) and [`webhook`] (the
//! JSON body a webhook carries and its signature). The ledger's outbox stores them
//! ([`crate::ledger::outbox`]); the worker delivers them.

pub mod event_type;
pub mod webhook;

pub use event_type::EventType;
pub use webhook::{SIGNATURE_HEADER, SignatureError, WebhookBody, sign_webhook, verify_webhook};
