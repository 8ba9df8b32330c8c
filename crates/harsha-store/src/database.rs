//! Connecting to a role's database, migrating it, and checking it is up.

use std::{str::FromStr, time::Duration};

use sqlx::{
    Executor, MySql, Postgres, Sqlite,
    migrate::Migrator,
    mysql::{MySqlConnectOptions, MySqlPoolOptions},
    postgres::{PgConnectOptions, PgPoolOptions},
    sqlite::{SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous},
};

use crate::{Engine, Role, StoreError};

static ERP_MYSQL: Migrator = sqlx::migrate!("../../migrations/erp/mysql");
static ERP_SQLITE: Migrator = sqlx::migrate!("../../migrations/erp/sqlite");
static GATEWAY_POSTGRES: Migrator = sqlx::migrate!("../../migrations/gateway/postgres");
static GATEWAY_SQLITE: Migrator = sqlx::migrate!("../../migrations/gateway/sqlite");
static SYNC_POSTGRES: Migrator = sqlx::migrate!("../../migrations/sync/postgres");
static SYNC_SQLITE: Migrator = sqlx::migrate!("../../migrations/sync/sqlite");

/// Pool sizing and timeouts.
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(default)]
pub struct PoolSettings {
    /// Most connections held open.
    pub max_connections: u32,
    /// How long a caller waits for a free connection, in milliseconds.
    pub acquire_timeout_ms: u64,
    /// How long SQLite waits on a locked database, in milliseconds.
    pub sqlite_busy_timeout_ms: u64,
}

impl Default for PoolSettings {
    fn default() -> Self {
        Self {
            max_connections: 16,
            acquire_timeout_ms: 5_000,
            sqlite_busy_timeout_ms: 10_000,
        }
    }
}

/// A connection pool on one of the three engines.
#[derive(Debug, Clone)]
pub enum Pool {
    /// SQLite.
    Sqlite(sqlx::Pool<Sqlite>),
    /// MariaDB.
    MySql(sqlx::Pool<MySql>),
    /// PostgreSQL.
    Postgres(sqlx::Pool<Postgres>),
}

/// A pool for the `erp` role: MariaDB in production, SQLite embedded.
#[derive(Debug, Clone)]
pub enum ErpPool {
    /// MariaDB (the ERPNext database).
    MySql(sqlx::Pool<MySql>),
    /// SQLite.
    Sqlite(sqlx::Pool<Sqlite>),
}

/// A pool for the `gateway` and `sync` roles: PostgreSQL in production,
/// SQLite embedded.
#[derive(Debug, Clone)]
pub enum PgPool {
    /// PostgreSQL.
    Postgres(sqlx::Pool<Postgres>),
    /// SQLite.
    Sqlite(sqlx::Pool<Sqlite>),
}

impl PgPool {
    /// `VALUES` rows for a multi-row insert of `rows` rows of `columns`
    /// values: `($1, $2), ($3, $4)` on PostgreSQL, `(?, ?), (?, ?)` on
    /// SQLite, where each numbered parameter costs a scan of every
    /// parameter's name when bound (quadratic in a large batch).
    pub fn value_rows(&self, rows: usize, columns: usize) -> String {
        let mut out = String::with_capacity(rows * columns * 5);
        for row in 0..rows {
            out.push_str(if row == 0 { "(" } else { ", (" });
            for column in 0..columns {
                if column > 0 {
                    out.push_str(", ");
                }
                match self {
                    Self::Postgres(_) => {
                        out.push('$');
                        out.push_str(&(row * columns + column + 1).to_string());
                    }
                    Self::Sqlite(_) => out.push('?'),
                }
            }
            out.push(')');
        }
        out
    }
}

/// A role's database: its pool and what it is for.
#[derive(Debug, Clone)]
pub struct Database {
    role: Role,
    pool: Pool,
}

