//! The Sync service's background work, run inside the service: every
//! minute the figures of the minute before are written to `sync_metrics`
//! (the five minutes before start are caught up) and due batch runs start;
//! runs a stopped process left running are marked failed; at start and then daily,
//! monthly `sync_events` partitions are added ahead and the retention
//! policy is applied. Each run is independent: a failure is logged and the
//! next run tries again.

use std::{sync::Arc, time::Duration};

use chrono::{Months, Utc};

use crate::{SyncStore, batch::BatchRunner, domain::metrics::last_full_minute, store::Retention};

/// What the background work keeps.
#[derive(Debug, Clone, Copy)]
pub struct Upkeep {
    /// Months of partitions kept ahead (PostgreSQL).
    pub partition_months_ahead: u32,
    /// How long data is kept.
    pub retention: Retention,
}

/// Runs the background work until `shutdown` completes.
pub async fn run(store: Arc<dyn SyncStore>, upkeep: Upkeep, shutdown: impl Future<Output = ()>) {
    tokio::pin!(shutdown);
    match store.fail_interrupted_batch_runs(Utc::now()).await {
        Ok(0) => {}
        Ok(n) => tracing::warn!(
            runs = n,
            "batch runs left running by a stopped process marked failed"
        ),
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "interrupted batch runs not marked")
        }
    }
    let batches = BatchRunner::new(Arc::clone(&store));
    let last = last_full_minute(Utc::now());
    for minutes_back in (0..5).rev() {
        write_metrics(
            store.as_ref(),
            last - chrono::Duration::minutes(minutes_back),
        )
        .await;
    }
    let mut next_daily = tokio::time::Instant::now();
    loop {
        let now = Utc::now();
        let into_minute = Duration::from_millis(u64::from(now.timestamp_subsec_millis()))
            + Duration::from_secs(u64::from(chrono::Timelike::second(&now)));
        // A moment past the minute, so the minute's last writes are in.
        let until_next_minute = Duration::from_secs(62).saturating_sub(into_minute);
        tokio::select! {
            () = &mut shutdown => return,
            () = tokio::time::sleep_until(next_daily) => {
                daily(store.as_ref(), upkeep).await;
                next_daily = tokio::time::Instant::now() + Duration::from_secs(24 * 3600);
            }
            () = tokio::time::sleep(until_next_minute) => {
                write_metrics(store.as_ref(), last_full_minute(Utc::now())).await;
                batches.run_due(Utc::now()).await;
            }
        }
    }
}

async fn write_metrics(store: &dyn SyncStore, minute: chrono::DateTime<Utc>) {
    if let Err(error) = store.record_metrics(minute, 60, Utc::now()).await {
        tracing::warn!(error = %harsha_store::status::error_chain(&error), "sync metrics not written");
    }
}

/// Adds partitions ahead and applies the retention policy.
pub async fn daily(store: &dyn SyncStore, upkeep: Upkeep) {
    let today = Utc::now().date_naive();
    let horizon = today
        .checked_add_months(Months::new(upkeep.partition_months_ahead))
        .unwrap_or(today);
    match store.ensure_partitions(horizon).await {
        Ok(added) if !added.is_empty() => tracing::info!(?added, "added sync_events partitions"),
        Ok(_) => {}
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "sync partition maintenance failed")
        }
    }
    match store.enforce_retention(upkeep.retention, Utc::now()).await {
        Ok(report) => {
            if !report.detached.is_empty() || !report.dropped.is_empty() || report.deleted_rows > 0
            {
                tracing::info!(detached = ?report.detached, dropped = ?report.dropped, deleted_rows = report.deleted_rows, "sync retention applied");
            }
        }
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "sync retention failed")
        }
    }
}
