//! The Inventory service's background work, run inside the service:
//!
//! - every `sweep_interval`, reservations whose hold has ended are given
//!   back;
//! - at start and then every day at `daily_scan_at` (local time in the
//!   business time zone, 00:05 by default), movement partitions are added
//!   ahead, the expiry scan runs for the new day, and reorder points are
//!   evaluated.
//!
//! Each run is independent: a failure is logged and the next run tries
//! again. The same operations are reachable on demand over gRPC.

use std::{sync::Arc, time::Duration};

use chrono::{DateTime, Days, Months, NaiveTime, TimeZone, Utc};
use chrono_tz::Tz;

use crate::{InventoryConfig, InventoryStore, domain::Actor};

/// How often the background work runs.
#[derive(Debug, Clone, Copy)]
pub struct JobSchedule {
    /// Between two sweeps of lapsed reservations.
    pub sweep_interval: Duration,
    /// The local time (business time zone) of the daily scan.
    pub daily_scan_at: NaiveTime,
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
    sweep.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tokio::pin!(shutdown);
    // The first scan runs at start, so a service down at the scan time
    // catches up when it comes back.
    let mut next_scan = tokio::time::Instant::now();
    loop {
        tokio::select! {
            () = &mut shutdown => return,
            _ = sweep.tick() => sweep_reservations(store.as_ref(), &actor).await,
            () = tokio::time::sleep_until(next_scan) => {
                daily_scan(store.as_ref(), config, schedule, &actor).await;
                let wait = until_next(Utc::now(), config.time_zone, schedule.daily_scan_at);
                next_scan = tokio::time::Instant::now() + wait;
            }
        }
    }
}

/// How long from `now` until the next `at` (local time in `zone`).
pub fn until_next(now: DateTime<Utc>, zone: Tz, at: NaiveTime) -> Duration {
    let local_today = now.with_timezone(&zone).date_naive();
    (0..=2)
        .filter_map(|days| local_today.checked_add_days(Days::new(days)))
        .filter_map(|day| zone.from_local_datetime(&day.and_time(at)).earliest())
        .map(|when| when.with_timezone(&Utc))
        .find(|when| *when > now)
        .and_then(|when| (when - now).to_std().ok())
        .unwrap_or(Duration::from_secs(24 * 3600))
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
        Ok(scan) => {
            tracing::info!(
                scanned = scan.scanned,
                expired = scan.marked_expired.len(),
                alerts = scan.alerts.len(),
                "expiry scan"
            );
            publish_expiry_levels(&scan);
        }
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

/// Batches with stock on hand at each expiry level, as of the last scan
/// (the "batch expiry within 7 days" alert reads `critical`).
fn publish_expiry_levels(scan: &crate::store::ExpiryScan) {
    use crate::domain::ExpiryLevel;
    for (level, label) in [
        (ExpiryLevel::Expired, "expired"),
        (ExpiryLevel::Critical, "critical"),
        (ExpiryLevel::Warning, "warning"),
    ] {
        let count = scan.by_level.get(level.as_str()).copied().unwrap_or(0);
        #[allow(clippy::cast_precision_loss)]
        metrics::gauge!("harsha_inventory_batches_near_expiry", "level" => label).set(count as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_next_scan_is_the_next_local_occurrence() {
        let zone = chrono_tz::Asia::Kolkata;
        let at = NaiveTime::from_hms_opt(0, 5, 0).unwrap_or_default();
        // 18:30 UTC is midnight in Kolkata: the scan is five minutes away.
        let now = Utc.with_ymd_and_hms(2026, 11, 26, 18, 30, 0).unwrap();
        assert_eq!(until_next(now, zone, at), Duration::from_secs(300));
        // Just after it, the next one is a day on.
        let later = Utc.with_ymd_and_hms(2026, 11, 26, 18, 35, 1).unwrap();
        assert_eq!(
            until_next(later, zone, at),
            Duration::from_secs(24 * 3600 - 1)
        );
    }
}
