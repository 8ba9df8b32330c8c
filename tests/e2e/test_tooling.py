"""The promises made to operators: grpcurl works with no local proto files
(server reflection), every service answers grpc.health.v1 under its own
name, and the mesh drains and exits cleanly on SIGTERM."""

import json
import signal
import shutil
import subprocess
import sys
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import SERVICES, start_mesh, stop_mesh


def grpcurl() -> str:
    found = shutil.which("grpcurl") or str(Path(sys.executable).parent / "grpcurl")
    assert Path(found).exists(), "grpcurl is installed by tests/requirements.txt"
    return found


def test_grpcurl_lists_and_calls_without_proto_files(mesh):
    listed = subprocess.run(
        [grpcurl(), "-plaintext", mesh.address("customer"), "list"], capture_output=True, text=True, check=True
    ).stdout.split()
    assert "harsha.customer.v1.CustomerService" in listed
    assert "grpc.health.v1.Health" in listed
    reply = subprocess.run(
        [grpcurl(), "-plaintext", "-d", '{"code": "retail"}', mesh.address("customer"),
         "harsha.customer.v1.CustomerService/GetSegment"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert json.loads(reply)["segment"]["segmentName"] == "Retail shops"


def test_every_service_is_healthy_under_its_own_name(mesh):
    for service in SERVICES:
        name = f"harsha.{service}.v1.{service.capitalize()}Service"
        with mesh.channel(service) as channel:
            health = health_pb2_grpc.HealthStub(channel)
            assert health.Check(health_pb2.HealthCheckRequest(service=name)).status == health_pb2.HealthCheckResponse.SERVING
            assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
            try:
                health.Check(health_pb2.HealthCheckRequest(service="harsha.nope.v1.NopeService"))
                raise AssertionError("an unknown service name must be NOT_FOUND")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.NOT_FOUND


def test_reflection_describes_each_service(mesh):
    for service in SERVICES:
        with mesh.channel(service) as channel:
            stub = reflection_pb2_grpc.ServerReflectionStub(channel)
            replies = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]))
            names = {s.name for reply in replies for s in reply.list_services_response.service}
            assert f"harsha.{service}.v1.{service.capitalize()}Service" in names


def test_sigterm_drains_and_exits_zero(tmp_path):
    mesh = start_mesh(tmp_path / "data")
    assert stop_mesh(mesh) == 0
    assert (tmp_path / "data" / "erp.sqlite").exists()
    restarted = start_mesh(tmp_path / "data")
    try:
        from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

        with restarted.channel("customer") as channel:
            segments = customer_pb2_grpc.CustomerServiceStub(channel).ListSegments(pb.ListSegmentsRequest(page_size=100))
        assert len(segments.segments) == 6, "data survives a restart and the demo is not loaded twice"
    finally:
        assert stop_mesh(restarted) == 0


