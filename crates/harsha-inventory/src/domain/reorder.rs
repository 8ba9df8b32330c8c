//! Item-warehouse optimisation: the reorder point computed from recent
//! consumption, and when to ask for more stock.
//!
//! reorder point = max(reorder level, minimum stock, average daily issue ×
//! lead time + safety stock), where the average daily issue is what was issued over the
//! last `consumption_window_days` divided by that many days. Usable stock
//! is the free stock of active batches that will not expire within the lead
//! time. Below the reorder point, one procurement trigger opens (suggesting
//! enough to reach the maximum, at least the reorder quantity and at least
//! the gap); it stays the only one until usable stock is back at or above
//! the reorder point, when it resolves.

use rust_decimal::{Decimal, RoundingStrategy};
use serde::Serialize;

/// The optimisation parameters of an item in a warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReorderParams {
    /// Never reorder later than at this level.
    pub reorder_level: Decimal,
    /// The smallest quantity to order.
    pub reorder_qty: Decimal,
    /// Stock kept against variation in demand and supply.
    pub safety_stock: Decimal,
    /// Days from order to receipt.
    pub lead_time_days: u32,
    /// The least stock to hold.
    pub min_qty: Decimal,
    /// The most stock to hold (0: no maximum).
    pub max_qty: Decimal,
    /// Days of history the consumption average covers.
    pub consumption_window_days: u32,
}

impl ReorderParams {
    /// Checks the parameters; the error names the field.
    pub fn validate(self) -> Result<Self, (&'static str, String)> {
        for (field, value) in [
            ("reorder_level", self.reorder_level),
            ("reorder_qty", self.reorder_qty),
            ("safety_stock", self.safety_stock),
            ("min_qty", self.min_qty),
            ("max_qty", self.max_qty),
        ] {
            if value < Decimal::ZERO {
                return Err((field, format!("must not be negative, not {value}")));
            }
            if value.scale() > harsha_types::MAX_QUANTITY_SCALE {
                return Err((field, "has more than 9 decimal places".into()));
            }
            if value > harsha_types::max_quantity() {
                return Err((field, format!("{value} is more than a quantity can be")));
            }
        }
        if !self.max_qty.is_zero() && self.max_qty < self.min_qty {
            return Err((
                "max_qty",
                format!(
                    "the maximum {} is below the minimum {}",
                    self.max_qty, self.min_qty
                ),
            ));
        }
        if self.consumption_window_days == 0 || self.consumption_window_days > 365 {
            return Err((
                "consumption_window_days",
                "must be between 1 and 365 days".into(),
            ));
        }
        if self.lead_time_days > 365 {
            return Err(("lead_time_days", "must be at most 365 days".into()));
        }
        Ok(self)
    }

    /// Average daily issue over the window, given the total issued in it
    /// (rounded to 9 places).
    pub fn average_daily_issue(&self, issued_in_window: Decimal) -> Decimal {
        (issued_in_window / Decimal::from(self.consumption_window_days.max(1)))
            .round_dp_with_strategy(9, RoundingStrategy::MidpointAwayFromZero)
            .normalize()
    }

    /// The reorder point for an average daily issue.
    pub fn reorder_point(&self, average_daily_issue: Decimal) -> Decimal {
        let computed = average_daily_issue * Decimal::from(self.lead_time_days) + self.safety_stock;
        computed
            .max(self.reorder_level)
            .max(self.min_qty)
            .normalize()
    }

    /// How much to order when usable stock is `usable` below `reorder_point`.
    pub fn suggested_qty(&self, usable: Decimal, reorder_point: Decimal) -> Decimal {
        let gap = (reorder_point - usable).max(Decimal::ZERO);
        let to_max = if self.max_qty.is_zero() {
            Decimal::ZERO
        } else {
            (self.max_qty - usable).max(Decimal::ZERO)
        };
        gap.max(to_max).max(self.reorder_qty).normalize()
    }
}

/// What an evaluation decided.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum ReorderDecision {
    /// Usable stock is below the reorder point and no trigger is open:
    /// open one.
    Open,
    /// Still below, a trigger is already open: nothing new.
    StillOpen,
    /// Back at or above the reorder point with a trigger open: resolve it.
    Resolve,
    /// At or above the reorder point, nothing open.
    Healthy,
}

/// Decides what to do with the trigger of an item in a warehouse.
pub fn decide(usable: Decimal, reorder_point: Decimal, trigger_open: bool) -> ReorderDecision {
    match (usable < reorder_point, trigger_open) {
        (true, false) => ReorderDecision::Open,
        (true, true) => ReorderDecision::StillOpen,
        (false, true) => ReorderDecision::Resolve,
        (false, false) => ReorderDecision::Healthy,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> ReorderParams {
        ReorderParams {
            reorder_level: Decimal::from(20),
            reorder_qty: Decimal::from(50),
            safety_stock: Decimal::from(10),
            lead_time_days: 4,
            min_qty: Decimal::ZERO,
            max_qty: Decimal::from(200),
            consumption_window_days: 30,
        }
    }

    #[test]
    fn the_reorder_point_follows_consumption_with_the_level_as_floor() {
        let p = params();
        let avg = p.average_daily_issue(Decimal::from(300));
        assert_eq!(avg, Decimal::from(10));
        assert_eq!(p.reorder_point(avg), Decimal::from(50));
        assert_eq!(p.reorder_point(Decimal::ZERO), Decimal::from(20));
        assert_eq!(
            p.suggested_qty(Decimal::from(30), Decimal::from(50)),
            Decimal::from(170)
        );
    }

    #[test]
    fn one_trigger_until_stock_recovers() {
        let point = Decimal::from(50);
        assert_eq!(
            decide(Decimal::from(49), point, false),
            ReorderDecision::Open
        );
        assert_eq!(
            decide(Decimal::from(10), point, true),
            ReorderDecision::StillOpen
        );
        assert_eq!(
            decide(Decimal::from(50), point, true),
            ReorderDecision::Resolve
        );
        assert_eq!(
            decide(Decimal::from(50), point, false),
            ReorderDecision::Healthy
        );
    }

    #[test]
    fn parameters_are_checked() {
        let bad = ReorderParams {
            safety_stock: Decimal::from(-1),
            ..params()
        };
        assert_eq!(bad.validate().err().map(|e| e.0), Some("safety_stock"));
        let bad = ReorderParams {
            max_qty: Decimal::from(5),
            min_qty: Decimal::from(6),
            ..params()
        };
        assert_eq!(bad.validate().err().map(|e| e.0), Some("max_qty"));
    }
}
