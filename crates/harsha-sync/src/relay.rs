//! The relay: moves the ERP services' outbox (`tabHD Sync Outbox`, written
//! in the same transaction as each change) into `sync_events`.
//!
//! Exactly once in effect across two databases without a distributed
//! transaction: a batch is recorded in the sync database under each row's
//! idempotency key (`erp-outbox:<outbox name>`), then the rows are marked
//! relayed in the ERP database. A crash between the two leaves the rows
//! unmarked; the next pass records them again and the keys make that a
//! no-op, so no event is lost and none is recorded twice.

use std::{sync::Arc, time::Duration};

use chrono::{NaiveDateTime, Utc};
use harsha_store::{ErpPool, erp_dispatch};
use serde_json::{Map, Value};
use sqlx::AssertSqlSafe;
use tokio::sync::Notify;

use crate::{
    SyncError, SyncStore,
    domain::{EntityType, NewEvent, Operation, System},
};

/// The idempotency-key prefix of relayed events.
pub const OUTBOX_KEY_PREFIX: &str = "erp-outbox:";

/// One outbox row waiting to be relayed.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct OutboxRow {
    /// The outbox row's id (a UUIDv7).
    pub name: String,
    /// The service that wrote it.
    pub source_service: String,
    /// The entity's type.
    pub entity_type: String,
    /// The entity's id.
    pub entity_name: String,
    /// What happened.
    pub event_type: String,
    /// The entity after the change, as JSON.
    pub payload: String,
    /// When (UTC).
    pub occurred_at: NaiveDateTime,
    /// The business transaction.
    pub correlation_id: Option<String>,
    /// The trace the change was made in.
    pub traceparent: Option<String>,
}

impl OutboxRow {
    /// The event this row stands for.
    pub fn to_event(&self) -> NewEvent {
        let payload = match serde_json::from_str::<Value>(&self.payload) {
            Ok(Value::Object(object)) => object,
            // Services write objects; anything else is kept, not dropped.
            Ok(other) => Map::from_iter([("value".to_owned(), other)]),
            Err(_) => Map::from_iter([("raw".to_owned(), Value::String(self.payload.clone()))]),
        };
        NewEvent {
            idempotency_key: format!("{OUTBOX_KEY_PREFIX}{}", self.name),
            source_system: System::Erpnext,
            entity_type: EntityType::relayed(&self.entity_type),
            entity_key: self.entity_name.clone(),
            operation: Operation::of_event_type(&self.event_type),
            event_type: self.event_type.clone(),
            payload,
            entity_version: 0,
            base_version: 0,
            occurred_at: self.occurred_at.and_utc(),
            correlation_id: self.correlation_id.clone(),
            traceparent: self.traceparent.clone(),
        }
    }
}

/// Moves outbox rows into the event stream.
#[derive(Clone)]
pub struct Relay {
    erp: ErpPool,
    store: Arc<dyn SyncStore>,
    batch: u32,
    recorded: Arc<Notify>,
}

impl Relay {
    /// A relay from `erp`'s outbox into `store`, `batch` rows per pass,
    /// notifying `recorded` whenever it records events.
    pub fn new(erp: ErpPool, store: Arc<dyn SyncStore>, batch: u32, recorded: Arc<Notify>) -> Self {
        Self {
            erp,
            store,
            batch: batch.max(1),
            recorded,
        }
    }

    /// The oldest rows not relayed yet, at most one batch.
    pub async fn pending(&self) -> Result<Vec<OutboxRow>, SyncError> {
        let rows = erp_dispatch!(&self.erp, pool => {
            sqlx::query_as(
                "SELECT `name`, `source_service`, `entity_type`, `entity_name`, `event_type`, `payload`, \
                 `occurred_at`, `correlation_id`, `traceparent` FROM `tabHD Sync Outbox` WHERE `relayed_at` IS NULL \
                 ORDER BY `occurred_at`, `name` LIMIT ?",
            )
            .bind(i64::from(self.batch))
            .fetch_all(pool)
            .await?
        });
        Ok(rows)
    }

    /// Marks rows relayed.
    pub async fn mark_relayed(&self, rows: &[OutboxRow]) -> Result<(), SyncError> {
        if rows.is_empty() {
            return Ok(());
        }
        let placeholders = vec!["?"; rows.len()].join(", ");
        let sql = format!(
            "UPDATE `tabHD Sync Outbox` SET `relayed_at` = ? WHERE `name` IN ({placeholders})"
        );
        let now = Utc::now().naive_utc();
        erp_dispatch!(&self.erp, pool => {
            let mut query = sqlx::query(AssertSqlSafe(sql)).bind(now);
            for row in rows {
                query = query.bind(&row.name);
            }
            query.execute(pool).await?;
        });
        Ok(())
    }

    /// One pass: records a batch and marks it; how many rows it relayed.
    #[tracing::instrument(name = "sync.relay", skip_all)]
    pub async fn relay_once(&self) -> Result<usize, SyncError> {
        let rows = self.pending().await?;
        if rows.is_empty() {
            return Ok(0);
        }
        let events = rows.iter().map(OutboxRow::to_event).collect();
        self.store.record_relayed(events, Utc::now()).await?;
        self.recorded.notify_one();
        self.mark_relayed(&rows).await?;
        Ok(rows.len())
    }

    /// Relays until `shutdown`, at once while there is a backlog and every
    /// `interval` when there is none; a failed pass is logged and retried.
    pub async fn run(self, interval: Duration, shutdown: impl Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            let wait = match self.relay_once().await {
                Ok(n) if n >= self.batch as usize => Duration::ZERO,
                Ok(_) => interval,
                Err(error) => {
                    tracing::warn!(error = %harsha_store::status::error_chain(&error), "outbox relay failed");
                    interval.max(Duration::from_secs(1))
                }
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = tokio::time::sleep(wait) => {}
            }
        }
    }
}
