//! The Inventory service's types and rules, free of gRPC and SQL: batch
//! values (grade, allergens, nutrition, storage conditions), batches and
//! the movements that change them, allocation order and planning, expiry
//! classification and the reorder rule.

mod allocation;
mod batch;
mod expiry;
mod position;
mod reorder;
mod values;

pub use allocation::{
    Allocation, AllocationLine, AllocationRequest, AllocationStatus, Candidate, Strategy, Take,
    plan_takes,
};
pub use batch::{
    Balance, Batch, BatchStatus, Change, Movement, MovementType, NewBatch, Reference, Shortfall,
    WriteOffCause,
};
pub use expiry::{ExpiryLevel, ExpiryThresholds, days_to_expiry};
pub use harsha_types::{Actor, DocName, Quantity, ValueError};
pub use position::{ExpiringBatch, ExpiryBuckets, StockGroup, StockPosition, WarehousePosition};
pub use reorder::{ReorderDecision, ReorderParams, decide};
pub use values::{
    Allergen, Allergens, BatchNo, Bounds, Breach, ConditionReading, Nutrition, QualityGrade,
    StorageConditions, humidity_limits, temperature_limits,
};
