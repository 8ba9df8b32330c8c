//! The Inventory service of Harsha Mesh: batches of perishable stock with
//! expiry, grade, storage conditions, nutrition and allergens; append-only
//! movements whose sums are always the batch quantities; FEFO/FIFO
//! allocation that never oversells; expiry alerts; storage-condition
//! breaches; reorder triggers from recent consumption.
//!
//! Three rooms with one-way doors: [`domain`] (types and rules), [`store`]
//! (persistence, written against the domain) and [`grpc`] (the
//! `harsha.inventory.v1.InventoryService` server); [`jobs`] runs the
//! service's own background work (reservation sweep, daily expiry scan).

use chrono::{NaiveDate, Utc};
use chrono_tz::Tz;

pub mod domain;
mod error;
pub mod grpc;
pub mod jobs;
pub mod store;

pub use error::InventoryError;
pub use grpc::InventoryGrpc;
pub use store::{InventoryStore, SqlInventoryStore};

/// How the service behaves where the contract leaves it to configuration.
#[derive(Debug, Clone, Copy)]
pub struct InventoryConfig {
    /// The time zone of "today".
    pub time_zone: Tz,
    /// Expiry thresholds of items without their own.
    pub expiry: domain::ExpiryThresholds,
    /// How long an allocation holds stock when the request does not say.
    pub default_hold_seconds: u32,
    /// Whether a storage breach quarantines the batch.
    pub quarantine_on_breach: bool,
}

impl InventoryConfig {
    /// Today in the business time zone.
    pub fn today(&self) -> NaiveDate {
        Utc::now().with_timezone(&self.time_zone).date_naive()
    }
}
