//! Exact quantities. Stock and order quantities are decimals (kilograms,
//! boxes, litres), never floats, with at most 9 fractional digits. They are
//! stored as `decimal(21,9)` on MariaDB and as a 64-bit count of billionths
//! on SQLite, so the largest quantity either engine holds exactly is just
//! under ten thousand million; [`max_quantity`] keeps every quantity (and
//! every balance) below one thousand million.

use std::{fmt, str::FromStr};

use rust_decimal::Decimal;
use serde::Serialize;

use crate::ValueError;

/// The most fractional digits a quantity may have.
pub const MAX_QUANTITY_SCALE: u32 = 9;

/// The largest quantity or balance the services accept:
/// 999,999,999.999999999.
pub fn max_quantity() -> Decimal {
    Decimal::from_i128_with_scale(999_999_999_999_999_999, MAX_QUANTITY_SCALE)
}

/// A positive, exact quantity of at most 9 integer and 9 fractional
/// digits. Zero and negative quantities cannot be built: a movement's sign
/// comes from its kind, not from the quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Quantity(Decimal);

impl Quantity {
    /// Checks and wraps a decimal.
    pub fn new(value: Decimal) -> Result<Self, ValueError> {
        if value <= Decimal::ZERO {
            return Err(ValueError(format!(
                "a quantity must be greater than zero, not {value}"
            )));
        }
        let value = value.normalize();
        if value.scale() > MAX_QUANTITY_SCALE {
            return Err(ValueError(format!(
                "a quantity has at most {MAX_QUANTITY_SCALE} decimal places, not {}",
                value.scale()
            )));
        }
        if value > max_quantity() {
            return Err(ValueError(format!(
                "{value} is more than a quantity can be"
            )));
        }
        Ok(Self(value))
    }

    /// Parses a decimal string such as `"12.5"` (no exponent, no grouping).
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let decimal = Decimal::from_str_exact(value.trim())
            .map_err(|_| ValueError(format!("{value:?} is not a decimal number")))?;
        Self::new(decimal)
    }

    /// The decimal.
    pub fn get(self) -> Decimal {
        self.0
    }
}

impl FromStr for Quantity {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Self::parse(value)
    }
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_positive_exact_and_bounded() {
        assert_eq!(
            Quantity::parse("12.50").map(|q| q.to_string()),
            Ok("12.5".into())
        );
        assert!(Quantity::parse("0").is_err());
        assert!(Quantity::parse("-1").is_err());
        assert!(Quantity::parse("1e3").is_err());
        assert!(Quantity::parse("abc").is_err());
        assert!(Quantity::parse("0.0000000001").is_err());
        assert!(Quantity::parse("0.000000001").is_ok());
        assert!(Quantity::parse("999999999.999999999").is_ok());
        assert!(Quantity::parse("1000000000").is_err());
    }
}
