//! The `harsha.sync.v1.SyncService` server: converts requests into
//! validated domain values (naming the field that is wrong), calls the
//! store, converts results back, and maps [`SyncError`] to a gRPC status in
//! one place.

use std::{
    collections::BTreeMap,
    sync::{Arc, OnceLock},
};

use chrono::Utc;
use harsha_proto::{
    convert::{
        json_to_struct, json_to_value, struct_to_json, timestamp_from_proto, timestamp_to_proto,
        value_to_json,
    },
    harsha::sync::v1::{self as pb, sync_service_server::SyncService},
    metadata::actor_name,
};
use harsha_store::{page::page_size, status::store_status};
use tokio::sync::Notify;
use tonic::{Code, Request, Response, Status};
use tonic_types::{ErrorDetails, StatusExt};

pub use harsha_proto::harsha::sync::v1::sync_service_server::SyncServiceServer;

use crate::{
    SyncError, SyncStore,
    domain::{
        Attempt, AttemptOutcome, Configuration, ConfigurationPatch, Conflict, ConflictStatus,
        ConflictStrategy, Delivery, DeliveryState, EntityType, Event, FieldMapping, MergeRules,
        NewConfiguration, NewEvent, NewTarget, Operation, Resolution, SourceFilter, SyncMode,
        System, Target, TargetKind, TargetName, TargetPatch,
        batch::{BatchRun, BatchStatus},
        conflict::{Action, ChangedIn, HistoryEntry, Pick},
        metrics::{PeriodMetrics, auto_resolved_share},
        routing,
    },
    store::{ConflictFilter, DeliveryFilter, EventFilter},
};

/// Where the store appears once the database is connected and migrated;
/// until then every call answers `UNAVAILABLE`.
pub type StoreSlot = Arc<OnceLock<Arc<dyn SyncStore>>>;

/// The Sync gRPC service.
#[derive(Clone)]
pub struct SyncGrpc {
    store: StoreSlot,
    recorded: Arc<Notify>,
}

impl SyncGrpc {
    /// A service reading its store from `store`, notifying `recorded` when
    /// it records events (the dispatcher waits on it).
    pub fn new(store: StoreSlot, recorded: Arc<Notify>) -> Self {
        Self { store, recorded }
    }

    /// A service on a store that is ready now.
    pub fn with_store(store: Arc<dyn SyncStore>, recorded: Arc<Notify>) -> Self {
        let slot = StoreSlot::default();
        let _ = slot.set(store);
        Self::new(slot, recorded)
    }

    /// The tonic server for this service.
    pub fn into_server(self) -> SyncServiceServer<Self> {
        SyncServiceServer::new(self)
    }

    fn store(&self) -> Result<&Arc<dyn SyncStore>, SyncError> {
        self.store.get().ok_or(SyncError::NotReady)
    }
}

impl From<SyncError> for Status {
    fn from(error: SyncError) -> Self {
        let message = error.to_string();
        match error {
            SyncError::InvalidArgument { field, reason } => Status::with_error_details(
                Code::InvalidArgument,
                message,
                ErrorDetails::with_bad_request_violation(field, reason),
            ),
            SyncError::EventNotFound(_)
            | SyncError::TargetNotFound(_)
            | SyncError::ConfigurationNotFound(_)
            | SyncError::ConflictNotFound(_)
            | SyncError::BatchRunNotFound(_) => Status::not_found(message),
            SyncError::TargetExists(_) | SyncError::ConfigurationExists { .. } => {
                Status::already_exists(message)
            }
            SyncError::FailedPrecondition(_) => Status::failed_precondition(message),
            SyncError::NotReady => Status::unavailable(message),
            SyncError::Store(store) => store_status("sync", &store),
        }
    }
}

type RpcResult<T> = Result<Response<T>, Status>;

fn field<E: std::fmt::Display>(name: &'static str) -> impl FnOnce(E) -> SyncError {
    move |error| SyncError::invalid(name, error)
}

/// Events read from the store at a time for a subscription.
const SUBSCRIPTION_PAGE: u32 = 500;
/// How long an idle subscription waits before looking for new events.
const SUBSCRIPTION_POLL: std::time::Duration = std::time::Duration::from_millis(100);

fn field_at<E: std::fmt::Display>(name: &'static str, index: usize) -> impl FnOnce(E) -> SyncError {
    move |error| SyncError::invalid(format!("{name}[{index}]"), error)
}

/// A wire time that may be absent; a present one must be valid.
fn optional_time(
    at: Option<prost_types::Timestamp>,
    name: &'static str,
) -> Result<Option<chrono::DateTime<Utc>>, SyncError> {
    at.map(|at| {
        timestamp_from_proto(&at)
            .map(|t| t.and_utc())
            .ok_or_else(|| SyncError::invalid(name, "not a valid time"))
    })
    .transpose()
}

fn optional(value: &str) -> Option<String> {
    (!value.is_empty()).then(|| value.to_owned())
}

fn operation_from(value: i32) -> Result<Operation, SyncError> {
    match pb::Operation::try_from(value) {
        Ok(pb::Operation::Create) => Ok(Operation::Create),
        Ok(pb::Operation::Update) => Ok(Operation::Update),
        Ok(pb::Operation::Delete) => Ok(Operation::Delete),
        Ok(pb::Operation::Unspecified) => Err(SyncError::invalid(
            "operation",
            "an operation is required: OPERATION_CREATE, OPERATION_UPDATE or OPERATION_DELETE",
        )),
        Err(_) => Err(SyncError::invalid(
            "operation",
            format!("{value} is not an operation"),
        )),
    }
}

fn operation_to(operation: Operation) -> pb::Operation {
    match operation {
        Operation::Create => pb::Operation::Create,
        Operation::Update => pb::Operation::Update,
        Operation::Delete => pb::Operation::Delete,
    }
}

/// An event on the wire.
pub(crate) fn event_to_proto(event: Event) -> pb::Event {
    let change = event.change;
    pb::Event {
        position: event.position,
        event_id: event.event_id,
        idempotency_key: change.idempotency_key,
        source_system: change.source_system.as_str().to_owned(),
        entity_type: change.entity_type.to_string(),
        entity_key: change.entity_key,
        operation: operation_to(change.operation).into(),
        event_type: change.event_type,
        payload: Some(json_to_struct(&change.payload)),
        entity_version: change.entity_version,
        base_version: change.base_version,
        occurred_at: Some(timestamp_to_proto(change.occurred_at)),
        recorded_at: Some(timestamp_to_proto(event.recorded_at)),
        correlation_id: change.correlation_id.unwrap_or_default(),
    }
}

