//! The Customer service's types and rules, free of gRPC and SQL: validated
//! values (codes, names, date ranges), segments, assignments and territory
//! mappings, the rule that decides which older records a new one replaces,
//! and how a customer's profile is resolved.

mod assignment;
mod effective;
mod profile;
mod segment;
mod values;

pub use assignment::{
    Assignment, AssignmentStatus, CoverageType, CustomerSegment, NewAssignment,
    NewTerritoryMapping, TerritoryMapping,
};
pub use effective::{EffectiveRange, RangeChange, Replacement, plan_replacement};
pub use harsha_types::{Actor, DocName, ValueError};
pub use profile::{Customer, CustomerProfile, ProfileSource};
pub use segment::{NewSegment, Segment, SegmentPatch, SegmentStatus, ServiceLevel};
pub use values::{Description, Priority, SegmentCode, SegmentName};
