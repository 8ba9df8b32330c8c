-- Conflicts (issue 8): one row per conflicting change and target, with the
-- three sides (base, source, competing), the fields changed on both sides,
-- what settled it (a strategy, or a person through the manual workflow),
-- and the workflow's state; sync_conflict_history keeps every step with
-- who took it.

CREATE TABLE sync_conflicts (
  id text PRIMARY KEY,
  position bigint NOT NULL,
  target text NOT NULL,
  configuration_id text NOT NULL,
  entity_type text NOT NULL,
  entity_key text NOT NULL,
  source_system text NOT NULL,
  competing_system text NOT NULL,
  base_version bigint NOT NULL,
  source_version bigint NOT NULL,
  competing_version bigint NOT NULL,
  base_payload jsonb,
  source_payload jsonb NOT NULL,
  competing_payload jsonb NOT NULL,
  conflicting_fields jsonb NOT NULL,
  strategy text NOT NULL,
  auto_resolved boolean NOT NULL,
  resolution text CHECK (resolution IN ('source', 'target', 'merged', 'manual')),
  resolved_payload jsonb,
  status text NOT NULL
    CHECK (status IN ('detected', 'assigned', 'in_review', 'resolved', 'validated', 'closed')),
  assignee text,
  due_at timestamptz,
  resolved_by text,
  validated_by text,
  detected_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  closed_at timestamptz,
  UNIQUE (position, target)
);
CREATE INDEX idx_sync_conflicts_open ON sync_conflicts (status, detected_at) WHERE status <> 'closed';
CREATE INDEX idx_sync_conflicts_entity ON sync_conflicts (entity_type, entity_key, detected_at);
CREATE INDEX idx_sync_conflicts_assignee ON sync_conflicts (assignee, status);
CREATE INDEX idx_sync_conflicts_detected ON sync_conflicts (detected_at);

CREATE TABLE sync_conflict_history (
  id bigserial PRIMARY KEY,
  conflict_id text NOT NULL REFERENCES sync_conflicts (id),
  at timestamptz NOT NULL,
  actor text NOT NULL,
  step text NOT NULL,
  from_status text,
  to_status text NOT NULL,
  note text,
  details jsonb
);
CREATE INDEX idx_sync_conflict_history ON sync_conflict_history (conflict_id, id);