fn new_event(request: pb::PublishEventRequest) -> Result<NewEvent, SyncError> {
    let now = Utc::now();
    let source_system = System::parse(&request.source_system).map_err(field("source_system"))?;
    let entity_type = EntityType::parse(&request.entity_type).map_err(field("entity_type"))?;
    let operation = operation_from(request.operation)?;
    let payload = match request.payload {
        Some(payload) => struct_to_json(payload).map_err(|e| SyncError::invalid("payload", e))?,
        None if operation == Operation::Delete => serde_json::Map::new(),
        None => {
            return Err(SyncError::invalid(
                "payload",
                "a payload is required for a create or an update",
            ));
        }
    };
    let occurred_at = optional_time(request.occurred_at, "occurred_at")?.unwrap_or(now);
    let event_type = if request.event_type.is_empty() {
        format!(
            "{}.{}.{}",
            source_system.as_str(),
            entity_type.as_str().to_lowercase(),
            operation.as_str()
        )
    } else {
        request.event_type
    };
    let event = NewEvent {
        idempotency_key: request.idempotency_key,
        source_system,
        entity_type,
        entity_key: request.entity_key,
        operation,
        event_type,
        payload,
        entity_version: request.entity_version,
        base_version: request.base_version,
        occurred_at,
        correlation_id: optional(&request.correlation_id),
        // The PublishEvent call's own span: deliveries continue its trace.
        traceparent: harsha_store::outbox::current_traceparent(),
    };
    event
        .validate(now)
        .map_err(|(field, error)| SyncError::invalid(field, error))?;
    Ok(event)
}

fn kind_from(value: i32, name: &'static str) -> Result<Option<TargetKind>, SyncError> {
    match pb::TargetKind::try_from(value) {
        Ok(pb::TargetKind::Unspecified) => Ok(None),
        Ok(pb::TargetKind::Webhook) => Ok(Some(TargetKind::Webhook)),
        Ok(pb::TargetKind::Grpc) => Ok(Some(TargetKind::Grpc)),
        Err(_) => Err(SyncError::invalid(
            name,
            format!("{value} is not a target kind"),
        )),
    }
}

fn target_to_proto(target: Target) -> pb::Target {
    pb::Target {
        name: target.name,
        system: target.system.as_str().to_owned(),
        kind: match target.kind {
            TargetKind::Webhook => pb::TargetKind::Webhook,
            TargetKind::Grpc => pb::TargetKind::Grpc,
        }
        .into(),
        url: target.url,
        secret: String::new(),
        has_secret: !target.secret.is_empty(),
        timeout_ms: target.timeout_ms,
        max_attempts: target.max_attempts,
        enabled: target.enabled,
        create_time: Some(timestamp_to_proto(target.created_at)),
        update_time: Some(timestamp_to_proto(target.updated_at)),
    }
}

fn new_target(target: pb::Target) -> Result<NewTarget, SyncError> {
    let name = TargetName::parse(&target.name).map_err(field("target.name"))?;
    let system = System::parse(&target.system).map_err(field("target.system"))?;
    let kind = kind_from(target.kind, "target.kind")?.unwrap_or(TargetKind::Webhook);
    routing::check_url(&target.url).map_err(field("target.url"))?;
    routing::check_secret(&target.secret).map_err(field("target.secret"))?;
    let timeout_ms = if target.timeout_ms == 0 {
        routing::DEFAULT_TIMEOUT_MS
    } else {
        target.timeout_ms
    };
    routing::check_timeout(timeout_ms).map_err(field("target.timeout_ms"))?;
    let max_attempts = if target.max_attempts == 0 {
        routing::DEFAULT_MAX_ATTEMPTS
    } else {
        target.max_attempts
    };
    routing::check_attempts(max_attempts).map_err(field("target.max_attempts"))?;
    Ok(NewTarget {
        name,
        system,
        kind,
        url: target.url,
        secret: target.secret,
        timeout_ms,
        max_attempts,
        // A new target delivers unless it is created disabled with a mask
        // of its own; proto3 cannot tell "false" from "unset", so creation
        // always enables (disable it with UpdateTarget).
        enabled: true,
    })
}

/// The fields an update changes: the mask's paths, or (without one) those
/// the request sets to a non-default value (AIP-134).
fn mask_paths<'a>(
    mask: Option<&'a prost_types::FieldMask>,
    editable: &[&'static str],
    is_set: impl Fn(&str) -> bool,
) -> Result<Vec<&'a str>, SyncError> {
    match mask {
        Some(mask) if !mask.paths.is_empty() => {
            for path in &mask.paths {
                if !editable.contains(&path.as_str()) {
                    return Err(SyncError::invalid(
                        "update_mask",
                        format!(
                            "{path:?} cannot be updated; editable: {}",
                            editable.join(", ")
                        ),
                    ));
                }
            }
            Ok(mask.paths.iter().map(String::as_str).collect())
        }
        _ => Ok(editable
            .iter()
            .copied()
            .filter(|path| is_set(path))
            .collect()),
    }
}

fn target_patch(
    target: &pb::Target,
    mask: Option<&prost_types::FieldMask>,
) -> Result<TargetPatch, SyncError> {
    const EDITABLE: [&str; 7] = [
        "system",
        "kind",
        "url",
        "secret",
        "timeout_ms",
        "max_attempts",
        "enabled",
    ];
    let paths = mask_paths(mask, &EDITABLE, |path| match path {
        "system" => !target.system.is_empty(),
        "kind" => target.kind != 0,
        "url" => !target.url.is_empty(),
        "secret" => !target.secret.is_empty(),
        "timeout_ms" => target.timeout_ms != 0,
        "max_attempts" => target.max_attempts != 0,
        _ => target.enabled,
    })?;
    let mut patch = TargetPatch::default();
    for path in paths {
        match path {
            "system" => {
                patch.system = Some(System::parse(&target.system).map_err(field("target.system"))?);
            }
            "kind" => {
                patch.kind = Some(kind_from(target.kind, "target.kind")?.ok_or_else(|| {
                    SyncError::invalid("target.kind", "a target kind is required")
                })?);
            }
            "url" => {
                routing::check_url(&target.url).map_err(field("target.url"))?;
                patch.url = Some(target.url.clone());
            }
            "secret" => {
                routing::check_secret(&target.secret).map_err(field("target.secret"))?;
                patch.secret = Some(target.secret.clone());
            }
            "timeout_ms" => {
                routing::check_timeout(target.timeout_ms).map_err(field("target.timeout_ms"))?;
                patch.timeout_ms = Some(target.timeout_ms);
            }
            "max_attempts" => {
                routing::check_attempts(target.max_attempts)
                    .map_err(field("target.max_attempts"))?;
                patch.max_attempts = Some(target.max_attempts);
            }
            _ => patch.enabled = Some(target.enabled),
        }
    }
    Ok(patch)
}

fn mode_from(value: i32) -> Result<Option<SyncMode>, SyncError> {
    match pb::SyncMode::try_from(value) {
        Ok(pb::SyncMode::Unspecified) => Ok(None),
        Ok(pb::SyncMode::Realtime) => Ok(Some(SyncMode::Realtime)),
        Ok(pb::SyncMode::Batch) => Ok(Some(SyncMode::Batch)),
        Err(_) => Err(SyncError::invalid(
            "configuration.mode",
            format!("{value} is not a sync mode"),
        )),
    }
}

