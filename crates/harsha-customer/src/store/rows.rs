//! Rows as the database returns them, and their conversion to domain types.
//! Stored values that do not parse (which only a hand edit of the database
//! could cause) surface as a storage error, never as a panic.

use chrono::{NaiveDate, NaiveDateTime};
use harsha_store::StoreError;

use crate::{
    CustomerError,
    domain::{
        Assignment, AssignmentStatus, CoverageType, Customer, CustomerSegment, Description,
        DocName, EffectiveRange, Priority, Segment, SegmentCode, SegmentName, SegmentStatus,
        ServiceLevel, TerritoryMapping, ValueError,
    },
};

fn corrupt(column: &str, error: ValueError) -> CustomerError {
    CustomerError::Store(StoreError::Sql(sqlx::Error::ColumnDecode {
        index: column.to_owned(),
        source: Box::new(error),
    }))
}

fn optional_code(
    column: &str,
    value: Option<String>,
) -> Result<Option<SegmentCode>, CustomerError> {
    value
        .filter(|v| !v.is_empty())
        .map(|v| SegmentCode::parse(&v).map_err(|e| corrupt(column, e)))
        .transpose()
}

/// A `tabHD Customer Segment` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct SegmentRow {
    pub name: String,
    pub segment_name: String,
    pub description: Option<String>,
    pub status: String,
    pub service_level: String,
    pub priority: i32,
    pub price_tier: Option<String>,
    pub creation: NaiveDateTime,
    pub modified: NaiveDateTime,
}

impl TryFrom<SegmentRow> for Segment {
    type Error = CustomerError;

    fn try_from(row: SegmentRow) -> Result<Self, Self::Error> {
        Ok(Segment {
            code: SegmentCode::parse(&row.name).map_err(|e| corrupt("name", e))?,
            segment_name: SegmentName::parse(&row.segment_name)
                .map_err(|e| corrupt("segment_name", e))?,
            description: Description::parse(row.description.as_deref().unwrap_or_default())
                .map_err(|e| corrupt("description", e))?,
            status: SegmentStatus::parse(&row.status).map_err(|e| corrupt("status", e))?,
            service_level: ServiceLevel::parse(&row.service_level)
                .map_err(|e| corrupt("service_level", e))?,
            priority: Priority::new(row.priority).map_err(|e| corrupt("priority", e))?,
            price_tier: optional_code("price_tier", row.price_tier)?,
            created: row.creation,
            modified: row.modified,
        })
    }
}

/// A `tabHD Customer Segment Assignment` row.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct AssignmentRow {
    pub name: String,
    pub customer: String,
    pub segment: String,
    pub is_primary: i32,
    pub effective_from: NaiveDate,
    pub effective_to: Option<NaiveDate>,
    pub status: String,
    pub creation: NaiveDateTime,
    pub modified: NaiveDateTime,
}

impl TryFrom<AssignmentRow> for Assignment {
    type Error = CustomerError;

    fn try_from(row: AssignmentRow) -> Result<Self, Self::Error> {
        Ok(Assignment {
            id: row.name,
            customer: DocName::parse(&row.customer).map_err(|e| corrupt("customer", e))?,
            segment: SegmentCode::parse(&row.segment).map_err(|e| corrupt("segment", e))?,
            is_primary: row.is_primary != 0,
            range: EffectiveRange::stored(row.effective_from, row.effective_to),
            status: AssignmentStatus::parse(&row.status).map_err(|e| corrupt("status", e))?,
            created: row.creation,
            modified: row.modified,
        })
    }
}

/// An assignment joined with its segment (segment columns prefixed `s_`).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CustomerSegmentRow {
    #[sqlx(flatten)]
    pub assignment: AssignmentRow,
    pub s_segment_name: String,
    pub s_description: Option<String>,
    pub s_status: String,
    pub s_service_level: String,
    pub s_priority: i32,
    pub s_price_tier: Option<String>,
    pub s_creation: NaiveDateTime,
    pub s_modified: NaiveDateTime,
}

impl TryFrom<CustomerSegmentRow> for CustomerSegment {
    type Error = CustomerError;

    fn try_from(row: CustomerSegmentRow) -> Result<Self, Self::Error> {
        let segment = SegmentRow {
            name: row.assignment.segment.clone(),
            segment_name: row.s_segment_name,
            description: row.s_description,
            status: row.s_status,
            service_level: row.s_service_level,
            priority: row.s_priority,
            price_tier: row.s_price_tier,
            creation: row.s_creation,
            modified: row.s_modified,
        };
        Ok(CustomerSegment {
            assignment: row.assignment.try_into()?,
            segment: segment.try_into()?,
        })
    }
}

/// A `tabHD Customer Territory Mapping` row (columns prefixed `m_`).
#[derive(Debug, sqlx::FromRow)]
pub(super) struct MappingRow {
    #[sqlx(rename = "m_name")]
    pub name: String,
    #[sqlx(rename = "m_customer")]
    pub customer: String,
    #[sqlx(rename = "m_territory")]
    pub territory: String,
    #[sqlx(rename = "m_coverage_type")]
    pub coverage_type: String,
    #[sqlx(rename = "m_effective_from")]
    pub effective_from: NaiveDate,
    #[sqlx(rename = "m_effective_to")]
    pub effective_to: Option<NaiveDate>,
    #[sqlx(rename = "m_price_tier")]
    pub price_tier: Option<String>,
    #[sqlx(rename = "m_service_level")]
    pub service_level: Option<String>,
    #[sqlx(rename = "m_status")]
    pub status: String,
    #[sqlx(rename = "m_creation")]
    pub creation: NaiveDateTime,
    #[sqlx(rename = "m_modified")]
    pub modified: NaiveDateTime,
}

