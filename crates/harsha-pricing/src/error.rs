//! The Pricing service's error type. Every failure a caller can see is one
//! variant here; `grpc` maps them to status codes in one place.

use harsha_store::{StoreError, page::PageError};

/// Why a Pricing service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum PricingError {
    /// A request field is invalid (including references to items,
    /// customers, territories or festivals that do not exist).
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field, as named in the contract.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No such rule.
    #[error("pricing rule {0:?} not found")]
    RuleNotFound(String),
    /// A rule code is taken.
    #[error("pricing rule {0:?} already exists")]
    RuleExists(String),
    /// No such quote.
    #[error("quote {0:?} not found")]
    QuoteNotFound(String),
    /// No such festival window.
    #[error("festival window {0:?} not found")]
    WindowNotFound(String),
    /// The change does not fit the record's current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// A concurrent change won a race; trying again may succeed.
    #[error("{0}")]
    Aborted(String),
    /// A service this one depends on did not answer.
    #[error("{0}")]
    Unavailable(String),
    /// The database is not connected or migrated yet.
    #[error("the pricing database is not ready")]
    NotReady,
    /// The database failed.
    #[error("pricing storage failed")]
    Store(#[from] StoreError),
}

impl PricingError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// Whether trying again may succeed.
    pub fn is_retryable(&self) -> bool {
        match self {
            Self::Store(store) => store.is_contention(),
            Self::Aborted(_) => true,
            _ => false,
        }
    }
}

impl From<sqlx::Error> for PricingError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(error))
    }
}

impl From<PageError> for PricingError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field(), error)
    }
}