fn strategy_from(value: i32) -> Result<Option<ConflictStrategy>, SyncError> {
    match pb::ConflictStrategy::try_from(value) {
        Ok(pb::ConflictStrategy::Unspecified) => Ok(None),
        Ok(pb::ConflictStrategy::SourceWins) => Ok(Some(ConflictStrategy::SourceWins)),
        Ok(pb::ConflictStrategy::TargetWins) => Ok(Some(ConflictStrategy::TargetWins)),
        Ok(pb::ConflictStrategy::Merge) => Ok(Some(ConflictStrategy::Merge)),
        Ok(pb::ConflictStrategy::BusinessRule) => Ok(Some(ConflictStrategy::BusinessRule)),
        Ok(pb::ConflictStrategy::Manual) => Ok(Some(ConflictStrategy::Manual)),
        Err(_) => Err(SyncError::invalid(
            "configuration.conflict_strategy",
            format!("{value} is not a conflict strategy"),
        )),
    }
}

fn configuration_to_proto(c: Configuration) -> pb::Configuration {
    pb::Configuration {
        id: c.id,
        entity_type: c.entity_type,
        source_system: c.source.as_str().to_owned(),
        target: c.target,
        mode: match c.mode {
            SyncMode::Realtime => pb::SyncMode::Realtime,
            SyncMode::Batch => pb::SyncMode::Batch,
        }
        .into(),
        conflict_strategy: match c.strategy {
            ConflictStrategy::SourceWins => pb::ConflictStrategy::SourceWins,
            ConflictStrategy::TargetWins => pb::ConflictStrategy::TargetWins,
            ConflictStrategy::Merge => pb::ConflictStrategy::Merge,
            ConflictStrategy::BusinessRule => pb::ConflictStrategy::BusinessRule,
            ConflictStrategy::Manual => pb::ConflictStrategy::Manual,
        }
        .into(),
        business_rule: c.business_rule.unwrap_or_default(),
        field_mapping: c.mapping.0.into_iter().collect(),
        merge_rules: c.merge_rules.0.into_iter().collect(),
        batch_every_minutes: c.batch_every_minutes,
        enabled: c.enabled,
        create_time: Some(timestamp_to_proto(c.created_at)),
        update_time: Some(timestamp_to_proto(c.updated_at)),
        updated_by: c.updated_by,
    }
}

fn mapping_from(
    mapping: &std::collections::HashMap<String, String>,
) -> Result<FieldMapping, SyncError> {
    FieldMapping::parse(
        mapping
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect::<BTreeMap<_, _>>(),
    )
    .map_err(field("configuration.field_mapping"))
}

fn merge_rules_from(
    rules: &std::collections::HashMap<String, String>,
) -> Result<MergeRules, SyncError> {
    MergeRules::parse(rules.iter().map(|(k, v)| (k.clone(), v.clone())).collect())
        .map_err(field("configuration.merge_rules"))
}

fn batch_every(minutes: i32) -> Result<i32, SyncError> {
    if (0..=10_080).contains(&minutes) {
        Ok(minutes)
    } else {
        Err(SyncError::invalid(
            "configuration.batch_every_minutes",
            format!("{minutes} is not between 0 (on demand only) and 10080 (a week)"),
        ))
    }
}

fn new_configuration(c: pb::Configuration) -> Result<NewConfiguration, SyncError> {
    let strategy = strategy_from(c.conflict_strategy)?.unwrap_or(ConflictStrategy::SourceWins);
    let business_rule = optional(&c.business_rule);
    routing::check_rule(strategy, business_rule.as_deref())
        .map_err(field("configuration.business_rule"))?;
    Ok(NewConfiguration {
        entity_type: EntityType::parse(&c.entity_type)
            .map_err(field("configuration.entity_type"))?,
        source: SourceFilter::parse(&c.source_system)
            .map_err(field("configuration.source_system"))?,
        target: TargetName::parse(&c.target).map_err(field("configuration.target"))?,
        mode: mode_from(c.mode)?.unwrap_or(SyncMode::Realtime),
        strategy,
        business_rule,
        mapping: mapping_from(&c.field_mapping)?,
        merge_rules: merge_rules_from(&c.merge_rules)?,
        batch_every_minutes: batch_every(c.batch_every_minutes)?,
        enabled: true,
    })
}

fn configuration_patch(
    c: &pb::Configuration,
    mask: Option<&prost_types::FieldMask>,
) -> Result<ConfigurationPatch, SyncError> {
    const EDITABLE: [&str; 7] = [
        "mode",
        "conflict_strategy",
        "business_rule",
        "field_mapping",
        "merge_rules",
        "batch_every_minutes",
        "enabled",
    ];
    let paths = mask_paths(mask, &EDITABLE, |path| match path {
        "mode" => c.mode != 0,
        "conflict_strategy" => c.conflict_strategy != 0,
        "business_rule" => !c.business_rule.is_empty(),
        "field_mapping" => !c.field_mapping.is_empty(),
        "merge_rules" => !c.merge_rules.is_empty(),
        "batch_every_minutes" => c.batch_every_minutes != 0,
        _ => c.enabled,
    })?;
    let mut patch = ConfigurationPatch::default();
    for path in paths {
        match path {
            "mode" => {
                patch.mode = Some(mode_from(c.mode)?.ok_or_else(|| {
                    SyncError::invalid("configuration.mode", "a sync mode is required")
                })?);
            }
            "conflict_strategy" => {
                patch.strategy = Some(strategy_from(c.conflict_strategy)?.ok_or_else(|| {
                    SyncError::invalid(
                        "configuration.conflict_strategy",
                        "a conflict strategy is required",
                    )
                })?);
            }
            "business_rule" => patch.business_rule = Some(optional(&c.business_rule)),
            "field_mapping" => patch.mapping = Some(mapping_from(&c.field_mapping)?),
            "merge_rules" => patch.merge_rules = Some(merge_rules_from(&c.merge_rules)?),
            "batch_every_minutes" => {
                patch.batch_every_minutes = Some(batch_every(c.batch_every_minutes)?);
            }
            _ => patch.enabled = Some(c.enabled),
        }
    }
    Ok(patch)
}

fn state_from(value: i32) -> Result<Option<DeliveryState>, SyncError> {
    match pb::DeliveryState::try_from(value) {
        Ok(pb::DeliveryState::Unspecified) => Ok(None),
        Ok(pb::DeliveryState::Pending) => Ok(Some(DeliveryState::Pending)),
        Ok(pb::DeliveryState::InFlight) => Ok(Some(DeliveryState::InFlight)),
        Ok(pb::DeliveryState::Delivered) => Ok(Some(DeliveryState::Delivered)),
        Ok(pb::DeliveryState::DeadLettered) => Ok(Some(DeliveryState::Dead)),
        Ok(pb::DeliveryState::Held) => Ok(Some(DeliveryState::Held)),
        Ok(pb::DeliveryState::Skipped) => Ok(Some(DeliveryState::Skipped)),
        Err(_) => Err(SyncError::invalid(
            "state",
            format!("{value} is not a delivery state"),
        )),
    }
}

