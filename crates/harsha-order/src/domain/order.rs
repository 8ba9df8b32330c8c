//! An order as the service keeps it: the request's lines, then what each
//! step of the placement saga learnt (the customer's facts, the priced
//! lines, the reservations), its status and saga position, and why it
//! failed. The lifecycle moves an order allows are methods here, so the
//! saga and the store cannot put an order in a state it may not reach.

use chrono::{NaiveDate, NaiveDateTime};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{DocName, OrderRequest};

/// Where an order is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum OrderStatus {
    /// The placement saga is running.
    Pending,
    /// Placed.
    Placed,
    /// Placement failed and was rolled back.
    Failed,
    /// Being cancelled.
    Cancelling,
    /// Cancelled.
    Cancelled,
    /// Being fulfilled.
    Fulfilling,
    /// Fulfilled.
    Fulfilled,
}

impl OrderStatus {
    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "Pending",
            Self::Placed => "Placed",
            Self::Failed => "Failed",
            Self::Cancelling => "Cancelling",
            Self::Cancelled => "Cancelled",
            Self::Fulfilling => "Fulfilling",
            Self::Fulfilled => "Fulfilled",
        }
    }

    /// Reads a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Pending,
            Self::Placed,
            Self::Failed,
            Self::Cancelling,
            Self::Cancelled,
            Self::Fulfilling,
            Self::Fulfilled,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }

    /// Whether the saga still has work to do on an order in this status.
    pub fn in_flight(self) -> bool {
        matches!(self, Self::Pending | Self::Cancelling | Self::Fulfilling)
    }
}

/// How far a placement got; written before each remote step, so a
/// placement cut short knows what to undo or finish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum SagaStep {
    /// The order is recorded; nothing was asked of another service.
    Started,
    /// Stock is being reserved (reservation ids derive from the order).
    Reserving,
    /// The quote is being applied; from here the order goes forward.
    Applying,
    /// Placement failed; reservations are being released.
    Compensating,
    /// Nothing left to do.
    Done,
}

impl SagaStep {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Started => "started",
            Self::Reserving => "reserving",
            Self::Applying => "applying",
            Self::Compensating => "compensating",
            Self::Done => "done",
        }
    }

    /// Reads a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Started,
            Self::Reserving,
            Self::Applying,
            Self::Compensating,
            Self::Done,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// The step of a placement that failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Step {
    /// The request itself.
    Request,
    /// Validating the customer.
    Customer,
    /// Pricing the lines.
    Pricing,
    /// Reserving stock.
    Inventory,
    /// Applying the quote.
    Apply,
    /// Recovery after the placing process stopped.
    Recovery,
}

impl Step {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Request => "request",
            Self::Customer => "customer",
            Self::Pricing => "pricing",
            Self::Inventory => "inventory",
            Self::Apply => "apply",
            Self::Recovery => "recovery",
        }
    }

    /// Reads a stored name.
    pub fn parse(value: &str) -> Option<Self> {
        [
            Self::Request,
            Self::Customer,
            Self::Pricing,
            Self::Inventory,
            Self::Apply,
            Self::Recovery,
        ]
        .into_iter()
        .find(|s| s.as_str() == value)
    }
}

/// Why a placement failed: the status code it ended with (gRPC's
/// numbering) and a message naming the cause.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failure {
    /// The status code (e.g. 9, FAILED_PRECONDITION).
    pub code: i32,
    /// What went wrong.
    pub message: String,
    /// Where.
    pub step: Step,
}

/// What the Customer service says about the customer on the order's day.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CustomerFacts {
    /// The primary segment's code, if one is in force.
    pub primary_segment: Option<String>,
    /// The primary territory, if any.
    pub territory: Option<String>,
    /// The price tier, if any.
    pub price_tier: Option<String>,
    /// Whether the customer is disabled.
    pub disabled: bool,
}

/// A rule's effect on a line, as the Pricing service explained it (enum
/// fields keep the contract's numbers).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    /// The rule.
    pub rule_code: String,
    /// Its name.
    pub rule_name: String,
    /// Its priority.
    pub priority: i32,
    /// How specific it was (`harsha.pricing.v1.Specificity`).
    pub specificity: i32,
    /// The discount kind (`harsha.pricing.v1.DiscountKind`).
    pub discount_kind: i32,
    /// The discount's percentage or amount.
    pub discount_value: Option<Decimal>,
    /// The tier's lower bound, for a tiered rule.
    pub tier_min: Option<Decimal>,
    /// What it took off each unit.
    pub unit_discount: Option<Decimal>,
    /// What it took off the line.
    pub line_discount: Option<Decimal>,
    /// The unit price after it.
    pub unit_price_after: Option<Decimal>,
    /// Whether its cap limited it.
    pub capped: bool,
}

