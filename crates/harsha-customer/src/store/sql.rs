//! [`SqlCustomerStore`]: the Customer store on MariaDB and SQLite.
//!
//! The SQL is written once, in the subset both engines accept; the only
//! engine-specific parts come from [`ErpDialect`]: how a write transaction
//! starts and how the customer row is locked. Every write first locks the
//! customer (or the record) it changes, so concurrent changes to one
//! customer are serialised; the unique keys on open-ended primaries back
//! that up inside the database.

use chrono::{NaiveDate, NaiveDateTime, SubsecRound, Utc};
use harsha_store::{ErpDialect, ErpPool, erp_dispatch, page::Page};
use serde::Serialize;
use sqlx::AssertSqlSafe;
use uuid::Uuid;

use super::{
    CustomerStore, Replaced,
    rows::{AssignmentRow, CustomerJoinRow, CustomerRow, MappingRow, ProfileRow, SegmentRow},
};
use crate::{
    CustomerError,
    domain::{
        Actor, Assignment, AssignmentStatus, CoverageType, Customer, CustomerProfile,
        CustomerSegment, DocName, EffectiveRange, NewAssignment, NewSegment, NewTerritoryMapping,
        RangeChange, Segment, SegmentCode, SegmentPatch, SegmentStatus, TerritoryMapping,
        plan_replacement,
    },
};

/// The service name recorded as the source of outbox events.
const SOURCE_SERVICE: &str = "customer";

macro_rules! segment_columns {
    () => {
        "`name`, `segment_name`, `description`, `status`, `service_level`, `priority`, `price_tier`, `creation`, `modified`"
    };
}

macro_rules! assignment_columns {
    () => {
        "`name`, `customer`, `segment`, `is_primary`, `effective_from`, `effective_to`, `status`, `creation`, `modified`"
    };
}

/// Territory mapping columns, prefixed `m_` so that a mapping can share a
/// result shape with a customer's segments (see `CUSTOMER_PROFILE_AS_OF`).
macro_rules! mapping_columns {
    () => {
        "`name` AS m_name, `customer` AS m_customer, `territory` AS m_territory, \
         `coverage_type` AS m_coverage_type, `effective_from` AS m_effective_from, \
         `effective_to` AS m_effective_to, `price_tier` AS m_price_tier, `service_level` AS m_service_level, \
         `status` AS m_status, `creation` AS m_creation, `modified` AS m_modified"
    };
}

/// The columns of a customer row left-joined with its assignments and
/// their segments: `c_` customer, bare assignment, `s_` segment columns.
macro_rules! customer_join_columns {
    () => {
        "c.`name` AS c_name, c.`customer_name` AS c_customer_name, \
         c.`customer_group` AS c_customer_group, c.`disabled` AS c_disabled, \
         a.`name`, a.`customer`, a.`segment`, a.`is_primary`, a.`effective_from`, a.`effective_to`, \
         a.`status`, a.`creation`, a.`modified`, s.`segment_name` AS s_segment_name, \
         s.`description` AS s_description, s.`status` AS s_status, s.`service_level` AS s_service_level, \
         s.`priority` AS s_priority, s.`price_tier` AS s_price_tier, s.`creation` AS s_creation, \
         s.`modified` AS s_modified "
    };
}

/// The join of a customer with its active assignments; the caller appends
/// the rest of the assignment join condition.
macro_rules! customer_join_from {
    () => {
        "FROM `tabCustomer` c \
         LEFT JOIN `tabHD Customer Segment Assignment` a ON a.`customer` = c.`name` AND a.`status` = 'Active' "
    };
}

/// Reads a customer (the first query of every read).
pub const SELECT_CUSTOMER: &str = "SELECT `name` AS c_name, `customer_name` AS c_customer_name, \
     `customer_group` AS c_customer_group, `disabled` AS c_disabled FROM `tabCustomer` WHERE `name` = ?";
const SELECT_SEGMENT: &str = concat!(
    "SELECT ",
    segment_columns!(),
    " FROM `tabHD Customer Segment` WHERE `name` = ?"
);
const LIST_SEGMENTS: &str = concat!(
    "SELECT ",
    segment_columns!(),
    " FROM `tabHD Customer Segment` WHERE (? IS NULL OR `status` = ?) AND `name` > ? ORDER BY `name` LIMIT ?"
);
const INSERT_SEGMENT: &str = "INSERT INTO `tabHD Customer Segment` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `segment_name`, `description`, `status`, `service_level`, `priority`, `price_tier`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const UPDATE_SEGMENT: &str = "UPDATE `tabHD Customer Segment` SET `segment_name` = ?, `description` = ?, \
     `status` = ?, `service_level` = ?, `priority` = ?, `price_tier` = ?, `modified` = ?, `modified_by` = ? \
     WHERE `name` = ?";

