-- Conflicts (issue 8; the same tables as on PostgreSQL, JSON and times as text): one row per conflicting change and target, with the
-- three sides (base, source, competing), the fields changed on both sides,
-- what settled it (a strategy, or a person through the manual workflow),
-- and the workflow's state; sync_conflict_history keeps every step with
-- who took it.

CREATE TABLE sync_conflicts (
  id TEXT PRIMARY KEY,
  position INTEGER NOT NULL,
  target TEXT NOT NULL,
  configuration_id TEXT NOT NULL,
  entity_type TEXT NOT NULL,
  entity_key TEXT NOT NULL,
  source_system TEXT NOT NULL,
  competing_system TEXT NOT NULL,
  base_version INTEGER NOT NULL,
  source_version INTEGER NOT NULL,
  competing_version INTEGER NOT NULL,
  base_payload TEXT,
  source_payload TEXT NOT NULL,
  competing_payload TEXT NOT NULL,
  conflicting_fields TEXT NOT NULL,
  strategy TEXT NOT NULL,
  auto_resolved BOOLEAN NOT NULL,
  resolution TEXT CHECK (resolution IN ('source', 'target', 'merged', 'manual')),
  resolved_payload TEXT,
  status TEXT NOT NULL
    CHECK (status IN ('detected', 'assigned', 'in_review', 'resolved', 'validated', 'closed')),
  assignee TEXT,
  due_at TEXT,
  resolved_by TEXT,
  validated_by TEXT,
  detected_at TEXT NOT NULL,
  updated_at TEXT NOT NULL,
  closed_at TEXT,
  UNIQUE (position, target)
);
CREATE INDEX idx_sync_conflicts_open ON sync_conflicts (status, detected_at) WHERE status <> 'closed';
CREATE INDEX idx_sync_conflicts_entity ON sync_conflicts (entity_type, entity_key, detected_at);
CREATE INDEX idx_sync_conflicts_assignee ON sync_conflicts (assignee, status);
CREATE INDEX idx_sync_conflicts_detected ON sync_conflicts (detected_at);

CREATE TABLE sync_conflict_history (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  conflict_id TEXT NOT NULL REFERENCES sync_conflicts (id),
  at TEXT NOT NULL,
  actor TEXT NOT NULL,
  step TEXT NOT NULL,
  from_status TEXT,
  to_status TEXT NOT NULL,
  note TEXT,
  details TEXT
);
CREATE INDEX idx_sync_conflict_history ON sync_conflict_history (conflict_id, id);
