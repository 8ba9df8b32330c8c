//! Allocation: which batches a request for stock draws on, in what order,
//! and the reservation that records it.
//!
//! FEFO takes the batch that expires first (ties: made first, then the
//! lower batch number, then the record id); FIFO takes the batch received
//! first (ties: the record id). A batch is eligible when it is active, has
//! free stock, meets the minimum grade, and still has at least the minimum
//! shelf life — never less than one day, so a batch is not allocated on
//! its expiry date.

use std::{cmp::Ordering, str::FromStr};

use chrono::{NaiveDate, NaiveDateTime};
use harsha_types::{DocName, Quantity, ValueError};
use rust_decimal::Decimal;
use serde::Serialize;

use super::{QualityGrade, Reference};

/// The order in which batches are consumed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Strategy {
    /// First expiry, first out.
    Fefo,
    /// First in (received), first out.
    Fifo,
}

impl Strategy {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fefo => "FEFO",
            Self::Fifo => "FIFO",
        }
    }
}

impl FromStr for Strategy {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "FEFO" => Ok(Self::Fefo),
            "FIFO" => Ok(Self::Fifo),
            other => Err(ValueError(format!("unknown strategy {other:?}"))),
        }
    }
}

/// A request to reserve stock of one item (validated).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllocationRequest {
    /// A caller-chosen id: repeating a request with the same id returns
    /// the first allocation instead of reserving again.
    pub request_id: Option<String>,
    /// The item.
    pub item_code: DocName,
    /// How much.
    pub qty: Quantity,
    /// Only from this warehouse, when given.
    pub warehouse: Option<DocName>,
    /// The consumption order.
    pub strategy: Strategy,
    /// Batches must have at least this many days before expiry.
    pub min_shelf_life_days: u32,
    /// Batches must be this grade or better.
    pub min_grade: QualityGrade,
    /// How long the reservation is held unless confirmed, in seconds.
    pub hold_seconds: u32,
    /// The document the stock is for.
    pub reference: Reference,
}

impl AllocationRequest {
    /// The earliest expiry date a batch may have on `as_of`.
    pub fn earliest_expiry(&self, as_of: NaiveDate) -> NaiveDate {
        let days = u64::from(self.min_shelf_life_days.max(1));
        as_of
            .checked_add_days(chrono::Days::new(days))
            .unwrap_or(NaiveDate::MAX)
    }
}

/// A batch that an allocation may draw on, as the store reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Candidate {
    /// The batch record.
    pub batch: String,
    /// Its batch number.
    pub batch_no: String,
    /// Its warehouse.
    pub warehouse: String,
    /// The day it was made.
    pub manufacturing_date: NaiveDate,
    /// Its expiry date.
    pub expiry_date: NaiveDate,
    /// When it was first received.
    pub received_at: NaiveDateTime,
    /// Its grade.
    pub grade: QualityGrade,
    /// Free stock.
    pub available: Decimal,
}

impl Strategy {
    /// The consumption order of two candidates.
    pub fn compare(self, a: &Candidate, b: &Candidate) -> Ordering {
        match self {
            Self::Fefo => a
                .expiry_date
                .cmp(&b.expiry_date)
                .then(a.manufacturing_date.cmp(&b.manufacturing_date))
                .then_with(|| a.batch_no.cmp(&b.batch_no))
                .then_with(|| a.batch.cmp(&b.batch)),
            Self::Fifo => a
                .received_at
                .cmp(&b.received_at)
                .then_with(|| a.batch.cmp(&b.batch)),
        }
    }
}

/// How much an allocation takes from one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Take {
    /// The batch record.
    pub batch: String,
    /// The quantity.
    pub qty: Decimal,
}

/// Plans what to take from `candidates`, already in consumption order, to
/// make up `qty`: each batch is used up before the next is touched.
/// Returns the takes when there is enough, or the quantity still missing.
pub fn plan_takes<'a>(
    candidates: impl IntoIterator<Item = &'a Candidate>,
    qty: Quantity,
) -> Result<Vec<Take>, Decimal> {
    let mut missing = qty.get();
    let mut takes = Vec::new();
    for candidate in candidates {
        if missing.is_zero() {
            break;
        }
        if candidate.available <= Decimal::ZERO {
            continue;
        }
        let take = candidate.available.min(missing);
        missing -= take;
        takes.push(Take {
            batch: candidate.batch.clone(),
            qty: take.normalize(),
        });
    }
    if missing.is_zero() {
        Ok(takes)
    } else {
        Err(missing.normalize())
    }
}

/// Where an allocation is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AllocationStatus {
    /// The stock is held.
    Reserved,
    /// The stock was issued.
    Confirmed,
    /// The stock was given back by the caller.
    Released,
    /// The hold ran out before it was confirmed; the stock was given back.
    Expired,
}

impl AllocationStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reserved => "Reserved",
            Self::Confirmed => "Confirmed",
            Self::Released => "Released",
            Self::Expired => "Expired",
        }
    }
}

impl FromStr for AllocationStatus {
    type Err = ValueError;

    fn from_str(value: &str) -> Result<Self, Self::Err> {
        match value {
            "Reserved" => Ok(Self::Reserved),
            "Confirmed" => Ok(Self::Confirmed),
            "Released" => Ok(Self::Released),
            "Expired" => Ok(Self::Expired),
            other => Err(ValueError(format!("unknown allocation status {other:?}"))),
        }
    }
}