const SELECT_ASSIGNMENT: &str = concat!(
    "SELECT ",
    assignment_columns!(),
    " FROM `tabHD Customer Segment Assignment` WHERE `name` = ?"
);
/// Active assignments that a new one from `?` could conflict with: primaries
/// (when the new one is primary) and the same segment, not ended by then.
const CONFLICTING_ASSIGNMENTS: &str = concat!(
    "SELECT ",
    assignment_columns!(),
    " FROM `tabHD Customer Segment Assignment` WHERE `customer` = ? AND `status` = 'Active' \
     AND ((`is_primary` = 1 AND ? = 1) OR `segment` = ?) \
     AND (`effective_to` IS NULL OR `effective_to` > ?) ORDER BY `effective_from`, `name`"
);
const INSERT_ASSIGNMENT: &str = "INSERT INTO `tabHD Customer Segment Assignment` (`name`, `creation`, `modified`, \
     `modified_by`, `owner`, `customer`, `segment`, `is_primary`, `effective_from`, `effective_to`, `status`) \
     VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const END_ASSIGNMENT: &str = "UPDATE `tabHD Customer Segment Assignment` SET `effective_to` = ?, `status` = ?, \
     `modified` = ?, `modified_by` = ? WHERE `name` = ?";
/// A customer (`c_` columns) with each segment it holds on a date, one row
/// per segment or a single row with NULL assignment columns when it holds
/// none, and no row when the customer does not exist: one round trip
/// answers both "does the customer exist" and "what does it hold"
/// (`?` date, date, customer). Order is applied by the domain.
pub const CUSTOMER_SEGMENTS_AS_OF: &str = concat!(
    "SELECT ",
    customer_join_columns!(),
    customer_join_from!(),
    "AND a.`effective_from` <= ? AND (a.`effective_to` IS NULL OR a.`effective_to` > ?) \
     LEFT JOIN `tabHD Customer Segment` s ON s.`name` = a.`segment` \
     WHERE c.`name` = ?"
);
/// Everything `ResolveCustomerProfile` reads, in one round trip: the rows
/// of [`CUSTOMER_SEGMENTS_AS_OF`] (with NULL mapping columns), then one row
/// per territory mapping in force (with NULL customer and assignment
/// columns). `?` date, date, customer, customer, date, date.
pub const CUSTOMER_PROFILE_AS_OF: &str = concat!(
    "SELECT ",
    customer_join_columns!(),
    ", NULL AS m_name, NULL AS m_customer, NULL AS m_territory, NULL AS m_coverage_type, \
     NULL AS m_effective_from, NULL AS m_effective_to, NULL AS m_price_tier, NULL AS m_service_level, \
     NULL AS m_status, NULL AS m_creation, NULL AS m_modified ",
    customer_join_from!(),
    "AND a.`effective_from` <= ? AND (a.`effective_to` IS NULL OR a.`effective_to` > ?) \
     LEFT JOIN `tabHD Customer Segment` s ON s.`name` = a.`segment` \
     WHERE c.`name` = ? \
     UNION ALL \
     SELECT NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, \
       NULL, NULL, NULL, NULL, NULL, NULL, NULL, NULL, ",
    mapping_columns!(),
    " FROM `tabHD Customer Territory Mapping` WHERE `customer` = ? AND `status` = 'Active' \
     AND `effective_from` <= ? AND (`effective_to` IS NULL OR `effective_to` > ?)"
);
/// A customer with its primary segment on a date (`?` date, date,
/// customer); the assignment columns are NULL when it has none. The
/// one-primary rule makes this one row; no ORDER BY, so MariaDB needs no
/// temporary table.
pub const CUSTOMER_PRIMARY_AS_OF: &str = concat!(
    "SELECT ",
    customer_join_columns!(),
    customer_join_from!(),
    "AND a.`is_primary` = 1 AND a.`effective_from` <= ? \
     AND (a.`effective_to` IS NULL OR a.`effective_to` > ?) \
     LEFT JOIN `tabHD Customer Segment` s ON s.`name` = a.`segment` \
     WHERE c.`name` = ?"
);
const ASSIGNMENT_HISTORY: &str = concat!(
    "SELECT ",
    assignment_columns!(),
    " FROM `tabHD Customer Segment Assignment` WHERE `customer` = ? \
     AND (? IS NULL OR `effective_from` < ? OR (`effective_from` = ? AND `name` < ?)) \
     ORDER BY `effective_from` DESC, `name` DESC LIMIT ?"
);
const SEGMENT_MEMBERS: &str = concat!(
    "SELECT ",
    assignment_columns!(),
    " FROM `tabHD Customer Segment Assignment` WHERE `segment` = ? AND `status` = 'Active' \
     AND `effective_from` <= ? AND (`effective_to` IS NULL OR `effective_to` > ?) \
     AND (? = 0 OR `is_primary` = 1) \
     AND (? IS NULL OR `customer` > ? OR (`customer` = ? AND `name` > ?)) \
     ORDER BY `customer`, `name` LIMIT ?"
);

