"""Load run for orders (issue 9) on the production engines, all on this
machine: MariaDB for the erp role, PostgreSQL for gateway and sync, one
`harsha serve` process per service plus the edge (a release build), the
demo data scaled to 100,000 customers, 1,000 items and 10,000 batches
(`harsha seed`), then `harsha loadgen` through the edge:

  (a) orders only, at --rate orders/s;
  (b) the realistic mix (60 % orders, 25 % quotes, 15 % lookups).

Prints each run's throughput and latency percentiles, how long order events
took to reach a webhook, the CPU seconds each process spent, and where an
order's time goes (the saga log's step times for the orders of run (a)).

  .venv/bin/python scripts/bench_orders.py [--rate 300] [--seconds 30] [--reuse] [--seed-only]

--reuse keeps the seeded databases of an earlier run (seeding takes a few
minutes; --seed-only stops after it). Needs MariaDB and PostgreSQL on 127.0.0.1 as root/postgres with
trust or empty-password access (as `scripts/test.sh` sets up).
"""

import argparse
import json
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
ERP_DB, GATEWAY_DB, SYNC_DB = "harsha_bench_erp", "harsha_bench_gateway", "harsha_bench_sync"
SERVICES = ["customer", "inventory", "pricing", "auth", "sync", "order"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def cpu_seconds(pid) -> float:
    ticks = os.sysconf("SC_CLK_TCK")
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / ticks
    except (FileNotFoundError, IndexError):
        return 0.0


def mysql(sql: str, database: str = "") -> str:
    args = ["mysql", "-uroot", "-h127.0.0.1", "-N", "-B"] + ([database] if database else []) + ["-e", sql]
    return subprocess.run(args, check=True, capture_output=True, text=True).stdout


def psql(sql: str) -> None:
    subprocess.run(["psql", "-h", "127.0.0.1", "-U", "postgres", "-v", "ON_ERROR_STOP=1", "-q", "-c", sql],
                   check=True, capture_output=True, text=True)


def run(binary, env, *args) -> str:
    done = subprocess.run([str(binary), *args], env=env, check=True, capture_output=True, text=True)
    return done.stdout


def wait_for_edge(port: int, processes: dict, timeout: float = 120.0) -> None:
    import urllib.request
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v1/customers/BENCH-C000001/profile", timeout=2):
                pass
        except urllib.error.HTTPError as error:
            if error.code == 401:  # up, and asking for a credential
                return
        except OSError:
            pass
        time.sleep(0.5)
    raise TimeoutError("the edge never answered")


def step_times(limit: int) -> dict:
    """Median and p95 milliseconds between saga-log steps, over the last
    `limit` placed orders."""
    rows = mysql(
        "SELECT l.parent, l.saga_step, l.status, "
        "CAST(UNIX_TIMESTAMP(l.creation) * 1000000 AS UNSIGNED), "
        "CAST(UNIX_TIMESTAMP(o.creation) * 1000000 AS UNSIGNED) FROM `tabHD Order Saga Log` l "
        "JOIN (SELECT name, creation FROM `tabHD Order` WHERE status IN ('Placed', 'Fulfilled', 'Cancelled') "
        f"ORDER BY creation DESC LIMIT {limit}) o ON o.name = l.parent ORDER BY l.parent, l.creation",
        ERP_DB)
    by_order = {}
    for line in rows.splitlines():
        order, step, status, micros, created = line.split("\t")
        # The order's creation is when its request arrived (it is recorded
        # once checked and priced).
        by_order.setdefault(order, [("started", "Pending", int(created))]).append((step, status, int(micros)))
    gaps = {"request → recorded (customer + quote)": [], "reserving → applying (stock reserved)": [],
            "applying → placed (quote applied, order + event written)": [], "total": []}
    for steps in by_order.values():
        at = {}
        for step, status, micros in steps:
            key = "placed" if status == "Placed" and step == "done" else step
            at.setdefault(key, micros)
        if {"started", "reserving", "applying", "placed"} <= at.keys():
            gaps["request → recorded (customer + quote)"].append(at["reserving"] - at["started"])
            gaps["reserving → applying (stock reserved)"].append(at["applying"] - at["reserving"])
            gaps["applying → placed (quote applied, order + event written)"].append(at["placed"] - at["applying"])
            gaps["total"].append(at["placed"] - at["started"])
    out = {}
    for name, values in gaps.items():
        values.sort()
        if values:
            out[name] = {"p50_ms": values[len(values) // 2] / 1000, "p95_ms": values[int(len(values) * 0.95) - 1] / 1000}
    return out


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--rate", type=int, default=300)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--customers", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=1_000)
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--reuse", action="store_true")
    parser.add_argument("--seed-only", action="store_true")
    args = parser.parse_args()
    binary = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "release" / "harsha"
    assert binary.exists(), f"build first: cargo build --release -p harsha ({binary})"

    env = dict(os.environ, RUST_LOG="warn",
               HARSHA__DATABASES__ERP=f"mysql://root@127.0.0.1:3306/{ERP_DB}",
               HARSHA__DATABASES__GATEWAY=f"postgres://postgres@127.0.0.1:5432/{GATEWAY_DB}",
               HARSHA__DATABASES__SYNC=f"postgres://postgres@127.0.0.1:5432/{SYNC_DB}")
    if not args.reuse:
        mysql(f"DROP DATABASE IF EXISTS {ERP_DB}; CREATE DATABASE {ERP_DB}")
        for db in (GATEWAY_DB, SYNC_DB):
            psql(f"DROP DATABASE IF EXISTS {db}")
            psql(f"CREATE DATABASE {db}")
    # Reused databases get the migrations added since they were made.
    run(binary, env, "migrate")
    if not args.reuse:
        started = time.monotonic()
        subprocess.run([str(binary), "seed", "--customers", str(args.customers), "--items", str(args.items),
                        "--batches", str(args.batches)], env=env, check=True)
        print(f"seeded in {time.monotonic() - started:.0f} s", file=sys.stderr)
    # The seeded rows (and an earlier run's leftovers) are not news: the run
    # starts with nothing for the relay to catch up on, as a live system would.
    mysql("UPDATE `tabHD Sync Outbox` SET relayed_at = UTC_TIMESTAMP(6) WHERE relayed_at IS NULL", ERP_DB)
    if args.seed_only:
        return
    username = f"bench{int(time.time())}"
    made = run(binary, env, "admin", "create-user", "--username", username, "--email",
               f"{username}@harshadelights.in", "--role", "admin", "--plan", "internal")
    password = re.search(r"password: (\S+)", made).group(1)

    def api_key(name, *scopes):
        out = run(binary, env, "admin", "create-api-key", "--user", username, "--name", name,
                  *[a for s in scopes for a in ("--scope", s)])
        return re.search(r"key: (\S+)", out).group(1)

    env["HARSHA__PRICING__CUSTOMER_API_KEY"] = api_key("bench pricing", "customer:read")
    env["HARSHA__ORDER__API_KEY"] = api_key("bench order", "customer:read", "inventory:read",
                                            "inventory:write", "pricing:quote")
    ports = {name: free_port() for name in SERVICES + ["edge"]}
    for name in SERVICES:
        env[f"HARSHA__SERVICES__{name.upper()}"] = f"127.0.0.1:{ports[name]}"
    env["HARSHA__EDGE__LISTEN"] = f"127.0.0.1:{ports['edge']}"
    env["HARSHA__MIGRATE_ON_START"] = "false"
    work = Path(tempfile.mkdtemp(prefix="harsha-bench-orders-"))
    processes = {}
    try:
        for name in SERVICES + ["edge"]:
            log = open(work / f"{name}.log", "w")
            processes[name] = subprocess.Popen([str(binary), "serve", name], env=env, stdout=log, stderr=log)
        wait_for_edge(ports["edge"], processes)
        time.sleep(2)
        results = {}
        engines = {"mariadb": [int(p) for p in subprocess.run(["pgrep", "-x", "mariadbd"], capture_output=True, text=True).stdout.split()],
                   "postgres": [int(p) for p in subprocess.run(["pgrep", "-x", "postgres"], capture_output=True, text=True).stdout.split()]}

        def cpu_now():
            now = {name: cpu_seconds(p.pid) for name, p in processes.items()}
            for engine, pids in engines.items():
                now[engine] = sum(cpu_seconds(pid) for pid in pids)
            return now

        for label, mix in (("orders", "100,0,0"), ("mix", "60,25,15")):
            # PostgreSQL forks a backend per connection: count those too.
            engines["postgres"] = [int(p) for p in subprocess.run(["pgrep", "postgres"], capture_output=True, text=True).stdout.split()]
            before = cpu_now()
            out = subprocess.run(
                [str(binary), "loadgen", "--edge", f"http://127.0.0.1:{ports['edge']}", "--username", username,
                 "--rate", str(args.rate), "--duration", str(args.seconds), "--mix", mix, "--json",
                 "--customers", "2000"],
                env=dict(env, HARSHA_LOADGEN_PASSWORD=password), check=True, capture_output=True, text=True)
            report = json.loads(out.stdout)
            engines["postgres"] = [int(p) for p in subprocess.run(["pgrep", "postgres"], capture_output=True, text=True).stdout.split()]
            after = cpu_now()
            report["cpu_seconds"] = {name: round(after[name] - before.get(name, 0.0), 1) for name in after}
            if label == "orders":
                report["steps"] = step_times(2000)
            results[label] = report
            print(json.dumps({label: report}, indent=2))
        print(json.dumps(results))
    finally:
        for process in processes.values():
            process.send_signal(signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                process.kill()


if __name__ == "__main__":
    main()
