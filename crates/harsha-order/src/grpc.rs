//! The `harsha.order.v1.OrderService` server: converts requests into
//! validated domain values (naming the field that is wrong), runs them
//! through the [`Saga`], converts orders back, and maps [`OrderError`] to a
//! gRPC status in one place.

use std::sync::{Arc, OnceLock};

use harsha_mesh::client::CallContext;
use harsha_proto::{
    convert::{date_to_proto, decimal_to_proto, naive_utc_to_proto, timestamp_from_proto},
    harsha::{
        inventory::v1::AllocationLine,
        order::v1::{self as pb, order_service_server::OrderService},
        pricing::v1::{AppliedRule as WireRule, Discount},
    },
    metadata::actor_name,
};
use harsha_store::{page::page_size, status::store_status};
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    OrderError,
    domain::{Actor, Order, OrderLine, OrderRequest, OrderStatus, RawLine},
    saga::{Saga, detached},
    store::OrderFilter,
};

pub use harsha_proto::harsha::order::v1::order_service_server::OrderServiceServer;

/// Where the saga appears once the database is ready; until then every
/// call answers `UNAVAILABLE`.
pub type SagaSlot = Arc<OnceLock<Arc<Saga>>>;

/// The Order gRPC service.
#[derive(Clone)]
pub struct OrderGrpc {
    saga: SagaSlot,
}

impl OrderGrpc {
    /// A service running orders through the saga in `saga`.
    pub fn new(saga: SagaSlot) -> Self {
        Self { saga }
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> OrderServiceServer<Self> {
        OrderServiceServer::new(self)
    }

    fn saga(&self) -> Result<&Arc<Saga>, OrderError> {
        self.saga.get().ok_or(OrderError::NotReady)
    }
}

fn actor<T>(request: &Request<T>) -> String {
    actor_name(request)
        .map_or_else(Actor::system, Actor::named)
        .as_str()
        .to_owned()
}

/// The field an INVALID_ARGUMENT message names (`field: reason`).
fn field_of(message: &str) -> Option<(&str, &str)> {
    let (field, reason) = message.split_once(": ")?;
    let plausible = !field.is_empty()
        && field
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '[' | ']'));
    plausible.then_some((field, reason))
}

impl From<OrderError> for Status {
    fn from(error: OrderError) -> Self {
        let message = error.to_string();
        match error {
            OrderError::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            OrderError::NotFound(_) => Status::not_found(message),
            OrderError::FailedPrecondition(_) => Status::failed_precondition(message),
            OrderError::Aborted(_) => Status::aborted(message),
            OrderError::Placement(failure) => {
                let code = Code::from_i32(failure.code);
                match (code, field_of(&failure.message)) {
                    (Code::InvalidArgument, Some((field, reason))) => Status::with_error_details(
                        code,
                        failure.message.clone(),
                        ErrorDetails::with_bad_request_violation(field, reason),
                    ),
                    _ => Status::new(code, failure.message),
                }
            }
            OrderError::Unavailable(_) | OrderError::NotReady => Status::unavailable(message),
            OrderError::Store(store) => store_status("order", &store),
        }
    }
}

fn status_to_proto(status: OrderStatus) -> pb::OrderStatus {
    match status {
        OrderStatus::Pending => pb::OrderStatus::Pending,
        OrderStatus::Placed => pb::OrderStatus::Placed,
        OrderStatus::Failed => pb::OrderStatus::Failed,
        OrderStatus::Cancelling => pb::OrderStatus::Cancelling,
        OrderStatus::Cancelled => pb::OrderStatus::Cancelled,
        OrderStatus::Fulfilling => pb::OrderStatus::Fulfilling,
        OrderStatus::Fulfilled => pb::OrderStatus::Fulfilled,
    }
}

fn status_from_proto(value: i32) -> Result<Option<OrderStatus>, OrderError> {
    let status = pb::OrderStatus::try_from(value)
        .map_err(|_| OrderError::invalid("status", format!("{value} is not an order status")))?;
    Ok(match status {
        pb::OrderStatus::Unspecified => None,
        pb::OrderStatus::Pending => Some(OrderStatus::Pending),
        pb::OrderStatus::Placed => Some(OrderStatus::Placed),
        pb::OrderStatus::Failed => Some(OrderStatus::Failed),
        pb::OrderStatus::Cancelling => Some(OrderStatus::Cancelling),
        pb::OrderStatus::Cancelled => Some(OrderStatus::Cancelled),
        pb::OrderStatus::Fulfilling => Some(OrderStatus::Fulfilling),
        pb::OrderStatus::Fulfilled => Some(OrderStatus::Fulfilled),
    })
}

