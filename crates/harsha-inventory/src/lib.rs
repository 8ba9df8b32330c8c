//! The Inventory service of Harsha Mesh: batches of perishable stock with
//! expiry, grade, storage conditions, nutrition and allergens; append-only
//! movements whose sums are always the batch quantities; FEFO/FIFO
//! allocation that never oversells; expiry alerts; storage-condition
//! breaches; reorder triggers from recent consumption.
//!
//! Three rooms with one-way doors: [`domain`] (types and rules), [`store`]
//! (persistence, written against the domain) and [`grpc`] (the
//! `harsha.inventory.v1.InventoryService` server).

pub mod domain;
mod error;
pub mod store;

pub use error::InventoryError;
pub use store::{InventoryStore, SqlInventoryStore};
