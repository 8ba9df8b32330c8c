//! Helpers for the benchmarks: the MariaDB database a benchmark keeps its
//! data in between runs, latency percentiles of single calls and a readable
//! `EXPLAIN` of a query, printed the same way by every service's benchmark.

use std::time::Duration;

use harsha_store::{Database, Pool, PoolSettings, Role};
use sqlx::{Row, mysql::MySqlRow};

/// Prints the median, p95 and p99 of `timings` under `name`.
pub fn report_percentiles(name: &str, mut timings: Vec<Duration>) {
    if timings.is_empty() {
        eprintln!("{name}: no calls");
        return;
    }
    timings.sort();
    let at = |q: f64| {
        let index = ((timings.len() as f64) * q) as usize;
        timings[index.min(timings.len() - 1)]
    };
    eprintln!(
        "{name}: median {:.3?}  p95 {:.3?}  p99 {:.3?}  ({} calls)",
        at(0.5),
        at(0.95),
        at(0.99),
        timings.len()
    );
}

/// Prints the rows of a MariaDB `EXPLAIN` under `name`: table, access type,
/// key, estimated rows and extra notes.
pub fn print_explain(name: &str, rows: &[MySqlRow]) {
    eprintln!("EXPLAIN {name}:");
    for row in rows {
        let text = |column: &str| -> String {
            row.try_get::<Option<String>, _>(column)
                .ok()
                .flatten()
                .or_else(|| {
                    row.try_get::<Option<u64>, _>(column)
                        .ok()
                        .flatten()
                        .map(|n| n.to_string())
                })
                .or_else(|| {
                    row.try_get::<Option<i64>, _>(column)
                        .ok()
                        .flatten()
                        .map(|n| n.to_string())
                })
                .unwrap_or_else(|| "NULL".into())
        };
        eprintln!(
            "  table={} type={} key={} rows={} extra={}",
            text("table"),
            text("type"),
            text("key"),
            text("rows"),
            text("Extra")
        );
    }
}

/// The MariaDB server benchmarks keep their data on:
/// `HARSHA_BENCH_MYSQL_URL`, else the test server.
pub fn mysql_server_url() -> String {
    std::env::var("HARSHA_BENCH_MYSQL_URL").unwrap_or_else(|_| crate::mysql_server_url())
}

fn database_url(name: &str) -> String {
    format!("{}/{name}", mysql_server_url().trim_end_matches('/'))
}

/// The benchmark database `name` as an earlier run left it, if `count_sql`
/// (a `SELECT COUNT(*)`) finds at least `expected` rows there, and unless
/// `HARSHA_BENCH_RELOAD=1` asks for a rebuild.
///
/// # Panics
/// Never; a database that cannot be used is `None`.
pub async fn kept_database(name: &str, count_sql: &str, expected: i64) -> Option<Database> {
    if std::env::var("HARSHA_BENCH_RELOAD").is_ok_and(|v| v == "1") {
        return None;
    }
    let db = Database::connect(Role::Erp, &database_url(name), &PoolSettings::default())
        .await
        .ok()?;
    let Pool::MySql(pool) = db.pool() else {
        return None;
    };
    let loaded: Result<i64, _> = sqlx::query_scalar(sqlx::AssertSqlSafe(count_sql.to_owned()))
        .fetch_one(pool)
        .await;
    if loaded.is_ok_and(|n| n >= expected) {
        eprintln!("using the data already loaded in {name}");
        Some(db)
    } else {
        db.close().await;
        None
    }
}

/// The benchmark database `name`, dropped, created anew and migrated for
/// the `erp` role.
///
/// # Panics
/// When the server refuses.
pub async fn fresh_database(name: &str) -> Database {
    let admin = Database::connect(Role::Erp, &mysql_server_url(), &PoolSettings::default())
        .await
        .expect("connect to the benchmark server");
    let Pool::MySql(admin_pool) = admin.pool() else {
        unreachable!("a mysql:// URL gives a MariaDB pool")
    };
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS `{name}`; \
         CREATE DATABASE `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
    )))
    .execute(admin_pool)
    .await
    .expect("recreate the benchmark database");
    admin.close().await;
    let db = Database::connect(Role::Erp, &database_url(name), &PoolSettings::default())
        .await
        .expect("connect to the benchmark database");
    db.migrate().await.expect("migrate the benchmark database");
    db
}
