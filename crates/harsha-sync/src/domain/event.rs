//! Events: a change to one entity in one system, as published or relayed
//! ([`NewEvent`]) and as recorded in the stream ([`Event`]).

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};

use super::values::{EntityType, System, ValueError, check_key};

/// The largest payload accepted, in bytes of JSON.
pub const MAX_PAYLOAD_BYTES: usize = 1024 * 1024;
/// How far ahead of now an event may say it happened (clock skew).
pub const MAX_CLOCK_SKEW: Duration = Duration::minutes(5);
/// The longest idempotency key.
pub const MAX_IDEMPOTENCY_KEY: usize = 200;
/// The longest entity key, event type or correlation id.
pub const MAX_KEY: usize = 140;

/// What a change did to its entity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Operation {
    /// Created it.
    Create,
    /// Changed it.
    Update,
    /// Removed it.
    Delete,
}

impl Operation {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Create => "create",
            Self::Update => "update",
            Self::Delete => "delete",
        }
    }

    /// The operation stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "create" => Ok(Self::Create),
            "update" => Ok(Self::Update),
            "delete" => Ok(Self::Delete),
            other => Err(ValueError(format!("unknown operation {other:?}"))),
        }
    }

    /// The operation an ERP outbox event type (`inventory.batch.received`)
    /// stands for, by its last word.
    pub fn of_event_type(event_type: &str) -> Self {
        match event_type.rsplit('.').next().unwrap_or_default() {
            "created" | "received" | "added" | "triggered" | "recorded" | "reserved" => {
                Self::Create
            }
            "deleted" | "removed" | "window_removed" => Self::Delete,
            _ => Self::Update,
        }
    }
}

/// A change to record.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// What makes it unique to its producer.
    pub idempotency_key: String,
    /// Where it was made.
    pub source_system: System,
    /// The entity's type.
    pub entity_type: EntityType,
    /// The entity's id.
    pub entity_key: String,
    /// What it did.
    pub operation: Operation,
    /// The producer's name for it.
    pub event_type: String,
    /// The entity after the change.
    pub payload: Map<String, Value>,
    /// The entity's version after it; 0 when unversioned.
    pub entity_version: i64,
    /// The version it was made on; 0 when unknown.
    pub base_version: i64,
    /// When it happened.
    pub occurred_at: DateTime<Utc>,
    /// The business transaction it belongs to.
    pub correlation_id: Option<String>,
    /// The trace it was recorded in (W3C `traceparent`); its deliveries
    /// continue it.
    pub traceparent: Option<String>,
}

/// A [`NewEvent`] field that is wrong: (field, reason).
pub type FieldError = (&'static str, ValueError);

impl NewEvent {
    /// Checks a published event's free-text fields, sizes, versions and
    /// time (`now` is the service's clock).
    pub fn validate(&self, now: DateTime<Utc>) -> Result<(), FieldError> {
        check_key(&self.idempotency_key, MAX_IDEMPOTENCY_KEY)
            .map_err(|e| ("idempotency_key", e))?;
        check_key(&self.entity_key, MAX_KEY).map_err(|e| ("entity_key", e))?;
        check_key(&self.event_type, MAX_KEY).map_err(|e| ("event_type", e))?;
        if let Some(correlation) = &self.correlation_id {
            check_key(correlation, MAX_KEY).map_err(|e| ("correlation_id", e))?;
        }
        if self.entity_version < 0 {
            return Err(("entity_version", ValueError("must not be negative".into())));
        }
        if self.base_version < 0 {
            return Err(("base_version", ValueError("must not be negative".into())));
        }
        if self.entity_version > 0 && self.base_version >= self.entity_version {
            return Err((
                "base_version",
                ValueError(format!(
                    "{} is not older than entity_version {}",
                    self.base_version, self.entity_version
                )),
            ));
        }
        if self.occurred_at > now + MAX_CLOCK_SKEW {
            return Err((
                "occurred_at",
                ValueError(format!(
                    "{} is more than {} minutes ahead of the service's clock",
                    self.occurred_at.to_rfc3339(),
                    MAX_CLOCK_SKEW.num_minutes()
                )),
            ));
        }
        let size = serde_json::to_vec(&self.payload).map_or(0, |bytes| bytes.len());
        if size > MAX_PAYLOAD_BYTES {
            return Err((
                "payload",
                ValueError(format!("{size} bytes of JSON; at most {MAX_PAYLOAD_BYTES}")),
            ));
        }
        Ok(())
    }
}

/// A recorded event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Its place in the stream.
    pub position: i64,
    /// Its id.
    pub event_id: String,
    /// The change.
    pub change: NewEvent,
    /// When the Sync service recorded it.
    pub recorded_at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event() -> NewEvent {
        NewEvent {
            idempotency_key: "crm-42".into(),
            source_system: System::Crm,
            entity_type: EntityType::relayed("Customer"),
            entity_key: "CUST-0001".into(),
            operation: Operation::Update,
            event_type: "crm.customer.updated".into(),
            payload: Map::new(),
            entity_version: 3,
            base_version: 2,
            occurred_at: Utc::now(),
            correlation_id: None,
            traceparent: None,
        }
    }

    #[test]
    fn operations_follow_the_outbox_event_type() {
        assert_eq!(
            Operation::of_event_type("inventory.batch.received"),
            Operation::Create
        );
        assert_eq!(
            Operation::of_event_type("pricing.festival.window_removed"),
            Operation::Delete
        );
        assert_eq!(
            Operation::of_event_type("customer.segment.updated"),
            Operation::Update
        );
    }

    #[test]
    fn validation_names_the_field() {
        let now = Utc::now();
        assert_eq!(event().validate(now), Ok(()));
        let mut future = event();
        future.occurred_at = now + Duration::minutes(6);
        assert_eq!(future.validate(now).err().map(|e| e.0), Some("occurred_at"));
        let mut versions = event();
        versions.base_version = 3;
        assert_eq!(
            versions.validate(now).err().map(|e| e.0),
            Some("base_version")
        );
        let mut big = event();
        big.payload
            .insert("blob".into(), Value::String("x".repeat(MAX_PAYLOAD_BYTES)));
        assert_eq!(big.validate(now).err().map(|e| e.0), Some("payload"));
        let mut key = event();
        key.idempotency_key = String::new();
        assert_eq!(
            key.validate(now).err().map(|e| e.0),
            Some("idempotency_key")
        );
    }
}