/// A line's price.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pricing {
    /// The price list of the base price.
    pub price_list: String,
    /// The base price per unit.
    pub base_rate: Decimal,
    /// The final unit price.
    pub unit_price: Decimal,
    /// Base × quantity.
    pub gross_amount: Decimal,
    /// Final × quantity.
    pub net_amount: Decimal,
    /// Gross − net.
    pub discount_amount: Decimal,
    /// The rules that applied, in order.
    pub applied_rules: Vec<AppliedRule>,
}

/// A batch reserved for a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReservedBatch {
    /// The batch record.
    pub batch_id: String,
    /// Its batch number.
    pub batch_no: String,
    /// Its warehouse.
    pub warehouse: String,
    /// Its expiry date.
    pub expiry_date: NaiveDate,
    /// Its grade (`harsha.inventory.v1.QualityGrade`).
    pub quality_grade: i32,
    /// The quantity reserved from it.
    pub qty: Decimal,
}

/// One line of an order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrderLine {
    /// Its position.
    pub index: u32,
    /// The item.
    pub item_code: String,
    /// How much.
    pub qty: Decimal,
    /// The unit (the price's when none was asked for).
    pub uom: Option<String>,
    /// Its price, once quoted.
    pub pricing: Option<Pricing>,
    /// Its reservation, once made.
    pub allocation_id: Option<String>,
    /// The batches reserved.
    pub batches: Vec<ReservedBatch>,
}

/// An order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Order {
    /// Its id (document name).
    pub id: String,
    /// Who placed it.
    pub owner: String,
    /// The customer.
    pub customer: String,
    /// The channel.
    pub channel: String,
    /// The warehouse stock was limited to.
    pub warehouse: Option<String>,
    /// Its status.
    pub status: OrderStatus,
    /// How far its saga got.
    pub saga_step: SagaStep,
    /// The caller's idempotency key.
    pub idempotency_key: String,
    /// The request's fingerprint.
    pub request_hash: String,
    /// Which attempt at placing it this is (a retry with the same key
    /// after a failure that may pass makes another).
    pub attempt: u32,
    /// The days to expiry its stock must have at least (fixed when it is
    /// made, so a repeated reservation asks for exactly the same).
    pub min_shelf_life_days: i32,
    /// The currency, once priced.
    pub currency: Option<String>,
    /// Sum of gross amounts.
    pub subtotal: Option<Decimal>,
    /// Sum of discounts.
    pub total_discount: Option<Decimal>,
    /// Sum of net amounts.
    pub total: Option<Decimal>,
    /// The quote.
    pub quote_id: Option<String>,
    /// The customer's facts when placed.
    pub price_tier: Option<String>,
    /// The primary segment when placed.
    pub primary_segment: Option<String>,
    /// The primary territory when placed.
    pub territory: Option<String>,
    /// The lines.
    pub lines: Vec<OrderLine>,
    /// Why placement failed.
    pub failure: Option<Failure>,
    /// Created (UTC).
    pub created: NaiveDateTime,
    /// Last changed (UTC).
    pub modified: NaiveDateTime,
    /// Placed.
    pub placed_at: Option<NaiveDateTime>,
    /// Cancelled.
    pub cancelled_at: Option<NaiveDateTime>,
    /// Fulfilled.
    pub fulfilled_at: Option<NaiveDateTime>,
    /// Why it was cancelled.
    pub cancel_reason: Option<String>,
    /// The row's version, for compare-and-set saves.
    pub version: i64,
}

impl Order {
    /// A new pending order for `request`, by `owner`, at `at`.
    pub fn new(id: String, request: &OrderRequest, owner: &str, at: NaiveDateTime) -> Self {
        Self {
            id,
            owner: owner.to_owned(),
            customer: request.customer.to_string(),
            channel: request.channel.clone(),
            warehouse: request.warehouse.as_ref().map(DocName::to_string),
            status: OrderStatus::Pending,
            saga_step: SagaStep::Started,
            idempotency_key: request.idempotency_key.clone(),
            request_hash: request.fingerprint(),
            attempt: 1,
            min_shelf_life_days: 1,
            currency: None,
            subtotal: None,
            total_discount: None,
            total: None,
            quote_id: None,
            price_tier: None,
            primary_segment: None,
            territory: None,
            lines: request
                .lines
                .iter()
                .enumerate()
                .map(|(i, l)| OrderLine {
                    index: u32::try_from(i).unwrap_or(u32::MAX),
                    item_code: l.item_code.to_string(),
                    qty: l.qty.get(),
                    uom: l.uom.as_ref().map(DocName::to_string),
                    pricing: None,
                    allocation_id: None,
                    batches: Vec::new(),
                })
                .collect(),
            failure: None,
            created: at,
            modified: at,
            placed_at: None,
            cancelled_at: None,
            fulfilled_at: None,
            cancel_reason: None,
            version: 0,
        }
    }

