//! The SQL that differs between the `erp` role's engines, kept in one place:
//! how a write transaction starts and how a row is locked for the rest of
//! it. Everything else in the stores is written once, in SQL both MariaDB
//! and SQLite accept (backtick-quoted identifiers, `?` placeholders).

use sqlx::{MySql, Pool, Sqlite, Transaction};

/// Engine-specific SQL for the `erp` role.
#[allow(async_fn_in_trait)]
pub trait ErpDialect {
    /// The sqlx database type.
    type Db: sqlx::Database;

    /// Starts a transaction that will write. On SQLite it takes the write
    /// lock at once (`BEGIN IMMEDIATE`), so two writers never deadlock
    /// upgrading a read lock; on MariaDB rows are locked as they are read.
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, sqlx::Error>;

    /// The suffix that makes a `SELECT` lock the rows it reads until commit:
    /// `FOR UPDATE` on MariaDB, nothing on SQLite (whose write transaction
    /// already excludes every other writer).
    fn for_update(&self) -> &'static str;

    /// The suffix that makes a `SELECT` hold a shared lock on the rows it
    /// reads until commit, so they cannot change under the transaction:
    /// `LOCK IN SHARE MODE` on MariaDB, nothing on SQLite.
    fn for_share(&self) -> &'static str;
}

impl ErpDialect for Pool<MySql> {
    type Db = MySql;

    async fn begin_write(&self) -> Result<Transaction<'static, MySql>, sqlx::Error> {
        self.begin().await
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }

    fn for_share(&self) -> &'static str {
        " LOCK IN SHARE MODE"
    }
}

impl ErpDialect for Pool<Sqlite> {
    type Db = Sqlite;

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    fn for_update(&self) -> &'static str {
        ""
    }

    fn for_share(&self) -> &'static str {
        ""
    }
}
