//! Persistence of the Sync service on the `sync` database (PostgreSQL, or
//! SQLite embedded): the [`SyncStore`] trait and [`SqlSyncStore`], SQL
//! written once with `$n` placeholders; the few engine differences (how a
//! position is drawn, partitions) are in `sql`.

mod sql;

use async_trait::async_trait;
use chrono::{DateTime, NaiveDate, Utc};
use harsha_store::page::Page;

pub use sql::SqlSyncStore;
pub(crate) use sql::stored;

use crate::{
    SyncError,
    domain::{
        Attempt, Configuration, ConfigurationPatch, Conflict, ConflictStatus, Delivery,
        DeliveryState, Event, FieldMapping, NewConfiguration, NewEvent, NewTarget, SourceFilter,
        System, Target, TargetName, TargetPatch,
        batch::BatchRun,
        conflict::{Action, HistoryEntry},
        metrics::PeriodMetrics,
    },
};

/// The outcome of recording one event.
#[derive(Debug, Clone, PartialEq)]
pub struct Recorded {
    /// The event as stored (the first one, for a duplicate).
    pub event: Event,
    /// Whether its idempotency key was recorded before.
    pub duplicate: bool,
    /// How many targets it was routed to (0 for a duplicate).
    pub routed_to: u32,
    /// For how many of them it conflicted.
    pub conflicts: u32,
}

/// Which conflicts to list.
#[derive(Debug, Clone, Default)]
pub struct ConflictFilter {
    /// In this status.
    pub status: Option<ConflictStatus>,
    /// Of this entity type.
    pub entity_type: Option<String>,
    /// Of this entity (with `entity_type`).
    pub entity_key: Option<String>,
    /// Given to this person.
    pub assignee: Option<String>,
    /// Only those open longer than [`STALE_AFTER`](crate::domain::conflict::STALE_AFTER).
    pub stale_only: bool,
}

/// Where a subscriber stands in the stream, which is ordered by recording
/// transaction, then position (on SQLite, whose writes are serial, both
/// are the position).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct StreamCursor {
    /// The recording transaction of the last event received.
    pub xid: i64,
    /// Its position.
    pub position: i64,
}

impl StreamCursor {
    /// Before every event.
    pub const START: Self = Self {
        xid: 0,
        position: 0,
    };
}

/// How long past its target's timeout a claimed delivery stays leased.
pub const LEASE_MARGIN: chrono::Duration = chrono::Duration::seconds(10);

/// What is waiting right now.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Deliveries waiting for an attempt.
    pub pending: i64,
    /// Deliveries being attempted.
    pub in_flight: i64,
    /// Deliveries held for a person.
    pub held: i64,
    /// Dead letters.
    pub dead_lettered: i64,
    /// How long the oldest pending delivery has waited since its event was
    /// recorded, in milliseconds.
    pub oldest_pending_ms: i64,
}

/// How long sync data is kept (the seed's retention policy).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Months events stay in the hot table (`sync_events`), with their
    /// idempotency keys and finished deliveries.
    pub hot_months: u32,
    /// Months events and delivery attempts are kept in all; on PostgreSQL
    /// a month's partition is detached (archived, still a table) after
    /// `hot_months` and dropped after this.
    pub total_months: u32,
    /// Months `sync_metrics` rows are kept.
    pub metrics_months: u32,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            hot_months: 6,
            total_months: 24,
            metrics_months: 12,
        }
    }
}

/// What one retention pass did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RetentionReport {
    /// Monthly partitions detached from `sync_events` (archived).
    pub detached: Vec<String>,
    /// Archived partitions dropped.
    pub dropped: Vec<String>,
    /// Rows deleted (events outside partitions, keys, deliveries,
    /// attempts, metrics).
    pub deleted_rows: u64,
}

/// Which events to list.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Of this entity type.
    pub entity_type: Option<String>,
    /// Of this entity (with `entity_type`).
    pub entity_key: Option<String>,
    /// From this system.
    pub source_system: Option<String>,
    /// After this position.
    pub after_position: i64,
}

