//! The pricing engine: prices a cart against the rules in force, and says
//! for every line which rules applied (with their effect, in order), which
//! did not and why, and where equally ranked rules tied.
//!
//! **Order.** Rules that match a line are ordered by priority (higher
//! first), then specificity (a rule naming the item, then the nearest item
//! group, then rules for all items), then rule code. Equal priority and
//! specificity is a tie: it never fails a sale, the code decides, and the
//! line's explanation names the tied rules.
//!
//! **Combining.** If any matching rule is exclusive, the first exclusive
//! rule in that order applies alone and every other matching rule is
//! skipped as lost to it. Otherwise every matching rule applies, in order:
//! compounded (each on the price the previous left) or additively (each
//! worked out on the base price, the discounts summed), as configured. A
//! rule's cap limits what it takes off the whole line. A price never goes
//! below zero.
//!
//! **Rounding.** Discounts are worked on the whole line (base price ×
//! quantity), so every amount stays exact; each line's gross and net
//! amounts are rounded once, half-up to 2 decimal places (paise), by
//! [`round_money`], and the cart's totals are sums of rounded lines. Unit
//! figures are the line's divided by the quantity, shown to 6 places.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use harsha_types::{Code, Quantity};
use rust_decimal::{Decimal, RoundingStrategy};
use serde::{Deserialize, Serialize};

use super::{
    CalendarMiss, Catalogue, Discount, FestivalCalendar, RuleDiscount, RuleSpec, Specificity,
    Stacking, Target, TierBasis,
};

/// Decimal places of money amounts.
pub const MONEY_SCALE: u32 = 2;

/// Rounds a money amount half-up (away from zero at the half) to paise:
/// the one place amounts are rounded.
pub fn round_money(amount: Decimal) -> Decimal {
    amount.round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::MidpointAwayFromZero)
}

/// Decimal places of the unit figures shown for reading (the line amounts
/// they come from are exact).
pub const UNIT_SCALE: u32 = 6;

/// A line amount per unit, to [`UNIT_SCALE`] places.
fn per_unit(line: Decimal, qty: Decimal) -> Decimal {
    if qty.is_zero() {
        return Decimal::ZERO;
    }
    (line / qty)
        .round_dp_with_strategy(UNIT_SCALE, RoundingStrategy::MidpointAwayFromZero)
        .normalize()
}

/// Who is buying, as the Customer service resolves them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct CustomerFacts {
    /// The customer.
    pub customer: String,
    /// The segments held on the day.
    pub segments: Vec<Code>,
    /// The territories covering them on the day.
    pub territories: Vec<String>,
    /// Their price tier (a price list), if any.
    pub price_tier: Option<String>,
}

/// One line to price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LineRequest {
    /// The item.
    pub item_code: String,
    /// How much.
    pub qty: Quantity,
    /// The unit asked for; the price list's when `None`.
    pub uom: Option<String>,
}

/// A cart to price.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CartRequest {
    /// The buyer.
    pub customer: CustomerFacts,
    /// The sales channel (e-commerce, mobile app, counter…).
    pub channel: Option<Code>,
    /// The instant prices are for.
    pub at: DateTime<Utc>,
    /// The lines.
    pub lines: Vec<LineRequest>,
}

/// Why a rule did not apply to a line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub enum SkipReason {
    /// The rule's amounts are in another currency than the item's price.
    CurrencyMismatch,
    /// Before `valid_from` or after `valid_to`.
    OutsideValidity,
    /// Not one of the rule's days.
    WrongDay,
    /// Outside the rule's daily time window.
    OutsideTimeWindow,
    /// Outside the rule's festival or season windows.
    OutsideFestival,
    /// The customer holds none of the rule's segments.
    SegmentMismatch,
    /// No territory of the rule covers the customer.
    TerritoryMismatch,
    /// The sale is not through one of the rule's channels.
    ChannelMismatch,
    /// The line's quantity is below `min_qty`.
    BelowMinQty,
    /// The line's quantity is above `max_qty`.
    AboveMaxQty,
    /// The line's amount is below `min_amount`.
    BelowMinAmount,
    /// The line's amount is above `max_amount`.
    AboveMaxAmount,
    /// The quantity or amount falls in no tier.
    NoTier,
    /// An exclusive rule applied instead.
    LostToExclusive,
}

impl SkipReason {
    fn from_calendar(miss: CalendarMiss) -> Self {
        match miss {
            CalendarMiss::OutsideValidity => Self::OutsideValidity,
            CalendarMiss::WrongDay => Self::WrongDay,
            CalendarMiss::OutsideTimeWindow => Self::OutsideTimeWindow,
            CalendarMiss::OutsideFestival => Self::OutsideFestival,
        }
    }
}

