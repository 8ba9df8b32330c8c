//! The rules of delivery: the states a delivery goes through, which
//! answers are retried and which dead-letter at once, how long to wait
//! before the next attempt (exponential backoff with full jitter), and the
//! `Harsha-Signature` a webhook receiver checks.

use std::time::Duration;

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::values::ValueError;

/// The wait before the second attempt, doubled for each one after.
pub const BACKOFF_BASE: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const BACKOFF_CAP: Duration = Duration::from_secs(300);

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// Being attempted.
    InFlight,
    /// Accepted by the target.
    Delivered,
    /// Given up on.
    Dead,
    /// Waiting for a person to settle a conflict.
    Held,
    /// Not sent: a conflict kept the target's version.
    Skipped,
}

impl DeliveryState {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::InFlight => "in_flight",
            Self::Delivered => "delivered",
            Self::Dead => "dead",
            Self::Held => "held",
            Self::Skipped => "skipped",
        }
    }

    /// The state stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "pending" => Ok(Self::Pending),
            "in_flight" => Ok(Self::InFlight),
            "delivered" => Ok(Self::Delivered),
            "dead" => Ok(Self::Dead),
            "held" => Ok(Self::Held),
            "skipped" => Ok(Self::Skipped),
            other => Err(ValueError(format!("unknown delivery state {other:?}"))),
        }
    }
}

/// One event on its way to one target.
#[derive(Debug, Clone, PartialEq)]
pub struct Delivery {
    /// The event's position.
    pub position: i64,
    /// The target's name.
    pub target: String,
    /// The route that sent it there.
    pub configuration_id: String,
    /// The event's entity type.
    pub entity_type: String,
    /// The event's entity key.
    pub entity_key: String,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made.
    pub attempts: i32,
    /// When the next attempt is due.
    pub next_attempt_at: DateTime<Utc>,
    /// The last failure.
    pub last_error: Option<String>,
    /// When it was routed.
    pub created_at: DateTime<Utc>,
    /// When the target accepted it.
    pub delivered_at: Option<DateTime<Utc>>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// Accepted.
    Delivered,
    /// Failed; another attempt follows.
    Retrying,
    /// Failed; the delivery is dead-lettered.
    DeadLettered,
}

impl AttemptOutcome {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Retrying => "retrying",
            Self::DeadLettered => "dead_lettered",
        }
    }

    /// The outcome stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "delivered" => Ok(Self::Delivered),
            "retrying" => Ok(Self::Retrying),
            "dead_lettered" => Ok(Self::DeadLettered),
            other => Err(ValueError(format!("unknown attempt outcome {other:?}"))),
        }
    }
}

/// One attempt, as `sync_status` records it.
#[derive(Debug, Clone, PartialEq)]
pub struct Attempt {
    /// The event's position.
    pub position: i64,
    /// The target's name.
    pub target: String,
    /// 1 for the first.
    pub attempt: i32,
    /// How it ended.
    pub outcome: AttemptOutcome,
    /// The target's HTTP status, when it answered.
    pub http_status: Option<u16>,
    /// What went wrong.
    pub error: Option<String>,
    /// When it started.
    pub started_at: DateTime<Utc>,
    /// How long it took.
    pub duration_ms: i64,
}

/// What the target's answer (or its absence) means.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Accepted.
    Delivered,
    /// Worth another attempt: a timeout, a refused connection, 408, 425,
    /// 429 or 5xx.
    Retry(String),
    /// Never worth another attempt: any other 4xx, or a 1xx/3xx answer.
    Reject(String),
}

impl Verdict {
    /// The verdict on an HTTP status.
    pub fn of_status(status: u16) -> Self {
        match status {
            200..=299 => Self::Delivered,
            408 | 425 | 429 | 500..=599 => {
                Self::Retry(format!("the target answered HTTP {status}"))
            }
            _ => Self::Reject(format!("the target refused the event with HTTP {status}")),
        }
    }
}

/// The longest wait before attempt `next` (2 for the first retry):
/// `BACKOFF_BASE × 2^(next-2)`, capped at [`BACKOFF_CAP`]. The wait used is
/// drawn uniformly below it ("full jitter"), so retries of many deliveries
/// that failed together spread out.
pub fn backoff_ceiling(next: i32) -> Duration {
    let doublings = u32::try_from(next.saturating_sub(2)).unwrap_or(0).min(20);
    BACKOFF_BASE.saturating_mul(1 << doublings).min(BACKOFF_CAP)
}

/// The wait before attempt `next`, with full jitter drawn from `unit`
/// (uniform in [0, 1)); never under 100 ms.
pub fn backoff(next: i32, unit: f64) -> Duration {
    backoff_ceiling(next)
        .mul_f64(unit.clamp(0.0, 1.0))
        .max(Duration::from_millis(100))
}

/// The `Harsha-Signature` header value for `body` sent at `timestamp`
/// (unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA256 of "<t>.<body>">`.
pub fn signature(secret: &str, timestamp: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes())
        .unwrap_or_else(|_| unreachable!("HMAC accepts keys of any length"));
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    let digest = mac.finalize().into_bytes();
    let mut hex = String::with_capacity(digest.len() * 2);
    for byte in digest {
        hex.push_str(&format!("{byte:02x}"));
    }
    format!("t={timestamp},v1={hex}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_retried_or_rejected_by_status() {
        assert_eq!(Verdict::of_status(204), Verdict::Delivered);
        for status in [408, 425, 429, 500, 503] {
            assert!(
                matches!(Verdict::of_status(status), Verdict::Retry(_)),
                "{status}"
            );
        }
        for status in [301, 400, 401, 404, 422] {
            assert!(
                matches!(Verdict::of_status(status), Verdict::Reject(_)),
                "{status}"
            );
        }
    }

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter_below_it() {
        assert_eq!(backoff_ceiling(2), Duration::from_secs(1));
        assert_eq!(backoff_ceiling(3), Duration::from_secs(2));
        assert_eq!(backoff_ceiling(6), Duration::from_secs(16));
        assert_eq!(backoff_ceiling(30), BACKOFF_CAP);
        assert_eq!(backoff(4, 0.5), Duration::from_secs(2));
        assert_eq!(backoff(4, 0.0), Duration::from_millis(100));
        assert!(backoff(50, 0.999_999) <= BACKOFF_CAP);
    }

    #[test]
    fn signatures_are_hmac_sha256_of_timestamp_dot_body() {
        // Computed independently: Python's hmac.new(b"key",
        // b'1700000000.{"a":1}', hashlib.sha256).hexdigest().
        assert_eq!(
            signature("key", 1_700_000_000, br#"{"a":1}"#),
            "t=1700000000,v1=a438e398bfafc57e4396bb7fc2304422f0f768e965d073ca313cb52e22e6ad03"
        );
        assert_ne!(
            signature("key", 1_700_000_001, br#"{"a":1}"#),
            signature("key", 1_700_000_000, br#"{"a":1}"#)
        );
        assert_ne!(
            signature("other", 1_700_000_000, br#"{"a":1}"#),
            signature("key", 1_700_000_000, br#"{"a":1}"#)
        );
    }
}
