-- Authentication and authorization (the seed's API gateway database):
-- users, refresh tokens and revocations (jwt_tokens), API keys, rate-limit
-- plans and usage (rate_limit_tracking), and the JWT signing keys. Times
-- are timestamptz (UTC); lists are JSON arrays of strings.

CREATE TABLE rate_limit_plans (
  name text PRIMARY KEY,
  per_minute integer NOT NULL CHECK (per_minute > 0),
  per_hour integer NOT NULL,
  per_day integer NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now(),
  CHECK (per_hour >= per_minute AND per_day >= per_hour)
);

INSERT INTO rate_limit_plans (name, per_minute, per_hour, per_day) VALUES
  ('standard', 60, 1000, 10000),
  ('partner', 600, 20000, 200000),
  ('internal', 6000, 300000, 5000000);

CREATE TABLE api_users (
  id text PRIMARY KEY,
  username text NOT NULL UNIQUE,
  email text NOT NULL UNIQUE,
  password_hash text NOT NULL,
  roles text NOT NULL DEFAULT '[]',
  status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'disabled')),
  rate_limit_plan text NOT NULL REFERENCES rate_limit_plans (name),
  failed_attempts integer NOT NULL DEFAULT 0 CHECK (failed_attempts >= 0),
  first_failed_at timestamptz,
  locked_until timestamptz,
  password_changed_at timestamptz NOT NULL,
  last_login_at timestamptz,
  created_at timestamptz NOT NULL,
  updated_at timestamptz NOT NULL
);

-- Refresh tokens, stored only as hashes. Rotation retires a token and links
-- its successor; presenting a retired token revokes its whole family.
CREATE TABLE jwt_tokens (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES api_users (id),
  family_id text NOT NULL,
  token_hash text NOT NULL UNIQUE,
  access_jti text,
  issued_at timestamptz NOT NULL,
  expires_at timestamptz NOT NULL,
  retired_at timestamptz,
  replaced_by text,
  revoked_at timestamptz,
  revoked_reason text
);
CREATE INDEX idx_jwt_tokens_user ON jwt_tokens (user_id);
CREATE INDEX idx_jwt_tokens_family ON jwt_tokens (family_id);

-- Access tokens revoked before they expire (by jti); the edge caches it.
CREATE TABLE revoked_access_tokens (
  jti text PRIMARY KEY,
  user_id text NOT NULL,
  expires_at timestamptz NOT NULL,
  revoked_at timestamptz NOT NULL,
  reason text NOT NULL
);
CREATE INDEX idx_revoked_access_expiry ON revoked_access_tokens (expires_at);

-- Keys that sign access tokens. The newest active key signs; every key not
-- past `verify_until` verifies (served as a JWKS).
CREATE TABLE signing_keys (
  kid text PRIMARY KEY,
  algorithm text NOT NULL,
  private_key text NOT NULL,
  public_key text NOT NULL,
  created_at timestamptz NOT NULL,
  verify_until timestamptz,
  active boolean NOT NULL DEFAULT true
);

CREATE TABLE api_keys (
  id text PRIMARY KEY,
  user_id text NOT NULL REFERENCES api_users (id),
  prefix text NOT NULL UNIQUE,
  secret_hash text NOT NULL,
  name text NOT NULL,
  scopes text NOT NULL DEFAULT '[]',
  allowed_cidrs text NOT NULL DEFAULT '[]',
  rate_limit_plan text NOT NULL REFERENCES rate_limit_plans (name),
  expires_at timestamptz,
  last_used_at timestamptz,
  revoked_at timestamptz,
  created_at timestamptz NOT NULL
);
CREATE INDEX idx_api_keys_user ON api_keys (user_id);

-- Requests per principal (user or key) per window, for analytics and
-- alerts; the edge enforces the limits and reports here.
CREATE TABLE rate_limit_tracking (
  principal text NOT NULL,
  window_kind text NOT NULL CHECK (window_kind IN ('minute', 'hour', 'day')),
  window_start timestamptz NOT NULL,
  request_count bigint NOT NULL DEFAULT 0,
  rejected_count bigint NOT NULL DEFAULT 0,
  PRIMARY KEY (principal, window_kind, window_start)
);
