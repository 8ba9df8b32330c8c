//! Segments: what they are, the statuses and service levels they carry, and
//! how an update is described.

use chrono::NaiveDateTime;
use serde::Serialize;

use super::{Description, Priority, SegmentCode, SegmentName, ValueError};

/// Whether a segment accepts new assignments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SegmentStatus {
    /// Accepts new assignments.
    Active,
    /// Kept for history; refuses new assignments.
    Inactive,
}

impl SegmentStatus {
    /// The value stored in ERPNext's `status` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Inactive => "Inactive",
        }
    }

    /// Reads a stored status.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "Active" => Ok(Self::Active),
            "Inactive" => Ok(Self::Inactive),
            other => Err(ValueError(format!("unknown segment status {other:?}"))),
        }
    }
}

/// A service level, lowest to highest: the derived order ranks them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub enum ServiceLevel {
    /// Standard delivery windows and support.
    Standard,
    /// Preferred slots and faster support.
    Priority,
    /// Dedicated account handling.
    Premium,
}

impl ServiceLevel {
    /// The value stored in the `service_level` column.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Standard => "Standard",
            Self::Priority => "Priority",
            Self::Premium => "Premium",
        }
    }

    /// Reads a stored service level.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "Standard" => Ok(Self::Standard),
            "Priority" => Ok(Self::Priority),
            "Premium" => Ok(Self::Premium),
            other => Err(ValueError(format!("unknown service level {other:?}"))),
        }
    }
}

/// A customer segment (`tabHD Customer Segment`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// Unique, immutable code (the document `name`).
    pub code: SegmentCode,
    /// Display name.
    pub segment_name: SegmentName,
    /// Free text.
    pub description: Description,
    /// Whether it accepts new assignments.
    pub status: SegmentStatus,
    /// The service level its members receive.
    pub service_level: ServiceLevel,
    /// Rank among segments.
    pub priority: Priority,
    /// Price tier code for the Pricing service; `None` for the standard tier.
    pub price_tier: Option<SegmentCode>,
    /// When it was created (UTC).
    pub created: NaiveDateTime,
    /// When it last changed (UTC).
    pub modified: NaiveDateTime,
}

/// A segment to create.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewSegment {
    /// Unique code.
    pub code: SegmentCode,
    /// Display name.
    pub segment_name: SegmentName,
    /// Free text.
    pub description: Description,
    /// Service level of its members.
    pub service_level: ServiceLevel,
    /// Rank among segments.
    pub priority: Priority,
    /// Price tier, if not the standard one.
    pub price_tier: Option<SegmentCode>,
}

/// The fields of a segment to change; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SegmentPatch {
    /// New display name.
    pub segment_name: Option<SegmentName>,
    /// New description.
    pub description: Option<Description>,
    /// New service level.
    pub service_level: Option<ServiceLevel>,
    /// New priority.
    pub priority: Option<Priority>,
    /// New price tier (`Some(None)` clears it).
    pub price_tier: Option<Option<SegmentCode>>,
}

impl SegmentPatch {
    /// Applies the patch to a segment's editable fields.
    pub fn apply_to(self, segment: &mut Segment) {
        if let Some(name) = self.segment_name {
            segment.segment_name = name;
        }
        if let Some(description) = self.description {
            segment.description = description;
        }
        if let Some(level) = self.service_level {
            segment.service_level = level;
        }
        if let Some(priority) = self.priority {
            segment.priority = priority;
        }
        if let Some(tier) = self.price_tier {
            segment.price_tier = tier;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn service_levels_rank_standard_below_premium() {
        assert!(ServiceLevel::Standard < ServiceLevel::Priority);
        assert!(ServiceLevel::Priority < ServiceLevel::Premium);
        for level in [
            ServiceLevel::Standard,
            ServiceLevel::Priority,
            ServiceLevel::Premium,
        ] {
            assert_eq!(ServiceLevel::parse(level.as_str()), Ok(level));
        }
        assert!(ServiceLevel::parse("Gold").is_err());
    }
}
