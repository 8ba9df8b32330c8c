//! Rows as the database returns them, and their conversion to domain types.
//! Stored values that do not parse (which only a hand edit of the database
//! could cause) surface as a storage error, never as a panic.

use chrono::{NaiveDate, NaiveDateTime, NaiveTime};
use harsha_store::{DbDecimal, StoreError};

use crate::{
    PricingError,
    domain::{
        Code, Conditions, DaySet, Discount, DocName, Rule, RuleDiscount, RuleSpec, Schedule,
        Target, Tier, Tiers, TimeWindow,
    },
};

fn corrupt(column: &str, error: impl std::fmt::Display) -> PricingError {
    PricingError::Store(StoreError::Sql(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: error.to_string().into(),
    }))
}

/// A list column: a JSON array of strings (empty text for none).
fn list<T>(
    column: &str,
    value: &str,
    parse: impl Fn(&str) -> Result<T, harsha_types::ValueError>,
) -> Result<Vec<T>, PricingError> {
    if value.is_empty() {
        return Ok(Vec::new());
    }
    let values: Vec<String> = serde_json::from_str(value).map_err(|e| corrupt(column, e))?;
    values
        .iter()
        .map(|v| parse(v).map_err(|e| corrupt(column, e)))
        .collect()
}

/// A `tabHD Dynamic Pricing Rule` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RuleRow {
    pub name: String,
    pub creation: NaiveDateTime,
    pub modified: NaiveDateTime,
    pub rule_name: String,
    pub description: Option<String>,
    pub priority: i32,
    pub is_active: i32,
    pub valid_from: Option<NaiveDate>,
    pub valid_to: Option<NaiveDate>,
    pub days_of_week: String,
    pub time_from: Option<NaiveTime>,
    pub time_to: Option<NaiveTime>,
    pub time_zone: String,
    pub festivals: String,
    pub customer_segments: String,
    pub territories: String,
    pub channels: String,
    pub min_qty: Option<DbDecimal>,
    pub max_qty: Option<DbDecimal>,
    pub min_amount: Option<DbDecimal>,
    pub max_amount: Option<DbDecimal>,
    pub discount_kind: Option<String>,
    pub discount_value: Option<DbDecimal>,
    pub tier_basis: Option<String>,
    pub max_discount_per_line: Option<DbDecimal>,
    pub is_exclusive: i32,
    pub currency: String,
}

/// A `tabHD Pricing Rule Item` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RuleItemRow {
    pub parent: String,
    pub applies_to: String,
    pub item_code: Option<String>,
    pub item_group: Option<String>,
}

/// A `tabHD Pricing Rule Tier` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct RuleTierRow {
    pub parent: String,
    pub min_value: DbDecimal,
    pub max_value: Option<DbDecimal>,
    pub discount_kind: String,
    pub discount_value: DbDecimal,
}

fn discount(kind: &str, value: DbDecimal) -> Result<Discount, PricingError> {
    let kind = kind.parse().map_err(|e| corrupt("discount_kind", e))?;
    Discount::new(kind, value.get()).map_err(|e| corrupt("discount_value", e))
}

impl RuleRow {
    /// The rule, with its items and tiers (rows of other rules are ignored).
    pub fn into_rule(
        self,
        items: &[RuleItemRow],
        tiers: &[RuleTierRow],
    ) -> Result<Rule, PricingError> {
        let targets = items
            .iter()
            .filter(|row| row.parent == self.name)
            .map(|row| {
                let (value, make): (&Option<String>, fn(DocName) -> Target) =
                    match row.applies_to.as_str() {
                        "Item" => (&row.item_code, Target::Item),
                        _ => (&row.item_group, Target::ItemGroup),
                    };
                let value = value
                    .as_deref()
                    .ok_or_else(|| corrupt("item_code", "missing target"))?;
                DocName::parse(value)
                    .map(make)
                    .map_err(|e| corrupt("item_code", e))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let discount = match self.tier_basis.as_deref() {
            None => RuleDiscount::Flat(discount(
                self.discount_kind.as_deref().unwrap_or_default(),
                self.discount_value.unwrap_or_default(),
            )?),
            Some(basis) => {
                let basis = basis.parse().map_err(|e| corrupt("tier_basis", e))?;
                let tiers = tiers
                    .iter()
                    .filter(|row| row.parent == self.name)
                    .map(|row| {
                        Ok(Tier {
                            min: row.min_value.get(),
                            max: row.max_value.map(DbDecimal::get),
                            discount: discount(&row.discount_kind, row.discount_value)?,
                        })
                    })
                    .collect::<Result<Vec<_>, PricingError>>()?;
                RuleDiscount::Tiered(
                    Tiers::new(basis, tiers).map_err(|(_, e)| corrupt("tiers", e))?,
                )
            }
        };
        let time_window = match (self.time_from, self.time_to) {
            (Some(from), Some(to)) => {
                Some(TimeWindow::new(from, to).map_err(|e| corrupt("time_from", e))?)
            }
            _ => None,
        };
        let spec = RuleSpec {
            code: Code::parse(&self.name).map_err(|e| corrupt("name", e))?,
            rule_name: self.rule_name,
            description: self.description.unwrap_or_default(),
            priority: self.priority,
            active: self.is_active != 0,
            schedule: Schedule {
                valid_from: self.valid_from,
                valid_to: self.valid_to,
                days: DaySet::from_stored(&self.days_of_week)
                    .map_err(|e| corrupt("days_of_week", e))?,
                time_window,
                time_zone: self
                    .time_zone
                    .parse()
                    .map_err(|e| corrupt("time_zone", e))?,
                festivals: list("festivals", &self.festivals, Code::parse)?,
            },
            conditions: Conditions {
                segments: list("customer_segments", &self.customer_segments, Code::parse)?,
                territories: list("territories", &self.territories, DocName::parse)?,
                channels: list("channels", &self.channels, Code::parse)?,
                min_qty: self.min_qty.map(DbDecimal::get),
                max_qty: self.max_qty.map(DbDecimal::get),
                min_amount: self.min_amount.map(DbDecimal::get),
                max_amount: self.max_amount.map(DbDecimal::get),
            },
            targets,
            discount,
            max_discount_per_line: self.max_discount_per_line.map(DbDecimal::get),
            exclusive: self.is_exclusive != 0,
            currency: self.currency,
        };
        Ok(Rule {
            spec,
            created: self.creation,
            modified: self.modified,
        })
    }
}
