"""The disaster drill (scripts/disaster_drill.py) on this machine's MariaDB
and PostgreSQL: under a steady load through the edge, one Customer replica
is killed, the Sync service is killed and started again, PostgreSQL is
restarted; every fault must be recovered from within the bound and no
placed order's `order.placed` event may be lost.

It needs MariaDB on 127.0.0.1:3306 (root, no password), PostgreSQL on
127.0.0.1:5432 (postgres, trust) managed by `pg_ctlcluster`, and the debug
binary (HARSHA_BIN, else ${CARGO_TARGET_DIR:-target}/debug/harsha); when
they are missing the test fails saying so (scripts/test.sh starts the
databases first). It takes about 80 s.
"""

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DRILL = ROOT / "scripts" / "disaster_drill.py"
# The drill bounds its own waits (set-up, 70 s of load, at most 120 s for
# the last events, cleanup); this is the backstop.
TIMEOUT = 360


def binary() -> Path:
    if os.environ.get("HARSHA_BIN"):
        return Path(os.environ["HARSHA_BIN"])
    return Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target")) / "debug" / "harsha"


def reachable(*command) -> bool:
    try:
        return subprocess.run(command, capture_output=True, timeout=15).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


def test_the_mesh_recovers_from_each_fault_and_loses_no_order_event(tmp_path):
    missing = []
    if not reachable("mysqladmin", "--protocol=tcp", "-h127.0.0.1", "-uroot", "ping"):
        missing.append("MariaDB on 127.0.0.1:3306 (root, no password)")
    if not reachable("pg_isready", "-q", "-h", "127.0.0.1", "-p", "5432"):
        missing.append("PostgreSQL on 127.0.0.1:5432 (user postgres)")
    if not binary().exists():
        missing.append(f"the harsha binary at {binary()} (cargo build -p harsha, or set HARSHA_BIN)")
    if missing:
        pytest.fail("the disaster drill needs " + " and ".join(missing) +
                    "; scripts/test.sh starts the databases before the tests", pytrace=False)

    report_path = tmp_path / "drill.json"
    process = subprocess.Popen([sys.executable, str(DRILL), "--report", str(report_path)], cwd=ROOT,
                               env=dict(os.environ, HARSHA_BIN=str(binary())),
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        output, _ = process.communicate(timeout=TIMEOUT)
    except subprocess.TimeoutExpired:
        # SIGTERM lets the drill stop its processes, start PostgreSQL if it
        # is down and drop its databases.
        process.send_signal(signal.SIGTERM)
        try:
            output, _ = process.communicate(timeout=120)
        except subprocess.TimeoutExpired:
            process.kill()
            output, _ = process.communicate()
        pytest.fail(f"the drill did not finish within {TIMEOUT} s:\n{output}", pytrace=False)
    print(output)

    assert process.returncode != 2, f"the drill could not run:\n{output}"
    assert report_path.exists(), f"the drill wrote no report (exit {process.returncode}):\n{output}"
    report = json.loads(report_path.read_text())
    events = report["events"]
    assert events["events_lost"] == 0, (
        f"{events['events_lost']} placed orders' events never reached the webhook: "
        f"{events['lost_confirmed_orders'] or events['lost_db_placed_orders']}")
    assert events["orders_confirmed"] > 0 and events["distinct_orders_with_event"] >= events["orders_confirmed"]
    faults = report["faults"][1:]
    assert [f["fault"] for f in faults] == [
        "SIGKILL customer replica 2", "SIGKILL sync, restarted after", "restart PostgreSQL"]
    not_recovered = [f for f in faults if not f["recovered"]]
    assert not not_recovered, f"not recovered: {json.dumps(not_recovered, indent=2)}"
    assert report["postgres_running_after"], "PostgreSQL was left stopped"
    assert process.returncode == 0 and report["passed"], f"the drill found problems: {report['problems']}"
