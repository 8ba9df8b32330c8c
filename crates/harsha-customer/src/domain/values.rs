//! Validated value types: each checks its input once, when built, so the
//! rest of the service cannot hold an invalid one.

use harsha_types::{ValueError, check_text};
use serde::Serialize;

/// The longest name ERPNext stores in a `varchar(140)` column.
const MAX_NAME: usize = 140;

/// A segment or price-tier code (see [`harsha_types::Code`]).
pub type SegmentCode = harsha_types::Code;

/// A segment's display name: 1 to 140 characters, trimmed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SegmentName(String);

impl SegmentName {
    /// Trims, checks and wraps a display name.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let value = value.trim();
        check_text(value, MAX_NAME, "a segment name")?;
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Free text of at most 1000 characters (may be empty).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Description(String);

impl Description {
    /// The longest description accepted.
    pub const MAX: usize = 1000;

    /// Trims, checks and wraps a description.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let value = value.trim();
        let chars = value.chars().count();
        if chars > Self::MAX {
            return Err(ValueError(format!(
                "the description is {chars} characters long; the limit is {}",
                Self::MAX
            )));
        }
        Ok(Self(value.to_owned()))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A segment's rank, 0 to 1000; higher wins.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Priority(i32);

impl Priority {
    /// Checks and wraps a priority.
    pub fn new(value: i32) -> Result<Self, ValueError> {
        if (0..=1000).contains(&value) {
            Ok(Self(value))
        } else {
            Err(ValueError(format!(
                "priority must be between 0 and 1000, not {value}"
            )))
        }
    }

    /// The rank.
    pub fn get(self) -> i32 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_names_are_trimmed_and_bounded_by_characters_not_bytes() {
        assert_eq!(
            SegmentName::parse("  Festival Buyers ").map(|n| n.0),
            Ok("Festival Buyers".into())
        );
        assert!(SegmentName::parse("   ").is_err());
        assert!(SegmentName::parse(&"मिठाई".repeat(28)).is_ok());
        assert!(SegmentName::parse(&"x".repeat(141)).is_err());
        assert!(Description::parse(&"x".repeat(1001)).is_err());
    }

    #[test]
    fn priority_is_bounded() {
        assert!(Priority::new(-1).is_err());
        assert!(Priority::new(1001).is_err());
        assert_eq!(Priority::new(1000).map(Priority::get), Ok(1000));
    }
}
