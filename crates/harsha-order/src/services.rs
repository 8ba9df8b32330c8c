//! The other services an order needs, as the saga sees them: the
//! [`Downstream`] trait (one method per remote step), and
//! [`GrpcDownstream`], its implementation over gRPC through
//! `harsha_mesh::client::ServiceClient`s (deadline, breaker, balancing,
//! trace context, the Order service's own API key). Answers are converted
//! into domain values here, so the saga never sees a proto type.

use chrono::NaiveDate;
use harsha_mesh::client::{CallContext, ServiceClient};
use harsha_proto::{
    convert::{date_from_proto, date_to_proto, decimal_from_proto, decimal_to_proto},
    harsha::{
        customer::v1::{
            ResolveCustomerProfileRequest, customer_service_client::CustomerServiceClient,
        },
        inventory::v1::{
            AllocateStockLinesRequest, AllocateStockRequest, Allocation, AllocationStrategy,
            ConfirmAllocationRequest, DocumentReference, ReleaseAllocationRequest,
            inventory_service_client::InventoryServiceClient,
        },
        pricing::v1::{
            ApplyQuoteRequest, QuoteLineRequest, QuotePriceRequest,
            pricing_service_client::PricingServiceClient,
        },
        r#type::v1::Decimal as WireDecimal,
    },
};
use rust_decimal::Decimal;
use tonic::Status;

use crate::domain::{AppliedRule, CustomerFacts, OrderLine, Pricing, ReservedBatch};

/// A priced cart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Quoted {
    /// The quote.
    pub quote_id: String,
    /// The currency.
    pub currency: String,
    /// Sum of gross amounts.
    pub subtotal: Decimal,
    /// Sum of discounts.
    pub total_discount: Decimal,
    /// Sum of net amounts.
    pub total: Decimal,
    /// The price tier used.
    pub price_tier: Option<String>,
    /// Each line's price and unit, in the order's line order.
    pub lines: Vec<(Pricing, String)>,
}

/// What to reserve for one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reserve {
    /// The idempotent request id.
    pub request_id: String,
    /// The order.
    pub order_id: String,
    /// The item.
    pub item_code: String,
    /// How much.
    pub qty: Decimal,
    /// Only from this warehouse.
    pub warehouse: Option<String>,
    /// Batches must have at least this many days to expiry.
    pub min_shelf_life_days: i32,
    /// How long the reservation holds unless issued or released.
    pub hold_seconds: i32,
}

/// A reservation made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reservation {
    /// The allocation.
    pub allocation_id: String,
    /// The batches, earliest expiry first.
    pub batches: Vec<ReservedBatch>,
}

/// The remote steps of an order.
#[async_trait::async_trait]
pub trait Downstream: Send + Sync + 'static {
    /// The customer's facts on `on`.
    async fn customer(
        &self,
        context: &CallContext,
        customer: &str,
        on: NaiveDate,
    ) -> Result<CustomerFacts, Status>;

    /// Prices the lines.
    async fn quote(
        &self,
        context: &CallContext,
        customer: &str,
        channel: &str,
        lines: &[OrderLine],
    ) -> Result<Quoted, Status>;

    /// Reserves stock for one line (idempotent by request id).
    /// Reserves stock for every line together, all or none (idempotent
    /// by each line's request id). A failure names the line
    /// (`lines[i]…`, as the order's lines are numbered).
    async fn reserve(
        &self,
        context: &CallContext,
        lines: Vec<Reserve>,
    ) -> Result<Vec<Reservation>, Status>;

    /// Gives a reservation back (idempotent).
    async fn release(&self, context: &CallContext, allocation_id: &str) -> Result<(), Status>;

    /// Issues a reservation's stock (idempotent).
    async fn issue(&self, context: &CallContext, allocation_id: &str) -> Result<(), Status>;

    /// Applies a quote to the order (idempotent).
    async fn apply_quote(
        &self,
        context: &CallContext,
        quote_id: &str,
        order_id: &str,
    ) -> Result<(), Status>;
}

/// The services over gRPC.
#[derive(Debug, Clone)]
pub struct GrpcDownstream {
    customer: ServiceClient,
    inventory: ServiceClient,
    pricing: ServiceClient,
}

