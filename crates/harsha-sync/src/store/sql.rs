//! [`SqlSyncStore`]: the Sync service's tables on PostgreSQL and SQLite.
//!
//! Positions: an event takes the next position only while holding its
//! entity's lock (a transaction-level advisory lock on PostgreSQL, taken in
//! a fixed order for a batch; SQLite's single writer), so one entity's
//! events become visible in position order — what ordered delivery per
//! entity needs — while events of different entities are recorded in
//! parallel and share commits. Positions may skip numbers (a duplicate
//! draws one it does not use).

use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Datelike, Months, NaiveDate, SubsecRound, Utc};
use harsha_store::{
    PgDialect, PgPool,
    page::{Page, decode_token},
    pg_dispatch,
};
use serde_json::{Map, Value};
use sqlx::{AssertSqlSafe, error::ErrorKind, types::Json};
use uuid::Uuid;

use super::{
    Backlog, Claim, ConflictFilter, DeliveryFilter, EventFilter, Finished, LEASE_MARGIN, Recorded,
    Retention, RetentionReport, StreamCursor, SyncStore,
};
use crate::{
    SyncError,
    domain::{
        Attempt, AttemptOutcome, Configuration, ConfigurationPatch, ConflictStrategy, Delivery,
        DeliveryState, EntityType, Event, FieldMapping, NewConfiguration, NewEvent, NewTarget,
        Operation, SourceFilter, SyncMode, System, Target, TargetKind, TargetName, TargetPatch,
        batch::{BatchRun, BatchStatus},
        conflict::{
            Action, Conflict, ConflictStatus, Decision, HistoryEntry, MergeRules, Refusal,
            Resolution, STALE_AFTER, Side, apply, conflicting_fields, decide, three_way,
        },
        metrics::{LagPercentiles, PeriodMetrics, percentiles},
        routing,
    },
};

/// Takes an entity's recording lock on PostgreSQL until commit.
const ENTITY_LOCK: &str = "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))";

const EVENT_COLUMNS: &str = "position, event_id, idempotency_key, source_system, entity_type, entity_key, \
     operation, event_type, payload, entity_version, base_version, occurred_at, created_at, correlation_id, traceparent";

const TARGET_COLUMNS: &str =
    "name, system, kind, url, secret, timeout_ms, max_attempts, enabled, created_at, updated_at";

const CONFIGURATION_COLUMNS: &str = "id, entity_type, source_system, target, mode, conflict_strategy, \
     business_rule, field_mapping, enabled, created_at, updated_at, updated_by, merge_rules, batch_every_minutes";

const DELIVERY_COLUMNS: &str = "position, target, configuration_id, entity_type, entity_key, state, attempts, \
     next_attempt_at, last_error, created_at, delivered_at";

/// Routes a new event: one pending delivery per enabled real-time
/// configuration of its entity type and source, never back to its source.
const ROUTE: &str = "INSERT INTO sync_deliveries (target, position, configuration_id, entity_type, entity_key, \
     state, attempts, next_attempt_at, created_at) \
     SELECT c.target, $1, c.id, $2, $3, 'pending', 0, $4, $4 FROM sync_configurations c \
     JOIN sync_targets t ON t.name = c.target \
     WHERE c.enabled AND c.mode = 'realtime' AND c.entity_type = $2 \
     AND (c.source_system = '*' OR c.source_system = $5) AND t.system <> $5";

/// The newest version of an entity ($1, $2) a system ($3) is known to
/// have had before position $4: its own last change, or the last change
/// delivered to one of its targets.
const KNOWN_VERSION: &str = "SELECT COALESCE(MAX(v), 0) FROM ( \
     SELECT MAX(entity_version) AS v FROM sync_events \
       WHERE entity_type = $1 AND entity_key = $2 AND source_system = $3 AND position < $4 \
     UNION ALL \
     SELECT MAX(e.entity_version) AS v FROM sync_deliveries d \
       JOIN sync_targets t ON t.name = d.target \
       JOIN sync_events e ON e.position = d.position \
       WHERE d.entity_type = $1 AND d.entity_key = $2 AND d.state = 'delivered' AND t.system = $3 \
     ) known";

/// The routes a conflicting event takes ($1 entity type, $2 source system),
/// as [`ROUTE`] chooses them, read for a decision per route.
const ROUTES: &str = "SELECT c.id, c.target, c.conflict_strategy, c.business_rule, c.merge_rules \
     FROM sync_configurations c JOIN sync_targets t ON t.name = c.target \
     WHERE c.enabled AND c.mode = 'realtime' AND c.entity_type = $1 \
     AND (c.source_system = '*' OR c.source_system = $2) AND t.system <> $2 ORDER BY c.target";

#[derive(sqlx::FromRow)]
struct RouteRow {
    id: String,
    target: String,
    conflict_strategy: String,
    business_rule: Option<String>,
    merge_rules: Json<BTreeMap<String, String>>,
}

/// A delivery to write for a conflicting event.
struct SettledDelivery {
    target: String,
    configuration_id: String,
    state: DeliveryState,
    payload: Option<Map<String, Value>>,
}

/// The actor of the service's own workflow steps.
const SYNC_ACTOR: &str = "sync";

/// Settles a conflicting event for each of its routes by the route's
/// strategy: the delivery to write (pending, pending with a merged entity,
/// skipped, or held for a person), the conflict, and its first history
/// entries.
fn detect(
    position: i64,
    change: &NewEvent,
    competing: &Event,
    base: Option<Map<String, Value>>,
    routes: Vec<RouteRow>,
    now: DateTime<Utc>,
) -> Result<Vec<(SettledDelivery, Conflict, Vec<HistoryEntry>)>, SyncError> {
    let source = Side {
        system: change.source_system,
        version: change.entity_version,
        payload: change.payload.clone(),
        occurred_at: change.occurred_at,
    };
    let other = Side {
        system: competing.change.source_system,
        version: competing.change.entity_version,
        payload: competing.change.payload.clone(),
        occurred_at: competing.change.occurred_at,
    };
    let view = three_way(base.as_ref(), &source.payload, &other.payload);
    let fields = conflicting_fields(&view);
    let mut detected = Vec::with_capacity(routes.len());
    for route in routes {
        let strategy = ConflictStrategy::parse(&route.conflict_strategy)
            .map_err(|e| SyncError::corrupt("conflict_strategy", e))?;
        let rules = MergeRules(route.merge_rules.0);
        let decision = decide(
            strategy,
            route.business_rule.as_deref(),
            &rules,
            &view,
            &source,
            &other,
        );
        let (state, payload, resolution, resolved) = match &decision {
            Decision::Source => (
                DeliveryState::Pending,
                None,
                Some(Resolution::Source),
                Some(source.payload.clone()),
            ),
            Decision::Target => (
                DeliveryState::Skipped,
                None,
                Some(Resolution::Target),
                Some(other.payload.clone()),
            ),
            Decision::Merged(merged) => (
                DeliveryState::Pending,
                Some(merged.clone()),
                Some(Resolution::Merged),
                Some(merged.clone()),
            ),
            Decision::Manual => (DeliveryState::Held, None, None, None),
        };
        let auto = resolution.is_some();
        let conflict = Conflict {
            id: Uuid::now_v7().to_string(),
            position,
            target: route.target.clone(),
            configuration_id: route.id.clone(),
            entity_type: change.entity_type.to_string(),
            entity_key: change.entity_key.clone(),
            source_system: source.system,
            competing_system: other.system,
            base_version: change.base_version,
            source_version: source.version,
            competing_version: other.version,
            base: base.clone(),
            source: source.payload.clone(),
            competing: other.payload.clone(),
            conflicting_fields: fields.clone(),
            strategy,
            auto_resolved: auto,
            resolution,
            resolved,
            status: if auto {
                ConflictStatus::Closed
            } else {
                ConflictStatus::Detected
            },
            assignee: None,
            due_at: None,
            resolved_by: auto.then(|| SYNC_ACTOR.to_owned()),
            validated_by: None,
            detected_at: now,
            updated_at: now,
            closed_at: auto.then_some(now),
        };
        let mut history = vec![HistoryEntry {
            at: now,
            actor: SYNC_ACTOR.to_owned(),
            step: "detect".into(),
            from: None,
            to: ConflictStatus::Detected,
            note: Some(format!(
                "{} version {} (made on version {}) meets {} version {}",
                source.system, source.version, change.base_version, other.system, other.version
            )),
        }];
        if auto {
            history.push(HistoryEntry {
                at: now,
                actor: SYNC_ACTOR.to_owned(),
                step: "auto_resolve".into(),
                from: Some(ConflictStatus::Detected),
                to: ConflictStatus::Closed,
                note: Some(format!(
                    "{} by the {} strategy",
                    decision.resolution(),
                    strategy.as_str()
                )),
            });
        }
        detected.push((
            SettledDelivery {
                target: route.target,
                configuration_id: route.id,
                state,
                payload,
            },
            conflict,
            history,
        ));
    }
    Ok(detected)
}

const CONFLICT_COLUMNS: &str = "id, position, target, configuration_id, entity_type, entity_key, source_system, \
     competing_system, base_version, source_version, competing_version, base_payload, source_payload, \
     competing_payload, conflicting_fields, strategy, auto_resolved, resolution, resolved_payload, status, \
     assignee, due_at, resolved_by, validated_by, detected_at, updated_at, closed_at";

/// Inserts a [`Conflict`] on `$conn`.
macro_rules! insert_conflict {
    ($conn:expr, $conflict:expr) => {{
        let c: &Conflict = $conflict;
        sqlx::query(AssertSqlSafe(format!(
            "INSERT INTO sync_conflicts ({CONFLICT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, \
             $11, $12, $13, $14, $15, $16, $17, $18, $19, $20, $21, $22, $23, $24, $25, $26, $27)"
        )))
        .bind(&c.id)
        .bind(c.position)
        .bind(&c.target)
        .bind(&c.configuration_id)
        .bind(&c.entity_type)
        .bind(&c.entity_key)
        .bind(c.source_system.as_str())
        .bind(c.competing_system.as_str())
        .bind(c.base_version)
        .bind(c.source_version)
        .bind(c.competing_version)
        .bind(c.base.as_ref().map(Json))
        .bind(Json(&c.source))
        .bind(Json(&c.competing))
        .bind(Json(&c.conflicting_fields))
        .bind(c.strategy.as_str())
        .bind(c.auto_resolved)
        .bind(c.resolution.map(Resolution::as_str))
        .bind(c.resolved.as_ref().map(Json))
        .bind(c.status.as_str())
        .bind(c.assignee.as_deref())
        .bind(c.due_at)
        .bind(c.resolved_by.as_deref())
        .bind(c.validated_by.as_deref())
        .bind(c.detected_at)
        .bind(c.updated_at)
        .bind(c.closed_at)
        .execute($conn)
        .await?
    }};
}

