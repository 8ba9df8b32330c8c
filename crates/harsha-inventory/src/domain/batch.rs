//! Batches and their movements: what a batch is, the statuses it moves
//! through, and how each kind of movement changes its balance.

use std::str::FromStr;

use chrono::{NaiveDate, NaiveDateTime};
use harsha_types::{DocName, Quantity, ValueError};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{Allergens, BatchNo, Nutrition, QualityGrade, StorageConditions};

/// Where a batch is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum BatchStatus {
    /// Usable: may be issued, transferred and allocated.
    Active,
    /// Held for a quality or storage problem: only a write-off or lifting
    /// the quarantine may touch it.
    Quarantined,
    /// Past its expiry date (set by the expiry scan).
    Expired,
    /// Nothing left on hand.
    Consumed,
}

impl BatchStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Quarantined => "Quarantined",
            Self::Expired => "Expired",
            Self::Consumed => "Consumed",
        }
    }
}

impl FromStr for BatchStatus {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "Active" => Ok(Self::Active),
            "Quarantined" => Ok(Self::Quarantined),
            "Expired" => Ok(Self::Expired),
            "Consumed" => Ok(Self::Consumed),
            other => Err(ValueError(format!("unknown batch status {other:?}"))),
        }
    }
}

/// The document a movement was made for (a sales order, a stock entry…).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Reference {
    /// The ERPNext doctype, e.g. `Sales Order`.
    pub doctype: Option<String>,
    /// The document name.
    pub name: Option<String>,
}

/// A batch received into a warehouse, as the request gives it (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBatch {
    /// The item.
    pub item_code: DocName,
    /// The receiving warehouse.
    pub warehouse: DocName,
    /// The manufacturer's batch number.
    pub batch_no: BatchNo,
    /// The supplier, when bought in.
    pub supplier: Option<DocName>,
    /// The day it was made.
    pub manufacturing_date: NaiveDate,
    /// The first day it may no longer be sold or used.
    pub expiry_date: NaiveDate,
    /// How much arrived.
    pub qty: Quantity,
    /// The unit of `qty` (the item's stock unit when not given).
    pub stock_uom: Option<String>,
    /// Its quality grade.
    pub grade: QualityGrade,
    /// The conditions it must be kept in.
    pub storage: StorageConditions,
    /// Nutrition per 100 g, when labelled.
    pub nutrition: Option<Nutrition>,
    /// The allergens it contains.
    pub allergens: Allergens,
    /// The receipt document.
    pub reference: Reference,
}

impl NewBatch {
    /// Checks the rules between fields: expiry after manufacture.
    pub fn validate(self) -> Result<Self, (&'static str, ValueError)> {
        if self.expiry_date <= self.manufacturing_date {
            return Err((
                "expiry_date",
                ValueError(format!(
                    "the expiry date {} must be after the manufacturing date {}",
                    self.expiry_date, self.manufacturing_date
                )),
            ));
        }
        Ok(self)
    }
}

/// A batch of an item in one warehouse.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Batch {
    /// The record's id.
    pub id: String,
    /// The item.
    pub item_code: String,
    /// The warehouse holding it.
    pub warehouse: String,
    /// The manufacturer's batch number (shared by the rows of one batch in
    /// several warehouses).
    pub batch_no: String,
    /// The supplier.
    pub supplier: Option<String>,
    /// The day it was made.
    pub manufacturing_date: NaiveDate,
    /// The first day it is no longer usable.
    pub expiry_date: NaiveDate,
    /// When it was first received (kept across transfers; FIFO order).
    pub received_at: NaiveDateTime,
    /// Everything received into this row (receipts and transfers in).
    pub received_qty: Decimal,
    /// On hand and free.
    pub available_qty: Decimal,
    /// On hand and held by allocations.
    pub reserved_qty: Decimal,
    /// The unit of the quantities.
    pub stock_uom: String,
    /// Its quality grade.
    pub grade: QualityGrade,
    /// The conditions it must be kept in.
    pub storage: StorageConditions,
    /// Nutrition per 100 g.
    pub nutrition: Option<Nutrition>,
    /// Its allergens.
    pub allergens: Allergens,
    /// Where it is in its life.
    pub status: BatchStatus,
    /// Why it has that status (quarantine reason…).
    pub status_reason: Option<String>,
    /// Created (UTC).
    pub created: NaiveDateTime,
    /// Last changed (UTC).
    pub modified: NaiveDateTime,
}

