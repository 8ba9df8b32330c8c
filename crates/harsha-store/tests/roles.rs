//! Every role migrates on SQLite and on its production engine (MariaDB for
//! `erp`, PostgreSQL for `gateway` and `sync`), twice without harm, into
//! its own migration table, and refuses an engine it does not run on.
#![allow(missing_docs, clippy::unwrap_used, clippy::expect_used)]

use harsha_store::{Database, Engine, Pool, PoolSettings, Role, StoreError};
use harsha_testkit::TestDatabase;

async fn migration_versions(db: &Database) -> Vec<i64> {
    let table = format!("_harsha_migrations_{}", db.role().name());
    let sql = sqlx::AssertSqlSafe(format!(
        "SELECT version FROM {table} WHERE success ORDER BY version"
    ));
    match db.pool() {
        Pool::Sqlite(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Pool::MySql(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
        Pool::Postgres(pool) => sqlx::query_scalar(sql).fetch_all(pool).await.unwrap(),
    }
}

async fn migrates_twice(role: Role, engine: Engine) {
    let test = TestDatabase::new(role, engine).await;
    let first = migration_versions(&test.db).await;
    assert!(
        !first.is_empty(),
        "{role} on {engine} recorded its migrations"
    );
    test.db.migrate().await.unwrap();
    assert_eq!(
        migration_versions(&test.db).await,
        first,
        "a second run applies nothing"
    );
    test.db.ping().await.unwrap();
    assert_eq!(test.db.engine(), engine);
}

#[tokio::test]
async fn erp_migrates_on_sqlite_and_mariadb() {
    migrates_twice(Role::Erp, Engine::Sqlite).await;
    migrates_twice(Role::Erp, Engine::MySql).await;
}

#[tokio::test]
async fn gateway_migrates_on_sqlite_and_postgres() {
    migrates_twice(Role::Gateway, Engine::Sqlite).await;
    migrates_twice(Role::Gateway, Engine::Postgres).await;
}

#[tokio::test]
async fn sync_migrates_on_sqlite_and_postgres() {
    migrates_twice(Role::Sync, Engine::Sqlite).await;
    migrates_twice(Role::Sync, Engine::Postgres).await;
}

#[tokio::test]
async fn erp_tables_sit_beside_an_existing_erpnext_schema() {
    // An ERPNext database already has tabCustomer with rows of its own; the
    // erp migrations must leave both untouched.
    let erp = TestDatabase::erp(Engine::MySql).await;
    let Pool::MySql(pool) = erp.db.pool() else {
        unreachable!()
    };
    sqlx::query("INSERT INTO `tabCustomer` (`name`, `customer_name`, `disabled`) VALUES ('CUST-X', 'Existing', 0)")
        .execute(pool)
        .await
        .unwrap();
    sqlx::query("DELETE FROM _harsha_migrations_erp")
        .execute(pool)
        .await
        .unwrap();
    // Every Harsha table goes; ERPNext's own stay.
    let ours: Vec<String> = sqlx::query_scalar(
        "SELECT CAST(`TABLE_NAME` AS CHAR) FROM information_schema.TABLES \
         WHERE `TABLE_SCHEMA` = DATABASE() AND `TABLE_NAME` LIKE 'tabHD %'",
    )
    .fetch_all(pool)
    .await
    .unwrap();
    assert!(ours.len() >= 4, "{ours:?}");
    let tables: Vec<String> = ours.iter().map(|t| format!("`{t}`")).collect();
    let mut conn = pool.acquire().await.unwrap();
    sqlx::query("SET FOREIGN_KEY_CHECKS = 0")
        .execute(&mut *conn)
        .await
        .unwrap();
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "DROP TABLE {}",
        tables.join(", ")
    )))
    .execute(&mut *conn)
    .await
    .unwrap();
    sqlx::query("SET FOREIGN_KEY_CHECKS = 1")
        .execute(&mut *conn)
        .await
        .unwrap();
    drop(conn);
    erp.db.migrate().await.unwrap();
    let kept: String =
        sqlx::query_scalar("SELECT `customer_name` FROM `tabCustomer` WHERE `name` = 'CUST-X'")
            .fetch_one(pool)
            .await
            .unwrap();
    assert_eq!(kept, "Existing");
}

