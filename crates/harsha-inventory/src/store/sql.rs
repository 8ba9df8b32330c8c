//! [`SqlInventoryStore`]: the Inventory store on MariaDB and SQLite.
//!
//! The SQL is written once, in the subset both engines accept; quantities
//! go through [`DbDecimal`] (exact on both), and the engine-specific parts
//! come from [`ErpDialect`] (write-transaction start, row locks) plus the
//! MariaDB-only partition maintenance.
//!
//! Every change to a batch's quantities is an update of the batch row and
//! an appended movement with the resulting balance, in one transaction
//! that first locks the batch row (`FOR UPDATE` on MariaDB; SQLite's write
//! transaction excludes every other writer). Allocation locks candidate
//! batches in consumption order, a chunk at a time, so two allocations of
//! one item queue behind each other instead of both reading the same free
//! stock; deadlocks (possible between FEFO and FIFO orders) are retried.

use std::collections::BTreeMap;

use chrono::{Days, NaiveDate, NaiveDateTime, SubsecRound, Utc};
use harsha_store::{DbDecimal, ErpDialect, ErpPool, erp_dispatch, page::Page};
use rust_decimal::Decimal;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{
    BatchBreach, BatchFilter, ExpiringQuery, ExpiryAlert, ExpiryScan, InventoryStore, Moved,
    MovementNote, Optimization, ProcurementTrigger, ReadingReport, ReorderEvaluation, Transfer,
    TriggerFilter,
    rows::{
        AllocationLineRow, AllocationRow, BatchRow, MovementRow, OptimizationRow, PositionRow,
        TriggerRow, sum,
    },
};
use crate::{
    InventoryError,
    domain::{
        Actor, Allocation, AllocationRequest, AllocationStatus, Balance, Batch, BatchStatus,
        Candidate, Change, ConditionReading, DocName, ExpiringBatch, ExpiryLevel, ExpiryThresholds,
        Movement, MovementType, NewBatch, Quantity, ReorderDecision, ReorderParams, StockGroup,
        StockPosition, Strategy, WriteOffCause, decide, plan_takes,
    },
};

/// The service name recorded as the source of outbox events.
const SOURCE_SERVICE: &str = "inventory";
/// Candidate batches locked per round trip while allocating.
const CANDIDATE_CHUNK: i64 = 10;
/// Batches read per round trip by scans.
const SCAN_CHUNK: i64 = 500;

macro_rules! batch_columns {
    () => {
        "`name`, `item_code`, `warehouse`, `batch_no`, `supplier`, `manufacturing_date`, `expiry_date`, \
         `received_at`, `received_qty`, `available_qty`, `reserved_qty`, `stock_uom`, `quality_grade`, \
         `storage_temp_min`, `storage_temp_max`, `storage_humidity_min`, `storage_humidity_max`, \
         `energy_kcal`, `protein_g`, `carbohydrate_g`, `sugars_g`, `fat_g`, `saturated_fat_g`, `sodium_mg`, \
         `allergens`, `status`, `status_reason`, `creation`, `modified`"
    };
}

macro_rules! movement_columns {
    () => {
        "`name`, `creation`, `owner`, `batch`, `item_code`, `warehouse`, `movement_type`, \
         `available_change`, `reserved_change`, `available_after`, `reserved_after`, `reason`, \
         `reference_doctype`, `reference_name`, `allocation`, `transfer`"
    };
}

macro_rules! allocation_columns {
    () => {
        "`name`, `creation`, `modified`, `request_id`, `item_code`, `warehouse`, `requested_qty`, \
         `strategy`, `min_shelf_life_days`, `min_grade`, `status`, `expires_at`, `reference_doctype`, \
         `reference_name`"
    };
}

macro_rules! optimization_columns {
    () => {
        "`name`, `item_code`, `warehouse`, `reorder_level`, `reorder_qty`, `safety_stock`, \
         `lead_time_days`, `min_qty`, `max_qty`, `consumption_window_days`, `avg_daily_issue`, \
         `reorder_point`, `usable_qty`, `last_evaluated_at`"
    };
}

macro_rules! trigger_columns {
    () => {
        "`name`, `creation`, `item_code`, `warehouse`, `usable_qty`, `reorder_point`, `suggested_qty`, \
         `status`, `resolved_at`"
    };
}

const SELECT_ITEM: &str = "SELECT `stock_uom`, `disabled` FROM `tabItem` WHERE `name` = ?";
const SELECT_WAREHOUSE: &str = "SELECT `is_group`, `disabled` FROM `tabWarehouse` WHERE `name` = ?";

const SELECT_BATCH: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE `name` = ?"
);
const SELECT_BATCH_BY_KEY: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE `item_code` = ? AND `batch_no` = ? AND `warehouse` = ?"
);
const LIST_BATCHES: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE (? IS NULL OR `item_code` = ?) AND (? IS NULL OR `warehouse` = ?) \
     AND (? IS NULL OR `batch_no` = ?) AND (? IS NULL OR `status` = ?) AND `name` > ? ORDER BY `name` LIMIT ?"
);
const INSERT_BATCH: &str = "INSERT INTO `tabHD Batch Master` (`name`, `creation`, `modified`, `modified_by`, `owner`, \
     `item_code`, `warehouse`, `batch_no`, `supplier`, `manufacturing_date`, `expiry_date`, `received_at`, \
     `received_qty`, `available_qty`, `reserved_qty`, `stock_uom`, `quality_grade`, `storage_temp_min`, \
     `storage_temp_max`, `storage_humidity_min`, `storage_humidity_max`, `energy_kcal`, `protein_g`, \
     `carbohydrate_g`, `sugars_g`, `fat_g`, `saturated_fat_g`, `sodium_mg`, `allergens`, `status`, `status_reason`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const UPDATE_BATCH: &str = "UPDATE `tabHD Batch Master` SET `received_qty` = ?, `available_qty` = ?, \
     `reserved_qty` = ?, `status` = ?, `status_reason` = ?, `modified` = ?, `modified_by` = ? WHERE `name` = ?";

const INSERT_MOVEMENT: &str = "INSERT INTO `tabHD Batch Movement` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `batch`, `item_code`, `warehouse`, `movement_type`, `available_change`, `reserved_change`, \
     `available_after`, `reserved_after`, `reason`, `reference_doctype`, `reference_name`, `allocation`, `transfer`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const BATCH_MOVEMENTS: &str = concat!(
    "SELECT ",
    movement_columns!(),
    " FROM `tabHD Batch Movement` WHERE `batch` = ? \
     AND (? IS NULL OR `creation` > ? OR (`creation` = ? AND `name` > ?)) ORDER BY `creation`, `name` LIMIT ?"
);

/// Free stock of an item that FEFO may allocate, in consumption order,
/// locked a chunk at a time: `?` item, earliest expiry, minimum grade,
/// warehouse (twice, NULL for any), then the last row of the previous
/// chunk (NULL for the first; expiry, made, batch number, id), limit.
pub const FEFO_CANDIDATES: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE `item_code` = ? AND `status` = 'Active' AND `expiry_date` >= ? \
     AND `available_qty` > 0 AND `quality_grade` <= ? AND (? IS NULL OR `warehouse` = ?) \
     AND (? IS NULL OR (`expiry_date`, `manufacturing_date`, `batch_no`, `name`) > (?, ?, ?, ?)) \
     ORDER BY `expiry_date`, `manufacturing_date`, `batch_no`, `name` LIMIT ?"
);
/// As [`FEFO_CANDIDATES`] in receipt order; the previous chunk's last row
/// is given as (received at, id).
pub const FIFO_CANDIDATES: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE `item_code` = ? AND `status` = 'Active' AND `expiry_date` >= ? \
     AND `available_qty` > 0 AND `quality_grade` <= ? AND (? IS NULL OR `warehouse` = ?) \
     AND (? IS NULL OR (`received_at`, `name`) > (?, ?)) \
     ORDER BY `received_at`, `name` LIMIT ?"
);

const SELECT_ALLOCATION: &str = concat!(
    "SELECT ",
    allocation_columns!(),
    " FROM `tabHD Stock Allocation` WHERE `name` = ?"
);
const SELECT_ALLOCATION_BY_REQUEST: &str = concat!(
    "SELECT ",
    allocation_columns!(),
    " FROM `tabHD Stock Allocation` WHERE `request_id` = ?"
);
const DUE_ALLOCATIONS: &str = "SELECT `name` FROM `tabHD Stock Allocation` WHERE `status` = 'Reserved' \
     AND `expires_at` <= ? ORDER BY `expires_at`, `name` LIMIT ?";
const SELECT_ALLOCATION_LINES: &str = "SELECT `batch`, `batch_no`, `warehouse`, `expiry_date`, `quality_grade`, `qty` \
     FROM `tabHD Stock Allocation Line` WHERE `parent` = ? ORDER BY `idx`";
