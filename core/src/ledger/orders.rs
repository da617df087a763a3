//! Orders: what a Pioneer is about to pay for, priced by the server from the catalogue, so that
//! the approve job can compare Pi's payment against a price the client never chose.

use super::clock::now_ms;
use super::connection::Ledger;
use super::decode::corrupt;
use super::error::LedgerError;
use crate::amount::PiAmount;
use crate::ids::{OrderId, PaymentId};
use crate::products::{Product, ProductError};
use sqlx::any::AnyRow;
use sqlx::{AnyConnection, Row};

/// Where an order stands.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum OrderState {
    /// Waiting to be paid (a payment may be bound to it while in flight).
    Open,
    /// Paid by `payment_id` (set in the transaction that completed the payment).
    Paid,
    /// Withdrawn by the app; never paid.
    Cancelled,
}

impl OrderState {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Open => "open",
            OrderState::Paid => "paid",
            OrderState::Cancelled => "cancelled",
        }
    }

    fn parse(text: &str) -> Result<OrderState, LedgerError> {
        match text {
            "open" => Ok(OrderState::Open),
            "paid" => Ok(OrderState::Paid),
            "cancelled" => Ok(OrderState::Cancelled),
            other => Err(LedgerError::Corrupt(format!(
                "unknown order state {other:?}"
            ))),
        }
    }
}

/// One order.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, utoipa::ToSchema)]
pub struct Order {
    pub id: OrderId,
    pub product_id: String,
    pub quantity: u32,
    /// price × quantity, exact.
    pub amount: PiAmount,
    /// The memo the frontend should pass to `Pi.createPayment`.
    pub memo: String,
    /// The metadata the frontend should pass to `Pi.createPayment` (`{"orderId": …}`).
    pub metadata: serde_json::Value,
    pub state: OrderState,
    /// The payment bound to (or that paid) this order.
    pub payment_id: Option<PaymentId>,
    /// Unix milliseconds in Rust; an RFC 3339 time (UTC) in JSON.
    #[schema(value_type = String, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms")]
    pub created_at: i64,
    /// Unix milliseconds, once paid (an RFC 3339 time in JSON).
    #[schema(value_type = Option<String>, format = DateTime)]
    #[serde(with = "crate::timestamp::unix_ms_opt")]
    pub paid_at: Option<i64>,
}

const ORDER_COLS_SELECT: &str = "SELECT id, product_id, quantity, amount_stroops, memo, metadata, state, payment_id, created_at, paid_at FROM orders WHERE id = $1";

fn order_from_row(row: &AnyRow) -> Result<Order, LedgerError> {
    let id: String = row.try_get(0)?;
    let quantity: i64 = row.try_get(2)?;
    let amount: i64 = row.try_get(3)?;
    let metadata: String = row.try_get(5)?;
    let state: String = row.try_get(6)?;
    let payment_id: Option<String> = row.try_get(7)?;
    Ok(Order {
        id: OrderId::parse(&id).map_err(corrupt("orders.id"))?,
        product_id: row.try_get(1)?,
        quantity: u32::try_from(quantity).map_err(corrupt("orders.quantity"))?,
        amount: PiAmount::from_stroops(amount)
            .ok_or_else(|| LedgerError::Corrupt(format!("orders.amount_stroops {amount}")))?,
        memo: row.try_get(4)?,
        metadata: serde_json::from_str(&metadata).map_err(corrupt("orders.metadata"))?,
        state: OrderState::parse(&state)?,
        payment_id: payment_id
            .map(|p| PaymentId::parse(&p))
            .transpose()
            .map_err(corrupt("orders.payment_id"))?,
        created_at: row.try_get(8)?,
        paid_at: row.try_get(9)?,
    })
}

/// Read an order inside a transaction.
pub(crate) async fn order_in(
    conn: &mut AnyConnection,
    id: &OrderId,
) -> Result<Option<Order>, LedgerError> {
    let row = sqlx::query(ORDER_COLS_SELECT)
        .bind(id.as_str())
        .fetch_optional(&mut *conn)
        .await?;
    row.as_ref().map(order_from_row).transpose()
}

