//! Batch sync: a batch-mode route's events of a time range are extracted in
//! position order, mapped (the route's field mapping), validated, and loaded
//! into the target in signed NDJSON chunks of up to [`CHUNK_ROWS`] events
//! (`Harsha-Batch-Run`, `Harsha-Batch-Chunk`, `Idempotency-Key:
//! <run>-<chunk>`). A chunk the target refuses (4xx) is counted as rejected
//! and the run goes on; a chunk it cannot take (5xx, timeouts) is tried
//! [`CHUNK_ATTEMPTS`] times, then the run stops as failed. Counts, the first
//! errors and the time spent extracting, transforming and loading are kept
//! in `sync_batch_runs` and, when the run ends, in `sync_metrics`.

use std::{sync::Arc, time::Instant};

use chrono::{DateTime, Duration, Utc};
use serde_json::json;
use uuid::Uuid;

use crate::{
    SyncError, SyncStore,
    dispatch::{WebhookClient, event_json},
    domain::{
        Configuration, SyncMode, Target, TargetKind, TargetName, Verdict,
        batch::{BatchRun, BatchStatus, validate},
        delivery::backoff,
    },
    store::stored,
};

/// Events per chunk.
pub const CHUNK_ROWS: u32 = 1_000;
/// Attempts of a chunk the target could not take before the run stops.
pub const CHUNK_ATTEMPTS: u32 = 3;
/// How far back a route's first run reaches when no start is given.
pub const FIRST_RUN_REACH: Duration = Duration::hours(24);

/// Starts and carries out batch runs.
#[derive(Clone)]
pub struct BatchRunner {
    store: Arc<dyn SyncStore>,
    client: WebhookClient,
}

fn millis(since: Instant) -> i64 {
    i64::try_from(since.elapsed().as_millis()).unwrap_or(i64::MAX)
}

impl BatchRunner {
    /// A runner on `store`.
    pub fn new(store: Arc<dyn SyncStore>) -> Self {
        Self {
            store,
            client: WebhookClient::default(),
        }
    }

    /// Records a run of `configuration` over `[since, until)` (defaults:
    /// from the end of its last run, or [`FIRST_RUN_REACH`] ago, until now)
    /// and carries it out in the background; the run as started.
    pub async fn start(
        &self,
        configuration: &Configuration,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        triggered_by: &str,
        now: DateTime<Utc>,
    ) -> Result<BatchRun, SyncError> {
        let (run, target) = self
            .prepare(configuration, since, until, triggered_by, now)
            .await?;
        let runner = self.clone();
        let configuration = configuration.clone();
        let started = run.clone();
        tokio::spawn(async move {
            runner.execute(run, target, configuration).await;
        });
        Ok(started)
    }

    /// Records a run and carries it out now; the run as it ended.
    pub async fn run_now(
        &self,
        configuration: &Configuration,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        triggered_by: &str,
        now: DateTime<Utc>,
    ) -> Result<BatchRun, SyncError> {
        let (run, target) = self
            .prepare(configuration, since, until, triggered_by, now)
            .await?;
        Ok(self.execute(run, target, configuration.clone()).await)
    }

    async fn prepare(
        &self,
        configuration: &Configuration,
        since: Option<DateTime<Utc>>,
        until: Option<DateTime<Utc>>,
        triggered_by: &str,
        now: DateTime<Utc>,
    ) -> Result<(BatchRun, Target), SyncError> {
        if configuration.mode != SyncMode::Batch {
            return Err(SyncError::FailedPrecondition(format!(
                "configuration {:?} delivers in real time; batch runs are for SYNC_MODE_BATCH routes",
                configuration.id
            )));
        }
        if !configuration.enabled {
            return Err(SyncError::FailedPrecondition(format!(
                "configuration {:?} is disabled",
                configuration.id
            )));
        }
        let name = TargetName::parse(&configuration.target)
            .map_err(|e| SyncError::corrupt("target", e))?;
        let target = self.store.target(&name).await?;
        if target.kind != TargetKind::Webhook {
            return Err(SyncError::FailedPrecondition(format!(
                "target {:?} is a gRPC sink; batch runs load into webhook targets",
                target.name
            )));
        }
        let (last, _) = self.store.last_batch_run(&configuration.id).await?;
        // Times as the databases keep them (to the microsecond).
        let now = stored(now);
        let since = since.map(stored);
        let until = until.map_or(now, stored);
        let since = since.unwrap_or_else(|| last.map_or(until - FIRST_RUN_REACH, |run| run.until));
        if since >= until {
            return Err(SyncError::invalid(
                "since",
                format!(
                    "{} is not before until ({})",
                    since.to_rfc3339(),
                    until.to_rfc3339()
                ),
            ));
        }
        let run = BatchRun {
            id: Uuid::now_v7().to_string(),
            configuration_id: configuration.id.clone(),
            target: configuration.target.clone(),
            entity_type: configuration.entity_type.clone(),
            since,
            until,
            status: BatchStatus::Running,
            triggered_by: triggered_by.to_owned(),
            rows_extracted: 0,
            rows_loaded: 0,
            rows_rejected: 0,
            chunks_loaded: 0,
            chunks_failed: 0,
            errors: Vec::new(),
            started_at: now,
            finished_at: None,
            extract_ms: 0,
            transform_ms: 0,
            load_ms: 0,
        };
        self.store.create_batch_run(&run).await?;
        Ok((run, target))
    }

