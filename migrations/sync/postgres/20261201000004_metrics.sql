-- Sync metrics (issue 8): one row per minute of real-time sync with what
-- was recorded, delivered, failed and dead-lettered, the conflicts found
-- and how many a strategy settled, and the lag from an event happening to
-- its delivery (percentiles over the minute's deliveries). Written by the
-- service's metrics job; several replicas write each minute once. Batch
-- runs (sync_batch_runs) add one row each (kind 'batch', scope the run id)
-- with their row counts and timings.

CREATE TABLE sync_metrics (
  kind text NOT NULL CHECK (kind IN ('realtime', 'batch')),
  scope text NOT NULL DEFAULT '',
  period_start timestamptz NOT NULL,
  period_seconds integer NOT NULL,
  events_recorded bigint NOT NULL,
  deliveries_delivered bigint NOT NULL,
  attempts_failed bigint NOT NULL,
  dead_lettered bigint NOT NULL,
  conflicts_detected bigint NOT NULL,
  conflicts_auto_resolved bigint NOT NULL,
  lag_p50_ms bigint,
  lag_p95_ms bigint,
  lag_p99_ms bigint,
  lag_max_ms bigint,
  rows_extracted bigint,
  rows_loaded bigint,
  rows_rejected bigint,
  extract_ms bigint,
  transform_ms bigint,
  load_ms bigint,
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (kind, period_start, scope)
);

CREATE INDEX idx_sync_deliveries_delivered ON sync_deliveries (delivered_at) WHERE state = 'delivered';
CREATE INDEX idx_sync_events_created ON sync_events (created_at);
CREATE INDEX idx_sync_events_type_position ON sync_events (entity_type, position);

-- Batch sync runs: extract by entity type and time range, transform
-- (field mapping), validate, bulk load into a target.
ALTER TABLE sync_configurations ADD COLUMN batch_every_minutes integer NOT NULL DEFAULT 0
  CHECK (batch_every_minutes >= 0);

CREATE TABLE sync_batch_runs (
  id text PRIMARY KEY,
  configuration_id text NOT NULL,
  target text NOT NULL,
  entity_type text NOT NULL,
  since timestamptz NOT NULL,
  until timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
  triggered_by text NOT NULL,
  rows_extracted bigint NOT NULL DEFAULT 0,
  rows_loaded bigint NOT NULL DEFAULT 0,
  rows_rejected bigint NOT NULL DEFAULT 0,
  chunks_loaded integer NOT NULL DEFAULT 0,
  chunks_failed integer NOT NULL DEFAULT 0,
  errors jsonb NOT NULL DEFAULT '[]',
  started_at timestamptz NOT NULL,
  finished_at timestamptz,
  extract_ms bigint NOT NULL DEFAULT 0,
  transform_ms bigint NOT NULL DEFAULT 0,
  load_ms bigint NOT NULL DEFAULT 0
);
CREATE INDEX idx_sync_batch_runs_route ON sync_batch_runs (configuration_id, started_at);
CREATE INDEX idx_sync_batch_runs_started ON sync_batch_runs (started_at);
-- One run of a route at a time, across replicas.
CREATE UNIQUE INDEX uniq_sync_batch_running ON sync_batch_runs (configuration_id) WHERE status = 'running';
-- What was delivered of an entity (versions of relayed changes).
CREATE INDEX idx_sync_deliveries_entity ON sync_deliveries (entity_type, entity_key, state);
