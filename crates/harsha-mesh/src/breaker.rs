//! A circuit breaker per upstream endpoint, with the seed's semantics:
//! consecutive failures (transport errors, timeouts, UNAVAILABLE, INTERNAL —
//! never a client's error) open it; while open, calls fail fast; after the
//! open period it is half-open and lets exactly one trial call through;
//! the trial's success closes it, its failure opens it again. Every
//! transition is logged and counted.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

/// When a breaker opens and for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerSettings {
    /// Consecutive failures that open it.
    pub failures_to_open: u32,
    /// How long it stays open before a trial.
    pub open_for: Duration,
}

impl Default for BreakerSettings {
    fn default() -> Self {
        Self {
            failures_to_open: 5,
            open_for: Duration::from_secs(60),
        }
    }
}

/// What a call's answer says about the upstream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// It answered (even with a client's error).
    Healthy,
    /// It failed: unreachable, timed out, UNAVAILABLE, INTERNAL.
    Failed,
}

impl Outcome {
    /// How a gRPC code counts.
    pub fn of_code(code: tonic::Code) -> Self {
        match code {
            tonic::Code::Unavailable
            | tonic::Code::Internal
            | tonic::Code::DeadlineExceeded
            | tonic::Code::Unknown
            | tonic::Code::DataLoss => Self::Failed,
            _ => Self::Healthy,
        }
    }
}

/// The breaker's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// Calls pass; this many failures in a row so far.
    Closed(u32),
    /// Calls fail fast until then.
    Open(Instant),
    /// One trial call is (or may be) under way.
    HalfOpen {
        /// Whether the trial has been let through.
        trial_out: bool,
    },
}

/// One upstream's breaker.
#[derive(Debug)]
pub struct CircuitBreaker {
    name: String,
    settings: BreakerSettings,
    state: Mutex<State>,
    transitions: AtomicU64,
}

/// Leave to make one call; report how it went with [`Ticket::record`]. A
/// trial ticket dropped unreported counts as a failure.
#[derive(Debug)]
pub struct Ticket {
    breaker: Arc<CircuitBreaker>,
    trial: bool,
    recorded: bool,
}

impl CircuitBreaker {
    /// A closed breaker for the upstream `name`.
    pub fn new(name: impl Into<String>, settings: BreakerSettings) -> Arc<Self> {
        Arc::new(Self {
            name: name.into(),
            settings,
            state: Mutex::new(State::Closed(0)),
            transitions: AtomicU64::new(0),
        })
    }

    /// The current state.
    pub fn state(&self) -> State {
        *self.lock()
    }

    /// Transitions since start.
    pub fn transitions(&self) -> u64 {
        self.transitions.load(Ordering::Relaxed)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn move_to(&self, state: &mut State, next: State) {
        let from = *state;
        *state = next;
        self.transitions.fetch_add(1, Ordering::Relaxed);
        let (from, to) = (label(from), label(next));
        tracing::warn!(upstream = %self.name, from, to, "circuit breaker");
        metrics::counter!("harsha_breaker_transitions_total", "upstream" => self.name.clone(), "to" => to)
            .increment(1);
        // 0 closed, 1 half-open, 2 open: alert rules read "> 0".
        let level = match next {
            State::Closed(_) => 0.0,
            State::HalfOpen { .. } => 1.0,
            State::Open(_) => 2.0,
        };
        metrics::gauge!("harsha_breaker_state", "upstream" => self.name.clone()).set(level);
    }

    /// Leave to call at `now`, or how long until a trial may go.
    pub fn acquire(self: &Arc<Self>, now: Instant) -> Result<Ticket, Duration> {
        let mut state = self.lock();
        let trial = match *state {
            State::Closed(_) => false,
            State::Open(until) if now < until => return Err(until - now),
            State::Open(_) => {
                self.move_to(&mut state, State::HalfOpen { trial_out: true });
                true
            }
            State::HalfOpen { trial_out: true } => return Err(Duration::from_secs(1)),
            State::HalfOpen { trial_out: false } => {
                *state = State::HalfOpen { trial_out: true };
                true
            }
        };
        Ok(Ticket {
            breaker: Arc::clone(self),
            trial,
            recorded: false,
        })
    }

    fn record(&self, trial: bool, outcome: Outcome, now: Instant) {
        let mut state = self.lock();
        match (*state, outcome) {
            (State::Closed(_), Outcome::Healthy) => *state = State::Closed(0),
            (State::Closed(failures), Outcome::Failed) => {
                let failures = failures + 1;
                if failures >= self.settings.failures_to_open {
                    self.move_to(&mut state, State::Open(now + self.settings.open_for));
                } else {
                    *state = State::Closed(failures);
                }
            }
            (State::HalfOpen { .. }, Outcome::Healthy) if trial => {
                self.move_to(&mut state, State::Closed(0));
            }
            (State::HalfOpen { .. }, Outcome::Failed) if trial => {
                self.move_to(&mut state, State::Open(now + self.settings.open_for));
            }
            // A call let through before the breaker opened, answering late.
            _ => {}
        }
    }
}

impl Ticket {
    /// Reports how the call went.
    pub fn record(mut self, outcome: Outcome) {
        self.recorded = true;
        self.breaker.record(self.trial, outcome, Instant::now());
    }

