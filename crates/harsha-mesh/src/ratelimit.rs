//! Multi-tier rate limits: every principal's plan allows so many requests
//! per minute, per hour and per day, all enforced at once on fixed windows
//! aligned to the clock (the windows `rate_limit_tracking` records). A
//! request passes only if every window has room; then it counts in all
//! three. A refused request counts as rejected and does not use up room.
//!
//! The answer carries what the `RateLimit-*` headers need: the tightest
//! window's limit, what remains in it and when it resets, and, when
//! refused, how long to wait. Usage accumulates in memory and is drained
//! in batches for reporting.

use std::{
    collections::HashMap,
    sync::{
        Mutex,
        atomic::{AtomicU64, Ordering},
    },
};

/// A plan's limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Requests per minute.
    pub per_minute: u64,
    /// Requests per hour.
    pub per_hour: u64,
    /// Requests per day.
    pub per_day: u64,
}

/// A window length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Window {
    /// 60 s.
    Minute,
    /// 3,600 s.
    Hour,
    /// 86,400 s.
    Day,
}

impl Window {
    /// Every window, shortest first.
    pub const ALL: [Window; 3] = [Window::Minute, Window::Hour, Window::Day];

    /// Its length in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Self::Minute => 60,
            Self::Hour => 3_600,
            Self::Day => 86_400,
        }
    }

    /// Its name in `rate_limit_tracking.window_kind`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
        }
    }

    /// Its limit under `limits`.
    pub fn limit(self, limits: Limits) -> u64 {
        match self {
            Self::Minute => limits.per_minute,
            Self::Hour => limits.per_hour,
            Self::Day => limits.per_day,
        }
    }

    /// The start (Unix seconds) of the window holding `now`.
    pub fn start(self, now: i64) -> i64 {
        now - now.rem_euclid(self.seconds())
    }
}

/// The answer for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decision {
    /// Whether it may proceed.
    pub allowed: bool,
    /// The tightest window's limit.
    pub limit: u64,
    /// Requests left in the tightest window (after this one).
    pub remaining: u64,
    /// Seconds until the tightest window resets.
    pub reset: u64,
    /// Which window decided.
    pub window: Window,
    /// When refused: seconds until a request could pass.
    pub retry_after: Option<u64>,
}

/// Requests and refusals of one principal in one window.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Usage {
    /// The principal (`user:<id>`, `key:<id>` or `ip:<address>`).
    pub principal: String,
    /// The window.
    pub window: Window,
    /// Its start, Unix seconds.
    pub window_start: i64,
    /// Requests admitted.
    pub requests: u64,
    /// Requests refused.
    pub rejected: u64,
}

/// A principal's window, by its start.
type UsageKey = (String, Window, i64);
/// Requests admitted and refused.
type UsageCounts = (u64, u64);

impl Decision {
    /// The answer for a request that finds `before` requests already
    /// counted in the minute, hour and day windows holding `now`: it passes
    /// only if every window has room, and then counts in all three. Every
    /// counter store (memory, Redis) decides with this one rule.
    pub fn of_counts(limits: Limits, now: i64, before: [u64; 3]) -> Self {
        let ends_in = |window: Window| window.start(now) + window.seconds() - now;
        let full = Window::ALL
            .into_iter()
            .zip(before)
            .filter(|(window, count)| *count >= window.limit(limits))
            .map(|(window, _)| (window, ends_in(window)))
            .max_by_key(|(_, wait)| *wait);
        let allowed = full.is_none();
        let after = if allowed {
            before.map(|c| c + 1)
        } else {
            before
        };
        // The tightest window: the one with the least room left.
        let (window, count) = Window::ALL
            .into_iter()
            .zip(after)
            .min_by_key(|(window, count)| window.limit(limits).saturating_sub(*count))
            .unwrap_or((Window::Minute, after[0]));
        let limit = window.limit(limits);
        Self {
            allowed,
            limit,
            remaining: limit.saturating_sub(count),
            reset: u64::try_from(ends_in(window)).unwrap_or(0),
            window: full.map_or(window, |(w, _)| w),
            retry_after: full.map(|(_, wait)| u64::try_from(wait).unwrap_or(0).max(1)),
        }
    }
}

#[derive(Debug, Default, Clone, Copy)]
struct Counter {
    start: i64,
    count: u64,
}

/// The in-memory limiter (one per edge replica): per principal, a counter
/// for each window.
#[derive(Debug, Default)]
pub struct RateLimiter {
    counters: Mutex<HashMap<String, [Counter; 3]>>,
    usage: Mutex<HashMap<UsageKey, UsageCounts>>,
    refused: AtomicU64,
}

impl RateLimiter {
    /// An empty limiter.
    pub fn new() -> Self {
        Self::default()
    }

