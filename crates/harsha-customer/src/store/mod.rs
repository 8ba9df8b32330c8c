//! Persistence of segments, assignments, territory mappings and outbox
//! events: the [`CustomerStore`] trait the service is written against, and
//! [`SqlCustomerStore`], its implementation on MariaDB and SQLite (SQL
//! written once, see `harsha_store::erp_dispatch!`).

mod rows;
mod sql;

use async_trait::async_trait;
use chrono::NaiveDate;
use harsha_store::page::Page;

pub use sql::SqlCustomerStore;
/// The read queries of the hot paths, for `EXPLAIN` in benchmarks and
/// operational checks.
pub mod queries {
    pub use super::sql::{
        CUSTOMER_PRIMARY_AS_OF, CUSTOMER_PROFILE_AS_OF, CUSTOMER_SEGMENTS_AS_OF, SELECT_CUSTOMER,
        TERRITORIES_AS_OF,
    };
}

use crate::{
    CustomerError,
    domain::{
        Actor, Assignment, CustomerProfile, CustomerSegment, DocName, NewAssignment, NewSegment,
        NewTerritoryMapping, Segment, SegmentCode, SegmentPatch, SegmentStatus, TerritoryMapping,
    },
};

/// A new record and the earlier records it ended or superseded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replaced<T> {
    /// The record created.
    pub created: T,
    /// Earlier records after the change.
    pub replaced: Vec<T>,
}

/// Where the Customer service keeps its data. Every write is one
/// transaction that also records an outbox event per changed record.
#[async_trait]
pub trait CustomerStore: Send + Sync + 'static {
    /// Creates a segment.
    async fn create_segment(
        &self,
        segment: NewSegment,
        actor: &Actor,
    ) -> Result<Segment, CustomerError>;
    /// Reads a segment.
    async fn segment(&self, code: &SegmentCode) -> Result<Segment, CustomerError>;
    /// Lists segments by code.
    async fn list_segments(
        &self,
        status: Option<SegmentStatus>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Segment>, CustomerError>;
    /// Changes a segment's editable fields.
    async fn update_segment(
        &self,
        code: &SegmentCode,
        patch: SegmentPatch,
        actor: &Actor,
    ) -> Result<Segment, CustomerError>;
    /// Activates or deactivates a segment (no change, and no event, when it
    /// already has that status).
    async fn set_segment_status(
        &self,
        code: &SegmentCode,
        status: SegmentStatus,
        actor: &Actor,
    ) -> Result<Segment, CustomerError>;
    /// Assigns a segment, replacing what it conflicts with.
    async fn assign_segment(
        &self,
        assignment: NewAssignment,
        actor: &Actor,
    ) -> Result<Replaced<Assignment>, CustomerError>;
    /// Ends an assignment early.
    async fn end_assignment(
        &self,
        id: &str,
        effective_to: NaiveDate,
        actor: &Actor,
    ) -> Result<Assignment, CustomerError>;
    /// The segments in force for a customer on a date, primary first.
    async fn customer_segments(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<Vec<CustomerSegment>, CustomerError>;
    /// The primary segment in force on a date.
    async fn primary_segment(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<Option<CustomerSegment>, CustomerError>;
    /// Every assignment of a customer, newest start first.
    async fn assignment_history(
        &self,
        customer: &DocName,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Assignment>, CustomerError>;
    /// The assignments of a segment in force on a date, by customer.
    async fn segment_customers(
        &self,
        code: &SegmentCode,
        as_of: NaiveDate,
        primary_only: bool,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Assignment>, CustomerError>;
    /// Maps a territory, replacing what it conflicts with.
    async fn map_territory(
        &self,
        mapping: NewTerritoryMapping,
        actor: &Actor,
    ) -> Result<Replaced<TerritoryMapping>, CustomerError>;
    /// Ends a territory mapping early.
    async fn end_territory_mapping(
        &self,
        id: &str,
        effective_to: NaiveDate,
        actor: &Actor,
    ) -> Result<TerritoryMapping, CustomerError>;
    /// The territory mappings in force on a date, primary first.
    async fn customer_territories(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<Vec<TerritoryMapping>, CustomerError>;
    /// The customer's resolved profile on a date, read on one connection.
    async fn profile(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<CustomerProfile, CustomerError>;
}
