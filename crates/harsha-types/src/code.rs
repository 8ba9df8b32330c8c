//! Codes: short upper-case identifiers chosen by people (segments, price
//! tiers, pricing rules, festivals, channels).

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{ValueError, check_text};

/// The longest code ERPNext stores in a `varchar(140)` column.
const MAX_NAME: usize = 140;

/// A code (segment, price tier, pricing rule, festival, channel): 1 to 140
/// characters of `A-Z`, `0-9`, `-` and `_`. Lower-case letters are accepted and upper-cased, so `retail`
/// and `RETAIL` are one code.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Code(String);

impl Code {
    /// Checks, upper-cases and wraps a code.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        check_text(value, MAX_NAME, "a code")?;
        let code = value.to_ascii_uppercase();
        if let Some(bad) = code
            .chars()
            .find(|c| !(c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '-' || *c == '_'))
        {
            return Err(ValueError(format!(
                "a code may hold only letters, digits, '-' and '_', not {bad:?}"
            )));
        }
        Ok(Self(code))
    }

    /// The code.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shown as the quoted text, as a `String` would be, so messages read
/// `"CUST-0001" not found`.
impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for Code {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<Code> for String {
    fn from(code: Code) -> Self {
        code.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_upper_cased_and_restricted() {
        assert_eq!(
            Code::parse("retail-b2c").map(|c| c.0),
            Ok("RETAIL-B2C".into())
        );
        assert!(Code::parse("").is_err());
        assert!(Code::parse("RE TAIL").is_err());
        assert!(Code::parse("ÉLITE").is_err());
        assert!(Code::parse(&"A".repeat(141)).is_err());
        assert!(Code::parse(&"A".repeat(140)).is_ok());
    }
}