def test_serve_waits_for_its_database_then_migrates_and_serves(tmp_path):
    """`harsha serve customer` on MariaDB: NOT_SERVING and UNAVAILABLE while
    its database does not exist, SERVING once it does (migrated at start)."""
    import os
    import socket
    import time
    import uuid

    from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

    from conftest import ROOT

    name = f"harsha_e2e_{uuid.uuid4().hex[:12]}"
    mysql = ["mysql", "--protocol=tcp", "-h127.0.0.1", "-uroot"]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"mysql://root@127.0.0.1:3306/{name}")
    binary = os.environ.get("HARSHA_BIN", str(ROOT / "target" / "debug" / "harsha"))
    process = subprocess.Popen([binary, "serve", "customer", "--listen", f"127.0.0.1:{port}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="harsha.customer.v1.CustomerService")
        deadline = time.monotonic() + 20
        while True:
            try:
                status = health.Check(request, timeout=1).status
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.2)
        assert status == health_pb2.HealthCheckResponse.NOT_SERVING
        assert health.Check(health_pb2.HealthCheckRequest(service="")).status == health_pb2.HealthCheckResponse.SERVING
        stub = customer_pb2_grpc.CustomerServiceStub(channel)
        try:
            stub.ListSegments(pb.ListSegmentsRequest())
            raise AssertionError("calls must fail while the database is missing")
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.UNAVAILABLE

        subprocess.run([*mysql, "-e", f"CREATE DATABASE `{name}`"], check=True)
        deadline = time.monotonic() + 30
        while health.Check(request).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "never became SERVING"
            time.sleep(0.25)
        assert list(stub.ListSegments(pb.ListSegmentsRequest()).segments) == []
        tables = subprocess.run([*mysql, "-N", "-e", f"SHOW TABLES FROM `{name}`"], capture_output=True, text=True,
                                check=True).stdout.split("\n")
        assert "tabHD Customer Segment Assignment" in tables
        channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        subprocess.run([*mysql, "-e", f"DROP DATABASE IF EXISTS `{name}`"], check=False)
    assert code == 0


def test_buf_curl_calls_through_reflection_v1(mesh):
    """`buf curl` asks reflection v1 first: it works with no proto files."""
    from conftest import ROOT

    buf = ROOT / "tools" / "node_modules" / ".bin" / "buf"
    assert buf.exists(), "buf is installed by scripts/test.sh"
    reply = subprocess.run(
        [str(buf), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", "grpc-v1",
         "-d", '{"customer": "CUST-0001", "asOf": {"year": 2026, "month": 11, "day": 1}}',
         f"http://{mesh.address('customer')}/harsha.customer.v1.CustomerService/ListCustomerSegments"],
        capture_output=True, text=True, check=True,
    ).stdout
    segments = [s["segment"]["code"] for s in json.loads(reply)["segments"]]
    assert segments == ["RETAIL", "FESTIVAL-BULK"], "primary first, the festival membership in force on Nov 1"


def test_serve_without_start_up_migrations_waits_for_harsha_migrate(tmp_path):
    """As in Kubernetes (`migrate_on_start = false`): a service on an
    unmigrated database stays NOT_SERVING until `harsha migrate` has run."""
    import os
    import socket
    import time
    import uuid

    from conftest import ROOT

    name = f"harsha_e2e_{uuid.uuid4().hex[:12]}"
    mysql = ["mysql", "--protocol=tcp", "-h127.0.0.1", "-uroot"]
    subprocess.run([*mysql, "-e", f"CREATE DATABASE `{name}`"], check=True)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"mysql://root@127.0.0.1:3306/{name}",
               HARSHA__MIGRATE_ON_START="false")
    binary = os.environ.get("HARSHA_BIN", str(ROOT / "target" / "debug" / "harsha"))
    process = subprocess.Popen([binary, "serve", "customer", "--listen", f"127.0.0.1:{port}"], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        channel = grpc.insecure_channel(f"127.0.0.1:{port}")
        health = health_pb2_grpc.HealthStub(channel)
        request = health_pb2.HealthCheckRequest(service="harsha.customer.v1.CustomerService")
        deadline = time.monotonic() + 20
        while True:
            try:
                status = health.Check(request, timeout=1).status
                break
            except grpc.RpcError:
                assert time.monotonic() < deadline, "the server never answered"
                time.sleep(0.2)
        time.sleep(1.5)
        assert health.Check(request).status == health_pb2.HealthCheckResponse.NOT_SERVING
        migrated = subprocess.run([binary, "migrate", "--role", "erp"], env=env, capture_output=True, text=True)
        assert migrated.returncode == 0, migrated.stderr
        assert "erp: migrated (MariaDB)" in migrated.stdout
        deadline = time.monotonic() + 30
        while health.Check(request).status != health_pb2.HealthCheckResponse.SERVING:
            assert time.monotonic() < deadline, "never became SERVING after the migration"
            time.sleep(0.25)
        channel.close()
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
        subprocess.run([*mysql, "-e", f"DROP DATABASE IF EXISTS `{name}`"], check=False)
    assert code == 0