/// A rule that did not apply to a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SkippedRule {
    /// The rule.
    pub rule: Code,
    /// Why.
    pub reason: SkipReason,
    /// The exclusive rule that won, for [`SkipReason::LostToExclusive`].
    pub lost_to: Option<Code>,
}

/// A rule's effect on a line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppliedRule {
    /// The rule.
    pub rule: Code,
    /// Its name.
    pub rule_name: String,
    /// Its priority.
    pub priority: i32,
    /// How specific it was for the item.
    pub specificity: Specificity,
    /// The discount it gave (the tier's, for a tiered rule).
    pub discount: Discount,
    /// The tier's lower bound, for a tiered rule.
    pub tier_min: Option<Decimal>,
    /// What it took off each unit (to 6 places).
    pub unit_discount: Decimal,
    /// What it took off the line (exact).
    pub line_discount: Decimal,
    /// The unit price after it (to 6 places).
    pub unit_price_after: Decimal,
    /// Whether its cap limited it.
    pub capped: bool,
}

/// Rules that matched a line with equal priority and specificity, in the
/// order applied (by code).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Tie {
    /// The tied rules.
    pub rules: Vec<Code>,
    /// Their shared priority.
    pub priority: i32,
}

/// A priced line with its explanation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedLine {
    /// The item.
    pub item_code: String,
    /// How much.
    pub qty: Decimal,
    /// The unit.
    pub uom: String,
    /// The price list the base price came from.
    pub price_list: String,
    /// The base price per unit.
    pub base_rate: Decimal,
    /// The rules that applied, in order.
    pub applied: Vec<AppliedRule>,
    /// The candidate rules that did not apply, and why.
    pub skipped: Vec<SkippedRule>,
    /// Ties among the matching rules.
    pub ties: Vec<Tie>,
    /// The final unit price (net before rounding ÷ quantity, to 6 places).
    pub unit_price: Decimal,
    /// Base price × quantity, rounded.
    pub gross_amount: Decimal,
    /// Final price × quantity, rounded.
    pub net_amount: Decimal,
    /// Gross − net.
    pub discount_amount: Decimal,
}

/// A priced cart.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PricedCart {
    /// The lines, in request order.
    pub lines: Vec<PricedLine>,
    /// The currency of every amount.
    pub currency: String,
    /// Sum of gross amounts.
    pub subtotal: Decimal,
    /// Sum of line discounts.
    pub total_discount: Decimal,
    /// Sum of net amounts.
    pub total: Decimal,
    /// How stackable rules combined.
    pub stacking: Stacking,
}

impl PricedLine {
    /// What each applied rule took off the line, in paise, adding up to the
    /// line's rounded `discount_amount`: each rule's exact discount rounded
    /// down, then the paise left over given to the largest remainders (the
    /// largest-remainder method). Rules that took nothing are left out.
    pub fn rule_discounts(&self) -> Vec<(Code, Decimal)> {
        let paisa = Decimal::new(1, MONEY_SCALE);
        let mut shares: Vec<(Code, Decimal, Decimal)> = self
            .applied
            .iter()
            .map(|a| {
                let floor = a
                    .line_discount
                    .round_dp_with_strategy(MONEY_SCALE, RoundingStrategy::ToZero);
                (a.rule.clone(), floor, a.line_discount - floor)
            })
            .collect();
        let mut gap = self.discount_amount - shares.iter().map(|s| s.1).sum::<Decimal>();
        let mut by_remainder: Vec<usize> = (0..shares.len()).collect();
        by_remainder.sort_by(|&a, &b| shares[b].2.cmp(&shares[a].2).then(a.cmp(&b)));
        let mut next = by_remainder.iter().cycle();
        let mut guard = 0;
        while gap > Decimal::ZERO && guard < 10_000 {
            if let Some(&i) = next.next() {
                shares[i].1 += paisa;
                gap -= paisa;
            }
            guard += 1;
        }
        let mut back = by_remainder.iter().rev().cycle();
        while gap < Decimal::ZERO && guard < 20_000 {
            if let Some(&i) = back.next()
                && shares[i].1 >= paisa
            {
                shares[i].1 -= paisa;
                gap += paisa;
            }
            guard += 1;
        }
        shares
            .into_iter()
            .filter(|(_, amount, _)| !amount.is_zero())
            .map(|(rule, amount, _)| (rule, amount.normalize()))
            .collect()
    }
}

/// Why a cart cannot be priced; `line` is the index in the request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum QuoteError {
    /// The item does not exist.
    #[error("item {item:?} not found")]
    UnknownItem {
        /// The line.
        line: usize,
        /// The item.
        item: String,
    },
    /// No price list has a price for the item.
    #[error("item {item:?} (line {line}) has no selling price")]
    NoPrice {
        /// The line.
        line: usize,
        /// The item.
        item: String,
    },
    /// The unit asked for is not the one the item is priced in.
    #[error("{item:?} is priced per {priced}, not per {asked}")]
    UomMismatch {
        /// The line.
        line: usize,
        /// The item.
        item: String,
        /// The price's unit.
        priced: String,
        /// The unit asked for.
        asked: String,
    },
    /// The lines' prices are in different currencies.
    #[error("priced in {found}; the cart is in {cart}")]
    MixedCurrency {
        /// The line.
        line: usize,
        /// The line's currency.
        found: String,
        /// The cart's currency.
        cart: String,
    },
}

