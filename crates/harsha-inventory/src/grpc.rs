//! The `harsha.inventory.v1.InventoryService` server: converts requests into
//! validated domain values (naming the field that is wrong), calls the
//! store, converts results back, and maps [`InventoryError`] to a gRPC
//! status in one place.

use std::sync::{Arc, OnceLock};

use chrono::{NaiveDate, Utc};
use harsha_proto::{
    convert::{
        date_from_proto, date_to_proto, decimal_from_proto, decimal_to_proto, naive_utc_to_proto,
        timestamp_from_proto,
    },
    google::r#type::Date,
    harsha::{
        inventory::v1::{self as pb, inventory_service_server::InventoryService},
        r#type::v1::Decimal as WireDecimal,
    },
    metadata::actor_name,
};
use harsha_store::{page::page_size, status::store_status};
use rust_decimal::Decimal;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

use crate::{
    InventoryConfig, InventoryError, InventoryStore,
    domain::{
        Actor, Allergen, Allergens, Allocation, AllocationLine, AllocationRequest,
        AllocationStatus, Batch, BatchNo, BatchStatus, Bounds, ConditionReading, DocName,
        ExpiringBatch, ExpiryLevel, ExpiryThresholds, Movement, MovementType, NewBatch, Nutrition,
        QualityGrade, Quantity, Reference, ReorderDecision, ReorderParams, StorageConditions,
        Strategy, WarehousePosition, WriteOffCause, humidity_limits, temperature_limits,
    },
    store::{
        BatchFilter, ExpiringQuery, ExpiryAlert, Moved, MovementNote, Optimization,
        ProcurementTrigger, ReorderEvaluation, TriggerFilter,
    },
};

pub use harsha_proto::harsha::inventory::v1::inventory_service_server::InventoryServiceServer;

/// Where the store appears once the database is connected and migrated;
/// until then every call answers `UNAVAILABLE`.
pub type StoreSlot = Arc<OnceLock<Arc<dyn InventoryStore>>>;

/// The longest hold an allocation may ask for: a week.
const MAX_HOLD_SECONDS: i32 = 7 * 24 * 3600;
/// The most requests `AllocateStockLines` takes at once.
pub const MAX_ALLOCATION_LINES: usize = 100;

/// The longest minimum shelf life an allocation may ask for: ten years.
const MAX_SHELF_LIFE_DAYS: i32 = 3650;
/// The longest free text accepted in reasons.
const MAX_REASON: usize = 1000;

/// The Inventory gRPC service.
#[derive(Clone)]
pub struct InventoryGrpc {
    store: StoreSlot,
    config: InventoryConfig,
}

impl InventoryGrpc {
    /// A request to reserve stock, checked field by field.
    fn allocation_request(
        &self,
        request: pb::AllocateStockRequest,
    ) -> Result<AllocationRequest, InventoryError> {
        let hold_seconds = match request.hold_seconds {
            0 => self.config.default_hold_seconds,
            hold if (1..=MAX_HOLD_SECONDS).contains(&hold) => {
                u32::try_from(hold).unwrap_or(u32::MAX)
            }
            hold => {
                return Err(InventoryError::invalid(
                    "hold_seconds",
                    format!("must be between 1 and {MAX_HOLD_SECONDS}, not {hold}"),
                ));
            }
        };
        let request_id = text(&request.request_id, "request_id", false)?;
        if request_id
            .as_ref()
            .is_some_and(|id| id.chars().count() > 140)
        {
            return Err(InventoryError::invalid(
                "request_id",
                "is longer than 140 characters",
            ));
        }
        Ok(AllocationRequest {
            request_id,
            item_code: doc_name(&request.item_code, "item_code")?,
            qty: quantity(request.qty.as_ref(), "qty")?,
            warehouse: optional_doc_name(&request.warehouse, "warehouse")?,
            strategy: match pb::AllocationStrategy::try_from(request.strategy) {
                Ok(pb::AllocationStrategy::Unspecified | pb::AllocationStrategy::Fefo) => {
                    Strategy::Fefo
                }
                Ok(pb::AllocationStrategy::Fifo) => Strategy::Fifo,
                Err(_) => {
                    return Err(InventoryError::invalid(
                        "strategy",
                        format!("{} is not a strategy", request.strategy),
                    ));
                }
            },
            min_shelf_life_days: days(
                request.min_remaining_shelf_life_days,
                "min_remaining_shelf_life_days",
                MAX_SHELF_LIFE_DAYS,
            )?,
            min_grade: grade_from(request.min_grade, "min_grade")?.unwrap_or(QualityGrade::C),
            hold_seconds,
            reference: reference(request.reference)?,
        })
    }
    /// A service reading its store from `store`.
    pub fn new(store: StoreSlot, config: InventoryConfig) -> Self {
        Self { store, config }
    }

    /// A service on a store that is ready now.
    pub fn with_store(store: Arc<dyn InventoryStore>, config: InventoryConfig) -> Self {
        let slot = StoreSlot::default();
        let _ = slot.set(store);
        Self::new(slot, config)
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> InventoryServiceServer<Self> {
        InventoryServiceServer::new(self)
    }

    fn store(&self) -> Result<&Arc<dyn InventoryStore>, InventoryError> {
        self.store.get().ok_or(InventoryError::NotReady)
    }

    fn date_or_today(&self, date: Option<&Date>, field: &str) -> Result<NaiveDate, InventoryError> {
        date.map_or_else(
            || Ok(self.config.today()),
            |date| date_from_proto(date).map_err(|e| InventoryError::invalid(field, e)),
        )
    }
}

fn actor<T>(request: &Request<T>) -> Actor {
    actor_name(request).map_or_else(Actor::system, Actor::named)
}

fn invalid(field: &str) -> impl FnOnce(harsha_types::ValueError) -> InventoryError + '_ {
    move |error| InventoryError::invalid(field, error)
}

fn doc_name(value: &str, field: &str) -> Result<DocName, InventoryError> {
    DocName::parse(value).map_err(invalid(field))
}

fn optional_doc_name(value: &str, field: &str) -> Result<Option<DocName>, InventoryError> {
    if value.is_empty() {
        Ok(None)
    } else {
        doc_name(value, field).map(Some)
    }
}

fn required_id<'a>(value: &'a str, field: &str) -> Result<&'a str, InventoryError> {
    if value.is_empty() {
        Err(InventoryError::invalid(field, "is required"))
    } else {
        Ok(value)
    }
}