    /// Decides a request of `principal` under `limits` at `now` (Unix
    /// seconds), counting it if it passes.
    pub fn check(&self, principal: &str, limits: Limits, now: i64) -> Decision {
        let mut counters = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = counters.get(principal).copied().unwrap_or_default();
        let mut before = [0; 3];
        for (i, window) in Window::ALL.into_iter().enumerate() {
            if current[i].start == window.start(now) {
                before[i] = current[i].count;
            }
        }
        let decision = Decision::of_counts(limits, now, before);
        if decision.allowed {
            let counted = std::array::from_fn(|i| Counter {
                start: Window::ALL[i].start(now),
                count: before[i] + 1,
            });
            match counters.get_mut(principal) {
                Some(slot) => *slot = counted,
                None => {
                    counters.insert(principal.to_owned(), counted);
                }
            }
        }
        drop(counters);
        self.record(principal, now, decision.allowed);
        decision
    }

    /// Adds one request of `principal` at `now` to the usage report (done
    /// by [`check`](Self::check); for decisions taken elsewhere).
    pub fn record(&self, principal: &str, now: i64, allowed: bool) {
        if !allowed {
            self.refused.fetch_add(1, Ordering::Relaxed);
        }
        let mut usage = self
            .usage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for window in Window::ALL {
            let entry = usage
                .entry((principal.to_owned(), window, window.start(now)))
                .or_default();
            if allowed {
                entry.0 += 1;
            } else {
                entry.1 += 1;
            }
        }
    }

    /// Takes the usage accumulated since the last drain.
    pub fn drain_usage(&self) -> Vec<Usage> {
        let taken = std::mem::take(
            &mut *self
                .usage
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        let mut rows: Vec<Usage> = taken
            .into_iter()
            .map(
                |((principal, window, window_start), (requests, rejected))| Usage {
                    principal,
                    window,
                    window_start,
                    requests,
                    rejected,
                },
            )
            .collect();
        rows.sort_by(|a, b| {
            (&a.principal, a.window, a.window_start).cmp(&(&b.principal, b.window, b.window_start))
        });
        rows
    }

    /// Requests refused since start (for alerting).
    pub fn refused_total(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Forgets counters of windows that have ended (bounds memory).
    pub fn sweep(&self, now: i64) {
        self.counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .retain(|_, counters| {
                Window::ALL
                    .into_iter()
                    .zip(counters.iter())
                    .any(|(window, counter)| counter.start == window.start(now))
            });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PLAN: Limits = Limits {
        per_minute: 3,
        per_hour: 5,
        per_day: 7,
    };

    /// 2026-11-26 10:00:00 UTC, a whole hour (and minute).
    const T0: i64 = 1_795_687_200;

    #[test]
    fn the_minute_limit_refuses_the_fourth_in_a_minute_then_lifts() {
        let limiter = RateLimiter::new();
        for n in 0..3 {
            let decision = limiter.check("user:a", PLAN, T0 + n);
            assert!(decision.allowed);
            assert_eq!(decision.window, Window::Minute);
            assert_eq!(decision.remaining, 2 - u64::try_from(n).unwrap_or(0));
        }
        let refused = limiter.check("user:a", PLAN, T0 + 10);
        assert!(!refused.allowed);
        assert_eq!(refused.window, Window::Minute);
        assert_eq!(refused.retry_after, Some(50));
        assert_eq!(refused.reset, 50);
        // Someone else is not affected.
        assert!(limiter.check("user:b", PLAN, T0 + 10).allowed);
        // The next minute has room again.
        assert!(limiter.check("user:a", PLAN, T0 + 60).allowed);
    }

    #[test]
    fn a_burst_within_the_minute_limit_can_still_break_the_hour() {
        let limiter = RateLimiter::new();
        for minute in 0..2 {
            for n in 0..3 {
                let decision = limiter.check("key:k", PLAN, T0 + minute * 60 + n);
                // Five pass in the hour: 3 in the first minute, 2 in the second.
                assert_eq!(
                    decision.allowed,
                    minute == 0 || n < 2,
                    "minute {minute} request {n}"
                );
            }
        }
        let refused = limiter.check("key:k", PLAN, T0 + 150);
        assert!(!refused.allowed);
        assert_eq!(refused.window, Window::Hour);
        assert_eq!(refused.retry_after, Some(3600 - 150));
        // The next hour, the day limit still has 2 left.
        assert!(limiter.check("key:k", PLAN, T0 + 3600).allowed);
        assert!(limiter.check("key:k", PLAN, T0 + 3601).allowed);
        let day = limiter.check("key:k", PLAN, T0 + 3602);
        assert!(!day.allowed);
        assert_eq!(day.window, Window::Day);
    }

    #[test]
    fn usage_is_drained_per_window_with_refusals() {
        let limiter = RateLimiter::new();
        for n in 0..4 {
            limiter.check("ip:10.0.0.1", PLAN, T0 + n);
        }
        let usage = limiter.drain_usage();
        let minute = usage
            .iter()
            .find(|u| u.window == Window::Minute)
            .map(|u| (u.requests, u.rejected));
        assert_eq!(minute, Some((3, 1)));
        assert_eq!(usage.len(), 3);
        assert!(limiter.drain_usage().is_empty());
        assert_eq!(limiter.refused_total(), 1);
        limiter.sweep(T0 + 86_400);
        assert!(limiter.check("ip:10.0.0.1", PLAN, T0 + 86_400).allowed);
    }
}
