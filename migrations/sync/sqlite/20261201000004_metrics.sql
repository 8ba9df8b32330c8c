-- Sync metrics (issue 8): the same table as on PostgreSQL, times as text.

CREATE TABLE sync_metrics (
  kind TEXT NOT NULL CHECK (kind IN ('realtime', 'batch')),
  scope TEXT NOT NULL DEFAULT '',
  period_start TEXT NOT NULL,
  period_seconds INTEGER NOT NULL,
  events_recorded INTEGER NOT NULL,
  deliveries_delivered INTEGER NOT NULL,
  attempts_failed INTEGER NOT NULL,
  dead_lettered INTEGER NOT NULL,
  conflicts_detected INTEGER NOT NULL,
  conflicts_auto_resolved INTEGER NOT NULL,
  lag_p50_ms INTEGER,
  lag_p95_ms INTEGER,
  lag_p99_ms INTEGER,
  lag_max_ms INTEGER,
  rows_extracted INTEGER,
  rows_loaded INTEGER,
  rows_rejected INTEGER,
  extract_ms INTEGER,
  transform_ms INTEGER,
  load_ms INTEGER,
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (kind, period_start, scope)
);

CREATE INDEX idx_sync_deliveries_delivered ON sync_deliveries (delivered_at) WHERE state = 'delivered';
CREATE INDEX idx_sync_events_type_position ON sync_events (entity_type, position);

ALTER TABLE sync_configurations ADD COLUMN batch_every_minutes INTEGER NOT NULL DEFAULT 0
  CHECK (batch_every_minutes >= 0);

CREATE TABLE sync_batch_runs (
  id TEXT PRIMARY KEY,
  configuration_id TEXT NOT NULL,
  target TEXT NOT NULL,
  entity_type TEXT NOT NULL,
  since TEXT NOT NULL,
  until TEXT NOT NULL,
  status TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'partial', 'failed')),
  triggered_by TEXT NOT NULL,
  rows_extracted INTEGER NOT NULL DEFAULT 0,
  rows_loaded INTEGER NOT NULL DEFAULT 0,
  rows_rejected INTEGER NOT NULL DEFAULT 0,
  chunks_loaded INTEGER NOT NULL DEFAULT 0,
  chunks_failed INTEGER NOT NULL DEFAULT 0,
  errors TEXT NOT NULL DEFAULT '[]',
  started_at TEXT NOT NULL,
  finished_at TEXT,
  extract_ms INTEGER NOT NULL DEFAULT 0,
  transform_ms INTEGER NOT NULL DEFAULT 0,
  load_ms INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX idx_sync_batch_runs_route ON sync_batch_runs (configuration_id, started_at);
CREATE INDEX idx_sync_batch_runs_started ON sync_batch_runs (started_at);
-- One run of a route at a time, across replicas.
CREATE UNIQUE INDEX uniq_sync_batch_running ON sync_batch_runs (configuration_id) WHERE status = 'running';
-- What was delivered of an entity (versions of relayed changes).
CREATE INDEX idx_sync_deliveries_entity ON sync_deliveries (entity_type, entity_key, state);
