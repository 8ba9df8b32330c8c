//! The Sync service's error type. Every failure a caller can see is one
//! variant here; `grpc` maps them to status codes in one place.

use harsha_store::{StoreError, page::PageError};

/// Why a Sync service operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A request field is invalid.
    #[error("{field}: {reason}")]
    InvalidArgument {
        /// The request field, as named in the contract.
        field: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No event at that position.
    #[error("no event at position {0}")]
    EventNotFound(i64),
    /// No such target.
    #[error("target {0:?} not found")]
    TargetNotFound(String),
    /// The target name is taken.
    #[error("target {0:?} already exists")]
    TargetExists(String),
    /// No such configuration.
    #[error("configuration {0:?} not found")]
    ConfigurationNotFound(String),
    /// That route is configured already.
    #[error(
        "a configuration routing {entity_type} from {source_system} to {target} already exists"
    )]
    ConfigurationExists {
        /// The entity type.
        entity_type: String,
        /// The source filter.
        source_system: String,
        /// The target.
        target: String,
    },
    /// No such batch run.
    #[error("batch run {0:?} not found")]
    BatchRunNotFound(String),
    /// No such conflict.
    #[error("conflict {0:?} not found")]
    ConflictNotFound(String),
    /// The change does not fit the current state.
    #[error("{0}")]
    FailedPrecondition(String),
    /// The database is not connected or migrated yet.
    #[error("the sync database is not ready")]
    NotReady,
    /// The database failed.
    #[error("sync storage failed")]
    Store(#[from] StoreError),
}

impl SyncError {
    /// An invalid-argument error for `field`.
    pub fn invalid(field: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        Self::InvalidArgument {
            field: field.into(),
            reason: reason.to_string(),
        }
    }

    /// A stored value in `column` that does not read back.
    pub(crate) fn corrupt(column: &str, error: impl std::fmt::Display) -> Self {
        Self::Store(StoreError::Sql(sqlx::Error::ColumnDecode {
            index: column.to_owned(),
            source: error.to_string().into(),
        }))
    }
}

impl From<sqlx::Error> for SyncError {
    fn from(error: sqlx::Error) -> Self {
        Self::Store(StoreError::Sql(error))
    }
}

impl From<PageError> for SyncError {
    fn from(error: PageError) -> Self {
        Self::invalid(error.field(), error)
    }
}
