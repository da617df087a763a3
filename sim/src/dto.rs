//! The Platform API's wire shapes (`PaymentDTO` and its parts), exactly as Pi serializes them.
//! Kept apart from the state that fills them ([`crate::state`]) so that error answers
//! ([`crate::error`]) can carry a payment without depending on the state.

use serde::Serialize;
use serde_json::value::RawValue;

use crate::amount::format_decimal;

/// Who pays whom (`PaymentDTO.direction`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    /// U2A: a Pioneer pays the app.
    UserToApp,
    /// A2U: the app pays a Pioneer.
    AppToUser,
}

/// `PaymentDTO.status`.
#[derive(Clone, Copy, Debug, Default, Serialize)]
pub struct PaymentStatus {
    pub developer_approved: bool,
    pub transaction_verified: bool,
    pub developer_completed: bool,
    pub cancelled: bool,
    pub user_cancelled: bool,
}

/// An amount in stroops as a JSON number with its exact decimal text.
pub fn amount_json(stroops: i64) -> Box<RawValue> {
    // A formatted decimal is always valid JSON number text.
    RawValue::from_string(format_decimal(stroops)).unwrap_or_default()
}

/// `PaymentDTO` exactly as Pi serializes it.
#[derive(Clone, Debug, Serialize)]
pub struct PaymentDto {
    pub identifier: String,
    pub user_uid: String,
    pub amount: Box<RawValue>,
    pub memo: String,
    pub metadata: Box<RawValue>,
    pub from_address: String,
    pub to_address: String,
    pub direction: Direction,
    pub created_at: String,
    pub network: String,
    pub status: PaymentStatus,
    pub transaction: Option<TransactionDto>,
}

/// `PaymentDTO.transaction`.
#[derive(Clone, Debug, Serialize)]
pub struct TransactionDto {
    pub txid: String,
    pub verified: bool,
    #[serde(rename = "_link")]
    pub link: String,
}
