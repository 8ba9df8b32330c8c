//! How a storage failure looks to a gRPC caller, decided in one place for
//! every service: `ABORTED` when it lost a lock race (retry the change),
//! `UNAVAILABLE` when the database cannot be reached (retry later),
//! `INTERNAL` otherwise. The details go to the log, never to the caller.

use crate::StoreError;

/// The status for a storage failure of `service` (named in the log).
pub fn store_status(service: &str, error: &StoreError) -> tonic::Status {
    let unreachable = matches!(
        error,
        StoreError::Sql(sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Io(_))
    );
    let chain = error_chain(error);
    if error.is_contention() {
        tracing::warn!(service, error = %chain, "write lost a lock race");
        tonic::Status::aborted("the change conflicted with a concurrent one; retry it")
    } else if unreachable {
        tracing::warn!(service, error = %chain, "database unreachable");
        tonic::Status::unavailable(format!(
            "the {service} database is unavailable; retry later"
        ))
    } else {
        tracing::error!(service, error = %chain, "storage failed");
        tonic::Status::internal("internal error")
    }
}

/// An error and its causes, `: `-separated, for the log.
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}
