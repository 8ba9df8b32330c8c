//! The Order service's error type. Every failure a caller can see is one
//! variant here; `grpc` maps them to status codes in one place.

use harsha_store::{StoreError, page::PageError};

use crate::domain::Failure;

/// Why an Order service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum OrderError {
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field, as named in the contract.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such order.
    #[error("order {0:?} not found")]
    NotFound(String),
    /// The change does not fit the order's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won a race; trying again may succeed.
    #[error("{0}")]
    Aborted(String),
    /// A placement failed (now or, for a replayed key, the first time):
    /// the status code and cause the failing step gave.
    #[error("{}", .0.message)]
    Placement(Failure),
    /// A service the order needs did not answer in a way that settles the
    /// step; the saga finishes the order later.
    #[error("{0}")]
    Unavailable(String),
    /// The database is not connected or migrated yet.
    #[error("the order database is not ready")]
    NotReady,
    /// The database failed.
    #[error("order storage failed")]
    Store(#[from] StoreError),
}

impl OrderError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }
}

impl From<sqlx::Error> for OrderError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(error))
    }
}

impl From<PageError> for OrderError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field(), error)
    }
}