/// Bind an open order to `payment_id` (at approval), or say why it cannot be.
pub(crate) async fn bind_order(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    payment_id: &PaymentId,
) -> Result<(), LedgerError> {
    let done = sqlx::query(
        "UPDATE orders SET payment_id = $2 WHERE id = $1 AND state = 'open' \
         AND (payment_id IS NULL OR payment_id = $2)",
    )
    .bind(order_id.as_str())
    .bind(payment_id.as_str())
    .execute(&mut *conn)
    .await?;
    if done.rows_affected() == 1 {
        return Ok(());
    }
    let why = match order_in(conn, order_id).await? {
        None => return Err(LedgerError::OrderNotFound(order_id.clone())),
        Some(o) if o.state != OrderState::Open => format!("the order is {}", o.state.as_str()),
        Some(o) => format!(
            "the order is held by payment {}",
            o.payment_id.map(|p| p.to_string()).unwrap_or_default()
        ),
    };
    Err(LedgerError::OrderUnavailable {
        order_id: order_id.clone(),
        payment_id: payment_id.clone(),
        why,
    })
}

/// Mark an order paid by `payment_id`; false if it was not open for this payment.
pub(crate) async fn mark_paid(
    conn: &mut AnyConnection,
    order_id: &OrderId,
    payment_id: &PaymentId,
    now: i64,
) -> Result<bool, LedgerError> {
    let done = sqlx::query(
        "UPDATE orders SET state = 'paid', paid_at = $3, payment_id = $2 \
         WHERE id = $1 AND state = 'open' AND (payment_id IS NULL OR payment_id = $2)",
    )
    .bind(order_id.as_str())
    .bind(payment_id.as_str())
    .bind(now)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

/// A cancelled payment lets go of its open order, so the Pioneer can pay it again.
pub(crate) async fn release_order(
    conn: &mut AnyConnection,
    payment_id: &PaymentId,
) -> Result<(), LedgerError> {
    sqlx::query("UPDATE orders SET payment_id = NULL WHERE payment_id = $1 AND state = 'open'")
        .bind(payment_id.as_str())
        .execute(&mut *conn)
        .await?;
    Ok(())
}

impl Ledger {
    /// Create an open order for `quantity` × `product`, priced exactly (price × quantity).
    pub async fn create_order(
        &self,
        product: &Product,
        quantity: u32,
    ) -> Result<Order, OrderError> {
        let amount = product.total(quantity)?;
        let id = OrderId::generate();
        let memo = product.memo_for(quantity);
        let metadata = serde_json::json!({ "orderId": id.as_str() });
        let now = now_ms();
        sqlx::query(
            "INSERT INTO orders (id, product_id, quantity, amount_stroops, memo, metadata, state, created_at) \
             VALUES ($1, $2, $3, $4, $5, $6, 'open', $7)",
        )
        .bind(id.as_str())
        .bind(product.id.as_str())
        .bind(i64::from(quantity))
        .bind(amount.stroops())
        .bind(memo.as_str())
        .bind(metadata.to_string())
        .bind(now)
        .execute(&self.pool)
        .await
        .map_err(LedgerError::from)?;
        Ok(Order {
            id,
            product_id: product.id.clone(),
            quantity,
            amount,
            memo,
            metadata,
            state: OrderState::Open,
            payment_id: None,
            created_at: now,
            paid_at: None,
        })
    }

    /// One order, or `None`.
    pub async fn order(&self, id: &OrderId) -> Result<Option<Order>, LedgerError> {
        let row = sqlx::query(ORDER_COLS_SELECT)
            .bind(id.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(order_from_row).transpose()
    }
}

/// Why an order could not be created.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    #[error(transparent)]
    Product(#[from] ProductError),
    #[error(transparent)]
    Ledger(#[from] LedgerError),
}