const INSERT_ALLOCATION: &str = "INSERT INTO `tabHD Stock Allocation` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `request_id`, `item_code`, `warehouse`, `requested_qty`, `strategy`, `min_shelf_life_days`, \
     `min_grade`, `status`, `expires_at`, `reference_doctype`, `reference_name`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const INSERT_ALLOCATION_LINE: &str = "INSERT INTO `tabHD Stock Allocation Line` (`name`, `creation`, `parent`, `idx`, \
     `batch`, `batch_no`, `warehouse`, `expiry_date`, `quality_grade`, `qty`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const UPDATE_ALLOCATION_STATUS: &str = "UPDATE `tabHD Stock Allocation` SET `status` = ?, `modified` = ?, \
     `modified_by` = ? WHERE `name` = ?";

const SELECT_POLICY: &str =
    "SELECT `critical_days`, `warning_days` FROM `tabHD Item Expiry Policy` WHERE `name` = ?";
const ALL_POLICIES: &str =
    "SELECT `name`, `critical_days`, `warning_days` FROM `tabHD Item Expiry Policy`";
const INSERT_POLICY: &str = "INSERT INTO `tabHD Item Expiry Policy` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `critical_days`, `warning_days`) VALUES (?, ?, ?, ?, ?, ?, ?)";
const UPDATE_POLICY: &str = "UPDATE `tabHD Item Expiry Policy` SET `critical_days` = ?, `warning_days` = ?, \
     `modified` = ?, `modified_by` = ? WHERE `name` = ?";

/// Batches with stock on hand expiring before a date, soonest first (uses
/// `idx_batch_expiry_status`): `?` first date not included, warehouse
/// (twice), then the previous page's last (expiry, id) or NULLs, limit.
pub const EXPIRING_BATCHES: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE `expiry_date` < ? \
     AND `status` IN ('Active', 'Quarantined', 'Expired') AND (`available_qty` > 0 OR `reserved_qty` > 0) \
     AND (? IS NULL OR `warehouse` = ?) \
     AND (? IS NULL OR `expiry_date` > ? OR (`expiry_date` = ? AND `name` > ?)) \
     ORDER BY `expiry_date`, `name` LIMIT ?"
);
const INSERT_ALERT: &str = "INSERT INTO `tabHD Batch Expiry Alert` (`name`, `creation`, `batch`, `item_code`, \
     `warehouse`, `expiry_date`, `alert_level`, `days_to_expiry`, `on_hand_qty`) \
     SELECT ?, ?, ?, ?, ?, ?, ?, ?, ? FROM `tabHD Batch Master` WHERE `name` = ? AND NOT EXISTS \
     (SELECT 1 FROM `tabHD Batch Expiry Alert` WHERE `batch` = ? AND `alert_level` = ?)";
const MARK_STATUS: &str = "UPDATE `tabHD Batch Master` SET `status` = ?, `status_reason` = ?, `modified` = ?, \
     `modified_by` = ? WHERE `name` = ?";

const INSERT_READING: &str = "INSERT INTO `tabHD Storage Condition Reading` (`name`, `creation`, `owner`, \
     `warehouse`, `recorded_at`, `temperature`, `humidity`, `breached_batches`) VALUES (?, ?, ?, ?, ?, ?, ?, ?)";
const WAREHOUSE_STOCK: &str = concat!(
    "SELECT ",
    batch_columns!(),
    " FROM `tabHD Batch Master` WHERE `warehouse` = ? AND `status` IN ('Active', 'Quarantined') \
     AND (`available_qty` > 0 OR `reserved_qty` > 0) ORDER BY `name`"
);

const SELECT_OPTIMIZATION: &str = concat!(
    "SELECT ",
    optimization_columns!(),
    " FROM `tabHD Item Warehouse Optimization` WHERE `item_code` = ? AND `warehouse` = ?"
);
const LIST_OPTIMIZATIONS: &str = concat!(
    "SELECT ",
    optimization_columns!(),
    " FROM `tabHD Item Warehouse Optimization` WHERE (? IS NULL OR `item_code` = ?) \
     AND (? IS NULL OR `warehouse` = ?) ORDER BY `item_code`, `warehouse`"
);
const INSERT_OPTIMIZATION: &str = "INSERT INTO `tabHD Item Warehouse Optimization` (`name`, `creation`, `modified`, \
     `modified_by`, `owner`, `item_code`, `warehouse`, `reorder_level`, `reorder_qty`, `safety_stock`, \
     `lead_time_days`, `min_qty`, `max_qty`, `consumption_window_days`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const UPDATE_OPTIMIZATION: &str = "UPDATE `tabHD Item Warehouse Optimization` SET `reorder_level` = ?, \
     `reorder_qty` = ?, `safety_stock` = ?, `lead_time_days` = ?, `min_qty` = ?, `max_qty` = ?, \
     `consumption_window_days` = ?, `modified` = ?, `modified_by` = ? WHERE `name` = ?";
const RECORD_EVALUATION: &str = "UPDATE `tabHD Item Warehouse Optimization` SET `avg_daily_issue` = ?, \
     `reorder_point` = ?, `usable_qty` = ?, `last_evaluated_at` = ? WHERE `name` = ?";
/// The total issued (negative) of an item from a warehouse since a time.
const ISSUED_SINCE: &str = "SELECT SUM(`available_change` + `reserved_change`) FROM `tabHD Batch Movement` \
     WHERE `item_code` = ? AND `warehouse` = ? AND `movement_type` = 'Issue' AND `creation` >= ?";
/// Free stock of active batches of an item in a warehouse expiring after a date.
const USABLE_STOCK: &str = "SELECT SUM(`available_qty`) FROM `tabHD Batch Master` WHERE `item_code` = ? \
     AND `warehouse` = ? AND `status` = 'Active' AND `expiry_date` > ?";
const OPEN_TRIGGER: &str = concat!(
    "SELECT ",
    trigger_columns!(),
    " FROM `tabHD Procurement Trigger` WHERE `item_code` = ? AND `warehouse` = ? AND `status` = 'Open'"
);
const INSERT_TRIGGER: &str = "INSERT INTO `tabHD Procurement Trigger` (`name`, `creation`, `modified`, `item_code`, \
     `warehouse`, `usable_qty`, `reorder_point`, `suggested_qty`, `status`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'Open')";
const RESOLVE_TRIGGER: &str = "UPDATE `tabHD Procurement Trigger` SET `status` = 'Resolved', `resolved_at` = ?, \
     `modified` = ? WHERE `name` = ?";

const LIST_TRIGGERS: &str = concat!(
    "SELECT ",
    trigger_columns!(),
    " FROM `tabHD Procurement Trigger` WHERE (? IS NULL OR `item_code` = ?) AND (? IS NULL OR `warehouse` = ?) \
     AND (? = 0 OR `status` = 'Open') AND `name` > ? ORDER BY `name` LIMIT ?"
);

const STOCK_GROUPS: &str = "SELECT `warehouse`, `status`, `expiry_date`, SUM(`available_qty`) AS available_qty, \
     SUM(`reserved_qty`) AS reserved_qty FROM `tabHD Batch Master` WHERE `item_code` = ? \
     AND `status` <> 'Consumed' GROUP BY `warehouse`, `status`, `expiry_date`";

/// Writes one outbox event inside the open transaction `$tx`.
macro_rules! record_event {
    ($tx:expr, $at:expr, $actor:expr, $entity_type:expr, $entity_name:expr, $event_type:expr, $payload:expr) => {
        harsha_store::record_change!(
            $tx,
            SOURCE_SERVICE,
            $at,
            $actor,
            $entity_type,
            $entity_name,
            $event_type,
            $payload
        )
    };
}

