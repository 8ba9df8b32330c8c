"""Disaster drill (operations issue): under a steady load through the edge,
kill one replica of a service, kill the Sync service, restart PostgreSQL;
report failed requests, time to recovery and order events lost (must be
zero).

Everything runs on this machine, as `scripts/bench_orders.py` runs it: one
`harsha serve <service>` process per service plus the edge, on MariaDB (erp
role) and PostgreSQL (gateway and sync roles), on databases of the drill's
own (harsha_drill_erp, harsha_drill_gateway, harsha_drill_sync), created,
migrated and seeded at start and dropped at the end, whatever happens.

  .venv/bin/python scripts/disaster_drill.py [--rate 25] [--report drill.json]

The mesh: the Customer service runs as two replicas. The edge balances
between them through two `service_routes` rows (the gateway database). The
Order service and Pricing take one endpoint per service they call (the Order
service does not read `service_routes`), so they reach the two replicas
through a small TCP balancer this script runs (round robin per connection,
skipping a replica that refuses the connection), standing in for the
Kubernetes Service they use in production (`http://harsha-customer:50051`).
Order events are routed by Sync to a webhook receiver this script runs.

The load (Python threads, open loop: requests start on schedule whether or
not earlier ones answered): --rate requests/s through the edge, 65 % POST
/v1/orders (a unique idempotency key each), 15 % POST /v1/quotes, 15 % GET
/v1/customers/{id}/profile, 5 % POST /v1/segments (a write to the Customer
service, made through the edge's two routes). Each request's send time,
latency and HTTP status are kept; a request that does not answer within
--client-timeout seconds fails with status 0.

The timeline, after --warmup seconds of load: SIGKILL customer replica 2
(left dead); --spacing seconds later SIGKILL the Sync service, started again
--sync-down seconds after; --spacing seconds later restart PostgreSQL
(`pg_ctlcluster ... restart`); --tail seconds more load. Then it waits (up to
--event-wait seconds) until every order the edge confirmed (200) and every
order the erp database holds as placed has its `order.placed` event at the
webhook, and no order is left unfinished.

Time to recovery of a fault: its window runs from the fault to the next
fault (the last one's to the end of the load); a request belongs to the
window in which it finished. If no request of the window failed, it is 0.
Otherwise it is the time from the fault to the send time of the first
request sent after the window's last failed request. The fault counts as
recovered when at least --recovery-run requests (all successful, by
construction) follow that last failure inside the window, and the recovery
ends at most --recovery-bound seconds after the fault was undone (the Sync
service started again, PostgreSQL accepting connections again; a replica
left dead: the kill itself).

Exit status: 0 when no event was lost, every fault recovered in time and
nothing else went wrong (a confirmed order missing from the database, an
order left unfinished, a process that died unasked); 1 when the drill ran and
found a problem; 2 when it could not run (databases down, set-up failed).
The report is printed (a summary, then JSON) and written to --report.
"""

import argparse
import collections
import concurrent.futures
import ctypes
import hashlib
import hmac
import http.server
import json
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import traceback
import urllib.error
import urllib.request
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ERP_DB, GATEWAY_DB, SYNC_DB = "harsha_drill_erp", "harsha_drill_gateway", "harsha_drill_sync"
SERVICES = ["customer", "inventory", "pricing", "auth", "sync", "order"]
CUSTOMER_SERVICE = "harsha.customer.v1.CustomerService"
SECRET = "drill-webhook-secret-0123456789abcdef"
CHANNELS = ["ECOMMERCE", "MOBILE-APP", "CRM"]
# Order statuses of an order that was placed (and so has an order.placed
# event), and of one still being worked on.
PLACED_STATUSES = {"Placed", "Fulfilled", "Cancelled", "Cancelling", "Fulfilling"}
UNFINISHED_STATUSES = {"Pending", "Cancelling", "Fulfilling"}


class DrillError(Exception):
    """The drill could not run (exit 2)."""


# ---------------------------------------------------------------- helpers

def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def harsha_binary() -> Path:
    if os.environ.get("HARSHA_BIN"):
        return Path(os.environ["HARSHA_BIN"])
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "harsha"


def mysql(sql: str, database: str = "") -> str:
    args = ["mysql", "--protocol=tcp", "-uroot", "-h127.0.0.1", "-N", "-B", *([database] if database else []),
            "-e", sql]
    done = subprocess.run(args, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"mysql: {sql[:80]}: {done.stderr.strip()}")
    return done.stdout


def psql(sql: str, database: str = "postgres") -> str:
    done = subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-d", database, "-v", "ON_ERROR_STOP=1",
                           "-q", "-A", "-t", "-F", "\t", "-c", sql], capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise RuntimeError(f"psql: {sql[:80]}: {done.stderr.strip()}")
    return done.stdout


def mariadb_up() -> bool:
    return subprocess.run(["mysqladmin", "--protocol=tcp", "-h127.0.0.1", "-uroot", "ping"],
                          capture_output=True, timeout=10).returncode == 0


def postgres_up() -> bool:
    return subprocess.run(["pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"], capture_output=True,
                          timeout=10).returncode == 0


def pg_cluster() -> tuple:
    """(version, name) of the local PostgreSQL cluster: DRILL_PG_CLUSTER
    ("15/main"), else the first version under /etc/postgresql and "main"."""
    named = os.environ.get("DRILL_PG_CLUSTER", "")
    if named:
        version, _, name = named.partition("/")
        return version, name or "main"
    versions = sorted(os.listdir("/etc/postgresql")) if os.path.isdir("/etc/postgresql") else []
    if not versions:
        raise DrillError("no PostgreSQL cluster under /etc/postgresql (set DRILL_PG_CLUSTER=15/main)")
    return versions[0], "main"


def pg_ctlcluster(action: str) -> float:
    """Runs `pg_ctlcluster <version> <name> <action>`; the seconds it took."""
    version, name = pg_cluster()
    started = time.monotonic()
    done = subprocess.run(["pg_ctlcluster", "--skip-systemctl-redirect", version, name, action],
                          capture_output=True, text=True, timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"pg_ctlcluster {action}: {done.stdout.strip()} {done.stderr.strip()}")
    return time.monotonic() - started


