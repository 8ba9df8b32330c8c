//! ERPNext rows that the Harsha extensions refer to but do not own:
//! customers and territories, inserted straight into the stand-in tables.
#![allow(clippy::expect_used)]

use harsha_store::{erp_dispatch, Database};

const INSERT_CUSTOMER: &str = "INSERT INTO `tabCustomer` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `customer_name`, `customer_group`, `territory`, `disabled`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, ?, ?, ?)";
const INSERT_TERRITORY: &str = "INSERT INTO `tabTerritory` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `territory_name`, `parent_territory`, `is_group`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, ?, 0)";

/// Inserts an ERPNext customer.
///
/// # Panics
/// When the insert fails.
pub async fn customer(db: &Database, name: &str, customer_name: &str, group: &str, disabled: bool) {
    let pool = db.erp_pool().expect("an erp database");
    erp_dispatch!(&pool, pool => {
        sqlx::query(INSERT_CUSTOMER)
            .bind(name)
            .bind(customer_name)
            .bind(group)
            .bind("India")
            .bind(i32::from(disabled))
            .execute(pool)
            .await
            .expect("insert customer");
    });
}

/// Inserts an ERPNext territory under `parent`.
///
/// # Panics
/// When the insert fails.
pub async fn territory(db: &Database, name: &str, parent: &str) {
    let pool = db.erp_pool().expect("an erp database");
    erp_dispatch!(&pool, pool => {
        sqlx::query(INSERT_TERRITORY)
            .bind(name)
            .bind(name)
            .bind(parent)
            .execute(pool)
            .await
            .expect("insert territory");
    });
}

/// Counts the outbox events recorded for one entity.
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