/// Reserves stock for one request on `$tx` (an open write transaction of
/// `$pool`), all or nothing for the request; evaluates to its
/// `Result<Allocation, InventoryError>` without committing. A repeated
/// `request_id` gives the first allocation.
macro_rules! allocate_in_tx {
    ($tx:ident, $pool:ident, $request:expr, $as_of:expr, $actor:expr) => {
        async {
            let request: &AllocationRequest = $request;
            let as_of: NaiveDate = $as_of;
            let actor: &Actor = $actor;

            let earliest_expiry = request.earliest_expiry(as_of);
            let warehouse = request.warehouse.as_ref().map(DocName::as_str);
            if let Some(request_id) = &request.request_id
                && let Some(existing) =
                    read_allocation!($tx, SELECT_ALLOCATION_BY_REQUEST, request_id)
            {
                let same_request = existing.item_code == request.item_code.as_str()
                    && existing.qty == request.qty.get()
                    && existing.warehouse.as_deref() == warehouse
                    && existing.strategy == request.strategy
                    && existing.min_grade == request.min_grade
                    && existing.min_shelf_life_days == request.min_shelf_life_days;
                if !same_request {
                    return Err(InventoryError::FailedPrecondition(format!(
                        "request_id {request_id:?} was used for another request ({} of {})",
                        existing.qty, existing.item_code
                    )));
                }
                return Ok(existing);
            }
            require_item!($tx, request.item_code);
            if let Some(warehouse) = &request.warehouse {
                require_warehouse!($tx, warehouse);
            }
            // Lock candidates in consumption order until there is enough.
            let mut batches: Vec<Batch> = Vec::new();
            let mut held = Decimal::ZERO;
            loop {
                let last = batches.last();
                let rows: Vec<BatchRow> = match request.strategy {
                    Strategy::Fefo => {
                        sqlx::query_as(AssertSqlSafe(format!(
                            "{FEFO_CANDIDATES}{}",
                            $pool.for_update()
                        )))
                        .bind(request.item_code.as_str())
                        .bind(earliest_expiry)
                        .bind(request.min_grade.as_str())
                        .bind(warehouse)
                        .bind(warehouse)
                        .bind(last.map(|b| b.expiry_date))
                        .bind(last.map(|b| b.expiry_date))
                        .bind(last.map(|b| b.manufacturing_date))
                        .bind(last.map(|b| b.batch_no.as_str()))
                        .bind(last.map(|b| b.id.as_str()))
                        .bind(CANDIDATE_CHUNK)
                        .fetch_all(&mut *$tx)
                        .await?
                    }
                    Strategy::Fifo => {
                        sqlx::query_as(AssertSqlSafe(format!(
                            "{FIFO_CANDIDATES}{}",
                            $pool.for_update()
                        )))
                        .bind(request.item_code.as_str())
                        .bind(earliest_expiry)
                        .bind(request.min_grade.as_str())
                        .bind(warehouse)
                        .bind(warehouse)
                        .bind(last.map(|b| b.received_at))
                        .bind(last.map(|b| b.received_at))
                        .bind(last.map(|b| b.id.as_str()))
                        .bind(CANDIDATE_CHUNK)
                        .fetch_all(&mut *$tx)
                        .await?
                    }
                };
                let exhausted = i64::try_from(rows.len()).unwrap_or(i64::MAX) < CANDIDATE_CHUNK;
                for batch in decode::<_, Batch>(rows)? {
                    held += batch.available_qty;
                    batches.push(batch);
                }
                if exhausted || held >= request.qty.get() {
                    break;
                }
            }
            let candidates: Vec<Candidate> = batches
                .iter()
                .map(|b| Candidate {
                    batch: b.id.clone(),
                    batch_no: b.batch_no.clone(),
                    warehouse: b.warehouse.clone(),
                    manufacturing_date: b.manufacturing_date,
                    expiry_date: b.expiry_date,
                    received_at: b.received_at,
                    grade: b.grade,
                    available: b.available_qty,
                })
                .collect();
            let takes = plan_takes(&candidates, request.qty).map_err(|shortfall| {
                InventoryError::InsufficientStock {
                    item_code: request.item_code.to_string(),
                    requested: request.qty.get(),
                    available: held.normalize(),
                    shortfall,
                }
            })?;
            let at = now();
            let id = new_id();
            let expires_at = at + chrono::Duration::seconds(i64::from(request.hold_seconds));
            let inserted = sqlx::query(INSERT_ALLOCATION)
                .bind(&id)
                .bind(at)
                .bind(at)
                .bind(actor.as_str())
                .bind(actor.as_str())
                .bind(&request.request_id)
                .bind(request.item_code.as_str())
                .bind(warehouse)
                .bind(DbDecimal(request.qty.get()))
                .bind(request.strategy.as_str())
                .bind(i64::from(request.min_shelf_life_days))
                .bind(request.min_grade.as_str())
                .bind(AllocationStatus::Reserved.as_str())
                .bind(expires_at)
                .bind(&request.reference.doctype)
                .bind(&request.reference.name)
                .execute(&mut *$tx)
                .await;
            match inserted {
                // A concurrent request with the same request_id committed
                // first; the retry returns its allocation.
                Err(e) if is_unique_violation(&e) => {
                    return Err(InventoryError::Aborted(
                        "a concurrent request with the same request_id won".into(),
                    ));
                }
                other => other?,
            };
            let note = MovementNote {
                reason: Some("allocation".into()),
                reference: request.reference.clone(),
            };
            let context = MovementContext {
                note: &note,
                allocation: Some(&id),
                transfer: None,
                actor,
                at,
            };
            let mut lines = Vec::with_capacity(takes.len());
            for (idx, take) in takes.iter().enumerate() {
                let Some(batch) = batches.iter_mut().find(|b| b.id == take.batch) else {
                    continue;
                };
                let qty = Quantity::new(take.qty).map_err(|e| InventoryError::invalid("qty", e))?;
                let movement = apply_movement(
                    batch,
                    MovementType::Reservation,
                    Change::of(MovementType::Reservation, qty, false),
                    &context,
                )?;
                persist_movement!($tx, *batch, movement);
                sqlx::query(INSERT_ALLOCATION_LINE)
                    .bind(new_id())
                    .bind(at)
                    .bind(&id)
                    .bind(i64::try_from(idx).unwrap_or(i64::MAX))
                    .bind(&batch.id)
                    .bind(&batch.batch_no)
                    .bind(&batch.warehouse)
                    .bind(batch.expiry_date)
                    .bind(batch.grade.as_str())
                    .bind(DbDecimal(take.qty))
                    .execute(&mut *$tx)
                    .await?;
                lines.push(crate::domain::AllocationLine {
                    batch: batch.id.clone(),
                    batch_no: batch.batch_no.clone(),
                    warehouse: batch.warehouse.clone(),
                    expiry_date: batch.expiry_date,
                    grade: batch.grade,
                    qty: take.qty,
                });
            }
            let allocation = Allocation {
                id: id.clone(),
                request_id: request.request_id.clone(),
                item_code: request.item_code.to_string(),
                warehouse: warehouse.map(str::to_owned),
                qty: request.qty.get(),
                strategy: request.strategy,
                min_shelf_life_days: request.min_shelf_life_days,
                min_grade: request.min_grade,
                status: AllocationStatus::Reserved,
                expires_at,
                reference: request.reference.clone(),
                lines,
                created: at,
                modified: at,
            };
            record_event!(
                $tx,
                at,
                actor,
                "StockAllocation",
                &id,
                "inventory.allocation.reserved",
                &allocation
            )?;
            Ok::<Allocation, InventoryError>(allocation)
        }
        .await
    };
}

/// Reads a batch row on `$conn`, locking it for the rest of the
/// transaction; returns early when there is none.
macro_rules! lock_batch {
    ($conn:expr, $pool:expr, $id:expr) => {{
        let row: Option<BatchRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{SELECT_BATCH}{}",
            $pool.for_update()
        )))
        .bind($id)
        .fetch_optional(&mut *$conn)
        .await?;
        Batch::try_from(row.ok_or_else(|| InventoryError::BatchNotFound($id.to_string()))?)?
    }};
}

/// Checks on `$conn` that an item exists and is enabled; evaluates to its
/// stock unit.
macro_rules! require_item {
    ($conn:expr, $item:expr) => {{
        let row: Option<(Option<String>, i64)> = sqlx::query_as(SELECT_ITEM)
            .bind($item.as_str())
            .fetch_optional(&mut *$conn)
            .await?;
        match row {
            Some((uom, 0)) => uom.filter(|u| !u.is_empty()),
            _ => return Err(InventoryError::ItemNotFound($item.to_string())),
        }
    }};
}

/// Checks on `$conn` that a warehouse exists, is enabled and is not a group.
macro_rules! require_warehouse {
    ($conn:expr, $warehouse:expr) => {{
        let row: Option<(i64, i64)> = sqlx::query_as(SELECT_WAREHOUSE)
            .bind($warehouse.as_str())
            .fetch_optional(&mut *$conn)
            .await?;
        if !matches!(row, Some((0, 0))) {
            return Err(InventoryError::WarehouseNotFound($warehouse.to_string()));
        }
    }};
}

/// Inserts a batch row as `$batch` holds it.
macro_rules! insert_batch {
    ($conn:expr, $batch:expr, $actor:expr) => {{
        let batch: &Batch = &$batch;
        let temperature = batch.storage.temperature_c;
        let humidity = batch.storage.humidity_pct;
        let nutrition = batch.nutrition.as_ref();
        sqlx::query(INSERT_BATCH)
            .bind(&batch.id)
            .bind(batch.created)
            .bind(batch.modified)
            .bind($actor.as_str())
            .bind($actor.as_str())
            .bind(&batch.item_code)
            .bind(&batch.warehouse)
            .bind(&batch.batch_no)
            .bind(&batch.supplier)
            .bind(batch.manufacturing_date)
            .bind(batch.expiry_date)
            .bind(batch.received_at)
            .bind(DbDecimal(batch.received_qty))
            .bind(DbDecimal(batch.available_qty))
            .bind(DbDecimal(batch.reserved_qty))
            .bind(&batch.stock_uom)
            .bind(batch.grade.as_str())
            .bind(temperature.map(|b| DbDecimal(b.min)))
            .bind(temperature.map(|b| DbDecimal(b.max)))
            .bind(humidity.map(|b| DbDecimal(b.min)))
            .bind(humidity.map(|b| DbDecimal(b.max)))
            .bind(nutrition.map(|n| DbDecimal(n.energy_kcal)))
            .bind(nutrition.map(|n| DbDecimal(n.protein_g)))
            .bind(nutrition.map(|n| DbDecimal(n.carbohydrate_g)))
            .bind(nutrition.map(|n| DbDecimal(n.sugars_g)))
            .bind(nutrition.map(|n| DbDecimal(n.fat_g)))
            .bind(nutrition.map(|n| DbDecimal(n.saturated_fat_g)))
            .bind(nutrition.map(|n| DbDecimal(n.sodium_mg)))
            .bind(batch.allergens.to_stored())
            .bind(batch.status.as_str())
            .bind(&batch.status_reason)
            .execute(&mut *$conn)
            .await
    }};
}

/// Writes a batch's new quantities and status and appends the movement
/// that produced them (see [`apply_movement`]).
macro_rules! persist_movement {
    ($conn:expr, $batch:expr, $movement:expr) => {{
        let batch: &Batch = &$batch;
        let movement: &Movement = &$movement;
        sqlx::query(UPDATE_BATCH)
            .bind(DbDecimal(batch.received_qty))
            .bind(DbDecimal(batch.available_qty))
            .bind(DbDecimal(batch.reserved_qty))
            .bind(batch.status.as_str())
            .bind(&batch.status_reason)
            .bind(batch.modified)
            .bind(&movement.actor)
            .bind(&batch.id)
            .execute(&mut *$conn)
            .await?;
        insert_movement!($conn, movement)?;
    }};
}