impl Database {
    /// Connects to `url` for `role`, checking the engine suits the role.
    /// SQLite files are created when missing and run in WAL mode, so readers
    /// never wait for the writer.
    #[tracing::instrument(name = "db.connect", skip(url, settings), fields(role = %role))]
    pub async fn connect(
        role: Role,
        url: &str,
        settings: &PoolSettings,
    ) -> Result<Self, StoreError> {
        let engine = Engine::from_url(url)?;
        role.check_engine(engine)?;
        let acquire_timeout = Duration::from_millis(settings.acquire_timeout_ms);
        let pool = match engine {
            Engine::Sqlite => {
                let options = SqliteConnectOptions::from_str(url)?
                    .create_if_missing(true)
                    .journal_mode(SqliteJournalMode::Wal)
                    .synchronous(SqliteSynchronous::Normal)
                    .foreign_keys(true)
                    .busy_timeout(Duration::from_millis(settings.sqlite_busy_timeout_ms));
                if let Some(parent) = options.get_filename().parent()
                    && !parent.as_os_str().is_empty()
                {
                    tokio::fs::create_dir_all(parent)
                        .await
                        .map_err(|e| StoreError::Sql(sqlx::Error::Io(e)))?;
                }
                Pool::Sqlite(
                    SqlitePoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(acquire_timeout)
                        .connect_with(options)
                        .await?,
                )
            }
            Engine::MySql => {
                let options = MySqlConnectOptions::from_str(url)?
                    .charset("utf8mb4")
                    .timezone(Some(String::from("+00:00")));
                Pool::MySql(
                    MySqlPoolOptions::new()
                        .max_connections(settings.max_connections)
                        .acquire_timeout(acquire_timeout)
                        // Each statement sees what committed before it: the
                        // stores lock the rows they depend on, then read.
                        .after_connect(|conn, _| {
                            Box::pin(async move {
                                conn.execute(
                                    "SET SESSION TRANSACTION ISOLATION LEVEL READ COMMITTED",
                                )
                                .await?;
                                Ok(())
                            })
                        })
                        .connect_with(options)
                        .await?,
                )
            }
            Engine::Postgres => Pool::Postgres(
                PgPoolOptions::new()
                    .max_connections(settings.max_connections)
                    .acquire_timeout(acquire_timeout)
                    .connect_with(PgConnectOptions::from_str(url)?)
                    .await?,
            ),
        };
        Ok(Self { role, pool })
    }

    /// The role this database serves.
    pub fn role(&self) -> Role {
        self.role
    }

    /// The engine it runs on.
    pub fn engine(&self) -> Engine {
        match self.pool {
            Pool::Sqlite(_) => Engine::Sqlite,
            Pool::MySql(_) => Engine::MySql,
            Pool::Postgres(_) => Engine::Postgres,
        }
    }

    /// The underlying pool.
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// The pool of a `gateway` or `sync` database.
    pub fn pg_pool(&self) -> Result<PgPool, StoreError> {
        match &self.pool {
            Pool::Postgres(pool) => Ok(PgPool::Postgres(pool.clone())),
            Pool::Sqlite(pool) => Ok(PgPool::Sqlite(pool.clone())),
            Pool::MySql(_) => Err(StoreError::EngineNotSupported {
                role: self.role,
                engine: Engine::MySql,
            }),
        }
    }

    /// The pool of an `erp` database.
    pub fn erp_pool(&self) -> Result<ErpPool, StoreError> {
        match &self.pool {
            Pool::MySql(pool) => Ok(ErpPool::MySql(pool.clone())),
            Pool::Sqlite(pool) => Ok(ErpPool::Sqlite(pool.clone())),
            Pool::Postgres(_) => Err(StoreError::EngineNotSupported {
                role: Role::Erp,
                engine: Engine::Postgres,
            }),
        }
    }

    /// Applies the role's pending migrations. Each role keeps its own
    /// migration table (`_harsha_migrations_<role>`), so several roles may
    /// share one database, and an ERPNext database keeps its own tables
    /// untouched.
    #[tracing::instrument(name = "db.migrate", skip(self), fields(role = %self.role))]
    pub async fn migrate(&self) -> Result<(), StoreError> {
        let migrator = self.migrator();
        let wrap = |source| StoreError::Migrate {
            role: self.role,
            source,
        };
        match &self.pool {
            Pool::Sqlite(pool) => migrator.run(pool).await.map_err(wrap),
            Pool::MySql(pool) => migrator.run(pool).await.map_err(wrap),
            Pool::Postgres(pool) => migrator.run(pool).await.map_err(wrap),
        }
    }