const TERRITORY_EXISTS: &str = "SELECT `name` FROM `tabTerritory` WHERE `name` = ?";
const SELECT_MAPPING: &str = concat!(
    "SELECT ",
    mapping_columns!(),
    " FROM `tabHD Customer Territory Mapping` WHERE `name` = ?"
);
const CONFLICTING_MAPPINGS: &str = concat!(
    "SELECT ",
    mapping_columns!(),
    " FROM `tabHD Customer Territory Mapping` WHERE `customer` = ? AND `status` = 'Active' \
     AND ((`coverage_type` = 'Primary' AND ? = 1) OR `territory` = ?) \
     AND (`effective_to` IS NULL OR `effective_to` > ?) ORDER BY `effective_from`, `name`"
);
const INSERT_MAPPING: &str = "INSERT INTO `tabHD Customer Territory Mapping` (`name`, `creation`, `modified`, \
     `modified_by`, `owner`, `customer`, `territory`, `coverage_type`, `effective_from`, `effective_to`, \
     `price_tier`, `service_level`, `status`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";
const END_MAPPING: &str = "UPDATE `tabHD Customer Territory Mapping` SET `effective_to` = ?, `status` = ?, \
     `modified` = ?, `modified_by` = ? WHERE `name` = ?";
/// The territory mappings of a customer on a date (`?` customer, date, date).
pub const TERRITORIES_AS_OF: &str = concat!(
    "SELECT ",
    mapping_columns!(),
    " FROM `tabHD Customer Territory Mapping` WHERE `customer` = ? AND `status` = 'Active' \
     AND `effective_from` <= ? AND (`effective_to` IS NULL OR `effective_to` > ?)"
);

/// Writes one outbox event inside the open transaction `$tx`.
macro_rules! record_event {
    ($tx:expr, $at:expr, $actor:expr, $entity_type:expr, $entity_name:expr, $event_type:expr, $payload:expr) => {
        harsha_store::record_change!(
            $tx,
            SOURCE_SERVICE,
            $at,
            $actor,
            $entity_type,
            $entity_name,
            $event_type,
            $payload
        )
    };
}

/// Reads and locks the customer row for the rest of the transaction `$tx`;
/// returns early unless the customer exists and is enabled.
macro_rules! lock_active_customer {
    ($tx:expr, $pool:expr, $customer:expr) => {{
        let row: Option<CustomerRow> = sqlx::query_as(AssertSqlSafe(format!(
            "{SELECT_CUSTOMER}{}",
            $pool.for_update()
        )))
        .bind($customer.as_str())
        .fetch_optional(&mut *$tx)
        .await?;
        let row = row.ok_or_else(|| CustomerError::CustomerNotFound($customer.to_string()))?;
        if row.disabled != 0 {
            return Err(CustomerError::CustomerDisabled($customer.to_string()));
        }
        row
    }};
}

/// Reads the customer row on `$conn`; returns early when there is none.
macro_rules! require_customer {
    ($conn:expr, $customer:expr) => {{
        let row: Option<CustomerRow> = sqlx::query_as(SELECT_CUSTOMER)
            .bind($customer.as_str())
            .fetch_optional(&mut *$conn)
            .await?;
        row.ok_or_else(|| CustomerError::CustomerNotFound($customer.to_string()))?
    }};
}

/// What the store needs to end an effective-dated record of either kind
/// (segment assignment or territory mapping) and report it.
trait DatedRecord: Clone + Serialize {
    /// The entity type recorded in outbox events.
    const ENTITY_TYPE: &'static str;
    /// The prefix of its event types (`<prefix>.replaced`, `<prefix>.ended`).
    const EVENT_PREFIX: &'static str;
    /// `UPDATE … SET effective_to, status, modified, modified_by WHERE name`.
    const END_SQL: &'static str;

    /// The record's id.
    fn id(&self) -> &str;
    /// Its range.
    fn range(&self) -> EffectiveRange;
    /// Its status.
    fn status(&self) -> AssignmentStatus;
    /// Applies an end, in memory, as the database now has it.
    fn set_end(&mut self, effective_to: NaiveDate, status: AssignmentStatus, at: NaiveDateTime);

