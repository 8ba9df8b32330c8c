//! The Pricing service of Harsha Mesh: dynamic pricing rules (time windows,
//! festivals, segments, territories, channels, quantity and amount tiers),
//! quotes that explain every rule that applied and every one that did not,
//! and an audit of each rule applied to an order.
//!
//! Three rooms with one-way doors: [`domain`] (types, rules and the
//! engine), `store` (persistence) and `grpc` (the
//! `harsha.pricing.v1.PricingService` server).

pub mod cache;
pub mod domain;
mod error;
pub mod grpc;
pub mod profiles;
pub mod store;

pub use error::PricingError;
pub use grpc::{PricingConfig, PricingGrpc};
pub use store::{PricingStore, SqlPricingStore};