/// Inserts a [`HistoryEntry`] of conflict `$id` on `$conn`.
macro_rules! insert_history {
    ($conn:expr, $id:expr, $entry:expr) => {{
        let entry: &HistoryEntry = $entry;
        sqlx::query(
            "INSERT INTO sync_conflict_history (conflict_id, at, actor, step, from_status, to_status, note) \
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
        )
        .bind($id)
        .bind(entry.at)
        .bind(&entry.actor)
        .bind(&entry.step)
        .bind(entry.from.map(ConflictStatus::as_str))
        .bind(entry.to.as_str())
        .bind(entry.note.as_deref())
        .execute($conn)
        .await?
    }};
}

#[derive(sqlx::FromRow)]
struct ConflictRow {
    id: String,
    position: i64,
    target: String,
    configuration_id: String,
    entity_type: String,
    entity_key: String,
    source_system: String,
    competing_system: String,
    base_version: i64,
    source_version: i64,
    competing_version: i64,
    base_payload: Option<Json<Map<String, Value>>>,
    source_payload: Json<Map<String, Value>>,
    competing_payload: Json<Map<String, Value>>,
    conflicting_fields: Json<Vec<String>>,
    strategy: String,
    auto_resolved: bool,
    resolution: Option<String>,
    resolved_payload: Option<Json<Map<String, Value>>>,
    status: String,
    assignee: Option<String>,
    due_at: Option<DateTime<Utc>>,
    resolved_by: Option<String>,
    validated_by: Option<String>,
    detected_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    closed_at: Option<DateTime<Utc>>,
}

impl TryFrom<ConflictRow> for Conflict {
    type Error = SyncError;