    /// Extract → transform → validate → load, chunk by chunk; the run as
    /// it ended (also saved).
    #[tracing::instrument(name = "sync.batch_run", skip_all, fields(run = %run.id))]
    pub async fn execute(
        &self,
        mut run: BatchRun,
        target: Target,
        configuration: Configuration,
    ) -> BatchRun {
        let mut after = 0;
        let mut chunk = 0u32;
        let mut stopped = false;
        loop {
            let extracting = Instant::now();
            let events = self
                .store
                .batch_extract(
                    &run.entity_type,
                    configuration.source,
                    target.system,
                    run.since,
                    run.until,
                    after,
                    CHUNK_ROWS,
                )
                .await;
            run.extract_ms += millis(extracting);
            let events = match events {
                Ok(events) if events.is_empty() => break,
                Ok(events) => events,
                Err(error) => {
                    run.note_error(format!(
                        "reading events failed: {}",
                        harsha_store::status::error_chain(&error)
                    ));
                    stopped = true;
                    break;
                }
            };
            after = events.last().map_or(after, |e| e.position);
            run.rows_extracted += i64::try_from(events.len()).unwrap_or(i64::MAX);

            let transforming = Instant::now();
            chunk += 1;
            let mut body = Vec::with_capacity(events.len() * 256);
            let mut rows = 0i64;
            for event in &events {
                let mapped = configuration.mapping.apply(&event.change.payload);
                if let Err(reason) = validate(&mapped) {
                    run.rows_rejected += 1;
                    run.note_error(format!("position {}: {reason}", event.position));
                    continue;
                }
                let line = event_json(
                    event,
                    mapped,
                    json!({"target": target.name, "batch_run": run.id, "chunk": chunk}),
                );
                if serde_json::to_writer(&mut body, &line).is_ok() {
                    body.push(b'\n');
                    rows += 1;
                }
            }
            run.transform_ms += millis(transforming);
            if rows == 0 {
                continue;
            }

            let loading = Instant::now();
            let mut outcome = None;
            for attempt in 1..=CHUNK_ATTEMPTS {
                let (verdict, _) = self
                    .client
                    .post_chunk(&target, &run.id, chunk, body.clone())
                    .await;
                match verdict {
                    Verdict::Retry(error) if attempt < CHUNK_ATTEMPTS => {
                        tracing::warn!(chunk, attempt, %error, "batch chunk not taken; trying again");
                        let wait = backoff(
                            i32::try_from(attempt).unwrap_or(i32::MAX) + 1,
                            rand::random(),
                        );
                        tokio::time::sleep(wait).await;
                    }
                    other => {
                        outcome = Some(other);
                        break;
                    }
                }
            }
            run.load_ms += millis(loading);
            match outcome {
                Some(Verdict::Delivered) => {
                    run.rows_loaded += rows;
                    run.chunks_loaded += 1;
                }
                Some(Verdict::Reject(error)) => {
                    run.rows_rejected += rows;
                    run.chunks_failed += 1;
                    run.note_error(format!("chunk {chunk}: {error}"));
                }
                Some(Verdict::Retry(error)) => {
                    run.chunks_failed += 1;
                    run.note_error(format!(
                        "chunk {chunk}: {error} (after {CHUNK_ATTEMPTS} attempts; the run stops)"
                    ));
                    stopped = true;
                    break;
                }
                None => {
                    run.chunks_failed += 1;
                    stopped = true;
                    break;
                }
            }
            if let Err(error) = self.store.save_batch_run(&run).await {
                tracing::warn!(error = %harsha_store::status::error_chain(&error), "batch run progress not saved");
            }
        }
        run.finish(stopped, stored(Utc::now()));
        if let Err(error) = self.store.save_batch_run(&run).await {
            tracing::error!(error = %harsha_store::status::error_chain(&error), "batch run end not saved");
        }
        tracing::info!(
            status = run.status.as_str(),
            extracted = run.rows_extracted,
            loaded = run.rows_loaded,
            rejected = run.rows_rejected,
            "batch run finished"
        );
        run
    }

    /// Starts the runs of batch routes whose schedule is due: every
    /// `batch_every_minutes` from the end of their last run.
    pub async fn run_due(&self, now: DateTime<Utc>) {
        let routes = match self.store.configurations(None, None).await {
            Ok(routes) => routes,
            Err(error) => {
                tracing::warn!(error = %harsha_store::status::error_chain(&error), "batch schedule not read");
                return;
            }
        };
        for route in routes
            .iter()
            .filter(|r| r.enabled && r.mode == SyncMode::Batch && r.batch_every_minutes > 0)
        {
            let due = match self.store.last_batch_run(&route.id).await {
                Ok((_, true)) => false,
                Ok((Some(last), false)) => {
                    last.until + Duration::minutes(i64::from(route.batch_every_minutes)) <= now
                }
                Ok((None, false)) => true,
                Err(error) => {
                    tracing::warn!(error = %harsha_store::status::error_chain(&error), "batch schedule not read");
                    false
                }
            };
            if due {
                match self.start(route, None, Some(now), "schedule", now).await {
                    Ok(run) => {
                        tracing::info!(run = %run.id, route = %route.id, "scheduled batch run started")
                    }
                    // Another replica started it first.
                    Err(SyncError::FailedPrecondition(_)) => {}
                    Err(error) => {
                        tracing::warn!(error = %harsha_store::status::error_chain(&error), route = %route.id, "scheduled batch run not started")
                    }
                }
            }
        }
    }
}
