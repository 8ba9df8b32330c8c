//! The Sync service's background work, run inside the service: every
//! minute the figures of the minute before are written to `sync_metrics`
//! (the five minutes before start are caught up) and due batch runs start;
//! runs a stopped process left running are marked failed; at start and then daily,
//! monthly `sync_events` partitions are added ahead and the retention
//! policy is applied. Each run is independent: a failure is logged and the
//! next run tries again.

use std::{sync::Arc, time::Duration};

use chrono::{Months, Utc};

use crate::{
    SyncStore,
    batch::BatchRunner,
    domain::metrics::last_full_minute,
    store::{ConflictFilter, Retention},
};

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
    let now = Utc::now();
    match store.record_metrics(minute, 60, now).await {
        Ok(period) => publish_period(&period),
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "sync metrics not written");
        }
    }
    match store.backlog(now).await {
        Ok(backlog) => publish_backlog(&backlog),
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "sync backlog not read");
        }
    }
    let stale = ConflictFilter {
        stale_only: true,
        ..ConflictFilter::default()
    };
    match store.conflicts(&stale, 1, "", now).await {
        #[allow(clippy::cast_precision_loss)]
        Ok((_, count)) => metrics::gauge!("harsha_sync_conflicts_stale").set(count as f64),
        Err(error) => {
            tracing::warn!(error = %harsha_store::status::error_chain(&error), "stale conflicts not counted");
        }
    }
}

/// The last full minute's figures, as gauges: the whole Sync database's,
/// so every replica shows the same (alert rules take the max). Rules turn
/// them into rates with `avg_over_time(…[1h]) * 60`, exact whatever the
/// scrape interval.
#[allow(clippy::cast_precision_loss)]
fn publish_period(period: &crate::domain::metrics::PeriodMetrics) {
    for (what, value) in [
        ("events_recorded", period.events_recorded),
        ("deliveries_delivered", period.deliveries_delivered),
        ("attempts_failed", period.attempts_failed),
        ("dead_lettered", period.dead_lettered),
        ("conflicts_detected", period.conflicts_detected),
        ("conflicts_auto_resolved", period.conflicts_auto_resolved),
    ] {
        metrics::gauge!("harsha_sync_last_minute", "figure" => what).set(value as f64);
    }
    let lag = period.lag_ms.unwrap_or_default();
    for (quantile, ms) in [("0.5", lag.p50), ("0.95", lag.p95), ("0.99", lag.p99)] {
        metrics::gauge!("harsha_sync_lag_seconds", "quantile" => quantile).set(ms as f64 / 1000.0);
    }
}

/// Deliveries by state and the oldest pending one's wait.
#[allow(clippy::cast_precision_loss)]
fn publish_backlog(backlog: &crate::store::Backlog) {
    for (state, count) in [
        ("pending", backlog.pending),
        ("in_flight", backlog.in_flight),
        ("held", backlog.held),
        ("dead", backlog.dead_lettered),
    ] {
        metrics::gauge!("harsha_sync_deliveries", "state" => state).set(count as f64);
    }
    metrics::gauge!("harsha_sync_oldest_pending_seconds")
        .set(backlog.oldest_pending_ms as f64 / 1000.0);
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
