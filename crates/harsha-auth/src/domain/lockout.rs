//! Account lockout after failed logins: N failures within a window lock the
//! account for a period (defaults 5, 15 minutes, 15 minutes). The window
//! starts at the first failure after the last success or lock; a success
//! clears the count; a lock, once over, starts afresh.

use chrono::{DateTime, Duration, Utc};
use serde::Serialize;

/// The lockout rule.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LockoutPolicy {
    /// Failures that lock the account.
    pub max_failures: u32,
    /// Within how long.
    pub window: Duration,
    /// For how long.
    pub lock_for: Duration,
}

impl Default for LockoutPolicy {
    fn default() -> Self {
        Self {
            max_failures: 5,
            window: Duration::minutes(15),
            lock_for: Duration::minutes(15),
        }
    }
}

/// A user's failed-login state.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Failures {
    /// Failures counted in the current window.
    pub count: u32,
    /// When the window started.
    pub first_at: Option<DateTime<Utc>>,
    /// Until when the account is locked.
    pub locked_until: Option<DateTime<Utc>>,
}

impl LockoutPolicy {
    /// Whether the account is locked at `now`.
    pub fn is_locked(&self, failures: Failures, now: DateTime<Utc>) -> bool {
        failures.locked_until.is_some_and(|until| now < until)
    }

    /// The state after a failed login at `now`.
    pub fn after_failure(&self, failures: Failures, now: DateTime<Utc>) -> Failures {
        if self.is_locked(failures, now) {
            return failures;
        }
        let in_window = failures
            .first_at
            .is_some_and(|first| now - first < self.window)
            && failures.locked_until.is_none();
        let (count, first_at) = if in_window {
            (failures.count.saturating_add(1), failures.first_at)
        } else {
            (1, Some(now))
        };
        if count >= self.max_failures {
            Failures {
                count: 0,
                first_at: None,
                locked_until: Some(now + self.lock_for),
            }
        } else {
            Failures {
                count,
                first_at,
                locked_until: None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fifth_failure_in_the_window_locks_and_the_lock_lifts_after_the_period() {
        let policy = LockoutPolicy::default();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let mut state = Failures::default();
        for i in 0..4 {
            state = policy.after_failure(state, start + Duration::minutes(i));
            assert!(
                !policy.is_locked(state, start + Duration::minutes(i)),
                "failure {}",
                i + 1
            );
        }
        state = policy.after_failure(state, start + Duration::minutes(4));
        let locked_at = start + Duration::minutes(4);
        assert!(
            policy.is_locked(state, locked_at),
            "the fifth failure locks"
        );
        assert!(policy.is_locked(
            state,
            locked_at + Duration::minutes(15) - Duration::seconds(1)
        ));
        assert!(
            !policy.is_locked(state, locked_at + Duration::minutes(15)),
            "lifted after 15 minutes"
        );
        // Failures while locked change nothing; after the lock, counting starts afresh.
        assert_eq!(
            policy.after_failure(state, locked_at + Duration::minutes(1)),
            state
        );
        let after = policy.after_failure(state, locked_at + Duration::minutes(16));
        assert_eq!((after.count, after.locked_until), (1, None));
    }

    #[test]
    fn failures_outside_the_window_start_a_new_count() {
        let policy = LockoutPolicy::default();
        let start = DateTime::from_timestamp(1_800_000_000, 0).unwrap_or_default();
        let mut state = Failures::default();
        for i in 0..4 {
            state = policy.after_failure(state, start + Duration::minutes(i));
        }
        state = policy.after_failure(state, start + Duration::minutes(15));
        assert_eq!(state.count, 1, "the window of the first failure has passed");
        assert!(!policy.is_locked(state, start + Duration::minutes(15)));
    }
}
