//! The SQL that differs between each role's engines, kept in one place:
//! how a write transaction starts and how a row is locked for the rest of
//! it. Everything else in the stores is written once, in SQL both MariaDB
//! and SQLite accept (backtick-quoted identifiers, `?` placeholders).

use sqlx::{MySql, Pool, Postgres, Sqlite, Transaction};

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

    /// What to run on a connection before [`ErpDialect::snapshot_begin`]
    /// (MariaDB runs at READ COMMITTED, where each statement sees the latest
    /// commit; a snapshot needs REPEATABLE READ for one transaction).
    fn snapshot_prelude(&self) -> Option<&'static str>;

    /// The statement that starts a read-only transaction whose statements
    /// all see one snapshot: `START TRANSACTION WITH CONSISTENT SNAPSHOT` on
    /// MariaDB, a deferred `BEGIN` on SQLite (a WAL reader's snapshot).
    fn snapshot_begin(&self) -> &'static str;
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

    fn snapshot_prelude(&self) -> Option<&'static str> {
        Some("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
    }

    fn snapshot_begin(&self) -> &'static str {
        "START TRANSACTION WITH CONSISTENT SNAPSHOT"
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

    fn snapshot_prelude(&self) -> Option<&'static str> {
        None
    }

    fn snapshot_begin(&self) -> &'static str {
        "BEGIN"
    }
}

/// Engine-specific SQL for the `gateway` and `sync` roles (PostgreSQL or
/// SQLite). Their SQL is written once with `$1, $2, …` placeholders, which
/// both engines accept.
#[allow(async_fn_in_trait)]
pub trait PgDialect {
    /// The sqlx database type.
    type Db: sqlx::Database;

    /// Starts a transaction that will write (`BEGIN IMMEDIATE` on SQLite).
    async fn begin_write(&self) -> Result<Transaction<'static, Self::Db>, sqlx::Error>;

    /// The suffix that locks the rows a `SELECT` reads until commit:
    /// `FOR UPDATE` on PostgreSQL, nothing on SQLite.
    fn for_update(&self) -> &'static str;
}

impl PgDialect for Pool<Postgres> {
    type Db = Postgres;

    async fn begin_write(&self) -> Result<Transaction<'static, Postgres>, sqlx::Error> {
        self.begin().await
    }

    fn for_update(&self) -> &'static str {
        " FOR UPDATE"
    }
}

impl PgDialect for Pool<Sqlite> {
    type Db = Sqlite;

    async fn begin_write(&self) -> Result<Transaction<'static, Sqlite>, sqlx::Error> {
        self.begin_with("BEGIN IMMEDIATE").await
    }

    fn for_update(&self) -> &'static str {
        ""
    }
}
