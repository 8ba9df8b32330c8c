//! Validated values that every Harsha service shares. Each checks its input
//! once, when built, so no service can hold an invalid one:
//!
//! - [`DocName`]: the `name` of an ERPNext document (customer, item,
//!   warehouse, territory…);
//! - [`Code`]: an upper-case code (segment, price tier, rule, festival);
//! - [`Actor`]: who made a change, recorded as ERPNext's `owner` /
//!   `modified_by`;
//! - [`Quantity`]: an exact, positive decimal quantity that fits the
//!   `decimal(21,9)` columns the services store quantities in.
//!
//! Service-specific values live in each service's `domain` module.

mod code;
mod name;
mod quantity;

pub use code::Code;
pub use name::{Actor, DocName, check_text};
pub use quantity::{MAX_QUANTITY_SCALE, Quantity, max_quantity};

/// Why a value was refused; the caller names the field.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct ValueError(pub String);