impl TryFrom<MappingRow> for TerritoryMapping {
    type Error = CustomerError;

    fn try_from(row: MappingRow) -> Result<Self, Self::Error> {
        Ok(TerritoryMapping {
            id: row.name,
            customer: DocName::parse(&row.customer).map_err(|e| corrupt("customer", e))?,
            territory: DocName::parse(&row.territory).map_err(|e| corrupt("territory", e))?,
            coverage: CoverageType::parse(&row.coverage_type)
                .map_err(|e| corrupt("coverage_type", e))?,
            range: EffectiveRange::stored(row.effective_from, row.effective_to),
            price_tier: optional_code("price_tier", row.price_tier)?,
            service_level: row
                .service_level
                .filter(|v| !v.is_empty())
                .map(|v| ServiceLevel::parse(&v).map_err(|e| corrupt("service_level", e)))
                .transpose()?,
            status: AssignmentStatus::parse(&row.status).map_err(|e| corrupt("status", e))?,
            created: row.creation,
            modified: row.modified,
        })
    }
}

/// The `tabCustomer` columns the service reads, prefixed `c_` so that
/// they can share a row with an assignment's.
#[derive(Debug, sqlx::FromRow)]
pub(super) struct CustomerRow {
    #[sqlx(rename = "c_name")]
    pub name: String,
    #[sqlx(rename = "c_customer_name")]
    pub customer_name: Option<String>,
    #[sqlx(rename = "c_customer_group")]
    pub customer_group: Option<String>,
    #[sqlx(rename = "c_disabled")]
    pub disabled: i32,
}

/// A customer left-joined with one of its assignments (and its segment),
/// if any matched the join.
#[derive(Debug)]
pub(super) struct CustomerJoinRow {
    pub customer: CustomerRow,
    pub segment: Option<CustomerSegmentRow>,
}

impl<'r, R> sqlx::FromRow<'r, R> for CustomerJoinRow
where
    R: sqlx::Row,
    CustomerRow: sqlx::FromRow<'r, R>,
    CustomerSegmentRow: sqlx::FromRow<'r, R>,
    &'static str: sqlx::ColumnIndex<R>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let customer = CustomerRow::from_row(row)?;
        let assignment: Option<String> = row.try_get("name")?;
        let segment = assignment
            .map(|_| CustomerSegmentRow::from_row(row))
            .transpose()?;
        Ok(Self { customer, segment })
    }
}

impl CustomerJoinRow {
    /// Splits joined rows into the customer and the segments it holds;
    /// `None` when there is no row, i.e. no such customer.
    pub fn split(
        rows: Vec<Self>,
    ) -> Result<Option<(Customer, Vec<CustomerSegment>)>, CustomerError> {
        let mut rows = rows.into_iter();
        let Some(first) = rows.next() else {
            return Ok(None);
        };
        let customer = Customer::try_from(first.customer)?;
        let segments = std::iter::once(first.segment)
            .chain(rows.map(|row| row.segment))
            .flatten()
            .map(CustomerSegment::try_from)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Some((customer, segments)))
    }
}

impl TryFrom<CustomerRow> for Customer {
    type Error = CustomerError;

    fn try_from(row: CustomerRow) -> Result<Self, Self::Error> {
        Ok(Customer {
            customer_name: row.customer_name.unwrap_or_else(|| row.name.clone()),
            name: DocName::parse(&row.name).map_err(|e| corrupt("name", e))?,
            customer_group: row.customer_group.unwrap_or_default(),
            disabled: row.disabled != 0,
        })
    }
}

/// One row of the profile query: either the customer with one of its
/// segments, or one of its territory mappings.
#[derive(Debug)]
pub(super) enum ProfileRow {
    Customer(CustomerJoinRow),
    Territory(MappingRow),
}

impl<'r, R> sqlx::FromRow<'r, R> for ProfileRow
where
    R: sqlx::Row,
    CustomerJoinRow: sqlx::FromRow<'r, R>,
    MappingRow: sqlx::FromRow<'r, R>,
    &'static str: sqlx::ColumnIndex<R>,
    Option<String>: sqlx::Decode<'r, R::Database> + sqlx::Type<R::Database>,
{
    fn from_row(row: &'r R) -> Result<Self, sqlx::Error> {
        let customer: Option<String> = row.try_get("c_name")?;
        if customer.is_some() {
            CustomerJoinRow::from_row(row).map(Self::Customer)
        } else {
            MappingRow::from_row(row).map(Self::Territory)
        }
    }
}

impl ProfileRow {
    /// Separates the customer rows from the territory rows.
    pub fn partition(rows: Vec<Self>) -> (Vec<CustomerJoinRow>, Vec<MappingRow>) {
        let mut customer = Vec::new();
        let mut territories = Vec::new();
        for row in rows {
            match row {
                Self::Customer(row) => customer.push(row),
                Self::Territory(row) => territories.push(row),
            }
        }
        (customer, territories)
    }
}