def wait_until(predicate, timeout: float, what: str, interval: float = 0.25):
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise DrillError(f"{what} (waited {timeout:.0f} s)")
        time.sleep(interval)


def percentile(values, p: float):
    if not values:
        return None
    ordered = sorted(values)
    index = max(0, min(len(ordered) - 1, int(-(-len(ordered) * p // 1)) - 1))
    return ordered[index]


def ms(seconds):
    return None if seconds is None else round(seconds * 1000, 1)


def _die_with_parent():
    """In the child before exec: SIGTERM when the drill dies, so no service
    outlives a drill that was killed."""
    try:
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


# ------------------------------------------------------- the TCP balancer

class TcpBalancer:
    """Round robin per connection over `backends`, skipping one that refuses
    the connection; a connection whose backend goes away is closed (the
    client reconnects and is sent to another). What a Kubernetes Service
    does for the Order service and Pricing in production."""

    def __init__(self, backends: list):
        self.backends = backends
        # The first connection goes to the last backend (the replica the
        # drill kills): the worst case, its clients must reconnect.
        self.next = len(backends) - 1
        self.lock = threading.Lock()
        self.connections = collections.Counter()
        self.refused = collections.Counter()
        self.listener = socket.socket()
        self.listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(128)
        self.address = f"127.0.0.1:{self.listener.getsockname()[1]}"
        self.closed = False
        threading.Thread(target=self._accept, daemon=True, name="balancer").start()

    def _accept(self):
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client):
        with self.lock:
            start = self.next
            self.next += 1
        for i in range(len(self.backends)):
            backend = self.backends[(start + i) % len(self.backends)]
            host, port = backend.rsplit(":", 1)
            try:
                upstream = socket.create_connection((host, int(port)), timeout=2)
            except OSError:
                with self.lock:
                    self.refused[backend] += 1
                continue
            upstream.settimeout(None)
            with self.lock:
                self.connections[backend] += 1
            for sock in (client, upstream):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            threading.Thread(target=self._pump, args=(client, upstream), daemon=True).start()
            self._pump(upstream, client)
            return
        client.close()

    @staticmethod
    def _pump(source, sink):
        try:
            while True:
                data = source.recv(65536)
                if not data:
                    break
                sink.sendall(data)
        except OSError:
            pass
        for sock in (source, sink):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self):
        self.closed = True
        try:
            self.listener.close()
        except OSError:
            pass


# -------------------------------------------------------- webhook receiver

class Webhook:
    """Receives Sync's webhook posts and keeps each one: when it arrived,
    its event id, entity, event type, attempt and whether its signature
    (HMAC-SHA256 of '<t>.<body>') checks. Always answers 200."""

    def __init__(self, clock):
        self.deliveries = []
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                at = clock()
                parts = dict(p.split("=", 1) for p in self.headers.get("Harsha-Signature", "").split(",") if "=" in p)
                signed = f"{parts.get('t', '')}.".encode() + body
                expected = hmac.new(SECRET.encode(), signed, hashlib.sha256).hexdigest()
                try:
                    event = json.loads(body)
                except ValueError:
                    event = {}
                with hook.lock:
                    hook.deliveries.append({
                        "at": at,
                        "event_id": event.get("event_id") or self.headers.get("Harsha-Event-Id"),
                        "entity_key": event.get("entity_key"),
                        "event_type": event.get("event_type"),
                        "attempt": int(self.headers.get("Harsha-Delivery-Attempt", "0") or 0),
                        "signed": hmac.compare_digest(expected, parts.get("v1", "")),
                    })
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hooks/drill"
        threading.Thread(target=self.server.serve_forever, daemon=True, name="webhook").start()

    def snapshot(self) -> list:
        with self.lock:
            return list(self.deliveries)

    def placed_orders(self) -> set:
        with self.lock:
            return {d["entity_key"] for d in self.deliveries if d["event_type"] == "order.placed"}

    def close(self):
        self.server.shutdown()
        self.server.server_close()


# ------------------------------------------------------------------ HTTP

def call(base: str, method: str, path: str, body=None, token=None, timeout: float = 30.0):
    """(status, JSON body or None, error text); status 0 when no answer came."""
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(f"{base}{path}", data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as reply:
            raw = reply.read()
            status = reply.status
    except urllib.error.HTTPError as error:
        raw = error.read()
        status = error.code
    except (OSError, urllib.error.URLError) as error:  # refused, reset, timed out
        return 0, None, f"{type(error).__name__}: {error}"
    try:
        value = json.loads(raw) if raw else None
    except ValueError:
        value = None
    return status, value, None if 200 <= status < 300 else raw[:300].decode("utf-8", "replace")


# ------------------------------------------------------------------ load

class Load:
    """Requests at a fixed rate from a thread pool, scheduled by time."""

    def __init__(self, edge: str, token: str, args, clock):
        self.edge, self.token, self.args, self.clock = edge, token, args, clock
        self.rng = random.Random(args.seed)
        self.results = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self.pool = concurrent.futures.ThreadPoolExecutor(max_workers=args.workers, thread_name_prefix="load")
        self.scheduler = threading.Thread(target=self._schedule, daemon=True, name="scheduler")
        self.customers = [f"BENCH-C{i:06d}" for i in range(args.customers)]
        self.items = [f"BENCH-I{i:04d}" for i in range(args.items)]

    def start(self):
        self.scheduler.start()

    def stop(self):
        self.stopping.set()
        self.scheduler.join()
        self.pool.shutdown(wait=True)

    def _schedule(self):
        interval = 1.0 / self.args.rate
        start = self.clock()
        n = 0
        while not self.stopping.is_set():
            due = start + n * interval
            delay = due - self.clock()
            if delay > 0:
                time.sleep(delay)
            roll = self.rng.random()
            kind = ("order" if roll < 0.65 else "quote" if roll < 0.80 else "profile" if roll < 0.95
                    else "segment")
            customer = self.rng.choice(self.customers)
            channel = self.rng.choice(CHANNELS)
            lines = [{"itemCode": item, "qty": {"value": str(self.rng.randint(1, 2))}}
                     for item in self.rng.sample(self.items, self.rng.randint(1, min(3, len(self.items))))]
            self.pool.submit(self._one, kind, due, customer, channel, lines)
            n += 1

    def _one(self, kind, due, customer, channel, lines):
        sent = self.clock()
        if kind == "order":
            status, body, error = call(self.edge, "POST", "/v1/orders", {
                "customer": customer, "channel": channel, "lines": lines,
                "idempotencyKey": f"drill-{uuid.uuid4().hex}"}, self.token, self.args.client_timeout)
        elif kind == "quote":
            status, body, error = call(self.edge, "POST", "/v1/quotes", {
                "customer": customer, "channel": channel, "lines": lines}, self.token, self.args.client_timeout)
        elif kind == "profile":
            status, body, error = call(self.edge, "GET", f"/v1/customers/{customer}/profile", None, self.token,
                                       self.args.client_timeout)
        else:  # a write to the Customer service
            status, body, error = call(self.edge, "POST", "/v1/segments", {
                "code": f"DRILL-{uuid.uuid4().hex[:10].upper()}", "segmentName": "Drill segment", "priority": 5},
                self.token, self.args.client_timeout)
        latency = self.clock() - sent
        order_id = None
        if kind == "order" and status == 200 and isinstance(body, dict):
            order_id = (body.get("order") or {}).get("orderId")
        with self.lock:
            self.results.append({"kind": kind, "due": due, "sent": sent, "latency": latency, "status": status,
                                 "ok": 200 <= status < 300, "order_id": order_id, "error": error})

    def snapshot(self) -> list:
        with self.lock:
            return list(self.results)


# ------------------------------------------------------------------ mesh

class Mesh:
    """The drill's processes, databases and receivers; `close` undoes all."""

    def __init__(self, args, work: Path):
        self.args = args
        self.work = work
        self.processes = {}  # name -> Popen (the current one)
        self.expected_dead = set()
        self.died = []  # (name, exit code, when) of processes that exited unasked
        self.noted_dead = set()
        self.logs = {}
        self.env = None
        self.binary = None
        self.ports = {}
        self.balancers = {}
        self.webhook = None
        self.t0 = time.monotonic()
        self.databases_made = False

    def clock(self) -> float:
        return time.monotonic() - self.t0

    # ---- databases
    def make_databases(self):
        self.databases_made = True
        mysql(f"DROP DATABASE IF EXISTS {ERP_DB}")
        mysql(f"CREATE DATABASE {ERP_DB}")
        for db in (GATEWAY_DB, SYNC_DB):
            psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            psql(f"CREATE DATABASE {db}")

    def drop_databases(self) -> list:
        problems = []
        try:
            mysql(f"DROP DATABASE IF EXISTS {ERP_DB}")
        except Exception as error:  # noqa: BLE001 - cleanup goes on
            problems.append(str(error))
        for db in (GATEWAY_DB, SYNC_DB):
            try:
                psql(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            except Exception as error:  # noqa: BLE001
                problems.append(str(error))
        return problems

    # ---- processes
    def run(self, *args, timeout=600) -> str:
        done = subprocess.run([str(self.binary), *args], env=self.env, capture_output=True, text=True,
                              timeout=timeout)
        if done.returncode != 0:
            raise DrillError(f"harsha {' '.join(args[:3])} failed ({done.returncode}):\n{done.stdout}{done.stderr}")
        return done.stdout

    def start(self, name: str, service: str, listen: str | None = None, log_name: str | None = None):
        log_path = self.work / f"{log_name or name}.log"
        log = open(log_path, "a")
        log.write(f"==== drill: starting {name} at +{self.clock():.1f} s\n")
        log.flush()
        command = [str(self.binary), "serve", service] + (["--listen", listen] if listen else [])
        self.processes[name] = subprocess.Popen(command, env=self.env, stdout=log, stderr=subprocess.STDOUT,
                                                preexec_fn=_die_with_parent)
        self.logs[name] = log_path
        log.close()

    def kill(self, name: str):
        self.expected_dead.add(name)
        process = self.processes[name]
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)

    def check_alive(self):
        """Notes processes that exited without being asked (once each)."""
        for name, process in self.processes.items():
            if name in self.expected_dead or name in self.noted_dead:
                continue
            code = process.poll()
            if code is not None:
                self.noted_dead.add(name)
                self.died.append((name, code, round(self.clock(), 1)))

    def stop_all(self) -> dict:
        codes = {}
        for name, process in self.processes.items():
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        for name, process in self.processes.items():
            try:
                codes[name] = process.wait(timeout=40)
            except subprocess.TimeoutExpired:
                process.kill()
                codes[name] = process.wait(timeout=10)
        return codes

    def grpc_serving(self, address: str, service: str) -> bool:
        try:
            import grpc
            from grpc_health.v1 import health_pb2, health_pb2_grpc
        except ImportError:  # no grpcio: an open port will do
            try:
                socket.create_connection(tuple(address.rsplit(":", 1)), timeout=1).close()
                return True
            except OSError:
                return False
        try:
            with grpc.insecure_channel(address) as channel:
                reply = health_pb2_grpc.HealthStub(channel).Check(
                    health_pb2.HealthCheckRequest(service=service), timeout=1)
            return reply.status == health_pb2.HealthCheckResponse.SERVING
        except grpc.RpcError:
            return False

    def wait_serving(self, name: str, address: str, service: str, timeout: float = 90):
        def ready():
            process = self.processes[name]
            if process.poll() is not None:
                raise DrillError(f"{name} exited with {process.returncode} while starting (log: {self.logs[name]})")
            return self.grpc_serving(address, service)
        wait_until(ready, timeout, f"{name} did not become SERVING at {address}")

    def close(self) -> list:
        """Stops everything and drops the databases; what went wrong."""
        problems = []
        codes = self.stop_all()
        for name, code in codes.items():
            if name not in self.expected_dead and name not in self.noted_dead and code not in (0, None):
                problems.append(f"{name} exited with {code} after SIGTERM (log: {self.logs.get(name)})")
        for thing in [*self.balancers.values(), self.webhook]:
            if thing is not None:
                try:
                    thing.close()
                except Exception:  # noqa: BLE001
                    pass
        if not postgres_up():
            try:
                pg_ctlcluster("start")
                wait_until(postgres_up, 60, "PostgreSQL did not come back")
            except Exception as error:  # noqa: BLE001
                problems.append(f"PostgreSQL is not running and could not be started: {error}")
        if self.databases_made:
            problems.extend(self.drop_databases())
        return problems


# ------------------------------------------------------------------ drill

def set_up(mesh: Mesh, args) -> dict:
    """Databases, data, credentials, processes, routes; returns what the
    load needs."""
    binary = harsha_binary()
    if not binary.exists():
        raise DrillError(f"no harsha binary at {binary} (build it: cargo build -p harsha, or set HARSHA_BIN)")
    # A copy, so a rebuild during the drill does not change what restarts.
    mesh.binary = mesh.work / "harsha"
    shutil.copy2(binary, mesh.binary)
    mesh.env = env = dict(
        os.environ, NO_COLOR="1", RUST_LOG=os.environ.get("DRILL_RUST_LOG", "info,sqlx=warn,h2=warn,tower=warn"),
        HARSHA__DATABASES__ERP=f"mysql://root@127.0.0.1:3306/{ERP_DB}",
        HARSHA__DATABASES__GATEWAY=f"postgres://postgres@127.0.0.1:5432/{GATEWAY_DB}",
        HARSHA__DATABASES__SYNC=f"postgres://postgres@127.0.0.1:5432/{SYNC_DB}",
        HARSHA__MIGRATE_ON_START="false",
        HARSHA__EDGE__ROUTES_REFRESH_SECONDS="2",
    )
    for key in [k for k in env if k.startswith("OTEL_")]:
        del env[key]
    mesh.make_databases()
    mesh.run("migrate")
    seeded = subprocess.run([str(mesh.binary), "seed", "--customers", str(args.customers), "--items", str(args.items),
                             "--batches", str(args.batches)], env=env, capture_output=True, text=True, timeout=900)
    if seeded.returncode != 0:
        raise DrillError(f"harsha seed failed:\n{seeded.stdout}{seeded.stderr}")
    # The seed's own changes are not news for the relay.
    mysql("UPDATE `tabHD Sync Outbox` SET relayed_at = UTC_TIMESTAMP(6) WHERE relayed_at IS NULL", ERP_DB)

    username = f"drill{uuid.uuid4().hex[:8]}"
    made = mesh.run("admin", "create-user", "--username", username, "--email", f"{username}@harshadelights.in",
                    "--role", "admin", "--plan", "internal")
    password = re.search(r"password: (\S+)", made).group(1)

    def api_key(name, *scopes):
        out = mesh.run("admin", "create-api-key", "--user", username, "--name", name,
                       *[a for s in scopes for a in ("--scope", s)])
        return re.search(r"key: (\S+)", out).group(1)

    env["HARSHA__PRICING__CUSTOMER_API_KEY"] = api_key("drill pricing", "customer:read")
    env["HARSHA__ORDER__API_KEY"] = api_key("drill order", "customer:read", "inventory:read", "inventory:write",
                                            "pricing:quote")

    ports = mesh.ports = {name: free_port() for name in SERVICES + ["customer2", "edge"]}
    for name in SERVICES:
        env[f"HARSHA__SERVICES__{name.upper()}"] = f"127.0.0.1:{ports[name]}"
    replicas = [f"127.0.0.1:{ports['customer']}", f"127.0.0.1:{ports['customer2']}"]
    # One balancer per client service, so each one's connections are known.
    mesh.balancers = {"order": TcpBalancer(replicas), "pricing": TcpBalancer(replicas)}
    env["HARSHA__ORDER__CUSTOMER_ENDPOINT"] = f"http://{mesh.balancers['order'].address}"
    env["HARSHA__PRICING__CUSTOMER_ENDPOINT"] = f"http://{mesh.balancers['pricing'].address}"
    env["HARSHA__EDGE__LISTEN"] = f"127.0.0.1:{ports['edge']}"
    # The edge balances the two replicas itself, from service_routes.
    psql("INSERT INTO service_routes (id, service, upstream_url, weight, status) VALUES "
         f"('drill-customer-1', '{CUSTOMER_SERVICE}', 'http://{replicas[0]}', 1, 'active'), "
         f"('drill-customer-2', '{CUSTOMER_SERVICE}', 'http://{replicas[1]}', 1, 'active')", GATEWAY_DB)

    mesh.start("customer", "customer")
    mesh.start("customer2", "customer", listen=replicas[1])
    for name in SERVICES[1:]:
        mesh.start(name, name)
    for name in SERVICES + ["customer2"]:
        service = name.rstrip("2")
        mesh.wait_serving(name, f"127.0.0.1:{ports[name]}", f"harsha.{service}.v1.{service.capitalize()}Service")
    mesh.start("edge", "edge")
    edge = f"http://127.0.0.1:{ports['edge']}"

    def edge_ready():
        if mesh.processes["edge"].poll() is not None:
            raise DrillError(f"the edge exited with {mesh.processes['edge'].returncode} (log: {mesh.logs['edge']})")
        return call(edge, "GET", "/healthz", timeout=2)[0] == 200
    wait_until(edge_ready, 60, "the edge never answered /healthz")
    # Both replicas in the edge's rotation: it health-checks an endpoint as
    # soon as it reads it from service_routes, and records the result.
    wait_until(lambda: psql("SELECT count(DISTINCT route_id) FROM service_health WHERE status = 'serving'",
                            GATEWAY_DB).strip() == "2", 60, "the edge did not pick up both customer replicas")

    # Set-up through the edge, as loadgen does: an operator's token, a plan
    # that does not limit the run, a user for the load, the event route.
    status, body, error = call(edge, "POST", "/v1/auth/login", {"username": username, "password": password})
    if status != 200:
        raise DrillError(f"logging in as {username}: {status} {error}")
    admin = body["accessToken"]
    plan = {"name": "drill", "perMinute": 2_000_000_000, "perHour": 2_000_000_000, "perDay": 2_000_000_000}
    status, _, error = call(edge, "PUT", "/v1/rate-limit-plans/drill", plan, admin)
    if status != 200:
        raise DrillError(f"making the drill's rate-limit plan: {status} {error}")
    user, user_password = f"drillload{uuid.uuid4().hex[:8]}", uuid.uuid4().hex
    status, _, error = call(edge, "POST", "/v1/users", {
        "username": user, "email": f"{user}@harshadelights.in", "password": user_password,
        "roles": ["sales", "warehouse"], "rateLimitPlan": "drill"}, admin)
    if status != 200:
        raise DrillError(f"making the load's user: {status} {error}")
    status, body, error = call(edge, "POST", "/v1/auth/login", {"username": user, "password": user_password})
    if status != 200:
        raise DrillError(f"logging in as {user}: {status} {error}")
    token = body["accessToken"]

    mesh.webhook = Webhook(mesh.clock)
    target = f"drill-{uuid.uuid4().hex[:8]}"
    status, _, error = call(edge, "POST", "/v1/targets", {
        "name": target, "system": "analytics", "kind": "TARGET_KIND_WEBHOOK", "url": mesh.webhook.url,
        "secret": SECRET, "timeoutMs": 2000, "maxAttempts": 8}, admin)
    if status != 200:
        raise DrillError(f"making the webhook target: {status} {error}")
    status, _, error = call(edge, "POST", "/v1/configurations",
                            {"entityType": "Order", "sourceSystem": "erpnext", "target": target}, admin)
    if status != 200:
        raise DrillError(f"routing order events: {status} {error}")

    # Preflight: an order goes through and its event arrives.
    status, body, error = call(edge, "POST", "/v1/orders", {
        "customer": "BENCH-C000001", "channel": "ECOMMERCE", "idempotencyKey": f"drill-preflight-{uuid.uuid4().hex}",
        "lines": [{"itemCode": "BENCH-I0001", "qty": {"value": "1"}}]}, token)
    if status != 200:
        raise DrillError(f"the preflight order failed: {status} {error}")
    preflight = body["order"]["orderId"]
    wait_until(lambda: preflight in mesh.webhook.placed_orders(), 60,
               f"the preflight order {preflight}'s event never reached the webhook")
    return {"edge": edge, "token": token, "preflight_order": preflight}


def order_states() -> dict:
    rows = mysql("SELECT name, status FROM `tabHD Order`", ERP_DB)
    return dict(line.split("\t", 1) for line in rows.splitlines() if "\t" in line)


def analyse(results, faults, load_end, deliveries, db_orders, args) -> dict:
    results = sorted(results, key=lambda r: r["sent"])
    ok = [r for r in results if r["ok"]]

    def latency_figures(rows):
        values = [r["latency"] for r in rows]
        return {"p50_ms": ms(percentile(values, 0.50)), "p99_ms": ms(percentile(values, 0.99)),
                "max_ms": ms(max(values) if values else None)}

    by_kind = {}
    for kind in ("order", "quote", "profile", "segment"):
        rows = [r for r in results if r["kind"] == kind]
        by_kind[kind] = {"sent": len(rows), "failed": sum(not r["ok"] for r in rows),
                         "statuses": dict(sorted(collections.Counter(str(r["status"]) for r in rows).items())),
                         **latency_figures([r for r in rows if r["ok"]])}

    # Events.
    placed_deliveries = [d for d in deliveries if d["event_type"] == "order.placed"]
    first_arrival = {}
    event_ids_by_order = collections.defaultdict(set)
    for d in sorted(placed_deliveries, key=lambda d: d["at"]):
        first_arrival.setdefault(d["entity_key"], d["at"])
        event_ids_by_order[d["entity_key"]].add(d["event_id"])
    deliveries_per_event = collections.Counter(d["event_id"] for d in deliveries)
    confirmed = {r["order_id"]: r for r in results if r["kind"] == "order" and r["ok"] and r["order_id"]}
    db_placed = {name for name, status in db_orders.items() if status in PLACED_STATUSES}
    db_unfinished = sorted(name for name, status in db_orders.items() if status in UNFINISHED_STATUSES)
    lost_confirmed = sorted(set(confirmed) - set(first_arrival))
    lost_db = sorted(db_placed - set(first_arrival))
    lost = sorted(set(lost_confirmed) | set(lost_db))
    confirmed_not_placed = sorted(o for o in confirmed if db_orders.get(o) not in PLACED_STATUSES)
    failed_answer_but_placed = sorted(db_placed - set(confirmed) - {args.preflight_order})
    lags = [first_arrival[o] - r["sent"] for o, r in confirmed.items() if o in first_arrival]

    # Faults.
    bounds = [f["at"] for f in faults] + [load_end]
    windows = [{"name": "before the first fault", "at": 0.0, "end": bounds[0]}] + [
        dict(f, end=bounds[i + 1]) for i, f in enumerate(faults)]
    fault_reports = []
    for i, window in enumerate(windows):
        start, end = window["at"], window["end"]
        # A request belongs to the window in which it finished (the last
        # window also holds those that finished after the load stopped).
        last = i == len(windows) - 1
        rows = [r for r in results if start <= r["sent"] + r["latency"] and (last or r["sent"] + r["latency"] < end)]
        failed = [r for r in rows if not r["ok"]]
        report = {"fault": window["name"], "at_s": round(start, 2), "window_s": round(end - start, 2),
                  "requests": len(rows), "failed": len(failed),
                  "p50_ms": ms(percentile([r["latency"] for r in rows], 0.5)),
                  "p99_ms": ms(percentile([r["latency"] for r in rows], 0.99)),
                  "failed_by_kind_status": dict(sorted(collections.Counter(
                      f"{r['kind']} {r['status']}" for r in failed).items())),
                  **{k: v for k, v in window.items() if k not in ("name", "at", "end")}}
        if failed:
            last_failed = max(failed, key=lambda r: r["sent"])
            after = [r for r in rows if r["sent"] > last_failed["sent"]]
            report["first_failure_s"] = round(min(r["sent"] for r in failed) - start, 2)
            report["last_failure_s"] = round(last_failed["sent"] - start, 2)
            report["errors"] = sorted({(r["error"] or "")[:160] for r in failed})[:5]
            if len(after) >= args.recovery_run:
                report["recovery_s"] = round(max(0.0, after[0]["sent"] - start), 2)
                # The bound counts from when the fault was undone (the sync
                # service started again, PostgreSQL back), if it was.
                since_restored = report["recovery_s"] - window.get("restored_after_s", 0.0)
                report["recovery_after_restore_s"] = round(max(0.0, since_restored), 2)
                report["recovered"] = since_restored <= args.recovery_bound
            else:
                report["recovery_s"] = None
                report["recovered"] = False
                report["note"] = (f"only {len(after)} requests followed the last failure in this window; "
                                  f"fewer than {args.recovery_run}: not recovered before the window ended")
        else:
            report["recovery_s"] = 0.0
            report["recovery_after_restore_s"] = 0.0
            report["recovered"] = True
        window_lags = [first_arrival[r["order_id"]] - r["sent"] for r in rows
                       if r["order_id"] in first_arrival]
        # The event pipeline's pause: the longest time without a delivery
        # at the webhook from the fault to the end of its window.
        arrivals = [start] + sorted(d["at"] for d in deliveries if start <= d["at"] < end) + [end]
        report["longest_event_gap_ms"] = ms(max(b - a for a, b in zip(arrivals, arrivals[1:])))
        report["event_lag_p50_ms"] = ms(percentile(window_lags, 0.5))
        report["event_lag_max_ms"] = ms(max(window_lags) if window_lags else None)
        fault_reports.append(report)

    # Second by second (by send time): sent, failed, median latency, and the
    # orders confirmed whose event took longest.
    timeline = []
    for second in range(int(load_end) + 1):
        rows = [r for r in results if second <= r["sent"] < second + 1]
        if not rows:
            continue
        row_lags = [first_arrival[r["order_id"]] - r["sent"] for r in rows if r["order_id"] in first_arrival]
        timeline.append([second, len(rows), sum(not r["ok"] for r in rows),
                         ms(percentile([r["latency"] for r in rows], 0.5)),
                         ms(max(row_lags) if row_lags else None)])

    return {
        "timeline": {"columns": ["second", "sent", "failed", "p50_ms", "event_lag_max_ms"], "rows": timeline},
        # Every request (the report file only): what a figure above came from.
        "samples": {"columns": ["kind", "sent_s", "latency_ms", "status", "order_id", "error"],
                    "rows": [[r["kind"], round(r["sent"], 3), ms(r["latency"]), r["status"], r["order_id"],
                              r["error"] and r["error"][:200]] for r in results]},
        "requests": {"total": len(results), "failed": len(results) - len(ok),
                     "max_start_delay_ms": ms(max((r["sent"] - r["due"] for r in results), default=0.0)),
                     **latency_figures(ok), "by_kind": by_kind},
        "faults": fault_reports,
        "events": {
            "orders_confirmed": len(confirmed),
            "orders_placed_in_db": len(db_placed),
            "orders_unfinished_in_db": db_unfinished,
            "order_events_received": len(placed_deliveries),
            "distinct_orders_with_event": len(first_arrival),
            "deliveries_total": len(deliveries),
            "unsigned_deliveries": sum(not d["signed"] for d in deliveries),
            "events_lost": len(lost),
            "lost_confirmed_orders": lost_confirmed[:50],
            "lost_db_placed_orders": lost_db[:50],
            "duplicate_deliveries": sum(n - 1 for n in deliveries_per_event.values() if n > 1),
            "orders_with_several_placed_events": sorted(o for o, ids in event_ids_by_order.items() if len(ids) > 1),
            "confirmed_but_not_placed_in_db": confirmed_not_placed[:50],
            "placed_after_a_failed_answer": len(failed_answer_but_placed),
            "lag_p50_ms": ms(percentile(lags, 0.5)), "lag_p99_ms": ms(percentile(lags, 0.99)),
            "lag_max_ms": ms(max(lags) if lags else None),
        },
    }


def summary(report: dict) -> str:
    out = []
    r = report.get("requests", {})
    e = report.get("events", {})
    out.append(f"disaster drill: {'PASSED' if report.get('passed') else 'FAILED'}")
    if r:
        out.append(f"  load: {r['total']} requests at {report['config']['rate']}/s, {r['failed']} failed; "
                   f"p50 {r['p50_ms']} ms, p99 {r['p99_ms']} ms (successful requests)")
        for kind, k in r["by_kind"].items():
            out.append(f"    {kind:<8} sent {k['sent']:>5}  failed {k['failed']:>4}  p50 {k['p50_ms']} ms  "
                       f"p99 {k['p99_ms']} ms  statuses {k['statuses']}")
    for f in report.get("faults", []):
        extra = ""
        if f.get("restored_after_s") is not None:
            extra += f"; undone after {f['restored_after_s']} s"
        if f.get("failed"):
            extra += f"; failures sent from {f['first_failure_s']:+.2f} s to {f['last_failure_s']:+.2f} s"
        out.append(f"  {f['fault']} at +{f['at_s']} s ({f['window_s']} s window): {f['requests']} requests, "
                   f"{f['failed']} failed, p50 {f['p50_ms']} ms, p99 {f['p99_ms']} ms, recovery {f['recovery_s']} s "
                   f"({'recovered' if f['recovered'] else 'NOT recovered'}){extra}; "
                   f"event lag p50 {f['event_lag_p50_ms']} ms, max {f['event_lag_max_ms']} ms, "
                   f"longest pause between deliveries {f['longest_event_gap_ms']} ms")
        if f.get("failed_by_kind_status"):
            out.append(f"      failed: {f['failed_by_kind_status']}")
    if e:
        out.append(f"  orders: {e['orders_confirmed']} confirmed, {e['orders_placed_in_db']} placed in the erp "
                   f"database, {e['distinct_orders_with_event']} with an order.placed event at the webhook; "
                   f"events lost {e['events_lost']}; duplicate deliveries {e['duplicate_deliveries']}; "
                   f"event lag p50 {e['lag_p50_ms']} ms, p99 {e['lag_p99_ms']} ms, max {e['lag_max_ms']} ms")
    if report.get("events_waited_s") is not None:
        out.append(f"  waited {report['events_waited_s']} s after the load for the last events")
    for warning in report.get("warnings", []):
        out.append(f"  warning: {warning}")
    for problem in report.get("problems", []):
        out.append(f"  PROBLEM: {problem}")
    if report.get("logs"):
        out.append(f"  logs: {report['logs']}")
    return "\n".join(out)


def drill(mesh: Mesh, args, report: dict):
    ready = set_up(mesh, args)
    args.preflight_order = ready["preflight_order"]
    report["preflight_order"] = ready["preflight_order"]
    edge = ready["edge"]
    mesh.check_alive()
    if mesh.died:
        raise DrillError(f"processes exited during set-up: {mesh.died}")

    load = Load(edge, ready["token"], args, mesh.clock)
    faults = []
    base = mesh.clock()

    def at(offset):
        delay = base + offset - mesh.clock()
        while delay > 0:
            time.sleep(min(delay, 0.5))
            mesh.check_alive()
            delay = base + offset - mesh.clock()

    print(f"drill: load at {args.rate}/s; faults at +{args.warmup} s, +{args.warmup + args.spacing} s, "
          f"+{args.warmup + 2 * args.spacing} s; load ends at "
          f"+{args.warmup + 2 * args.spacing + args.pg_down + args.tail} s",
          file=sys.stderr, flush=True)
    load.start()
    try:
        at(args.warmup)
        faults.append({"name": "SIGKILL customer replica 2", "at": mesh.clock()})
        mesh.kill("customer2")
        print(f"drill: +{mesh.clock() - base:.1f} s killed customer replica 2", file=sys.stderr, flush=True)

        at(args.warmup + args.spacing)
        faults.append({"name": "SIGKILL sync, restarted after", "at": mesh.clock(), "down_s": args.sync_down})
        mesh.kill("sync")
        print(f"drill: +{mesh.clock() - base:.1f} s killed sync", file=sys.stderr, flush=True)
        at(args.warmup + args.spacing + args.sync_down)
        mesh.expected_dead.discard("sync")
        mesh.start("sync", "sync", log_name="sync-restarted")
        restarted = mesh.clock()
        faults[-1]["restored_after_s"] = round(restarted - faults[-1]["at"], 2)
        print(f"drill: +{restarted - base:.1f} s started sync again", file=sys.stderr, flush=True)

        at(args.warmup + 2 * args.spacing)
        fault = {"name": "restart PostgreSQL", "at": mesh.clock()}
        faults.append(fault)
        if args.pg_down > 0:
            # Stopped for a while, then started (an outage, not a restart).
            fault["name"] = "stop PostgreSQL, started after"
            fault["down_s"] = args.pg_down
            print(f"drill: +{mesh.clock() - base:.1f} s stopping PostgreSQL", file=sys.stderr, flush=True)
            pg_ctlcluster("stop")
            at(args.warmup + 2 * args.spacing + args.pg_down)
            fault["start_command_s"] = round(pg_ctlcluster("start"), 2)
            fault["restored_after_s"] = round(mesh.clock() - fault["at"], 2)
            print(f"drill: +{mesh.clock() - base:.1f} s PostgreSQL started again", file=sys.stderr, flush=True)
        else:
            print(f"drill: +{mesh.clock() - base:.1f} s restarting PostgreSQL", file=sys.stderr, flush=True)
            fault["restart_command_s"] = round(pg_ctlcluster("restart"), 2)
            fault["restored_after_s"] = round(mesh.clock() - fault["at"], 2)
            print(f"drill: PostgreSQL restarted in {fault['restart_command_s']} s", file=sys.stderr, flush=True)

        at(args.warmup + 2 * args.spacing + args.pg_down + args.tail)
    finally:
        load_end = mesh.clock()
        load.stop()
    mesh.check_alive()
    sync_serving = mesh.grpc_serving(f"127.0.0.1:{mesh.ports['sync']}", "harsha.sync.v1.SyncService")
    report["sync_serving_after_restart"] = sync_serving

    # The last events: every confirmed order's, and every placed order's;
    # and no order left unfinished (recovery finishes them).
    results = load.snapshot()
    confirmed = {r["order_id"] for r in results if r["order_id"]}
    waited_from = time.monotonic()
    deadline = waited_from + args.event_wait
    while True:
        arrived = mesh.webhook.placed_orders()
        states = order_states()
        placed = {o for o, s in states.items() if s in PLACED_STATUSES}
        unfinished = [o for o, s in states.items() if s in UNFINISHED_STATUSES]
        if confirmed <= arrived and placed <= arrived and not unfinished:
            break
        if time.monotonic() > deadline:
            break
        time.sleep(0.5)
    report["events_waited_s"] = round(time.monotonic() - waited_from, 1)
    time.sleep(args.settle)  # late duplicates, if any
    mesh.check_alive()

    # Times from here on are relative to the start of the load.
    for r in results:
        r["sent"] -= base
        r["due"] -= base
    for f in faults:
        f["at"] -= base
    deliveries = [dict(d, at=d["at"] - base) for d in mesh.webhook.snapshot()]
    report.update(analyse(results, faults, load_end - base, deliveries, order_states(), args))
    report["customer_connections_through_balancer"] = {
        f"from {name}": {"to replica 1": b.connections[b.backends[0]], "to replica 2": b.connections[b.backends[1]],
                         "refused": sum(b.refused.values())} for name, b in mesh.balancers.items()}
    try:
        rows = psql("SELECT coalesce(route_id, '-'), count(*) FROM api_audit_logs "
                    "WHERE service = 'harsha.customer.v1.CustomerService' GROUP BY 1 ORDER BY 1", GATEWAY_DB)
        report["edge_customer_calls_by_route"] = dict(
            (k, int(v)) for k, v in (line.split("\t") for line in rows.splitlines() if "\t" in line))
    except Exception as error:  # noqa: BLE001 - informative only
        report["edge_customer_calls_by_route"] = str(error)

    problems = report["problems"]
    events = report["events"]
    baseline = report["faults"][0]
    if baseline["failed"] or (baseline["p99_ms"] or 0) > 2000:
        report["warnings"].append(
            f"before any fault {baseline['failed']} requests failed and p99 was {baseline['p99_ms']} ms: the mesh "
            "was already struggling at this rate on this machine (another load on the CPUs?), so the figures "
            "below measure that as much as the faults; try a lower --rate")
    if events["events_lost"]:
        problems.append(f"{events['events_lost']} placed orders' order.placed events never reached the webhook "
                        f"(confirmed: {events['lost_confirmed_orders'][:10]}, placed in the database: "
                        f"{events['lost_db_placed_orders'][:10]})")
    if events["confirmed_but_not_placed_in_db"]:
        problems.append(f"orders answered 200 but not placed in the erp database: "
                        f"{events['confirmed_but_not_placed_in_db'][:10]}")
    if events["orders_unfinished_in_db"]:
        problems.append(f"orders still unfinished {args.event_wait} s after the load: "
                        f"{events['orders_unfinished_in_db'][:10]}")
    for f in report["faults"][1:]:
        if not f["recovered"]:
            why = f.get("note") or (f"recovery took {f['recovery_s']} s, {f['recovery_after_restore_s']} s after "
                                    f"the fault was undone: more than {args.recovery_bound:g} s")
            problems.append(f"{f['fault']}: not recovered: {why} ({f['failed']} failed requests, the last sent "
                            f"{f.get('last_failure_s')} s after the fault)")
    if not sync_serving:
        problems.append("the restarted sync service is not SERVING")
    for name, code, when in mesh.died:
        problems.append(f"{name} exited with {code} at +{when - base:.1f} s without being asked "
                        f"(log: {mesh.logs.get(name)})")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=25, help="requests per second through the edge")
    parser.add_argument("--warmup", type=float, default=10, help="seconds of load before the first fault")
    parser.add_argument("--spacing", type=float, default=20, help="seconds between faults")
    parser.add_argument("--sync-down", type=float, default=5, help="seconds the sync service stays dead")
    parser.add_argument("--pg-down", type=float, default=0,
                        help="stop PostgreSQL for this many seconds instead of restarting it (0: restart)")
    parser.add_argument("--tail", type=float, default=20, help="seconds of load after PostgreSQL is back")
    parser.add_argument("--client-timeout", type=float, default=10, help="a request's timeout, seconds")
    parser.add_argument("--recovery-run", type=int, default=20,
                        help="successful requests that must follow a window's last failure")
    parser.add_argument("--recovery-bound", type=float, default=30, help="most seconds a recovery may take")
    parser.add_argument("--event-wait", type=float, default=120, help="most seconds to wait for the last events")
    parser.add_argument("--settle", type=float, default=2, help="seconds to keep listening after the last event")
    parser.add_argument("--workers", type=int, default=256, help="load threads (requests in flight at most)")
    parser.add_argument("--customers", type=int, default=200)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--seed", type=int, default=None, help="random seed of the load")
    parser.add_argument("--report", type=Path, help="also write the JSON report here")
    parser.add_argument("--keep-logs", action="store_true", help="keep the log folder when the drill passes")
    args = parser.parse_args()
    args.preflight_order = None

    def terminate(signum, _frame):
        raise SystemExit(128 + signum)
    signal.signal(signal.SIGTERM, terminate)

    report = {"config": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                         if k != "preflight_order"},
              "problems": [], "warnings": [], "passed": False}
    missing = [what for what, up in (("MariaDB on 127.0.0.1:3306 (root, no password)", mariadb_up),
                                     ("PostgreSQL on 127.0.0.1:5432 (user postgres, trust)", postgres_up)) if not up()]
    if missing:
        print(f"disaster drill cannot run: {' and '.join(missing)} not reachable "
              "(scripts/test.sh starts them)", file=sys.stderr)
        return 2
    try:
        report["postgres_cluster"] = "/".join(pg_cluster())
    except DrillError as error:
        print(f"disaster drill cannot run: {error}", file=sys.stderr)
        return 2
    if shutil.which("pg_ctlcluster") is None:
        print("disaster drill cannot run: pg_ctlcluster is not installed", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="harsha-drill-"))
    mesh = Mesh(args, work)
    code = 2
    try:
        drill(mesh, args, report)
        code = 1 if report["problems"] else 0
    except DrillError as error:
        report["problems"].append(f"the drill could not run: {error}")
    except SystemExit as stop:
        report["problems"].append(f"the drill was interrupted (exit {stop.code})")
        code = stop.code if isinstance(stop.code, int) else 2
    except KeyboardInterrupt:
        report["problems"].append("the drill was interrupted")
    except Exception:  # noqa: BLE001 - reported, and cleanup still runs
        report["problems"].append(f"the drill failed unexpectedly:\n{traceback.format_exc()}")
    finally:
        signal.signal(signal.SIGTERM, signal.SIG_IGN)  # cleanup is not interrupted
        cleanup = mesh.close()
        report["problems"].extend(f"cleanup: {problem}" for problem in cleanup)
        report["postgres_running_after"] = postgres_up()
        if cleanup and code == 0:
            code = 1
    try:
        (work / "harsha").unlink(missing_ok=True)
    except OSError:
        pass
    report["passed"] = code == 0
    if (code == 0 and not args.keep_logs) or not any(work.glob("*.log")):
        shutil.rmtree(work, ignore_errors=True)
    else:
        report["logs"] = str(work)
        warnings = {}
        for log in sorted(work.glob("*.log")):
            text = re.sub(r"\x1b\[[0-9;]*m", "", log.read_text(errors="replace"))
            lines = [line for line in text.splitlines()
                     if " WARN " in line or " ERROR " in line or "panicked" in line]
            if lines:
                warnings[log.stem] = {"count": len(lines), "last": [l[-300:] for l in lines[-3:]]}
        report["log_warnings"] = warnings
    if args.report:
        args.report.write_text(json.dumps(report, indent=2, default=str))
    print(summary(report))
    # The second-by-second timeline is long: in the report file when there
    # is one, else on one line at the end; every request's sample only in
    # the file.
    report.pop("samples", None)
    timeline = report.pop("timeline", None)
    print(json.dumps(report, indent=2, default=str))
    if timeline and not args.report:
        print(json.dumps({"timeline": timeline}, separators=(",", ":")))
    return code


if __name__ == "__main__":
    sys.exit(main())