fn delivery_to_proto(d: Delivery) -> pb::Delivery {
    pb::Delivery {
        position: d.position,
        target: d.target,
        entity_type: d.entity_type,
        entity_key: d.entity_key,
        state: match d.state {
            DeliveryState::Pending => pb::DeliveryState::Pending,
            DeliveryState::InFlight => pb::DeliveryState::InFlight,
            DeliveryState::Delivered => pb::DeliveryState::Delivered,
            DeliveryState::Dead => pb::DeliveryState::DeadLettered,
            DeliveryState::Held => pb::DeliveryState::Held,
            DeliveryState::Skipped => pb::DeliveryState::Skipped,
        }
        .into(),
        attempts: d.attempts,
        next_attempt_time: (d.state == DeliveryState::Pending)
            .then(|| timestamp_to_proto(d.next_attempt_at)),
        last_error: d.last_error.unwrap_or_default(),
        delivered_time: d.delivered_at.map(timestamp_to_proto),
        create_time: Some(timestamp_to_proto(d.created_at)),
    }
}

fn attempt_to_proto(a: Attempt) -> pb::DeliveryAttempt {
    pb::DeliveryAttempt {
        position: a.position,
        target: a.target,
        attempt: a.attempt,
        outcome: match a.outcome {
            AttemptOutcome::Delivered => pb::AttemptOutcome::Delivered,
            AttemptOutcome::Retrying => pb::AttemptOutcome::Retrying,
            AttemptOutcome::DeadLettered => pb::AttemptOutcome::DeadLettered,
        }
        .into(),
        http_status: a.http_status.map(i32::from).unwrap_or_default(),
        error: a.error.unwrap_or_default(),
        start_time: Some(timestamp_to_proto(a.started_at)),
        duration_ms: a.duration_ms,
    }
}

fn conflict_status_to(status: ConflictStatus) -> pb::ConflictStatus {
    match status {
        ConflictStatus::Detected => pb::ConflictStatus::Detected,
        ConflictStatus::Assigned => pb::ConflictStatus::Assigned,
        ConflictStatus::InReview => pb::ConflictStatus::InReview,
        ConflictStatus::Resolved => pb::ConflictStatus::Resolved,
        ConflictStatus::Validated => pb::ConflictStatus::Validated,
        ConflictStatus::Closed => pb::ConflictStatus::Closed,
    }
}

fn conflict_status_from(value: i32) -> Result<Option<ConflictStatus>, SyncError> {
    match pb::ConflictStatus::try_from(value) {
        Ok(pb::ConflictStatus::Unspecified) => Ok(None),
        Ok(pb::ConflictStatus::Detected) => Ok(Some(ConflictStatus::Detected)),
        Ok(pb::ConflictStatus::Assigned) => Ok(Some(ConflictStatus::Assigned)),
        Ok(pb::ConflictStatus::InReview) => Ok(Some(ConflictStatus::InReview)),
        Ok(pb::ConflictStatus::Resolved) => Ok(Some(ConflictStatus::Resolved)),
        Ok(pb::ConflictStatus::Validated) => Ok(Some(ConflictStatus::Validated)),
        Ok(pb::ConflictStatus::Closed) => Ok(Some(ConflictStatus::Closed)),
        Err(_) => Err(SyncError::invalid(
            "status",
            format!("{value} is not a conflict status"),
        )),
    }
}

fn strategy_to(strategy: ConflictStrategy) -> pb::ConflictStrategy {
    match strategy {
        ConflictStrategy::SourceWins => pb::ConflictStrategy::SourceWins,
        ConflictStrategy::TargetWins => pb::ConflictStrategy::TargetWins,
        ConflictStrategy::Merge => pb::ConflictStrategy::Merge,
        ConflictStrategy::BusinessRule => pb::ConflictStrategy::BusinessRule,
        ConflictStrategy::Manual => pb::ConflictStrategy::Manual,
    }
}

/// A conflict on the wire; with `detail`, its three-way view and history.
fn conflict_to_proto(
    conflict: Conflict,
    history: Option<Vec<HistoryEntry>>,
    now: chrono::DateTime<Utc>,
) -> pb::Conflict {
    let stale = conflict.is_stale(now);
    let fields = if history.is_some() {
        conflict
            .view()
            .into_iter()
            .map(|f| pb::ConflictField {
                field: f.field,
                base: f.base.as_ref().map(json_to_value),
                source: f.source.as_ref().map(json_to_value),
                competing: f.target.as_ref().map(json_to_value),
                change: match f.changed_in {
                    ChangedIn::None => pb::FieldChange::None,
                    ChangedIn::Source => pb::FieldChange::Source,
                    ChangedIn::Target => pb::FieldChange::Competing,
                    ChangedIn::BothSame => pb::FieldChange::BothSame,
                    ChangedIn::Both => pb::FieldChange::Conflicting,
                }
                .into(),
            })
            .collect()
    } else {
        Vec::new()
    };
    pb::Conflict {
        id: conflict.id,
        position: conflict.position,
        target: conflict.target,
        configuration_id: conflict.configuration_id,
        entity_type: conflict.entity_type,
        entity_key: conflict.entity_key,
        source_system: conflict.source_system.as_str().to_owned(),
        competing_system: conflict.competing_system.as_str().to_owned(),
        base_version: conflict.base_version,
        source_version: conflict.source_version,
        competing_version: conflict.competing_version,
        conflicting_fields: conflict.conflicting_fields,
        fields,
        strategy: strategy_to(conflict.strategy).into(),
        auto_resolved: conflict.auto_resolved,
        resolution: match conflict.resolution {
            None => pb::Resolution::Unspecified,
            Some(Resolution::Source) => pb::Resolution::Source,
            Some(Resolution::Target) => pb::Resolution::Target,
            Some(Resolution::Merged) => pb::Resolution::Merged,
            Some(Resolution::Manual) => pb::Resolution::Manual,
        }
        .into(),
        resolved_payload: conflict.resolved.as_ref().map(json_to_struct),
        status: conflict_status_to(conflict.status).into(),
        assignee: conflict.assignee.unwrap_or_default(),
        due_time: conflict.due_at.map(timestamp_to_proto),
        resolved_by: conflict.resolved_by.unwrap_or_default(),
        validated_by: conflict.validated_by.unwrap_or_default(),
        detect_time: Some(timestamp_to_proto(conflict.detected_at)),
        update_time: Some(timestamp_to_proto(conflict.updated_at)),
        close_time: conflict.closed_at.map(timestamp_to_proto),
        stale,
        history: history
            .unwrap_or_default()
            .into_iter()
            .map(|h| pb::ConflictStep {
                time: Some(timestamp_to_proto(h.at)),
                actor: h.actor,
                step: h.step,
                from_status: h
                    .from
                    .map_or(pb::ConflictStatus::Unspecified, conflict_status_to)
                    .into(),
                to_status: conflict_status_to(h.to).into(),
                note: h.note.unwrap_or_default(),
            })
            .collect(),
    }
}

