-- Sync metrics (issue 8): the same table as on PostgreSQL, times as text.

CREATE TABLE sync_metrics (
  kind TEXT NOT NULL CHECK (kind IN ('realtime', 'batch')),
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
  recorded_at TEXT NOT NULL,
  PRIMARY KEY (kind, period_start)
);

CREATE INDEX idx_sync_deliveries_delivered ON sync_deliveries (delivered_at) WHERE state = 'delivered';
