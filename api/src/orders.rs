//! Orders: the server decides the price. `POST /orders {product_id, quantity?}` (`productId`
//! is accepted too) prices the
//! order from the catalogue and answers what the frontend passes to `Pi.createPayment`;
//! the approve job later checks Pi's payment against it.

use crate::error::{ApiError, ErrorBody};
use crate::extract::{JsonBody, PathId};
use crate::read_access;
use crate::state::ApiState;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use pi_payments_core::OrderId;
use pi_payments_core::ledger::Order;
use pi_payments_core::ledger::orders::OrderError;
use pi_payments_core::products::MAX_QUANTITY;
use serde_json::Value;

/// `POST /orders`, `GET /orders/{id}`.
pub fn routes() -> Router<ApiState> {
    Router::new()
        .route("/orders", post(create))
        .route("/orders/{id}", get(show))
}

const EXAMPLE: &str = r#"{"product_id": "coffee", "quantity": 1}"#;

/// The answer for an order: what to pass to `Pi.createPayment` (`amount`, `memo`, `metadata`),
/// plus its state. The ledger row as is: snake_case keys, the amount as a decimal string,
/// times in RFC 3339 (one shape with the order inside webhook events).
fn order_json(order: &Order) -> Value {
    serde_json::to_value(order).unwrap_or(Value::Null)
}

/// `POST /orders`'s body (`productId` is accepted for `product_id`).
#[derive(serde::Deserialize, utoipa::ToSchema)]
#[allow(dead_code)] // Describes the body for the OpenAPI document; `create` reads it field by field.
pub struct OrderRequest {
    /// A product of the catalogue (PRODUCTS_FILE, or the demo catalogue).
    product_id: String,
    /// How many, 1 to 1000 (default 1).
    #[schema(minimum = 1, maximum = 1000)]
    quantity: Option<u32>,
}

/// Create an order: the server prices it from the catalogue.
///
/// The answer holds what the frontend passes to `Pi.createPayment` (`amount`, `memo`,
/// `metadata`); the approve job later checks Pi's payment against the order.
#[utoipa::path(
    post,
    path = "/orders",
    tag = "orders",
    operation_id = "create_order",
    request_body = OrderRequest,
    responses(
        (status = 201, description = "The order, priced", body = Order),
        (status = 400, description = "Bad body, product id or quantity", body = ErrorBody),
        (status = 404, description = "No such product", body = ErrorBody),
        (status = 422, description = "The order cannot be priced (amount overflow)", body = ErrorBody),
        (status = 429, description = "Over CLIENT_RATE_LIMIT", body = ErrorBody),
        (status = 503, description = "Ledger unreachable; retry", body = ErrorBody),
    )
)]
pub(crate) async fn create(
    State(state): State<ApiState>,
    JsonBody(body): JsonBody,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let Some(obj) = body.as_object() else {
        return Err(ApiError::bad_request(
            "invalid_body",
            format!("send a JSON object like {EXAMPLE}"),
        ));
    };
    let product_id = match obj.get("product_id").or_else(|| obj.get("productId")) {
        Some(Value::String(s)) if !s.is_empty() => s.as_str(),
        None | Some(Value::Null) => {
            return Err(ApiError::bad_request(
                "missing_product_id",
                format!("product_id is missing; send {EXAMPLE}"),
            ));
        }
        Some(_) => {
            return Err(ApiError::bad_request(
                "invalid_body",
                format!("product_id must be a non-empty string; send {EXAMPLE}"),
            ));
        }
    };
    let quantity = match obj.get("quantity") {
        None | Some(Value::Null) => 1,
        Some(v) => v
            .as_u64()
            .and_then(|q| u32::try_from(q).ok())
            .filter(|q| (1..=MAX_QUANTITY).contains(q))
            .ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_quantity",
                    format!(
                        "quantity must be a whole number from 1 to {MAX_QUANTITY}; send {EXAMPLE}"
                    ),
                )
            })?,
    };
    let Some(product) = state.products.get(product_id) else {
        let known: Vec<&str> = state
            .products
            .products()
            .iter()
            .map(|p| p.id.as_str())
            .collect();
        return Err(ApiError::not_found(
            "unknown_product",
            format!(
                "there is no product {:?}; known products: {}",
                product_id.chars().take(80).collect::<String>(),
                known.join(", ")
            ),
        ));
    };
    let order = state
        .ledger
        .create_order(product, quantity)
        .await
        .map_err(|err| match err {
            OrderError::Product(e) => ApiError::Unprocessable {
                code: "invalid_order",
                message: e.to_string(),
            },
            OrderError::Ledger(e) => ApiError::from(e),
        })?;
    tracing::info!(order_id = %order.id, product = %order.product_id, amount = %order.amount, "order created");
    Ok((StatusCode::CREATED, Json(order_json(&order))))
}

/// The one answer for "not there" and "not yours", so that neither can be told apart.
fn not_found(id: &OrderId) -> ApiError {
    ApiError::not_found(
        "order_not_found",
        format!(
            "order {id} does not exist or is not yours: send the paying Pioneer's `Authorization: Bearer <Pi access token>` (or session cookie), or the backend's APP_API_TOKEN; create orders with POST /orders"
        ),
    )
}

/// Show an order.
///
/// For the Pioneer of the payment bound to it, the app's backend and the operator; 404 to anyone else (an order without a payment has no Pioneer yet: the frontend
/// has the `POST /orders` answer).
#[utoipa::path(
    get,
    path = "/orders/{id}",
    tag = "orders",
    operation_id = "show_order",
    params(("id" = String, Path, description = "The order id from POST /orders")),
    security(("pioneer_token" = []), ("session_cookie" = []), ("app_api_token" = []), ("admin_token" = [])),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "Not an order id", body = ErrorBody),
        (status = 404, description = "Unknown, or not yours", body = ErrorBody),
        (status = 503, description = "Ledger or Pi unreachable; retry", body = ErrorBody),
    )
)]
pub(crate) async fn show(
    State(state): State<ApiState>,
    headers: HeaderMap,
    PathId(id): PathId,
) -> Result<Json<Value>, ApiError> {
    let id = OrderId::parse(&id)
        .map_err(|e| ApiError::bad_request("invalid_order_id", e.to_string()))?;
    let reader = read_access::reader(&state, &headers).await?;
    if reader == read_access::Reader::Nobody {
        return Err(not_found(&id));
    }
    let Some(order) = state.ledger.order(&id).await? else {
        return Err(not_found(&id));
    };
    if reader != read_access::Reader::Backend {
        let owner = match &order.payment_id {
            Some(payment) => state.ledger.payment(payment).await?.and_then(|p| p.uid),
            None => None,
        };
        if !reader.may_read(owner.as_ref()) {
            return Err(not_found(&id));
        }
    }
    Ok(Json(order_json(&order)))
}
