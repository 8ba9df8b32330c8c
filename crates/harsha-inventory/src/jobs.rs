//! The Inventory service's background work, run inside the service:
//!
//! - every `sweep_interval`, reservations whose hold has ended are given
//!   back;
//! - at start and then every `scan_interval` (daily by default), movement
//!   partitions are added ahead, the expiry scan runs for today, and reorder
//!   points are evaluated.
//!
//! Each run is independent: a failure is logged and the next run tries
//! again. The same operations are reachable on demand over gRPC.

use std::{sync::Arc, time::Duration};

use chrono::{Months, Utc};

use crate::{InventoryConfig, InventoryStore, domain::Actor};

/// How often the background work runs.
#[derive(Debug, Clone, Copy)]
pub struct JobSchedule {
    /// Between two sweeps of lapsed reservations.
    pub sweep_interval: Duration,
    /// Between two daily scans.
    pub scan_interval: Duration,
    /// How many months of movement partitions to keep ahead.
    pub partition_months_ahead: u32,
}

/// Runs the background work until `shutdown` completes.
pub async fn run(
    store: Arc<dyn InventoryStore>,
    config: InventoryConfig,
    schedule: JobSchedule,
    shutdown: impl Future<Output = ()>,
) {
    let actor = Actor::system();
    let mut sweep = tokio::time::interval(schedule.sweep_interval);
    let mut scan = tokio::time::interval(schedule.scan_interval);
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    scan.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = sweep.tick() => sweep_reservations(store.as_ref(), &actor).await,
            _ = scan.tick() => daily_scan(store.as_ref(), config, schedule, &actor).await,
        }
    }
}

/// Gives back reservations whose hold has ended.
pub async fn sweep_reservations(store: &dyn InventoryStore, actor: &Actor) {
    match store
        .expire_allocations(Utc::now().naive_utc(), actor)
        .await
    {
        Ok(expired) if !expired.is_empty() => {
            tracing::info!(count = expired.len(), "released lapsed reservations");
        }
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "reservation sweep failed")
        }
    }
}

/// Partitions ahead, the expiry scan for today and reorder evaluation.
pub async fn daily_scan(
    store: &dyn InventoryStore,
    config: InventoryConfig,
    schedule: JobSchedule,
    actor: &Actor,
) {
    let today = config.today();
    let horizon = today
        .checked_add_months(Months::new(schedule.partition_months_ahead))
        .unwrap_or(today);
    match store.ensure_movement_partitions(horizon).await {
        Ok(added) if !added.is_empty() => tracing::info!(?added, "added movement partitions"),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "partition maintenance failed")
        }
    }
    match store.expiry_scan(today, config.expiry, actor).await {
        Ok(scan) => tracing::info!(
            scanned = scan.scanned,
            expired = scan.marked_expired.len(),
            alerts = scan.alerts.len(),
            "expiry scan"
        ),
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "expiry scan failed")
        }
    }
    match store.evaluate_reorder(None, None, today, actor).await {
        Ok(evaluations) => tracing::info!(evaluated = evaluations.len(), "reorder evaluation"),
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "reorder evaluation failed")
        }
    }
}
