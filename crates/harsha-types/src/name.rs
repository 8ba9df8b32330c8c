//! ERPNext document names and the acting user.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ValueError;

/// The longest name ERPNext stores in a `varchar(140)` column.
const MAX_NAME: usize = 140;

/// Checks that `value` is 1 to `max` characters (not bytes) with no control
/// characters; `what` names the value in the error.
pub fn check_text(value: &str, max: usize, what: &str) -> Result<(), ValueError> {
    if value.is_empty() {
        return Err(ValueError(format!("{what} must not be empty")));
    }
    let chars = value.chars().count();
    if chars > max {
        return Err(ValueError(format!(
            "{what} is {chars} characters long; the limit is {max}"
        )));
    }
    if value.chars().any(char::is_control) {
        return Err(ValueError(format!(
            "{what} must not contain control characters"
        )));
    }
    Ok(())
}

/// The `name` of an ERPNext document (a customer, item, warehouse or
/// territory): 1 to 140 characters, no control characters, no surrounding
/// spaces.
#[derive(Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DocName(String);

impl DocName {
    /// Checks and wraps a document name.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        check_text(value, MAX_NAME, "a name")?;
        if value.trim() != value {
            return Err(ValueError(
                "a name must not start or end with spaces".into(),
            ));
        }
        Ok(Self(value.to_owned()))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Shown as the quoted text, as a `String` would be, so messages read
/// `"CUST-0001" not found`.
impl fmt::Debug for DocName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for DocName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for DocName {
    type Error = ValueError;

    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::parse(&value)
    }
}

impl From<DocName> for String {
    fn from(name: DocName) -> Self {
        name.0
    }
}

/// Who made a change, recorded as ERPNext's `owner` / `modified_by`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor(String);

impl Actor {
    /// ERPNext's system user, for changes with no authenticated user.
    pub fn system() -> Self {
        Self("Administrator".into())
    }

    /// An actor named by the caller; an invalid name falls back to
    /// [`Actor::system`] rather than failing the change.
    pub fn named(name: &str) -> Self {
        DocName::parse(name).map_or_else(|_| Self::system(), |name| Self(name.0))
    }

    /// The user's name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_refuse_padding_and_control_characters() {
        assert!(DocName::parse("CUST-0001").is_ok());
        assert!(DocName::parse("Sweet Treats Pvt. Ltd.").is_ok());
        assert!(DocName::parse(" CUST").is_err());
        assert!(DocName::parse("a\nb").is_err());
        assert!(DocName::parse("").is_err());
        assert!(DocName::parse(&"x".repeat(141)).is_err());
    }

    #[test]
    fn an_invalid_actor_falls_back_to_the_system_user() {
        assert_eq!(Actor::named("ops@harsha").as_str(), "ops@harsha");
        assert_eq!(Actor::named(" bad").as_str(), "Administrator");
    }
}