impl QuoteError {
    /// The request field at fault.
    pub fn field(&self) -> String {
        match self {
            Self::UnknownItem { line, .. }
            | Self::NoPrice { line, .. }
            | Self::MixedCurrency { line, .. } => format!("lines[{line}].item_code"),
            Self::UomMismatch { line, .. } => format!("lines[{line}].uom"),
        }
    }
}

/// The active rules, indexed by what they apply to, with the festival
/// calendar and the catalogue: everything a quote reads, in memory.
#[derive(Debug, Clone, Default)]
pub struct RuleBook {
    rules: Vec<RuleSpec>,
    by_item: HashMap<String, Vec<usize>>,
    by_group: HashMap<String, Vec<usize>>,
    all_items: Vec<usize>,
    festivals: FestivalCalendar,
    catalogue: Catalogue,
}

impl RuleBook {
    /// Indexes the active rules among `rules`.
    pub fn new(
        rules: impl IntoIterator<Item = RuleSpec>,
        festivals: FestivalCalendar,
        catalogue: Catalogue,
    ) -> Self {
        let mut book = Self {
            festivals,
            catalogue,
            ..Self::default()
        };
        for rule in rules.into_iter().filter(|r| r.active) {
            let index = book.rules.len();
            if rule.targets.is_empty() {
                book.all_items.push(index);
            }
            for target in &rule.targets {
                let (map, key) = match target {
                    Target::Item(item) => (&mut book.by_item, item.as_str()),
                    Target::ItemGroup(group) => (&mut book.by_group, group.as_str()),
                };
                let list = map.entry(key.to_owned()).or_default();
                if !list.contains(&index) {
                    list.push(index);
                }
            }
            book.rules.push(rule);
        }
        book
    }

    /// The number of active rules.
    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Whether there are no active rules.
    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    /// The active rules.
    pub fn rules(&self) -> &[RuleSpec] {
        &self.rules
    }

    /// The festival calendar.
    pub fn festivals(&self) -> &FestivalCalendar {
        &self.festivals
    }

    /// The catalogue the book prices from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The rules that may apply to `item`, each once, at its most specific.
    fn candidates(&self, item: &str) -> Vec<(usize, Specificity)> {
        let mut found: Vec<(usize, Specificity)> = Vec::new();
        for index in self.by_item.get(item).into_iter().flatten() {
            found.push((*index, Specificity::Item));
        }
        for (depth, group) in self.catalogue.groups_of(item).into_iter().enumerate() {
            let nearness = u16::MAX - u16::try_from(depth).unwrap_or(u16::MAX);
            for index in self.by_group.get(group).into_iter().flatten() {
                found.push((*index, Specificity::Group { nearness }));
            }
        }
        found.extend(
            self.all_items
                .iter()
                .map(|index| (*index, Specificity::AllItems)),
        );
        // Each rule once, at its most specific; in rule order, so the
        // explanation lists skipped rules the same way every time.
        found.sort_unstable_by(|a, b| a.0.cmp(&b.0).then(b.1.cmp(&a.1)));
        found.dedup_by_key(|(index, _)| *index);
        found
    }

    /// Prices a cart.
    pub fn quote(&self, cart: &CartRequest, stacking: Stacking) -> Result<PricedCart, QuoteError> {
        // Base prices first: the cart amount is a tier measure.
        let mut bases = Vec::with_capacity(cart.lines.len());
        let mut currency: Option<String> = None;
        for (line, request) in cart.lines.iter().enumerate() {
            if !self.catalogue.knows(&request.item_code) {
                return Err(QuoteError::UnknownItem {
                    line,
                    item: request.item_code.clone(),
                });
            }
            let price = self
                .catalogue
                .price_of(&request.item_code, cart.customer.price_tier.as_deref())
                .ok_or_else(|| QuoteError::NoPrice {
                    line,
                    item: request.item_code.clone(),
                })?;
            if let Some(asked) = &request.uom
                && asked != &price.uom
            {
                return Err(QuoteError::UomMismatch {
                    line,
                    item: request.item_code.clone(),
                    priced: price.uom.clone(),
                    asked: asked.clone(),
                });
            }
            match &currency {
                Some(cart_currency) if cart_currency != &price.currency => {
                    return Err(QuoteError::MixedCurrency {
                        line,
                        found: price.currency.clone(),
                        cart: cart_currency.clone(),
                    });
                }
                Some(_) => {}
                None => currency = Some(price.currency.clone()),
            }
            bases.push(price);
        }
        let cart_amount: Decimal = cart
            .lines
            .iter()
            .zip(&bases)
            .map(|(line, price)| price.rate * line.qty.get())
            .sum();
        let mut lines = Vec::with_capacity(cart.lines.len());
        for (request, price) in cart.lines.iter().zip(&bases) {
            lines.push(self.price_line(cart, request, price, cart_amount, stacking));
        }
        let subtotal = lines.iter().map(|l| l.gross_amount).sum();
        let total: Decimal = lines.iter().map(|l| l.net_amount).sum();
        let total_discount = lines.iter().map(|l| l.discount_amount).sum();
        Ok(PricedCart {
            lines,
            currency: currency.unwrap_or_else(|| "INR".into()),
            subtotal,
            total_discount,
            total,
            stacking,
        })
    }

