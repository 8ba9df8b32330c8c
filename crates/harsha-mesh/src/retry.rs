//! A retry budget, as Finagle and Linkerd keep one: every call deposits a
//! fraction of a retry (the `ratio`, e.g. 0.2 lets retries add at most 20 %
//! to the load), a small floor refills with time so a quiet client can
//! still retry, and a retry withdraws a whole one. When an upstream fails
//! outright, retries stop once the budget is spent instead of multiplying
//! the load on it.

use std::{sync::Mutex, time::Instant};

/// How much retrying is allowed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BudgetSettings {
    /// Retries earned per call made.
    pub ratio: f64,
    /// Retries allowed per second regardless of traffic.
    pub min_per_second: f64,
    /// The most retries that can be saved up.
    pub max_saved: f64,
}

impl Default for BudgetSettings {
    fn default() -> Self {
        Self {
            ratio: 0.2,
            min_per_second: 5.0,
            max_saved: 100.0,
        }
    }
}

#[derive(Debug)]
struct Balance {
    retries: f64,
    at: Instant,
}

/// One budget (the edge keeps one for all its calls).
#[derive(Debug)]
pub struct RetryBudget {
    settings: BudgetSettings,
    balance: Mutex<Balance>,
}

impl RetryBudget {
    /// A budget starting with one second's floor saved.
    pub fn new(settings: BudgetSettings, now: Instant) -> Self {
        Self {
            settings,
            balance: Mutex::new(Balance {
                retries: settings.min_per_second.min(settings.max_saved),
                at: now,
            }),
        }
    }

    fn with<T>(&self, now: Instant, change: impl FnOnce(&mut f64) -> T) -> T {
        let mut balance = self
            .balance
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let elapsed = now.saturating_duration_since(balance.at).as_secs_f64();
        balance.at = balance.at.max(now);
        balance.retries =
            (balance.retries + elapsed * self.settings.min_per_second).min(self.settings.max_saved);
        change(&mut balance.retries)
    }

    /// Records a call made (not a retry).
    pub fn deposit(&self, now: Instant) {
        let ratio = self.settings.ratio;
        let max = self.settings.max_saved;
        self.with(now, |retries| *retries = (*retries + ratio).min(max));
    }

    /// Takes one retry if the budget has it.
    pub fn try_withdraw(&self, now: Instant) -> bool {
        self.with(now, |retries| {
            // A hair under one, so sums of fractions that should make a
            // whole one do despite rounding.
            if *retries >= 1.0 - 1e-9 {
                *retries -= 1.0;
                true
            } else {
                false
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    const SETTINGS: BudgetSettings = BudgetSettings {
        ratio: 0.2,
        min_per_second: 2.0,
        max_saved: 50.0,
    };

    #[test]
    fn retries_are_a_fifth_of_the_calls_plus_the_floor() {
        let start = Instant::now();
        let budget = RetryBudget::new(SETTINGS, start);
        for _ in 0..100 {
            budget.deposit(start);
        }
        let mut allowed = 0;
        while budget.try_withdraw(start) {
            allowed += 1;
        }
        // 2 saved at start, 20 earned by 100 calls.
        assert_eq!(allowed, 22);
        // The floor refills with time only.
        assert!(!budget.try_withdraw(start + Duration::from_millis(100)));
        assert!(budget.try_withdraw(start + Duration::from_millis(600)));
    }

    #[test]
    fn savings_are_capped() {
        let start = Instant::now();
        let budget = RetryBudget::new(SETTINGS, start);
        let later = start + Duration::from_secs(3_600);
        let mut allowed = 0;
        while budget.try_withdraw(later) {
            allowed += 1;
        }
        assert_eq!(allowed, 50);
    }
}
