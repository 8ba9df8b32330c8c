//! A dynamic pricing rule: what it applies to, to whom, when, under which
//! quantity and amount conditions, and what it takes off.

use chrono::NaiveDateTime;
use harsha_types::{Code, DocName, ValueError};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

use super::{Discount, RuleDiscount, Schedule};

/// What a rule applies to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Target {
    /// One item.
    Item(DocName),
    /// An item group and every group below it.
    ItemGroup(DocName),
}

/// How specific a rule is for an item, for ordering: an item rule beats a
/// group rule, a deeper group beats a shallower one, and both beat a rule
/// for all items.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum Specificity {
    /// A rule for every item.
    AllItems,
    /// A rule for a group, `depth` levels above the item (0: the item's own
    /// group). Smaller is more specific.
    Group {
        /// `u16::MAX - depth`, so that nearer groups order higher.
        nearness: u16,
    },
    /// A rule naming the item.
    Item,
}

/// The most decimal places an amount in a rule may have.
pub const MONEY_INPUT_SCALE: u32 = 4;

/// Checks that a rule's quantity or amount is not negative, has at most
/// `places` decimal places and fits the stored `decimal(21,9)` (and SQLite's
/// 64-bit encoding).
pub fn check_amount(value: Decimal, places: u32) -> Result<(), ValueError> {
    if value < Decimal::ZERO {
        return Err(ValueError(format!("must not be negative, not {value}")));
    }
    if value.normalize().scale() > places {
        return Err(ValueError(format!("has at most {places} decimal places")));
    }
    if value > harsha_types::max_quantity() {
        return Err(ValueError(format!("{value} is too large")));
    }
    Ok(())
}

/// Conditions on who buys, through which channel, and how much.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Conditions {
    /// The customer must hold one of these segments (any segment when empty).
    pub segments: Vec<Code>,
    /// The customer must be covered by one of these territories (any when empty).
    pub territories: Vec<DocName>,
    /// The sale must come through one of these channels (any when empty).
    pub channels: Vec<Code>,
    /// Least quantity on the line.
    pub min_qty: Option<Decimal>,
    /// Most quantity on the line.
    pub max_qty: Option<Decimal>,
    /// Least line amount at base price.
    pub min_amount: Option<Decimal>,
    /// Most line amount at base price.
    pub max_amount: Option<Decimal>,
}

impl Conditions {
    /// Checks the ranges; the error names the field.
    pub fn validate(self) -> Result<Self, (&'static str, ValueError)> {
        for (field, value, places) in [
            ("min_qty", self.min_qty, harsha_types::MAX_QUANTITY_SCALE),
            ("max_qty", self.max_qty, harsha_types::MAX_QUANTITY_SCALE),
            ("min_amount", self.min_amount, MONEY_INPUT_SCALE),
            ("max_amount", self.max_amount, MONEY_INPUT_SCALE),
        ] {
            if let Some(value) = value {
                check_amount(value, places).map_err(|e| (field, e))?;
            }
        }
        if let (Some(min), Some(max)) = (self.min_qty, self.max_qty)
            && max < min
        {
            return Err((
                "max_qty",
                ValueError(format!("{max} is below min_qty {min}")),
            ));
        }
        if let (Some(min), Some(max)) = (self.min_amount, self.max_amount)
            && max < min
        {
            return Err((
                "max_amount",
                ValueError(format!("{max} is below min_amount {min}")),
            ));
        }
        Ok(self)
    }
}

/// A rule, as created or updated (validated).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RuleSpec {
    /// The rule's code.
    pub code: Code,
    /// Its display name.
    pub rule_name: String,
    /// What it is for.
    pub description: String,
    /// Higher applies first, 0 to 1000.
    pub priority: i32,
    /// Whether it is in use.
    pub active: bool,
    /// When it applies.
    pub schedule: Schedule,
    /// To whom and how much.
    pub conditions: Conditions,
    /// Items and item groups (every item when empty).
    pub targets: Vec<Target>,
    /// What it takes off.
    pub discount: RuleDiscount,
    /// The most this rule takes off one line, in total.
    pub max_discount_per_line: Option<Decimal>,
    /// Whether it applies alone (the best exclusive rule wins and no other
    /// rule applies) or stacks with others.
    pub exclusive: bool,
    /// The currency of its amounts.
    pub currency: String,
}

/// The highest priority.
pub const MAX_PRIORITY: i32 = 1000;

impl RuleSpec {
    /// Checks the rule as a whole; the error names the field.
    pub fn validate(self) -> Result<Self, (String, ValueError)> {
        let field = |f: &str| f.to_owned();
        if self.rule_name.trim().is_empty() || self.rule_name.chars().count() > 140 {
            return Err((
                field("rule_name"),
                ValueError("must be 1 to 140 characters".into()),
            ));
        }
        if self.description.chars().count() > 1000 {
            return Err((
                field("description"),
                ValueError("is longer than 1000 characters".into()),
            ));
        }
        if !(0..=MAX_PRIORITY).contains(&self.priority) {
            return Err((
                field("priority"),
                ValueError(format!(
                    "must be between 0 and {MAX_PRIORITY}, not {}",
                    self.priority
                )),
            ));
        }
        if let Some(cap) = self.max_discount_per_line {
            check_amount(cap, MONEY_INPUT_SCALE)
                .map_err(|e| (field("max_discount_per_line"), e))?;
        }
        for (i, name) in self.conditions.territories.iter().enumerate() {
            if name.as_str().contains(',') {
                return Err((
                    format!("territories[{i}]"),
                    ValueError("must not contain a comma".into()),
                ));
            }
        }
        if self.currency.len() != 3 || !self.currency.chars().all(|c| c.is_ascii_uppercase()) {
            return Err((
                field("currency"),
                ValueError(format!("{:?} is not an ISO 4217 code", self.currency)),
            ));
        }
        let schedule = self.schedule.validate().map_err(|(f, e)| (field(f), e))?;
        let conditions = self.conditions.validate().map_err(|(f, e)| (field(f), e))?;
        Ok(Self {
            schedule,
            conditions,
            ..self
        })
    }

    /// The discount the rule gives at `measure` (the tier's, for a tiered
    /// rule), if any.
    pub fn discount_at(&self, measure: Decimal) -> Option<Discount> {
        match &self.discount {
            RuleDiscount::Flat(discount) => Some(*discount),
            RuleDiscount::Tiered(tiers) => tiers.tier_for(measure).map(|tier| tier.discount),
        }
    }
}

/// A stored rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Rule {
    /// What was specified.
    pub spec: RuleSpec,
    /// Created (UTC).
    pub created: NaiveDateTime,
    /// Last changed (UTC).
    pub modified: NaiveDateTime,
}