    /// The role's migration history table.
    pub(crate) fn history_table(&self) -> String {
        format!("_harsha_migrations_{}", self.role.name())
    }

    pub(crate) fn migrator(&self) -> Migrator {
        let embedded = match (self.role, self.engine()) {
            (Role::Erp, Engine::MySql) => &ERP_MYSQL,
            (Role::Erp, _) => &ERP_SQLITE,
            (Role::Gateway, Engine::Postgres) => &GATEWAY_POSTGRES,
            (Role::Gateway, _) => &GATEWAY_SQLITE,
            (Role::Sync, Engine::Postgres) => &SYNC_POSTGRES,
            (Role::Sync, _) => &SYNC_SQLITE,
        };
        let mut migrator = Migrator::with_migrations(embedded.iter().cloned().collect());
        migrator.dangerous_set_table_name(self.history_table());
        migrator
    }

    /// How many of the role's embedded migrations are not applied yet (all of
    /// them when the migration table does not exist). A service that does
    /// not migrate at start-up waits for this to reach zero before it reports
    /// itself ready.
    pub async fn pending_migrations(&self) -> Result<usize, StoreError> {
        use crate::integrity::MigrationState;

        // A migration recorded as failed is still to be applied.
        Ok(self
            .migration_status()
            .await?
            .iter()
            .filter(|s| matches!(s.state, MigrationState::Pending | MigrationState::Failed))
            .count())
    }

    /// The pool's open connections and, of them, the idle ones.
    pub fn connections(&self) -> (u32, u32) {
        let idle = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        match &self.pool {
            Pool::Sqlite(pool) => (pool.size(), idle(pool.num_idle())),
            Pool::MySql(pool) => (pool.size(), idle(pool.num_idle())),
            Pool::Postgres(pool) => (pool.size(), idle(pool.num_idle())),
        }
    }

    /// Checks the database answers a trivial query.
    pub async fn ping(&self) -> Result<(), StoreError> {
        match &self.pool {
            Pool::Sqlite(pool) => pool.execute("SELECT 1").await.map(drop)?,
            Pool::MySql(pool) => pool.execute("SELECT 1").await.map(drop)?,
            Pool::Postgres(pool) => pool.execute("SELECT 1").await.map(drop)?,
        }
        Ok(())
    }

    /// Closes every connection, waiting for those in use to be returned.
    pub async fn close(&self) {
        match &self.pool {
            Pool::Sqlite(pool) => pool.close().await,
            Pool::MySql(pool) => pool.close().await,
            Pool::Postgres(pool) => pool.close().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn creates_and_migrates_every_role_on_sqlite_twice() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Sql(sqlx::Error::Io(e)))?;
        for role in Role::ALL {
            let url = format!("sqlite://{}/nested/{role}.sqlite", dir.path().display());
            let db = Database::connect(role, &url, &PoolSettings::default()).await?;
            db.migrate().await?;
            db.migrate().await?;
            db.ping().await?;
            db.close().await;
        }
        Ok(())
    }

    #[tokio::test]
    async fn counts_pending_migrations_until_migrated() -> Result<(), StoreError> {
        let dir = tempfile::tempdir().map_err(|e| StoreError::Sql(sqlx::Error::Io(e)))?;
        let url = format!("sqlite://{}/erp.sqlite", dir.path().display());
        let db = Database::connect(Role::Erp, &url, &PoolSettings::default()).await?;
        assert!(db.pending_migrations().await? > 0);
        db.migrate().await?;
        assert_eq!(db.pending_migrations().await?, 0);
        Ok(())
    }

    #[tokio::test]
    async fn refuses_a_role_on_the_wrong_engine() {
        let err = Database::connect(
            Role::Erp,
            "postgres://127.0.0.1/x",
            &PoolSettings::default(),
        )
        .await
        .err();
        assert!(matches!(err, Some(StoreError::EngineNotSupported { .. })));
    }
}
