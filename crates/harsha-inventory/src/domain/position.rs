//! Reports built from batches: an item's stock position per warehouse with
//! expiry buckets, and batches near expiry.

use std::collections::BTreeMap;

use chrono::NaiveDate;
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Batch, BatchStatus, ExpiryLevel, ExpiryThresholds, days_to_expiry};

/// Stock on hand by expiry level.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryBuckets {
    /// Expired (still on hand).
    pub expired: Decimal,
    /// Critical.
    pub critical: Decimal,
    /// Warning.
    pub warning: Decimal,
    /// Further off.
    pub ok: Decimal,
}

impl ExpiryBuckets {
    fn add(&mut self, level: ExpiryLevel, qty: Decimal) {
        let bucket = match level {
            ExpiryLevel::Expired => &mut self.expired,
            ExpiryLevel::Critical => &mut self.critical,
            ExpiryLevel::Warning => &mut self.warning,
            ExpiryLevel::Ok => &mut self.ok,
        };
        *bucket = (*bucket + qty).normalize();
    }
}

/// An item's stock in one warehouse.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct WarehousePosition {
    /// The warehouse.
    pub warehouse: String,
    /// Free stock in active batches, usable today.
    pub available: Decimal,
    /// Stock held by allocations.
    pub reserved: Decimal,
    /// Stock in quarantined batches.
    pub quarantined: Decimal,
    /// Everything on hand, by expiry level.
    pub buckets: ExpiryBuckets,
}

/// Stock on hand of one batch-status/expiry group, as the store sums it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StockGroup {
    /// The warehouse.
    pub warehouse: String,
    /// The batches' status.
    pub status: BatchStatus,
    /// Their expiry date.
    pub expiry_date: NaiveDate,
    /// Their free stock.
    pub available: Decimal,
    /// Their reserved stock.
    pub reserved: Decimal,
}

/// An item's stock across warehouses on a date.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StockPosition {
    /// The item.
    pub item_code: String,
    /// The date the buckets are computed for.
    pub as_of: NaiveDate,
    /// Per warehouse, by name.
    pub warehouses: Vec<WarehousePosition>,
    /// All warehouses together.
    pub total: WarehousePosition,
}

impl StockPosition {
    /// Builds the position from stock groups. Free stock counts as
    /// available only in active batches that have not expired on `as_of`.
    pub fn build(
        item_code: &str,
        as_of: NaiveDate,
        thresholds: ExpiryThresholds,
        groups: impl IntoIterator<Item = StockGroup>,
    ) -> Self {
        let mut warehouses: BTreeMap<String, WarehousePosition> = BTreeMap::new();
        let mut total = WarehousePosition::default();
        for group in groups {
            let level = thresholds.classify(group.expiry_date, as_of);
            let on_hand = group.available + group.reserved;
            let position = warehouses
                .entry(group.warehouse.clone())
                .or_insert_with(|| WarehousePosition {
                    warehouse: group.warehouse.clone(),
                    ..WarehousePosition::default()
                });
            for position in [&mut *position, &mut total] {
                position.buckets.add(level, on_hand);
                position.reserved = (position.reserved + group.reserved).normalize();
                match group.status {
                    BatchStatus::Active if level != ExpiryLevel::Expired => {
                        position.available = (position.available + group.available).normalize();
                    }
                    BatchStatus::Quarantined => {
                        position.quarantined = (position.quarantined + on_hand).normalize();
                    }
                    _ => {}
                }
            }
        }
        Self {
            item_code: item_code.to_owned(),
            as_of,
            warehouses: warehouses.into_values().collect(),
            total,
        }
    }
}

/// A batch near or past expiry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiringBatch {
    /// The batch.
    pub batch: Batch,
    /// Its level on the date asked about.
    pub level: ExpiryLevel,
    /// Days from that date to its expiry date.
    pub days_to_expiry: i64,
}

impl ExpiringBatch {
    /// Classifies `batch` on `as_of`.
    pub fn classify(batch: Batch, thresholds: ExpiryThresholds, as_of: NaiveDate) -> Self {
        Self {
            level: thresholds.classify(batch.expiry_date, as_of),
            days_to_expiry: days_to_expiry(batch.expiry_date, as_of),
            batch,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn positions_bucket_on_hand_stock_and_count_only_usable_stock_as_available() {
        let as_of = NaiveDate::from_ymd_opt(2026, 11, 26).unwrap_or_default();
        let group = |warehouse: &str, status, days, available: i64, reserved: i64| StockGroup {
            warehouse: warehouse.into(),
            status,
            expiry_date: as_of + chrono::Days::new(days),
            available: Decimal::from(available),
            reserved: Decimal::from(reserved),
        };
        let position = StockPosition::build(
            "KAJU-KATLI",
            as_of,
            ExpiryThresholds::default(),
            [
                group("Stores", BatchStatus::Active, 5, 10, 2),
                group("Stores", BatchStatus::Active, 0, 4, 0),
                group("Stores", BatchStatus::Quarantined, 40, 3, 0),
                group("Mumbai", BatchStatus::Active, 20, 7, 0),
            ],
        );
        assert_eq!(position.warehouses.len(), 2);
        let stores = &position.warehouses[1];
        assert_eq!(stores.warehouse, "Stores");
        assert_eq!(stores.available, Decimal::from(10));
        assert_eq!(stores.reserved, Decimal::from(2));
        assert_eq!(stores.quarantined, Decimal::from(3));
        assert_eq!(stores.buckets.critical, Decimal::from(12));
        assert_eq!(stores.buckets.expired, Decimal::from(4));
        assert_eq!(stores.buckets.ok, Decimal::from(3));
        assert_eq!(position.total.available, Decimal::from(17));
        assert_eq!(position.total.buckets.warning, Decimal::from(7));
    }
}
