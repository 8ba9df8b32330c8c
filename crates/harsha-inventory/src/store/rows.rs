//! Rows as the database returns them, and their conversion to domain types.
//! Stored values that do not parse (which only a hand edit of the database
//! could cause) surface as a storage error, never as a panic.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use harsha_store::{DbDecimal, StoreError};
use rust_decimal::Decimal;

use crate::{
    InventoryError,
    domain::{
        Allergens, Allocation, AllocationLine, Balance, Batch, Bounds, Change, Movement, Nutrition,
        Reference, ReorderParams, StockGroup, StorageConditions, ValueError,
    },
};

fn corrupt(column: &str, error: impl std::error::Error + Send + Sync + 'static) -> InventoryError {
    InventoryError::Store(StoreError::Sql(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(error),
    }))
}

fn parse<T: FromStr<Err = ValueError>>(column: &str, value: &str) -> Result<T, InventoryError> {
    value.parse().map_err(|e| corrupt(column, e))
}

fn bounds(min: Option<DbDecimal>, max: Option<DbDecimal>) -> Option<Bounds> {
    match (min, max) {
        (Some(min), Some(max)) => Some(Bounds {
            min: min.get(),
            max: max.get(),
        }),
        _ => None,
    }
}

fn days(column: &str, value: i64) -> Result<u32, InventoryError> {
    u32::try_from(value).map_err(|e| corrupt(column, e))
}

/// A `tabHD Batch Master` row (see `batch_columns!`).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct BatchRow {
    pub name: String,
    pub item_code: String,
    pub warehouse: String,
    pub batch_no: String,
    pub supplier: Option<String>,
    pub manufacturing_date: NaiveDate,
    pub expiry_date: NaiveDate,
    pub received_at: NaiveDateTime,
    pub received_qty: DbDecimal,
    pub available_qty: DbDecimal,
    pub reserved_qty: DbDecimal,
    pub stock_uom: String,
    pub quality_grade: String,
    pub storage_temp_min: Option<DbDecimal>,
    pub storage_temp_max: Option<DbDecimal>,
    pub storage_humidity_min: Option<DbDecimal>,
    pub storage_humidity_max: Option<DbDecimal>,
    pub energy_kcal: Option<DbDecimal>,
    pub protein_g: Option<DbDecimal>,
    pub carbohydrate_g: Option<DbDecimal>,
    pub sugars_g: Option<DbDecimal>,
    pub fat_g: Option<DbDecimal>,
    pub saturated_fat_g: Option<DbDecimal>,
    pub sodium_mg: Option<DbDecimal>,
    pub allergens: String,
    pub status: String,
    pub status_reason: Option<String>,
    pub creation: NaiveDateTime,
    pub modified: NaiveDateTime,
}

impl TryFrom<BatchRow> for Batch {
    type Error = InventoryError;

    fn try_from(row: BatchRow) -> Result<Self, Self::Error> {
        let nutrition = match (
            row.energy_kcal,
            row.protein_g,
            row.carbohydrate_g,
            row.sugars_g,
            row.fat_g,
            row.saturated_fat_g,
            row.sodium_mg,
        ) {
            (Some(e), Some(p), Some(c), Some(s), Some(f), Some(sf), Some(na)) => Some(Nutrition {
                energy_kcal: e.get(),
                protein_g: p.get(),
                carbohydrate_g: c.get(),
                sugars_g: s.get(),
                fat_g: f.get(),
                saturated_fat_g: sf.get(),
                sodium_mg: na.get(),
            }),
            _ => None,
        };
        Ok(Batch {
            grade: parse("quality_grade", &row.quality_grade)?,
            status: parse("status", &row.status)?,
            allergens: Allergens::from_stored(&row.allergens)
                .map_err(|e| corrupt("allergens", e))?,
            storage: StorageConditions {
                temperature_c: bounds(row.storage_temp_min, row.storage_temp_max),
                humidity_pct: bounds(row.storage_humidity_min, row.storage_humidity_max),
            },
            nutrition,
            id: row.name,
            item_code: row.item_code,
            warehouse: row.warehouse,
            batch_no: row.batch_no,
            supplier: row.supplier,
            manufacturing_date: row.manufacturing_date,
            expiry_date: row.expiry_date,
            received_at: row.received_at,
            received_qty: row.received_qty.get(),
            available_qty: row.available_qty.get(),
            reserved_qty: row.reserved_qty.get(),
            stock_uom: row.stock_uom,
            status_reason: row.status_reason,
            created: row.creation,
            modified: row.modified,
        })
    }
}

/// A `tabHD Batch Movement` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MovementRow {
    pub name: String,
    pub creation: NaiveDateTime,
    pub owner: String,
    pub batch: String,
    pub item_code: String,
    pub warehouse: String,
    pub movement_type: String,
    pub available_change: DbDecimal,
    pub reserved_change: DbDecimal,
    pub available_after: DbDecimal,
    pub reserved_after: DbDecimal,
    pub reason: Option<String>,
    pub reference_doctype: Option<String>,
    pub reference_name: Option<String>,
    pub allocation: Option<String>,
    pub transfer: Option<String>,
}

impl TryFrom<MovementRow> for Movement {
    type Error = InventoryError;