    fn price_line(
        &self,
        cart: &CartRequest,
        request: &LineRequest,
        price: &super::BasePrice,
        cart_amount: Decimal,
        stacking: Stacking,
    ) -> PricedLine {
        let qty = request.qty.get();
        let line_amount = price.rate * qty;
        let mut skipped = Vec::new();
        let mut matching: Vec<(&RuleSpec, Specificity, Discount, Option<Decimal>)> = Vec::new();
        for (index, specificity) in self.candidates(&request.item_code) {
            let rule = &self.rules[index];
            match self.check(rule, cart, qty, line_amount, cart_amount, &price.currency) {
                Ok((discount, tier_min)) => matching.push((rule, specificity, discount, tier_min)),
                Err(reason) => skipped.push(SkippedRule {
                    rule: rule.code.clone(),
                    reason,
                    lost_to: None,
                }),
            }
        }
        matching.sort_by(|a, b| {
            b.0.priority
                .cmp(&a.0.priority)
                .then(b.1.cmp(&a.1))
                .then_with(|| a.0.code.cmp(&b.0.code))
        });
        let ties = ties_of(&matching);
        if let Some(winner) = matching.iter().position(|m| m.0.exclusive) {
            let winner_code = matching[winner].0.code.clone();
            let mut kept = Vec::with_capacity(1);
            for (i, entry) in matching.into_iter().enumerate() {
                if i == winner {
                    kept.push(entry);
                } else {
                    skipped.push(SkippedRule {
                        rule: entry.0.code.clone(),
                        reason: SkipReason::LostToExclusive,
                        lost_to: Some(winner_code.clone()),
                    });
                }
            }
            matching = kept;
        }
        // Amounts are worked on the whole line, so every figure stays exact
        // (no division); unit figures are the line's divided by the quantity,
        // to UNIT_SCALE places, for reading.
        let mut line_price = line_amount;
        let mut applied = Vec::with_capacity(matching.len());
        for (rule, specificity, discount, tier_min) in matching {
            let target = match stacking {
                Stacking::Compound => discount.apply_to_line(line_price, qty),
                Stacking::Additive => {
                    let off = line_amount - discount.apply_to_line(line_amount, qty);
                    (line_price - off).max(Decimal::ZERO)
                }
            };
            let mut line_discount = line_price - target;
            let mut capped = false;
            if let Some(cap) = rule.max_discount_per_line
                && line_discount > cap
            {
                line_discount = cap;
                capped = true;
            }
            line_price -= line_discount;
            applied.push(AppliedRule {
                rule: rule.code.clone(),
                rule_name: rule.rule_name.clone(),
                priority: rule.priority,
                specificity,
                discount,
                tier_min,
                unit_discount: per_unit(line_discount, qty),
                line_discount: line_discount.normalize(),
                unit_price_after: per_unit(line_price, qty),
                capped,
            });
        }
        let gross_amount = round_money(line_amount);
        let net_amount = round_money(line_price);
        PricedLine {
            item_code: request.item_code.clone(),
            qty,
            uom: price.uom.clone(),
            price_list: price.price_list.clone(),
            base_rate: price.rate,
            applied,
            skipped,
            ties,
            unit_price: per_unit(line_price, qty),
            gross_amount,
            net_amount,
            discount_amount: gross_amount - net_amount,
        }
    }