/// Appends a movement row.
macro_rules! insert_movement {
    ($conn:expr, $movement:expr) => {{
        let movement: &Movement = $movement;
        sqlx::query(INSERT_MOVEMENT)
            .bind(&movement.id)
            .bind(movement.at)
            .bind(movement.at)
            .bind(&movement.actor)
            .bind(&movement.actor)
            .bind(&movement.batch)
            .bind(&movement.item_code)
            .bind(&movement.warehouse)
            .bind(movement.kind.as_str())
            .bind(DbDecimal(movement.change.available))
            .bind(DbDecimal(movement.change.reserved))
            .bind(DbDecimal(movement.balance_after.available))
            .bind(DbDecimal(movement.balance_after.reserved))
            .bind(&movement.reason)
            .bind(&movement.reference.doctype)
            .bind(&movement.reference.name)
            .bind(&movement.allocation)
            .bind(&movement.transfer)
            .execute(&mut *$conn)
            .await
    }};
}

/// Reads an allocation and its lines on `$conn` (`$sql` selects the
/// header, optionally locking it); evaluates to `Option<Allocation>`.
macro_rules! read_allocation {
    ($conn:expr, $sql:expr, $key:expr) => {{
        let header: Option<AllocationRow> = sqlx::query_as($sql)
            .bind($key)
            .fetch_optional(&mut *$conn)
            .await?;
        match header {
            None => None,
            Some(header) => {
                let lines: Vec<AllocationLineRow> = sqlx::query_as(SELECT_ALLOCATION_LINES)
                    .bind(&header.name)
                    .fetch_all(&mut *$conn)
                    .await?;
                Some(header.with_lines(lines)?)
            }
        }
    }};
}

/// The current time as stored: UTC, to the microsecond.
fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

fn new_id() -> String {
    Uuid::now_v7().to_string()
}

/// What a batch's status becomes with a new balance: an active batch with
/// nothing on hand is consumed, a consumed batch that receives stock is
/// active again; other statuses stay.
fn status_after(status: BatchStatus, balance: Balance) -> BatchStatus {
    match status {
        BatchStatus::Active if balance.on_hand().is_zero() => BatchStatus::Consumed,
        BatchStatus::Consumed if !balance.on_hand().is_zero() => BatchStatus::Active,
        other => other,
    }
}

/// A movement of one batch on its own: the statuses it may start from,
/// what it is called in errors, its kind and its event.
struct SingleMove {
    allowed: &'static [BatchStatus],
    action: &'static str,
    kind: MovementType,
    event: &'static str,
}

const ISSUE: SingleMove = SingleMove {
    allowed: &[BatchStatus::Active],
    action: "issue stock",
    kind: MovementType::Issue,
    event: "inventory.batch.issued",
};
const ADJUSTMENT: SingleMove = SingleMove {
    allowed: &[
        BatchStatus::Active,
        BatchStatus::Quarantined,
        BatchStatus::Expired,
        BatchStatus::Consumed,
    ],
    action: "adjust stock",
    kind: MovementType::Adjustment,
    event: "inventory.batch.adjusted",
};
const WRITE_OFF: SingleMove = SingleMove {
    allowed: &[
        BatchStatus::Active,
        BatchStatus::Quarantined,
        BatchStatus::Expired,
    ],
    action: "write off stock",
    kind: MovementType::WriteOff,
    event: "inventory.batch.written_off",
};

/// Who is acting and why, for one movement.
struct MovementContext<'a> {
    note: &'a MovementNote,
    allocation: Option<&'a str>,
    transfer: Option<&'a str>,
    actor: &'a Actor,
    at: NaiveDateTime,
}

/// Applies a movement to `batch` in memory (balance, received quantity,
/// status) and builds the movement record; refuses a change that would
/// take a quantity below zero.
fn apply_movement(
    batch: &mut Batch,
    kind: MovementType,
    change: Change,
    context: &MovementContext<'_>,
) -> Result<Movement, InventoryError> {
    let before = batch.balance();
    let after = before
        .apply(change)
        .map_err(|shortfall| InventoryError::BatchShort {
            field: if kind == MovementType::Adjustment {
                "delta"
            } else {
                "qty"
            },
            batch: batch.id.clone(),
            what: if before.available + change.available < Decimal::ZERO {
                "available"
            } else {
                "reserved"
            },
            held: shortfall.held,
            needed: shortfall.needed,
        })?;
    if matches!(kind, MovementType::Receipt | MovementType::TransferIn) {
        batch.received_qty = (batch.received_qty + change.available).normalize();
    }
    batch.available_qty = after.available;
    batch.reserved_qty = after.reserved;
    batch.status = status_after(batch.status, after);
    batch.modified = context.at;
    Ok(Movement {
        id: new_id(),
        batch: batch.id.clone(),
        item_code: batch.item_code.clone(),
        warehouse: batch.warehouse.clone(),
        kind,
        change: Change {
            available: change.available.normalize(),
            reserved: change.reserved.normalize(),
        },
        balance_after: after,
        reason: context.note.reason.clone(),
        reference: context.note.reference.clone(),
        allocation: context.allocation.map(str::to_owned),
        transfer: context.transfer.map(str::to_owned),
        actor: context.actor.as_str().to_owned(),
        at: context.at,
    })
}

fn require_status(
    batch: &Batch,
    allowed: &[BatchStatus],
    action: &str,
) -> Result<(), InventoryError> {
    if allowed.contains(&batch.status) {
        Ok(())
    } else {
        Err(InventoryError::FailedPrecondition(format!(
            "batch {} is {}; cannot {action}",
            batch.id,
            batch.status.as_str()
        )))
    }
}

fn decode<R, T>(rows: Vec<R>) -> Result<Vec<T>, InventoryError>
where
    T: TryFrom<R, Error = InventoryError>,
{
    rows.into_iter().map(T::try_from).collect()
}

fn is_unique_violation(error: &sqlx::Error) -> bool {
    matches!(error, sqlx::Error::Database(db) if db.is_unique_violation())
}

fn thresholds_from(critical: i64, warning: i64) -> Result<ExpiryThresholds, InventoryError> {
    let days = |v: i64| u32::try_from(v).unwrap_or(u32::MAX);
    ExpiryThresholds::new(days(critical), days(warning)).map_err(|e| {
        InventoryError::Store(harsha_store::StoreError::Sql(sqlx::Error::ColumnDecode {
            index: "warning_days".into(),
            source: Box::new(e),
        }))
    })
}

/// Item thresholds, falling back to the defaults.
#[derive(Debug, Clone, Default)]
struct Policies {
    defaults: ExpiryThresholds,
    by_item: BTreeMap<String, ExpiryThresholds>,
}

impl Policies {
    fn of(&self, item_code: &str) -> ExpiryThresholds {
        self.by_item
            .get(item_code)
            .copied()
            .unwrap_or(self.defaults)
    }

    /// The largest warning threshold of any item: batches expiring later
    /// than this many days ahead are ok for every item.
    fn widest_warning(&self) -> u32 {
        self.by_item
            .values()
            .map(|t| t.warning_days())
            .chain([self.defaults.warning_days()])
            .max()
            .unwrap_or_default()
    }
}

/// The Inventory store on an `erp` database.
#[derive(Debug, Clone)]
pub struct SqlInventoryStore {
    pool: ErpPool,
}

impl SqlInventoryStore {
    /// A store on `pool`, whose database must be migrated.
    pub fn new(pool: ErpPool) -> Self {
        Self { pool }
    }

    /// Runs `attempt` again while it loses races (see
    /// [`harsha_store::retry`]).
    async fn retrying<T, F, Fut>(&self, attempt: F) -> Result<T, InventoryError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<T, InventoryError>>,
    {
        harsha_store::retry::with_retries(InventoryError::is_retryable, attempt).await
    }