fn text(value: &str, field: &str, required: bool) -> Result<Option<String>, InventoryError> {
    let value = value.trim();
    if value.is_empty() {
        return if required {
            Err(InventoryError::invalid(field, "is required"))
        } else {
            Ok(None)
        };
    }
    if value.chars().count() > MAX_REASON {
        return Err(InventoryError::invalid(
            field,
            format!("is longer than {MAX_REASON} characters"),
        ));
    }
    Ok(Some(value.to_owned()))
}

fn decimal(value: Option<&WireDecimal>, field: &str) -> Result<Option<Decimal>, InventoryError> {
    value
        .filter(|v| !v.value.is_empty())
        .map(|v| decimal_from_proto(v).map_err(|e| InventoryError::invalid(field, e)))
        .transpose()
}

fn required_decimal(value: Option<&WireDecimal>, field: &str) -> Result<Decimal, InventoryError> {
    decimal(value, field)?.ok_or_else(|| InventoryError::invalid(field, "is required"))
}

fn quantity(value: Option<&WireDecimal>, field: &str) -> Result<Quantity, InventoryError> {
    Quantity::new(required_decimal(value, field)?).map_err(invalid(field))
}

fn non_negative(value: Option<&WireDecimal>, field: &str) -> Result<Decimal, InventoryError> {
    let value = decimal(value, field)?.unwrap_or_default();
    if value < Decimal::ZERO {
        return Err(InventoryError::invalid(
            field,
            format!("must not be negative, not {value}"),
        ));
    }
    Ok(value)
}

fn required_date(value: Option<&Date>, field: &str) -> Result<NaiveDate, InventoryError> {
    let date = value.ok_or_else(|| InventoryError::invalid(field, "is required"))?;
    date_from_proto(date).map_err(|e| InventoryError::invalid(field, e))
}

fn days(value: i32, field: &str, max: i32) -> Result<u32, InventoryError> {
    if !(0..=max).contains(&value) {
        return Err(InventoryError::invalid(
            field,
            format!("must be between 0 and {max}, not {value}"),
        ));
    }
    u32::try_from(value).map_err(|e| InventoryError::invalid(field, e))
}

fn reference(value: Option<pb::DocumentReference>) -> Result<Reference, InventoryError> {
    let Some(value) = value else {
        return Ok(Reference::default());
    };
    Ok(Reference {
        doctype: optional_doc_name(&value.doctype, "reference.doctype")?.map(|d| d.to_string()),
        name: optional_doc_name(&value.name, "reference.name")?.map(|d| d.to_string()),
    })
}

fn note(
    reason: &str,
    reference_value: Option<pb::DocumentReference>,
    reason_required: bool,
) -> Result<MovementNote, InventoryError> {
    Ok(MovementNote {
        reason: text(reason, "reason", reason_required)?,
        reference: reference(reference_value)?,
    })
}

fn grade_from(value: i32, field: &str) -> Result<Option<QualityGrade>, InventoryError> {
    match pb::QualityGrade::try_from(value) {
        Ok(pb::QualityGrade::Unspecified) => Ok(None),
        Ok(pb::QualityGrade::A) => Ok(Some(QualityGrade::A)),
        Ok(pb::QualityGrade::B) => Ok(Some(QualityGrade::B)),
        Ok(pb::QualityGrade::C) => Ok(Some(QualityGrade::C)),
        Err(_) => Err(InventoryError::invalid(
            field,
            format!("{value} is not a quality grade"),
        )),
    }
}

fn grade_to(grade: QualityGrade) -> pb::QualityGrade {
    match grade {
        QualityGrade::A => pb::QualityGrade::A,
        QualityGrade::B => pb::QualityGrade::B,
        QualityGrade::C => pb::QualityGrade::C,
    }
}

fn allergen_from(value: i32) -> Result<Allergen, InventoryError> {
    let allergen = match pb::Allergen::try_from(value) {
        Ok(pb::Allergen::Milk) => Allergen::Milk,
        Ok(pb::Allergen::Egg) => Allergen::Egg,
        Ok(pb::Allergen::Peanuts) => Allergen::Peanuts,
        Ok(pb::Allergen::TreeNuts) => Allergen::TreeNuts,
        Ok(pb::Allergen::Gluten) => Allergen::Gluten,
        Ok(pb::Allergen::Soy) => Allergen::Soy,
        Ok(pb::Allergen::Sesame) => Allergen::Sesame,
        Ok(pb::Allergen::Sulphites) => Allergen::Sulphites,
        Ok(pb::Allergen::Mustard) => Allergen::Mustard,
        Ok(pb::Allergen::Celery) => Allergen::Celery,
        Ok(pb::Allergen::Lupin) => Allergen::Lupin,
        Ok(pb::Allergen::Fish) => Allergen::Fish,
        Ok(pb::Allergen::Crustaceans) => Allergen::Crustaceans,
        Ok(pb::Allergen::Molluscs) => Allergen::Molluscs,
        Ok(pb::Allergen::Unspecified) | Err(_) => {
            return Err(InventoryError::invalid(
                "allergens",
                format!("{value} is not an allergen"),
            ));
        }
    };
    Ok(allergen)
}

fn allergen_to(allergen: Allergen) -> pb::Allergen {
    match allergen {
        Allergen::Milk => pb::Allergen::Milk,
        Allergen::Egg => pb::Allergen::Egg,
        Allergen::Peanuts => pb::Allergen::Peanuts,
        Allergen::TreeNuts => pb::Allergen::TreeNuts,
        Allergen::Gluten => pb::Allergen::Gluten,
        Allergen::Soy => pb::Allergen::Soy,
        Allergen::Sesame => pb::Allergen::Sesame,
        Allergen::Sulphites => pb::Allergen::Sulphites,
        Allergen::Mustard => pb::Allergen::Mustard,
        Allergen::Celery => pb::Allergen::Celery,
        Allergen::Lupin => pb::Allergen::Lupin,
        Allergen::Fish => pb::Allergen::Fish,
        Allergen::Crustaceans => pb::Allergen::Crustaceans,
        Allergen::Molluscs => pb::Allergen::Molluscs,
    }
}

fn batch_status_to(status: BatchStatus) -> pb::BatchStatus {
    match status {
        BatchStatus::Active => pb::BatchStatus::Active,
        BatchStatus::Quarantined => pb::BatchStatus::Quarantined,
        BatchStatus::Expired => pb::BatchStatus::Expired,
        BatchStatus::Consumed => pb::BatchStatus::Consumed,
    }
}

