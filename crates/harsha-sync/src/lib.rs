//! The Sync service of Harsha Mesh: every change in Harsha's systems as an
//! event in one ordered stream, routed by configuration to the systems that
//! need it and delivered to them, in order per entity, at least once.
//!
//! Rooms with one-way doors: [`domain`] (types and rules), [`store`]
//! (persistence), [`relay`] (the ERP outbox into the stream), [`dispatch`]
//! (deliveries to targets), [`batch`] (bulk runs of batch routes), [`jobs`] (metrics, partitions, retention) and
//! [`grpc`] (the `harsha.sync.v1.SyncService` server).

pub mod batch;
pub mod dispatch;
pub mod domain;
mod error;
pub mod grpc;
pub mod jobs;
pub mod relay;
pub mod store;

pub use error::SyncError;
pub use grpc::SyncGrpc;
pub use store::{SqlSyncStore, SyncStore};
