//! Persistence of batches, movements, allocations, expiry alerts, storage
//! readings and reorder triggers: the [`InventoryStore`] trait the service
//! is written against, and [`SqlInventoryStore`], its implementation on
//! MariaDB and SQLite (SQL written once, see `harsha_store::erp_dispatch!`).

mod rows;
mod sql;

use async_trait::async_trait;
use chrono::{NaiveDate, NaiveDateTime};
use harsha_store::page::Page;
use rust_decimal::Decimal;
use serde::Serialize;

pub use sql::SqlInventoryStore;

/// The read queries of the hot paths, for `EXPLAIN` in benchmarks and
/// operational checks.
pub mod queries {
    pub use super::sql::{EXPIRING_BATCHES, FEFO_CANDIDATES, FIFO_CANDIDATES};
}

use crate::{
    InventoryError,
    domain::{
        Actor, Allocation, AllocationRequest, Batch, Breach, ConditionReading, DocName,
        ExpiringBatch, ExpiryLevel, ExpiryThresholds, Movement, NewBatch, Quantity, Reference,
        ReorderDecision, ReorderParams, StockPosition, WriteOffCause,
    },
};

/// Why and for what a movement is made.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MovementNote {
    /// Free text.
    pub reason: Option<String>,
    /// The document it is for.
    pub reference: Reference,
}

/// A batch after a movement, and the movement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Moved {
    /// The batch as it now is.
    pub batch: Batch,
    /// The movement recorded.
    pub movement: Movement,
}

/// Both legs of a transfer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Transfer {
    /// The transfer's id (shared by both movements).
    pub id: String,
    /// The source batch and its `Transfer Out` movement.
    pub source: Moved,
    /// The target batch (created when the warehouse had none of this batch
    /// number) and its `Transfer In` movement.
    pub target: Moved,
}

/// Which batches to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BatchFilter {
    /// Only this item.
    pub item_code: Option<DocName>,
    /// Only this warehouse.
    pub warehouse: Option<DocName>,
    /// Only this batch number.
    pub batch_no: Option<String>,
    /// Only batches with this status.
    pub status: Option<crate::domain::BatchStatus>,
}

/// Which batches near expiry to list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpiringQuery {
    /// The date to classify on.
    pub as_of: NaiveDate,
    /// Only this level (else expired, critical and warning).
    pub level: Option<ExpiryLevel>,
    /// Only this warehouse.
    pub warehouse: Option<DocName>,
}

/// Which procurement triggers to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TriggerFilter {
    /// Only this item.
    pub item_code: Option<DocName>,
    /// Only this warehouse.
    pub warehouse: Option<DocName>,
    /// Only open triggers.
    pub open_only: bool,
}

/// An expiry alert the scan raised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExpiryAlert {
    /// The alert's id.
    pub id: String,
    /// The batch record.
    pub batch: String,
    /// Its item.
    pub item_code: String,
    /// Its warehouse.
    pub warehouse: String,
    /// Its expiry date.
    pub expiry_date: NaiveDate,
    /// The level reached.
    pub level: ExpiryLevel,
    /// Days to expiry when raised.
    pub days_to_expiry: i64,
    /// Stock on hand when raised.
    pub on_hand: Decimal,
}

/// What an expiry scan did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ExpiryScan {
    /// Batches looked at (near or past expiry, with stock on hand).
    pub scanned: u64,
    /// Batches marked expired by this scan.
    pub marked_expired: Vec<String>,
    /// Alerts raised by this scan (none for a level already alerted).
    pub alerts: Vec<ExpiryAlert>,
    /// Batches scanned at each level, by [`ExpiryLevel::as_str`].
    pub by_level: std::collections::BTreeMap<&'static str, u64>,
}

/// A batch a storage reading breached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BatchBreach {
    /// The batch as it now is (quarantined, when configured).
    pub batch: Batch,
    /// What the reading broke.
    pub breach: Breach,
}

/// A recorded storage reading and the batches it flagged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReadingReport {
    /// The reading's id.
    pub id: String,
    /// The warehouse.
    pub warehouse: String,
    /// When it was taken (UTC).
    pub recorded_at: NaiveDateTime,
    /// The reading.
    pub reading: ConditionReading,
    /// The batches stored outside their required range.
    pub breaches: Vec<BatchBreach>,
}

/// An item's optimisation parameters in a warehouse and the last
/// evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Optimization {
    /// The record's id.
    pub id: String,
    /// The item.
    pub item_code: String,
    /// The warehouse.
    pub warehouse: String,
    /// The parameters.
    pub params: ReorderParams,
    /// The average daily issue last computed.
    pub avg_daily_issue: Option<Decimal>,
    /// The reorder point last computed.
    pub reorder_point: Option<Decimal>,
    /// The usable stock last computed.
    pub usable_qty: Option<Decimal>,
    /// When last evaluated (UTC).
    pub last_evaluated_at: Option<NaiveDateTime>,
}

/// A procurement trigger.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ProcurementTrigger {
    /// Its id.
    pub id: String,
    /// The item.
    pub item_code: String,
    /// The warehouse.
    pub warehouse: String,
    /// Usable stock when it opened.
    pub usable_qty: Decimal,
    /// The reorder point when it opened.
    pub reorder_point: Decimal,
    /// How much to order.
    pub suggested_qty: Decimal,
    /// Whether it is still open.
    pub open: bool,
    /// When it opened (UTC).
    pub created: NaiveDateTime,
    /// When it resolved (UTC).
    pub resolved_at: Option<NaiveDateTime>,
}

/// One item-warehouse evaluation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ReorderEvaluation {
    /// The parameters and computed figures after the evaluation.
    pub optimization: Optimization,
    /// What was decided.
    pub decision: ReorderDecision,
    /// The trigger opened, still open or resolved.
    pub trigger: Option<ProcurementTrigger>,
}

