//! Sync metrics: what one period (a minute) of real-time sync did, and the
//! lag percentiles over its deliveries.

use chrono::{DateTime, Duration, DurationRound, Utc};

/// One period's figures, as `sync_metrics` keeps them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeriodMetrics {
    /// The period's first instant.
    pub period_start: DateTime<Utc>,
    /// Its length in seconds.
    pub period_seconds: i32,
    /// Events recorded.
    pub events_recorded: i64,
    /// Deliveries accepted by their targets.
    pub deliveries_delivered: i64,
    /// Attempts that failed (retried or dead-lettered).
    pub attempts_failed: i64,
    /// Deliveries dead-lettered.
    pub dead_lettered: i64,
    /// Conflicts detected.
    pub conflicts_detected: i64,
    /// Of them, settled by a strategy without a person.
    pub conflicts_auto_resolved: i64,
    /// Lag from an event happening to its delivery: median, p95, p99, max
    /// (none when nothing was delivered).
    pub lag_ms: Option<LagPercentiles>,
}

/// Lag percentiles in milliseconds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LagPercentiles {
    /// Median.
    pub p50: i64,
    /// 95th percentile.
    pub p95: i64,
    /// 99th percentile.
    pub p99: i64,
    /// Largest.
    pub max: i64,
}

/// The nearest-rank percentiles of `lags` (milliseconds); none when empty.
pub fn percentiles(mut lags: Vec<i64>) -> Option<LagPercentiles> {
    if lags.is_empty() {
        return None;
    }
    lags.sort_unstable();
    let rank = |q: f64| {
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let index = ((q * lags.len() as f64).ceil() as usize).clamp(1, lags.len()) - 1;
        lags[index]
    };
    Some(LagPercentiles {
        p50: rank(0.50),
        p95: rank(0.95),
        p99: rank(0.99),
        max: lags[lags.len() - 1],
    })
}

/// The minute before the one `now` is in.
pub fn last_full_minute(now: DateTime<Utc>) -> DateTime<Utc> {
    now.duration_trunc(Duration::minutes(1)).unwrap_or(now) - Duration::minutes(1)
}

/// The share of conflicts settled without a person, 0–1 (1 when none).
pub fn auto_resolved_share(detected: i64, auto_resolved: i64) -> f64 {
    if detected <= 0 {
        1.0
    } else {
        #[allow(clippy::cast_precision_loss)]
        let share = auto_resolved as f64 / detected as f64;
        share
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_are_nearest_rank() {
        assert_eq!(percentiles(Vec::new()), None);
        let lags: Vec<i64> = (1..=100).rev().collect();
        assert_eq!(
            percentiles(lags),
            Some(LagPercentiles {
                p50: 50,
                p95: 95,
                p99: 99,
                max: 100
            })
        );
        assert_eq!(
            percentiles(vec![7]),
            Some(LagPercentiles {
                p50: 7,
                p95: 7,
                p99: 7,
                max: 7
            })
        );
    }

    #[test]
    fn the_last_full_minute_and_the_auto_share() {
        let now = DateTime::parse_from_rfc3339("2026-12-01T10:21:37Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(
            last_full_minute(now).to_rfc3339(),
            "2026-12-01T10:20:00+00:00"
        );
        assert!((auto_resolved_share(10, 9) - 0.9).abs() < 1e-9);
        assert!((auto_resolved_share(0, 0) - 1.0).abs() < 1e-9);
    }
}