#[tokio::test]
async fn a_role_refuses_a_foreign_engine_before_connecting() {
    for (role, url) in [
        (Role::Erp, "postgres://127.0.0.1/none"),
        (Role::Gateway, "mysql://127.0.0.1/none"),
        (Role::Sync, "mysql://127.0.0.1/none"),
    ] {
        let refused = Database::connect(role, url, &PoolSettings::default()).await;
        assert!(
            matches!(refused, Err(StoreError::EngineNotSupported { .. })),
            "{role} accepted {url}"
        );
    }
}

async fn execute(db: &Database, sql: String) {
    let sql = sqlx::AssertSqlSafe(sql);
    match db.pool() {
        Pool::Sqlite(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
        Pool::MySql(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
        Pool::Postgres(pool) => sqlx::query(sql).execute(pool).await.map(drop).unwrap(),
    }
}

/// `status` sees every migration applied, `verify` finds the fresh schema
/// whole; an applied migration whose recorded checksum no longer matches
/// is reported as edited and `migrate` refuses to run; a removed history
/// row is pending and an extra one unknown.
async fn history_is_checked(role: Role, engine: Engine) {
    use harsha_store::integrity::MigrationState;

    let test = TestDatabase::new(role, engine).await;
    let statuses = test.db.migration_status().await.unwrap();
    assert!(!statuses.is_empty());
    assert!(
        statuses
            .iter()
            .all(|s| s.state == MigrationState::Applied && s.installed_on.is_some()),
        "{role} on {engine}: {statuses:?}"
    );
    let verification = test.db.verify().await.unwrap();
    assert!(verification.holds(), "{verification:?}");
    assert!(!verification.tables.is_empty() && !verification.checks.is_empty());

    let table = format!("_harsha_migrations_{}", role.name());
    let (first, last) = (statuses[0].version, statuses[statuses.len() - 1].version);
    let tampered = match engine {
        Engine::Postgres => "'\\x00'::bytea",
        Engine::MySql => "X'00'",
        Engine::Sqlite => "X'00'",
    };
    execute(
        &test.db,
        format!("UPDATE {table} SET checksum = {tampered} WHERE version = {first}"),
    )
    .await;
    execute(
        &test.db,
        format!("DELETE FROM {table} WHERE version = {last}"),
    )
    .await;
    let unknown = match engine {
        Engine::Postgres => format!(
            "INSERT INTO {table} (version, description, success, checksum, execution_time) \
             VALUES (29991231000001, 'from a newer build', TRUE, '\\x00'::bytea, 1)"
        ),
        _ => format!(
            "INSERT INTO {table} (version, description, success, checksum, execution_time) \
             VALUES (29991231000001, 'from a newer build', TRUE, X'00', 1)"
        ),
    };
    execute(&test.db, unknown).await;
    let statuses = test.db.migration_status().await.unwrap();
    let state = |version: i64| {
        statuses
            .iter()
            .find(|s| s.version == version)
            .map(|s| s.state)
    };
    assert_eq!(state(first), Some(MigrationState::Edited));
    assert_eq!(state(last), Some(MigrationState::Pending));
    assert_eq!(state(29_991_231_000_001), Some(MigrationState::Unknown));
    assert!(
        test.db.migrate().await.is_err(),
        "an edited migration stops `migrate`"
    );
}

#[tokio::test]
async fn migration_history_is_checked_on_every_engine() {
    for (role, engine) in [
        (Role::Erp, Engine::Sqlite),
        (Role::Erp, Engine::MySql),
        (Role::Gateway, Engine::Postgres),
        (Role::Sync, Engine::Postgres),
        (Role::Sync, Engine::Sqlite),
    ] {
        history_is_checked(role, engine).await;
    }
}