impl GrpcDownstream {
    /// Calls through these clients.
    pub fn new(customer: ServiceClient, inventory: ServiceClient, pricing: ServiceClient) -> Self {
        Self {
            customer,
            inventory,
            pricing,
        }
    }
}

fn decimal(value: Option<&WireDecimal>, what: &str) -> Result<Decimal, Status> {
    value
        .map(decimal_from_proto)
        .transpose()
        .map_err(|_| Status::internal(format!("an unreadable {what} came back")))?
        .ok_or_else(|| Status::internal(format!("no {what} came back")))
}

fn optional(value: Option<&WireDecimal>) -> Option<Decimal> {
    value.and_then(|v| decimal_from_proto(v).ok())
}

fn batches_of(allocation: Allocation) -> Result<Reservation, Status> {
    let mut batches = Vec::with_capacity(allocation.lines.len());
    for line in allocation.lines {
        let expiry_date = line
            .expiry_date
            .as_ref()
            .and_then(|d| date_from_proto(d).ok())
            .ok_or_else(|| {
                Status::internal("a reserved batch came back without its expiry date")
            })?;
        batches.push(ReservedBatch {
            qty: decimal(line.qty.as_ref(), "reserved quantity")?,
            batch_id: line.batch_id,
            batch_no: line.batch_no,
            warehouse: line.warehouse,
            expiry_date,
            quality_grade: line.quality_grade,
        });
    }
    Ok(Reservation {
        allocation_id: allocation.allocation_id,
        batches,
    })
}

#[async_trait::async_trait]
impl Downstream for GrpcDownstream {
    async fn customer(
        &self,
        context: &CallContext,
        customer: &str,
        on: NaiveDate,
    ) -> Result<CustomerFacts, Status> {
        let request = ResolveCustomerProfileRequest {
            customer: customer.to_owned(),
            at: Some(date_to_proto(on)),
        };
        let profile = self
            .customer
            .call(
                context,
                "ResolveCustomerProfile",
                request,
                |channel, request| async move {
                    CustomerServiceClient::new(channel)
                        .resolve_customer_profile(request)
                        .await
                },
            )
            .await?;
        Ok(CustomerFacts {
            primary_segment: profile
                .primary
                .and_then(|p| p.segment)
                .map(|s| s.code)
                .filter(|c| !c.is_empty()),
            territory: profile.territories.first().map(|t| t.territory.clone()),
            price_tier: Some(profile.price_tier).filter(|t| !t.is_empty()),
            disabled: profile.disabled,
        })
    }

    async fn quote(
        &self,
        context: &CallContext,
        customer: &str,
        channel: &str,
        lines: &[OrderLine],
    ) -> Result<Quoted, Status> {
        let request = QuotePriceRequest {
            customer: customer.to_owned(),
            lines: lines
                .iter()
                .map(|l| QuoteLineRequest {
                    item_code: l.item_code.clone(),
                    qty: Some(decimal_to_proto(l.qty)),
                    uom: l.uom.clone().unwrap_or_default(),
                })
                .collect(),
            price_time: None,
            channel: channel.to_owned(),
        };
        let response = self
            .pricing
            .call(
                context,
                "QuotePrice",
                request,
                |channel, request| async move {
                    PricingServiceClient::new(channel)
                        .quote_price(request)
                        .await
                },
            )
            .await?;
        let quote = response
            .quote
            .ok_or_else(|| Status::internal("the pricing service returned no quote"))?;
        let mut priced = Vec::with_capacity(quote.lines.len());
        for line in quote.lines {
            let applied_rules = line
                .applied_rules
                .into_iter()
                .map(|r| AppliedRule {
                    discount_kind: r.discount.as_ref().map_or(0, |d| d.kind),
                    discount_value: r.discount.as_ref().and_then(|d| optional(d.value.as_ref())),
                    tier_min: optional(r.tier_min.as_ref()),
                    unit_discount: optional(r.unit_discount.as_ref()),
                    line_discount: optional(r.line_discount.as_ref()),
                    unit_price_after: optional(r.unit_price_after.as_ref()),
                    rule_code: r.rule_code,
                    rule_name: r.rule_name,
                    priority: r.priority,
                    specificity: r.specificity,
                    capped: r.capped,
                })
                .collect();
            priced.push((
                Pricing {
                    price_list: line.price_list,
                    base_rate: decimal(line.base_rate.as_ref(), "base rate")?,
                    unit_price: decimal(line.unit_price.as_ref(), "unit price")?,
                    gross_amount: decimal(line.gross_amount.as_ref(), "gross amount")?,
                    net_amount: decimal(line.net_amount.as_ref(), "net amount")?,
                    discount_amount: decimal(line.discount_amount.as_ref(), "discount amount")?,
                    applied_rules,
                },
                line.uom,
            ));
        }
        if priced.len() != lines.len() {
            return Err(Status::internal(format!(
                "the pricing service priced {} lines of {}",
                priced.len(),
                lines.len()
            )));
        }
        Ok(Quoted {
            subtotal: decimal(quote.subtotal.as_ref(), "subtotal")?,
            total_discount: decimal(quote.total_discount.as_ref(), "total discount")?,
            total: decimal(quote.total.as_ref(), "total")?,
            quote_id: quote.quote_id,
            currency: quote.currency,
            price_tier: Some(quote.price_tier).filter(|t| !t.is_empty()),
            lines: priced,
        })
    }

