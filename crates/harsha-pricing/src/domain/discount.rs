//! What a rule takes off: a percentage, an amount off each unit, or a
//! fixed unit price, optionally by tiers of quantity or amount; and how the
//! discounts of several rules combine.

use std::str::FromStr;

use harsha_types::ValueError;
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// The kinds of discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum DiscountKind {
    /// A percentage of the price, 0 to 100.
    Percentage,
    /// An amount off each unit.
    AmountOff,
    /// The unit price becomes this amount.
    FixedPrice,
}

impl DiscountKind {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Percentage => "Percentage",
            Self::AmountOff => "Amount Off",
            Self::FixedPrice => "Fixed Price",
        }
    }
}

impl FromStr for DiscountKind {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "Percentage" => Ok(Self::Percentage),
            "Amount Off" => Ok(Self::AmountOff),
            "Fixed Price" => Ok(Self::FixedPrice),
            other => Err(ValueError(format!("unknown discount kind {other:?}"))),
        }
    }
}

/// A validated discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Discount {
    kind: DiscountKind,
    value: Decimal,
}

impl Discount {
    /// A discount: a percentage between 0 and 100, or a non-negative
    /// amount with at most 4 decimal places.
    pub fn new(kind: DiscountKind, value: Decimal) -> Result<Self, ValueError> {
        if value < Decimal::ZERO {
            return Err(ValueError(format!("must not be negative, not {value}")));
        }
        if kind == DiscountKind::Percentage && value > Decimal::ONE_HUNDRED {
            return Err(ValueError(format!(
                "a percentage must be between 0 and 100, not {value}"
            )));
        }
        if value.scale() > 4 {
            return Err(ValueError("has at most 4 decimal places".into()));
        }
        if value > harsha_types::max_quantity() {
            return Err(ValueError(format!("{value} is too large")));
        }
        Ok(Self {
            kind,
            value: value.normalize(),
        })
    }

    /// The kind.
    pub fn kind(self) -> DiscountKind {
        self.kind
    }

    /// The percentage or amount.
    pub fn value(self) -> Decimal {
        self.value
    }

    /// A line's amount after this discount, from `amount` for `qty` units:
    /// a percentage of the amount, an amount off each unit, or the fixed
    /// unit price for each unit (never raising the amount, never below 0).
    pub fn apply_to_line(self, amount: Decimal, qty: Decimal) -> Decimal {
        let after = match self.kind {
            DiscountKind::Percentage => amount - amount * self.value / Decimal::ONE_HUNDRED,
            DiscountKind::AmountOff => amount - self.value * qty,
            DiscountKind::FixedPrice => (self.value * qty).min(amount),
        };
        after.max(Decimal::ZERO)
    }

    /// The unit price after this discount, from `price` (never below 0).
    pub fn apply_to(self, price: Decimal) -> Decimal {
        let after = match self.kind {
            DiscountKind::Percentage => price - price * self.value / Decimal::ONE_HUNDRED,
            DiscountKind::AmountOff => price - self.value,
            DiscountKind::FixedPrice => self.value.min(price),
        };
        after.max(Decimal::ZERO)
    }
}

/// What tiers are measured on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum TierBasis {
    /// The line's quantity.
    Quantity,
    /// The line's amount at base price.
    LineAmount,
    /// The whole cart's amount at base prices.
    CartAmount,
}

impl TierBasis {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Quantity => "Quantity",
            Self::LineAmount => "Line Amount",
            Self::CartAmount => "Cart Amount",
        }
    }
}

impl FromStr for TierBasis {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "Quantity" => Ok(Self::Quantity),
            "Line Amount" => Ok(Self::LineAmount),
            "Cart Amount" => Ok(Self::CartAmount),
            other => Err(ValueError(format!("unknown tier basis {other:?}"))),
        }
    }
}

/// One tier: from `min` (inclusive) up to `max` (exclusive; open when
/// `None`), this discount.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Tier {
    /// The lowest measure in the tier.
    pub min: Decimal,
    /// The first measure above the tier.
    pub max: Option<Decimal>,
    /// The tier's discount.
    pub discount: Discount,
}

/// Tiers in ascending order that do not overlap.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tiers {
    basis: TierBasis,
    tiers: Vec<Tier>,
}

impl Tiers {
    /// Checks that there is at least one tier, that each range is non-empty
    /// and that the ranges do not overlap (they are sorted by `min`); the
    /// error names the offending tier by its position.
    pub fn new(basis: TierBasis, tiers: Vec<Tier>) -> Result<Self, (usize, ValueError)> {
        if tiers.is_empty() {
            return Err((0, ValueError("at least one tier is required".into())));
        }
        let places = match basis {
            TierBasis::Quantity => harsha_types::MAX_QUANTITY_SCALE,
            TierBasis::LineAmount | TierBasis::CartAmount => super::MONEY_INPUT_SCALE,
        };
        for (i, tier) in tiers.iter().enumerate() {
            super::check_amount(tier.min, places)
                .map_err(|e| (i, ValueError(format!("min: {e}"))))?;
            if let Some(max) = tier.max {
                super::check_amount(max, places)
                    .map_err(|e| (i, ValueError(format!("max: {e}"))))?;
                if max <= tier.min {
                    return Err((i, ValueError("max must be above min".into())));
                }
            }
        }
        // Sorted by min, remembering where each tier was in the request so
        // that an error names the tier the caller sent.
        let mut order: Vec<usize> = (0..tiers.len()).collect();
        order.sort_by_key(|&i| tiers[i].min);
        for pair in order.windows(2) {
            let (lower, upper) = (tiers[pair[0]], tiers[pair[1]]);
            match lower.max {
                None => {
                    return Err((
                        pair[0],
                        ValueError("an open-ended tier must be the last".into()),
                    ));
                }
                Some(max) if max > upper.min => {
                    return Err((
                        pair[1],
                        ValueError(format!(
                            "the tier from {} overlaps the tier from {} (up to {max})",
                            upper.min, lower.min
                        )),
                    ));
                }
                Some(_) => {}
            }
        }
        let tiers = order.into_iter().map(|i| tiers[i]).collect();
        Ok(Self { basis, tiers })
    }