    /// Reports how the call went, at `now` (for tests).
    pub fn record_at(mut self, outcome: Outcome, now: Instant) {
        self.recorded = true;
        self.breaker.record(self.trial, outcome, now);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if !self.recorded && self.trial {
            self.breaker.record(true, Outcome::Failed, Instant::now());
        }
    }
}

fn label(state: State) -> &'static str {
    match state {
        State::Closed(_) => "closed",
        State::Open(_) => "open",
        State::HalfOpen { .. } => "half-open",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn breaker() -> Arc<CircuitBreaker> {
        CircuitBreaker::new("customer", BreakerSettings::default())
    }

    #[test]
    fn five_failures_in_a_row_open_it_and_client_errors_do_not_count() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..4 {
            breaker
                .acquire(t0)
                .unwrap_or_else(|_| unreachable!())
                .record_at(Outcome::Failed, t0);
        }
        // A healthy answer (a client's error is one) resets the count.
        breaker
            .acquire(t0)
            .unwrap_or_else(|_| unreachable!())
            .record_at(Outcome::of_code(tonic::Code::NotFound), t0);
        assert_eq!(breaker.state(), State::Closed(0));
        for n in 1..=5 {
            breaker
                .acquire(t0)
                .unwrap_or_else(|_| unreachable!())
                .record_at(Outcome::of_code(tonic::Code::Unavailable), t0);
            if n < 5 {
                assert_eq!(breaker.state(), State::Closed(n));
            }
        }
        assert!(
            matches!(breaker.state(), State::Open(_)),
            "open after exactly 5"
        );
        assert_eq!(
            breaker.acquire(t0 + Duration::from_secs(10)).err(),
            Some(Duration::from_secs(50))
        );
    }

    #[test]
    fn after_the_open_period_one_trial_decides() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..5 {
            breaker
                .acquire(t0)
                .unwrap_or_else(|_| unreachable!())
                .record_at(Outcome::Failed, t0);
        }
        let later = t0 + Duration::from_secs(60);
        let trial = breaker.acquire(later).unwrap_or_else(|_| unreachable!());
        assert!(breaker.acquire(later).is_err(), "exactly one trial");
        trial.record_at(Outcome::Failed, later);
        assert!(
            matches!(breaker.state(), State::Open(until) if until == later + Duration::from_secs(60))
        );
        let again = later + Duration::from_secs(60);
        breaker
            .acquire(again)
            .unwrap_or_else(|_| unreachable!())
            .record_at(Outcome::Healthy, again);
        assert_eq!(breaker.state(), State::Closed(0));
        assert_eq!(
            breaker.transitions(),
            5,
            "open, half-open, open, half-open, closed"
        );
    }

    #[test]
    fn an_abandoned_trial_counts_as_failed() {
        let breaker = breaker();
        let t0 = Instant::now();
        for _ in 0..5 {
            breaker
                .acquire(t0)
                .unwrap_or_else(|_| unreachable!())
                .record_at(Outcome::Failed, t0);
        }
        drop(breaker.acquire(t0 + Duration::from_secs(61)));
        assert!(matches!(breaker.state(), State::Open(_)));
    }
}
