//! Middleware shared by the mesh's servers and the edge: [`access`], the
//! RBAC layer every gRPC server runs (so a service called directly is as
//! protected as through the edge), [`ratelimit`], the multi-tier rate
//! limiter the edge applies per principal, [`breaker`], the circuit
//! breaker kept per upstream endpoint, [`balance`], how an endpoint is
//! chosen, [`upstream`], each service's endpoints with their channels,
//! breakers and health, [`client`], the service-to-service client built
//! on them (deadline, breaker, balancing, trace context, credentials),
//! [`retry`], the budget that bounds retries, and [`trace`], W3C trace
//! context and request ids on every call.

pub mod access;
pub mod balance;
pub mod breaker;
pub mod client;
pub mod ratelimit;
pub mod retry;
pub mod trace;
pub mod upstream;

pub use access::AccessLayer;
