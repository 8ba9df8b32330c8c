//! The error type of connecting, migrating and querying.

use crate::{Engine, Role};

/// Why a database could not be reached, migrated or queried.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The URL's scheme names no engine we support.
    #[error("unsupported database URL scheme {scheme:?}: use sqlite://, mysql:// or postgres://")]
    UnsupportedUrl {
        /// The scheme found.
        scheme: String,
    },
    /// The role cannot run on that engine.
    #[error("the {role} role cannot run on {engine}")]
    EngineNotSupported {
        /// The role.
        role: Role,
        /// The engine asked for.
        engine: Engine,
    },
    /// No role of that name.
    #[error("unknown database role {0:?}: expected erp, gateway or sync")]
    UnknownRole(String),
    /// A migration failed.
    #[error("migrating the {role} database failed")]
    Migrate {
        /// The role being migrated.
        role: Role,
        /// The cause.
        #[source]
        source: sqlx::migrate::MigrateError,
    },
    /// The driver reported an error.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),
}

impl StoreError {
    /// Whether the error is a unique-constraint violation (a duplicate key).
    pub fn is_unique_violation(&self) -> bool {
        match self {
            Self::Sql(sqlx::Error::Database(db)) => db.is_unique_violation(),
            _ => false,
        }
    }
}