    async fn reserve(
        &self,
        context: &CallContext,
        lines: Vec<Reserve>,
    ) -> Result<Vec<Reservation>, Status> {
        let count = lines.len();
        let request = AllocateStockLinesRequest {
            lines: lines
                .into_iter()
                .map(|reserve| AllocateStockRequest {
                    request_id: reserve.request_id,
                    item_code: reserve.item_code,
                    qty: Some(decimal_to_proto(reserve.qty)),
                    warehouse: reserve.warehouse.unwrap_or_default(),
                    strategy: AllocationStrategy::Fefo as i32,
                    min_remaining_shelf_life_days: reserve.min_shelf_life_days,
                    min_grade: 0,
                    hold_seconds: reserve.hold_seconds,
                    reference: Some(DocumentReference {
                        doctype: "HD Order".into(),
                        name: reserve.order_id,
                    }),
                })
                .collect(),
        };
        let response = self
            .inventory
            .call(
                context,
                "AllocateStockLines",
                request,
                |channel, request| async move {
                    InventoryServiceClient::new(channel)
                        .allocate_stock_lines(request)
                        .await
                },
            )
            .await?;
        if response.allocations.len() != count {
            return Err(Status::internal(format!(
                "the inventory service made {} reservations for {count} lines",
                response.allocations.len()
            )));
        }
        response.allocations.into_iter().map(batches_of).collect()
    }

    async fn release(&self, context: &CallContext, allocation_id: &str) -> Result<(), Status> {
        let request = ReleaseAllocationRequest {
            allocation_id: allocation_id.to_owned(),
        };
        self.inventory
            .call(
                context,
                "ReleaseAllocation",
                request,
                |channel, request| async move {
                    InventoryServiceClient::new(channel)
                        .release_allocation(request)
                        .await
                },
            )
            .await
            .map(|_| ())
    }

    async fn issue(&self, context: &CallContext, allocation_id: &str) -> Result<(), Status> {
        let request = ConfirmAllocationRequest {
            allocation_id: allocation_id.to_owned(),
        };
        self.inventory
            .call(
                context,
                "ConfirmAllocation",
                request,
                |channel, request| async move {
                    InventoryServiceClient::new(channel)
                        .confirm_allocation(request)
                        .await
                },
            )
            .await
            .map(|_| ())
    }

    async fn apply_quote(
        &self,
        context: &CallContext,
        quote_id: &str,
        order_id: &str,
    ) -> Result<(), Status> {
        let request = ApplyQuoteRequest {
            quote_id: quote_id.to_owned(),
            order_reference: order_id.to_owned(),
        };
        self.pricing
            .call(
                context,
                "ApplyQuote",
                request,
                |channel, request| async move {
                    PricingServiceClient::new(channel)
                        .apply_quote(request)
                        .await
                },
            )
            .await
            .map(|_| ())
    }
}
