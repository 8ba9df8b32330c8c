//! The Order service of Harsha Mesh: places an order across the mesh —
//! the customer checked (Customer service), the lines priced with every
//! dynamic rule (Pricing), stock reserved earliest-expiry-first
//! (Inventory), the quote applied, the order and its event recorded — as
//! one idempotent saga that is finished or rolled back after a crash; and
//! cancels and fulfils orders.
//!
//! Three rooms with one-way doors, plus the saga between them: [`domain`]
//! (the order, its request and lifecycle), [`store`] (persistence and the
//! saga log), [`services`] (the other services, over gRPC through
//! `harsha-mesh` clients), [`saga`] (the steps, compensation and recovery)
//! and [`grpc`] (the `harsha.order.v1.OrderService` server).

pub mod domain;
mod error;
pub mod grpc;
pub mod saga;
pub mod services;
pub mod store;

pub use error::OrderError;
pub use grpc::OrderGrpc;
pub use saga::{OrderConfig, Placement, Saga};
pub use store::{OrderStore, SqlOrderStore};
