//! The Customer service's error type. Every failure a caller can see is one
//! variant here; `grpc` maps them to status codes in one place.

use harsha_store::{StoreError, page::PageError};

/// Why a Customer service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum CustomerError {
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field, as named in the contract.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such customer.
    #[error("customer {0:?} not found")]
    CustomerNotFound(String),
    /// No such segment.
    #[error("segment {0:?} not found")]
    SegmentNotFound(String),
    /// No such territory.
    #[error("territory {0:?} not found")]
    TerritoryNotFound(String),
    /// No such assignment.
    #[error("assignment {0:?} not found")]
    AssignmentNotFound(String),
    /// No such territory mapping.
    #[error("territory mapping {0:?} not found")]
    MappingNotFound(String),
    /// A segment code is taken.
    #[error("segment {0:?} already exists")]
    SegmentExists(String),
    /// The segment refuses new assignments.
    #[error("segment {0:?} is inactive and cannot be assigned")]
    SegmentInactive(String),
    /// The customer is disabled in ERPNext.
    #[error("customer {0:?} is disabled")]
    CustomerDisabled(String),
    /// The change does not fit the record's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database is not connected or migrated yet.
    #[error("the customer database is not ready")]
    NotReady,
    /// The database failed.
    #[error("customer storage failed")]
    Store(#[from] StoreError),
}

impl CustomerError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<sqlx::Error> for CustomerError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(error))
    }
}

impl From<PageError> for CustomerError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field(), error)
    }
}