    async fn policies(&self, defaults: ExpiryThresholds) -> Result<Policies, InventoryError> {
        let rows: Vec<(String, i64, i64)> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(ALL_POLICIES).fetch_all(pool).await?
        });
        let mut by_item = BTreeMap::new();
        for (item, critical, warning) in rows {
            by_item.insert(item, thresholds_from(critical, warning)?);
        }
        Ok(Policies { defaults, by_item })
    }

    /// Locks a batch, checks it, applies one movement and records it with
    /// an event: the shape of issue, adjustment and write-off.
    async fn move_one(
        &self,
        batch_id: &str,
        what: &SingleMove,
        change: impl Fn(&Batch) -> Result<Change, InventoryError>,
        note: &MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let mut batch = lock_batch!(tx, pool, batch_id);
            require_status(&batch, what.allowed, what.action)?;
            let change = change(&batch)?;
            let at = now();
            let context = MovementContext { note, allocation: None, transfer: None, actor, at };
            let movement = apply_movement(&mut batch, what.kind, change, &context)?;
            persist_movement!(tx, batch, movement);
            let moved = Moved { batch, movement };
            record_event!(tx, at, actor, "Batch", &moved.batch.id, what.event, &moved)?;
            tx.commit().await?;
            Ok(moved)
        })
    }

    async fn allocate_once(
        &self,
        request: &AllocationRequest,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let allocation = allocate_in_tx!(tx, pool, request, as_of, actor)?;
            tx.commit().await?;
            Ok(allocation)
        })
    }

    /// Reserves stock for every request in one transaction: all or none.
    /// Items are locked in item order whatever the requests' order, so two
    /// such calls never wait for each other in a cycle.
    async fn allocate_all_once(
        &self,
        requests: &[AllocationRequest],
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Vec<Allocation>, InventoryError> {
        let mut order: Vec<usize> = (0..requests.len()).collect();
        order.sort_by(|a, b| {
            requests[*a]
                .item_code
                .as_str()
                .cmp(requests[*b].item_code.as_str())
        });
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let mut made: Vec<Option<Allocation>> = vec![None; requests.len()];
            for index in order {
                let allocation = allocate_in_tx!(tx, pool, &requests[index], as_of, actor)
                    .map_err(|error| InventoryError::AtLine { index, error: Box::new(error) })?;
                made[index] = Some(allocation);
            }
            tx.commit().await?;
            Ok(made.into_iter().flatten().collect())
        })
    }

    /// Ends a reserved allocation: issues its stock (`Confirmed`) or gives
    /// it back (`Released`, `Expired`). An allocation already in
    /// `target` is returned as it is.
    async fn finish_allocation(
        &self,
        id: &str,
        target: AllocationStatus,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let locked = AssertSqlSafe(format!("{SELECT_ALLOCATION}{}", pool.for_update()));
            let Some(mut allocation) = read_allocation!(tx, locked, id) else {
                return Err(InventoryError::AllocationNotFound(id.to_owned()));
            };
            // Asking again for the state it is in changes nothing; releasing
            // a lapsed allocation too (its stock is already back).
            let released_already = target == AllocationStatus::Released
                && allocation.status == AllocationStatus::Expired;
            if allocation.status == target || released_already {
                return Ok(allocation);
            }
            if allocation.status != AllocationStatus::Reserved {
                return Err(InventoryError::FailedPrecondition(format!(
                    "allocation {id} is {}; only a reserved allocation can become {}",
                    allocation.status.as_str(),
                    target.as_str()
                )));
            }
            let at = now();
            let confirming = target == AllocationStatus::Confirmed;
            if confirming && allocation.expires_at <= at {
                return Err(InventoryError::FailedPrecondition(format!(
                    "allocation {id}'s hold ended at {} UTC; allocate again",
                    allocation.expires_at
                )));
            }
            let (kind, from_reservation) = if confirming {
                (MovementType::Issue, true)
            } else {
                (MovementType::Release, false)
            };
            let note = MovementNote {
                reason: Some(format!("allocation {}", target.as_str().to_lowercase())),
                reference: allocation.reference.clone(),
            };
            let context = MovementContext { note: &note, allocation: Some(id), transfer: None, actor, at };
            for line in &allocation.lines {
                let mut batch = lock_batch!(tx, pool, line.batch.as_str());
                // Stock quarantined or expired since it was reserved is not
                // shipped; the caller releases and allocates again.
                if confirming && (batch.status != BatchStatus::Active || batch.expiry_date <= as_of) {
                    return Err(InventoryError::FailedPrecondition(format!(
                        "batch {} ({}) is {} since it was reserved; release allocation {id} and allocate again",
                        batch.id,
                        batch.batch_no,
                        if batch.status == BatchStatus::Active { "expired" } else { batch.status.as_str() },
                    )));
                }
                let qty = Quantity::new(line.qty).map_err(|e| InventoryError::invalid("qty", e))?;
                let movement = apply_movement(&mut batch, kind, Change::of(kind, qty, from_reservation), &context)?;
                persist_movement!(tx, batch, movement);
            }
            sqlx::query(UPDATE_ALLOCATION_STATUS)
                .bind(target.as_str())
                .bind(at)
                .bind(actor.as_str())
                .bind(id)
                .execute(&mut *tx)
                .await?;
            allocation.status = target;
            allocation.modified = at;
            let event = format!("inventory.allocation.{}", target.as_str().to_lowercase());
            record_event!(tx, at, actor, "StockAllocation", id, event, &allocation)?;
            tx.commit().await?;
            Ok(allocation)
        })
    }

    /// Raises the alert of one batch's level unless it was raised before,
    /// and marks an expired active batch expired. Returns the alert raised
    /// and whether the batch was marked.
    async fn alert_once(
        &self,
        expiring: &ExpiringBatch,
        actor: &Actor,
    ) -> Result<(Option<ExpiryAlert>, bool), InventoryError> {
        let batch = &expiring.batch;
        let alert = ExpiryAlert {
            id: new_id(),
            batch: batch.id.clone(),
            item_code: batch.item_code.clone(),
            warehouse: batch.warehouse.clone(),
            expiry_date: batch.expiry_date,
            level: expiring.level,
            days_to_expiry: expiring.days_to_expiry,
            on_hand: batch.on_hand(),
        };
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let at = now();
            let inserted = sqlx::query(INSERT_ALERT)
                .bind(&alert.id)
                .bind(at)
                .bind(&alert.batch)
                .bind(&alert.item_code)
                .bind(&alert.warehouse)
                .bind(alert.expiry_date)
                .bind(alert.level.as_str())
                .bind(alert.days_to_expiry)
                .bind(DbDecimal(alert.on_hand))
                .bind(&alert.batch)
                .bind(&alert.batch)
                .bind(alert.level.as_str())
                .execute(&mut *tx)
                .await;
            let raised = match inserted {
                // A concurrent scan raised it first.
                Err(e) if is_unique_violation(&e) => false,
                other => other?.rows_affected() == 1,
            };
            if raised {
                record_event!(tx, at, actor, "Batch", &alert.batch, "inventory.batch.expiry_alert", &alert)?;
            }
            let mut marked = false;
            if expiring.level == ExpiryLevel::Expired {
                let mut current = lock_batch!(tx, pool, alert.batch.as_str());
                if matches!(current.status, BatchStatus::Active | BatchStatus::Quarantined) {
                    current.status = BatchStatus::Expired;
                    current.status_reason = Some(format!("expired on {}", current.expiry_date));
                    current.modified = at;
                    sqlx::query(MARK_STATUS)
                        .bind(current.status.as_str())
                        .bind(&current.status_reason)
                        .bind(at)
                        .bind(actor.as_str())
                        .bind(&current.id)
                        .execute(&mut *tx)
                        .await?;
                    record_event!(tx, at, actor, "Batch", &current.id, "inventory.batch.expired", &current)?;
                    marked = true;
                }
            }
            tx.commit().await?;
            Ok((raised.then_some(alert), marked))
        })
    }

    async fn optimization_row(
        &self,
        item_code: &str,
        warehouse: &str,
    ) -> Result<OptimizationRow, InventoryError> {
        let row: Option<OptimizationRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(SELECT_OPTIMIZATION).bind(item_code).bind(warehouse).fetch_optional(pool).await?
        });
        row.ok_or_else(|| InventoryError::OptimizationNotFound {
            item_code: item_code.to_owned(),
            warehouse: warehouse.to_owned(),
        })
    }

    async fn evaluate_one(
        &self,
        row: OptimizationRow,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<ReorderEvaluation, InventoryError> {
        let params = row.params()?;
        let at = now();
        // The window is the `consumption_window_days` whole days before `as_of`.
        let since = as_of
            .checked_sub_days(Days::new(u64::from(params.consumption_window_days)))
            .unwrap_or(NaiveDate::MIN)
            .and_time(chrono::NaiveTime::MIN);
        let usable_after = as_of
            .checked_add_days(Days::new(u64::from(params.lead_time_days)))
            .unwrap_or(NaiveDate::MAX);
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let issued: Option<DbDecimal> = sqlx::query_scalar(ISSUED_SINCE)
                .bind(&row.item_code)
                .bind(&row.warehouse)
                .bind(since)
                .fetch_one(&mut *tx)
                .await?;
            let usable: Option<DbDecimal> = sqlx::query_scalar(USABLE_STOCK)
                .bind(&row.item_code)
                .bind(&row.warehouse)
                .bind(usable_after)
                .fetch_one(&mut *tx)
                .await?;
            let usable = sum(usable);
            let average = params.average_daily_issue(-sum(issued));
            let point = params.reorder_point(average);
            let open: Option<TriggerRow> = sqlx::query_as(AssertSqlSafe(format!("{OPEN_TRIGGER}{}", pool.for_update())))
                .bind(&row.item_code)
                .bind(&row.warehouse)
                .fetch_optional(&mut *tx)
                .await?;
            let decision = decide(usable, point, open.is_some());
            let trigger = match (decision, open) {
                (ReorderDecision::Open, _) => {
                    let trigger = ProcurementTrigger {
                        id: new_id(),
                        item_code: row.item_code.clone(),
                        warehouse: row.warehouse.clone(),
                        usable_qty: usable,
                        reorder_point: point,
                        suggested_qty: params.suggested_qty(usable, point),
                        open: true,
                        created: at,
                        resolved_at: None,
                    };
                    let inserted = sqlx::query(INSERT_TRIGGER)
                        .bind(&trigger.id)
                        .bind(at)
                        .bind(at)
                        .bind(&trigger.item_code)
                        .bind(&trigger.warehouse)
                        .bind(DbDecimal(usable))
                        .bind(DbDecimal(point))
                        .bind(DbDecimal(trigger.suggested_qty))
                        .execute(&mut *tx)
                        .await;
                    match inserted {
                        Err(e) if is_unique_violation(&e) => {
                            return Err(InventoryError::Aborted("a concurrent evaluation opened the trigger".into()));
                        }
                        other => other?,
                    };
                    record_event!(tx, at, actor, "ProcurementTrigger", &trigger.id, "inventory.procurement.triggered", &trigger)?;
                    Some(trigger)
                }
                (ReorderDecision::Resolve, Some(open)) => {
                    sqlx::query(RESOLVE_TRIGGER).bind(at).bind(at).bind(&open.name).execute(&mut *tx).await?;
                    let trigger = trigger_from(open, Some(at))?;
                    record_event!(tx, at, actor, "ProcurementTrigger", &trigger.id, "inventory.procurement.resolved", &trigger)?;
                    Some(trigger)
                }
                (_, Some(open)) => Some(trigger_from(open, None)?),
                (_, None) => None,
            };
            sqlx::query(RECORD_EVALUATION)
                .bind(DbDecimal(average))
                .bind(DbDecimal(point))
                .bind(DbDecimal(usable))
                .bind(at)
                .bind(&row.name)
                .execute(&mut *tx)
                .await?;
            tx.commit().await?;
            let optimization = Optimization {
                avg_daily_issue: Some(average),
                reorder_point: Some(point),
                usable_qty: Some(usable),
                last_evaluated_at: Some(at),
                ..optimization_from(row)?
            };
            Ok(ReorderEvaluation { optimization, decision, trigger })
        })
    }
}

