//! Segment assignments and territory mappings: effective-dated records that
//! tie a customer to a segment or a territory.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::{DocName, EffectiveRange, Segment, SegmentCode, ServiceLevel, ValueError};

/// The state of an assignment or mapping record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum AssignmentStatus {
    /// In force over its range.
    Active,
    /// Replaced before it took effect; never in force.
    Superseded,
}

impl AssignmentStatus {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Superseded => "Superseded",
        }
    }

    /// Reads a stored status.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "Active" => Ok(Self::Active),
            "Superseded" => Ok(Self::Superseded),
            other => Err(ValueError(format!("unknown assignment status {other:?}"))),
        }
    }
}

/// A customer's membership of a segment over a range of dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Assignment {
    /// Unique id (the document `name`).
    pub id: String,
    /// The customer.
    pub customer: DocName,
    /// The segment held.
    pub segment: SegmentCode,
    /// Whether it is the customer's primary segment over the range.
    pub is_primary: bool,
    /// When it is in force.
    pub range: EffectiveRange,
    /// Record state.
    pub status: AssignmentStatus,
    /// When it was created (UTC).
    pub created: NaiveDateTime,
    /// When it last changed (UTC).
    pub modified: NaiveDateTime,
}

/// An assignment to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAssignment {
    /// The customer.
    pub customer: DocName,
    /// The segment.
    pub segment: SegmentCode,
    /// Whether it becomes primary.
    pub is_primary: bool,
    /// The range asked for.
    pub range: EffectiveRange,
}

/// An assignment together with its segment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CustomerSegment {
    /// The assignment.
    pub assignment: Assignment,
    /// The segment it refers to.
    pub segment: Segment,
}

impl CustomerSegment {
    /// Puts a customer's segments in the order callers see them: the
    /// primary first, then by segment priority (highest first), then code.
    pub fn sort(segments: &mut [CustomerSegment]) {
        segments.sort_by(|a, b| {
            b.assignment
                .is_primary
                .cmp(&a.assignment.is_primary)
                .then(b.segment.priority.cmp(&a.segment.priority))
                .then_with(|| a.segment.code.cmp(&b.segment.code))
        });
    }
}

/// How a territory covers a customer. The derived order ranks coverage: primary, secondary, delivery.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum CoverageType {
    /// The home territory; one at a time.
    Primary,
    /// Another territory whose team serves the customer.
    Secondary,
    /// A territory the customer receives deliveries in.
    Delivery,
}

impl CoverageType {
    /// The stored value.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Primary => "Primary",
            Self::Secondary => "Secondary",
            Self::Delivery => "Delivery",
        }
    }

    /// Reads a stored coverage type.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "Primary" => Ok(Self::Primary),
            "Secondary" => Ok(Self::Secondary),
            "Delivery" => Ok(Self::Delivery),
            other => Err(ValueError(format!("unknown coverage type {other:?}"))),
        }
    }
}

/// A territory covering a customer over a range of dates.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TerritoryMapping {
    /// Unique id (the document `name`).
    pub id: String,
    /// The customer.
    pub customer: DocName,
    /// The territory.
    pub territory: DocName,
    /// How it covers the customer.
    pub coverage: CoverageType,
    /// When it is in force.
    pub range: EffectiveRange,
    /// Price tier the territory imposes, if any.
    pub price_tier: Option<SegmentCode>,
    /// Service level the territory guarantees, if any.
    pub service_level: Option<ServiceLevel>,
    /// Record state.
    pub status: AssignmentStatus,
    /// When it was created (UTC).
    pub created: NaiveDateTime,
    /// When it last changed (UTC).
    pub modified: NaiveDateTime,
}

impl TerritoryMapping {
    /// Puts a customer's territories in the order callers see them: by
    /// coverage (primary, secondary, delivery), then by territory.
    pub fn sort(mappings: &mut [TerritoryMapping]) {
        mappings.sort_by(|a, b| {
            a.coverage
                .cmp(&b.coverage)
                .then_with(|| a.territory.cmp(&b.territory))
        });
    }
}

/// A territory mapping to make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewTerritoryMapping {
    /// The customer.
    pub customer: DocName,
    /// The territory.
    pub territory: DocName,
    /// How it covers the customer.
    pub coverage: CoverageType,
    /// The range asked for.
    pub range: EffectiveRange,
    /// Price tier imposed, if any.
    pub price_tier: Option<SegmentCode>,
    /// Service level guaranteed, if any.
    pub service_level: Option<ServiceLevel>,
}