    /// Whether `rule` matches, with the discount it gives (and its tier's
    /// lower bound), or the first reason it does not.
    fn check(
        &self,
        rule: &RuleSpec,
        cart: &CartRequest,
        qty: Decimal,
        line_amount: Decimal,
        cart_amount: Decimal,
        currency: &str,
    ) -> Result<(Discount, Option<Decimal>), SkipReason> {
        if rule.currency != currency {
            return Err(SkipReason::CurrencyMismatch);
        }
        rule.schedule
            .check(cart.at, &self.festivals)
            .map_err(SkipReason::from_calendar)?;
        let conditions = &rule.conditions;
        if !conditions.segments.is_empty()
            && !conditions
                .segments
                .iter()
                .any(|s| cart.customer.segments.contains(s))
        {
            return Err(SkipReason::SegmentMismatch);
        }
        if !conditions.territories.is_empty()
            && !conditions
                .territories
                .iter()
                .any(|t| cart.customer.territories.iter().any(|c| c == t.as_str()))
        {
            return Err(SkipReason::TerritoryMismatch);
        }
        if !conditions.channels.is_empty()
            && !cart
                .channel
                .as_ref()
                .is_some_and(|c| conditions.channels.contains(c))
        {
            return Err(SkipReason::ChannelMismatch);
        }
        if conditions.min_qty.is_some_and(|min| qty < min) {
            return Err(SkipReason::BelowMinQty);
        }
        if conditions.max_qty.is_some_and(|max| qty > max) {
            return Err(SkipReason::AboveMaxQty);
        }
        if conditions.min_amount.is_some_and(|min| line_amount < min) {
            return Err(SkipReason::BelowMinAmount);
        }
        if conditions.max_amount.is_some_and(|max| line_amount > max) {
            return Err(SkipReason::AboveMaxAmount);
        }
        match &rule.discount {
            RuleDiscount::Flat(discount) => Ok((*discount, None)),
            RuleDiscount::Tiered(tiers) => {
                let measure = match tiers.basis() {
                    TierBasis::Quantity => qty,
                    TierBasis::LineAmount => line_amount,
                    TierBasis::CartAmount => cart_amount,
                };
                tiers
                    .tier_for(measure)
                    .map(|tier| (tier.discount, Some(tier.min)))
                    .ok_or(SkipReason::NoTier)
            }
        }
    }
}

