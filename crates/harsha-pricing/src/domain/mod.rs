//! The Pricing service's types and rules, free of gRPC and SQL: discounts
//! and tiers, schedules (validity, days, time windows across midnight in
//! named zones, festival windows), rules and their conditions, the
//! catalogue of items, groups and base prices, and the engine that prices
//! a cart and explains itself.

mod calendar;
mod catalogue;
mod discount;
mod engine;
mod overlap;
mod rule;

pub use calendar::{CalendarMiss, DaySet, FestivalCalendar, Schedule, TimeWindow};
pub use catalogue::{BasePrice, Catalogue, STANDARD_PRICE_LIST};
pub use discount::{Discount, DiscountKind, RuleDiscount, Stacking, Tier, TierBasis, Tiers};
pub use engine::{
    AppliedRule, CartRequest, CustomerFacts, LineRequest, MONEY_SCALE, PricedCart, PricedLine,
    QuoteError, RuleBook, SkipReason, SkippedRule, Tie, UNIT_SCALE, round_money,
};
pub use harsha_types::{Actor, Code, DocName, Quantity, ValueError};
pub use overlap::{Overlap, overlaps};
pub use rule::{
    Conditions, MAX_PRIORITY, MONEY_INPUT_SCALE, Rule, RuleSpec, Specificity, Target, check_amount,
};