    /// The id each line's stock reservation is requested under: the same
    /// on every try of an attempt, so a repeated request returns the first
    /// reservation.
    pub fn reservation_request_id(&self, line: &OrderLine) -> String {
        format!("{}/{}/{}", self.id, self.attempt, line.index)
    }

    /// Whether a retry with the same key may make another attempt: the
    /// last one failed for a reason that may pass (a service unavailable
    /// or too slow, an interruption) and is wholly rolled back.
    pub fn may_try_again(&self) -> bool {
        const UNAVAILABLE: i32 = 14;
        const DEADLINE_EXCEEDED: i32 = 4;
        const ABORTED: i32 = 10;
        self.status == OrderStatus::Failed
            && self.saga_step == SagaStep::Done
            && self
                .failure
                .as_ref()
                .is_some_and(|f| matches!(f.code, UNAVAILABLE | DEADLINE_EXCEEDED | ABORTED))
    }

    /// Starts another attempt at `at`: pending again, with nothing priced
    /// or reserved.
    pub fn try_again(&mut self) {
        self.attempt += 1;
        self.status = OrderStatus::Pending;
        self.saga_step = SagaStep::Started;
        self.failure = None;
        self.currency = None;
        self.subtotal = None;
        self.total_discount = None;
        self.total = None;
        self.quote_id = None;
        for line in &mut self.lines {
            line.pricing = None;
            line.allocation_id = None;
            line.batches.clear();
        }
    }

    /// The reservations made so far.
    pub fn allocation_ids(&self) -> Vec<String> {
        self.lines
            .iter()
            .filter_map(|l| l.allocation_id.clone())
            .collect()
    }

    /// Records the customer's facts.
    pub fn learn_customer(&mut self, facts: &CustomerFacts) {
        self.primary_segment.clone_from(&facts.primary_segment);
        self.territory.clone_from(&facts.territory);
        self.price_tier.clone_from(&facts.price_tier);
    }

    /// Marks the order placed at `at`.
    pub fn place(&mut self, at: NaiveDateTime) {
        self.status = OrderStatus::Placed;
        self.saga_step = SagaStep::Done;
        self.placed_at = Some(at);
        self.failure = None;
    }

    /// Marks placement failed; reservations (if any) are still to be
    /// released when `compensate` is set.
    pub fn fail(&mut self, failure: Failure, compensate: bool) {
        self.failure = Some(failure);
        if compensate && !self.allocation_ids().is_empty() {
            self.saga_step = SagaStep::Compensating;
        } else {
            self.status = OrderStatus::Failed;
            self.saga_step = SagaStep::Done;
        }
    }

    /// Marks the rollback finished.
    pub fn rolled_back(&mut self) {
        self.status = OrderStatus::Failed;
        self.saga_step = SagaStep::Done;
    }

    /// Starts cancelling; `Ok(false)` when it is already cancelled.
    pub fn start_cancel(&mut self, reason: Option<String>) -> Result<bool, String> {
        match self.status {
            OrderStatus::Cancelled => Ok(false),
            OrderStatus::Placed | OrderStatus::Cancelling => {
                self.status = OrderStatus::Cancelling;
                if reason.is_some() {
                    self.cancel_reason = reason;
                }
                Ok(true)
            }
            other => Err(format!(
                "order {} is {}; only a placed order can be cancelled",
                self.id,
                other.as_str()
            )),
        }
    }

    /// Starts fulfilling; `Ok(false)` when it is already fulfilled.
    pub fn start_fulfil(&mut self) -> Result<bool, String> {
        match self.status {
            OrderStatus::Fulfilled => Ok(false),
            OrderStatus::Placed | OrderStatus::Fulfilling => {
                self.status = OrderStatus::Fulfilling;
                Ok(true)
            }
            other => Err(format!(
                "order {} is {}; only a placed order can be fulfilled",
                self.id,
                other.as_str()
            )),
        }
    }

