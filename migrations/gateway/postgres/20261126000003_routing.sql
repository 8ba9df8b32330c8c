-- Service routing and audit (the seed's Service Routing & Health module):
-- the endpoints each service is served by (service_routes), what their
-- health checks found (service_health), and one row per request through
-- the edge (api_audit_logs). Times are timestamptz (UTC).

CREATE TABLE service_routes (
  id text PRIMARY KEY,
  service text NOT NULL,
  upstream_url text NOT NULL,
  weight integer NOT NULL DEFAULT 1 CHECK (weight > 0),
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'draining', 'disabled')),
  created_at timestamptz NOT NULL DEFAULT now(),
  updated_at timestamptz NOT NULL DEFAULT now(),
  UNIQUE (service, upstream_url)
);

CREATE TABLE service_health (
  id bigserial PRIMARY KEY,
  route_id text NOT NULL REFERENCES service_routes (id) ON DELETE CASCADE,
  checked_at timestamptz NOT NULL,
  status text NOT NULL CHECK (status IN ('serving', 'not_serving', 'unreachable')),
  latency_ms integer,
  detail text
);
CREATE INDEX idx_service_health_route_time ON service_health (route_id, checked_at DESC);

CREATE TABLE api_audit_logs (
  id text PRIMARY KEY,
  request_id text NOT NULL,
  created_at timestamptz NOT NULL,
  principal text NOT NULL,
  client_ip text,
  http_method text NOT NULL,
  path text NOT NULL,
  route text,
  service text,
  grpc_method text,
  route_id text, -- the service_routes endpoint, kept as text: a route may go while its requests stay
  http_status integer NOT NULL,
  grpc_code integer,
  latency_us bigint NOT NULL
);
CREATE INDEX idx_api_audit_time ON api_audit_logs (created_at);
CREATE INDEX idx_api_audit_principal_time ON api_audit_logs (principal, created_at);
CREATE INDEX idx_api_audit_request ON api_audit_logs (request_id);
