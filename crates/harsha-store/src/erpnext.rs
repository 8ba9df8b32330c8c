//! Rows of ERPNext's own tables (`tabCustomer`, `tabTerritory`, `tabItem`,
//! `tabItem Group`, `tabWarehouse`) for the embedded database, where ERPNext is absent: demo
//! data and tests insert customers, territories, items and warehouses
//! through these. Against a real ERPNext
//! database, ERPNext owns these rows and nothing here should be called.

use crate::{ErpPool, erp_dispatch};

const INSERT_CUSTOMER: &str = "INSERT INTO `tabCustomer` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `customer_name`, `customer_group`, `territory`, `disabled`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, ?, ?, ?)";
const INSERT_TERRITORY: &str = "INSERT INTO `tabTerritory` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `territory_name`, `parent_territory`, `is_group`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, ?, ?)";

const INSERT_ITEM: &str = "INSERT INTO `tabItem` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `item_code`, `item_name`, `item_group`, `stock_uom`, `has_batch_no`, `has_expiry_date`, `disabled`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, ?, ?, ?, 1, 1, ?)";
const INSERT_WAREHOUSE: &str = "INSERT INTO `tabWarehouse` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `warehouse_name`, `is_group`, `company`, `disabled`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, 0, 'Harsha Delights', ?)";

const INSERT_ITEM_GROUP: &str = "INSERT INTO `tabItem Group` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `item_group_name`, `parent_item_group`, `is_group`) \
     VALUES (?, CURRENT_TIMESTAMP, CURRENT_TIMESTAMP, 'Administrator', 'Administrator', ?, ?, ?)";

/// An ERPNext customer's fields, as the stand-in table keeps them.
#[derive(Debug, Clone, Copy)]
pub struct StandInCustomer<'a> {
    /// The document name (e.g. `CUST-0001`).
    pub name: &'a str,
    /// Display name.
    pub customer_name: &'a str,
    /// ERPNext customer group.
    pub customer_group: &'a str,
    /// ERPNext territory.
    pub territory: &'a str,
    /// Whether the customer is disabled.
    pub disabled: bool,
}

/// Inserts a customer into `tabCustomer`.
pub async fn insert_customer(
    pool: &ErpPool,
    customer: StandInCustomer<'_>,
) -> Result<(), sqlx::Error> {
    erp_dispatch!(pool, pool => {
        sqlx::query(INSERT_CUSTOMER)
            .bind(customer.name)
            .bind(customer.customer_name)
            .bind(customer.customer_group)
            .bind(customer.territory)
            .bind(i32::from(customer.disabled))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Inserts a territory into `tabTerritory` under `parent` (empty for the root).
pub async fn insert_territory(
    pool: &ErpPool,
    name: &str,
    parent: &str,
    is_group: bool,
) -> Result<(), sqlx::Error> {
    erp_dispatch!(pool, pool => {
        sqlx::query(INSERT_TERRITORY)
            .bind(name)
            .bind(name)
            .bind(parent)
            .bind(i32::from(is_group))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Inserts a batch-tracked stock item into `tabItem`.
pub async fn insert_item(
    pool: &ErpPool,
    item_code: &str,
    item_name: &str,
    item_group: &str,
    stock_uom: &str,
    disabled: bool,
) -> Result<(), sqlx::Error> {
    erp_dispatch!(pool, pool => {
        sqlx::query(INSERT_ITEM)
            .bind(item_code)
            .bind(item_code)
            .bind(item_name)
            .bind(item_group)
            .bind(stock_uom)
            .bind(i32::from(disabled))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Inserts a (leaf) warehouse into `tabWarehouse`.
pub async fn insert_warehouse(
    pool: &ErpPool,
    name: &str,
    disabled: bool,
) -> Result<(), sqlx::Error> {
    erp_dispatch!(pool, pool => {
        sqlx::query(INSERT_WAREHOUSE)
            .bind(name)
            .bind(name)
            .bind(i32::from(disabled))
            .execute(pool)
            .await?;
    });
    Ok(())
}

/// Inserts an item group into `tabItem Group` under `parent` (empty for the
/// root).
pub async fn insert_item_group(
    pool: &ErpPool,
    name: &str,
    parent: &str,
    is_group: bool,
) -> Result<(), sqlx::Error> {
    erp_dispatch!(pool, pool => {
        sqlx::query(INSERT_ITEM_GROUP)
            .bind(name)
            .bind(name)
            .bind(parent)
            .bind(i32::from(is_group))
            .execute(pool)
            .await?;
    });
    Ok(())
}
