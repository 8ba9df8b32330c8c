//! Validated values of the Auth service: user names, email addresses, roles
//! and the scopes they grant, and rate-limit plan names.

use std::{fmt, str::FromStr};

use harsha_types::ValueError;
use serde::{Deserialize, Serialize};

/// A login name: 3 to 64 characters of `a-z`, `0-9`, `.`, `_` and `-`,
/// starting with a letter; upper case is folded to lower case.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(transparent)]
pub struct Username(String);

impl Username {
    /// Checks, folds and wraps a user name.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let name = value.trim().to_ascii_lowercase();
        let length = name.chars().count();
        if !(3..=64).contains(&length) {
            return Err(ValueError(format!(
                "must be 3 to 64 characters, not {length}"
            )));
        }
        if !name.starts_with(|c: char| c.is_ascii_lowercase()) {
            return Err(ValueError("must start with a letter".into()));
        }
        if let Some(bad) = name.chars().find(|c| {
            !(c.is_ascii_lowercase() || c.is_ascii_digit() || matches!(c, '.' | '_' | '-'))
        }) {
            return Err(ValueError(format!(
                "may hold only a-z, 0-9, '.', '_' and '-', not {bad:?}"
            )));
        }
        Ok(Self(name))
    }

    /// The name.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Username {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An email address, checked for shape (one `@`, a dotted domain, at most
/// 254 characters) and stored with its domain in lower case.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Email(String);

impl Email {
    /// Checks and wraps an address.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        let value = value.trim();
        let invalid = || ValueError(format!("{value:?} is not an email address"));
        if value.len() > 254 || value.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = value.split_once('@').ok_or_else(invalid)?;
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains('@')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(invalid());
        }
        Ok(Self(format!("{local}@{}", domain.to_ascii_lowercase())))
    }

    /// The address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

macro_rules! scopes {
    ($($variant:ident => $name:literal, $doc:literal;)*) => {
        /// A permission an RPC requires. Roles grant sets of scopes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Scope {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl Scope {
            /// Every scope.
            pub const ALL: &'static [Scope] = &[$(Scope::$variant),*];

            /// The scope's name, as in tokens and keys.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// What the scope grants.
            pub fn description(self) -> &'static str {
                match self {
                    $(Self::$variant => $doc,)*
                }
            }
        }

        impl FromStr for Scope {
            type Err = ValueError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($name => Ok(Self::$variant),)*
                    other => Err(ValueError(format!("unknown scope {other:?}"))),
                }
            }
        }
    };
}

scopes! {
    CustomerRead => "customer:read", "Read segments, assignments, territories, profiles.";
    CustomerWrite => "customer:write", "Change segments, assignments, territories.";
    InventoryRead => "inventory:read", "Read batches, movements, positions, expiry.";
    InventoryWrite => "inventory:write", "Receive, move, allocate and write off stock.";
    PricingRead => "pricing:read", "Read rules, festivals, prices and rule effectiveness.";
    PricingWrite => "pricing:write", "Change rules, festivals and prices.";
    PricingQuote => "pricing:quote", "Price carts and apply quotes.";
    OrderRead => "order:read", "Read orders.";
    OrderWrite => "order:write", "Place and cancel orders.";
    OrderFulfil => "order:fulfil", "Fulfil orders (issue their reserved stock).";
    SyncRead => "sync:read", "Read events and conflicts.";
    SyncPublish => "sync:publish", "Publish change events from an external system.";
    SyncAdmin => "sync:admin", "Resolve conflicts, replay and configure sync.";
    AuthAdmin => "auth:admin", "Manage users, keys, plans and revocations.";
}

macro_rules! roles {
    ($($variant:ident => $name:literal, $doc:literal, [$($scope:ident),*];)*) => {
        /// A role a user holds; it grants a fixed set of scopes.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum Role {
            $(#[doc = $doc] #[serde(rename = $name)] $variant,)*
        }

        impl Role {
            /// The role's name.
            pub fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }

            /// The scopes the role grants.
            pub fn scopes(self) -> &'static [Scope] {
                match self {
                    $(Self::$variant => &[$(Scope::$scope),*],)*
                }
            }
        }

        impl FromStr for Role {
            type Err = ValueError;

            fn from_str(value: &str) -> Result<Self, Self::Err> {
                match value {
                    $($name => Ok(Self::$variant),)*
                    other => Err(ValueError(format!("unknown role {other:?}"))),
                }
            }
        }
    };
}

roles! {
    Admin => "admin", "Operators: everything.", [CustomerRead, CustomerWrite, InventoryRead, InventoryWrite, PricingRead, PricingWrite, PricingQuote, OrderRead, OrderWrite, OrderFulfil, SyncRead, SyncPublish, SyncAdmin, AuthAdmin];
    Sales => "sales", "Sales staff and the CRM.", [CustomerRead, CustomerWrite, InventoryRead, PricingRead, PricingQuote, OrderRead, OrderWrite, SyncPublish];
    Warehouse => "warehouse", "Warehouse staff and systems.", [InventoryRead, InventoryWrite, OrderRead, OrderFulfil, SyncPublish];
    PricingManager => "pricing-manager", "Whoever sets prices and promotions.", [PricingRead, PricingWrite, PricingQuote, CustomerRead];
    Storefront => "storefront", "E-commerce and the mobile app.", [CustomerRead, InventoryRead, PricingQuote, OrderRead, OrderWrite, SyncPublish];
    Viewer => "viewer", "Read-only access for reports.", [CustomerRead, InventoryRead, PricingRead, OrderRead, SyncRead];
}

/// The scopes a set of roles grants, without repeats, in scope order.
pub fn scopes_of(roles: &[Role]) -> Vec<Scope> {
    let mut scopes: Vec<Scope> = roles
        .iter()
        .flat_map(|r| r.scopes().iter().copied())
        .collect();
    scopes.sort();
    scopes.dedup();
    scopes
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_addresses_are_checked_and_folded() {
        assert_eq!(
            Username::parse(" Ravi.K ").map(|u| u.0),
            Ok("ravi.k".into())
        );
        assert!(Username::parse("ab").is_err());
        assert!(Username::parse("1abc").is_err());
        assert!(Username::parse("ravi kumar").is_err());
        assert_eq!(
            Email::parse("Ravi@HarshaDelights.IN").map(|e| e.0),
            Ok("Ravi@harshadelights.in".into())
        );
        for bad in [
            "ravi",
            "ravi@",
            "@x.in",
            "ravi@localhost",
            "a@b..in",
            "a b@c.in",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn roles_grant_scopes_without_repeats() {
        let scopes = scopes_of(&[Role::Sales, Role::Viewer]);
        assert!(scopes.contains(&Scope::OrderWrite) && scopes.contains(&Scope::SyncRead));
        assert!(!scopes.contains(&Scope::AuthAdmin));
        assert_eq!(
            scopes.len(),
            scopes
                .iter()
                .collect::<std::collections::BTreeSet<_>>()
                .len()
        );
        assert_eq!("pricing:quote".parse::<Scope>(), Ok(Scope::PricingQuote));
        assert_eq!(Scope::ALL.len(), 14);
    }
}