    /// [`Self::END_SQL`], reached through a value.
    fn end_sql(&self) -> &'static str {
        Self::END_SQL
    }
    /// [`Self::EVENT_PREFIX`], reached through a value.
    fn event_prefix(&self) -> &'static str {
        Self::EVENT_PREFIX
    }
    /// [`Self::ENTITY_TYPE`], reached through a value.
    fn entity_type(&self) -> &'static str {
        Self::ENTITY_TYPE
    }
}

impl DatedRecord for Assignment {
    const ENTITY_TYPE: &'static str = "SegmentAssignment";
    const EVENT_PREFIX: &'static str = "customer.segment_assignment";
    const END_SQL: &'static str = END_ASSIGNMENT;

    fn id(&self) -> &str {
        &self.id
    }

    fn range(&self) -> EffectiveRange {
        self.range
    }

    fn status(&self) -> AssignmentStatus {
        self.status
    }

    fn set_end(&mut self, effective_to: NaiveDate, status: AssignmentStatus, at: NaiveDateTime) {
        self.range = EffectiveRange::stored(self.range.from(), Some(effective_to));
        self.status = status;
        self.modified = at;
    }
}

impl DatedRecord for TerritoryMapping {
    const ENTITY_TYPE: &'static str = "TerritoryMapping";
    const EVENT_PREFIX: &'static str = "customer.territory_mapping";
    const END_SQL: &'static str = END_MAPPING;

    fn id(&self) -> &str {
        &self.id
    }

    fn range(&self) -> EffectiveRange {
        self.range
    }

    fn status(&self) -> AssignmentStatus {
        self.status
    }

    fn set_end(&mut self, effective_to: NaiveDate, status: AssignmentStatus, at: NaiveDateTime) {
        self.range = EffectiveRange::stored(self.range.from(), Some(effective_to));
        self.status = status;
        self.modified = at;
    }
}

/// Ends `$record` (a [`DatedRecord`]) at `$effective_to` with `$status`
/// inside `$tx`, updates it in memory and records a `<prefix>.$suffix`
/// event.
macro_rules! end_record {
    ($tx:expr, $at:expr, $actor:expr, $record:expr, $effective_to:expr, $status:expr, $suffix:literal) => {{
        sqlx::query(DatedRecord::end_sql(&$record))
            .bind($effective_to)
            .bind($status.as_str())
            .bind($at)
            .bind($actor.as_str())
            .bind($record.id().to_owned())
            .execute(&mut *$tx)
            .await?;
        $record.set_end($effective_to, $status, $at);
        let event = format!("{}.{}", DatedRecord::event_prefix(&$record), $suffix);
        record_event!(
            $tx,
            $at,
            $actor,
            DatedRecord::entity_type(&$record),
            $record.id(),
            event,
            &$record
        )?;
    }};
}

/// Applies a replacement plan's changes to the conflicting records inside
/// `$tx` and evaluates to those records as they now are.
macro_rules! apply_replacement {
    ($tx:expr, $at:expr, $actor:expr, $conflicting:expr, $changes:expr) => {{
        let mut replaced = Vec::new();
        for change in $changes {
            let (changed_id, effective_to, status) = match change {
                RangeChange::End { id, effective_to } => {
                    (id, effective_to, AssignmentStatus::Active)
                }
                RangeChange::Supersede { id, effective_to } => {
                    (id, effective_to, AssignmentStatus::Superseded)
                }
            };
            if let Some(mut earlier) = $conflicting.iter().find(|r| r.id() == changed_id).cloned() {
                end_record!($tx, $at, $actor, earlier, effective_to, status, "replaced");
                replaced.push(earlier);
            }
        }
        replaced
    }};
}

/// The current time as stored: UTC, to the microsecond (MariaDB's
/// `datetime(6)`), so what a write returns equals what a read returns.
fn now() -> NaiveDateTime {
    Utc::now().naive_utc().trunc_subsecs(6)
}

fn decode<R, T>(rows: Vec<R>) -> Result<Vec<T>, CustomerError>
where
    T: TryFrom<R, Error = CustomerError>,
{
    rows.into_iter().map(T::try_from).collect()
}

/// The Customer store on an `erp` database.
#[derive(Debug, Clone)]
pub struct SqlCustomerStore {
    pool: ErpPool,
}

impl SqlCustomerStore {
    /// A store on `pool`, whose database must be migrated.
    pub fn new(pool: ErpPool) -> Self {
        Self { pool }
    }
}

