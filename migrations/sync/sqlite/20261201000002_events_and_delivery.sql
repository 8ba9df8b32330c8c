-- The Sync service's event stream and its routing (issue 8); the same
-- tables as on PostgreSQL, without partitions (SQLite has none) and with
-- JSON kept as text. Times are RFC 3339 text (UTC).

CREATE TABLE sync_targets (
  name TEXT PRIMARY KEY,
  system TEXT NOT NULL,
  kind TEXT NOT NULL CHECK (kind IN ('webhook', 'grpc')),
  url TEXT NOT NULL,
  secret TEXT NOT NULL,
  timeout_ms INTEGER NOT NULL CHECK (timeout_ms BETWEEN 1 AND 60000),
  max_attempts INTEGER NOT NULL CHECK (max_attempts BETWEEN 1 AND 50),
  enabled BOOLEAN NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL
);

CREATE TABLE sync_configurations (
  id TEXT PRIMARY KEY,
  entity_type TEXT NOT NULL,
  source_system TEXT NOT NULL,
  target TEXT NOT NULL REFERENCES sync_targets (name),
  mode TEXT NOT NULL CHECK (mode IN ('realtime', 'batch')),
  conflict_strategy TEXT NOT NULL
    CHECK (conflict_strategy IN ('source_wins', 'target_wins', 'merge', 'business_rule', 'manual')),
  business_rule TEXT,
  field_mapping TEXT NOT NULL DEFAULT '{}',
  merge_rules TEXT NOT NULL DEFAULT '{}',
  enabled BOOLEAN NOT NULL,
  created_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  updated_by TEXT NOT NULL,
  UNIQUE (entity_type, source_system, target)
);
CREATE INDEX idx_sync_configurations_target ON sync_configurations (target);

CREATE TABLE sync_events (
  position INTEGER PRIMARY KEY,
  event_id TEXT NOT NULL,
  idempotency_key TEXT NOT NULL,
  source_system TEXT NOT NULL,
  entity_type TEXT NOT NULL,
  entity_key TEXT NOT NULL,
  operation TEXT NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
  event_type TEXT NOT NULL,
  payload TEXT NOT NULL,
  entity_version INTEGER NOT NULL DEFAULT 0,
  base_version INTEGER NOT NULL DEFAULT 0,
  occurred_at TEXT NOT NULL,
  created_at TEXT NOT NULL,
  correlation_id TEXT,
  -- SQLite has one writer at a time, so events commit in position order:
  -- the stream order (recorded_xid, position) is the position itself.
  recorded_xid INTEGER NOT NULL
);
CREATE INDEX idx_sync_events_stream ON sync_events (recorded_xid, position);
CREATE INDEX idx_sync_events_entity ON sync_events (entity_type, entity_key, position);
CREATE INDEX idx_sync_events_source ON sync_events (source_system, position);
CREATE INDEX idx_sync_events_created ON sync_events (created_at);

CREATE TABLE sync_event_keys (
  idempotency_key TEXT PRIMARY KEY,
  position INTEGER NOT NULL,
  created_at TEXT NOT NULL
);
CREATE INDEX idx_sync_event_keys_created ON sync_event_keys (created_at);

CREATE TABLE sync_deliveries (
  target TEXT NOT NULL,
  position INTEGER NOT NULL,
  configuration_id TEXT NOT NULL,
  entity_type TEXT NOT NULL,
  entity_key TEXT NOT NULL,
  state TEXT NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead', 'held', 'skipped')),
  payload TEXT,
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at TEXT NOT NULL,
  lease_until TEXT,
  last_error TEXT,
  created_at TEXT NOT NULL,
  delivered_at TEXT,
  PRIMARY KEY (target, position)
);
CREATE INDEX idx_sync_deliveries_due ON sync_deliveries (next_attempt_at, position)
  WHERE state = 'pending';
CREATE INDEX idx_sync_deliveries_waiting ON sync_deliveries (target, entity_type, entity_key, position)
  WHERE state IN ('pending', 'in_flight', 'held');
CREATE INDEX idx_sync_deliveries_state ON sync_deliveries (state, target, position);
CREATE INDEX idx_sync_deliveries_position ON sync_deliveries (position);

CREATE TABLE sync_status (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  position INTEGER NOT NULL,
  target TEXT NOT NULL,
  attempt INTEGER NOT NULL,
  outcome TEXT NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'dead_lettered')),
  http_status INTEGER,
  error TEXT,
  started_at TEXT NOT NULL,
  duration_ms INTEGER NOT NULL
);
CREATE INDEX idx_sync_status_event ON sync_status (position, target, attempt);
CREATE INDEX idx_sync_status_time ON sync_status (started_at);
