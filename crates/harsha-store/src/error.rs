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
    /// Whether the error is lock contention that a retry may get past: a
    /// deadlock or lock-wait timeout on MariaDB, a busy or locked database
    /// on SQLite, a serialization failure or deadlock on PostgreSQL.
    pub fn is_contention(&self) -> bool {
        matches!(self, Self::Sql(error) if is_contention(error))
    }
}

/// Whether a driver error is lock contention that a retry may get past: a
/// deadlock or lock-wait timeout on MariaDB, a busy or locked database on
/// SQLite, a serialization failure or deadlock on PostgreSQL.
pub fn is_contention(error: &sqlx::Error) -> bool {
    let sqlx::Error::Database(db) = error else {
        return false;
    };
    if let Some(mysql) = db.try_downcast_ref::<sqlx::mysql::MySqlDatabaseError>() {
        return matches!(mysql.number(), 1205 | 1213);
    }
    let code = db.code();
    match code.as_deref() {
        // PostgreSQL: serialization_failure, deadlock_detected.
        Some("40001" | "40P01") => true,
        // SQLite primary codes SQLITE_BUSY (5) and SQLITE_LOCKED (6), with
        // their extended forms.
        Some(code) => code
            .parse::<i32>()
            .is_ok_and(|code| matches!(code & 0xff, 5 | 6)),
        None => false,
    }
}