/// Runs of matching rules with equal priority and specificity.
fn ties_of(matching: &[(&RuleSpec, Specificity, Discount, Option<Decimal>)]) -> Vec<Tie> {
    let mut ties: Vec<Tie> = Vec::new();
    for pair in matching.windows(2) {
        let (a, b) = (&pair[0], &pair[1]);
        if a.0.priority == b.0.priority && a.1 == b.1 {
            match ties.last_mut() {
                Some(tie) if tie.rules.last() == Some(&a.0.code) => {
                    tie.rules.push(b.0.code.clone())
                }
                _ => ties.push(Tie {
                    rules: vec![a.0.code.clone(), b.0.code.clone()],
                    priority: a.0.priority,
                }),
            }
        }
    }
    ties
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use harsha_types::DocName;

    use super::*;
    use crate::domain::{BasePrice, Conditions, DiscountKind, Schedule, Tier, Tiers, TimeWindow};

    fn dec(value: &str) -> Decimal {
        value.parse().unwrap_or_default()
    }

    fn code(value: &str) -> Code {
        Code::parse(value).unwrap_or_else(|_| unreachable!())
    }

    fn name(value: &str) -> DocName {
        DocName::parse(value).unwrap_or_else(|_| unreachable!())
    }

    fn pct(value: &str) -> Discount {
        Discount::new(DiscountKind::Percentage, dec(value)).unwrap_or_else(|_| unreachable!())
    }

    fn rule(code_: &str, priority: i32, discount: Discount) -> RuleSpec {
        RuleSpec {
            code: code(code_),
            rule_name: code_.to_owned(),
            description: String::new(),
            priority,
            active: true,
            schedule: Schedule::always(chrono_tz::Asia::Kolkata),
            conditions: Conditions::default(),
            targets: Vec::new(),
            discount: RuleDiscount::Flat(discount),
            max_discount_per_line: None,
            exclusive: false,
            currency: "INR".into(),
        }
    }

    fn catalogue() -> Catalogue {
        let mut catalogue = Catalogue::default();
        catalogue.add_group("All Item Groups", "");
        catalogue.add_group("Sweets", "All Item Groups");
        catalogue.add_group("Milk Sweets", "Sweets");
        catalogue.add_item("RASGULLA", "Milk Sweets");
        catalogue.add_item("SOAN-PAPDI", "Sweets");
        for (item, rate) in [("RASGULLA", "250"), ("SOAN-PAPDI", "180.5")] {
            catalogue.set_price(
                item,
                BasePrice {
                    price_list: crate::domain::STANDARD_PRICE_LIST.into(),
                    rate: dec(rate),
                    currency: "INR".into(),
                    uom: "Kg".into(),
                },
            );
        }
        catalogue.set_price(
            "RASGULLA",
            BasePrice {
                price_list: "WHOLESALE".into(),
                rate: dec("200"),
                currency: "INR".into(),
                uom: "Kg".into(),
            },
        );
        catalogue
    }

    fn cart(lines: &[(&str, &str)]) -> CartRequest {
        CartRequest {
            customer: CustomerFacts {
                customer: "CUST-0001".into(),
                segments: vec![code("RETAIL")],
                territories: vec!["Bengaluru Urban".into(), "Karnataka".into()],
                price_tier: None,
            },
            channel: Some(code("ECOMMERCE")),
            at: Utc
                .with_ymd_and_hms(2026, 11, 26, 6, 0, 0)
                .single()
                .unwrap_or_default(),
            lines: lines
                .iter()
                .map(|(item, qty)| LineRequest {
                    item_code: (*item).into(),
                    qty: Quantity::parse(qty).unwrap_or_else(|_| unreachable!()),
                    uom: None,
                })
                .collect(),
        }
    }

    fn book(rules: Vec<RuleSpec>) -> RuleBook {
        RuleBook::new(rules, FestivalCalendar::default(), catalogue())
    }

    fn applied(line: &PricedLine) -> Vec<&str> {
        line.applied.iter().map(|a| a.rule.as_str()).collect()
    }

    #[test]
    fn stackable_rules_compound_or_add_as_configured() {
        let rules = book(vec![rule("TEN", 20, pct("10")), rule("FIVE", 10, pct("5"))]);
        let compound = rules
            .quote(&cart(&[("RASGULLA", "1")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        let line = &compound.lines[0];
        assert_eq!(applied(line), ["TEN", "FIVE"]);
        assert_eq!(
            line.unit_price,
            dec("213.75"),
            "250 × 0.9 × 0.95: 14.5 % off"
        );
        let additive = rules
            .quote(&cart(&[("RASGULLA", "1")]), Stacking::Additive)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            additive.lines[0].unit_price,
            dec("212.5"),
            "250 × (1 − 0.15)"
        );
    }

    #[test]
    fn the_best_exclusive_rule_applies_alone_and_the_rest_say_so() {
        let mut festive = rule("FESTIVE", 50, pct("20"));
        festive.exclusive = true;
        let mut loyal = rule("LOYAL", 40, pct("25"));
        loyal.exclusive = true;
        let rules = book(vec![rule("BASE", 90, pct("5")), festive, loyal]);
        let quote = rules
            .quote(&cart(&[("RASGULLA", "2")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        let line = &quote.lines[0];
        assert_eq!(applied(line), ["FESTIVE"]);
        assert_eq!(line.unit_price, dec("200"));
        let mut lost: Vec<(&str, SkipReason, Option<&str>)> = line
            .skipped
            .iter()
            .map(|s| {
                (
                    s.rule.as_str(),
                    s.reason,
                    s.lost_to.as_ref().map(Code::as_str),
                )
            })
            .collect();
        lost.sort();
        assert_eq!(
            lost,
            [
                ("BASE", SkipReason::LostToExclusive, Some("FESTIVE")),
                ("LOYAL", SkipReason::LostToExclusive, Some("FESTIVE")),
            ]
        );
    }

    #[test]
    fn specificity_orders_equal_priorities_and_ties_are_shown_not_fatal() {
        let mut item = rule("ITEM-RULE", 10, pct("1"));
        item.targets = vec![Target::Item(name("RASGULLA"))];
        let mut near = rule("MILK-SWEETS", 10, pct("1"));
        near.targets = vec![Target::ItemGroup(name("Milk Sweets"))];
        let mut far = rule("SWEETS", 10, pct("1"));
        far.targets = vec![Target::ItemGroup(name("Sweets"))];
        let rules = book(vec![
            rule("B-ALL", 10, pct("1")),
            rule("A-ALL", 10, pct("1")),
            far,
            near,
            item,
        ]);
        let quote = rules
            .quote(
                &cart(&[("RASGULLA", "1"), ("SOAN-PAPDI", "1")]),
                Stacking::Compound,
            )
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(
            applied(&quote.lines[0]),
            ["ITEM-RULE", "MILK-SWEETS", "SWEETS", "A-ALL", "B-ALL"]
        );
        assert_eq!(
            quote.lines[0].ties,
            [Tie {
                rules: vec![code("A-ALL"), code("B-ALL")],
                priority: 10
            }]
        );
        // A group rule reaches items in its sub-groups only.
        assert_eq!(applied(&quote.lines[1]), ["SWEETS", "A-ALL", "B-ALL"]);
    }

    #[test]
    fn tiers_switch_exactly_at_their_threshold_and_cart_amount_tiers_see_the_cart() {
        let tier = |min: &str, max: Option<&str>, p: &str| Tier {
            min: dec(min),
            max: max.map(dec),
            discount: pct(p),
        };
        let mut bulk = rule("BULK", 10, pct("0"));
        bulk.discount = RuleDiscount::Tiered(
            Tiers::new(
                TierBasis::Quantity,
                vec![tier("10", Some("50"), "5"), tier("50", None, "10")],
            )
            .unwrap_or_else(|_| unreachable!()),
        );
        let mut spend = rule("SPEND", 5, pct("0"));
        spend.discount = RuleDiscount::Tiered(
            Tiers::new(TierBasis::CartAmount, vec![tier("5000", None, "2")])
                .unwrap_or_else(|_| unreachable!()),
        );
        let rules = book(vec![bulk, spend]);
        let price = |qty: &str| {
            let quote = rules
                .quote(&cart(&[("RASGULLA", qty)]), Stacking::Compound)
                .unwrap_or_else(|_| unreachable!());
            quote.lines[0].clone()
        };
        let below = price("9.999");
        assert!(below.applied.is_empty());
        assert!(below.skipped.iter().all(|s| s.reason == SkipReason::NoTier));
        assert_eq!(price("10").applied[0].tier_min, Some(dec("10")));
        assert_eq!(
            price("19").unit_price,
            dec("237.5"),
            "19 × 250 is below the cart tier"
        );
        assert_eq!(
            price("49").unit_price,
            dec("232.75"),
            "5 % then the 2 % cart tier"
        );
        // 20 × 250 = 5,000: the cart tier starts exactly there.
        assert_eq!(applied(&price("20")), ["BULK", "SPEND"]);
        assert_eq!(price("50").applied[0].discount, pct("10"));
    }

    #[test]
    fn a_cap_limits_what_a_rule_takes_off_the_line() {
        let mut capped = rule("CAPPED", 10, pct("50"));
        capped.max_discount_per_line = Some(dec("100"));
        let rules = book(vec![capped]);
        let quote = rules
            .quote(&cart(&[("RASGULLA", "3")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        let line = &quote.lines[0];
        assert!(line.applied[0].capped);
        assert_eq!(line.applied[0].line_discount, dec("100"));
        assert_eq!(line.net_amount, dec("650"));
        assert_eq!(line.discount_amount, dec("100"));
    }

    #[test]
    fn a_line_on_half_a_paisa_rounds_up_once() {
        // 180.5 × 0.5 % off = 179.5975 per unit; 3 units = 538.7925 → 538.79;
        // 1 unit at 180.5 − 0.5 % … choose 1.3 kg: 179.5975 × 1.3 = 233.47675 → 233.48.
        let rules = book(vec![rule("HALF", 10, pct("0.5"))]);
        let quote = rules
            .quote(&cart(&[("SOAN-PAPDI", "1.3")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        let line = &quote.lines[0];
        assert_eq!(line.unit_price, dec("179.5975"));
        assert_eq!(line.net_amount, dec("233.48"));
        assert_eq!(line.gross_amount, dec("234.65"));
        assert_eq!(round_money(dec("0.005")), dec("0.01"));
        assert_eq!(round_money(dec("0.0049")), dec("0"));
        assert_eq!(quote.total, dec("233.48"));
        assert_eq!(quote.total_discount, dec("1.17"));
    }

    #[test]
    fn every_skipped_rule_says_why() {
        let window = |code_: &str, schedule: Schedule| RuleSpec {
            schedule,
            ..rule(code_, 10, pct("1"))
        };
        let conditions = |code_: &str, conditions: Conditions| RuleSpec {
            conditions,
            ..rule(code_, 10, pct("1"))
        };
        let kolkata = Schedule::always(chrono_tz::Asia::Kolkata);
        let time = |h| chrono::NaiveTime::from_hms_opt(h, 0, 0).unwrap_or_default();
        let rules = book(vec![
            window(
                "EXPIRED",
                Schedule {
                    valid_to: chrono::NaiveDate::from_ymd_opt(2026, 1, 1),
                    ..kolkata.clone()
                },
            ),
            window(
                "SUNDAYS",
                Schedule {
                    days: crate::domain::DaySet::of([chrono::Weekday::Sun]),
                    ..kolkata.clone()
                },
            ),
            window(
                "EVENINGS",
                Schedule {
                    time_window: TimeWindow::new(time(18), time(22)).ok(),
                    ..kolkata.clone()
                },
            ),
            window(
                "HOLI",
                Schedule {
                    festivals: vec![code("HOLI")],
                    ..kolkata
                },
            ),
            conditions(
                "VIP",
                Conditions {
                    segments: vec![code("VIP")],
                    ..Conditions::default()
                },
            ),
            conditions(
                "MUMBAI",
                Conditions {
                    territories: vec![name("Mumbai")],
                    ..Conditions::default()
                },
            ),
            conditions(
                "APP",
                Conditions {
                    channels: vec![code("MOBILE-APP")],
                    ..Conditions::default()
                },
            ),
            conditions(
                "BIG",
                Conditions {
                    min_qty: Some(dec("5")),
                    ..Conditions::default()
                },
            ),
            conditions(
                "SMALL",
                Conditions {
                    max_qty: Some(dec("0.5")),
                    ..Conditions::default()
                },
            ),
            conditions(
                "RICH",
                Conditions {
                    min_amount: Some(dec("1000")),
                    ..Conditions::default()
                },
            ),
            conditions(
                "CHEAP",
                Conditions {
                    max_amount: Some(dec("100")),
                    ..Conditions::default()
                },
            ),
            RuleSpec {
                currency: "USD".into(),
                ..rule("DOLLARS", 10, pct("1"))
            },
            rule("ALWAYS", 10, pct("1")),
        ]);
        let quote = rules
            .quote(&cart(&[("RASGULLA", "1")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        let line = &quote.lines[0];
        assert_eq!(applied(line), ["ALWAYS"]);
        let mut reasons: Vec<(&str, SkipReason)> = line
            .skipped
            .iter()
            .map(|s| (s.rule.as_str(), s.reason))
            .collect();
        reasons.sort();
        assert_eq!(
            reasons,
            [
                ("APP", SkipReason::ChannelMismatch),
                ("BIG", SkipReason::BelowMinQty),
                ("CHEAP", SkipReason::AboveMaxAmount),
                ("DOLLARS", SkipReason::CurrencyMismatch),
                ("EVENINGS", SkipReason::OutsideTimeWindow),
                ("EXPIRED", SkipReason::OutsideValidity),
                ("HOLI", SkipReason::OutsideFestival),
                ("MUMBAI", SkipReason::TerritoryMismatch),
                ("RICH", SkipReason::BelowMinAmount),
                ("SMALL", SkipReason::AboveMaxQty),
                ("SUNDAYS", SkipReason::WrongDay),
                ("VIP", SkipReason::SegmentMismatch),
            ]
        );
    }

    #[test]
    fn prices_never_go_below_zero_and_the_tier_price_list_wins() {
        let off =
            Discount::new(DiscountKind::AmountOff, dec("150")).unwrap_or_else(|_| unreachable!());
        let rules = book(vec![rule("OFF-A", 10, off), rule("OFF-B", 9, off)]);
        let mut wholesale = cart(&[("RASGULLA", "1"), ("SOAN-PAPDI", "1")]);
        wholesale.customer.price_tier = Some("WHOLESALE".into());
        let quote = rules
            .quote(&wholesale, Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(quote.lines[0].price_list, "WHOLESALE");
        assert_eq!(quote.lines[0].base_rate, dec("200"));
        assert_eq!(quote.lines[0].unit_price, Decimal::ZERO);
        assert_eq!(
            quote.lines[1].price_list,
            crate::domain::STANDARD_PRICE_LIST
        );
        let additive = rules
            .quote(&wholesale, Stacking::Additive)
            .unwrap_or_else(|_| unreachable!());
        assert_eq!(additive.lines[0].unit_price, Decimal::ZERO);
    }

    #[test]
    fn rule_discounts_add_up_to_the_rounded_line_discount() {
        let third = Discount::new(DiscountKind::AmountOff, dec("0.3333"))
            .unwrap_or_else(|_| unreachable!());
        let rules = book(vec![
            rule("A", 3, third),
            rule("B", 2, third),
            rule("C", 1, third),
        ]);
        let quote = rules
            .quote(&cart(&[("SOAN-PAPDI", "1")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        let line = &quote.lines[0];
        assert_eq!(line.discount_amount, dec("1"), "0.9999 off, rounded once");
        let shares = line.rule_discounts();
        assert_eq!(
            shares.iter().map(|s| s.1).sum::<Decimal>(),
            line.discount_amount
        );
        assert_eq!(
            shares.iter().map(|s| s.1).collect::<Vec<_>>(),
            [dec("0.34"), dec("0.33"), dec("0.33")]
        );
        let nothing = book(vec![rule("ZERO", 1, pct("0"))]);
        let quote = nothing
            .quote(&cart(&[("SOAN-PAPDI", "1")]), Stacking::Compound)
            .unwrap_or_else(|_| unreachable!());
        assert!(
            quote.lines[0].rule_discounts().is_empty(),
            "a rule that took nothing is not a use"
        );
    }

    #[test]
    fn unknown_items_and_units_name_the_line() {
        let rules = book(Vec::new());
        assert_eq!(
            rules
                .quote(
                    &cart(&[("RASGULLA", "1"), ("LADDU", "1")]),
                    Stacking::Compound
                )
                .err(),
            Some(QuoteError::UnknownItem {
                line: 1,
                item: "LADDU".into()
            })
        );
        let mut boxes = cart(&[("RASGULLA", "1")]);
        boxes.lines[0].uom = Some("Box".into());
        assert!(matches!(
            rules.quote(&boxes, Stacking::Compound),
            Err(QuoteError::UomMismatch { line: 0, .. })
        ));
    }
}
