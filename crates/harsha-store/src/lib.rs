//! Storage for Harsha Mesh: the three database roles (`erp`, `gateway`,
//! `sync`), the engine each may run on (chosen by the URL's scheme), pools
//! tuned per engine, the embedded migrations of every role and engine, and
//! the few SQL differences between engines (the [`ErpDialect`] trait).
//!
//! Service crates build their stores on [`ErpPool`] (MariaDB or SQLite) and
//! write their SQL once; [`erp_dispatch!`] runs the same code against
//! whichever engine the pool holds. Only [`integrity`], the checks
//! `harsha migrate verify` runs after a migration, knows services' tables.

mod database;
pub mod decimal;
mod dialect;
pub mod erpnext;
mod error;
pub mod integrity;
pub mod outbox;
pub mod page;
pub mod partition;
pub mod retry;
mod role;
pub mod status;

pub use database::{Database, ErpPool, PgPool, Pool, PoolSettings};
pub use decimal::DbDecimal;
pub use dialect::{ErpDialect, PgDialect};
pub use error::{StoreError, is_contention};
pub use role::{Engine, Role};

/// Re-exported so that service crates use the same sqlx as the pools.
pub use sqlx;

/// Starts, on the connection `$conn` taken from `$pool`, a transaction whose
/// statements all read one snapshot (see [`ErpDialect::snapshot_begin`]);
/// evaluates to the transaction, which borrows `$conn`.
#[macro_export]
macro_rules! begin_snapshot {
    ($pool:expr, $conn:ident) => {{
        if let Some(prelude) = $crate::ErpDialect::snapshot_prelude($pool) {
            $crate::sqlx::query(prelude).execute(&mut *$conn).await?;
        }
        $crate::sqlx::Connection::begin_with(&mut *$conn, $crate::ErpDialect::snapshot_begin($pool))
            .await?
    }};
}

/// Runs `$body` with `$pool` bound to the concrete pool inside a
/// [`PgPool`] (PostgreSQL or SQLite), once per engine, like
/// [`erp_dispatch!`].
#[macro_export]
macro_rules! pg_dispatch {
    ($pg:expr, $pool:ident => $body:expr) => {
        match $pg {
            $crate::PgPool::Postgres($pool) => $body,
            $crate::PgPool::Sqlite($pool) => $body,
        }
    };
}

/// Runs `$body` with `$pool` bound to the concrete pool inside an
/// [`ErpPool`], once per engine, so a store writes its SQL and row handling
/// once and the compiler checks it against both drivers.
///
/// ```ignore
/// erp_dispatch!(&self.pool, pool => {
///     sqlx::query("SELECT 1").execute(pool).await?;
/// })
/// ```
#[macro_export]
macro_rules! erp_dispatch {
    ($erp:expr, $pool:ident => $body:expr) => {
        match $erp {
            $crate::ErpPool::MySql($pool) => $body,
            $crate::ErpPool::Sqlite($pool) => $body,
        }
    };
}