/// Where the Inventory service keeps its data. Every write is one
/// transaction that records its movements and an outbox event.
#[async_trait]
pub trait InventoryStore: Send + Sync + 'static {
    /// Receives a new batch into a warehouse (a `Receipt` movement).
    async fn receive_batch(&self, batch: NewBatch, actor: &Actor) -> Result<Moved, InventoryError>;
    /// Reads a batch record.
    async fn batch(&self, id: &str) -> Result<Batch, InventoryError>;
    /// Lists batches by item, warehouse, batch number and id.
    async fn list_batches(
        &self,
        filter: BatchFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Batch>, InventoryError>;
    /// A batch's movements, oldest first.
    async fn movements(
        &self,
        batch: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Movement>, InventoryError>;
    /// Issues free stock of an active batch.
    async fn issue(
        &self,
        batch: &str,
        qty: Quantity,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError>;
    /// Moves free stock of an active batch to another warehouse.
    async fn transfer(
        &self,
        batch: &str,
        qty: Quantity,
        to_warehouse: &DocName,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Transfer, InventoryError>;
    /// Corrects a batch's free stock by a signed amount.
    async fn adjust(
        &self,
        batch: &str,
        delta: Decimal,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError>;
    /// Writes off free stock (all of it when `qty` is `None`).
    async fn write_off(
        &self,
        batch: &str,
        qty: Option<Quantity>,
        cause: WriteOffCause,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError>;
    /// Quarantines an active batch, or lifts a quarantine.
    async fn set_quarantine(
        &self,
        batch: &str,
        quarantined: bool,
        reason: &str,
        actor: &Actor,
    ) -> Result<Batch, InventoryError>;
    /// Reserves stock for a request, all or nothing.
    async fn allocate(
        &self,
        request: AllocationRequest,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError>;
    /// Reserves stock for every request together: all or none (a failure
    /// is `AtLine` naming the request). Repeated request ids give the
    /// first allocations.
    async fn allocate_all(
        &self,
        requests: Vec<AllocationRequest>,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Vec<Allocation>, InventoryError>;
    /// Reads an allocation.
    async fn allocation(&self, id: &str) -> Result<Allocation, InventoryError>;
    /// Issues a reservation's stock (idempotent once confirmed); refuses a
    /// lapsed hold, and batches quarantined or expired (on `as_of`) since
    /// they were reserved.
    async fn confirm_allocation(
        &self,
        id: &str,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError>;
    /// Gives a reservation's stock back (idempotent once released or
    /// lapsed).
    async fn release_allocation(
        &self,
        id: &str,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError>;
    /// Gives back every reservation whose hold ended by `now`.
    async fn expire_allocations(
        &self,
        now: NaiveDateTime,
        actor: &Actor,
    ) -> Result<Vec<Allocation>, InventoryError>;
    /// Sets an item's expiry thresholds.
    async fn set_expiry_policy(
        &self,
        item_code: &DocName,
        thresholds: ExpiryThresholds,
        actor: &Actor,
    ) -> Result<ExpiryThresholds, InventoryError>;
    /// An item's expiry thresholds, or `defaults`.
    async fn expiry_policy(
        &self,
        item_code: &DocName,
        defaults: ExpiryThresholds,
    ) -> Result<ExpiryThresholds, InventoryError>;
    /// Batches near or past expiry with stock on hand, soonest first.
    async fn list_expiring(
        &self,
        query: ExpiringQuery,
        defaults: ExpiryThresholds,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<ExpiringBatch>, InventoryError>;
    /// Marks expired batches and raises one alert per batch and level.
    async fn expiry_scan(
        &self,
        as_of: NaiveDate,
        defaults: ExpiryThresholds,
        actor: &Actor,
    ) -> Result<ExpiryScan, InventoryError>;
    /// Records a storage reading and flags the batches it breaches.
    async fn record_reading(
        &self,
        warehouse: &DocName,
        reading: ConditionReading,
        recorded_at: NaiveDateTime,
        quarantine_on_breach: bool,
        actor: &Actor,
    ) -> Result<ReadingReport, InventoryError>;
    /// Sets an item's optimisation parameters in a warehouse.
    async fn set_optimization(
        &self,
        item_code: &DocName,
        warehouse: &DocName,
        params: ReorderParams,
        actor: &Actor,
    ) -> Result<Optimization, InventoryError>;
    /// An item's optimisation parameters in a warehouse.
    async fn optimization(
        &self,
        item_code: &DocName,
        warehouse: &DocName,
    ) -> Result<Optimization, InventoryError>;
    /// Procurement triggers, oldest first.
    async fn procurement_triggers(
        &self,
        filter: TriggerFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<ProcurementTrigger>, InventoryError>;
    /// Evaluates reorder points (of one item, one warehouse, or all) and
    /// opens or resolves procurement triggers.
    async fn evaluate_reorder(
        &self,
        item_code: Option<&DocName>,
        warehouse: Option<&DocName>,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Vec<ReorderEvaluation>, InventoryError>;
    /// An item's stock per warehouse with expiry buckets.
    async fn stock_position(
        &self,
        item_code: &DocName,
        as_of: NaiveDate,
        defaults: ExpiryThresholds,
    ) -> Result<StockPosition, InventoryError>;
    /// Adds monthly partitions to the movement table up to the month of
    /// `through` (MariaDB; nothing to do on SQLite). Returns the partitions
    /// added.
    async fn ensure_movement_partitions(
        &self,
        through: NaiveDate,
    ) -> Result<Vec<String>, InventoryError>;
}
