-- Sync metrics (issue 8): one row per minute of real-time sync with what
-- was recorded, delivered, failed and dead-lettered, the conflicts found
-- and how many a strategy settled, and the lag from an event happening to
-- its delivery (percentiles over the minute's deliveries). Written by the
-- service's metrics job; several replicas write each minute once.

CREATE TABLE sync_metrics (
  kind text NOT NULL CHECK (kind IN ('realtime', 'batch')),
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
  recorded_at timestamptz NOT NULL,
  PRIMARY KEY (kind, period_start)
);

CREATE INDEX idx_sync_deliveries_delivered ON sync_deliveries (delivered_at) WHERE state = 'delivered';
CREATE INDEX idx_sync_events_created ON sync_events (created_at);
