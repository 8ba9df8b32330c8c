#!/usr/bin/env bash
# The whole test suite, from a fresh clone:
#   1. starts MariaDB, PostgreSQL and Redis when they are down (installing them with
#      apt-get only where they are missing);
#   2. checks formatting, clippy, the supply chain (cargo deny: licences and
#      bans, offline; no unsafe code) and the contracts (buf lint, buf breaking);
#   3. runs every Rust test (unit, behaviour suites on SQLite, MariaDB and
#      PostgreSQL) with cargo nextest;
#   4. runs the end-to-end tests (Python grpcio and grpcurl against
#      `harsha up`), validates the Kubernetes manifests, and checks and
#      unit-tests the Prometheus alert rules with promtool;
#   5. round-trips MariaDB and PostgreSQL backups on throwaway servers, and
#      runs the disaster drill (which restarts PostgreSQL) last.
# Set CARGO_TARGET_DIR to reuse a build directory.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$(pwd)

step() { printf '\n==> %s\n' "$*"; }

apt_install() {
  if [ -z "${APT_UPDATED:-}" ]; then
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    APT_UPDATED=1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >/dev/null
}

wait_for() { # description, command...
  local what=$1; shift
  for _ in $(seq 1 60); do
    if "$@" >/dev/null 2>&1; then return 0; fi
    sleep 1
  done
  echo "$what did not come up" >&2
  return 1
}

ensure_mariadb() {
  if mysqladmin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1; then return; fi
  if [ ! -x /usr/sbin/mariadbd ]; then
    step "installing MariaDB"
    apt_install mariadb-server mariadb-client
  fi
  step "starting MariaDB"
  install -d -o mysql -g mysql /run/mysqld 2>/dev/null || true
  start-stop-daemon --start --oknodo --background --exec /usr/sbin/mariadbd
  wait_for "MariaDB" mysqladmin --protocol=socket -uroot ping
  # A fresh install lets root in through the socket only; the tests connect
  # over TCP as root with no password, as on the development machines.
  if ! mysqladmin --protocol=tcp -h127.0.0.1 -uroot ping >/dev/null 2>&1; then
    mysql --protocol=socket -uroot -e \
      "ALTER USER 'root'@'localhost' IDENTIFIED VIA mysql_native_password USING PASSWORD('') OR unix_socket; FLUSH PRIVILEGES;"
  fi
  wait_for "MariaDB over TCP" mysqladmin --protocol=tcp -h127.0.0.1 -uroot ping
}

ensure_postgres() {
  if pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null; then return; fi
  if [ ! -d /etc/postgresql ] || [ -z "$(ls /etc/postgresql 2>/dev/null)" ]; then
    step "installing PostgreSQL"
    apt_install postgresql postgresql-client
  fi
  step "starting PostgreSQL"
  pg_ctlcluster --skip-systemctl-redirect "$(ls /etc/postgresql | head -n1)" main start || true
  wait_for "PostgreSQL" pg_isready -q -h 127.0.0.1 -p 5432
}

ensure_redis() {
  if redis-cli -h 127.0.0.1 -p 6379 ping >/dev/null 2>&1; then return; fi
  if ! command -v redis-server >/dev/null 2>&1; then
    step "installing Redis"
    apt_install redis-server redis-tools
  fi
  step "starting Redis"
  redis-server --bind 127.0.0.1 --port 6379 --save '' --appendonly no --daemonize yes >/dev/null
  wait_for "Redis" redis-cli -h 127.0.0.1 -p 6379 ping
}

ensure_tools() {
  if ! command -v npm >/dev/null 2>&1; then
    step "installing Node.js (for buf)"
    apt_install nodejs npm
  fi
  if [ ! -x tools/node_modules/.bin/buf ]; then
    step "installing buf"
    (cd tools && npm ci --no-audit --no-fund --loglevel=error)
  fi
  if ! command -v mariabackup >/dev/null 2>&1; then
    step "installing mariabackup (Debian's mariadb-backup package)"
    apt_install mariadb-backup
  fi
  if ! command -v promtool >/dev/null 2>&1; then
    step "installing promtool (Debian's prometheus package)"
    apt_install prometheus
  fi
  if ! cargo deny --version >/dev/null 2>&1; then
    step "installing cargo-deny"
    cargo install --locked cargo-deny
  fi
  if ! cargo nextest --version >/dev/null 2>&1; then
    step "installing cargo-nextest"
    cargo install --locked cargo-nextest
  fi
  if [ ! -x .venv/bin/pytest ] || ! cmp -s tests/requirements.txt .venv/requirements.txt; then
    step "installing the Python test clients"
    python3 -m venv .venv
    .venv/bin/pip install -q --disable-pip-version-check -r tests/requirements.txt
    cp tests/requirements.txt .venv/requirements.txt
  fi
}

ensure_mariadb
ensure_postgres
ensure_redis
ensure_tools

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "supply chain: cargo deny (licences, bans; offline) and no unsafe code"
cargo deny --offline --log-level error check licenses bans
for crate in crates/*/; do
  # Every crate forbids `unsafe`: through the workspace lints, or (the
  # generated code) with its own attribute.
  if ! grep -A1 '^\[lints\]' "$crate/Cargo.toml" | grep -q 'workspace = true' &&
    ! grep -q '^#!\[forbid(unsafe_code)\]' "$crate/src/lib.rs"; then
    echo "$crate does not forbid unsafe code" >&2
    exit 1
  fi
done

step "buf lint"
tools/node_modules/.bin/buf lint
base=${HARSHA_BREAKING_BASE:-HEAD~1}
if git rev-parse --verify --quiet "$base^{commit}" >/dev/null && [ -n "$(git ls-tree "$base" proto/harsha 2>/dev/null)" ]; then
  step "buf breaking against $base"
  tools/node_modules/.bin/buf breaking --against "$ROOT/.git#ref=$base"
else
  step "buf breaking: no earlier contracts at $base to compare with"
fi

step "cargo nextest (unit, SQLite, MariaDB, PostgreSQL)"
cargo build --workspace --locked --bins
cargo nextest run --workspace --locked --no-fail-fast

step "end-to-end (Python grpcio, grpcurl), Kubernetes manifests, alert rules (promtool)"
HARSHA_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/harsha" .venv/bin/pytest -q -p no:cacheprovider tests/e2e tests/k8s tests/monitoring

step "database backups: MariaDB full + incremental, PostgreSQL base backup, PITR, standby"
.venv/bin/pytest -q -p no:cacheprovider tests/backup

# Last: it restarts PostgreSQL under load.
step "disaster drill: a replica, the Sync service and PostgreSQL lost under load"
HARSHA_BIN="${CARGO_TARGET_DIR:-$ROOT/target}/debug/harsha" .venv/bin/pytest -q -p no:cacheprovider -rP tests/drill