fn batch_status_to(status: BatchStatus) -> pb::BatchRunStatus {
    match status {
        BatchStatus::Running => pb::BatchRunStatus::Running,
        BatchStatus::Succeeded => pb::BatchRunStatus::Succeeded,
        BatchStatus::Partial => pb::BatchRunStatus::Partial,
        BatchStatus::Failed => pb::BatchRunStatus::Failed,
    }
}

fn batch_run_to_proto(run: BatchRun) -> pb::BatchRun {
    pb::BatchRun {
        id: run.id,
        configuration_id: run.configuration_id,
        target: run.target,
        entity_type: run.entity_type,
        since: Some(timestamp_to_proto(run.since)),
        until: Some(timestamp_to_proto(run.until)),
        status: batch_status_to(run.status).into(),
        triggered_by: run.triggered_by,
        rows_extracted: run.rows_extracted,
        rows_loaded: run.rows_loaded,
        rows_rejected: run.rows_rejected,
        chunks_loaded: run.chunks_loaded,
        chunks_failed: run.chunks_failed,
        errors: run.errors,
        start_time: Some(timestamp_to_proto(run.started_at)),
        finish_time: run.finished_at.map(timestamp_to_proto),
        extract_ms: run.extract_ms,
        transform_ms: run.transform_ms,
        load_ms: run.load_ms,
    }
}

fn conflict_id(id: &str) -> Result<&str, SyncError> {
    if id.is_empty() {
        Err(SyncError::invalid("id", "a conflict id is required"))
    } else {
        Ok(id)
    }
}

fn picks_from(choices: Vec<pb::FieldChoice>) -> Result<BTreeMap<String, Pick>, SyncError> {
    let mut picks = BTreeMap::new();
    for (i, choice) in choices.into_iter().enumerate() {
        if choice.field.is_empty() {
            return Err(SyncError::invalid(
                format!("choices[{i}].field"),
                "a field name is required",
            ));
        }
        let pick = match pb::FieldPick::try_from(choice.pick) {
            Ok(pb::FieldPick::Base) => Pick::Base,
            Ok(pb::FieldPick::Source) => Pick::Source,
            Ok(pb::FieldPick::Competing) => Pick::Target,
            Ok(pb::FieldPick::Value) => Pick::Value(
                value_to_json(
                    choice.value.ok_or_else(|| {
                        SyncError::invalid(
                            format!("choices[{i}].value"),
                            "FIELD_PICK_VALUE needs a value",
                        )
                    })?,
                    &choice.field,
                )
                .map_err(|e| SyncError::invalid(format!("choices[{i}].value"), e))?,
            ),
            _ => {
                return Err(SyncError::invalid(
                    format!("choices[{i}].pick"),
                    "a pick is required: FIELD_PICK_BASE, FIELD_PICK_SOURCE, FIELD_PICK_COMPETING or FIELD_PICK_VALUE",
                ));
            }
        };
        if picks.insert(choice.field.clone(), pick).is_some() {
            return Err(SyncError::invalid(
                format!("choices[{i}].field"),
                format!("{:?} is picked twice", choice.field),
            ));
        }
    }
    Ok(picks)
}

fn note(value: String) -> Option<String> {
    (!value.trim().is_empty()).then_some(value)
}

impl SyncGrpc {
    /// Takes a workflow step and answers with the conflict after it; a
    /// closed conflict's released delivery wakes the dispatcher.
    async fn step<T>(
        &self,
        request: &Request<T>,
        id: &str,
        action: Action,
        note_text: String,
    ) -> Result<pb::Conflict, Status> {
        let actor = actor(request);
        let id = conflict_id(id)?;
        let conflict = self
            .store()?
            .advance(id, action, &actor, note(note_text), Utc::now())
            .await?;
        if conflict.status == ConflictStatus::Closed {
            self.recorded.notify_one();
        }
        Ok(conflict_to_proto(conflict, None, Utc::now()))
    }
}

fn position(value: i64, name: &'static str) -> Result<i64, SyncError> {
    if value > 0 {
        Ok(value)
    } else {
        Err(SyncError::invalid(
            name,
            format!("{value} is not a position (positions start at 1)"),
        ))
    }
}

fn actor<T>(request: &Request<T>) -> String {
    actor_name(request).unwrap_or("system").to_owned()
}

#[tonic::async_trait]
impl SyncService for SyncGrpc {
    #[tracing::instrument(name = "SyncService.PublishEvent", skip_all)]
    async fn publish_event(
        &self,
        request: Request<pb::PublishEventRequest>,
    ) -> RpcResult<pb::PublishEventResponse> {
        let event = new_event(request.into_inner())?;
        let mut recorded = self.store()?.record(vec![event], Utc::now()).await?;
        let recorded = recorded
            .pop()
            .ok_or_else(|| Status::internal("the event was not recorded"))?;
        if recorded.routed_to > 0 {
            self.recorded.notify_one();
        }
        Ok(Response::new(pb::PublishEventResponse {
            duplicate: recorded.duplicate,
            routed_to: i32::try_from(recorded.routed_to).unwrap_or(i32::MAX),
            conflicts: i32::try_from(recorded.conflicts).unwrap_or(i32::MAX),
            event: Some(event_to_proto(recorded.event)),
        }))
    }

    type SubscribeEventsStream = std::pin::Pin<
        Box<
            dyn futures::Stream<Item = Result<pb::SubscribeEventsResponse, Status>>
                + Send
                + 'static,
        >,
    >;

    #[tracing::instrument(name = "SyncService.SubscribeEvents", skip_all)]
    async fn subscribe_events(
        &self,
        request: Request<pb::SubscribeEventsRequest>,
    ) -> RpcResult<Self::SubscribeEventsStream> {
        use futures::StreamExt as _;

        let request = request.into_inner();
        for (i, entity_type) in request.entity_types.iter().enumerate() {
            EntityType::parse(entity_type).map_err(field_at("entity_types", i))?;
        }
        if request.after_position < 0 {
            return Err(SyncError::invalid("after_position", "must not be negative").into());
        }
        let store = Arc::clone(self.store()?);
        let start = if request.from_now {
            None
        } else {
            Some(request.after_position)
        };
        // An unknown resume point is refused before the stream starts.
        let cursor = store.stream_cursor(start).await?;
        let types = request.entity_types;
        let state = (store, cursor, std::collections::VecDeque::new());
        let events = futures::stream::unfold(state, move |(store, mut cursor, mut buffer)| {
            let types = types.clone();
            async move {
                loop {
                    if let Some(event) = buffer.pop_front() {
                        let reply = pb::SubscribeEventsResponse {
                            event: Some(event_to_proto(event)),
                        };
                        return Some((Ok(reply), (store, cursor, buffer)));
                    }
                    match store.stream(cursor, &types, SUBSCRIPTION_PAGE).await {
                        Ok(page) if page.is_empty() => tokio::time::sleep(SUBSCRIPTION_POLL).await,
                        Ok(page) => {
                            for (event, at) in page {
                                cursor = at;
                                buffer.push_back(event);
                            }
                        }
                        Err(error) => {
                            return Some((Err(Status::from(error)), (store, cursor, buffer)));
                        }
                    }
                }
            }
        });
        Ok(Response::new(events.boxed()))
    }