fn line_to_proto(line: OrderLine) -> pb::OrderLine {
    let pricing = line.pricing;
    let amount = |f: fn(&crate::domain::Pricing) -> rust_decimal::Decimal| {
        pricing.as_ref().map(|p| decimal_to_proto(f(p)))
    };
    pb::OrderLine {
        line_index: i32::try_from(line.index).unwrap_or(i32::MAX),
        item_code: line.item_code,
        qty: Some(decimal_to_proto(line.qty)),
        uom: line.uom.unwrap_or_default(),
        price_list: pricing
            .as_ref()
            .map(|p| p.price_list.clone())
            .unwrap_or_default(),
        base_rate: amount(|p| p.base_rate),
        unit_price: amount(|p| p.unit_price),
        gross_amount: amount(|p| p.gross_amount),
        net_amount: amount(|p| p.net_amount),
        discount_amount: amount(|p| p.discount_amount),
        applied_rules: pricing
            .map(|p| {
                p.applied_rules
                    .into_iter()
                    .map(|r| WireRule {
                        rule_code: r.rule_code,
                        rule_name: r.rule_name,
                        priority: r.priority,
                        specificity: r.specificity,
                        discount: Some(Discount {
                            kind: r.discount_kind,
                            value: r.discount_value.map(decimal_to_proto),
                        }),
                        tier_min: r.tier_min.map(decimal_to_proto),
                        unit_discount: r.unit_discount.map(decimal_to_proto),
                        line_discount: r.line_discount.map(decimal_to_proto),
                        unit_price_after: r.unit_price_after.map(decimal_to_proto),
                        capped: r.capped,
                    })
                    .collect()
            })
            .unwrap_or_default(),
        allocation_id: line.allocation_id.unwrap_or_default(),
        batches: line
            .batches
            .into_iter()
            .map(|b| AllocationLine {
                batch_id: b.batch_id,
                batch_no: b.batch_no,
                warehouse: b.warehouse,
                expiry_date: Some(date_to_proto(b.expiry_date)),
                quality_grade: b.quality_grade,
                qty: Some(decimal_to_proto(b.qty)),
            })
            .collect(),
    }
}

/// An order as the contract shows it.
pub fn order_to_proto(order: Order) -> pb::Order {
    pb::Order {
        order_id: order.id,
        customer: order.customer,
        channel: order.channel,
        warehouse: order.warehouse.unwrap_or_default(),
        status: status_to_proto(order.status) as i32,
        idempotency_key: order.idempotency_key,
        currency: order.currency.unwrap_or_default(),
        subtotal: order.subtotal.map(decimal_to_proto),
        total_discount: order.total_discount.map(decimal_to_proto),
        total: order.total.map(decimal_to_proto),
        quote_id: order.quote_id.unwrap_or_default(),
        price_tier: order.price_tier.unwrap_or_default(),
        primary_segment: order.primary_segment.unwrap_or_default(),
        territory: order.territory.unwrap_or_default(),
        lines: order.lines.into_iter().map(line_to_proto).collect(),
        failure: order.failure.map(|f| pb::OrderFailure {
            code: f.code,
            message: f.message,
            step: f.step.as_str().to_owned(),
        }),
        placed_by: order.owner,
        create_time: Some(naive_utc_to_proto(order.created)),
        update_time: Some(naive_utc_to_proto(order.modified)),
        place_time: order.placed_at.map(naive_utc_to_proto),
        cancel_time: order.cancelled_at.map(naive_utc_to_proto),
        fulfil_time: order.fulfilled_at.map(naive_utc_to_proto),
        cancel_reason: order.cancel_reason.unwrap_or_default(),
    }
}

