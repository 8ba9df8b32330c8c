//! The Sync service's types and rules, free of the database and the wire:
//! batch runs ([`batch`]),
//! the systems and entity types events may name ([`values`]), events
//! ([`event`]), targets and routing configurations ([`routing`]), the
//! rules of delivery — backoff, which answers are retried, signatures
//! ([`delivery`]) — and conflicts: detection's three-way view, the
//! strategies, and the manual workflow's steps ([`conflict`]) — and the
//! figures of a period of sync ([`metrics`]).

pub mod batch;
pub mod conflict;
pub mod delivery;
pub mod event;
pub mod metrics;
pub mod routing;
pub mod values;

pub use conflict::{Conflict, ConflictStatus, MergeRules, Resolution};
pub use delivery::{Attempt, AttemptOutcome, Delivery, DeliveryState, Verdict};
pub use event::{Event, NewEvent, Operation};
pub use routing::{
    Configuration, ConfigurationPatch, ConflictStrategy, FieldMapping, NewConfiguration, NewTarget,
    SourceFilter, SyncMode, Target, TargetKind, TargetPatch,
};
pub use values::{EntityType, System, TargetName, ValueError};