fn trigger_from(
    row: TriggerRow,
    resolved_at: Option<NaiveDateTime>,
) -> Result<ProcurementTrigger, InventoryError> {
    let resolved_at = resolved_at.or(row.resolved_at);
    Ok(ProcurementTrigger {
        id: row.name,
        item_code: row.item_code,
        warehouse: row.warehouse,
        usable_qty: row.usable_qty.get(),
        reorder_point: row.reorder_point.get(),
        suggested_qty: row.suggested_qty.get(),
        open: resolved_at.is_none() && row.status == "Open",
        created: row.creation,
        resolved_at,
    })
}

fn optimization_from(row: OptimizationRow) -> Result<Optimization, InventoryError> {
    Ok(Optimization {
        params: row.params()?,
        avg_daily_issue: row.avg_daily_issue.map(DbDecimal::get),
        reorder_point: row.reorder_point.map(DbDecimal::get),
        usable_qty: row.usable_qty.map(DbDecimal::get),
        last_evaluated_at: row.last_evaluated_at,
        id: row.name,
        item_code: row.item_code,
        warehouse: row.warehouse,
    })
}

#[async_trait::async_trait]
impl InventoryStore for SqlInventoryStore {
    #[tracing::instrument(name = "store.receive_batch", skip_all, fields(item = %batch.item_code, batch_no = %batch.batch_no))]
    async fn receive_batch(&self, batch: NewBatch, actor: &Actor) -> Result<Moved, InventoryError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let item_uom = require_item!(tx, batch.item_code);
            require_warehouse!(tx, batch.warehouse);
            if let (Some(given), Some(stocked)) = (&batch.stock_uom, &item_uom)
                && given != stocked
            {
                return Err(InventoryError::invalid(
                    "stock_uom",
                    format!("{} is stocked in {stocked}, not {given}", batch.item_code),
                ));
            }
            let at = now();
            let mut created = Batch {
                id: new_id(),
                item_code: batch.item_code.to_string(),
                warehouse: batch.warehouse.to_string(),
                batch_no: batch.batch_no.to_string(),
                supplier: batch.supplier.as_ref().map(DocName::to_string),
                manufacturing_date: batch.manufacturing_date,
                expiry_date: batch.expiry_date,
                received_at: at,
                received_qty: Decimal::ZERO,
                available_qty: Decimal::ZERO,
                reserved_qty: Decimal::ZERO,
                stock_uom: batch.stock_uom.clone().or(item_uom).unwrap_or_else(|| "Nos".into()),
                grade: batch.grade,
                storage: batch.storage,
                nutrition: batch.nutrition.clone(),
                allergens: batch.allergens.clone(),
                status: BatchStatus::Active,
                status_reason: None,
                created: at,
                modified: at,
            };
            let note = MovementNote { reason: Some("receipt".into()), reference: batch.reference.clone() };
            let context = MovementContext { note: &note, allocation: None, transfer: None, actor, at };
            let movement = apply_movement(&mut created, MovementType::Receipt, Change::of(MovementType::Receipt, batch.qty, false), &context)?;
            match insert_batch!(tx, created, actor) {
                Err(e) if is_unique_violation(&e) => {
                    return Err(InventoryError::BatchExists {
                        item_code: created.item_code,
                        batch_no: created.batch_no,
                        warehouse: created.warehouse,
                    });
                }
                other => other?,
            };
            insert_movement!(tx, &movement)?;
            let moved = Moved { batch: created, movement };
            record_event!(tx, at, actor, "Batch", &moved.batch.id, "inventory.batch.received", &moved)?;
            tx.commit().await?;
            Ok(moved)
        })
    }

    #[tracing::instrument(name = "store.batch", skip_all, fields(batch = id))]
    async fn batch(&self, id: &str) -> Result<Batch, InventoryError> {
        let row: Option<BatchRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(SELECT_BATCH).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| InventoryError::BatchNotFound(id.to_owned()))?
            .try_into()
    }

    #[tracing::instrument(name = "store.list_batches", skip_all)]
    async fn list_batches(
        &self,
        filter: BatchFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Batch>, InventoryError> {
        let after: String = harsha_store::page::decode_token(page_token)?.unwrap_or_default();
        let item = filter.item_code.as_ref().map(DocName::as_str);
        let warehouse = filter.warehouse.as_ref().map(DocName::as_str);
        let batch_no = filter.batch_no.as_deref();
        let status = filter.status.map(BatchStatus::as_str);
        let rows: Vec<BatchRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(LIST_BATCHES)
                .bind(item).bind(item)
                .bind(warehouse).bind(warehouse)
                .bind(batch_no).bind(batch_no)
                .bind(status).bind(status)
                .bind(&after)
                .bind(i64::from(page_size) + 1)
                .fetch_all(pool)
                .await?
        });
        Page::from_rows(rows, page_size, |row| row.name.clone()).try_map(Batch::try_from)
    }

    #[tracing::instrument(name = "store.movements", skip_all, fields(batch))]
    async fn movements(
        &self,
        batch: &str,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Movement>, InventoryError> {
        let after: Option<(NaiveDateTime, String)> = harsha_store::page::decode_token(page_token)?;
        self.batch(batch).await?;
        let at = after.as_ref().map(|(at, _)| *at);
        let id = after.as_ref().map(|(_, id)| id.as_str());
        let rows: Vec<MovementRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(BATCH_MOVEMENTS)
                .bind(batch)
                .bind(at).bind(at).bind(at)
                .bind(id)
                .bind(i64::from(page_size) + 1)
                .fetch_all(pool)
                .await?
        });
        Page::from_rows(rows, page_size, |row| (row.creation, row.name.clone()))
            .try_map(Movement::try_from)
    }

    #[tracing::instrument(name = "store.issue", skip_all, fields(batch, qty = %qty))]
    async fn issue(
        &self,
        batch: &str,
        qty: Quantity,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError> {
        self.retrying(|| {
            self.move_one(
                batch,
                &ISSUE,
                |_| Ok(Change::of(MovementType::Issue, qty, false)),
                &note,
                actor,
            )
        })
        .await
    }

    #[tracing::instrument(name = "store.transfer", skip_all, fields(batch, qty = %qty, to = %to_warehouse))]
    async fn transfer(
        &self,
        batch_id: &str,
        qty: Quantity,
        to_warehouse: &DocName,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Transfer, InventoryError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                let mut source = lock_batch!(tx, pool, batch_id);
                if source.warehouse == to_warehouse.as_str() {
                    return Err(InventoryError::invalid(
                        "to_warehouse",
                        format!("batch {batch_id} is already in {to_warehouse}"),
                    ));
                }
                require_status(&source, &[BatchStatus::Active], "transfer stock")?;
                require_warehouse!(tx, to_warehouse);
                let at = now();
                let existing: Option<BatchRow> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_BATCH_BY_KEY}{}", pool.for_update())))
                    .bind(&source.item_code)
                    .bind(&source.batch_no)
                    .bind(to_warehouse.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let (mut target, is_new) = match existing {
                    Some(row) => (Batch::try_from(row)?, false),
                    None => (
                        Batch {
                            id: new_id(),
                            warehouse: to_warehouse.to_string(),
                            received_qty: Decimal::ZERO,
                            available_qty: Decimal::ZERO,
                            reserved_qty: Decimal::ZERO,
                            status: BatchStatus::Consumed,
                            status_reason: None,
                            created: at,
                            modified: at,
                            ..source.clone()
                        },
                        true,
                    ),
                };
                require_status(&target, &[BatchStatus::Active, BatchStatus::Consumed], "receive a transfer")?;
                let transfer_id = new_id();
                let context = MovementContext { note: &note, allocation: None, transfer: Some(&transfer_id), actor, at };
                let out = apply_movement(&mut source, MovementType::TransferOut, Change::of(MovementType::TransferOut, qty, false), &context)?;
                let into = apply_movement(&mut target, MovementType::TransferIn, Change::of(MovementType::TransferIn, qty, false), &context)?;
                persist_movement!(tx, source, out);
                if is_new {
                    match insert_batch!(tx, target, actor) {
                        Err(e) if is_unique_violation(&e) => {
                            return Err(InventoryError::Aborted(format!(
                                "batch {} arrived in {to_warehouse} concurrently", source.batch_no
                            )));
                        }
                        other => other?,
                    };
                    insert_movement!(tx, &into)?;
                } else {
                    persist_movement!(tx, target, into);
                }
                let transfer = Transfer {
                    id: transfer_id,
                    source: Moved { batch: source, movement: out },
                    target: Moved { batch: target, movement: into },
                };
                record_event!(tx, at, actor, "Batch", &transfer.source.batch.id, "inventory.batch.transferred", &transfer)?;
                tx.commit().await?;
                Ok(transfer)
            })
        })
        .await
    }

    #[tracing::instrument(name = "store.adjust", skip_all, fields(batch, delta = %delta))]
    async fn adjust(
        &self,
        batch: &str,
        delta: Decimal,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError> {
        self.retrying(|| {
            self.move_one(
                batch,
                &ADJUSTMENT,
                |_| Ok(Change::adjustment(delta)),
                &note,
                actor,
            )
        })
        .await
    }

    #[tracing::instrument(name = "store.write_off", skip_all, fields(batch, cause = cause.as_str()))]
    async fn write_off(
        &self,
        batch: &str,
        qty: Option<Quantity>,
        cause: WriteOffCause,
        note: MovementNote,
        actor: &Actor,
    ) -> Result<Moved, InventoryError> {
        let note = MovementNote {
            reason: Some(match &note.reason {
                Some(reason) => format!("write-off ({}): {reason}", cause.as_str()),
                None => format!("write-off ({})", cause.as_str()),
            }),
            ..note
        };
        self.retrying(|| {
            self.move_one(
                batch,
                &WRITE_OFF,
                |batch| {
                    let qty = match qty {
                        Some(qty) => qty,
                        None => Quantity::new(batch.available_qty).map_err(|_| {
                            InventoryError::FailedPrecondition(format!(
                                "batch {} has no free stock to write off",
                                batch.id
                            ))
                        })?,
                    };
                    Ok(Change::of(MovementType::WriteOff, qty, false))
                },
                &note,
                actor,
            )
        })
        .await
    }

    #[tracing::instrument(name = "store.set_quarantine", skip_all, fields(batch = batch_id, quarantined))]
    async fn set_quarantine(
        &self,
        batch_id: &str,
        quarantined: bool,
        reason: &str,
        actor: &Actor,
    ) -> Result<Batch, InventoryError> {
        self.retrying(|| async {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let mut batch = lock_batch!(tx, pool, batch_id);
            let (from, to, event) = if quarantined {
                (BatchStatus::Active, BatchStatus::Quarantined, "inventory.batch.quarantined")
            } else {
                (BatchStatus::Quarantined, BatchStatus::Active, "inventory.batch.quarantine_lifted")
            };
            if batch.status == to {
                return Ok(batch);
            }
            require_status(&batch, &[from], if quarantined { "quarantine it" } else { "lift a quarantine" })?;
            let at = now();
            batch.status = status_after(to, batch.balance());
            batch.status_reason = (!reason.is_empty()).then(|| reason.to_owned());
            batch.modified = at;
            sqlx::query(MARK_STATUS)
                .bind(batch.status.as_str())
                .bind(&batch.status_reason)
                .bind(at)
                .bind(actor.as_str())
                .bind(&batch.id)
                .execute(&mut *tx)
                .await?;
            record_event!(tx, at, actor, "Batch", &batch.id, event, &batch)?;
            tx.commit().await?;
            Ok(batch)
        })
        })
        .await
    }

    #[tracing::instrument(name = "store.allocate", skip_all, fields(item = %request.item_code, qty = %request.qty, strategy = request.strategy.as_str()))]
    async fn allocate(
        &self,
        request: AllocationRequest,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError> {
        self.retrying(|| self.allocate_once(&request, as_of, actor))
            .await
    }

    #[tracing::instrument(name = "store.allocate_all", skip_all, fields(lines = requests.len()))]
    async fn allocate_all(
        &self,
        requests: Vec<AllocationRequest>,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Vec<Allocation>, InventoryError> {
        self.retrying(|| self.allocate_all_once(&requests, as_of, actor))
            .await
    }

    #[tracing::instrument(name = "store.allocation", skip_all, fields(allocation = id))]
    async fn allocation(&self, id: &str) -> Result<Allocation, InventoryError> {
        let allocation = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            read_allocation!(conn, SELECT_ALLOCATION, id)
        });
        allocation.ok_or_else(|| InventoryError::AllocationNotFound(id.to_owned()))
    }

    #[tracing::instrument(name = "store.confirm_allocation", skip_all, fields(allocation = id))]
    async fn confirm_allocation(
        &self,
        id: &str,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError> {
        self.retrying(|| self.finish_allocation(id, AllocationStatus::Confirmed, as_of, actor))
            .await
    }

    #[tracing::instrument(name = "store.release_allocation", skip_all, fields(allocation = id))]
    async fn release_allocation(
        &self,
        id: &str,
        actor: &Actor,
    ) -> Result<Allocation, InventoryError> {
        self.retrying(|| {
            self.finish_allocation(id, AllocationStatus::Released, NaiveDate::MIN, actor)
        })
        .await
    }

    #[tracing::instrument(name = "store.expire_allocations", skip_all)]
    async fn expire_allocations(
        &self,
        now: NaiveDateTime,
        actor: &Actor,
    ) -> Result<Vec<Allocation>, InventoryError> {
        let mut expired = Vec::new();
        loop {
            let due: Vec<String> = erp_dispatch!(&self.pool, pool => {
                sqlx::query_scalar(DUE_ALLOCATIONS).bind(now).bind(SCAN_CHUNK).fetch_all(pool).await?
            });
            let last_chunk = i64::try_from(due.len()).unwrap_or(i64::MAX) < SCAN_CHUNK;
            let mut progressed = false;
            for id in due {
                match self
                    .retrying(|| {
                        self.finish_allocation(&id, AllocationStatus::Expired, now.date(), actor)
                    })
                    .await
                {
                    Ok(allocation) => {
                        progressed = true;
                        expired.push(allocation);
                    }
                    // Confirmed or released between the read and the lock.
                    Err(InventoryError::FailedPrecondition(_)) => {}
                    Err(other) => return Err(other),
                }
            }
            if last_chunk || !progressed {
                return Ok(expired);
            }
        }
    }

    #[tracing::instrument(name = "store.set_expiry_policy", skip_all, fields(item = %item_code))]
    async fn set_expiry_policy(
        &self,
        item_code: &DocName,
        thresholds: ExpiryThresholds,
        actor: &Actor,
    ) -> Result<ExpiryThresholds, InventoryError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                require_item!(tx, item_code);
                let at = now();
                let existing: Option<(i64, i64)> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_POLICY}{}", pool.for_update())))
                    .bind(item_code.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let critical = i64::from(thresholds.critical_days());
                let warning = i64::from(thresholds.warning_days());
                let written = if existing.is_some() {
                    sqlx::query(UPDATE_POLICY).bind(critical).bind(warning).bind(at).bind(actor.as_str()).bind(item_code.as_str()).execute(&mut *tx).await
                } else {
                    sqlx::query(INSERT_POLICY).bind(item_code.as_str()).bind(at).bind(at).bind(actor.as_str()).bind(actor.as_str()).bind(critical).bind(warning).execute(&mut *tx).await
                };
                match written {
                    Err(e) if is_unique_violation(&e) => return Err(InventoryError::Aborted("a concurrent change set the policy".into())),
                    other => other?,
                };
                record_event!(tx, at, actor, "ItemExpiryPolicy", item_code.as_str(), "inventory.expiry_policy.set", &thresholds)?;
                tx.commit().await?;
                Ok(thresholds)
            })
        })
        .await
    }

    #[tracing::instrument(name = "store.expiry_policy", skip_all, fields(item = %item_code))]
    async fn expiry_policy(
        &self,
        item_code: &DocName,
        defaults: ExpiryThresholds,
    ) -> Result<ExpiryThresholds, InventoryError> {
        let row: Option<(i64, i64)> = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            require_item!(conn, item_code);
            sqlx::query_as(SELECT_POLICY).bind(item_code.as_str()).fetch_optional(&mut *conn).await?
        });
        row.map_or(Ok(defaults), |(critical, warning)| {
            thresholds_from(critical, warning)
        })
    }

    #[tracing::instrument(name = "store.list_expiring", skip_all, fields(as_of = %query.as_of))]
    async fn list_expiring(
        &self,
        query: ExpiringQuery,
        defaults: ExpiryThresholds,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<ExpiringBatch>, InventoryError> {
        let mut after: Option<(NaiveDate, String)> = harsha_store::page::decode_token(page_token)?;
        let policies = self.policies(defaults).await?;
        let before = query
            .as_of
            .checked_add_days(Days::new(u64::from(policies.widest_warning()) + 1))
            .unwrap_or(NaiveDate::MAX);
        let warehouse = query.warehouse.as_ref().map(DocName::as_str);
        let wanted = usize::try_from(page_size)
            .unwrap_or(usize::MAX)
            .saturating_add(1);
        let mut found: Vec<ExpiringBatch> = Vec::new();
        loop {
            let expiry = after.as_ref().map(|(date, _)| *date);
            let id = after.as_ref().map(|(_, id)| id.as_str());
            let rows: Vec<BatchRow> = erp_dispatch!(&self.pool, pool => {
                sqlx::query_as(EXPIRING_BATCHES)
                    .bind(before)
                    .bind(warehouse).bind(warehouse)
                    .bind(expiry).bind(expiry).bind(expiry)
                    .bind(id)
                    .bind(SCAN_CHUNK)
                    .fetch_all(pool)
                    .await?
            });
            let exhausted = i64::try_from(rows.len()).unwrap_or(i64::MAX) < SCAN_CHUNK;
            for batch in decode::<_, Batch>(rows)? {
                after = Some((batch.expiry_date, batch.id.clone()));
                let thresholds = policies.of(&batch.item_code);
                let expiring = ExpiringBatch::classify(batch, thresholds, query.as_of);
                let keep = match query.level {
                    Some(level) => expiring.level == level,
                    None => expiring.level != ExpiryLevel::Ok,
                };
                if keep {
                    found.push(expiring);
                    if found.len() == wanted {
                        break;
                    }
                }
            }
            if exhausted || found.len() == wanted {
                break;
            }
        }
        Ok(Page::from_rows(found, page_size, |e| {
            (e.batch.expiry_date, e.batch.id.clone())
        }))
    }

    #[tracing::instrument(name = "store.expiry_scan", skip_all, fields(as_of = %as_of))]
    async fn expiry_scan(
        &self,
        as_of: NaiveDate,
        defaults: ExpiryThresholds,
        actor: &Actor,
    ) -> Result<ExpiryScan, InventoryError> {
        let mut scan = ExpiryScan::default();
        let mut token = String::new();
        loop {
            let query = ExpiringQuery {
                as_of,
                level: None,
                warehouse: None,
            };
            let page = self.list_expiring(query, defaults, 200, &token).await?;
            for expiring in &page.items {
                scan.scanned += 1;
                *scan.by_level.entry(expiring.level.as_str()).or_default() += 1;
                let (alert, marked) = self.retrying(|| self.alert_once(expiring, actor)).await?;
                scan.alerts.extend(alert);
                if marked {
                    scan.marked_expired.push(expiring.batch.id.clone());
                }
            }
            match page.next_token {
                Some(next) => token = next,
                None => return Ok(scan),
            }
        }
    }

    #[tracing::instrument(name = "store.record_reading", skip_all, fields(warehouse = %warehouse))]
    async fn record_reading(
        &self,
        warehouse: &DocName,
        reading: ConditionReading,
        recorded_at: NaiveDateTime,
        quarantine_on_breach: bool,
        actor: &Actor,
    ) -> Result<ReadingReport, InventoryError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                require_warehouse!(tx, warehouse);
                let at = now();
                let rows: Vec<BatchRow> = sqlx::query_as(AssertSqlSafe(format!("{WAREHOUSE_STOCK}{}", pool.for_update())))
                    .bind(warehouse.as_str())
                    .fetch_all(&mut *tx)
                    .await?;
                let mut breaches = Vec::new();
                for mut batch in decode::<_, Batch>(rows)? {
                    let Some(breach) = batch.storage.breached_by(reading) else {
                        continue;
                    };
                    if quarantine_on_breach && batch.status == BatchStatus::Active {
                        batch.status = BatchStatus::Quarantined;
                        batch.status_reason = Some(format!("storage conditions breached at {recorded_at} UTC"));
                        batch.modified = at;
                        sqlx::query(MARK_STATUS)
                            .bind(batch.status.as_str())
                            .bind(&batch.status_reason)
                            .bind(at)
                            .bind(actor.as_str())
                            .bind(&batch.id)
                            .execute(&mut *tx)
                            .await?;
                    }
                    let flagged = BatchBreach { batch, breach };
                    record_event!(tx, at, actor, "Batch", &flagged.batch.id, "inventory.batch.storage_breach", &flagged)?;
                    breaches.push(flagged);
                }
                let report = ReadingReport {
                    id: new_id(),
                    warehouse: warehouse.to_string(),
                    recorded_at,
                    reading,
                    breaches,
                };
                sqlx::query(INSERT_READING)
                    .bind(&report.id)
                    .bind(at)
                    .bind(actor.as_str())
                    .bind(warehouse.as_str())
                    .bind(recorded_at)
                    .bind(reading.temperature_c.map(DbDecimal))
                    .bind(reading.humidity_pct.map(DbDecimal))
                    .bind(i64::try_from(report.breaches.len()).unwrap_or(i64::MAX))
                    .execute(&mut *tx)
                    .await?;
                record_event!(tx, at, actor, "StorageConditionReading", &report.id, "inventory.storage_reading.recorded", &report)?;
                tx.commit().await?;
                Ok(report)
            })
        })
        .await
    }

    #[tracing::instrument(name = "store.set_optimization", skip_all, fields(item = %item_code, warehouse = %warehouse))]
    async fn set_optimization(
        &self,
        item_code: &DocName,
        warehouse: &DocName,
        params: ReorderParams,
        actor: &Actor,
    ) -> Result<Optimization, InventoryError> {
        self.retrying(|| async {
            erp_dispatch!(&self.pool, pool => {
                let mut tx = pool.begin_write().await?;
                require_item!(tx, item_code);
                require_warehouse!(tx, warehouse);
                let at = now();
                let existing: Option<OptimizationRow> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_OPTIMIZATION}{}", pool.for_update())))
                    .bind(item_code.as_str())
                    .bind(warehouse.as_str())
                    .fetch_optional(&mut *tx)
                    .await?;
                let lead = i64::from(params.lead_time_days);
                let window = i64::from(params.consumption_window_days);
                let optimization = match existing {
                    Some(row) => {
                        sqlx::query(UPDATE_OPTIMIZATION)
                            .bind(DbDecimal(params.reorder_level)).bind(DbDecimal(params.reorder_qty))
                            .bind(DbDecimal(params.safety_stock)).bind(lead)
                            .bind(DbDecimal(params.min_qty)).bind(DbDecimal(params.max_qty)).bind(window)
                            .bind(at).bind(actor.as_str()).bind(&row.name)
                            .execute(&mut *tx).await?;
                        Optimization { params: params.clone(), ..optimization_from(row)? }
                    }
                    None => {
                        let id = new_id();
                        let inserted = sqlx::query(INSERT_OPTIMIZATION)
                            .bind(&id).bind(at).bind(at).bind(actor.as_str()).bind(actor.as_str())
                            .bind(item_code.as_str()).bind(warehouse.as_str())
                            .bind(DbDecimal(params.reorder_level)).bind(DbDecimal(params.reorder_qty))
                            .bind(DbDecimal(params.safety_stock)).bind(lead)
                            .bind(DbDecimal(params.min_qty)).bind(DbDecimal(params.max_qty)).bind(window)
                            .execute(&mut *tx).await;
                        match inserted {
                            Err(e) if is_unique_violation(&e) => return Err(InventoryError::Aborted("a concurrent change set the parameters".into())),
                            other => other?,
                        };
                        Optimization {
                            id,
                            item_code: item_code.to_string(),
                            warehouse: warehouse.to_string(),
                            params: params.clone(),
                            avg_daily_issue: None,
                            reorder_point: None,
                            usable_qty: None,
                            last_evaluated_at: None,
                        }
                    }
                };
                record_event!(tx, at, actor, "ItemWarehouseOptimization", &optimization.id, "inventory.optimization.set", &optimization)?;
                tx.commit().await?;
                Ok(optimization)
            })
        })
        .await
    }

    #[tracing::instrument(name = "store.optimization", skip_all, fields(item = %item_code, warehouse = %warehouse))]
    async fn optimization(
        &self,
        item_code: &DocName,
        warehouse: &DocName,
    ) -> Result<Optimization, InventoryError> {
        optimization_from(
            self.optimization_row(item_code.as_str(), warehouse.as_str())
                .await?,
        )
    }

    #[tracing::instrument(name = "store.procurement_triggers", skip_all)]
    async fn procurement_triggers(
        &self,
        filter: TriggerFilter,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<ProcurementTrigger>, InventoryError> {
        let after: String = harsha_store::page::decode_token(page_token)?.unwrap_or_default();
        let item = filter.item_code.as_ref().map(DocName::as_str);
        let warehouse = filter.warehouse.as_ref().map(DocName::as_str);
        let rows: Vec<TriggerRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(LIST_TRIGGERS)
                .bind(item).bind(item)
                .bind(warehouse).bind(warehouse)
                .bind(i32::from(filter.open_only))
                .bind(&after)
                .bind(i64::from(page_size) + 1)
                .fetch_all(pool)
                .await?
        });
        Page::from_rows(rows, page_size, |row| row.name.clone())
            .try_map(|row| trigger_from(row, None))
    }

    #[tracing::instrument(name = "store.evaluate_reorder", skip_all)]
    async fn evaluate_reorder(
        &self,
        item_code: Option<&DocName>,
        warehouse: Option<&DocName>,
        as_of: NaiveDate,
        actor: &Actor,
    ) -> Result<Vec<ReorderEvaluation>, InventoryError> {
        let item = item_code.map(DocName::as_str);
        let warehouse = warehouse.map(DocName::as_str);
        let rows: Vec<OptimizationRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(LIST_OPTIMIZATIONS)
                .bind(item).bind(item)
                .bind(warehouse).bind(warehouse)
                .fetch_all(pool)
                .await?
        });
        let mut evaluations = Vec::with_capacity(rows.len());
        for row in rows {
            let (item_code, warehouse) = (row.item_code.clone(), row.warehouse.clone());
            let mut pending = Some(row);
            let evaluation = self
                .retrying(|| {
                    let row = pending.take();
                    let (item_code, warehouse) = (item_code.clone(), warehouse.clone());
                    async move {
                        let row = match row {
                            Some(row) => row,
                            None => self.optimization_row(&item_code, &warehouse).await?,
                        };
                        self.evaluate_one(row, as_of, actor).await
                    }
                })
                .await?;
            evaluations.push(evaluation);
        }
        Ok(evaluations)
    }

    #[tracing::instrument(name = "store.stock_position", skip_all, fields(item = %item_code))]
    async fn stock_position(
        &self,
        item_code: &DocName,
        as_of: NaiveDate,
        defaults: ExpiryThresholds,
    ) -> Result<StockPosition, InventoryError> {
        let thresholds = self.expiry_policy(item_code, defaults).await?;
        let rows: Vec<PositionRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(STOCK_GROUPS).bind(item_code.as_str()).fetch_all(pool).await?
        });
        let groups: Vec<StockGroup> = decode(rows)?;
        Ok(StockPosition::build(
            item_code.as_str(),
            as_of,
            thresholds,
            groups,
        ))
    }

    #[tracing::instrument(name = "store.ensure_movement_partitions", skip_all, fields(through = %through))]
    async fn ensure_movement_partitions(
        &self,
        through: NaiveDate,
    ) -> Result<Vec<String>, InventoryError> {
        Ok(
            harsha_store::partition::ensure_monthly(&self.pool, "tabHD Batch Movement", through)
                .await?,
        )
    }
}