fn order_id(value: &str) -> Result<&str, OrderError> {
    if value.is_empty() {
        return Err(OrderError::invalid("order_id", "an order id is required"));
    }
    if value.chars().count() > 140 || value.chars().any(char::is_control) {
        return Err(OrderError::invalid("order_id", "not an order id"));
    }
    Ok(value)
}

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl OrderService for OrderGrpc {
    #[tracing::instrument(name = "OrderService.PlaceOrder", skip_all)]
    async fn place_order(
        &self,
        request: Request<pb::PlaceOrderRequest>,
    ) -> RpcResult<pb::PlaceOrderResponse> {
        let owner = actor(&request);
        let context = CallContext::of_request(&request);
        let body = request.into_inner();
        let quantities: Vec<String> = body
            .lines
            .iter()
            .map(|l| l.qty.as_ref().map(|q| q.value.clone()).unwrap_or_default())
            .collect();
        let raw: Vec<RawLine<'_>> = body
            .lines
            .iter()
            .zip(&quantities)
            .map(|(l, qty)| RawLine {
                item_code: &l.item_code,
                qty,
                uom: &l.uom,
            })
            .collect();
        let parsed = OrderRequest::parse(
            &body.customer,
            &body.channel,
            &body.warehouse,
            &body.idempotency_key,
            &raw,
        )
        .map_err(|(field, error)| OrderError::invalid(field, error))?;
        let placement = self.saga()?.place(parsed, &owner, context).await?;
        Ok(Response::new(pb::PlaceOrderResponse {
            order: Some(order_to_proto(placement.order)),
            replayed: placement.replayed,
        }))
    }

    #[tracing::instrument(name = "OrderService.GetOrder", skip_all)]
    async fn get_order(
        &self,
        request: Request<pb::GetOrderRequest>,
    ) -> RpcResult<pb::GetOrderResponse> {
        let id = order_id(&request.get_ref().order_id)?;
        let order = self.saga()?.store().order(id).await?;
        Ok(Response::new(pb::GetOrderResponse {
            order: Some(order_to_proto(order)),
        }))
    }

    #[tracing::instrument(name = "OrderService.ListOrders", skip_all)]
    async fn list_orders(
        &self,
        request: Request<pb::ListOrdersRequest>,
    ) -> RpcResult<pb::ListOrdersResponse> {
        let body = request.into_inner();
        let time = |at: Option<prost_types::Timestamp>, field: &str| {
            at.map(|t| {
                timestamp_from_proto(&t)
                    .ok_or_else(|| OrderError::invalid(field, "not a valid timestamp"))
            })
            .transpose()
        };
        let filter = OrderFilter {
            customer: (!body.customer.is_empty()).then_some(body.customer),
            status: status_from_proto(body.status)?,
            created_after: time(body.created_after, "created_after")?,
            created_before: time(body.created_before, "created_before")?,
        };
        if let (Some(after), Some(before)) = (filter.created_after, filter.created_before)
            && after >= before
        {
            return Err(
                OrderError::invalid("created_before", "must be later than created_after").into(),
            );
        }
        let size = page_size(body.page_size).map_err(OrderError::from)?;
        let page = self
            .saga()?
            .store()
            .list(&filter, size, &body.page_token)
            .await?;
        Ok(Response::new(pb::ListOrdersResponse {
            orders: page.items.into_iter().map(order_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "OrderService.CancelOrder", skip_all)]
    async fn cancel_order(
        &self,
        request: Request<pb::CancelOrderRequest>,
    ) -> RpcResult<pb::CancelOrderResponse> {
        let who = actor(&request);
        let context = CallContext::of_request(&request);
        let body = request.into_inner();
        let id = order_id(&body.order_id)?;
        if body.reason.chars().count() > 500
            || body.reason.chars().any(|c| c.is_control() && c != '\n')
        {
            return Err(OrderError::invalid(
                "reason",
                "at most 500 characters, no control characters",
            )
            .into());
        }
        let reason = (!body.reason.is_empty()).then(|| body.reason.clone());
        let (saga, id) = (Arc::clone(self.saga()?), id.to_owned());
        // In its own task, like a placement: a caller hanging up does not
        // stop it between two releases.
        let order = detached("the cancellation", async move {
            saga.cancel(&id, reason, &who, &context).await
        })
        .await?;
        Ok(Response::new(pb::CancelOrderResponse {
            order: Some(order_to_proto(order)),
        }))
    }

    #[tracing::instrument(name = "OrderService.FulfilOrder", skip_all)]
    async fn fulfil_order(
        &self,
        request: Request<pb::FulfilOrderRequest>,
    ) -> RpcResult<pb::FulfilOrderResponse> {
        let who = actor(&request);
        let context = CallContext::of_request(&request);
        let id = order_id(&request.get_ref().order_id)?.to_owned();
        let saga = Arc::clone(self.saga()?);
        let order = detached("the fulfilment", async move {
            saga.fulfil(&id, &who, &context).await
        })
        .await?;
        Ok(Response::new(pb::FulfilOrderResponse {
            order: Some(order_to_proto(order)),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_placement_failure_keeps_its_code_and_names_its_field() {
        let status = Status::from(OrderError::Placement(crate::domain::Failure {
            code: Code::InvalidArgument as i32,
            message: "lines[1].item_code: NO-SUCH-ITEM is not an item".into(),
            step: crate::domain::Step::Pricing,
        }));
        assert_eq!(status.code(), Code::InvalidArgument);
        let details = status.get_error_details();
        let violation = &details.bad_request().expect("bad request").field_violations[0];
        assert_eq!(violation.field, "lines[1].item_code");

        let stock = Status::from(OrderError::Placement(crate::domain::Failure {
            code: Code::FailedPrecondition as i32,
            message: "lines[0] (KAJU): not enough stock".into(),
            step: crate::domain::Step::Inventory,
        }));
        assert_eq!(stock.code(), Code::FailedPrecondition);
        assert_eq!(stock.message(), "lines[0] (KAJU): not enough stock");
    }
}