    fn try_from(row: ConflictRow) -> Result<Self, SyncError> {
        Ok(Conflict {
            source_system: System::parse(&row.source_system)
                .map_err(|e| SyncError::corrupt("source_system", e))?,
            competing_system: System::parse(&row.competing_system)
                .map_err(|e| SyncError::corrupt("competing_system", e))?,
            strategy: ConflictStrategy::parse(&row.strategy)
                .map_err(|e| SyncError::corrupt("strategy", e))?,
            resolution: row
                .resolution
                .as_deref()
                .map(Resolution::parse)
                .transpose()
                .map_err(|e| SyncError::corrupt("resolution", e))?,
            status: ConflictStatus::parse(&row.status)
                .map_err(|e| SyncError::corrupt("status", e))?,
            id: row.id,
            position: row.position,
            target: row.target,
            configuration_id: row.configuration_id,
            entity_type: row.entity_type,
            entity_key: row.entity_key,
            base_version: row.base_version,
            source_version: row.source_version,
            competing_version: row.competing_version,
            base: row.base_payload.map(|p| p.0),
            source: row.source_payload.0,
            competing: row.competing_payload.0,
            conflicting_fields: row.conflicting_fields.0,
            auto_resolved: row.auto_resolved,
            resolved: row.resolved_payload.map(|p| p.0),
            assignee: row.assignee,
            due_at: row.due_at,
            resolved_by: row.resolved_by,
            validated_by: row.validated_by,
            detected_at: row.detected_at,
            updated_at: row.updated_at,
            closed_at: row.closed_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct HistoryRow {
    at: DateTime<Utc>,
    actor: String,
    step: String,
    from_status: Option<String>,
    to_status: String,
    note: Option<String>,
}

impl TryFrom<HistoryRow> for HistoryEntry {
    type Error = SyncError;

    fn try_from(row: HistoryRow) -> Result<Self, SyncError> {
        Ok(HistoryEntry {
            from: row
                .from_status
                .as_deref()
                .map(ConflictStatus::parse)
                .transpose()
                .map_err(|e| SyncError::corrupt("from_status", e))?,
            to: ConflictStatus::parse(&row.to_status)
                .map_err(|e| SyncError::corrupt("to_status", e))?,
            at: row.at,
            actor: row.actor,
            step: row.step,
            note: row.note,
        })
    }
}

#[derive(sqlx::FromRow)]
struct MetricsRow {
    period_start: DateTime<Utc>,
    period_seconds: i32,
    events_recorded: i64,
    deliveries_delivered: i64,
    attempts_failed: i64,
    dead_lettered: i64,
    conflicts_detected: i64,
    conflicts_auto_resolved: i64,
    lag_p50_ms: Option<i64>,
    lag_p95_ms: Option<i64>,
    lag_p99_ms: Option<i64>,
    lag_max_ms: Option<i64>,
}

impl From<MetricsRow> for PeriodMetrics {
    fn from(row: MetricsRow) -> Self {
        let lag_ms = match (
            row.lag_p50_ms,
            row.lag_p95_ms,
            row.lag_p99_ms,
            row.lag_max_ms,
        ) {
            (Some(p50), Some(p95), Some(p99), Some(max)) => {
                Some(LagPercentiles { p50, p95, p99, max })
            }
            _ => None,
        };
        PeriodMetrics {
            period_start: row.period_start,
            period_seconds: row.period_seconds,
            events_recorded: row.events_recorded,
            deliveries_delivered: row.deliveries_delivered,
            attempts_failed: row.attempts_failed,
            dead_lettered: row.dead_lettered,
            conflicts_detected: row.conflicts_detected,
            conflicts_auto_resolved: row.conflicts_auto_resolved,
            lag_ms,
        }
    }
}

const BATCH_COLUMNS: &str = "id, configuration_id, target, entity_type, since, until, status, triggered_by, \
     rows_extracted, rows_loaded, rows_rejected, chunks_loaded, chunks_failed, errors, started_at, finished_at, \
     extract_ms, transform_ms, load_ms";

#[derive(sqlx::FromRow)]
struct BatchRow {
    id: String,
    configuration_id: String,
    target: String,
    entity_type: String,
    since: DateTime<Utc>,
    until: DateTime<Utc>,
    status: String,
    triggered_by: String,
    rows_extracted: i64,
    rows_loaded: i64,
    rows_rejected: i64,
    chunks_loaded: i32,
    chunks_failed: i32,
    errors: Json<Vec<String>>,
    started_at: DateTime<Utc>,
    finished_at: Option<DateTime<Utc>>,
    extract_ms: i64,
    transform_ms: i64,
    load_ms: i64,
}

impl TryFrom<BatchRow> for BatchRun {
    type Error = SyncError;

    fn try_from(row: BatchRow) -> Result<Self, SyncError> {
        Ok(BatchRun {
            status: BatchStatus::parse(&row.status).map_err(|e| SyncError::corrupt("status", e))?,
            id: row.id,
            configuration_id: row.configuration_id,
            target: row.target,
            entity_type: row.entity_type,
            since: row.since,
            until: row.until,
            triggered_by: row.triggered_by,
            rows_extracted: row.rows_extracted,
            rows_loaded: row.rows_loaded,
            rows_rejected: row.rows_rejected,
            chunks_loaded: row.chunks_loaded,
            chunks_failed: row.chunks_failed,
            errors: row.errors.0,
            started_at: row.started_at,
            finished_at: row.finished_at,
            extract_ms: row.extract_ms,
            transform_ms: row.transform_ms,
            load_ms: row.load_ms,
        })
    }
}

/// An event read for a subscription, with its recording transaction.
#[derive(sqlx::FromRow)]
struct StreamRow {
    #[sqlx(flatten)]
    event: EventRow,
    stream_xid: String,
}

#[derive(sqlx::FromRow)]
struct EventRow {
    position: i64,
    event_id: String,
    idempotency_key: String,
    source_system: String,
    entity_type: String,
    entity_key: String,
    operation: String,
    event_type: String,
    payload: Json<Map<String, Value>>,
    entity_version: i64,
    base_version: i64,
    occurred_at: DateTime<Utc>,
    created_at: DateTime<Utc>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
}

impl TryFrom<EventRow> for Event {
    type Error = SyncError;

    fn try_from(row: EventRow) -> Result<Self, SyncError> {
        Ok(Event {
            position: row.position,
            event_id: row.event_id,
            recorded_at: row.created_at,
            change: NewEvent {
                idempotency_key: row.idempotency_key,
                source_system: System::parse(&row.source_system)
                    .map_err(|e| SyncError::corrupt("source_system", e))?,
                entity_type: EntityType::relayed(&row.entity_type),
                entity_key: row.entity_key,
                operation: Operation::parse(&row.operation)
                    .map_err(|e| SyncError::corrupt("operation", e))?,
                event_type: row.event_type,
                payload: row.payload.0,
                entity_version: row.entity_version,
                base_version: row.base_version,
                occurred_at: row.occurred_at,
                correlation_id: row.correlation_id,
                traceparent: row.traceparent,
            },
        })
    }
}

#[derive(sqlx::FromRow)]
struct TargetRow {
    name: String,
    system: String,
    kind: String,
    url: String,
    secret: String,
    timeout_ms: i32,
    max_attempts: i32,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl TryFrom<TargetRow> for Target {
    type Error = SyncError;

    fn try_from(row: TargetRow) -> Result<Self, SyncError> {
        Ok(Target {
            system: System::parse(&row.system).map_err(|e| SyncError::corrupt("system", e))?,
            kind: TargetKind::parse(&row.kind).map_err(|e| SyncError::corrupt("kind", e))?,
            name: row.name,
            url: row.url,
            secret: row.secret,
            timeout_ms: row.timeout_ms,
            max_attempts: row.max_attempts,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct ConfigurationRow {
    id: String,
    entity_type: String,
    source_system: String,
    target: String,
    mode: String,
    conflict_strategy: String,
    business_rule: Option<String>,
    field_mapping: Json<BTreeMap<String, String>>,
    enabled: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    updated_by: String,
    merge_rules: Json<BTreeMap<String, String>>,
    batch_every_minutes: i32,
}

impl TryFrom<ConfigurationRow> for Configuration {
    type Error = SyncError;

    fn try_from(row: ConfigurationRow) -> Result<Self, SyncError> {
        Ok(Configuration {
            source: SourceFilter::parse(&row.source_system)
                .map_err(|e| SyncError::corrupt("source_system", e))?,
            mode: SyncMode::parse(&row.mode).map_err(|e| SyncError::corrupt("mode", e))?,
            strategy: ConflictStrategy::parse(&row.conflict_strategy)
                .map_err(|e| SyncError::corrupt("conflict_strategy", e))?,
            mapping: FieldMapping(row.field_mapping.0),
            merge_rules: MergeRules(row.merge_rules.0),
            batch_every_minutes: row.batch_every_minutes,
            id: row.id,
            entity_type: row.entity_type,
            target: row.target,
            business_rule: row.business_rule,
            enabled: row.enabled,
            created_at: row.created_at,
            updated_at: row.updated_at,
            updated_by: row.updated_by,
        })
    }
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    position: i64,
    target: String,
    configuration_id: String,
    entity_type: String,
    entity_key: String,
    state: String,
    attempts: i32,
    next_attempt_at: DateTime<Utc>,
    last_error: Option<String>,
    created_at: DateTime<Utc>,
    delivered_at: Option<DateTime<Utc>>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = SyncError;

    fn try_from(row: DeliveryRow) -> Result<Self, SyncError> {
        Ok(Delivery {
            state: DeliveryState::parse(&row.state).map_err(|e| SyncError::corrupt("state", e))?,
            position: row.position,
            target: row.target,
            configuration_id: row.configuration_id,
            entity_type: row.entity_type,
            entity_key: row.entity_key,
            attempts: row.attempts,
            next_attempt_at: row.next_attempt_at,
            last_error: row.last_error,
            created_at: row.created_at,
            delivered_at: row.delivered_at,
        })
    }
}

#[derive(sqlx::FromRow)]
struct AttemptRow {
    position: i64,
    target: String,
    attempt: i32,
    outcome: String,
    http_status: Option<i32>,
    error: Option<String>,
    started_at: DateTime<Utc>,
    duration_ms: i64,
}

impl TryFrom<AttemptRow> for Attempt {
    type Error = SyncError;

    fn try_from(row: AttemptRow) -> Result<Self, SyncError> {
        Ok(Attempt {
            outcome: AttemptOutcome::parse(&row.outcome)
                .map_err(|e| SyncError::corrupt("outcome", e))?,
            http_status: row.http_status.and_then(|s| u16::try_from(s).ok()),
            position: row.position,
            target: row.target,
            attempt: row.attempt,
            error: row.error,
            started_at: row.started_at,
            duration_ms: row.duration_ms,
        })
    }
}

/// A claimed delivery joined with its event, target and mapping.
#[derive(sqlx::FromRow)]
struct ClaimRow {
    #[sqlx(flatten)]
    delivery: DeliveryRow,
    event_id: String,
    idempotency_key: String,
    source_system: String,
    operation: String,
    event_type: String,
    payload: Json<Map<String, Value>>,
    entity_version: i64,
    base_version: i64,
    occurred_at: DateTime<Utc>,
    recorded_at: DateTime<Utc>,
    correlation_id: Option<String>,
    traceparent: Option<String>,
    field_mapping: Option<Json<BTreeMap<String, String>>>,
    #[sqlx(flatten)]
    target: ClaimTargetRow,
}

#[derive(sqlx::FromRow)]
struct ClaimTargetRow {
    t_system: String,
    t_kind: String,
    t_url: String,
    t_secret: String,
    t_timeout_ms: i32,
    t_max_attempts: i32,
    t_enabled: bool,
    t_created_at: DateTime<Utc>,
    t_updated_at: DateTime<Utc>,
}

const CLAIM_COLUMNS: &str = "d.position, d.target, d.configuration_id, d.entity_type, d.entity_key, d.state, \
     d.attempts, d.next_attempt_at, d.last_error, d.created_at, d.delivered_at, \
     e.event_id, e.idempotency_key, e.source_system, e.operation, e.event_type, \
     COALESCE(d.payload, e.payload) AS payload, \
     e.entity_version, e.base_version, e.occurred_at, e.created_at AS recorded_at, e.correlation_id, e.traceparent, \
     c.field_mapping, t.system AS t_system, t.kind AS t_kind, t.url AS t_url, t.secret AS t_secret, \
     t.timeout_ms AS t_timeout_ms, t.max_attempts AS t_max_attempts, t.enabled AS t_enabled, \
     t.created_at AS t_created_at, t.updated_at AS t_updated_at";

impl TryFrom<ClaimRow> for Claim {
    type Error = SyncError;

    fn try_from(row: ClaimRow) -> Result<Self, SyncError> {
        let delivery = Delivery::try_from(row.delivery)?;
        let t = row.target;
        let target = Target {
            name: delivery.target.clone(),
            system: System::parse(&t.t_system).map_err(|e| SyncError::corrupt("system", e))?,
            kind: TargetKind::parse(&t.t_kind).map_err(|e| SyncError::corrupt("kind", e))?,
            url: t.t_url,
            secret: t.t_secret,
            timeout_ms: t.t_timeout_ms,
            max_attempts: t.t_max_attempts,
            enabled: t.t_enabled,
            created_at: t.t_created_at,
            updated_at: t.t_updated_at,
        };
        let event = Event {
            position: delivery.position,
            event_id: row.event_id,
            recorded_at: row.recorded_at,
            change: NewEvent {
                idempotency_key: row.idempotency_key,
                source_system: System::parse(&row.source_system)
                    .map_err(|e| SyncError::corrupt("source_system", e))?,
                entity_type: EntityType::relayed(&delivery.entity_type),
                entity_key: delivery.entity_key.clone(),
                operation: Operation::parse(&row.operation)
                    .map_err(|e| SyncError::corrupt("operation", e))?,
                event_type: row.event_type,
                payload: row.payload.0,
                entity_version: row.entity_version,
                base_version: row.base_version,
                occurred_at: row.occurred_at,
                correlation_id: row.correlation_id,
                traceparent: row.traceparent,
            },
        };
        Ok(Claim {
            mapping: FieldMapping(row.field_mapping.map(|m| m.0).unwrap_or_default()),
            delivery,
            event,
            target,
        })
    }
}

/// A bound value of a query built at run time.
enum Param {
    Text(String),
    Int(i64),
    Time(DateTime<Utc>),
}

/// Binds `$params` (a `Vec<Param>`) to `$query` in order.
macro_rules! bind_all {
    ($query:expr, $params:expr) => {{
        let mut query = $query;
        for param in $params {
            query = match param {
                Param::Text(text) => query.bind(text),
                Param::Int(int) => query.bind(int),
                Param::Time(time) => query.bind(time),
            };
        }
        query
    }};
}

/// The WHERE clause of a list query built at run time and its values, in
/// the order they are numbered (`$1`, `$2`, …).
#[derive(Default)]
struct Conditions {
    parts: Vec<String>,
    params: Vec<Param>,
}

impl Conditions {
    /// Adds a value; its placeholder (`$n`).
    fn value(&mut self, value: Param) -> String {
        self.params.push(value);
        format!("${}", self.params.len())
    }

    /// Adds a condition.
    fn and(&mut self, condition: String) {
        self.parts.push(condition);
    }

    /// Adds `column = value` when there is a value.
    fn equal(&mut self, column: &str, value: Option<String>) {
        if let Some(value) = value {
            let at = self.value(Param::Text(value));
            self.and(format!("{column} = {at}"));
        }
    }

    /// Adds the keyset condition of a page token: rows after the last one
    /// of the previous page in `(sort, id)` order, descending or not.
    fn after<K: Into<Param>>(
        &mut self,
        sort: &str,
        id: &str,
        last: Option<(K, Param)>,
        descending: bool,
    ) {
        if let Some((key, last_id)) = last {
            let key = self.value(key.into());
            let last_id = self.value(last_id);
            let op = if descending { "<" } else { ">" };
            self.and(format!(
                "({sort} {op} {key} OR ({sort} = {key} AND {id} {op} {last_id}))"
            ));
        }
    }

    /// ` WHERE …` (nothing without conditions) and the placeholder of the
    /// row limit, which is added last.
    fn finish(&mut self, limit: Option<u32>) -> (String, String) {
        let limit = limit
            .map(|size| self.value(Param::Int(i64::from(size) + 1)))
            .unwrap_or_default();
        let clause = if self.parts.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.parts.join(" AND "))
        };
        (clause, limit)
    }
}

impl From<i64> for Param {
    fn from(value: i64) -> Self {
        Self::Int(value)
    }
}

impl From<DateTime<Utc>> for Param {
    fn from(value: DateTime<Utc>) -> Self {
        Self::Time(value)
    }
}

/// The sync tables on a `sync` database.
#[derive(Debug, Clone)]
pub struct SqlSyncStore {
    pool: PgPool,
    /// On SQLite, writers take turns here instead of in SQLite's busy
    /// handler, whose sleeps (up to 100 ms each) would dominate delivery
    /// latency under concurrent producers and deliveries.
    writers: Arc<tokio::sync::Mutex<()>>,
}

impl SqlSyncStore {
    /// A store on `pool`, whose database must be migrated.
    pub fn new(pool: PgPool) -> Self {
        Self {
            pool,
            writers: Arc::default(),
        }
    }

    /// The suffix that locks the rows a `SELECT` reads until commit:
    /// `FOR UPDATE` on PostgreSQL; nothing on SQLite, whose writers take
    /// turns.
    fn for_update(&self) -> &'static str {
        match self.pool {
            PgPool::Postgres(_) => " FOR UPDATE",
            PgPool::Sqlite(_) => "",
        }
    }

    /// The writer's turn on SQLite; nothing on PostgreSQL, whose row locks
    /// and advisory lock order the writers.
    async fn turn(&self) -> Option<tokio::sync::MutexGuard<'_, ()>> {
        match self.pool {
            PgPool::Sqlite(_) => Some(self.writers.lock().await),
            PgPool::Postgres(_) => None,
        }
    }

    /// Records events (see [`SyncStore::record`]); with `derive_versions`,
    /// each event's versions are worked out here (see
    /// [`SyncStore::record_relayed`]).
    #[tracing::instrument(name = "store.record_events", skip_all, fields(count = events.len()))]
    async fn record_with(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
        derive_versions: bool,
    ) -> Result<Vec<Recorded>, SyncError> {
        let now = stored(now);
        let (next_position, lock) = self.position_sql();
        let select_event = format!(
            "SELECT {EVENT_COLUMNS} FROM sync_events WHERE position = $1 AND created_at = $2"
        );
        // PostgreSQL stamps the recording transaction itself; on SQLite the
        // stream order is the position.
        let insert_event = match self.pool {
            PgPool::Postgres(_) => format!(
                "INSERT INTO sync_events ({EVENT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)"
            ),
            PgPool::Sqlite(_) => format!(
                "INSERT INTO sync_events ({EVENT_COLUMNS}, recorded_xid) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $1)"
            ),
        };
        let competing_sql = format!(
            "SELECT {EVENT_COLUMNS} FROM sync_events WHERE entity_type = $1 AND entity_key = $2 \
             AND source_system <> $3 AND entity_version > $4 AND position < $5 \
             ORDER BY entity_version DESC, position DESC LIMIT 1"
        );
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            if let Some(lock) = lock {
                // Every entity of the batch, in one order, so two batches
                // never wait for each other in a cycle.
                let entities: std::collections::BTreeSet<String> = events
                    .iter()
                    .map(|e| format!("{}/{}", e.entity_type, e.entity_key))
                    .collect();
                for entity in entities {
                    sqlx::query(lock).bind(entity).execute(&mut *tx).await?;
                }
            }
            let mut recorded = Vec::with_capacity(events.len());
            for mut change in events {
                change.occurred_at = stored(change.occurred_at);
                let position: i64 = sqlx::query_scalar(next_position).fetch_one(&mut *tx).await?;
                let claimed = sqlx::query(
                    "INSERT INTO sync_event_keys (idempotency_key, position, created_at) VALUES ($1, $2, $3) \
                     ON CONFLICT (idempotency_key) DO NOTHING",
                )
                .bind(&change.idempotency_key)
                .bind(position)
                .bind(now)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if claimed == 0 {
                    let (first, at): (i64, DateTime<Utc>) = sqlx::query_as(
                        "SELECT position, created_at FROM sync_event_keys WHERE idempotency_key = $1",
                    )
                    .bind(&change.idempotency_key)
                    .fetch_one(&mut *tx)
                    .await?;
                    let row: EventRow = sqlx::query_as(AssertSqlSafe(select_event.clone()))
                        .bind(first)
                        .bind(at)
                        .fetch_one(&mut *tx)
                        .await?;
                    recorded.push(Recorded { event: Event::try_from(row)?, duplicate: true, routed_to: 0, conflicts: 0 });
                    continue;
                }
                let event_id = Uuid::now_v7().to_string();
                if derive_versions {
                    // A new version of the entity, made on the newest one
                    // its source is known to have had: its own last change,
                    // or the last change delivered to it.
                    let newest: i64 = sqlx::query_scalar(
                        "SELECT COALESCE(MAX(entity_version), 0) FROM sync_events \
                         WHERE entity_type = $1 AND entity_key = $2 AND position < $3",
                    )
                    .bind(change.entity_type.as_str())
                    .bind(&change.entity_key)
                    .bind(position)
                    .fetch_one(&mut *tx)
                    .await?;
                    let known: i64 = sqlx::query_scalar(KNOWN_VERSION)
                        .bind(change.entity_type.as_str())
                        .bind(&change.entity_key)
                        .bind(change.source_system.as_str())
                        .bind(position)
                        .fetch_one(&mut *tx)
                        .await?;
                    change.entity_version = newest + 1;
                    change.base_version = known;
                }
                sqlx::query(AssertSqlSafe(insert_event.clone()))
                .bind(position)
                .bind(&event_id)
                .bind(&change.idempotency_key)
                .bind(change.source_system.as_str())
                .bind(change.entity_type.as_str())
                .bind(&change.entity_key)
                .bind(change.operation.as_str())
                .bind(&change.event_type)
                .bind(Json(&change.payload))
                .bind(change.entity_version)
                .bind(change.base_version)
                .bind(change.occurred_at)
                .bind(now)
                .bind(change.correlation_id.as_deref())
                .bind(change.traceparent.as_deref())
                .execute(&mut *tx)
                .await?;
                // A versioned change is checked against the newest version
                // another system reported since its base.
                let competing: Option<EventRow> = if change.base_version > 0 {
                    sqlx::query_as(AssertSqlSafe(competing_sql.clone()))
                        .bind(change.entity_type.as_str())
                        .bind(&change.entity_key)
                        .bind(change.source_system.as_str())
                        .bind(change.base_version)
                        .bind(position)
                        .fetch_optional(&mut *tx)
                        .await?
                } else {
                    None
                };
                let (routed, conflicts) = match competing {
                    None => {
                        let routed = sqlx::query(ROUTE)
                            .bind(position)
                            .bind(change.entity_type.as_str())
                            .bind(&change.entity_key)
                            .bind(now)
                            .bind(change.source_system.as_str())
                            .execute(&mut *tx)
                            .await?
                            .rows_affected();
                        (routed, 0)
                    }
                    Some(competing) => {
                        let competing = Event::try_from(competing)?;
                        let base: Option<Json<Map<String, Value>>> = sqlx::query_scalar(
                            "SELECT payload FROM sync_events WHERE entity_type = $1 AND entity_key = $2 \
                             AND entity_version = $3 AND position < $4 ORDER BY position DESC LIMIT 1",
                        )
                        .bind(change.entity_type.as_str())
                        .bind(&change.entity_key)
                        .bind(change.base_version)
                        .bind(position)
                        .fetch_optional(&mut *tx)
                        .await?;
                        let routes: Vec<RouteRow> = sqlx::query_as(ROUTES)
                            .bind(change.entity_type.as_str())
                            .bind(change.source_system.as_str())
                            .fetch_all(&mut *tx)
                            .await?;
                        let base = base.map(|b| b.0);
                        let detected = detect(position, &change, &competing, base, routes, now)?;
                        let count = detected.len() as u64;
                        for (delivery, conflict, history) in detected {
                            sqlx::query(
                                "INSERT INTO sync_deliveries (target, position, configuration_id, entity_type, entity_key, \
                                 state, payload, attempts, next_attempt_at, created_at) \
                                 VALUES ($1, $2, $3, $4, $5, $6, $7, 0, $8, $8)",
                            )
                            .bind(&delivery.target)
                            .bind(position)
                            .bind(&delivery.configuration_id)
                            .bind(change.entity_type.as_str())
                            .bind(&change.entity_key)
                            .bind(delivery.state.as_str())
                            .bind(delivery.payload.as_ref().map(Json))
                            .bind(now)
                            .execute(&mut *tx)
                            .await?;
                            insert_conflict!(&mut *tx, &conflict);
                            for entry in &history {
                                insert_history!(&mut *tx, &conflict.id, entry);
                            }
                        }
                        (count, count)
                    }
                };
                recorded.push(Recorded {
                    event: Event { position, event_id, change, recorded_at: now },
                    duplicate: false,
                    routed_to: u32::try_from(routed).unwrap_or(u32::MAX),
                    conflicts: u32::try_from(conflicts).unwrap_or(u32::MAX),
                });
            }
            tx.commit().await?;
            Ok(recorded)
        })
    }

    /// The statement that draws the next position, and the one that takes
    /// an entity's lock first (PostgreSQL only).
    fn position_sql(&self) -> (&'static str, Option<&'static str>) {
        match self.pool {
            PgPool::Postgres(_) => ("SELECT nextval('sync_event_position')", Some(ENTITY_LOCK)),
            PgPool::Sqlite(_) => (
                "SELECT COALESCE(MAX(position), 0) + 1 FROM sync_events",
                None,
            ),
        }
    }
}

/// A time as the databases keep it (PostgreSQL to the microsecond), so
/// what a write returns equals what a later read finds.
pub(crate) fn stored(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// The error for a write that broke a constraint, or the driver's.
fn constraint(
    error: sqlx::Error,
    unique: impl FnOnce() -> SyncError,
    foreign: impl FnOnce() -> SyncError,
) -> SyncError {
    match &error {
        sqlx::Error::Database(db) if db.kind() == ErrorKind::UniqueViolation => unique(),
        sqlx::Error::Database(db) if db.kind() == ErrorKind::ForeignKeyViolation => foreign(),
        _ => error.into(),
    }
}

#[async_trait::async_trait]
impl SyncStore for SqlSyncStore {
    async fn record(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, SyncError> {
        self.record_with(events, now, false).await
    }

    async fn record_relayed(
        &self,
        events: Vec<NewEvent>,
        now: DateTime<Utc>,
    ) -> Result<Vec<Recorded>, SyncError> {
        self.record_with(events, now, true).await
    }

    async fn event(&self, position: i64) -> Result<Event, SyncError> {
        let sql = format!("SELECT {EVENT_COLUMNS} FROM sync_events WHERE position = $1");
        let row: Option<EventRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(position).fetch_optional(pool).await?
        });
        row.ok_or(SyncError::EventNotFound(position))?.try_into()
    }

    async fn events(
        &self,
        filter: &EventFilter,
        size: u32,
        token: &str,
    ) -> Result<Page<Event>, SyncError> {
        let after = decode_token::<i64>(token)?
            .unwrap_or(0)
            .max(filter.after_position);
        let mut conditions = Conditions::default();
        let at = conditions.value(Param::Int(after));
        conditions.and(format!("position > {at}"));
        conditions.equal("entity_type", filter.entity_type.clone());
        conditions.equal("entity_key", filter.entity_key.clone());
        conditions.equal("source_system", filter.source_system.clone());
        let (clause, limit) = conditions.finish(Some(size));
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM sync_events{clause} ORDER BY position LIMIT {limit}"
        );
        let rows: Vec<EventRow> = pg_dispatch!(&self.pool, pool => {
            bind_all!(sqlx::query_as(AssertSqlSafe(sql)), conditions.params).fetch_all(pool).await?
        });
        Page::from_rows(rows, size, |row| row.position).try_map(Event::try_from)
    }

    async fn create_target(
        &self,
        target: NewTarget,
        now: DateTime<Utc>,
    ) -> Result<Target, SyncError> {
        let now = stored(now);
        let name = target.name.to_string();
        let _turn = self.turn().await;
        let inserted = pg_dispatch!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO sync_targets ({TARGET_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)"
            )))
            .bind(target.name.as_str())
            .bind(target.system.as_str())
            .bind(target.kind.as_str())
            .bind(&target.url)
            .bind(&target.secret)
            .bind(target.timeout_ms)
            .bind(target.max_attempts)
            .bind(target.enabled)
            .bind(now)
            .execute(pool)
            .await
            .map(drop)
        });
        inserted.map_err(|e| {
            constraint(
                e,
                || SyncError::TargetExists(name.clone()),
                || SyncError::TargetNotFound(name.clone()),
            )
        })?;
        self.target(&target.name).await
    }

    async fn target(&self, name: &TargetName) -> Result<Target, SyncError> {
        let sql = format!("SELECT {TARGET_COLUMNS} FROM sync_targets WHERE name = $1");
        let row: Option<TargetRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(name.as_str()).fetch_optional(pool).await?
        });
        row.ok_or_else(|| SyncError::TargetNotFound(name.to_string()))?
            .try_into()
    }

    async fn targets(&self) -> Result<Vec<Target>, SyncError> {
        let sql = format!("SELECT {TARGET_COLUMNS} FROM sync_targets ORDER BY name");
        let rows: Vec<TargetRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).fetch_all(pool).await?
        });
        rows.into_iter().map(Target::try_from).collect()
    }

    async fn update_target(
        &self,
        name: &TargetName,
        patch: TargetPatch,
        now: DateTime<Utc>,
    ) -> Result<Target, SyncError> {
        let now = stored(now);
        let select = format!(
            "SELECT {TARGET_COLUMNS} FROM sync_targets WHERE name = $1{}",
            self.for_update()
        );
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<TargetRow> = sqlx::query_as(AssertSqlSafe(select))
                .bind(name.as_str())
                .fetch_optional(&mut *tx)
                .await?;
            let mut target = Target::try_from(row.ok_or_else(|| SyncError::TargetNotFound(name.to_string()))?)?;
            if let Some(system) = patch.system { target.system = system; }
            if let Some(kind) = patch.kind { target.kind = kind; }
            if let Some(url) = patch.url { target.url = url; }
            if let Some(secret) = patch.secret { target.secret = secret; }
            if let Some(timeout) = patch.timeout_ms { target.timeout_ms = timeout; }
            if let Some(attempts) = patch.max_attempts { target.max_attempts = attempts; }
            if let Some(enabled) = patch.enabled { target.enabled = enabled; }
            target.updated_at = now;
            sqlx::query(
                "UPDATE sync_targets SET system = $2, kind = $3, url = $4, secret = $5, timeout_ms = $6, \
                 max_attempts = $7, enabled = $8, updated_at = $9 WHERE name = $1",
            )
            .bind(name.as_str())
            .bind(target.system.as_str())
            .bind(target.kind.as_str())
            .bind(&target.url)
            .bind(&target.secret)
            .bind(target.timeout_ms)
            .bind(target.max_attempts)
            .bind(target.enabled)
            .bind(now)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(target)
        })
    }

    async fn delete_target(&self, name: &TargetName) -> Result<(), SyncError> {
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let routes: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM sync_configurations WHERE target = $1")
                .bind(name.as_str())
                .fetch_one(&mut *tx)
                .await?;
            if routes > 0 {
                return Err(SyncError::FailedPrecondition(format!(
                    "target {:?} is used by {routes} configuration(s); delete them first", name.as_str()
                )));
            }
            let waiting: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sync_deliveries WHERE target = $1 AND state IN ('pending', 'in_flight', 'dead')",
            )
            .bind(name.as_str())
            .fetch_one(&mut *tx)
            .await?;
            if waiting > 0 {
                return Err(SyncError::FailedPrecondition(format!(
                    "target {:?} has {waiting} undelivered event(s) (pending or dead-lettered)", name.as_str()
                )));
            }
            let deleted = sqlx::query("DELETE FROM sync_targets WHERE name = $1")
                .bind(name.as_str())
                .execute(&mut *tx)
                .await?
                .rows_affected();
            if deleted == 0 {
                return Err(SyncError::TargetNotFound(name.to_string()));
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn create_configuration(
        &self,
        configuration: NewConfiguration,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Configuration, SyncError> {
        let now = stored(now);
        let id = Uuid::now_v7().to_string();
        let c = &configuration;
        let _turn = self.turn().await;
        let inserted = pg_dispatch!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO sync_configurations ({CONFIGURATION_COLUMNS}) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $10, $11, $12, $13)"
            )))
            .bind(&id)
            .bind(c.entity_type.as_str())
            .bind(c.source.as_str())
            .bind(c.target.as_str())
            .bind(c.mode.as_str())
            .bind(c.strategy.as_str())
            .bind(c.business_rule.as_deref())
            .bind(Json(&c.mapping.0))
            .bind(c.enabled)
            .bind(now)
            .bind(actor)
            .bind(Json(&c.merge_rules.0))
            .bind(c.batch_every_minutes)
            .execute(pool)
            .await
            .map(drop)
        });
        inserted.map_err(|e| {
            constraint(
                e,
                || SyncError::ConfigurationExists {
                    entity_type: c.entity_type.to_string(),
                    source_system: c.source.as_str().to_owned(),
                    target: c.target.to_string(),
                },
                || SyncError::TargetNotFound(c.target.to_string()),
            )
        })?;
        self.configuration(&id).await
    }

    async fn configuration(&self, id: &str) -> Result<Configuration, SyncError> {
        let sql = format!("SELECT {CONFIGURATION_COLUMNS} FROM sync_configurations WHERE id = $1");
        let row: Option<ConfigurationRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| SyncError::ConfigurationNotFound(id.to_owned()))?
            .try_into()
    }

    async fn configurations(
        &self,
        entity_type: Option<&str>,
        target: Option<&str>,
    ) -> Result<Vec<Configuration>, SyncError> {
        let mut conditions = Conditions::default();
        conditions.equal("entity_type", entity_type.map(str::to_owned));
        conditions.equal("target", target.map(str::to_owned));
        let (clause, _) = conditions.finish(None);
        let sql = format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM sync_configurations{clause} \
             ORDER BY entity_type, source_system, target"
        );
        let rows: Vec<ConfigurationRow> = pg_dispatch!(&self.pool, pool => {
            bind_all!(sqlx::query_as(AssertSqlSafe(sql)), conditions.params).fetch_all(pool).await?
        });
        rows.into_iter().map(Configuration::try_from).collect()
    }

    async fn update_configuration(
        &self,
        id: &str,
        patch: ConfigurationPatch,
        actor: &str,
        now: DateTime<Utc>,
    ) -> Result<Configuration, SyncError> {
        let now = stored(now);
        let select = format!(
            "SELECT {CONFIGURATION_COLUMNS} FROM sync_configurations WHERE id = $1{}",
            self.for_update()
        );
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<ConfigurationRow> = sqlx::query_as(AssertSqlSafe(select))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut c = Configuration::try_from(
                row.ok_or_else(|| SyncError::ConfigurationNotFound(id.to_owned()))?,
            )?;
            if let Some(mode) = patch.mode { c.mode = mode; }
            if let Some(strategy) = patch.strategy {
                c.strategy = strategy;
                // A rule belongs to the business-rule strategy only.
                if strategy != ConflictStrategy::BusinessRule && patch.business_rule.is_none() {
                    c.business_rule = None;
                }
            }
            if let Some(rule) = patch.business_rule { c.business_rule = rule; }
            if let Some(mapping) = patch.mapping { c.mapping = mapping; }
            if let Some(rules) = patch.merge_rules { c.merge_rules = rules; }
            if let Some(every) = patch.batch_every_minutes { c.batch_every_minutes = every; }
            if let Some(enabled) = patch.enabled { c.enabled = enabled; }
            routing::check_rule(c.strategy, c.business_rule.as_deref())
                .map_err(|e| SyncError::invalid("configuration.business_rule", e))?;
            c.updated_at = now;
            c.updated_by = actor.to_owned();
            sqlx::query(
                "UPDATE sync_configurations SET mode = $2, conflict_strategy = $3, business_rule = $4, \
                 field_mapping = $5, enabled = $6, updated_at = $7, updated_by = $8, merge_rules = $9, batch_every_minutes = $10 WHERE id = $1",
            )
            .bind(id)
            .bind(c.mode.as_str())
            .bind(c.strategy.as_str())
            .bind(c.business_rule.as_deref())
            .bind(Json(&c.mapping.0))
            .bind(c.enabled)
            .bind(now)
            .bind(actor)
            .bind(Json(&c.merge_rules.0))
            .bind(c.batch_every_minutes)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok(c)
        })
    }

    async fn delete_configuration(&self, id: &str) -> Result<(), SyncError> {
        let _turn = self.turn().await;
        let deleted = pg_dispatch!(&self.pool, pool => {
            sqlx::query("DELETE FROM sync_configurations WHERE id = $1")
                .bind(id)
                .execute(pool)
                .await?
                .rows_affected()
        });
        if deleted == 0 {
            return Err(SyncError::ConfigurationNotFound(id.to_owned()));
        }
        Ok(())
    }

    #[tracing::instrument(name = "store.claim_deliveries", skip_all)]
    async fn claim(&self, now: DateTime<Utc>, limit: u32) -> Result<Vec<Claim>, SyncError> {
        let lock = match self.pool {
            PgPool::Postgres(_) => " FOR UPDATE OF d SKIP LOCKED",
            PgPool::Sqlite(_) => "",
        };
        // The earliest waiting delivery of each target and entity only: an
        // earlier one pending (backing off) or in flight holds it back.
        let select = format!(
            "SELECT {CLAIM_COLUMNS} FROM sync_deliveries d \
             JOIN sync_events e ON e.position = d.position \
             JOIN sync_targets t ON t.name = d.target \
             LEFT JOIN sync_configurations c ON c.id = d.configuration_id \
             WHERE d.state = 'pending' AND d.next_attempt_at <= $1 AND t.enabled \
             AND NOT EXISTS (SELECT 1 FROM sync_deliveries p WHERE p.target = d.target \
               AND p.entity_type = d.entity_type AND p.entity_key = d.entity_key \
               AND p.position < d.position AND p.state IN ('pending', 'in_flight', 'held')) \
             ORDER BY d.position LIMIT $2{lock}"
        );
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let rows: Vec<ClaimRow> = sqlx::query_as(AssertSqlSafe(select))
                .bind(now)
                .bind(i64::from(limit))
                .fetch_all(&mut *tx)
                .await?;
            if rows.is_empty() {
                return Ok(Vec::new());
            }
            let mut claims = rows
                .into_iter()
                .map(Claim::try_from)
                .collect::<Result<Vec<_>, _>>()?;
            // One statement for the whole claim (a round trip per row
            // would dominate on PostgreSQL).
            let keys: Vec<String> = (0..claims.len())
                .map(|i| format!("(target = ${} AND position = ${})", 2 * i + 2, 2 * i + 3))
                .collect();
            let update = format!(
                "UPDATE sync_deliveries SET state = 'in_flight', attempts = attempts + 1, lease_until = $1 \
                 WHERE state = 'pending' AND ({})",
                keys.join(" OR ")
            );
            let longest = claims.iter().map(|c| c.target.timeout_ms).max().unwrap_or(0);
            let lease_until = now + chrono::Duration::milliseconds(i64::from(longest)) + LEASE_MARGIN;
            let mut query = sqlx::query(AssertSqlSafe(update)).bind(lease_until);
            for claim in &claims {
                query = query.bind(claim.delivery.target.as_str()).bind(claim.delivery.position);
            }
            query.execute(&mut *tx).await?;
            tx.commit().await?;
            for claim in &mut claims {
                claim.delivery.state = DeliveryState::InFlight;
                claim.delivery.attempts += 1;
            }
            Ok(claims)
        })
    }

    #[tracing::instrument(name = "store.finish_deliveries", skip_all, fields(count = finished.len()))]
    async fn finish(&self, finished: Vec<Finished>, now: DateTime<Utc>) -> Result<(), SyncError> {
        if finished.is_empty() {
            return Ok(());
        }
        // Every attempt in one multi-row insert; every delivered one in one
        // update; failures (rare, each with its own retry time and error)
        // one by one.
        let statuses = format!(
            "INSERT INTO sync_status (position, target, attempt, outcome, http_status, error, started_at, duration_ms) \
             VALUES {}",
            self.pool.value_rows(finished.len(), 8)
        );
        let delivered: Vec<&Attempt> = finished
            .iter()
            .map(|f| &f.attempt)
            .filter(|a| a.outcome == AttemptOutcome::Delivered)
            .collect();
        let delivered_update = (!delivered.is_empty()).then(|| {
            let keys: Vec<String> = (0..delivered.len())
                .map(|i| {
                    format!(
                        "(target = ${} AND position = ${} AND attempts = ${})",
                        3 * i + 2,
                        3 * i + 3,
                        3 * i + 4
                    )
                })
                .collect();
            format!(
                "UPDATE sync_deliveries SET state = 'delivered', delivered_at = $1, next_attempt_at = $1, \
                 lease_until = NULL, last_error = NULL WHERE state = 'in_flight' AND ({})",
                keys.join(" OR ")
            )
        });
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let mut insert = sqlx::query(AssertSqlSafe(statuses));
            for finished in &finished {
                let attempt = &finished.attempt;
                insert = insert
                    .bind(attempt.position)
                    .bind(attempt.target.as_str())
                    .bind(attempt.attempt)
                    .bind(attempt.outcome.as_str())
                    .bind(attempt.http_status.map(i32::from))
                    .bind(attempt.error.as_deref())
                    .bind(attempt.started_at)
                    .bind(attempt.duration_ms);
            }
            insert.execute(&mut *tx).await?;
            if let Some(update) = delivered_update {
                let mut query = sqlx::query(AssertSqlSafe(update)).bind(now);
                for attempt in &delivered {
                    query = query
                        .bind(attempt.target.as_str())
                        .bind(attempt.position)
                        .bind(attempt.attempt);
                }
                query.execute(&mut *tx).await?;
            }
            for finished in finished.iter().filter(|f| f.attempt.outcome != AttemptOutcome::Delivered) {
                let attempt = &finished.attempt;
                let (state, next_attempt_at) = match attempt.outcome {
                    AttemptOutcome::Retrying => {
                        (DeliveryState::Pending, finished.retry_at.unwrap_or(now))
                    }
                    _ => (DeliveryState::Dead, now),
                };
                sqlx::query(
                    "UPDATE sync_deliveries SET state = $4, next_attempt_at = $5, lease_until = NULL, \
                     last_error = $6 \
                     WHERE target = $1 AND position = $2 AND state = 'in_flight' AND attempts = $3",
                )
                .bind(&attempt.target)
                .bind(attempt.position)
                .bind(attempt.attempt)
                .bind(state.as_str())
                .bind(next_attempt_at)
                .bind(attempt.error.as_deref())
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn release_lapsed(&self, now: DateTime<Utc>) -> Result<u64, SyncError> {
        let _turn = self.turn().await;
        let released = pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "UPDATE sync_deliveries SET state = 'pending', lease_until = NULL, \
                 last_error = 'the attempt was interrupted (its dispatcher stopped); it is made again' \
                 WHERE state = 'in_flight' AND lease_until < $1",
            )
            .bind(now)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(released)
    }

    async fn deliveries(
        &self,
        filter: &DeliveryFilter,
        size: u32,
        token: &str,
    ) -> Result<Page<Delivery>, SyncError> {
        let mut conditions = Conditions::default();
        let last = decode_token::<(i64, String)>(token)?;
        conditions.after(
            "position",
            "target",
            last.map(|(p, t)| (p, Param::Text(t))),
            false,
        );
        conditions.equal("target", filter.target.clone());
        conditions.equal("state", filter.state.map(|s| s.as_str().to_owned()));
        if let Some(position) = filter.position {
            let at = conditions.value(Param::Int(position));
            conditions.and(format!("position = {at}"));
        }
        let (clause, limit) = conditions.finish(Some(size));
        let sql = format!(
            "SELECT {DELIVERY_COLUMNS} FROM sync_deliveries{clause} ORDER BY position, target LIMIT {limit}"
        );
        let rows: Vec<DeliveryRow> = pg_dispatch!(&self.pool, pool => {
            bind_all!(sqlx::query_as(AssertSqlSafe(sql)), conditions.params).fetch_all(pool).await?
        });
        Page::from_rows(rows, size, |row| (row.position, row.target.clone()))
            .try_map(Delivery::try_from)
    }

    async fn attempts(
        &self,
        position: i64,
        target: Option<&str>,
    ) -> Result<Vec<Attempt>, SyncError> {
        let rows: Vec<AttemptRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT position, target, attempt, outcome, http_status, error, started_at, duration_ms \
                 FROM sync_status WHERE position = $1 AND ($2 IS NULL OR target = $2) ORDER BY id",
            )
            .bind(position)
            .bind(target)
            .fetch_all(pool)
            .await?
        });
        rows.into_iter().map(Attempt::try_from).collect()
    }

    async fn replay(
        &self,
        target: &TargetName,
        positions: &[i64],
        now: DateTime<Utc>,
    ) -> Result<u64, SyncError> {
        self.target(target).await?;
        let mut sql = String::from(
            "UPDATE sync_deliveries SET state = 'pending', attempts = 0, lease_until = NULL, \
             next_attempt_at = $2, last_error = NULL WHERE target = $1 AND state = 'dead'",
        );
        if !positions.is_empty() {
            let list: Vec<String> = (0..positions.len())
                .map(|i| format!("${}", i + 3))
                .collect();
            sql.push_str(&format!(" AND position IN ({})", list.join(", ")));
        }
        let _turn = self.turn().await;
        let replayed = pg_dispatch!(&self.pool, pool => {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(target.as_str()).bind(now);
            for position in positions {
                query = query.bind(*position);
            }
            query.execute(pool).await?.rows_affected()
        });
        Ok(replayed)
    }

    async fn ensure_partitions(&self, through: NaiveDate) -> Result<Vec<String>, SyncError> {
        let PgPool::Postgres(pool) = &self.pool else {
            return Ok(Vec::new());
        };
        let mut added = Vec::new();
        let today = Utc::now().date_naive();
        let mut month = NaiveDate::from_ymd_opt(today.year(), today.month(), 1).unwrap_or(today);
        while month <= through {
            let Some(next) = month.checked_add_months(Months::new(1)) else {
                break;
            };
            let name = format!("sync_events_y{:04}m{:02}", month.year(), month.month());
            let exists: Option<String> = sqlx::query_scalar("SELECT to_regclass($1)::text")
                .bind(&name)
                .fetch_one(pool)
                .await?;
            if exists.is_none() {
                sqlx::query(AssertSqlSafe(format!(
                    "CREATE TABLE IF NOT EXISTS {name} PARTITION OF sync_events \
                     FOR VALUES FROM ('{month} 00:00:00+00') TO ('{next} 00:00:00+00')"
                )))
                .execute(pool)
                .await?;
                added.push(name);
            }
            month = next;
        }
        Ok(added)
    }

    async fn conflicts(
        &self,
        filter: &ConflictFilter,
        size: u32,
        token: &str,
        now: DateTime<Utc>,
    ) -> Result<(Page<Conflict>, u64), SyncError> {
        let stale_before = stored(now - STALE_AFTER);
        let mut conditions = Conditions::default();
        let last = decode_token::<(DateTime<Utc>, String)>(token)?;
        conditions.after(
            "detected_at",
            "id",
            last.map(|(at, id)| (at, Param::Text(id))),
            true,
        );
        conditions.equal("status", filter.status.map(|s| s.as_str().to_owned()));
        conditions.equal("entity_type", filter.entity_type.clone());
        conditions.equal("entity_key", filter.entity_key.clone());
        conditions.equal("assignee", filter.assignee.clone());
        if filter.stale_only {
            let before = conditions.value(Param::Time(stale_before));
            conditions.and(format!("status <> 'closed' AND detected_at < {before}"));
        }
        let (clause, limit) = conditions.finish(Some(size));
        let sql = format!(
            "SELECT {CONFLICT_COLUMNS} FROM sync_conflicts{clause} \
             ORDER BY detected_at DESC, id DESC LIMIT {limit}"
        );
        let params = conditions.params;
        let (rows, stale): (Vec<ConflictRow>, i64) = pg_dispatch!(&self.pool, pool => {
            let rows = bind_all!(sqlx::query_as(AssertSqlSafe(sql)), params).fetch_all(pool).await?;
            let stale = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sync_conflicts WHERE status <> 'closed' AND detected_at < $1",
            )
            .bind(stale_before)
            .fetch_one(pool)
            .await?;
            (rows, stale)
        });
        let page = Page::from_rows(rows, size, |row| (row.detected_at, row.id.clone()))
            .try_map(Conflict::try_from)?;
        Ok((page, u64::try_from(stale).unwrap_or_default()))
    }

    async fn conflict(&self, id: &str) -> Result<(Conflict, Vec<HistoryEntry>), SyncError> {
        let sql = format!("SELECT {CONFLICT_COLUMNS} FROM sync_conflicts WHERE id = $1");
        let (row, history): (Option<ConflictRow>, Vec<HistoryRow>) = pg_dispatch!(&self.pool, pool => {
            let row = sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?;
            let history = sqlx::query_as(
                "SELECT at, actor, step, from_status, to_status, note FROM sync_conflict_history \
                 WHERE conflict_id = $1 ORDER BY id",
            )
            .bind(id)
            .fetch_all(pool)
            .await?;
            (row, history)
        });
        let conflict =
            Conflict::try_from(row.ok_or_else(|| SyncError::ConflictNotFound(id.to_owned()))?)?;
        let history = history
            .into_iter()
            .map(HistoryEntry::try_from)
            .collect::<Result<_, _>>()?;
        Ok((conflict, history))
    }

    #[tracing::instrument(name = "store.advance_conflict", skip_all, fields(step = action.step().as_str()))]
    async fn advance(
        &self,
        id: &str,
        action: Action,
        actor: &str,
        note: Option<String>,
        now: DateTime<Utc>,
    ) -> Result<Conflict, SyncError> {
        let now = stored(now);
        let select = format!(
            "SELECT {CONFLICT_COLUMNS} FROM sync_conflicts WHERE id = $1{}",
            self.for_update()
        );
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            let row: Option<ConflictRow> = sqlx::query_as(AssertSqlSafe(select))
                .bind(id)
                .fetch_optional(&mut *tx)
                .await?;
            let mut conflict = Conflict::try_from(row.ok_or_else(|| SyncError::ConflictNotFound(id.to_owned()))?)?;
            let entry = apply(&mut conflict, action, actor, note, now).map_err(|refusal| match refusal {
                Refusal::NotNow(reason) => SyncError::FailedPrecondition(reason),
                Refusal::Invalid(field, reason) => SyncError::invalid(field, reason),
            })?;
            sqlx::query(
                "UPDATE sync_conflicts SET status = $2, assignee = $3, due_at = $4, resolution = $5, \
                 resolved_payload = $6, resolved_by = $7, validated_by = $8, updated_at = $9, closed_at = $10 \
                 WHERE id = $1",
            )
            .bind(id)
            .bind(conflict.status.as_str())
            .bind(conflict.assignee.as_deref())
            .bind(conflict.due_at)
            .bind(conflict.resolution.map(Resolution::as_str))
            .bind(conflict.resolved.as_ref().map(Json))
            .bind(conflict.resolved_by.as_deref())
            .bind(conflict.validated_by.as_deref())
            .bind(now)
            .bind(conflict.closed_at)
            .execute(&mut *tx)
            .await?;
            insert_history!(&mut *tx, id, &entry);
            if conflict.status == ConflictStatus::Closed {
                // The held delivery goes out with the resolved entity; the
                // entity's later events follow it.
                sqlx::query(
                    "UPDATE sync_deliveries SET state = 'pending', payload = $3, next_attempt_at = $4 \
                     WHERE target = $1 AND position = $2 AND state = 'held'",
                )
                .bind(&conflict.target)
                .bind(conflict.position)
                .bind(conflict.resolved.as_ref().map(Json))
                .bind(now)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(conflict)
        })
    }

    async fn stream_cursor(&self, after: Option<i64>) -> Result<StreamCursor, SyncError> {
        let row: Option<(String, i64)> = match (&self.pool, after) {
            (_, Some(0)) => return Ok(StreamCursor::START),
            (PgPool::Postgres(pool), None) => Some(
                sqlx::query_as(
                    "SELECT (pg_snapshot_xmin(pg_current_snapshot())::text::numeric - 1)::text, \
                     9223372036854775807::bigint",
                )
                .fetch_one(pool)
                .await?,
            ),
            (PgPool::Sqlite(pool), None) => Some(
                sqlx::query_as(
                    "SELECT CAST(COALESCE(MAX(position), 0) AS TEXT), COALESCE(MAX(position), 0) FROM sync_events",
                )
                .fetch_one(pool)
                .await?,
            ),
            (PgPool::Postgres(pool), Some(position)) => {
                sqlx::query_as("SELECT recorded_xid::text, position FROM sync_events WHERE position = $1")
                    .bind(position)
                    .fetch_optional(pool)
                    .await?
            }
            (PgPool::Sqlite(pool), Some(position)) => {
                sqlx::query_as(
                    "SELECT CAST(recorded_xid AS TEXT), position FROM sync_events WHERE position = $1",
                )
                .bind(position)
                .fetch_optional(pool)
                .await?
            }
        };
        let (xid, position) = row.ok_or(SyncError::EventNotFound(after.unwrap_or_default()))?;
        let xid = xid
            .parse()
            .map_err(|e| SyncError::corrupt("recorded_xid", e))?;
        Ok(StreamCursor { xid, position })
    }

    async fn stream(
        &self,
        after: StreamCursor,
        entity_types: &[String],
        limit: u32,
    ) -> Result<Vec<(Event, StreamCursor)>, SyncError> {
        let types = if entity_types.is_empty() {
            String::new()
        } else {
            let list: Vec<String> = (0..entity_types.len())
                .map(|i| format!("${}", i + 4))
                .collect();
            format!(" AND entity_type IN ({})", list.join(", "))
        };
        let sql = match self.pool {
            // Only transactions older than every one still running: the
            // set below that line no longer changes.
            PgPool::Postgres(_) => format!(
                "SELECT {EVENT_COLUMNS}, recorded_xid::text AS stream_xid FROM sync_events \
                 WHERE recorded_xid < pg_snapshot_xmin(pg_current_snapshot()) \
                 AND (recorded_xid, position) > ($1::text::xid8, $2){types} \
                 ORDER BY recorded_xid, position LIMIT $3"
            ),
            PgPool::Sqlite(_) => format!(
                "SELECT {EVENT_COLUMNS}, CAST(recorded_xid AS TEXT) AS stream_xid FROM sync_events \
                 WHERE (recorded_xid, position) > ($1, $2){types} \
                 ORDER BY recorded_xid, position LIMIT $3"
            ),
        };
        let rows: Vec<StreamRow> = pg_dispatch!(&self.pool, pool => {
            // The transaction id travels as text (xid8 on PostgreSQL).
            let mut query = sqlx::query_as(AssertSqlSafe(sql))
                .bind(after.xid.to_string())
                .bind(after.position)
                .bind(i64::from(limit));
            for entity_type in entity_types {
                query = query.bind(entity_type.as_str());
            }
            query.fetch_all(pool).await?
        });
        rows.into_iter()
            .map(|row| {
                let xid = row
                    .stream_xid
                    .parse()
                    .map_err(|e| SyncError::corrupt("recorded_xid", e))?;
                let event = Event::try_from(row.event)?;
                let cursor = StreamCursor {
                    xid,
                    position: event.position,
                };
                Ok((event, cursor))
            })
            .collect()
    }

    async fn record_metrics(
        &self,
        start: DateTime<Utc>,
        seconds: i32,
        now: DateTime<Utc>,
    ) -> Result<PeriodMetrics, SyncError> {
        let start = stored(start);
        let end = start + chrono::Duration::seconds(i64::from(seconds));
        let (events, outcomes, conflicts, lags): (
            i64,
            Vec<(String, i64)>,
            (i64, i64),
            Vec<(DateTime<Utc>, DateTime<Utc>)>,
        ) = pg_dispatch!(&self.pool, pool => {
            let events: i64 = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sync_events WHERE created_at >= $1 AND created_at < $2",
            )
            .bind(start)
            .bind(end)
            .fetch_one(pool)
            .await?;
            let outcomes: Vec<(String, i64)> = sqlx::query_as(
                "SELECT outcome, COUNT(*) FROM sync_status WHERE started_at >= $1 AND started_at < $2 GROUP BY outcome",
            )
            .bind(start)
            .bind(end)
            .fetch_all(pool)
            .await?;
            let conflicts: (i64, i64) = sqlx::query_as(
                "SELECT COUNT(*), COALESCE(SUM(CASE WHEN auto_resolved THEN 1 ELSE 0 END), 0) \
                 FROM sync_conflicts WHERE detected_at >= $1 AND detected_at < $2",
            )
            .bind(start)
            .bind(end)
            .fetch_one(pool)
            .await?;
            let lags: Vec<(DateTime<Utc>, DateTime<Utc>)> = sqlx::query_as(
                "SELECT d.delivered_at, e.occurred_at FROM sync_deliveries d \
                 JOIN sync_events e ON e.position = d.position \
                 WHERE d.state = 'delivered' AND d.delivered_at >= $1 AND d.delivered_at < $2",
            )
            .bind(start)
            .bind(end)
            .fetch_all(pool)
            .await?;
            (events, outcomes, conflicts, lags)
        });
        let count = |outcome: &str| {
            outcomes
                .iter()
                .find(|(o, _)| o == outcome)
                .map_or(0, |(_, n)| *n)
        };
        let figures = PeriodMetrics {
            period_start: start,
            period_seconds: seconds,
            events_recorded: events,
            deliveries_delivered: i64::try_from(lags.len()).unwrap_or(i64::MAX),
            attempts_failed: count("retrying") + count("dead_lettered"),
            dead_lettered: count("dead_lettered"),
            conflicts_detected: conflicts.0,
            conflicts_auto_resolved: conflicts.1,
            lag_ms: percentiles(
                lags.iter()
                    .map(|(delivered, occurred)| (*delivered - *occurred).num_milliseconds().max(0))
                    .collect(),
            ),
        };
        let lag = figures.lag_ms;
        let turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "INSERT INTO sync_metrics (kind, period_start, period_seconds, events_recorded, deliveries_delivered, \
                 attempts_failed, dead_lettered, conflicts_detected, conflicts_auto_resolved, lag_p50_ms, lag_p95_ms, \
                 lag_p99_ms, lag_max_ms, recorded_at) VALUES ('realtime', $1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13) \
                 ON CONFLICT (kind, period_start, scope) DO NOTHING",
            )
            .bind(start)
            .bind(seconds)
            .bind(figures.events_recorded)
            .bind(figures.deliveries_delivered)
            .bind(figures.attempts_failed)
            .bind(figures.dead_lettered)
            .bind(figures.conflicts_detected)
            .bind(figures.conflicts_auto_resolved)
            .bind(lag.map(|l| l.p50))
            .bind(lag.map(|l| l.p95))
            .bind(lag.map(|l| l.p99))
            .bind(lag.map(|l| l.max))
            .bind(stored(now))
            .execute(pool)
            .await?;
        });
        drop(turn);
        self.metrics(start, start + chrono::Duration::seconds(1))
            .await?
            .pop()
            .ok_or_else(|| SyncError::corrupt("sync_metrics", "the period just written is missing"))
    }

    async fn metrics(
        &self,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
    ) -> Result<Vec<PeriodMetrics>, SyncError> {
        let rows: Vec<MetricsRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(
                "SELECT period_start, period_seconds, events_recorded, deliveries_delivered, attempts_failed, \
                 dead_lettered, conflicts_detected, conflicts_auto_resolved, lag_p50_ms, lag_p95_ms, lag_p99_ms, \
                 lag_max_ms FROM sync_metrics WHERE kind = 'realtime' AND scope = '' AND period_start >= $1 AND period_start < $2 \
                 ORDER BY period_start",
            )
            .bind(stored(since))
            .bind(stored(until))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(PeriodMetrics::from).collect())
    }

    async fn backlog(&self, now: DateTime<Utc>) -> Result<Backlog, SyncError> {
        let (counts, oldest): (Vec<(String, i64)>, Option<DateTime<Utc>>) = pg_dispatch!(&self.pool, pool => {
            let counts = sqlx::query_as(
                "SELECT state, COUNT(*) FROM sync_deliveries \
                 WHERE state IN ('pending', 'in_flight', 'held', 'dead') GROUP BY state",
            )
            .fetch_all(pool)
            .await?;
            let oldest = sqlx::query_scalar(
                "SELECT MIN(created_at) FROM sync_deliveries WHERE state = 'pending'",
            )
            .fetch_one(pool)
            .await?;
            (counts, oldest)
        });
        let count = |state: &str| {
            counts
                .iter()
                .find(|(s, _)| s == state)
                .map_or(0, |(_, n)| *n)
        };
        Ok(Backlog {
            pending: count("pending"),
            in_flight: count("in_flight"),
            held: count("held"),
            dead_lettered: count("dead"),
            oldest_pending_ms: oldest.map_or(0, |at| (now - at).num_milliseconds().max(0)),
        })
    }

    #[tracing::instrument(name = "store.enforce_retention", skip_all)]
    async fn enforce_retention(
        &self,
        retention: Retention,
        now: DateTime<Utc>,
    ) -> Result<RetentionReport, SyncError> {
        let month_start = |months: u32| {
            let today = now.date_naive();
            NaiveDate::from_ymd_opt(today.year(), today.month(), 1)
                .and_then(|first| first.checked_sub_months(Months::new(months)))
                .unwrap_or(today)
                .and_hms_opt(0, 0, 0)
                .unwrap_or_default()
                .and_utc()
        };
        // Everything recorded before these instants has aged out.
        let hot_cutoff = month_start(retention.hot_months);
        let total_cutoff = month_start(retention.total_months);
        let metrics_cutoff = month_start(retention.metrics_months);
        let mut report = RetentionReport::default();
        if let PgPool::Postgres(pool) = &self.pool {
            // Attached monthly partitions whose month ended before the hot
            // cut-off are detached; detached ones past the total retention
            // are dropped. Names carry the month (sync_events_y2026m01).
            let attached: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 JOIN pg_class p ON p.oid = i.inhparent WHERE p.relname = 'sync_events'",
            )
            .fetch_all(pool)
            .await?;
            let archived: Vec<String> = sqlx::query_scalar(
                "SELECT c.relname::text FROM pg_class c WHERE c.relkind = 'r' \
                 AND c.relname ~ '^sync_events_y[0-9]{4}m[0-9]{2}$' \
                 AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)",
            )
            .fetch_all(pool)
            .await?;
            for name in attached {
                if partition_end(&name).is_some_and(|end| end <= hot_cutoff) {
                    sqlx::query(AssertSqlSafe(format!(
                        "ALTER TABLE sync_events DETACH PARTITION {name}"
                    )))
                    .execute(pool)
                    .await?;
                    report.detached.push(name);
                }
            }
            for name in archived.iter().chain(report.detached.iter()) {
                if partition_end(name).is_some_and(|end| end <= total_cutoff) {
                    sqlx::query(AssertSqlSafe(format!("DROP TABLE {name}")))
                        .execute(pool)
                        .await?;
                    report.dropped.push(name.clone());
                }
            }
        }
        let _turn = self.turn().await;
        // Rows outside monthly partitions (SQLite; PostgreSQL's default
        // partition) leave the hot table at the hot cut-off, with the keys
        // that deduplicated them and their finished deliveries; attempts
        // are kept for the whole retention.
        let deleted = pg_dispatch!(&self.pool, pool => {
            let mut deleted = 0;
            for (sql, cutoff) in [
                (
                    match self.pool {
                        PgPool::Postgres(_) => "DELETE FROM sync_events_default WHERE created_at < $1",
                        PgPool::Sqlite(_) => "DELETE FROM sync_events WHERE created_at < $1",
                    },
                    hot_cutoff,
                ),
                ("DELETE FROM sync_event_keys WHERE created_at < $1", hot_cutoff),
                (
                    "DELETE FROM sync_deliveries WHERE created_at < $1 AND state IN ('delivered', 'skipped')",
                    hot_cutoff,
                ),
                ("DELETE FROM sync_status WHERE started_at < $1", total_cutoff),
                ("DELETE FROM sync_metrics WHERE period_start < $1", metrics_cutoff),
            ] {
                deleted += sqlx::query(sql).bind(cutoff).execute(pool).await?.rows_affected();
            }
            deleted
        });
        report.deleted_rows = deleted;
        Ok(report)
    }

    async fn create_batch_run(&self, run: &BatchRun) -> Result<(), SyncError> {
        let _turn = self.turn().await;
        let inserted = pg_dispatch!(&self.pool, pool => {
            sqlx::query(AssertSqlSafe(format!(
                "INSERT INTO sync_batch_runs ({BATCH_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, \
                 $12, $13, $14, $15, $16, $17, $18, $19)"
            )))
            .bind(&run.id)
            .bind(&run.configuration_id)
            .bind(&run.target)
            .bind(&run.entity_type)
            .bind(stored(run.since))
            .bind(stored(run.until))
            .bind(run.status.as_str())
            .bind(&run.triggered_by)
            .bind(run.rows_extracted)
            .bind(run.rows_loaded)
            .bind(run.rows_rejected)
            .bind(run.chunks_loaded)
            .bind(run.chunks_failed)
            .bind(Json(&run.errors))
            .bind(stored(run.started_at))
            .bind(run.finished_at.map(stored))
            .bind(run.extract_ms)
            .bind(run.transform_ms)
            .bind(run.load_ms)
            .execute(pool)
            .await
            .map(drop)
        });
        inserted.map_err(|e| {
            constraint(
                e,
                || SyncError::FailedPrecondition("a batch run of this route is under way".into()),
                || SyncError::ConfigurationNotFound(run.configuration_id.clone()),
            )
        })
    }

    async fn save_batch_run(&self, run: &BatchRun) -> Result<(), SyncError> {
        let _turn = self.turn().await;
        pg_dispatch!(&self.pool, pool => {
            let mut tx = pool.begin_write().await?;
            sqlx::query(
                "UPDATE sync_batch_runs SET status = $2, rows_extracted = $3, rows_loaded = $4, rows_rejected = $5, \
                 chunks_loaded = $6, chunks_failed = $7, errors = $8, finished_at = $9, extract_ms = $10, \
                 transform_ms = $11, load_ms = $12 WHERE id = $1",
            )
            .bind(&run.id)
            .bind(run.status.as_str())
            .bind(run.rows_extracted)
            .bind(run.rows_loaded)
            .bind(run.rows_rejected)
            .bind(run.chunks_loaded)
            .bind(run.chunks_failed)
            .bind(Json(&run.errors))
            .bind(run.finished_at.map(stored))
            .bind(run.extract_ms)
            .bind(run.transform_ms)
            .bind(run.load_ms)
            .execute(&mut *tx)
            .await?;
            if let Some(finished) = run.finished_at {
                let seconds = i32::try_from((finished - run.started_at).num_seconds().max(0)).unwrap_or(i32::MAX);
                sqlx::query(
                    "INSERT INTO sync_metrics (kind, scope, period_start, period_seconds, events_recorded, \
                     deliveries_delivered, attempts_failed, dead_lettered, conflicts_detected, conflicts_auto_resolved, \
                     rows_extracted, rows_loaded, rows_rejected, extract_ms, transform_ms, load_ms, recorded_at) \
                     VALUES ('batch', $1, $2, $3, 0, 0, $4, 0, 0, 0, $5, $6, $7, $8, $9, $10, $11) \
                     ON CONFLICT (kind, period_start, scope) DO NOTHING",
                )
                .bind(&run.id)
                .bind(stored(run.started_at))
                .bind(seconds)
                .bind(i64::from(run.chunks_failed))
                .bind(run.rows_extracted)
                .bind(run.rows_loaded)
                .bind(run.rows_rejected)
                .bind(run.extract_ms)
                .bind(run.transform_ms)
                .bind(run.load_ms)
                .bind(stored(finished))
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            Ok(())
        })
    }

    async fn batch_run(&self, id: &str) -> Result<BatchRun, SyncError> {
        let sql = format!("SELECT {BATCH_COLUMNS} FROM sync_batch_runs WHERE id = $1");
        let row: Option<BatchRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql)).bind(id).fetch_optional(pool).await?
        });
        row.ok_or_else(|| SyncError::BatchRunNotFound(id.to_owned()))?
            .try_into()
    }

    async fn batch_runs(
        &self,
        configuration_id: Option<&str>,
        size: u32,
        token: &str,
    ) -> Result<Page<BatchRun>, SyncError> {
        let mut conditions = Conditions::default();
        let last = decode_token::<(DateTime<Utc>, String)>(token)?;
        conditions.after(
            "started_at",
            "id",
            last.map(|(at, id)| (at, Param::Text(id))),
            true,
        );
        conditions.equal("configuration_id", configuration_id.map(str::to_owned));
        let (clause, limit) = conditions.finish(Some(size));
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM sync_batch_runs{clause} ORDER BY started_at DESC, id DESC LIMIT {limit}"
        );
        let rows: Vec<BatchRow> = pg_dispatch!(&self.pool, pool => {
            bind_all!(sqlx::query_as(AssertSqlSafe(sql)), conditions.params).fetch_all(pool).await?
        });
        Page::from_rows(rows, size, |row| (row.started_at, row.id.clone()))
            .try_map(BatchRun::try_from)
    }

    async fn last_batch_run(
        &self,
        configuration_id: &str,
    ) -> Result<(Option<BatchRun>, bool), SyncError> {
        let sql = format!(
            "SELECT {BATCH_COLUMNS} FROM sync_batch_runs WHERE configuration_id = $1 \
             AND status IN ('succeeded', 'partial') ORDER BY until DESC LIMIT 1"
        );
        let (row, running): (Option<BatchRow>, i64) = pg_dispatch!(&self.pool, pool => {
            let row = sqlx::query_as(AssertSqlSafe(sql)).bind(configuration_id).fetch_optional(pool).await?;
            let running = sqlx::query_scalar(
                "SELECT COUNT(*) FROM sync_batch_runs WHERE configuration_id = $1 AND status = 'running'",
            )
            .bind(configuration_id)
            .fetch_one(pool)
            .await?;
            (row, running)
        });
        Ok((row.map(BatchRun::try_from).transpose()?, running > 0))
    }

    async fn fail_interrupted_batch_runs(&self, now: DateTime<Utc>) -> Result<u64, SyncError> {
        let _turn = self.turn().await;
        let failed = pg_dispatch!(&self.pool, pool => {
            sqlx::query(
                "UPDATE sync_batch_runs SET status = 'failed', finished_at = $1 WHERE status = 'running'",
            )
            .bind(stored(now))
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(failed)
    }

    async fn batch_extract(
        &self,
        entity_type: &str,
        source: SourceFilter,
        exclude: System,
        since: DateTime<Utc>,
        until: DateTime<Utc>,
        after_position: i64,
        limit: u32,
    ) -> Result<Vec<Event>, SyncError> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM sync_events WHERE entity_type = $1 AND position > $2 \
             AND created_at >= $3 AND created_at < $4 AND ($5 = '*' OR source_system = $5) \
             AND source_system <> $6 ORDER BY position LIMIT $7"
        );
        // Planned for each chunk's own values, not once for all: a generic
        // plan scans the whole time range by `created_at` and sorts it for
        // every chunk (quadratic over a large run), where the values let
        // PostgreSQL walk the position index from where the last chunk ended.
        let rows: Vec<EventRow> = pg_dispatch!(&self.pool, pool => {
            sqlx::query_as(AssertSqlSafe(sql))
                .persistent(false)
                .bind(entity_type)
                .bind(after_position)
                .bind(stored(since))
                .bind(stored(until))
                .bind(source.as_str())
                .bind(exclude.as_str())
                .bind(i64::from(limit))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(Event::try_from).collect()
    }
}

/// The first instant after the month a partition named
/// `sync_events_yYYYYmMM` holds.
fn partition_end(name: &str) -> Option<DateTime<Utc>> {
    let rest = name.strip_prefix("sync_events_y")?;
    let (year, month) = rest.split_once('m')?;
    NaiveDate::from_ymd_opt(year.parse().ok()?, month.parse().ok()?, 1)?
        .checked_add_months(Months::new(1))?
        .and_hms_opt(0, 0, 0)
        .map(|t| t.and_utc())
}
