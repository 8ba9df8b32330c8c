//! Batch sync runs: a route's events of a time range extracted, mapped,
//! validated and bulk-loaded into its target; how a run ends and what it
//! records.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::values::ValueError;

/// The most errors a run keeps.
pub const MAX_ERRORS: usize = 20;

/// Where a batch run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BatchStatus {
    /// Under way.
    Running,
    /// Every row loaded.
    Succeeded,
    /// Finished, with rows or chunks refused.
    Partial,
    /// Stopped.
    Failed,
}

impl BatchStatus {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Partial => "partial",
            Self::Failed => "failed",
        }
    }

    /// The status stored as `value`.
    pub fn parse(value: &str) -> Result<Self, ValueError> {
        match value {
            "running" => Ok(Self::Running),
            "succeeded" => Ok(Self::Succeeded),
            "partial" => Ok(Self::Partial),
            "failed" => Ok(Self::Failed),
            other => Err(ValueError(format!("unknown batch run status {other:?}"))),
        }
    }
}

/// A batch run.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchRun {
    /// Its id.
    pub id: String,
    /// The route.
    pub configuration_id: String,
    /// The target.
    pub target: String,
    /// The entity type.
    pub entity_type: String,
    /// Events recorded from…
    pub since: DateTime<Utc>,
    /// …until (exclusive).
    pub until: DateTime<Utc>,
    /// Where it stands.
    pub status: BatchStatus,
    /// Who started it (`schedule` for the route's schedule).
    pub triggered_by: String,
    /// Rows read.
    pub rows_extracted: i64,
    /// Rows the target accepted.
    pub rows_loaded: i64,
    /// Rows refused.
    pub rows_rejected: i64,
    /// Chunks accepted.
    pub chunks_loaded: i32,
    /// Chunks refused or never accepted.
    pub chunks_failed: i32,
    /// The first errors.
    pub errors: Vec<String>,
    /// Started.
    pub started_at: DateTime<Utc>,
    /// Finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// Milliseconds reading.
    pub extract_ms: i64,
    /// Milliseconds mapping and validating.
    pub transform_ms: i64,
    /// Milliseconds loading.
    pub load_ms: i64,
}

impl BatchRun {
    /// Keeps `error` if fewer than [`MAX_ERRORS`] are kept.
    pub fn note_error(&mut self, error: impl Into<String>) {
        if self.errors.len() < MAX_ERRORS {
            self.errors.push(error.into());
        }
    }

    /// Ends the run at `now`: failed if it stopped, partial if anything was
    /// refused, succeeded otherwise.
    pub fn finish(&mut self, stopped: bool, now: DateTime<Utc>) {
        self.status = if stopped {
            BatchStatus::Failed
        } else if self.rows_rejected > 0 || self.chunks_failed > 0 {
            BatchStatus::Partial
        } else {
            BatchStatus::Succeeded
        };
        self.finished_at = Some(now);
    }
}

/// Checks a row as the target will receive it: the mapping must leave the
/// entity something to load.
pub fn validate(mapped: &Map<String, Value>) -> Result<(), String> {
    if mapped.is_empty() {
        return Err("the field mapping leaves no field to load".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run() -> BatchRun {
        let now = Utc::now();
        BatchRun {
            id: "r".into(),
            configuration_id: "c".into(),
            target: "t".into(),
            entity_type: "Item".into(),
            since: now,
            until: now,
            status: BatchStatus::Running,
            triggered_by: "ops".into(),
            rows_extracted: 10,
            rows_loaded: 10,
            rows_rejected: 0,
            chunks_loaded: 1,
            chunks_failed: 0,
            errors: Vec::new(),
            started_at: now,
            finished_at: None,
            extract_ms: 0,
            transform_ms: 0,
            load_ms: 0,
        }
    }

    #[test]
    fn a_run_ends_by_what_happened() {
        let mut clean = run();
        clean.finish(false, Utc::now());
        assert_eq!(clean.status, BatchStatus::Succeeded);
        let mut refused = run();
        refused.rows_rejected = 1;
        refused.finish(false, Utc::now());
        assert_eq!(refused.status, BatchStatus::Partial);
        let mut stopped = run();
        stopped.finish(true, Utc::now());
        assert_eq!(stopped.status, BatchStatus::Failed);
        let mut noisy = run();
        for i in 0..30 {
            noisy.note_error(format!("e{i}"));
        }
        assert_eq!(noisy.errors.len(), MAX_ERRORS);
        assert!(validate(&Map::new()).is_err());
    }
}
