//! Validated names: the systems Harsha synchronises, the entity types its
//! events carry, and target names.

use std::fmt;

/// A value that cannot be used, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);

macro_rules! systems {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A system whose data the Sync service keeps in agreement.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum System {
            $(#[doc = $doc] $variant,)*
        }

        impl System {
            /// Every system.
            pub const ALL: &'static [System] = &[$(Self::$variant),*];

            /// Its name, as stored and on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The system named `value`.
            pub fn parse(value: &str) -> Result<Self, ValueError> {
                match value {
                    $($name => Ok(Self::$variant),)*
                    "" => Err(ValueError("a system is required".into())),
                    other => Err(ValueError(format!(
                        "unknown system {other:?}: expected one of {}",
                        Self::ALL.iter().map(|s| s.as_str()).collect::<Vec<_>>().join(", ")
                    ))),
                }
            }
        }
    };
}

systems! {
    Erpnext => "erpnext", "ERPNext and the mesh's ERP services (Customer, Inventory, Pricing, Order).";
    Crm => "crm", "The CRM.";
    Ecommerce => "ecommerce", "The e-commerce platform.";
    Mobile => "mobile", "The mobile app.";
    Warehouse => "warehouse", "The warehouse management system.";
    Analytics => "analytics", "Analytics and reporting.";
}

impl fmt::Display for System {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The entity types events may carry: the ERP services' own (as their
/// outbox names them) and the master data other systems share.
pub const ENTITY_TYPES: &[&str] = &[
    "Batch",
    "Customer",
    "FestivalWindow",
    "Item",
    "ItemExpiryPolicy",
    "ItemPrice",
    "ItemWarehouseOptimization",
    "Order",
    "PriceQuote",
    "PricingRule",
    "ProcurementTrigger",
    "Segment",
    "SegmentAssignment",
    "StockAllocation",
    "StockLevel",
    "StorageConditionReading",
    "TerritoryMapping",
];

/// An entity type from [`ENTITY_TYPES`].
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct EntityType(String);

impl EntityType {
    /// The entity type named `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        if value.is_empty() {
            return Err(ValueError("an entity type is required".into()));
        }
        if ENTITY_TYPES.contains(&value) {
            Ok(Self(value.to_owned()))
        } else {
            Err(ValueError(format!(
                "unknown entity type {value:?}: expected one of {}",
                ENTITY_TYPES.join(", ")
            )))
        }
    }

    /// An entity type relayed from the ERP outbox, trusted as written
    /// there (a newer service may name a type this build does not list).
    pub fn relayed(value: &str) -> Self {
        Self(value.to_owned())
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for EntityType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A target's name: 1–63 lower-case letters, digits and `-`, starting with
/// a letter.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TargetName(String);

impl TargetName {
    /// The name `value`, if it is one.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let ok = (1..=63).contains(&value.len())
            && value.starts_with(|c: char| c.is_ascii_lowercase())
            && value
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        if ok {
            Ok(Self(value.to_owned()))
        } else if value.is_empty() {
            Err(ValueError("a target name is required".into()))
        } else {
            Err(ValueError(format!(
                "{value:?} is not a target name: 1-63 lower-case letters, digits and '-', starting with a letter"
            )))
        }
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TargetName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks a free-text key (entity key, idempotency key, correlation id):
/// not blank, at most `max` characters, no control characters.
pub fn check_key(value: &str, max: usize) -> Result<(), ValueError> {
    if value.trim().is_empty() {
        return Err(ValueError("a value is required".into()));
    }
    if value.chars().count() > max {
        return Err(ValueError(format!("at most {max} characters")));
    }
    if value.chars().any(char::is_control) {
        return Err(ValueError("control characters are not allowed".into()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_and_entity_types_are_checked_by_name() {
        assert_eq!(System::parse("crm"), Ok(System::Crm));
        assert!(System::parse("CRM").is_err());
        assert!(
            System::parse("sap")
                .err()
                .is_some_and(|e| e.0.contains("erpnext"))
        );
        assert!(EntityType::parse("Batch").is_ok());
        assert!(EntityType::parse("batch").is_err());
        assert!(EntityType::parse("").is_err());
    }

    #[test]
    fn target_names_are_dns_like() {
        assert!(TargetName::parse("crm-webhook-1").is_ok());
        for bad in ["", "CRM", "1crm", "crm_hook", &"a".repeat(64)] {
            assert!(TargetName::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn keys_must_be_printable_and_short() {
        assert!(check_key("CUST-0001", 140).is_ok());
        assert!(check_key("  ", 140).is_err());
        assert!(check_key("a\nb", 140).is_err());
        assert!(check_key(&"x".repeat(141), 140).is_err());
    }
}