impl Batch {
    /// Stock on hand: available plus reserved.
    pub fn on_hand(&self) -> Decimal {
        self.available_qty + self.reserved_qty
    }

    /// The balance the movements add up to.
    pub fn balance(&self) -> Balance {
        Balance {
            available: self.available_qty,
            reserved: self.reserved_qty,
        }
    }
}

/// What a movement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum MovementType {
    /// Stock arrives (available +).
    Receipt,
    /// Stock leaves: free stock issued directly (available −) or a
    /// confirmed reservation (reserved −).
    Issue,
    /// The source leg of a transfer (available −).
    TransferOut,
    /// The target leg of a transfer (available +).
    TransferIn,
    /// A stock count correction (available ±).
    Adjustment,
    /// Free stock held for an allocation (available −, reserved +).
    Reservation,
    /// A reservation given back (reserved −, available +).
    Release,
    /// Stock destroyed for expiry or quality (available −).
    WriteOff,
}

impl MovementType {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Receipt => "Receipt",
            Self::Issue => "Issue",
            Self::TransferOut => "Transfer Out",
            Self::TransferIn => "Transfer In",
            Self::Adjustment => "Adjustment",
            Self::Reservation => "Reservation",
            Self::Release => "Release",
            Self::WriteOff => "Write Off",
        }
    }
}

impl FromStr for MovementType {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        Ok(match value {
            "Receipt" => Self::Receipt,
            "Issue" => Self::Issue,
            "Transfer Out" => Self::TransferOut,
            "Transfer In" => Self::TransferIn,
            "Adjustment" => Self::Adjustment,
            "Reservation" => Self::Reservation,
            "Release" => Self::Release,
            "Write Off" => Self::WriteOff,
            other => return Err(ValueError(format!("unknown movement type {other:?}"))),
        })
    }
}

/// A batch's free and reserved quantities.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Balance {
    /// On hand and free.
    pub available: Decimal,
    /// On hand and held by allocations.
    pub reserved: Decimal,
}

/// A change to a balance: what a movement adds to each quantity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Change {
    /// Added to the available quantity (negative to take away).
    pub available: Decimal,
    /// Added to the reserved quantity.
    pub reserved: Decimal,
}

impl Change {
    /// The change a movement of `kind` for `qty` makes. An issue takes free
    /// stock unless `from_reservation`; an adjustment adds `qty` (use
    /// [`Change::adjustment`] to take away).
    pub fn of(kind: MovementType, qty: Quantity, from_reservation: bool) -> Self {
        let qty = qty.get();
        let (available, reserved) = match kind {
            MovementType::Receipt | MovementType::TransferIn | MovementType::Adjustment => {
                (qty, Decimal::ZERO)
            }
            MovementType::Issue if from_reservation => (Decimal::ZERO, -qty),
            MovementType::Issue | MovementType::TransferOut | MovementType::WriteOff => {
                (-qty, Decimal::ZERO)
            }
            MovementType::Reservation => (-qty, qty),
            MovementType::Release => (qty, -qty),
        };
        Self {
            available,
            reserved,
        }
    }

    /// A signed stock-count correction of the available quantity.
    pub fn adjustment(delta: Decimal) -> Self {
        Self {
            available: delta,
            reserved: Decimal::ZERO,
        }
    }
}

/// A change would take a quantity below zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("needs {needed} but only {held} is there")]
pub struct Shortfall {
    /// How much the change takes.
    pub needed: Decimal,
    /// How much there is.
    pub held: Decimal,
}

