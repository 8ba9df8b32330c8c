//! ERPNext rows that the Harsha extensions refer to but do not own:
//! customers, territories, items and warehouses, inserted straight into the stand-in tables.
#![allow(clippy::expect_used)]

use harsha_store::{
    Database, erp_dispatch,
    erpnext::{self, StandInCustomer},
};

/// Inserts an ERPNext customer.
///
/// # Panics
/// When the insert fails.
pub async fn customer(db: &Database, name: &str, customer_name: &str, group: &str, disabled: bool) {
    let customer = StandInCustomer {
        name,
        customer_name,
        customer_group: group,
        territory: "India",
        disabled,
    };
    erpnext::insert_customer(&db.erp_pool().expect("an erp database"), customer)
        .await
        .expect("insert customer");
}

/// Inserts an ERPNext territory under `parent`.
///
/// # Panics
/// When the insert fails.
pub async fn territory(db: &Database, name: &str, parent: &str) {
    erpnext::insert_territory(
        &db.erp_pool().expect("an erp database"),
        name,
        parent,
        false,
    )
    .await
    .expect("insert territory");
}

/// Inserts an ERPNext batch-tracked item (unit `Kg`).
///
/// # Panics
/// When the insert fails.
pub async fn item(db: &Database, item_code: &str) {
    erpnext::insert_item(
        &db.erp_pool().expect("an erp database"),
        item_code,
        item_code,
        "Sweets",
        "Kg",
        false,
    )
    .await
    .expect("insert item");
}

/// Inserts an ERPNext item group under `parent` (empty for a root).
///
/// # Panics
/// When the insert fails.
pub async fn item_group(db: &Database, name: &str, parent: &str) {
    erpnext::insert_item_group(&db.erp_pool().expect("an erp database"), name, parent, true)
        .await
        .expect("insert item group");
}

/// Inserts an ERPNext warehouse.
///
/// # Panics
/// When the insert fails.
pub async fn warehouse(db: &Database, name: &str) {
    erpnext::insert_warehouse(&db.erp_pool().expect("an erp database"), name, false)
        .await
        .expect("insert warehouse");
}

/// The outbox event types recorded for one entity, oldest first.
///
/// # Panics
/// When the query fails.
pub async fn outbox_events(db: &Database, entity_name: &str) -> Vec<String> {
    let pool = db.erp_pool().expect("an erp database");
    erp_dispatch!(&pool, pool => {
        sqlx::query_scalar(
            "SELECT `event_type` FROM `tabHD Sync Outbox` WHERE `entity_name` = ? ORDER BY `occurred_at`, `name`",
        )
        .bind(entity_name)
        .fetch_all(pool)
        .await
        .expect("read outbox")
    })
}

/// The number of rows in `table` of the erp database.
///
/// # Panics
/// When the query fails.
pub async fn row_count(db: &Database, table: &str) -> i64 {
    let pool = db.erp_pool().expect("an erp database");
    let sql = format!("SELECT COUNT(*) FROM `{}`", table.replace('`', ""));
    erp_dispatch!(&pool, pool => {
        sqlx::query_scalar(sqlx::AssertSqlSafe(sql.clone()))
            .fetch_one(pool)
            .await
            .expect("count rows")
    })
}
