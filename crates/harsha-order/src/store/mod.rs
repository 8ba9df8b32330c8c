//! Persistence of orders, their lines and their saga log: the
//! [`OrderStore`] trait the saga is written against, and [`SqlOrderStore`],
//! its implementation on MariaDB and SQLite (SQL written once, see
//! `harsha_store::erp_dispatch!`).
//!
//! Every save is a compare-and-set on the order's `version` and writes, in
//! the same transaction, a saga-log row and (when the change is one the
//! rest of the business hears about) an outbox event the Sync service
//! relays.

mod sql;

use async_trait::async_trait;
use chrono::NaiveDateTime;
use harsha_store::page::Page;

pub use sql::SqlOrderStore;

use crate::{
    OrderError,
    domain::{Order, OrderStatus},
};

/// What inserting a new order found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Inserted {
    /// The order is new.
    New,
    /// The caller already used the key: the order it placed.
    Existing(Box<Order>),
}

/// Which orders to list.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OrderFilter {
    /// Only this customer's.
    pub customer: Option<String>,
    /// Only in this status.
    pub status: Option<OrderStatus>,
    /// Created at or after.
    pub created_after: Option<NaiveDateTime>,
    /// Created before.
    pub created_before: Option<NaiveDateTime>,
}

/// An event the save records in the outbox.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderEvent {
    /// `order.placed`.
    Placed,
    /// `order.cancelled` (a reversal: amounts negated).
    Cancelled,
    /// `order.fulfilled`.
    Fulfilled,
}

impl OrderEvent {
    /// The event type.
    pub fn event_type(self) -> &'static str {
        match self {
            Self::Placed => "order.placed",
            Self::Cancelled => "order.cancelled",
            Self::Fulfilled => "order.fulfilled",
        }
    }
}

/// One line of an order's saga log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogEntry {
    /// When.
    pub at: NaiveDateTime,
    /// Who (the user, or the recovering process).
    pub actor: String,
    /// The order's status after it.
    pub status: String,
    /// The saga step after it.
    pub saga_step: String,
    /// What happened.
    pub detail: String,
}

/// A save of an order.
#[derive(Debug, Clone, Copy)]
pub struct Save<'a> {
    /// Until when the saver owns the order (it is finished by another
    /// process only after this).
    pub lease_until: NaiveDateTime,
    /// Who.
    pub actor: &'a str,
    /// What happened, for the saga log.
    pub detail: &'a str,
    /// Whether the lines changed.
    pub lines: bool,
    /// The event to record, if any.
    pub event: Option<OrderEvent>,
}

/// Where orders are kept.
#[async_trait]
pub trait OrderStore: Send + Sync + 'static {
    /// Inserts a new order (with its lines and first log line), unless its
    /// owner already used its idempotency key.
    async fn insert(
        &self,
        order: &Order,
        lease_until: NaiveDateTime,
    ) -> Result<Inserted, OrderError>;

    /// Saves `order` if nobody saved it since it was read (else ABORTED),
    /// and bumps its version.
    async fn save(&self, order: &mut Order, save: Save<'_>) -> Result<(), OrderError>;

    /// One order.
    async fn order(&self, id: &str) -> Result<Order, OrderError>;

    /// The order `owner` placed under `key`, if any.
    async fn by_key(&self, owner: &str, key: &str) -> Result<Option<Order>, OrderError>;

    /// A page of orders, newest first.
    async fn list(
        &self,
        filter: &OrderFilter,
        size: u32,
        token: &str,
    ) -> Result<Page<Order>, OrderError>;

    /// Up to `limit` orders whose saga is unfinished and whose lease ran
    /// out before `now`, oldest first.
    async fn unfinished(&self, now: NaiveDateTime, limit: u32) -> Result<Vec<Order>, OrderError>;

    /// An order's saga log, oldest first.
    async fn saga_log(&self, id: &str) -> Result<Vec<LogEntry>, OrderError>;
}

/// Now, in UTC, to the microsecond (what both engines keep).
pub fn now() -> NaiveDateTime {
    stored(chrono::Utc::now().naive_utc())
}

/// `at` truncated to the microsecond.
pub fn stored(at: NaiveDateTime) -> NaiveDateTime {
    chrono::DateTime::from_timestamp_micros(at.and_utc().timestamp_micros())
        .map_or(at, |t| t.naive_utc())
}