    fn try_from(row: MovementRow) -> Result<Self, Self::Error> {
        Ok(Movement {
            kind: parse("movement_type", &row.movement_type)?,
            id: row.name,
            batch: row.batch,
            item_code: row.item_code,
            warehouse: row.warehouse,
            change: Change {
                available: row.available_change.get(),
                reserved: row.reserved_change.get(),
            },
            balance_after: Balance {
                available: row.available_after.get(),
                reserved: row.reserved_after.get(),
            },
            reason: row.reason,
            reference: Reference {
                doctype: row.reference_doctype,
                name: row.reference_name,
            },
            allocation: row.allocation,
            transfer: row.transfer,
            actor: row.owner,
            at: row.creation,
        })
    }
}

/// A `tabHD Stock Allocation` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AllocationRow {
    pub name: String,
    pub creation: NaiveDateTime,
    pub modified: NaiveDateTime,
    pub request_id: Option<String>,
    pub item_code: String,
    pub warehouse: Option<String>,
    pub requested_qty: DbDecimal,
    pub strategy: String,
    pub min_shelf_life_days: i64,
    pub min_grade: String,
    pub status: String,
    pub expires_at: NaiveDateTime,
    pub reference_doctype: Option<String>,
    pub reference_name: Option<String>,
}

/// A `tabHD Stock Allocation Line` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AllocationLineRow {
    pub batch: String,
    pub batch_no: String,
    pub warehouse: String,
    pub expiry_date: NaiveDate,
    pub quality_grade: String,
    pub qty: DbDecimal,
}

impl AllocationRow {
    /// The allocation with its lines.
    pub fn with_lines(self, lines: Vec<AllocationLineRow>) -> Result<Allocation, InventoryError> {
        let lines = lines
            .into_iter()
            .map(|line| {
                Ok(AllocationLine {
                    grade: parse("quality_grade", &line.quality_grade)?,
                    batch: line.batch,
                    batch_no: line.batch_no,
                    warehouse: line.warehouse,
                    expiry_date: line.expiry_date,
                    qty: line.qty.get(),
                })
            })
            .collect::<Result<Vec<_>, InventoryError>>()?;
        Ok(Allocation {
            strategy: parse("strategy", &self.strategy)?,
            min_grade: parse("min_grade", &self.min_grade)?,
            status: parse("status", &self.status)?,
            min_shelf_life_days: days("min_shelf_life_days", self.min_shelf_life_days)?,
            qty: self.requested_qty.get(),
            id: self.name,
            request_id: self.request_id,
            item_code: self.item_code,
            warehouse: self.warehouse,
            expires_at: self.expires_at,
            reference: Reference {
                doctype: self.reference_doctype,
                name: self.reference_name,
            },
            lines,
            created: self.creation,
            modified: self.modified,
        })
    }
}

/// A `tabHD Item Warehouse Optimization` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct OptimizationRow {
    pub name: String,
    pub item_code: String,
    pub warehouse: String,
    pub reorder_level: DbDecimal,
    pub reorder_qty: DbDecimal,
    pub safety_stock: DbDecimal,
    pub lead_time_days: i64,
    pub min_qty: DbDecimal,
    pub max_qty: DbDecimal,
    pub consumption_window_days: i64,
    pub avg_daily_issue: Option<DbDecimal>,
    pub reorder_point: Option<DbDecimal>,
    pub usable_qty: Option<DbDecimal>,
    pub last_evaluated_at: Option<NaiveDateTime>,
}

impl OptimizationRow {
    /// The parameters the row holds.
    pub fn params(&self) -> Result<ReorderParams, InventoryError> {
        Ok(ReorderParams {
            reorder_level: self.reorder_level.get(),
            reorder_qty: self.reorder_qty.get(),
            safety_stock: self.safety_stock.get(),
            lead_time_days: days("lead_time_days", self.lead_time_days)?,
            min_qty: self.min_qty.get(),
            max_qty: self.max_qty.get(),
            consumption_window_days: days("consumption_window_days", self.consumption_window_days)?,
        })
    }
}

/// A `tabHD Procurement Trigger` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct TriggerRow {
    pub name: String,
    pub creation: NaiveDateTime,
    pub item_code: String,
    pub warehouse: String,
    pub usable_qty: DbDecimal,
    pub reorder_point: DbDecimal,
    pub suggested_qty: DbDecimal,
    pub status: String,
    pub resolved_at: Option<NaiveDateTime>,
}

/// Sums of stock of an item per warehouse, status and expiry date.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct PositionRow {
    pub warehouse: String,
    pub status: String,
    pub expiry_date: NaiveDate,
    pub available_qty: DbDecimal,
    pub reserved_qty: DbDecimal,
}

impl TryFrom<PositionRow> for StockGroup {
    type Error = InventoryError;

    fn try_from(row: PositionRow) -> Result<Self, Self::Error> {
        Ok(StockGroup {
            status: parse("status", &row.status)?,
            warehouse: row.warehouse,
            expiry_date: row.expiry_date,
            available: row.available_qty.get(),
            reserved: row.reserved_qty.get(),
        })
    }
}

/// A decimal read from an aggregate.
pub(super) fn sum(value: Option<DbDecimal>) -> Decimal {
    value.map(DbDecimal::get).unwrap_or_default()
}