#[async_trait::async_trait]
impl CustomerStore for SqlCustomerStore {
    #[tracing::instrument(name = "store.create_segment", skip_all, fields(code = %segment.code))]
    async fn create_segment(
        &self,
        segment: NewSegment,
        actor: &Actor,
    ) -> Result<Segment, CustomerError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let at = now();
            let created = Segment {
                code: segment.code,
                segment_name: segment.segment_name,
                description: segment.description,
                status: SegmentStatus::Active,
                service_level: segment.service_level,
                priority: segment.priority,
                price_tier: segment.price_tier,
                created: at,
                modified: at,
            };
            let inserted = sqlx::query(INSERT_SEGMENT)
                .bind(created.code.as_str())
                .bind(at)
                .bind(at)
                .bind(actor.as_str())
                .bind(actor.as_str())
                .bind(created.segment_name.as_str())
                .bind(created.description.as_str())
                .bind(created.status.as_str())
                .bind(created.service_level.as_str())
                .bind(created.priority.get())
                .bind(created.price_tier.as_ref().map(SegmentCode::as_str))
                .execute(&mut *tx)
                .await;
            match inserted {
                Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                    return Err(CustomerError::SegmentExists(created.code.to_string()));
                }
                other => other?,
            };
            record_event!(tx, at, actor, "Segment", created.code.as_str(), "customer.segment.created", &created)?;
            tx.commit().await?;
            Ok(created)
        })
    }

    #[tracing::instrument(name = "store.segment", skip_all, fields(code = %code))]
    async fn segment(&self, code: &SegmentCode) -> Result<Segment, CustomerError> {
        let row: Option<SegmentRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(SELECT_SEGMENT).bind(code.as_str()).fetch_optional(pool).await?
        });
        row.ok_or_else(|| CustomerError::SegmentNotFound(code.to_string()))?
            .try_into()
    }

    #[tracing::instrument(name = "store.list_segments", skip_all)]
    async fn list_segments(
        &self,
        status: Option<SegmentStatus>,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Segment>, CustomerError> {
        let after: String = harsha_store::page::decode_token(page_token)?.unwrap_or_default();
        let status = status.map(SegmentStatus::as_str);
        let rows: Vec<SegmentRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(LIST_SEGMENTS)
                .bind(status)
                .bind(status)
                .bind(&after)
                .bind(i64::from(page_size) + 1)
                .fetch_all(pool)
                .await?
        });
        Page::from_rows(rows, page_size, |row| row.name.clone()).try_map(Segment::try_from)
    }

    #[tracing::instrument(name = "store.update_segment", skip_all, fields(code = %code))]
    async fn update_segment(
        &self,
        code: &SegmentCode,
        patch: SegmentPatch,
        actor: &Actor,
    ) -> Result<Segment, CustomerError> {
        self.change_segment(code, actor, "customer.segment.updated", |segment| {
            patch.apply_to(segment);
            true
        })
        .await
    }

    #[tracing::instrument(name = "store.set_segment_status", skip_all, fields(code = %code, status = status.as_str()))]
    async fn set_segment_status(
        &self,
        code: &SegmentCode,
        status: SegmentStatus,
        actor: &Actor,
    ) -> Result<Segment, CustomerError> {
        let event = match status {
            SegmentStatus::Active => "customer.segment.activated",
            SegmentStatus::Inactive => "customer.segment.deactivated",
        };
        self.change_segment(code, actor, event, |segment| {
            let changed = segment.status != status;
            segment.status = status;
            changed
        })
        .await
    }

    #[tracing::instrument(
        name = "store.assign_segment",
        skip_all,
        fields(customer = %new.customer, segment = %new.segment, primary = new.is_primary)
    )]
    async fn assign_segment(
        &self,
        new: NewAssignment,
        actor: &Actor,
    ) -> Result<Replaced<Assignment>, CustomerError> {
        let id = Uuid::now_v7().to_string();
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            // The customer's name as ERPNext spells it (MariaDB matches
            // names case-insensitively).
            let customer = Customer::try_from(lock_active_customer!(tx, pool, &new.customer))?.name;
            // A shared lock: a concurrent deactivation waits for this
            // assignment, or this assignment sees the segment inactive.
            let segment: Option<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_SEGMENT}{}", pool.for_share())))
                .bind(new.segment.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let segment = Segment::try_from(segment.ok_or_else(|| CustomerError::SegmentNotFound(new.segment.to_string()))?)?;
            if segment.status != SegmentStatus::Active {
                return Err(CustomerError::SegmentInactive(segment.code.to_string()));
            }
            // Locked too, so that a concurrent EndAssignment cannot change a
            // record between this read and the update that replaces it.
            let conflicting: Vec<AssignmentRow> =
                sqlx::query_as(AssertSqlSafe(format!("{CONFLICTING_ASSIGNMENTS}{}", pool.for_update())))
                    .bind(customer.as_str())
                    .bind(i32::from(new.is_primary))
                    .bind(segment.code.as_str())
                    .bind(new.range.from())
                    .fetch_all(&mut *tx)
                    .await?;
            let at = now();
            let conflicting: Vec<Assignment> = decode(conflicting)?;
            let plan = plan_replacement(new.range, conflicting.iter().map(|a| (a.id.as_str(), a.range)));
            let replaced = apply_replacement!(tx, at, actor, conflicting, plan.changes);
            let created = Assignment {
                id,
                customer,
                segment: segment.code,
                is_primary: new.is_primary,
                range: plan.range,
                status: AssignmentStatus::Active,
                created: at,
                modified: at,
            };
            sqlx::query(INSERT_ASSIGNMENT)
                .bind(&created.id)
                .bind(at)
                .bind(at)
                .bind(actor.as_str())
                .bind(actor.as_str())
                .bind(created.customer.as_str())
                .bind(created.segment.as_str())
                .bind(i32::from(created.is_primary))
                .bind(created.range.from())
                .bind(created.range.to())
                .bind(created.status.as_str())
                .execute(&mut *tx)
                .await?;
            let event = format!("{}.created", Assignment::EVENT_PREFIX);
            record_event!(tx, at, actor, Assignment::ENTITY_TYPE, created.id.as_str(), event, &created)?;
            tx.commit().await?;
            Ok(Replaced { created, replaced })
        })
    }

    #[tracing::instrument(name = "store.end_assignment", skip_all, fields(assignment = id))]
    async fn end_assignment(
        &self,
        id: &str,
        effective_to: NaiveDate,
        actor: &Actor,
    ) -> Result<Assignment, CustomerError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<AssignmentRow> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_ASSIGNMENT}{}", pool.for_update())))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut assignment = Assignment::try_from(row.ok_or_else(|| CustomerError::AssignmentNotFound(id.to_owned()))?)?;
            let status = ending_status(&assignment, effective_to, "assignment")?;
            let at = now();
            end_record!(tx, at, actor, assignment, effective_to, status, "ended");
            tx.commit().await?;
            Ok(assignment)
        })
    }

    #[tracing::instrument(name = "store.customer_segments", skip_all, fields(customer = %customer, %as_of))]
    async fn customer_segments(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<Vec<CustomerSegment>, CustomerError> {
        let rows: Vec<CustomerJoinRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(CUSTOMER_SEGMENTS_AS_OF).bind(as_of).bind(as_of).bind(customer.as_str()).fetch_all(pool).await?
        });
        let (_, mut segments) = CustomerJoinRow::split(rows)?
            .ok_or_else(|| CustomerError::CustomerNotFound(customer.to_string()))?;
        CustomerSegment::sort(&mut segments);
        Ok(segments)
    }

    #[tracing::instrument(name = "store.primary_segment", skip_all, fields(customer = %customer, %as_of))]
    async fn primary_segment(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<Option<CustomerSegment>, CustomerError> {
        let rows: Vec<CustomerJoinRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(CUSTOMER_PRIMARY_AS_OF).bind(as_of).bind(as_of).bind(customer.as_str()).fetch_all(pool).await?
        });
        let (_, segments) = CustomerJoinRow::split(rows)?
            .ok_or_else(|| CustomerError::CustomerNotFound(customer.to_string()))?;
        // Should the rule ever be broken, the latest start wins, as it would
        // for a caller reading the history.
        Ok(segments
            .into_iter()
            .max_by_key(|s| s.assignment.range.from()))
    }

    #[tracing::instrument(name = "store.assignment_history", skip_all, fields(customer = %customer))]
    async fn assignment_history(
        &self,
        customer: &DocName,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Assignment>, CustomerError> {
        let after: Option<(NaiveDate, String)> = harsha_store::page::decode_token(page_token)?;
        let (after_date, after_name) = after.map_or((None, None), |(d, n)| (Some(d), Some(n)));
        let rows: Vec<AssignmentRow> = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            require_customer!(conn, customer);
            sqlx::query_as(ASSIGNMENT_HISTORY)
                .bind(customer.as_str())
                .bind(after_date)
                .bind(after_date)
                .bind(after_date)
                .bind(after_name.as_deref())
                .bind(i64::from(page_size) + 1)
                .fetch_all(&mut *conn)
                .await?
        });
        Page::from_rows(rows, page_size, |row| {
            (row.effective_from, row.name.clone())
        })
        .try_map(Assignment::try_from)
    }

    #[tracing::instrument(name = "store.segment_customers", skip_all, fields(segment = %code, %as_of))]
    async fn segment_customers(
        &self,
        code: &SegmentCode,
        as_of: NaiveDate,
        primary_only: bool,
        page_size: u32,
        page_token: &str,
    ) -> Result<Page<Assignment>, CustomerError> {
        let after: Option<(String, String)> = harsha_store::page::decode_token(page_token)?;
        let (after_customer, after_name) = after.map_or((None, None), |(c, n)| (Some(c), Some(n)));
        let rows: Vec<AssignmentRow> = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            let segment: Option<SegmentRow> = sqlx::query_as(SELECT_SEGMENT).bind(code.as_str()).fetch_optional(&mut *conn).await?;
            if segment.is_none() {
                return Err(CustomerError::SegmentNotFound(code.to_string()));
            }
            sqlx::query_as(SEGMENT_MEMBERS)
                .bind(code.as_str())
                .bind(as_of)
                .bind(as_of)
                .bind(i32::from(primary_only))
                .bind(after_customer.as_deref())
                .bind(after_customer.as_deref())
                .bind(after_customer.as_deref())
                .bind(after_name.as_deref())
                .bind(i64::from(page_size) + 1)
                .fetch_all(&mut *conn)
                .await?
        });
        Page::from_rows(rows, page_size, |row| {
            (row.customer.clone(), row.name.clone())
        })
        .try_map(Assignment::try_from)
    }

    #[tracing::instrument(
        name = "store.map_territory",
        skip_all,
        fields(customer = %new.customer, territory = %new.territory, coverage = new.coverage.as_str())
    )]
    async fn map_territory(
        &self,
        new: NewTerritoryMapping,
        actor: &Actor,
    ) -> Result<Replaced<TerritoryMapping>, CustomerError> {
        let id = Uuid::now_v7().to_string();
        let is_primary = new.coverage == CoverageType::Primary;
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let customer = Customer::try_from(lock_active_customer!(tx, pool, &new.customer))?.name;
            let territory: Option<(String,)> =
                sqlx::query_as(TERRITORY_EXISTS).bind(new.territory.as_str()).fetch_optional(&mut *tx).await?;
            let territory = match territory {
                Some((name,)) => DocName::parse(&name).map_err(|e| CustomerError::invalid("territory", e))?,
                None => return Err(CustomerError::TerritoryNotFound(new.territory.to_string())),
            };
            let conflicting: Vec<MappingRow> =
                sqlx::query_as(AssertSqlSafe(format!("{CONFLICTING_MAPPINGS}{}", pool.for_update())))
                    .bind(customer.as_str())
                    .bind(i32::from(is_primary))
                    .bind(territory.as_str())
                    .bind(new.range.from())
                    .fetch_all(&mut *tx)
                    .await?;
            let at = now();
            let conflicting: Vec<TerritoryMapping> = decode(conflicting)?;
            let plan = plan_replacement(new.range, conflicting.iter().map(|m| (m.id.as_str(), m.range)));
            let replaced = apply_replacement!(tx, at, actor, conflicting, plan.changes);
            let created = TerritoryMapping {
                id,
                customer,
                territory,
                coverage: new.coverage,
                range: plan.range,
                price_tier: new.price_tier,
                service_level: new.service_level,
                status: AssignmentStatus::Active,
                created: at,
                modified: at,
            };
            sqlx::query(INSERT_MAPPING)
                .bind(&created.id)
                .bind(at)
                .bind(at)
                .bind(actor.as_str())
                .bind(actor.as_str())
                .bind(created.customer.as_str())
                .bind(created.territory.as_str())
                .bind(created.coverage.as_str())
                .bind(created.range.from())
                .bind(created.range.to())
                .bind(created.price_tier.as_ref().map(SegmentCode::as_str))
                .bind(created.service_level.map(|l| l.as_str()))
                .bind(created.status.as_str())
                .execute(&mut *tx)
                .await?;
            let event = format!("{}.created", TerritoryMapping::EVENT_PREFIX);
            record_event!(tx, at, actor, TerritoryMapping::ENTITY_TYPE, created.id.as_str(), event, &created)?;
            tx.commit().await?;
            Ok(Replaced { created, replaced })
        })
    }

    #[tracing::instrument(name = "store.end_territory_mapping", skip_all, fields(mapping = id))]
    async fn end_territory_mapping(
        &self,
        id: &str,
        effective_to: NaiveDate,
        actor: &Actor,
    ) -> Result<TerritoryMapping, CustomerError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<MappingRow> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_MAPPING}{}", pool.for_update())))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut mapping = TerritoryMapping::try_from(row.ok_or_else(|| CustomerError::MappingNotFound(id.to_owned()))?)?;
            let status = ending_status(&mapping, effective_to, "territory mapping")?;
            let at = now();
            end_record!(tx, at, actor, mapping, effective_to, status, "ended");
            tx.commit().await?;
            Ok(mapping)
        })
    }

    #[tracing::instrument(name = "store.customer_territories", skip_all, fields(customer = %customer, %as_of))]
    async fn customer_territories(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<Vec<TerritoryMapping>, CustomerError> {
        let rows: Vec<MappingRow> = erp_dispatch!(&self.pool, pool => {
            let mut conn = pool.acquire().await?;
            require_customer!(conn, customer);
            sqlx::query_as(TERRITORIES_AS_OF).bind(customer.as_str()).bind(as_of).bind(as_of).fetch_all(&mut *conn).await?
        });
        let mut territories = decode(rows)?;
        TerritoryMapping::sort(&mut territories);
        Ok(territories)
    }

    /// One query, one round trip: the customer with its segments, and its
    /// territories, as one result.
    #[tracing::instrument(name = "store.profile", skip_all, fields(customer = %customer, %as_of))]
    async fn profile(
        &self,
        customer: &DocName,
        as_of: NaiveDate,
    ) -> Result<CustomerProfile, CustomerError> {
        let rows: Vec<ProfileRow> = erp_dispatch!(&self.pool, pool => {
            sqlx::query_as(CUSTOMER_PROFILE_AS_OF)
                .bind(as_of)
                .bind(as_of)
                .bind(customer.as_str())
                .bind(customer.as_str())
                .bind(as_of)
                .bind(as_of)
                .fetch_all(pool)
                .await?
        });
        let (segment_rows, territory_rows) = ProfileRow::partition(rows);
        let (found, mut segments) = CustomerJoinRow::split(segment_rows)?
            .ok_or_else(|| CustomerError::CustomerNotFound(customer.to_string()))?;
        let mut territories = decode(territory_rows)?;
        CustomerSegment::sort(&mut segments);
        TerritoryMapping::sort(&mut territories);
        Ok(CustomerProfile::resolve(
            found,
            as_of,
            segments,
            territories,
        ))
    }
}

