//! Test helpers shared by every crate's tests: [`TestDatabase`] makes a
//! fresh, migrated database for a role on SQLite, MariaDB or PostgreSQL and
//! removes it when dropped, so tests never share state; [`fixtures`] inserts
//! the ERPNext rows (customers, territories, items, warehouses) a test
//! needs; [`on_every_engine!`] runs one store scenario on SQLite and on the
//! production engine; [`bench`] prints benchmark figures the same way
//! everywhere.
//!
//! The server URLs come from `HARSHA_TEST_MYSQL_URL` and
//! `HARSHA_TEST_POSTGRES_URL` (defaults: the local servers as root).
#![allow(clippy::expect_used, clippy::unwrap_used)]

pub mod bench;
pub mod fixtures;

/// Like [`on_every_engine!`] for the `gateway` and `sync` roles: `mod
/// sqlite` and `mod postgres`, each scenario an `async fn(Engine)`.
#[macro_export]
macro_rules! on_sqlite_and_postgres {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(harsha_store::Engine::Sqlite).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(harsha_store::Engine::Postgres).await;
                }
            )*
        }
    };
}

/// Makes one test per engine of each scenario: `mod sqlite` and `mod
/// mariadb`, each with a `#[tokio::test]` per scenario that calls
/// `super::<scenario>(engine).await`. A scenario is an `async fn(Engine)`.
#[macro_export]
macro_rules! on_every_engine {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(harsha_store::Engine::Sqlite).await;
                }
            )*
        }
        mod mariadb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    super::$scenario(harsha_store::Engine::MySql).await;
                }
            )*
        }
    };
}

use harsha_store::{Database, Engine, PoolSettings, Role};
use sqlx::Connection;

/// The MariaDB server tests create their databases on.
pub fn mysql_server_url() -> String {
    std::env::var("HARSHA_TEST_MYSQL_URL").unwrap_or_else(|_| "mysql://root@127.0.0.1:3306".into())
}

/// The PostgreSQL server tests create their databases on.
pub fn postgres_server_url() -> String {
    std::env::var("HARSHA_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432".into())
}

/// A fresh, migrated database for one role, removed on drop.
pub struct TestDatabase {
    /// The connected, migrated database.
    pub db: Database,
    /// Its URL, for code that connects by itself (a spawned server).
    pub url: String,
    cleanup: Cleanup,
}

enum Cleanup {
    Sqlite(#[allow(dead_code)] tempfile::TempDir),
    Server {
        admin_url: String,
        name: String,
        engine: Engine,
    },
}

impl TestDatabase {
    /// A database for `role` on `engine`.
    ///
    /// # Panics
    /// When the server is unreachable or the migrations fail: a test cannot
    /// go on without its database.
    pub async fn new(role: Role, engine: Engine) -> Self {
        let name = format!("harsha_test_{}", uuid::Uuid::now_v7().simple());
        let (url, cleanup) = match engine {
            Engine::Sqlite => {
                let dir = tempfile::tempdir().expect("temporary directory");
                let url = format!("sqlite://{}/{}.sqlite", dir.path().display(), role.name());
                (url, Cleanup::Sqlite(dir))
            }
            Engine::MySql => {
                let admin_url = mysql_server_url();
                let mut admin = sqlx::MySqlConnection::connect(&admin_url)
                    .await
                    .unwrap_or_else(|e| panic!("MariaDB at {admin_url} is not reachable: {e}"));
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
                )))
                .execute(&mut admin)
                .await
                .expect("create test database");
                let url = format!("{}/{name}", admin_url.trim_end_matches('/'));
                (
                    url,
                    Cleanup::Server {
                        admin_url,
                        name,
                        engine,
                    },
                )
            }
            Engine::Postgres => {
                let admin_url = postgres_server_url();
                let mut admin = sqlx::PgConnection::connect(&format!(
                    "{}/postgres",
                    admin_url.trim_end_matches('/')
                ))
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin_url} is not reachable: {e}"));
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
                    .execute(&mut admin)
                    .await
                    .expect("create test database");
                let url = format!("{}/{name}", admin_url.trim_end_matches('/'));
                (
                    url,
                    Cleanup::Server {
                        admin_url,
                        name,
                        engine,
                    },
                )
            }
        };
        let db = Database::connect(role, &url, &PoolSettings::default())
            .await
            .expect("connect to the test database");
        db.migrate().await.expect("migrate the test database");
        Self { db, url, cleanup }
    }

    /// An `erp` database on `engine`.
    pub async fn erp(engine: Engine) -> Self {
        Self::new(Role::Erp, engine).await
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let Cleanup::Server {
            admin_url,
            name,
            engine,
        } = &self.cleanup
        else {
            return;
        };
        let (admin_url, name, engine) = (admin_url.clone(), name.clone(), *engine);
        // Drop runs inside the test's runtime, which may have a single
        // thread: the database is removed from a thread with a runtime of its
        // own (the test waits for it), without touching the test's pool,
        // whose connections need the test's runtime to close.
        let cleaner = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            runtime.block_on(async move {
                let result = match engine {
                    Engine::MySql => match sqlx::MySqlConnection::connect(&admin_url).await {
                        Ok(mut admin) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS `{name}`"
                        )))
                        .execute(&mut admin)
                        .await
                        .map(drop),
                        Err(e) => Err(e),
                    },
                    _ => match sqlx::PgConnection::connect(&format!(
                        "{}/postgres",
                        admin_url.trim_end_matches('/')
                    ))
                    .await
                    {
                        Ok(mut admin) => sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                        )))
                        .execute(&mut admin)
                        .await
                        .map(drop),
                        Err(e) => Err(e),
                    },
                };
                if let Err(e) = result {
                    eprintln!("could not drop test database {name}: {e}");
                }
            });
        });
        let _ = cleaner.join();
    }
}