/// The part of an allocation drawn from one batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AllocationLine {
    /// The batch record.
    pub batch: String,
    /// Its batch number.
    pub batch_no: String,
    /// Its warehouse.
    pub warehouse: String,
    /// Its expiry date.
    pub expiry_date: NaiveDate,
    /// Its grade.
    pub grade: QualityGrade,
    /// The quantity reserved from it.
    pub qty: Decimal,
}

/// Stock reserved for one request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allocation {
    /// The allocation's id.
    pub id: String,
    /// The caller's request id.
    pub request_id: Option<String>,
    /// The item.
    pub item_code: String,
    /// The warehouse it was limited to.
    pub warehouse: Option<String>,
    /// The quantity reserved (the sum of the lines).
    pub qty: Decimal,
    /// The consumption order used.
    pub strategy: Strategy,
    /// The minimum shelf life asked for.
    pub min_shelf_life_days: u32,
    /// The minimum grade asked for.
    pub min_grade: QualityGrade,
    /// Where it is in its life.
    pub status: AllocationStatus,
    /// When an unconfirmed reservation is given back (UTC).
    pub expires_at: NaiveDateTime,
    /// The document it is for.
    pub reference: Reference,
    /// The batches drawn on, in consumption order.
    pub lines: Vec<AllocationLine>,
    /// Created (UTC).
    pub created: NaiveDateTime,
    /// Last changed (UTC).
    pub modified: NaiveDateTime,
}

#[cfg(test)]
mod tests {
    use proptest::prelude::{prop_assert, prop_assert_eq, proptest};

    use super::*;

    fn candidate(
        batch: &str,
        expiry_day: u32,
        made_day: u32,
        batch_no: &str,
        available: i64,
    ) -> Candidate {
        let day = |d| NaiveDate::from_ymd_opt(2026, 12, d).unwrap_or_default();
        Candidate {
            batch: batch.into(),
            batch_no: batch_no.into(),
            warehouse: "Stores".into(),
            manufacturing_date: day(made_day),
            expiry_date: day(expiry_day),
            received_at: day(made_day).and_hms_opt(0, 0, 0).unwrap_or_default(),
            grade: QualityGrade::A,
            available: Decimal::from(available),
        }
    }

    #[test]
    fn fefo_breaks_ties_by_manufacture_then_batch_number() {
        let mut candidates = [
            candidate("r1", 20, 2, "B-2", 1),
            candidate("r2", 20, 1, "B-9", 1),
            candidate("r3", 20, 2, "B-1", 1),
            candidate("r4", 10, 5, "B-5", 1),
        ];
        candidates.sort_by(|a, b| Strategy::Fefo.compare(a, b));
        let order: Vec<_> = candidates.iter().map(|c| c.batch.as_str()).collect();
        assert_eq!(order, ["r4", "r2", "r3", "r1"]);
    }

    #[test]
    fn a_shortfall_reports_what_is_missing() {
        let candidates = [
            candidate("r1", 20, 1, "B-1", 3),
            candidate("r2", 21, 1, "B-2", 4),
        ];
        let qty = |q: &str| Quantity::parse(q).unwrap_or_else(|_| unreachable!());
        assert_eq!(plan_takes(&candidates, qty("8")), Err(Decimal::ONE));
        let takes = plan_takes(&candidates, qty("5")).unwrap_or_default();
        assert_eq!(
            takes,
            [
                Take {
                    batch: "r1".into(),
                    qty: Decimal::from(3)
                },
                Take {
                    batch: "r2".into(),
                    qty: Decimal::from(2)
                }
            ]
        );
    }

    proptest! {
        /// Whatever the stock, a plan takes exactly the quantity asked,
        /// never more than a batch holds, and uses each batch up before
        /// touching a later one.
        #[test]
        fn plans_take_exactly_what_is_asked_in_order(
            stock in proptest::collection::vec(0i64..50, 0..12),
            wanted in 1i64..300,
        ) {
            let candidates: Vec<_> = stock
                .iter()
                .enumerate()
                .map(|(i, available)| candidate(&format!("r{i:02}"), 1 + (i as u32 % 28), 1, "B", *available))
                .collect();
            let total: i64 = stock.iter().sum();
            let qty = Quantity::new(Decimal::from(wanted)).unwrap_or_else(|_| unreachable!());
            match plan_takes(&candidates, qty) {
                Ok(takes) => {
                    prop_assert!(total >= wanted);
                    let taken: Decimal = takes.iter().map(|t| t.qty).sum();
                    prop_assert_eq!(taken, Decimal::from(wanted));
                    for (i, take) in takes.iter().enumerate() {
                        let source = candidates.iter().find(|c| c.batch == take.batch).unwrap_or_else(|| unreachable!());
                        prop_assert!(take.qty > Decimal::ZERO && take.qty <= source.available);
                        if i + 1 < takes.len() {
                            prop_assert_eq!(take.qty, source.available);
                        }
                    }
                }
                Err(missing) => {
                    prop_assert!(total < wanted);
                    prop_assert_eq!(missing, Decimal::from(wanted - total));
                }
            }
        }
    }
}