/// Which deliveries to list.
#[derive(Debug, Clone, Default)]
pub struct DeliveryFilter {
    /// To this target.
    pub target: Option<String>,
    /// In this state.
    pub state: Option<DeliveryState>,
    /// Of this event.
    pub position: Option<i64>,
}

/// A delivery claimed for an attempt, with what the attempt needs.
#[derive(Debug, Clone)]
pub struct Claim {
    /// The delivery (its `attempts` already counts this attempt).
    pub delivery: Delivery,
    /// The event.
    pub event: Event,
    /// Where it goes.
    pub target: Target,
    /// The route's field mapping (empty if the route was removed since).
    pub mapping: FieldMapping,
}

/// How an attempt ended, for the store to record.
#[derive(Debug, Clone)]
pub struct Finished {
    /// The attempt, as `sync_status` keeps it.
    pub attempt: Attempt,
    /// When to try again (a retrying outcome only).
    pub retry_at: Option<DateTime<Utc>>,
}

/// The Sync service's storage.
#[async_trait]
pub trait SyncStore: Send + Sync {
    /// Records events in order, each once per idempotency key, and routes
    /// each new one to its targets, all in one transaction.
    async fn record(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, SyncError>;

    /// Records changes relayed from a source that keeps no versions (the
    /// ERP outbox), like [`SyncStore::record`], giving each the next version
    /// of its entity, made on the newest version its source is known to
    /// have had (its own last change, or the last change delivered to it),
    /// so its changes are checked for conflicts like versioned ones.
    async fn record_relayed(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, SyncError>;

    /// The event at `position`.
    async fn event(&self, position: i64) -> Result<Event, SyncError>;

    /// A page of events in position order.
    async fn events(
        &self,
        filter: &EventFilter,
        size: u32,
        token: &str,
    ) -> Result<Page<Event>, SyncError>;

    /// Registers a target.
    async fn create_target(
        &self,
        target: NewTarget,
        now: DateTime<Utc>,
    ) -> Result<Target, SyncError>;

    /// One target.
    async fn target(&self, name: &TargetName) -> Result<Target, SyncError>;

    /// Every target, by name.
    async fn targets(&self) -> Result<Vec<Target>, SyncError>;

    /// Changes a target.
    async fn update_target(
        &self,
        name: &TargetName,
        patch: TargetPatch,
        now: DateTime<Utc>,
    ) -> Result<Target, SyncError>;

    /// Removes a target nothing routes to or waits for.
    async fn delete_target(&self, name: &TargetName) -> Result<(), SyncError>;

    /// Creates a route.
    async fn create_configuration(
        &self,
        configuration: NewConfiguration,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Configuration, SyncError>;

    /// One route.
    async fn configuration(&self, id: &str) -> Result<Configuration, SyncError>;

    /// Routes, optionally of one entity type or to one target.
    async fn configurations(
        &self,
        entity_type: Option<&str>,
        target: Option<&str>,
    ) -> Result<Vec<Configuration>, SyncError>;

    /// Changes a route.
    async fn update_configuration(
        &self,
        id: &str,
        patch: ConfigurationPatch,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Configuration, SyncError>;

    /// Removes a route.
    async fn delete_configuration(&self, id: &str) -> Result<(), SyncError>;

    /// Claims up to `limit` due deliveries to enabled targets — at most one
    /// per target and entity, the earliest waiting — for an attempt, leased
    /// from `now` for the longest timeout among the claimed targets plus
    /// [`LEASE_MARGIN`] (so the attempts of a process that died are made
    /// again soon after).
    async fn claim(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Claim>, SyncError>;

    /// Records attempts and moves their deliveries on (delivered, pending
    /// again, or dead), all in one transaction. An attempt whose lease
    /// lapsed and was claimed again is recorded without moving the delivery.
    async fn finish(&self, finished: Vec<Finished>, now: DateTime<Utc>) -> Result<(), SyncError>;

    /// Returns deliveries whose lease lapsed (their dispatcher stopped) to
    /// pending; how many.
    async fn release_lapsed(&self, now: DateTime<Utc>) -> Result<u64, SyncError>;

    /// A page of deliveries by position and target.
    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        size: u32,
        token: &str,
    ) -> Result<Page<Delivery>, SyncError>;

    /// Every attempt of an event, oldest first.
    async fn attempts(
        &self,
        position: i64,
        target: Option<&str>,
    ) -> Result<Vec<Attempt>, SyncError>;

    /// Queues dead letters of a target again (those at `positions`, or all);
    /// how many.
    async fn replay(
        &self,
        target: &TargetName,
        positions: &[i64],
        now: DateTime<Utc>,
    ) -> Result<u64, SyncError>;

    /// Makes sure `sync_events` has a partition for every month up to the
    /// month of `through` (PostgreSQL); the partitions added.
    async fn ensure_partitions(&self, through: NaiveDate) -> Result<Vec<String>, SyncError>;

    /// Where a subscription resumes: after the event at `after` (`Some(0)`:
    /// before every event), or at the end of the stream (`None`; events
    /// still being recorded then are included).
    async fn stream_cursor(&self, after: Option<i64>) -> Result<StreamCursor, SyncError>;

    /// Up to `limit` events after `after` in stream order whose recording
    /// can no longer be overtaken by a transaction still running, each
    /// with its cursor; optionally of some entity types only.
    async fn stream(
        &self,
        after: StreamCursor,
        entity_types: &[String],
        limit: u32,
    ) -> Result<Vec<(Event, StreamCursor)>, SyncError>;

    /// Computes and keeps the real-time figures of the period starting at
    /// `start` (once: a period already kept is read back).
    async fn record_metrics(
        &self,
        start: DateTime<Utc>,
        seconds: i32,
        now: DateTime<Utc>,
    ) -> Result<PeriodMetrics, SyncError>;

    /// The kept periods starting in `[since, until)`, oldest first.
    async fn metrics(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<PeriodMetrics>, SyncError>;

    /// What is waiting right now.
    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, SyncError>;

    /// Applies `retention` as of `now`.
    async fn enforce_retention(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> Result<RetentionReport, SyncError>;

    /// Records a batch run that starts; refused while another run of the
    /// same route is under way.
    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), SyncError>;

    /// Saves a run's progress; a finished run also writes its
    /// `sync_metrics` row.
    async fn save_batch_run(&self, run: &BatchRun) -> Result<(), SyncError>;

    /// One batch run.
    async fn batch_run(&self, id: &str) -> Result<BatchRun, SyncError>;

    /// Batch runs, newest first, optionally of one route.
    async fn batch_runs(
        &self,
        configuration_id: Option<&str>,
        size: u32,
        token: &str,
    ) -> Result<Page<BatchRun>, SyncError>;

    /// The newest run of a route that finished loading (succeeded or
    /// partial), and whether one is under way.
    async fn last_batch_run(
        &self,
        configuration_id: &str,
    ) -> Result<(Option<BatchRun>, bool), SyncError>;

    /// Marks runs left running by a stopped process as failed; how many.
    async fn fail_interrupted_batch_runs(&self, now: DateTime<Utc>) -> Result<u64, SyncError>;

    /// Up to `limit` events of `entity_type` recorded in `[since, until)`
    /// after `after_position`, in position order, from `source` and not
    /// from `exclude` (the target's own system).
    #[allow(clippy::too_many_arguments)]
    async fn batch_extract(
        &self,
        entity_type: &str,
        source: SourceFilter,
        exclude: System,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<Event>, SyncError>;

    /// A page of conflicts, newest first, and how many are stale in all.
    async fn conflicts(
        &self,
        filter: &ConflictFilter,
        size: u32,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Page<Conflict>, u64), SyncError>;

    /// One conflict and its history, oldest step first.
    async fn conflict(&self, id: &str) -> Result<(Conflict, Vec<HistoryEntry>), SyncError>;

    /// Takes a workflow step for `actor`; closing releases the entity's
    /// held delivery with the resolved entity. All in one transaction.
    async fn advance(
        &self,
        id: &str,
        action: Action,
        actor: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Conflict, SyncError>;
}