fn batch_status_from(value: i32) -> Result<Option<BatchStatus>, InventoryError> {
    match pb::BatchStatus::try_from(value) {
        Ok(pb::BatchStatus::Unspecified) => Ok(None),
        Ok(pb::BatchStatus::Active) => Ok(Some(BatchStatus::Active)),
        Ok(pb::BatchStatus::Quarantined) => Ok(Some(BatchStatus::Quarantined)),
        Ok(pb::BatchStatus::Expired) => Ok(Some(BatchStatus::Expired)),
        Ok(pb::BatchStatus::Consumed) => Ok(Some(BatchStatus::Consumed)),
        Err(_) => Err(InventoryError::invalid(
            "status",
            format!("{value} is not a batch status"),
        )),
    }
}

fn movement_type_to(kind: MovementType) -> pb::MovementType {
    match kind {
        MovementType::Receipt => pb::MovementType::Receipt,
        MovementType::Issue => pb::MovementType::Issue,
        MovementType::TransferOut => pb::MovementType::TransferOut,
        MovementType::TransferIn => pb::MovementType::TransferIn,
        MovementType::Adjustment => pb::MovementType::Adjustment,
        MovementType::Reservation => pb::MovementType::Reservation,
        MovementType::Release => pb::MovementType::Release,
        MovementType::WriteOff => pb::MovementType::WriteOff,
    }
}

fn strategy_to(strategy: Strategy) -> pb::AllocationStrategy {
    match strategy {
        Strategy::Fefo => pb::AllocationStrategy::Fefo,
        Strategy::Fifo => pb::AllocationStrategy::Fifo,
    }
}

fn allocation_status_to(status: AllocationStatus) -> pb::AllocationStatus {
    match status {
        AllocationStatus::Reserved => pb::AllocationStatus::Reserved,
        AllocationStatus::Confirmed => pb::AllocationStatus::Confirmed,
        AllocationStatus::Released => pb::AllocationStatus::Released,
        AllocationStatus::Expired => pb::AllocationStatus::Expired,
    }
}

fn level_to(level: ExpiryLevel) -> pb::ExpiryLevel {
    match level {
        ExpiryLevel::Expired => pb::ExpiryLevel::Expired,
        ExpiryLevel::Critical => pb::ExpiryLevel::Critical,
        ExpiryLevel::Warning => pb::ExpiryLevel::Warning,
        ExpiryLevel::Ok => pb::ExpiryLevel::Ok,
    }
}

fn decision_to(decision: ReorderDecision) -> pb::ReorderDecision {
    match decision {
        ReorderDecision::Open => pb::ReorderDecision::Opened,
        ReorderDecision::StillOpen => pb::ReorderDecision::StillOpen,
        ReorderDecision::Resolve => pb::ReorderDecision::Resolved,
        ReorderDecision::Healthy => pb::ReorderDecision::Healthy,
    }
}

fn wire(value: Decimal) -> Option<WireDecimal> {
    Some(decimal_to_proto(value))
}

fn wire_days(days: i64) -> i32 {
    i32::try_from(days).unwrap_or(if days < 0 { i32::MIN } else { i32::MAX })
}

fn reference_to(reference: Reference) -> Option<pb::DocumentReference> {
    (reference.doctype.is_some() || reference.name.is_some()).then(|| pb::DocumentReference {
        doctype: reference.doctype.unwrap_or_default(),
        name: reference.name.unwrap_or_default(),
    })
}

fn batch_to_proto(batch: Batch) -> pb::Batch {
    let storage = batch.storage;
    pb::Batch {
        batch_id: batch.id,
        item_code: batch.item_code,
        warehouse: batch.warehouse,
        batch_no: batch.batch_no,
        supplier: batch.supplier.unwrap_or_default(),
        manufacturing_date: Some(date_to_proto(batch.manufacturing_date)),
        expiry_date: Some(date_to_proto(batch.expiry_date)),
        receive_time: Some(naive_utc_to_proto(batch.received_at)),
        received_qty: wire(batch.received_qty),
        available_qty: wire(batch.available_qty),
        reserved_qty: wire(batch.reserved_qty),
        stock_uom: batch.stock_uom,
        quality_grade: grade_to(batch.grade).into(),
        storage_conditions: (storage.temperature_c.is_some() || storage.humidity_pct.is_some())
            .then(|| pb::StorageConditions {
                temperature_min_c: storage.temperature_c.and_then(|b| wire(b.min)),
                temperature_max_c: storage.temperature_c.and_then(|b| wire(b.max)),
                humidity_min_pct: storage.humidity_pct.and_then(|b| wire(b.min)),
                humidity_max_pct: storage.humidity_pct.and_then(|b| wire(b.max)),
            }),
        nutrition: batch.nutrition.map(|n| pb::Nutrition {
            energy_kcal: wire(n.energy_kcal),
            protein_g: wire(n.protein_g),
            carbohydrate_g: wire(n.carbohydrate_g),
            sugars_g: wire(n.sugars_g),
            fat_g: wire(n.fat_g),
            saturated_fat_g: wire(n.saturated_fat_g),
            sodium_mg: wire(n.sodium_mg),
        }),
        allergens: batch
            .allergens
            .iter()
            .map(|a| allergen_to(a).into())
            .collect(),
        status: batch_status_to(batch.status).into(),
        status_reason: batch.status_reason.unwrap_or_default(),
        create_time: Some(naive_utc_to_proto(batch.created)),
        update_time: Some(naive_utc_to_proto(batch.modified)),
    }
}

fn movement_to_proto(movement: Movement) -> pb::Movement {
    pb::Movement {
        movement_id: movement.id,
        batch_id: movement.batch,
        item_code: movement.item_code,
        warehouse: movement.warehouse,
        movement_type: movement_type_to(movement.kind).into(),
        available_change: wire(movement.change.available),
        reserved_change: wire(movement.change.reserved),
        available_after: wire(movement.balance_after.available),
        reserved_after: wire(movement.balance_after.reserved),
        reason: movement.reason.unwrap_or_default(),
        reference: reference_to(movement.reference),
        allocation_id: movement.allocation.unwrap_or_default(),
        transfer_id: movement.transfer.unwrap_or_default(),
        user: movement.actor,
        create_time: Some(naive_utc_to_proto(movement.at)),
    }
}

fn line_to_proto(line: AllocationLine) -> pb::AllocationLine {
    pb::AllocationLine {
        batch_id: line.batch,
        batch_no: line.batch_no,
        warehouse: line.warehouse,
        expiry_date: Some(date_to_proto(line.expiry_date)),
        quality_grade: grade_to(line.grade).into(),
        qty: wire(line.qty),
    }
}