    #[tracing::instrument(name = "SyncService.GetEvent", skip_all)]
    async fn get_event(
        &self,
        request: Request<pb::GetEventRequest>,
    ) -> RpcResult<pb::GetEventResponse> {
        let at = position(request.into_inner().position, "position")?;
        let event = self.store()?.event(at).await?;
        Ok(Response::new(pb::GetEventResponse {
            event: Some(event_to_proto(event)),
        }))
    }

    #[tracing::instrument(name = "SyncService.ListEvents", skip_all)]
    async fn list_events(
        &self,
        request: Request<pb::ListEventsRequest>,
    ) -> RpcResult<pb::ListEventsResponse> {
        let request = request.into_inner();
        if !request.entity_key.is_empty() && request.entity_type.is_empty() {
            return Err(SyncError::invalid(
                "entity_key",
                "filtering by entity_key needs entity_type too",
            )
            .into());
        }
        if !request.entity_type.is_empty() {
            EntityType::parse(&request.entity_type).map_err(field("entity_type"))?;
        }
        if !request.source_system.is_empty() {
            System::parse(&request.source_system).map_err(field("source_system"))?;
        }
        if request.after_position < 0 {
            return Err(SyncError::invalid("after_position", "must not be negative").into());
        }
        let size = page_size(request.page_size).map_err(SyncError::from)?;
        let filter = EventFilter {
            entity_type: optional(&request.entity_type),
            entity_key: optional(&request.entity_key),
            source_system: optional(&request.source_system),
            after_position: request.after_position,
        };
        let page = self
            .store()?
            .events(&filter, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListEventsResponse {
            events: page.items.into_iter().map(event_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "SyncService.CreateTarget", skip_all)]
    async fn create_target(
        &self,
        request: Request<pb::CreateTargetRequest>,
    ) -> RpcResult<pb::CreateTargetResponse> {
        let target = request
            .into_inner()
            .target
            .ok_or_else(|| SyncError::invalid("target", "a target is required"))?;
        let created = self
            .store()?
            .create_target(new_target(target)?, Utc::now())
            .await?;
        Ok(Response::new(pb::CreateTargetResponse {
            target: Some(target_to_proto(created)),
        }))
    }

    #[tracing::instrument(name = "SyncService.GetTarget", skip_all)]
    async fn get_target(
        &self,
        request: Request<pb::GetTargetRequest>,
    ) -> RpcResult<pb::GetTargetResponse> {
        let name = TargetName::parse(&request.into_inner().name).map_err(field("name"))?;
        let target = self.store()?.target(&name).await?;
        Ok(Response::new(pb::GetTargetResponse {
            target: Some(target_to_proto(target)),
        }))
    }

    #[tracing::instrument(name = "SyncService.ListTargets", skip_all)]
    async fn list_targets(
        &self,
        _request: Request<pb::ListTargetsRequest>,
    ) -> RpcResult<pb::ListTargetsResponse> {
        let targets = self.store()?.targets().await?;
        Ok(Response::new(pb::ListTargetsResponse {
            targets: targets.into_iter().map(target_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "SyncService.UpdateTarget", skip_all)]
    async fn update_target(
        &self,
        request: Request<pb::UpdateTargetRequest>,
    ) -> RpcResult<pb::UpdateTargetResponse> {
        let request = request.into_inner();
        let target = request
            .target
            .ok_or_else(|| SyncError::invalid("target", "a target is required"))?;
        let name = TargetName::parse(&target.name).map_err(field("target.name"))?;
        let patch = target_patch(&target, request.update_mask.as_ref())?;
        let updated = self
            .store()?
            .update_target(&name, patch, Utc::now())
            .await?;
        // An enabled target's waiting deliveries are due now.
        self.recorded.notify_one();
        Ok(Response::new(pb::UpdateTargetResponse {
            target: Some(target_to_proto(updated)),
        }))
    }

    #[tracing::instrument(name = "SyncService.DeleteTarget", skip_all)]
    async fn delete_target(
        &self,
        request: Request<pb::DeleteTargetRequest>,
    ) -> RpcResult<pb::DeleteTargetResponse> {
        let name = TargetName::parse(&request.into_inner().name).map_err(field("name"))?;
        self.store()?.delete_target(&name).await?;
        Ok(Response::new(pb::DeleteTargetResponse {}))
    }

    #[tracing::instrument(name = "SyncService.CreateConfiguration", skip_all)]
    async fn create_configuration(
        &self,
        request: Request<pb::CreateConfigurationRequest>,
    ) -> RpcResult<pb::CreateConfigurationResponse> {
        let actor = actor(&request);
        let configuration = request
            .into_inner()
            .configuration
            .ok_or_else(|| SyncError::invalid("configuration", "a configuration is required"))?;
        let created = self
            .store()?
            .create_configuration(new_configuration(configuration)?, &actor, Utc::now())
            .await?;
        Ok(Response::new(pb::CreateConfigurationResponse {
            configuration: Some(configuration_to_proto(created)),
        }))
    }

    #[tracing::instrument(name = "SyncService.GetConfiguration", skip_all)]
    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> RpcResult<pb::GetConfigurationResponse> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(SyncError::invalid("id", "a configuration id is required").into());
        }
        let configuration = self.store()?.configuration(&id).await?;
        Ok(Response::new(pb::GetConfigurationResponse {
            configuration: Some(configuration_to_proto(configuration)),
        }))
    }

    #[tracing::instrument(name = "SyncService.ListConfigurations", skip_all)]
    async fn list_configurations(
        &self,
        request: Request<pb::ListConfigurationsRequest>,
    ) -> RpcResult<pb::ListConfigurationsResponse> {
        let request = request.into_inner();
        let configurations = self
            .store()?
            .configurations(
                optional(&request.entity_type).as_deref(),
                optional(&request.target).as_deref(),
            )
            .await?;
        Ok(Response::new(pb::ListConfigurationsResponse {
            configurations: configurations
                .into_iter()
                .map(configuration_to_proto)
                .collect(),
        }))
    }

    #[tracing::instrument(name = "SyncService.UpdateConfiguration", skip_all)]
    async fn update_configuration(
        &self,
        request: Request<pb::UpdateConfigurationRequest>,
    ) -> RpcResult<pb::UpdateConfigurationResponse> {
        let actor = actor(&request);
        let request = request.into_inner();
        let configuration = request
            .configuration
            .ok_or_else(|| SyncError::invalid("configuration", "a configuration is required"))?;
        if configuration.id.is_empty() {
            return Err(
                SyncError::invalid("configuration.id", "a configuration id is required").into(),
            );
        }
        let patch = configuration_patch(&configuration, request.update_mask.as_ref())?;
        let updated = self
            .store()?
            .update_configuration(&configuration.id, patch, &actor, Utc::now())
            .await?;
        Ok(Response::new(pb::UpdateConfigurationResponse {
            configuration: Some(configuration_to_proto(updated)),
        }))
    }

    #[tracing::instrument(name = "SyncService.DeleteConfiguration", skip_all)]
    async fn delete_configuration(
        &self,
        request: Request<pb::DeleteConfigurationRequest>,
    ) -> RpcResult<pb::DeleteConfigurationResponse> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(SyncError::invalid("id", "a configuration id is required").into());
        }
        self.store()?.delete_configuration(&id).await?;
        Ok(Response::new(pb::DeleteConfigurationResponse {}))
    }

    #[tracing::instrument(name = "SyncService.ListDeliveries", skip_all)]
    async fn list_deliveries(
        &self,
        request: Request<pb::ListDeliveriesRequest>,
    ) -> RpcResult<pb::ListDeliveriesResponse> {
        let request = request.into_inner();
        if request.position < 0 {
            return Err(SyncError::invalid("position", "must not be negative").into());
        }
        let size = page_size(request.page_size).map_err(SyncError::from)?;
        let filter = DeliveryFilter {
            target: optional(&request.target),
            state: state_from(request.state)?,
            position: (request.position > 0).then_some(request.position),
        };
        let page = self
            .store()?
            .deliveries(&filter, size, &request.page_token)
            .await?;
        Ok(Response::new(pb::ListDeliveriesResponse {
            deliveries: page.items.into_iter().map(delivery_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }

    #[tracing::instrument(name = "SyncService.ListDeliveryAttempts", skip_all)]
    async fn list_delivery_attempts(
        &self,
        request: Request<pb::ListDeliveryAttemptsRequest>,
    ) -> RpcResult<pb::ListDeliveryAttemptsResponse> {
        let request = request.into_inner();
        let at = position(request.position, "position")?;
        let store = self.store()?;
        store.event(at).await?;
        let attempts = store
            .attempts(at, optional(&request.target).as_deref())
            .await?;
        Ok(Response::new(pb::ListDeliveryAttemptsResponse {
            attempts: attempts.into_iter().map(attempt_to_proto).collect(),
        }))
    }

    #[tracing::instrument(name = "SyncService.ReplayDeadLetters", skip_all)]
    async fn replay_dead_letters(
        &self,
        request: Request<pb::ReplayDeadLettersRequest>,
    ) -> RpcResult<pb::ReplayDeadLettersResponse> {
        let request = request.into_inner();
        let target = TargetName::parse(&request.target).map_err(field("target"))?;
        if request.positions.len() > 1000 {
            return Err(SyncError::invalid("positions", "at most 1000 positions at once").into());
        }
        for at in &request.positions {
            position(*at, "positions")?;
        }
        let replayed = self
            .store()?
            .replay(&target, &request.positions, Utc::now())
            .await?;
        if replayed > 0 {
            self.recorded.notify_one();
        }
        Ok(Response::new(pb::ReplayDeadLettersResponse {
            replayed: i32::try_from(replayed).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(name = "SyncService.ListConflicts", skip_all)]
    async fn list_conflicts(
        &self,
        request: Request<pb::ListConflictsRequest>,
    ) -> RpcResult<pb::ListConflictsResponse> {
        let request = request.into_inner();
        if !request.entity_key.is_empty() && request.entity_type.is_empty() {
            return Err(SyncError::invalid(
                "entity_key",
                "filtering by entity_key needs entity_type too",
            )
            .into());
        }
        let size = page_size(request.page_size).map_err(SyncError::from)?;
        let filter = ConflictFilter {
            status: conflict_status_from(request.status)?,
            entity_type: optional(&request.entity_type),
            entity_key: optional(&request.entity_key),
            assignee: optional(&request.assignee),
            stale_only: request.stale_only,
        };
        let now = Utc::now();
        let (page, stale) = self
            .store()?
            .conflicts(&filter, size, &request.page_token, now)
            .await?;
        Ok(Response::new(pb::ListConflictsResponse {
            conflicts: page
                .items
                .into_iter()
                .map(|c| conflict_to_proto(c, None, now))
                .collect(),
            next_page_token: page.next_token.unwrap_or_default(),
            stale_count: i32::try_from(stale).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(name = "SyncService.GetConflict", skip_all)]
    async fn get_conflict(
        &self,
        request: Request<pb::GetConflictRequest>,
    ) -> RpcResult<pb::GetConflictResponse> {
        let request = request.into_inner();
        let (conflict, history) = self.store()?.conflict(conflict_id(&request.id)?).await?;
        Ok(Response::new(pb::GetConflictResponse {
            conflict: Some(conflict_to_proto(conflict, Some(history), Utc::now())),
        }))
    }

    #[tracing::instrument(name = "SyncService.AssignConflict", skip_all)]
    async fn assign_conflict(
        &self,
        request: Request<pb::AssignConflictRequest>,
    ) -> RpcResult<pb::AssignConflictResponse> {
        let body = request.get_ref().clone();
        let due_at = optional_time(body.due_time, "due_time")?
            .unwrap_or_else(|| Utc::now() + crate::domain::conflict::STALE_AFTER);
        let action = Action::Assign {
            assignee: body.assignee.trim().to_owned(),
            due_at,
        };
        let conflict = self.step(&request, &body.id, action, body.note).await?;
        Ok(Response::new(pb::AssignConflictResponse {
            conflict: Some(conflict),
        }))
    }

    #[tracing::instrument(name = "SyncService.StartConflictReview", skip_all)]
    async fn start_conflict_review(
        &self,
        request: Request<pb::StartConflictReviewRequest>,
    ) -> RpcResult<pb::StartConflictReviewResponse> {
        let body = request.get_ref().clone();
        let conflict = self
            .step(&request, &body.id, Action::Review, body.note)
            .await?;
        Ok(Response::new(pb::StartConflictReviewResponse {
            conflict: Some(conflict),
        }))
    }

    #[tracing::instrument(name = "SyncService.ResolveConflict", skip_all)]
    async fn resolve_conflict(
        &self,
        request: Request<pb::ResolveConflictRequest>,
    ) -> RpcResult<pb::ResolveConflictResponse> {
        let body = request.get_ref().clone();
        let picks = picks_from(body.choices)?;
        let conflict = self
            .step(&request, &body.id, Action::Resolve(picks), body.note)
            .await?;
        Ok(Response::new(pb::ResolveConflictResponse {
            conflict: Some(conflict),
        }))
    }

    #[tracing::instrument(name = "SyncService.ValidateConflict", skip_all)]
    async fn validate_conflict(
        &self,
        request: Request<pb::ValidateConflictRequest>,
    ) -> RpcResult<pb::ValidateConflictResponse> {
        let body = request.get_ref().clone();
        let action = if body.approve {
            Action::Approve
        } else {
            Action::Reject
        };
        let conflict = self.step(&request, &body.id, action, body.note).await?;
        Ok(Response::new(pb::ValidateConflictResponse {
            conflict: Some(conflict),
        }))
    }

    #[tracing::instrument(name = "SyncService.CloseConflict", skip_all)]
    async fn close_conflict(
        &self,
        request: Request<pb::CloseConflictRequest>,
    ) -> RpcResult<pb::CloseConflictResponse> {
        let body = request.get_ref().clone();
        let conflict = self
            .step(&request, &body.id, Action::Close, body.note)
            .await?;
        Ok(Response::new(pb::CloseConflictResponse {
            conflict: Some(conflict),
        }))
    }

    #[tracing::instrument(name = "SyncService.GetSyncMetrics", skip_all)]
    async fn get_sync_metrics(
        &self,
        request: Request<pb::GetSyncMetricsRequest>,
    ) -> RpcResult<pb::GetSyncMetricsResponse> {
        let request = request.into_inner();
        let now = Utc::now();
        let until = optional_time(request.until, "until")?.unwrap_or(now);
        let since =
            optional_time(request.since, "since")?.unwrap_or(until - chrono::Duration::hours(1));
        if since >= until {
            return Err(SyncError::invalid("since", "must be before until").into());
        }
        if until - since > chrono::Duration::days(31) {
            return Err(SyncError::invalid("since", "a range of at most 31 days").into());
        }
        let store = self.store()?;
        let periods = store.metrics(since, until).await?;
        let backlog = store.backlog(now).await?;
        let (_, stale) = store
            .conflicts(
                &ConflictFilter {
                    stale_only: true,
                    ..ConflictFilter::default()
                },
                1,
                "",
                now,
            )
            .await?;
        let sum = |f: fn(&PeriodMetrics) -> i64| periods.iter().map(f).sum::<i64>();
        let detected = sum(|p| p.conflicts_detected);
        let auto = sum(|p| p.conflicts_auto_resolved);
        let delivered = sum(|p| p.deliveries_delivered);
        let seconds: i64 = periods.iter().map(|p| i64::from(p.period_seconds)).sum();
        #[allow(clippy::cast_precision_loss)]
        let per_second = if seconds > 0 {
            delivered as f64 / seconds as f64
        } else {
            0.0
        };
        Ok(Response::new(pb::GetSyncMetricsResponse {
            totals: Some(pb::SyncTotals {
                events_recorded: sum(|p| p.events_recorded),
                deliveries_delivered: delivered,
                attempts_failed: sum(|p| p.attempts_failed),
                dead_lettered: sum(|p| p.dead_lettered),
                conflicts_detected: detected,
                conflicts_auto_resolved: auto,
                auto_resolved_share: auto_resolved_share(detected, auto),
                worst_lag_p99_ms: periods
                    .iter()
                    .filter_map(|p| p.lag_ms.map(|l| l.p99))
                    .max()
                    .unwrap_or_default(),
                deliveries_per_second: per_second,
            }),
            periods: periods
                .into_iter()
                .map(|p| {
                    let lag = p.lag_ms.unwrap_or_default();
                    pb::SyncPeriod {
                        start_time: Some(timestamp_to_proto(p.period_start)),
                        period_seconds: p.period_seconds,
                        events_recorded: p.events_recorded,
                        deliveries_delivered: p.deliveries_delivered,
                        attempts_failed: p.attempts_failed,
                        dead_lettered: p.dead_lettered,
                        conflicts_detected: p.conflicts_detected,
                        conflicts_auto_resolved: p.conflicts_auto_resolved,
                        lag_p50_ms: lag.p50,
                        lag_p95_ms: lag.p95,
                        lag_p99_ms: lag.p99,
                        lag_max_ms: lag.max,
                    }
                })
                .collect(),
            backlog: Some(pb::SyncBacklog {
                pending: backlog.pending,
                in_flight: backlog.in_flight,
                held: backlog.held,
                dead_lettered: backlog.dead_lettered,
                oldest_pending_ms: backlog.oldest_pending_ms,
            }),
            stale_conflicts: i32::try_from(stale).unwrap_or(i32::MAX),
        }))
    }

    #[tracing::instrument(name = "SyncService.StartBatchRun", skip_all)]
    async fn start_batch_run(
        &self,
        request: Request<pb::StartBatchRunRequest>,
    ) -> RpcResult<pb::StartBatchRunResponse> {
        let who = actor(&request);
        let request = request.into_inner();
        if request.configuration_id.is_empty() {
            return Err(
                SyncError::invalid("configuration_id", "a configuration id is required").into(),
            );
        }
        let since = optional_time(request.since, "since")?;
        let until = optional_time(request.until, "until")?;
        let store = Arc::clone(self.store()?);
        let configuration = store.configuration(&request.configuration_id).await?;
        let run = crate::batch::BatchRunner::new(store)
            .start(&configuration, since, until, &who, Utc::now())
            .await?;
        Ok(Response::new(pb::StartBatchRunResponse {
            run: Some(batch_run_to_proto(run)),
        }))
    }

    #[tracing::instrument(name = "SyncService.GetBatchRun", skip_all)]
    async fn get_batch_run(
        &self,
        request: Request<pb::GetBatchRunRequest>,
    ) -> RpcResult<pb::GetBatchRunResponse> {
        let id = request.into_inner().id;
        if id.is_empty() {
            return Err(SyncError::invalid("id", "a batch run id is required").into());
        }
        let run = self.store()?.batch_run(&id).await?;
        Ok(Response::new(pb::GetBatchRunResponse {
            run: Some(batch_run_to_proto(run)),
        }))
    }

    #[tracing::instrument(name = "SyncService.ListBatchRuns", skip_all)]
    async fn list_batch_runs(
        &self,
        request: Request<pb::ListBatchRunsRequest>,
    ) -> RpcResult<pb::ListBatchRunsResponse> {
        let request = request.into_inner();
        let size = page_size(request.page_size).map_err(SyncError::from)?;
        let page = self
            .store()?
            .batch_runs(
                optional(&request.configuration_id).as_deref(),
                size,
                &request.page_token,
            )
            .await?;
        Ok(Response::new(pb::ListBatchRunsResponse {
            runs: page.items.into_iter().map(batch_run_to_proto).collect(),
            next_page_token: page.next_token.unwrap_or_default(),
        }))
    }
}
