//! `harsha up --demo`'s stand-ins for the systems an order's event flows
//! to: one HTTP listener with a path per system (`/hooks/warehouse`,
//! `/hooks/crm`, `/hooks/analytics`) that checks each delivery's signature
//! and keeps what it heard, the Sync targets and routes that send every
//! `Order` event there (made, or pointed at this run's listener and
//! secret, at each start), and `GET /hooks/<system>` to see the count and
//! the latest events.

use std::{
    collections::{HashMap, VecDeque},
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use anyhow::Context;
use axum::{
    Json, Router,
    body::Bytes,
    extract::{Path, State},
    http::{HeaderMap, StatusCode},
    routing::get,
};
use harsha_store::PgPool;
use harsha_sync::{
    SqlSyncStore, SyncError, SyncStore,
    domain::{
        ConflictStrategy, EntityType, FieldMapping, MergeRules, NewConfiguration, NewTarget,
        SourceFilter, SyncMode, System, TargetKind, TargetName, TargetPatch, delivery::signature,
    },
};
use subtle::ConstantTimeEq;
use tokio_util::sync::CancellationToken;

/// The systems stood in for.
pub const SYSTEMS: [System; 3] = [System::Warehouse, System::Crm, System::Analytics];
/// The events each keeps.
const KEPT: usize = 50;

#[derive(Debug, Default)]
struct Heard {
    received: u64,
    bad_signatures: u64,
    last: VecDeque<serde_json::Value>,
}

/// The receivers and what they heard.
#[derive(Debug)]
pub struct DemoHooks {
    secret: String,
    heard: Mutex<HashMap<String, Heard>>,
}

/// The target a system's demo receiver is.
fn target_name(system: System) -> String {
    format!("demo-{}", system.as_str())
}

impl DemoHooks {
    /// Listens on `listen` until `shutdown`; returns the receivers and the
    /// address they listen on.
    pub async fn start(
        listen: SocketAddr,
        shutdown: CancellationToken,
    ) -> anyhow::Result<(Arc<Self>, SocketAddr)> {
        let hooks = Arc::new(Self {
            secret: format!(
                "{:032x}{:032x}",
                rand::random::<u128>(),
                rand::random::<u128>()
            ),
            heard: Mutex::new(HashMap::new()),
        });
        let listener = tokio::net::TcpListener::bind(listen)
            .await
            .with_context(|| format!("cannot listen on {listen} for the demo webhooks"))?;
        let address = listener.local_addr()?;
        let app = Router::new()
            .route("/hooks/{system}", get(heard).post(receive))
            .with_state(Arc::clone(&hooks));
        let stop = shutdown.clone();
        tokio::spawn(async move {
            let served = axum::serve(listener, app)
                .with_graceful_shutdown(stop.cancelled_owned())
                .await;
            if let Err(error) = served {
                tracing::warn!(%error, "the demo webhooks stopped");
            }
        });
        tokio::spawn(Arc::clone(&hooks).report(shutdown));
        Ok((hooks, address))
    }

    /// Makes (or repoints) one webhook target per system at `base`, each
    /// signed with this run's secret, and routes every `Order` event from
    /// the ERP services to each.
    pub async fn route_orders(&self, sync: PgPool, base: &str) -> anyhow::Result<()> {
        let store = SqlSyncStore::new(sync);
        let now = chrono::Utc::now();
        for system in SYSTEMS {
            let name = TargetName::parse(&target_name(system))?;
            let url = format!("{base}/hooks/{}", system.as_str());
            let made = store
                .create_target(
                    NewTarget {
                        name: name.clone(),
                        system,
                        kind: TargetKind::Webhook,
                        url: url.clone(),
                        secret: self.secret.clone(),
                        timeout_ms: 2_000,
                        max_attempts: 5,
                        enabled: true,
                    },
                    now,
                )
                .await;
            match made {
                Ok(_) => {}
                Err(SyncError::TargetExists(_)) => {
                    let patch = TargetPatch {
                        url: Some(url),
                        secret: Some(self.secret.clone()),
                        enabled: Some(true),
                        ..TargetPatch::default()
                    };
                    store.update_target(&name, patch, now).await?;
                }
                Err(error) => return Err(error.into()),
            }
            let routed = store
                .configurations(Some("Order"), Some(name.as_str()))
                .await?;
            if routed.is_empty() {
                let route = NewConfiguration {
                    entity_type: EntityType::parse("Order")?,
                    source: SourceFilter::Only(System::Erpnext),
                    target: name,
                    mode: SyncMode::Realtime,
                    strategy: ConflictStrategy::SourceWins,
                    business_rule: None,
                    mapping: FieldMapping::default(),
                    merge_rules: MergeRules::default(),
                    batch_every_minutes: 0,
                    enabled: true,
                };
                store
                    .create_configuration(route, "demo@harshadelights.in", now)
                    .await?;
            }
        }
        Ok(())
    }

    /// Disables the demo targets of an earlier `--demo` run (a run without
    /// the receivers would otherwise retry every order event against an
    /// address nothing listens on).
    pub async fn disable_targets(sync: PgPool) -> anyhow::Result<()> {
        let store = SqlSyncStore::new(sync);
        let now = chrono::Utc::now();
        for system in SYSTEMS {
            let name = TargetName::parse(&target_name(system))?;
            let patch = TargetPatch {
                enabled: Some(false),
                ..TargetPatch::default()
            };
            match store.update_target(&name, patch, now).await {
                Ok(_) | Err(SyncError::TargetNotFound(_)) => {}
                Err(error) => return Err(error.into()),
            }
        }
        Ok(())
    }

    fn record(&self, system: &str, signed: bool, event: serde_json::Value) {
        let mut heard = self
            .heard
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let entry = heard.entry(system.to_owned()).or_default();
        if !signed {
            entry.bad_signatures += 1;
            return;
        }
        entry.received += 1;
        if entry.last.len() == KEPT {
            entry.last.pop_front();
        }
        entry.last.push_back(event);
    }

    /// Logs what arrived every ten seconds, when anything did.
    async fn report(self: Arc<Self>, shutdown: CancellationToken) {
        let mut reported: HashMap<String, u64> = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(Duration::from_secs(10)) => {}
            }
            let counts: Vec<(String, u64)> = self
                .heard
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .iter()
                .map(|(system, heard)| (system.clone(), heard.received))
                .collect();
            for (system, count) in counts {
                if reported.get(&system) != Some(&count) {
                    tracing::info!(system = %system, events = count, "demo webhook received order events");
                    reported.insert(system, count);
                }
            }
        }
    }
}

