-- The Sync service's event stream and its routing (issue 8): targets
-- (system endpoints), sync_configurations (which target receives which
-- entity type from which source), sync_events (every change, numbered by a
-- position that only grows, partitioned by month of recording as in the
-- seed), sync_event_keys (one row per idempotency key, so a change relayed
-- or published twice is recorded once across partitions), sync_deliveries
-- (each event on its way to each target) and sync_status (every delivery
-- attempt). Times are timestamptz (UTC).

CREATE TABLE sync_targets (
  name text PRIMARY KEY,
  system text NOT NULL,
  kind text NOT NULL CHECK (kind IN ('webhook', 'grpc')),
  url text NOT NULL,
  secret text NOT NULL,
  timeout_ms integer NOT NULL CHECK (timeout_ms BETWEEN 1 AND 60000),
  max_attempts integer NOT NULL CHECK (max_attempts BETWEEN 1 AND 50),
  enabled boolean NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

CREATE TABLE sync_configurations (
  id text PRIMARY KEY,
  entity_type text NOT NULL,
  source_system text NOT NULL,
  target text NOT NULL REFERENCES sync_targets (name),
  mode text NOT NULL CHECK (mode IN ('realtime', 'batch')),
  conflict_strategy text NOT NULL
    CHECK (conflict_strategy IN ('source_wins', 'target_wins', 'merge', 'business_rule', 'manual')),
  business_rule text,
  field_mapping jsonb NOT NULL DEFAULT '{}',
  merge_rules jsonb NOT NULL DEFAULT '{}',
  enabled boolean NOT NULL,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL,
  updated_by text NOT NULL,
  UNIQUE (entity_type, source_system, target)
);
CREATE INDEX idx_sync_configurations_target ON sync_configurations (target);

CREATE SEQUENCE sync_event_position AS bigint;

CREATE TABLE sync_events (
  position bigint NOT NULL,
  event_id text NOT NULL,
  idempotency_key text NOT NULL,
  source_system text NOT NULL,
  entity_type text NOT NULL,
  entity_key text NOT NULL,
  operation text NOT NULL CHECK (operation IN ('create', 'update', 'delete')),
  event_type text NOT NULL,
  payload jsonb NOT NULL,
  entity_version bigint NOT NULL DEFAULT 0,
  base_version bigint NOT NULL DEFAULT 0,
  occurred_at timestamptz NOT NULL,
  created_at timestamptz NOT NULL,
  correlation_id text,
  -- The recording transaction: subscribers read in (recorded_xid, position)
  -- order and only below the oldest transaction still running, so a
  -- resumed subscription never skips an event committed late.
  recorded_xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
  PRIMARY KEY (position, created_at)
) PARTITION BY RANGE (created_at);
CREATE INDEX idx_sync_events_entity ON sync_events (entity_type, entity_key, position);
CREATE INDEX idx_sync_events_source ON sync_events (source_system, position);
CREATE INDEX idx_sync_events_stream ON sync_events (recorded_xid, position);

-- Rows recorded in a month without its own partition land here; the
-- service keeps monthly partitions three months ahead, so this stays empty.
CREATE TABLE sync_events_default PARTITION OF sync_events DEFAULT;

-- This month's and the next three months' partitions, named as in the
-- seed (sync_events_y2024m01).
DO $$
DECLARE
  first date := date_trunc('month', now() AT TIME ZONE 'UTC')::date;
  month date;
BEGIN
  FOR i IN 0..3 LOOP
    month := (first + make_interval(months => i))::date;
    EXECUTE format(
      'CREATE TABLE IF NOT EXISTS %I PARTITION OF sync_events FOR VALUES FROM (%L) TO (%L)',
      'sync_events_y' || to_char(month, 'YYYY') || 'm' || to_char(month, 'MM'),
      to_char(month, 'YYYY-MM-DD') || ' 00:00:00+00',
      to_char(month + interval '1 month', 'YYYY-MM-DD') || ' 00:00:00+00');
  END LOOP;
END
$$;

CREATE TABLE sync_event_keys (
  idempotency_key text PRIMARY KEY,
  position bigint NOT NULL,
  created_at timestamptz NOT NULL
);
CREATE INDEX idx_sync_event_keys_created ON sync_event_keys (created_at);

CREATE TABLE sync_deliveries (
  target text NOT NULL,
  position bigint NOT NULL,
  configuration_id text NOT NULL,
  entity_type text NOT NULL,
  entity_key text NOT NULL,
  state text NOT NULL CHECK (state IN ('pending', 'in_flight', 'delivered', 'dead', 'held', 'skipped')),
  payload jsonb,
  attempts integer NOT NULL DEFAULT 0,
  next_attempt_at timestamptz NOT NULL,
  lease_until timestamptz,
  last_error text,
  created_at timestamptz NOT NULL,
  delivered_at timestamptz,
  PRIMARY KEY (target, position)
);
-- What is due, and what holds an entity back for a target.
CREATE INDEX idx_sync_deliveries_due ON sync_deliveries (next_attempt_at, position)
  WHERE state = 'pending';
CREATE INDEX idx_sync_deliveries_waiting ON sync_deliveries (target, entity_type, entity_key, position)
  WHERE state IN ('pending', 'in_flight', 'held');
CREATE INDEX idx_sync_deliveries_state ON sync_deliveries (state, target, position);
CREATE INDEX idx_sync_deliveries_position ON sync_deliveries (position);

CREATE TABLE sync_status (
  id bigserial PRIMARY KEY,
  position bigint NOT NULL,
  target text NOT NULL,
  attempt integer NOT NULL,
  outcome text NOT NULL CHECK (outcome IN ('delivered', 'retrying', 'dead_lettered')),
  http_status integer,
  error text,
  started_at timestamptz NOT NULL,
  duration_ms bigint NOT NULL
);
CREATE INDEX idx_sync_status_event ON sync_status (position, target, attempt);
CREATE INDEX idx_sync_status_time ON sync_status (started_at);
