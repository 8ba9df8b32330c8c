//! The Customer service of Harsha Mesh: customer segments, effective-dated
//! segment assignments (at most one primary per customer on any day),
//! territory mappings, and the resolved customer profile that pricing and
//! the order flow read.
//!
//! Three rooms with one-way doors: [`domain`] (types and rules), [`store`]
//! (persistence, written against the domain) and [`grpc`] (the
//! `harsha.customer.v1.CustomerService` server: wire types in, domain calls,
//! errors out as statuses).

pub mod domain;
mod error;
pub mod grpc;
pub mod store;

pub use error::CustomerError;
pub use grpc::CustomerGrpc;
pub use store::{CustomerStore, SqlCustomerStore};