impl SqlCustomerStore {
    /// Locks a segment, lets `change` edit it (returning whether anything
    /// changed), and writes it back with an event when it did.
    async fn change_segment(
        &self,
        code: &SegmentCode,
        actor: &Actor,
        event_type: &str,
        change: impl FnOnce(&mut Segment) -> bool + Send,
    ) -> Result<Segment, CustomerError> {
        erp_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<SegmentRow> = sqlx::query_as(AssertSqlSafe(format!("{SELECT_SEGMENT}{}", pool.for_update())))
                .bind(code.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let mut segment = Segment::try_from(row.ok_or_else(|| CustomerError::SegmentNotFound(code.to_string()))?)?;
            if !change(&mut segment) {
                return Ok(segment);
            }
            let at = now();
            segment.modified = at;
            sqlx::query(UPDATE_SEGMENT)
                .bind(segment.segment_name.as_str())
                .bind(segment.description.as_str())
                .bind(segment.status.as_str())
                .bind(segment.service_level.as_str())
                .bind(segment.priority.get())
                .bind(segment.price_tier.as_ref().map(SegmentCode::as_str))
                .bind(at)
                .bind(actor.as_str())
                .bind(code.as_str())
                .execute(&mut *tx)
                .await?;
            record_event!(tx, at, actor, "Segment", code.as_str(), event_type, &segment)?;
            tx.commit().await?;
            Ok(segment)
        })
    }
}

/// The status a record gets when ended at `effective_to`: it may only be
/// shortened, not reopened; ending it on its first day supersedes it.
fn ending_status(
    record: &impl DatedRecord,
    effective_to: NaiveDate,
    what: &str,
) -> Result<AssignmentStatus, CustomerError> {
    let range = record.range();
    if record.status() == AssignmentStatus::Superseded {
        return Err(CustomerError::FailedPrecondition(format!(
            "the {what} was superseded and is not in force"
        )));
    }
    if effective_to < range.from() {
        return Err(CustomerError::invalid(
            "effective_to",
            format!(
                "{effective_to} is before the {what}'s effective_from ({})",
                range.from()
            ),
        ));
    }
    if let Some(current) = range.to()
        && effective_to > current
    {
        return Err(CustomerError::FailedPrecondition(format!(
            "the {what} already ends on {current}; a range can only be shortened"
        )));
    }
    Ok(if effective_to == range.from() {
        AssignmentStatus::Superseded
    } else {
        AssignmentStatus::Active
    })
}