    /// What the tiers measure.
    pub fn basis(&self) -> TierBasis {
        self.basis
    }

    /// The tiers, ascending.
    pub fn tiers(&self) -> &[Tier] {
        &self.tiers
    }

    /// The tier `measure` falls in.
    pub fn tier_for(&self, measure: Decimal) -> Option<&Tier> {
        self.tiers
            .iter()
            .find(|tier| tier.min <= measure && tier.max.is_none_or(|max| measure < max))
    }
}

/// A rule's discount: one for every sale, or by tiers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum RuleDiscount {
    /// The same discount whatever the quantity or amount.
    Flat(Discount),
    /// A discount per tier.
    Tiered(Tiers),
}

/// How stackable rules combine on one line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum Stacking {
    /// Each rule applies to the price the previous left: 10 % then 5 % is
    /// 14.5 % off.
    Compound,
    /// Each rule's discount is worked out on the base price and the
    /// discounts add up: 10 % and 5 % is 15 % off.
    Additive,
}

impl FromStr for Stacking {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value.to_ascii_lowercase().as_str() {
            "compound" => Ok(Self::Compound),
            "additive" => Ok(Self::Additive),
            other => Err(ValueError(format!(
                "stacking must be compound or additive, not {other:?}"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(value: &str) -> Decimal {
        value.parse().unwrap_or_default()
    }

    fn pct(value: &str) -> Discount {
        Discount::new(DiscountKind::Percentage, dec(value)).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn discounts_are_bounded_and_never_go_below_zero() {
        assert!(Discount::new(DiscountKind::Percentage, dec("100.01")).is_err());
        assert!(Discount::new(DiscountKind::Percentage, dec("-1")).is_err());
        assert!(Discount::new(DiscountKind::AmountOff, dec("-0.5")).is_err());
        assert_eq!(pct("10").apply_to(dec("80")), dec("72"));
        let off =
            Discount::new(DiscountKind::AmountOff, dec("90")).unwrap_or_else(|_| unreachable!());
        assert_eq!(off.apply_to(dec("80")), Decimal::ZERO);
        let fixed =
            Discount::new(DiscountKind::FixedPrice, dec("99")).unwrap_or_else(|_| unreachable!());
        assert_eq!(
            fixed.apply_to(dec("80")),
            dec("80"),
            "a fixed price never raises the price"
        );
    }

    #[test]
    fn tiers_must_not_overlap_and_are_found_at_their_boundaries() {
        let tier = |min: &str, max: Option<&str>, p: &str| Tier {
            min: dec(min),
            max: max.map(dec),
            discount: pct(p),
        };
        let tiers = Tiers::new(
            TierBasis::Quantity,
            vec![tier("50", None, "10"), tier("10", Some("50"), "5")],
        )
        .unwrap_or_else(|_| unreachable!());
        assert!(tiers.tier_for(dec("9.999")).is_none());
        assert_eq!(
            tiers.tier_for(dec("10")).map(|t| t.discount),
            Some(pct("5"))
        );
        assert_eq!(
            tiers.tier_for(dec("49.99")).map(|t| t.discount),
            Some(pct("5"))
        );
        assert_eq!(
            tiers.tier_for(dec("50")).map(|t| t.discount),
            Some(pct("10"))
        );
        let overlapping = Tiers::new(
            TierBasis::Quantity,
            vec![tier("10", Some("60"), "5"), tier("50", None, "10")],
        );
        assert_eq!(overlapping.err().map(|e| e.0), Some(1));
        let open_first = Tiers::new(
            TierBasis::Quantity,
            vec![tier("10", None, "5"), tier("50", None, "10")],
        );
        assert!(open_first.is_err());
        assert!(Tiers::new(TierBasis::Quantity, vec![tier("5", Some("5"), "1")]).is_err());
        // Sent out of order, the error still names the tier as sent.
        let unordered = Tiers::new(
            TierBasis::Quantity,
            vec![tier("50", None, "10"), tier("10", Some("60"), "5")],
        );
        assert_eq!(unordered.err().map(|e| e.0), Some(0));
        // Amounts are bounded: at most 4 places for money, 9 for quantities.
        assert!(Tiers::new(TierBasis::LineAmount, vec![tier("0.00001", None, "1")]).is_err());
        assert!(Tiers::new(TierBasis::Quantity, vec![tier("0.000000001", None, "1")]).is_ok());
        assert!(
            Tiers::new(
                TierBasis::Quantity,
                vec![tier("0", Some("0.0000000001"), "1")]
            )
            .is_err()
        );
        assert!(Tiers::new(TierBasis::Quantity, vec![tier("1000000000", None, "1")]).is_err());
    }
}