fn allocation_to_proto(allocation: Allocation) -> pb::Allocation {
    pb::Allocation {
        allocation_id: allocation.id,
        request_id: allocation.request_id.unwrap_or_default(),
        item_code: allocation.item_code,
        warehouse: allocation.warehouse.unwrap_or_default(),
        qty: wire(allocation.qty),
        strategy: strategy_to(allocation.strategy).into(),
        min_remaining_shelf_life_days: i32::try_from(allocation.min_shelf_life_days)
            .unwrap_or(i32::MAX),
        min_grade: grade_to(allocation.min_grade).into(),
        status: allocation_status_to(allocation.status).into(),
        expire_time: Some(naive_utc_to_proto(allocation.expires_at)),
        reference: reference_to(allocation.reference),
        lines: allocation.lines.into_iter().map(line_to_proto).collect(),
        create_time: Some(naive_utc_to_proto(allocation.created)),
        update_time: Some(naive_utc_to_proto(allocation.modified)),
    }
}

fn expiring_to_proto(expiring: ExpiringBatch) -> pb::ExpiringBatch {
    pb::ExpiringBatch {
        level: level_to(expiring.level).into(),
        days_to_expiry: wire_days(expiring.days_to_expiry),
        batch: Some(batch_to_proto(expiring.batch)),
    }
}

fn alert_to_proto(alert: ExpiryAlert) -> pb::ExpiryAlert {
    pb::ExpiryAlert {
        alert_id: alert.id,
        batch_id: alert.batch,
        item_code: alert.item_code,
        warehouse: alert.warehouse,
        expiry_date: Some(date_to_proto(alert.expiry_date)),
        level: level_to(alert.level).into(),
        days_to_expiry: wire_days(alert.days_to_expiry),
        on_hand_qty: wire(alert.on_hand),
    }
}

fn policy_to_proto(thresholds: ExpiryThresholds) -> pb::ExpiryPolicy {
    pb::ExpiryPolicy {
        critical_days: i32::try_from(thresholds.critical_days()).unwrap_or(i32::MAX),
        warning_days: i32::try_from(thresholds.warning_days()).unwrap_or(i32::MAX),
    }
}

fn optimization_to_proto(optimization: Optimization) -> pb::ItemWarehouseOptimization {
    let params = optimization.params;
    pb::ItemWarehouseOptimization {
        item_code: optimization.item_code,
        warehouse: optimization.warehouse,
        reorder_level: wire(params.reorder_level),
        reorder_qty: wire(params.reorder_qty),
        safety_stock: wire(params.safety_stock),
        lead_time_days: i32::try_from(params.lead_time_days).unwrap_or(i32::MAX),
        min_qty: wire(params.min_qty),
        max_qty: wire(params.max_qty),
        consumption_window_days: i32::try_from(params.consumption_window_days).unwrap_or(i32::MAX),
        avg_daily_issue: optimization.avg_daily_issue.and_then(wire),
        reorder_point: optimization.reorder_point.and_then(wire),
        usable_qty: optimization.usable_qty.and_then(wire),
        evaluate_time: optimization.last_evaluated_at.map(naive_utc_to_proto),
    }
}

fn trigger_to_proto(trigger: ProcurementTrigger) -> pb::ProcurementTrigger {
    pb::ProcurementTrigger {
        trigger_id: trigger.id,
        item_code: trigger.item_code,
        warehouse: trigger.warehouse,
        usable_qty: wire(trigger.usable_qty),
        reorder_point: wire(trigger.reorder_point),
        suggested_qty: wire(trigger.suggested_qty),
        open: trigger.open,
        create_time: Some(naive_utc_to_proto(trigger.created)),
        resolve_time: trigger.resolved_at.map(naive_utc_to_proto),
    }
}

fn evaluation_to_proto(evaluation: ReorderEvaluation) -> pb::ReorderEvaluation {
    pb::ReorderEvaluation {
        optimization: Some(optimization_to_proto(evaluation.optimization)),
        decision: decision_to(evaluation.decision).into(),
        trigger: evaluation.trigger.map(trigger_to_proto),
    }
}

fn warehouse_stock_to_proto(position: WarehousePosition) -> pb::WarehouseStock {
    pb::WarehouseStock {
        warehouse: position.warehouse,
        available_qty: wire(position.available),
        reserved_qty: wire(position.reserved),
        quarantined_qty: wire(position.quarantined),
        buckets: Some(pb::ExpiryBuckets {
            expired: wire(position.buckets.expired),
            critical: wire(position.buckets.critical),
            warning: wire(position.buckets.warning),
            ok: wire(position.buckets.ok),
        }),
    }
}

fn moved_parts(moved: Moved) -> (Option<pb::Batch>, Option<pb::Movement>) {
    (
        Some(batch_to_proto(moved.batch)),
        Some(movement_to_proto(moved.movement)),
    )
}

fn bounds(
    min: Option<&WireDecimal>,
    max: Option<&WireDecimal>,
    fields: (&str, &str),
    limits: (Decimal, Decimal),
) -> Result<Option<Bounds>, InventoryError> {
    match (decimal(min, fields.0)?, decimal(max, fields.1)?) {
        (None, None) => Ok(None),
        (Some(min), Some(max)) => Bounds::new(min, max, limits)
            .map(Some)
            .map_err(invalid(fields.1)),
        (None, Some(_)) => Err(InventoryError::invalid(
            fields.0,
            "is required with a maximum",
        )),
        (Some(_), None) => Err(InventoryError::invalid(
            fields.1,
            "is required with a minimum",
        )),
    }
}

fn storage_from(value: Option<pb::StorageConditions>) -> Result<StorageConditions, InventoryError> {
    let Some(value) = value else {
        return Ok(StorageConditions::default());
    };
    Ok(StorageConditions {
        temperature_c: bounds(
            value.temperature_min_c.as_ref(),
            value.temperature_max_c.as_ref(),
            (
                "storage_conditions.temperature_min_c",
                "storage_conditions.temperature_max_c",
            ),
            temperature_limits(),
        )?,
        humidity_pct: bounds(
            value.humidity_min_pct.as_ref(),
            value.humidity_max_pct.as_ref(),
            (
                "storage_conditions.humidity_min_pct",
                "storage_conditions.humidity_max_pct",
            ),
            humidity_limits(),
        )?,
    })
}

