//! The Inventory service's error type. Every failure a caller can see is one
//! variant here; `grpc` maps them to status codes in one place.

use harsha_store::{StoreError, page::PageError};
use rust_decimal::Decimal;

/// Why an Inventory service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum InventoryError {
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field, as named in the contract.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such item, or it is disabled.
    #[error("item {0:?} not found")]
    ItemNotFound(String),
    /// No such warehouse, or it is disabled or a group.
    #[error("warehouse {0:?} not found")]
    WarehouseNotFound(String),
    /// No such batch record.
    #[error("batch {0:?} not found")]
    BatchNotFound(String),
    /// No such allocation.
    #[error("allocation {0:?} not found")]
    AllocationNotFound(String),
    /// No optimisation parameters for the item in the warehouse.
    #[error("no optimisation parameters for {item_code:?} in {warehouse:?}")]
    OptimizationNotFound {
        /// The item.
        item_code: String,
        /// The warehouse.
        warehouse: String,
    },
    /// The item already has this batch number in this warehouse.
    #[error("batch {batch_no:?} of item {item_code:?} already exists in {warehouse:?}")]
    BatchExists {
        /// The item.
        item_code: String,
        /// The batch number.
        batch_no: String,
        /// The warehouse.
        warehouse: String,
    },
    /// Not enough eligible stock: nothing was reserved.
    #[error(
        "not enough stock of {item_code:?}: asked for {requested}, {available} eligible, short by {shortfall}"
    )]
    InsufficientStock {
        /// The item.
        item_code: String,
        /// The quantity asked for.
        requested: Decimal,
        /// The eligible free stock.
        available: Decimal,
        /// What is missing.
        shortfall: Decimal,
    },
    /// A batch holds less than the change takes.
    #[error("{field}: batch {batch:?} holds {held} {what}; {needed} is needed")]
    BatchShort {
        /// The request field asking for too much (`qty`, `delta`).
        field: &'static str,
        /// The batch record.
        batch: String,
        /// `available` or `reserved`.
        what: &'static str,
        /// What it holds.
        held: Decimal,
        /// What the change takes.
        needed: Decimal,
    },
    /// A concurrent change won a race; trying again may succeed.
    #[error("{0}")]
    Aborted(String),
    /// The change does not fit the record's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// One request of several made together failed; none of them was
    /// made.
    #[error("lines[{index}]: {error}")]
    AtLine {
        /// The request's position.
        index: usize,
        /// Why it failed.
        error: Box<InventoryError>,
    },
    /// The database is not connected or migrated yet.
    #[error("the inventory database is not ready")]
    NotReady,
    /// The database failed.
    #[error("inventory storage failed")]
    Store(#[from] StoreError),
}

impl InventoryError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether trying again may succeed: lock contention, or a race lost
    /// to a concurrent change.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(store) => store.is_contention(),
            Self::Aborted(_) => true,
            Self::AtLine { error, .. } => error.is_retryable(),
            _ => false,
        }
    }
}

impl From<sqlx::Error> for InventoryError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(error))
    }
}

impl From<PageError> for InventoryError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field(), error)
    }
}
