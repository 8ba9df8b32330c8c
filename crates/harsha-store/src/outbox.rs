//! The outbox every ERP service writes its changes to, in the same
//! transaction as the change (`tabHD Sync Outbox`); the Sync service relays
//! it into `sync_events`. [`record_outbox_event!`](crate::record_outbox_event)
//! inserts one event on an open transaction of either `erp` engine, with
//! the trace it was made in when traces are exported.

use chrono::NaiveDateTime;
use serde::Serialize;
use uuid::Uuid;

/// `INSERT` of one outbox row; bound by
/// [`record_outbox_event!`](crate::record_outbox_event).
pub const INSERT_OUTBOX: &str = "INSERT INTO `tabHD Sync Outbox` (`name`, `creation`, `modified`, `modified_by`, \
     `owner`, `source_service`, `entity_type`, `entity_name`, `event_type`, `payload`, `occurred_at`, \
     `traceparent`) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)";

/// One change, as the outbox records it.
#[derive(Debug, Clone)]
pub struct OutboxEvent {
    /// The event id (a UUIDv7, so ids sort by time).
    pub id: String,
    /// When the change happened (UTC).
    pub at: NaiveDateTime,
    /// Who made it.
    pub actor: String,
    /// The service that owns the entity (`customer`, `inventory`…).
    pub source_service: &'static str,
    /// The entity's type (`Batch`, `SegmentAssignment`…).
    pub entity_type: &'static str,
    /// The entity's id.
    pub entity_name: String,
    /// What happened (`inventory.batch.received`…).
    pub event_type: String,
    /// The entity after the change, as JSON.
    pub payload: String,
    /// The exported span it was made in, as a W3C `traceparent`.
    pub traceparent: Option<String>,
}

/// The current span as a W3C `traceparent`, when the process exports
/// traces (otherwise there is no trace for a later hop to join).
pub fn current_traceparent() -> Option<String> {
    use opentelemetry::trace::TraceContextExt as _;
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;

    let context = tracing::Span::current().context();
    let span = context.span();
    let own = span.span_context();
    own.is_valid().then(|| {
        format!(
            "00-{}-{}-{:02x}",
            own.trace_id(),
            own.span_id(),
            own.trace_flags().to_u8()
        )
    })
}

impl OutboxEvent {
    /// An event about `entity` whose payload is `payload` serialised to JSON.
    pub fn new(
        source_service: &'static str,
        at: NaiveDateTime,
        actor: &str,
        entity_type: &'static str,
        entity_name: &str,
        event_type: impl Into<String>,
        payload: &impl Serialize,
    ) -> Self {
        Self {
            id: Uuid::now_v7().to_string(),
            at,
            actor: actor.to_owned(),
            source_service,
            entity_type,
            entity_name: entity_name.to_owned(),
            event_type: event_type.into(),
            // Domain types serialise to JSON without failure (no maps with
            // non-string keys, no floats).
            payload: serde_json::to_string(payload).unwrap_or_default(),
            traceparent: current_traceparent(),
        }
    }
}

/// Inserts an [`OutboxEvent`](crate::outbox::OutboxEvent) on `$conn` (an
/// open transaction of either `erp` engine) and evaluates to the driver's
/// result.
#[macro_export]
macro_rules! record_outbox_event {
    ($conn:expr, $event:expr) => {{
        let event: &$crate::outbox::OutboxEvent = &$event;
        $crate::sqlx::query($crate::outbox::INSERT_OUTBOX)
            .bind(event.id.as_str())
            .bind(event.at)
            .bind(event.at)
            .bind(event.actor.as_str())
            .bind(event.actor.as_str())
            .bind(event.source_service)
            .bind(event.entity_type)
            .bind(event.entity_name.as_str())
            .bind(event.event_type.as_str())
            .bind(event.payload.as_str())
            .bind(event.at)
            .bind(event.traceparent.as_deref())
            .execute(&mut *$conn)
            .await
    }};
}

/// Records a change of `$source` (a service name) in the outbox on `$conn`:
/// [`record_outbox_event!`](crate::record_outbox_event) with the event built
/// from its parts. Evaluates to the driver's result.
#[macro_export]
macro_rules! record_change {
    ($conn:expr, $source:expr, $at:expr, $actor:expr, $entity_type:expr, $entity_name:expr, $event_type:expr, $payload:expr) => {
        $crate::record_outbox_event!(
            $conn,
            $crate::outbox::OutboxEvent::new(
                $source,
                $at,
                $actor.as_str(),
                $entity_type,
                $entity_name,
                $event_type,
                $payload
            )
        )
    };
}