impl Balance {
    /// The balance after `change`, unless it would take a quantity below
    /// zero.
    pub fn apply(self, change: Change) -> Result<Self, Shortfall> {
        let available = self.available + change.available;
        if available.is_sign_negative() && !available.is_zero() {
            return Err(Shortfall {
                needed: -change.available,
                held: self.available,
            });
        }
        let reserved = self.reserved + change.reserved;
        if reserved.is_sign_negative() && !reserved.is_zero() {
            return Err(Shortfall {
                needed: -change.reserved,
                held: self.reserved,
            });
        }
        Ok(Self {
            available: available.normalize(),
            reserved: reserved.normalize(),
        })
    }

    /// Stock on hand.
    pub fn on_hand(self) -> Decimal {
        self.available + self.reserved
    }
}

/// One immutable change to a batch's quantities.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Movement {
    /// The movement's id.
    pub id: String,
    /// The batch row it changed.
    pub batch: String,
    /// The batch's item.
    pub item_code: String,
    /// The batch's warehouse.
    pub warehouse: String,
    /// What it did.
    pub kind: MovementType,
    /// What it added to each quantity.
    pub change: Change,
    /// The batch's balance after it.
    pub balance_after: Balance,
    /// Why.
    pub reason: Option<String>,
    /// The document it was made for.
    pub reference: Reference,
    /// The allocation it belongs to, if any.
    pub allocation: Option<String>,
    /// The transfer it is a leg of, if any.
    pub transfer: Option<String>,
    /// Who made it.
    pub actor: String,
    /// When (UTC).
    pub at: NaiveDateTime,
}

/// Why stock is written off.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum WriteOffCause {
    /// It expired.
    Expiry,
    /// It failed a quality check.
    Quality,
}

impl WriteOffCause {
    /// A label for the movement's reason.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expiry => "expiry",
            Self::Quality => "quality",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qty(value: &str) -> Quantity {
        Quantity::parse(value).unwrap_or_else(|_| unreachable!())
    }

    #[test]
    fn each_movement_moves_stock_the_right_way() {
        let start = Balance {
            available: Decimal::from(10),
            reserved: Decimal::from(2),
        };
        let after =
            |kind, from_reservation| start.apply(Change::of(kind, qty("1.5"), from_reservation));
        let balance = |available: &str, reserved: &str| {
            Ok(Balance {
                available: available.parse().unwrap_or_default(),
                reserved: reserved.parse().unwrap_or_default(),
            })
        };
        assert_eq!(after(MovementType::Receipt, false), balance("11.5", "2"));
        assert_eq!(after(MovementType::Issue, false), balance("8.5", "2"));
        assert_eq!(after(MovementType::Issue, true), balance("10", "0.5"));
        assert_eq!(
            after(MovementType::Reservation, false),
            balance("8.5", "3.5")
        );
        assert_eq!(after(MovementType::Release, false), balance("11.5", "0.5"));
        assert_eq!(after(MovementType::WriteOff, false), balance("8.5", "2"));
        assert!(
            start
                .apply(Change::of(MovementType::Issue, qty("10.01"), false))
                .is_err()
        );
        assert!(
            start
                .apply(Change::of(MovementType::Release, qty("3"), false))
                .is_err()
        );
        assert!(start.apply(Change::adjustment(Decimal::from(-10))).is_ok());
    }

    #[test]
    fn expiry_must_follow_manufacture() {
        let day = |d| NaiveDate::from_ymd_opt(2026, 11, d).unwrap_or_default();
        let batch = |made, expires| NewBatch {
            item_code: DocName::parse("KAJU-KATLI").unwrap_or_else(|_| unreachable!()),
            warehouse: DocName::parse("Stores - HD").unwrap_or_else(|_| unreachable!()),
            batch_no: BatchNo::parse("KK-1").unwrap_or_else(|_| unreachable!()),
            supplier: None,
            manufacturing_date: made,
            expiry_date: expires,
            qty: qty("1"),
            stock_uom: None,
            grade: QualityGrade::A,
            storage: StorageConditions::default(),
            nutrition: None,
            allergens: Allergens::default(),
            reference: Reference::default(),
        };
        assert!(batch(day(1), day(2)).validate().is_ok());
        assert_eq!(
            batch(day(2), day(2)).validate().err().map(|e| e.0),
            Some("expiry_date")
        );
    }
}