fn nutrition_from(value: Option<pb::Nutrition>) -> Result<Option<Nutrition>, InventoryError> {
    let Some(value) = value else {
        return Ok(None);
    };
    let nutrition = Nutrition {
        energy_kcal: required_decimal(value.energy_kcal.as_ref(), "nutrition.energy_kcal")?,
        protein_g: required_decimal(value.protein_g.as_ref(), "nutrition.protein_g")?,
        carbohydrate_g: required_decimal(
            value.carbohydrate_g.as_ref(),
            "nutrition.carbohydrate_g",
        )?,
        sugars_g: required_decimal(value.sugars_g.as_ref(), "nutrition.sugars_g")?,
        fat_g: required_decimal(value.fat_g.as_ref(), "nutrition.fat_g")?,
        saturated_fat_g: required_decimal(
            value.saturated_fat_g.as_ref(),
            "nutrition.saturated_fat_g",
        )?,
        sodium_mg: required_decimal(value.sodium_mg.as_ref(), "nutrition.sodium_mg")?,
    };
    nutrition
        .validate()
        .map(Some)
        .map_err(|(field, error)| InventoryError::invalid(format!("nutrition.{field}"), error))
}

fn new_batch(request: pb::ReceiveBatchRequest) -> Result<NewBatch, InventoryError> {
    let stock_uom = text(&request.stock_uom, "stock_uom", false)?;
    if stock_uom.as_ref().is_some_and(|u| u.chars().count() > 140) {
        return Err(InventoryError::invalid(
            "stock_uom",
            "is longer than 140 characters",
        ));
    }
    let batch = NewBatch {
        item_code: doc_name(&request.item_code, "item_code")?,
        warehouse: doc_name(&request.warehouse, "warehouse")?,
        batch_no: BatchNo::parse(&request.batch_no).map_err(invalid("batch_no"))?,
        supplier: optional_doc_name(&request.supplier, "supplier")?,
        manufacturing_date: required_date(
            request.manufacturing_date.as_ref(),
            "manufacturing_date",
        )?,
        expiry_date: required_date(request.expiry_date.as_ref(), "expiry_date")?,
        qty: quantity(request.qty.as_ref(), "qty")?,
        stock_uom,
        grade: grade_from(request.quality_grade, "quality_grade")?
            .ok_or_else(|| InventoryError::invalid("quality_grade", "is required"))?,
        storage: storage_from(request.storage_conditions)?,
        nutrition: nutrition_from(request.nutrition)?,
        allergens: Allergens::new(
            request
                .allergens
                .iter()
                .map(|a| allergen_from(*a))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        reference: reference(request.reference)?,
    };
    batch
        .validate()
        .map_err(|(field, error)| InventoryError::invalid(field, error))
}

fn thresholds_from(policy: Option<pb::ExpiryPolicy>) -> Result<ExpiryThresholds, InventoryError> {
    let policy = policy.ok_or_else(|| InventoryError::invalid("policy", "is required"))?;
    let critical = days(policy.critical_days, "policy.critical_days", 3650)?;
    let warning = days(policy.warning_days, "policy.warning_days", 3650)?;
    ExpiryThresholds::new(critical, warning).map_err(invalid("policy.warning_days"))
}

fn params_from(
    value: Option<pb::ItemWarehouseOptimization>,
) -> Result<ReorderParams, InventoryError> {
    let value = value.ok_or_else(|| InventoryError::invalid("optimization", "is required"))?;
    let window = if value.consumption_window_days == 0 {
        30
    } else {
        value.consumption_window_days
    };
    let params = ReorderParams {
        reorder_level: non_negative(value.reorder_level.as_ref(), "optimization.reorder_level")?,
        reorder_qty: non_negative(value.reorder_qty.as_ref(), "optimization.reorder_qty")?,
        safety_stock: non_negative(value.safety_stock.as_ref(), "optimization.safety_stock")?,
        lead_time_days: days(value.lead_time_days, "optimization.lead_time_days", 365)?,
        min_qty: non_negative(value.min_qty.as_ref(), "optimization.min_qty")?,
        max_qty: non_negative(value.max_qty.as_ref(), "optimization.max_qty")?,
        consumption_window_days: days(window, "optimization.consumption_window_days", 365)?,
    };
    params
        .validate()
        .map_err(|(field, reason)| InventoryError::invalid(format!("optimization.{field}"), reason))
}

impl From<InventoryError> for Status {
    fn from(error: InventoryError) -> Self {
        let message = error.to_string();
        match error {
            InventoryError::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            InventoryError::ItemNotFound(_)
            | InventoryError::WarehouseNotFound(_)
            | InventoryError::BatchNotFound(_)
            | InventoryError::AllocationNotFound(_)
            | InventoryError::OptimizationNotFound { .. } => Status::not_found(message),
            InventoryError::BatchExists { .. } => Status::already_exists(message),
            InventoryError::InsufficientStock {
                item_code,
                requested,
                available,
                shortfall,
            } => {
                let mut details = ErrorDetails::with_precondition_failure_violation(
                    "STOCK",
                    item_code,
                    format!("short by {shortfall}"),
                );
                details.set_error_info(
                    "INSUFFICIENT_STOCK",
                    "inventory.harsha",
                    [
                        ("requested".to_owned(), requested.to_string()),
                        ("available".to_owned(), available.to_string()),
                        ("shortfall".to_owned(), shortfall.to_string()),
                    ],
                );
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            InventoryError::BatchShort {
                field,
                batch,
                what,
                held,
                needed,
            } => {
                let mut details = ErrorDetails::with_precondition_failure_violation(
                    "STOCK",
                    batch,
                    format!("holds {held} {what}; {needed} is needed"),
                );
                details.add_bad_request_violation(field, format!("more than the {held} {what}"));
                Status::with_error_details(Code::FailedPrecondition, message, details)
            }
            InventoryError::AtLine { index, error } => match *error {
                // The field, named inside the request's lines.
                InventoryError::InvalidArgument { field, reason } => Status::from(
                    InventoryError::invalid(format!("lines[{index}].{field}"), reason),
                ),
                inner => {
                    let status = Status::from(inner);
                    Status::with_details(
                        status.code(),
                        format!("lines[{index}]: {}", status.message()),
                        status.details().to_vec().into(),
                    )
                }
            },
            InventoryError::FailedPrecondition(_) => Status::failed_precondition(message),
            InventoryError::Aborted(_) => Status::aborted(message),
            InventoryError::NotReady => Status::unavailable(message),
            InventoryError::Store(store) => store_status("inventory", &store),
        }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

#[tonic::async_trait]
impl InventoryService for InventoryGrpc {
    #[tracing::instrument(name = "InventoryService.ReceiveBatch", skip_all)]
    async fn receive_batch(
        &self,
        request: Request<pb::ReceiveBatchRequest>,
    ) -> RpcResult<pb::ReceiveBatchResponse> {
        let actor = actor(&request);
        let batch = new_batch(request.into_inner())?;
        let today = self.config.today();
        if batch.manufacturing_date > today {
            return Err(InventoryError::invalid("manufacturing_date", "is in the future").into());
        }
        if batch.expiry_date <= today {
            return Err(InventoryError::invalid(
                "expiry_date",
                format!(
                    "the batch expired on {}; record it as written off instead",
                    batch.expiry_date
                ),
            )
            .into());
        }
        let (batch, movement) = moved_parts(self.store()?.receive_batch(batch, &actor).await?);
        Ok(Response::new(pb::ReceiveBatchResponse { batch, movement }))
    }

    #[tracing::instrument(name = "InventoryService.GetBatch", skip_all)]
    async fn get_batch(
        &self,
        request: Request<pb::GetBatchRequest>,
    ) -> RpcResult<pb::GetBatchResponse> {
        let id = required_id(&request.get_ref().batch_id, "batch_id")?;
        let batch = self.store()?.batch(id).await?;
        Ok(Response::new(pb::GetBatchResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.ListBatches", skip_all)]
    async fn list_batches(
        &self,
        request: Request<pb::ListBatchesRequest>,
    ) -> RpcResult<pb::ListBatchesResponse> {
        let request = request.into_inner();
        let filter = BatchFilter {
            item_code: optional_doc_name(&request.item_code, "item_code")?,
            warehouse: optional_doc_name(&request.warehouse, "warehouse")?,
            batch_no: (!request.batch_no.is_empty()).then(|| request.batch_no.clone()),
            status: batch_status_from(request.status)?,
        };
        let size = page_size(request.page_size).map_err(InventoryError::from)?;
        let page = self
            .store()?
            .list_batches(filter, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListBatchesResponse {
            batches: page.items.into_iter().map(batch_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.ListBatchMovements", skip_all)]
    async fn list_batch_movements(
        &self,
        request: Request<pb::ListBatchMovementsRequest>,
    ) -> RpcResult<pb::ListBatchMovementsResponse> {
        let request = request.into_inner();
        let id = required_id(&request.batch_id, "batch_id")?;
        let size = page_size(request.page_size).map_err(InventoryError::from)?;
        let page = self
            .store()?
            .movements(id, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListBatchMovementsResponse {
            movements: page.items.into_iter().map(movement_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.IssueStock", skip_all)]
    async fn issue_stock(
        &self,
        request: Request<pb::IssueStockRequest>,
    ) -> RpcResult<pb::IssueStockResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let id = required_id(&request.batch_id, "batch_id")?;
        let qty = quantity(request.qty.as_ref(), "qty")?;
        let note = note(&request.reason, request.reference, false)?;
        let (batch, movement) = moved_parts(self.store()?.issue(id, qty, note, &actor).await?);
        Ok(Response::new(pb::IssueStockResponse { batch, movement }))
    }

    #[tracing::instrument(name = "InventoryService.TransferStock", skip_all)]
    async fn transfer_stock(
        &self,
        request: Request<pb::TransferStockRequest>,
    ) -> RpcResult<pb::TransferStockResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let id = required_id(&request.batch_id, "batch_id")?;
        let qty = quantity(request.qty.as_ref(), "qty")?;
        let to = doc_name(&request.to_warehouse, "to_warehouse")?;
        let note = note(&request.reason, request.reference, false)?;
        let transfer = self.store()?.transfer(id, qty, &to, note, &actor).await?;
        let (source, out_movement) = moved_parts(transfer.source);
        let (target, in_movement) = moved_parts(transfer.target);
        Ok(Response::new(pb::TransferStockResponse {
            transfer_id: transfer.id,
            source,
            target,
            out_movement,
            in_movement,
        }))
    }

    #[tracing::instrument(name = "InventoryService.AdjustStock", skip_all)]
    async fn adjust_stock(
        &self,
        request: Request<pb::AdjustStockRequest>,
    ) -> RpcResult<pb::AdjustStockResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let id = required_id(&request.batch_id, "batch_id")?;
        let delta = required_decimal(request.delta.as_ref(), "delta")?;
        if delta.is_zero() {
            return Err(InventoryError::invalid("delta", "must not be zero").into());
        }
        Quantity::new(delta.abs()).map_err(invalid("delta"))?;
        let note = note(&request.reason, request.reference, true)?;
        let (batch, movement) = moved_parts(self.store()?.adjust(id, delta, note, &actor).await?);
        Ok(Response::new(pb::AdjustStockResponse { batch, movement }))
    }

    #[tracing::instrument(name = "InventoryService.WriteOffStock", skip_all)]
    async fn write_off_stock(
        &self,
        request: Request<pb::WriteOffStockRequest>,
    ) -> RpcResult<pb::WriteOffStockResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let id = required_id(&request.batch_id, "batch_id")?;
        let qty = match request.qty.as_ref().filter(|q| !q.value.is_empty()) {
            Some(_) => Some(quantity(request.qty.as_ref(), "qty")?),
            None => None,
        };
        let cause = match pb::WriteOffCause::try_from(request.cause) {
            Ok(pb::WriteOffCause::Expiry) => WriteOffCause::Expiry,
            Ok(pb::WriteOffCause::Quality) => WriteOffCause::Quality,
            _ => return Err(InventoryError::invalid("cause", "must be EXPIRY or QUALITY").into()),
        };
        let note = note(&request.reason, request.reference, false)?;
        let (batch, movement) = moved_parts(
            self.store()?
                .write_off(id, qty, cause, note, &actor)
                .await?,
        );
        Ok(Response::new(pb::WriteOffStockResponse { batch, movement }))
    }

    #[tracing::instrument(name = "InventoryService.QuarantineBatch", skip_all)]
    async fn quarantine_batch(
        &self,
        request: Request<pb::QuarantineBatchRequest>,
    ) -> RpcResult<pb::QuarantineBatchResponse> {
        let actor = actor(&request);
        let request = request.get_ref();
        let id = required_id(&request.batch_id, "batch_id")?;
        let reason = text(&request.reason, "reason", true)?.unwrap_or_default();
        let batch = self
            .store()?
            .set_quarantine(id, true, &reason, &actor)
            .await?;
        Ok(Response::new(pb::QuarantineBatchResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.LiftQuarantine", skip_all)]
    async fn lift_quarantine(
        &self,
        request: Request<pb::LiftQuarantineRequest>,
    ) -> RpcResult<pb::LiftQuarantineResponse> {
        let actor = actor(&request);
        let request = request.get_ref();
        let id = required_id(&request.batch_id, "batch_id")?;
        let reason = text(&request.reason, "reason", false)?.unwrap_or_default();
        let batch = self
            .store()?
            .set_quarantine(id, false, &reason, &actor)
            .await?;
        Ok(Response::new(pb::LiftQuarantineResponse {
            batch: Some(batch_to_proto(batch)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.AllocateStock", skip_all)]
    async fn allocate_stock(
        &self,
        request: Request<pb::AllocateStockRequest>,
    ) -> RpcResult<pb::AllocateStockResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let allocation = self.allocation_request(request)?;
        let allocation = self
            .store()?
            .allocate(allocation, self.config.today(), &actor)
            .await?;
        Ok(Response::new(pb::AllocateStockResponse {
            allocation: Some(allocation_to_proto(allocation)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.AllocateStockLines", skip_all)]
    async fn allocate_stock_lines(
        &self,
        request: Request<pb::AllocateStockLinesRequest>,
    ) -> RpcResult<pb::AllocateStockLinesResponse> {
        let actor = actor(&request);
        let lines = request.into_inner().lines;
        if lines.is_empty() || lines.len() > MAX_ALLOCATION_LINES {
            return Err(InventoryError::invalid(
                "lines",
                format!("1 to {MAX_ALLOCATION_LINES} requests, not {}", lines.len()),
            )
            .into());
        }
        let mut requests = Vec::with_capacity(lines.len());
        for (index, line) in lines.into_iter().enumerate() {
            let request =
                self.allocation_request(line)
                    .map_err(|error| InventoryError::AtLine {
                        index,
                        error: Box::new(error),
                    })?;
            if let Some(first) = requests.iter().position(|r: &AllocationRequest| {
                r.request_id.is_some() && r.request_id == request.request_id
            }) {
                return Err(InventoryError::invalid(
                    format!("lines[{index}].request_id"),
                    format!("the same as lines[{first}]'s"),
                )
                .into());
            }
            requests.push(request);
        }
        let allocations = self
            .store()?
            .allocate_all(requests, self.config.today(), &actor)
            .await?;
        Ok(Response::new(pb::AllocateStockLinesResponse {
            allocations: allocations.into_iter().map(allocation_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.GetAllocation", skip_all)]
    async fn get_allocation(
        &self,
        request: Request<pb::GetAllocationRequest>,
    ) -> RpcResult<pb::GetAllocationResponse> {
        let id = required_id(&request.get_ref().allocation_id, "allocation_id")?;
        let allocation = self.store()?.allocation(id).await?;
        Ok(Response::new(pb::GetAllocationResponse {
            allocation: Some(allocation_to_proto(allocation)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.ConfirmAllocation", skip_all)]
    async fn confirm_allocation(
        &self,
        request: Request<pb::ConfirmAllocationRequest>,
    ) -> RpcResult<pb::ConfirmAllocationResponse> {
        let actor = actor(&request);
        let id = required_id(&request.get_ref().allocation_id, "allocation_id")?;
        let allocation = self
            .store()?
            .confirm_allocation(id, self.config.today(), &actor)
            .await?;
        Ok(Response::new(pb::ConfirmAllocationResponse {
            allocation: Some(allocation_to_proto(allocation)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.ReleaseAllocation", skip_all)]
    async fn release_allocation(
        &self,
        request: Request<pb::ReleaseAllocationRequest>,
    ) -> RpcResult<pb::ReleaseAllocationResponse> {
        let actor = actor(&request);
        let id = required_id(&request.get_ref().allocation_id, "allocation_id")?;
        let allocation = self.store()?.release_allocation(id, &actor).await?;
        Ok(Response::new(pb::ReleaseAllocationResponse {
            allocation: Some(allocation_to_proto(allocation)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.ListExpiringBatches", skip_all)]
    async fn list_expiring_batches(
        &self,
        request: Request<pb::ListExpiringBatchesRequest>,
    ) -> RpcResult<pb::ListExpiringBatchesResponse> {
        let request = request.into_inner();
        let level = match pb::ExpiryLevel::try_from(request.level) {
            Ok(pb::ExpiryLevel::Unspecified) => None,
            Ok(pb::ExpiryLevel::Expired) => Some(ExpiryLevel::Expired),
            Ok(pb::ExpiryLevel::Critical) => Some(ExpiryLevel::Critical),
            Ok(pb::ExpiryLevel::Warning) => Some(ExpiryLevel::Warning),
            Ok(pb::ExpiryLevel::Ok) | Err(_) => {
                return Err(InventoryError::invalid(
                    "level",
                    "must be EXPIRED, CRITICAL or WARNING",
                )
                .into());
            }
        };
        let query = ExpiringQuery {
            as_of: self.date_or_today(request.as_of.as_ref(), "as_of")?,
            level,
            warehouse: optional_doc_name(&request.warehouse, "warehouse")?,
        };
        let size = page_size(request.page_size).map_err(InventoryError::from)?;
        let page = self
            .store()?
            .list_expiring(query, self.config.expiry, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListExpiringBatchesResponse {
            batches: page.items.into_iter().map(expiring_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.RunExpiryScan", skip_all)]
    async fn run_expiry_scan(
        &self,
        request: Request<pb::RunExpiryScanRequest>,
    ) -> RpcResult<pb::RunExpiryScanResponse> {
        let actor = actor(&request);
        let as_of = self.date_or_today(request.get_ref().as_of.as_ref(), "as_of")?;
        // A scan marks batches expired and spends their alerts: it may look
        // back, never ahead.
        if as_of > self.config.today() {
            return Err(InventoryError::invalid("as_of", "must not be after today").into());
        }
        let scan = self
            .store()?
            .expiry_scan(as_of, self.config.expiry, &actor)
            .await?;
        Ok(Response::new(pb::RunExpiryScanResponse {
            scanned: i64::try_from(scan.scanned).unwrap_or(i64::MAX),
            expired_batch_ids: scan.marked_expired,
            alerts: scan.alerts.into_iter().map(alert_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.SetExpiryPolicy", skip_all)]
    async fn set_expiry_policy(
        &self,
        request: Request<pb::SetExpiryPolicyRequest>,
    ) -> RpcResult<pb::SetExpiryPolicyResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let item = doc_name(&request.item_code, "item_code")?;
        let thresholds = thresholds_from(request.policy)?;
        let thresholds = self
            .store()?
            .set_expiry_policy(&item, thresholds, &actor)
            .await?;
        Ok(Response::new(pb::SetExpiryPolicyResponse {
            policy: Some(policy_to_proto(thresholds)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.GetExpiryPolicy", skip_all)]
    async fn get_expiry_policy(
        &self,
        request: Request<pb::GetExpiryPolicyRequest>,
    ) -> RpcResult<pb::GetExpiryPolicyResponse> {
        let item = doc_name(&request.get_ref().item_code, "item_code")?;
        let thresholds = self
            .store()?
            .expiry_policy(&item, self.config.expiry)
            .await?;
        Ok(Response::new(pb::GetExpiryPolicyResponse {
            policy: Some(policy_to_proto(thresholds)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.RecordStorageReading", skip_all)]
    async fn record_storage_reading(
        &self,
        request: Request<pb::RecordStorageReadingRequest>,
    ) -> RpcResult<pb::RecordStorageReadingResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let warehouse = doc_name(&request.warehouse, "warehouse")?;
        let reading = ConditionReading {
            temperature_c: decimal(request.temperature_c.as_ref(), "temperature_c")?,
            humidity_pct: decimal(request.humidity_pct.as_ref(), "humidity_pct")?,
        };
        if reading.temperature_c.is_none() && reading.humidity_pct.is_none() {
            return Err(InventoryError::invalid(
                "temperature_c",
                "a temperature or a humidity is required",
            )
            .into());
        }
        if let Some(t) = reading.temperature_c {
            Bounds::new(t, t, temperature_limits()).map_err(invalid("temperature_c"))?;
        }
        if let Some(h) = reading.humidity_pct {
            Bounds::new(h, h, humidity_limits()).map_err(invalid("humidity_pct"))?;
        }
        let recorded_at = match request.read_time.as_ref() {
            Some(at) => timestamp_from_proto(at)
                .ok_or_else(|| InventoryError::invalid("read_time", "is out of range"))?,
            None => Utc::now().naive_utc(),
        };
        let report = self
            .store()?
            .record_reading(
                &warehouse,
                reading,
                recorded_at,
                self.config.quarantine_on_breach,
                &actor,
            )
            .await?;
        Ok(Response::new(pb::RecordStorageReadingResponse {
            reading_id: report.id,
            breaches: report
                .breaches
                .into_iter()
                .map(|b| pb::StorageBreach {
                    temperature: b.breach.temperature,
                    humidity: b.breach.humidity,
                    batch: Some(batch_to_proto(b.batch)),
                })
                .collect(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.SetItemWarehouseOptimization", skip_all)]
    async fn set_item_warehouse_optimization(
        &self,
        request: Request<pb::SetItemWarehouseOptimizationRequest>,
    ) -> RpcResult<pb::SetItemWarehouseOptimizationResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let item = doc_name(&request.item_code, "item_code")?;
        let warehouse = doc_name(&request.warehouse, "warehouse")?;
        let params = params_from(request.optimization)?;
        let optimization = self
            .store()?
            .set_optimization(&item, &warehouse, params, &actor)
            .await?;
        Ok(Response::new(pb::SetItemWarehouseOptimizationResponse {
            optimization: Some(optimization_to_proto(optimization)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.GetItemWarehouseOptimization", skip_all)]
    async fn get_item_warehouse_optimization(
        &self,
        request: Request<pb::GetItemWarehouseOptimizationRequest>,
    ) -> RpcResult<pb::GetItemWarehouseOptimizationResponse> {
        let request = request.get_ref();
        let item = doc_name(&request.item_code, "item_code")?;
        let warehouse = doc_name(&request.warehouse, "warehouse")?;
        let optimization = self.store()?.optimization(&item, &warehouse).await?;
        Ok(Response::new(pb::GetItemWarehouseOptimizationResponse {
            optimization: Some(optimization_to_proto(optimization)),
        }))
    }

    #[tracing::instrument(name = "InventoryService.ListProcurementTriggers", skip_all)]
    async fn list_procurement_triggers(
        &self,
        request: Request<pb::ListProcurementTriggersRequest>,
    ) -> RpcResult<pb::ListProcurementTriggersResponse> {
        let request = request.into_inner();
        let filter = TriggerFilter {
            item_code: optional_doc_name(&request.item_code, "item_code")?,
            warehouse: optional_doc_name(&request.warehouse, "warehouse")?,
            open_only: request.open_only,
        };
        let size = page_size(request.page_size).map_err(InventoryError::from)?;
        let page = self
            .store()?
            .procurement_triggers(filter, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListProcurementTriggersResponse {
            triggers: page.items.into_iter().map(trigger_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.EvaluateReorderPoints", skip_all)]
    async fn evaluate_reorder_points(
        &self,
        request: Request<pb::EvaluateReorderPointsRequest>,
    ) -> RpcResult<pb::EvaluateReorderPointsResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let item = optional_doc_name(&request.item_code, "item_code")?;
        let warehouse = optional_doc_name(&request.warehouse, "warehouse")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let evaluations = self
            .store()?
            .evaluate_reorder(item.as_ref(), warehouse.as_ref(), as_of, &actor)
            .await?;
        Ok(Response::new(pb::EvaluateReorderPointsResponse {
            evaluations: evaluations.into_iter().map(evaluation_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "InventoryService.GetStockPosition", skip_all)]
    async fn get_stock_position(
        &self,
        request: Request<pb::GetStockPositionRequest>,
    ) -> RpcResult<pb::GetStockPositionResponse> {
        let request = request.into_inner();
        let item = doc_name(&request.item_code, "item_code")?;
        let as_of = self.date_or_today(request.as_of.as_ref(), "as_of")?;
        let position = self
            .store()?
            .stock_position(&item, as_of, self.config.expiry)
            .await?;
        Ok(Response::new(pb::GetStockPositionResponse {
            item_code: position.item_code,
            as_of: Some(date_to_proto(position.as_of)),
            warehouses: position
                .warehouses
                .into_iter()
                .map(warehouse_stock_to_proto)
                .collect(),
            total: Some(warehouse_stock_to_proto(position.total)),
        }))
    }
}