/// Whether `header` signs `body` with `secret`.
fn signed(secret: &str, header: &str, body: &[u8]) -> bool {
    let Some(timestamp) = header
        .split(',')
        .find_map(|part| part.strip_prefix("t="))
        .and_then(|t| t.parse::<i64>().ok())
    else {
        return false;
    };
    let expected = signature(secret, timestamp, body);
    bool::from(expected.as_bytes().ct_eq(header.as_bytes()))
}

async fn receive(
    State(hooks): State<Arc<DemoHooks>>,
    Path(system): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    if !SYSTEMS.iter().any(|s| s.as_str() == system) {
        return StatusCode::NOT_FOUND;
    }
    let header = headers
        .get("harsha-signature")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let is_signed = signed(&hooks.secret, header, &body);
    let Ok(event) = serde_json::from_slice::<serde_json::Value>(&body) else {
        return StatusCode::BAD_REQUEST;
    };
    tracing::debug!(%system, event_type = %event["event_type"], entity = %event["entity_key"], signed = is_signed, "demo webhook");
    hooks.record(&system, is_signed, event);
    if is_signed {
        StatusCode::OK
    } else {
        StatusCode::UNAUTHORIZED
    }
}

async fn heard(
    State(hooks): State<Arc<DemoHooks>>,
    Path(system): Path<String>,
) -> Result<Json<serde_json::Value>, StatusCode> {
    if !SYSTEMS.iter().any(|s| s.as_str() == system) {
        return Err(StatusCode::NOT_FOUND);
    }
    let heard = hooks
        .heard
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let entry = heard.get(&system);
    Ok(Json(serde_json::json!({
        "system": system,
        "received": entry.map_or(0, |h| h.received),
        "badSignatures": entry.map_or(0, |h| h.bad_signatures),
        "latest": entry.map(|h| h.last.iter().rev().cloned().collect::<Vec<_>>()).unwrap_or_default(),
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_runs_secret_signs() {
        let body = br#"{"event_type":"order.placed"}"#;
        let header = signature("s3cret", 1_700_000_000, body);
        assert!(signed("s3cret", &header, body));
        assert!(!signed("other", &header, body));
        assert!(!signed("s3cret", &header, b"{}"));
        assert!(!signed("s3cret", "", body));
    }
}