    /// Finishes a cancellation or fulfilment at `at`.
    pub fn finish(&mut self, at: NaiveDateTime) {
        match self.status {
            OrderStatus::Cancelling => {
                self.status = OrderStatus::Cancelled;
                self.cancelled_at = Some(at);
            }
            OrderStatus::Fulfilling => {
                self.status = OrderStatus::Fulfilled;
                self.fulfilled_at = Some(at);
            }
            _ => {}
        }
    }

    /// Undoes a fulfilment or cancellation that could not be made.
    pub fn back_to_placed(&mut self) {
        if matches!(
            self.status,
            OrderStatus::Fulfilling | OrderStatus::Cancelling
        ) {
            self.status = OrderStatus::Placed;
        }
    }

    /// The order's event payload for `event`: the order itself, with the
    /// amounts negated for a reversal (`order.cancelled`).
    pub fn event_payload(&self, reversal: bool) -> serde_json::Value {
        let mut payload = serde_json::to_value(self).unwrap_or(serde_json::Value::Null);
        if let serde_json::Value::Object(map) = &mut payload {
            map.remove("version");
            map.remove("request_hash");
            map.remove("min_shelf_life_days");
            map.remove("saga_step");
            if reversal {
                for key in ["subtotal", "total_discount", "total"] {
                    if let Some(value) = self.amount(key) {
                        map.insert(key.into(), serde_json::Value::String((-value).to_string()));
                    }
                }
                map.insert(
                    "reversal_of".into(),
                    serde_json::Value::String(self.id.clone()),
                );
            }
        }
        payload
    }

    fn amount(&self, key: &str) -> Option<Decimal> {
        match key {
            "subtotal" => self.subtotal,
            "total_discount" => self.total_discount,
            "total" => self.total,
            _ => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::{OrderRequest, request::RawLine};

    fn order() -> Order {
        let request = OrderRequest::parse(
            "CUST-1",
            "WEB",
            "",
            "k",
            &[RawLine {
                item_code: "A",
                qty: "2",
                uom: "",
            }],
        )
        .expect("valid");
        Order::new(
            "HD-ORD-1".into(),
            &request,
            "sales1",
            NaiveDateTime::default(),
        )
    }

    #[test]
    fn a_failure_without_reservations_ends_at_once_and_with_them_compensates_first() {
        let failure = Failure {
            code: 9,
            message: "no stock".into(),
            step: Step::Inventory,
        };
        let mut bare = order();
        bare.fail(failure.clone(), true);
        assert_eq!(
            (bare.status, bare.saga_step),
            (OrderStatus::Failed, SagaStep::Done)
        );

        let mut reserved = order();
        reserved.lines[0].allocation_id = Some("a1".into());
        reserved.fail(failure, true);
        assert_eq!(
            (reserved.status, reserved.saga_step),
            (OrderStatus::Pending, SagaStep::Compensating)
        );
        reserved.rolled_back();
        assert_eq!(reserved.status, OrderStatus::Failed);
    }

    #[test]
    fn only_placed_orders_are_cancelled_or_fulfilled_and_repeats_change_nothing() {
        let mut o = order();
        assert!(
            o.start_cancel(None).is_err(),
            "a pending order is not cancellable"
        );
        o.place(NaiveDateTime::default());
        assert_eq!(o.start_fulfil(), Ok(true));
        o.finish(NaiveDateTime::default());
        assert_eq!(o.status, OrderStatus::Fulfilled);
        assert_eq!(o.start_fulfil(), Ok(false));
        assert!(o.start_cancel(Some("late".into())).is_err());

        let mut c = order();
        c.place(NaiveDateTime::default());
        assert_eq!(c.start_cancel(Some("changed mind".into())), Ok(true));
        c.finish(NaiveDateTime::default());
        assert_eq!(c.status, OrderStatus::Cancelled);
        assert_eq!(c.start_cancel(None), Ok(false));
        assert!(c.start_fulfil().is_err());
    }

    #[test]
    fn a_reversal_event_negates_the_amounts() {
        let mut o = order();
        o.total = Some(Decimal::new(12_050, 2));
        o.subtotal = Some(Decimal::new(13_000, 2));
        let payload = o.event_payload(true);
        assert_eq!(payload["total"], "-120.50");
        assert_eq!(payload["subtotal"], "-130.00");
        assert_eq!(payload["reversal_of"], "HD-ORD-1");
        assert!(payload.get("version").is_none());
        assert_eq!(o.event_payload(false)["total"], "120.50");
    }

    #[test]
    fn reservation_ids_are_stable_per_line() {
        let o = order();
        assert_eq!(o.reservation_request_id(&o.lines[0]), "HD-ORD-1/1/0");
    }
}
