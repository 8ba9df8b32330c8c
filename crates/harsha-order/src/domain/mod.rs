//! The Order service's types and rules, free of gRPC and SQL: a validated
//! order request and its fingerprint ([`request`]), an order with its
//! lines, prices, reservations and saga position, and the lifecycle moves
//! it allows ([`order`]).

mod order;
mod request;

pub use harsha_types::{Actor, DocName, Quantity, ValueError};
pub use order::{
    AppliedRule, CustomerFacts, Failure, Order, OrderLine, OrderStatus, Pricing, ReservedBatch,
    SagaStep, Step,
};
pub use request::{LineRequest, MAX_LINES, OrderRequest, RawLine};
