//! Expiry classification. A batch's days to expiry on a date are
//! `expiry_date − date`. With the default thresholds (critical 7, warning
//! 30), both inclusive:
//!
//! | days to expiry | level    |
//! |----------------|----------|
//! | ≤ 0            | expired (the expiry date is the first unusable day) |
//! | 1 – 7          | critical |
//! | 8 – 30         | warning  |
//! | ≥ 31           | ok       |

use std::str::FromStr;

use chrono::NaiveDate;
use harsha_types::ValueError;
use serde::Serialize;

/// How close a batch is to expiry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum ExpiryLevel {
    /// Past its expiry date (or on it).
    Expired,
    /// Within the critical threshold.
    Critical,
    /// Within the warning threshold.
    Warning,
    /// Further off.
    Ok,
}

impl ExpiryLevel {
    /// The stored name (of alert levels).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expired => "Expired",
            Self::Critical => "Critical",
            Self::Warning => "Warning",
            Self::Ok => "Ok",
        }
    }
}

impl FromStr for ExpiryLevel {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "Expired" => Ok(Self::Expired),
            "Critical" => Ok(Self::Critical),
            "Warning" => Ok(Self::Warning),
            "Ok" => Ok(Self::Ok),
            other => Err(ValueError(format!("unknown expiry level {other:?}"))),
        }
    }
}

/// The alert thresholds of an item, in days to expiry (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct ExpiryThresholds {
    critical_days: u32,
    warning_days: u32,
}

impl Default for ExpiryThresholds {
    /// The seed's thresholds: critical ≤ 7 days, warning ≤ 30 days.
    fn default() -> Self {
        Self {
            critical_days: 7,
            warning_days: 30,
        }
    }
}

impl ExpiryThresholds {
    /// Thresholds with `critical_days < warning_days ≤ 3650`.
    pub fn new(critical_days: u32, warning_days: u32) -> Result<Self, ValueError> {
        if critical_days >= warning_days {
            return Err(ValueError(format!(
                "the critical threshold ({critical_days} days) must be below the warning threshold ({warning_days} days)"
            )));
        }
        if warning_days > 3650 {
            return Err(ValueError(format!(
                "a warning threshold of {warning_days} days is more than ten years"
            )));
        }
        Ok(Self {
            critical_days,
            warning_days,
        })
    }

    /// Days to expiry at or below which a batch is critical.
    pub fn critical_days(self) -> u32 {
        self.critical_days
    }

    /// Days to expiry at or below which a batch is at least a warning.
    pub fn warning_days(self) -> u32 {
        self.warning_days
    }

    /// The level of a batch expiring on `expiry_date`, seen on `as_of`.
    pub fn classify(self, expiry_date: NaiveDate, as_of: NaiveDate) -> ExpiryLevel {
        let days = days_to_expiry(expiry_date, as_of);
        if days <= 0 {
            ExpiryLevel::Expired
        } else if days <= i64::from(self.critical_days) {
            ExpiryLevel::Critical
        } else if days <= i64::from(self.warning_days) {
            ExpiryLevel::Warning
        } else {
            ExpiryLevel::Ok
        }
    }
}

/// Days from `as_of` to `expiry_date` (negative once past).
pub fn days_to_expiry(expiry_date: NaiveDate, as_of: NaiveDate) -> i64 {
    (expiry_date - as_of).num_days()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_boundaries_are_inclusive() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap_or_default();
        let level =
            |days| ExpiryThresholds::default().classify(as_of + chrono::Days::new(days), as_of);
        assert_eq!(
            ExpiryThresholds::default().classify(as_of, as_of),
            ExpiryLevel::Expired
        );
        assert_eq!(
            ExpiryThresholds::default().classify(as_of - chrono::Days::new(3), as_of),
            ExpiryLevel::Expired
        );
        assert_eq!(level(1), ExpiryLevel::Critical);
        assert_eq!(level(7), ExpiryLevel::Critical);
        assert_eq!(level(8), ExpiryLevel::Warning);
        assert_eq!(level(30), ExpiryLevel::Warning);
        assert_eq!(level(31), ExpiryLevel::Ok);
    }

    #[test]
    fn thresholds_must_be_ordered() {
        assert!(ExpiryThresholds::new(7, 7).is_err());
        assert!(ExpiryThresholds::new(10, 5).is_err());
        assert!(ExpiryThresholds::new(0, 1).is_ok());
        assert!(ExpiryThresholds::new(3, 4000).is_err());
    }
}
