"""The promises made to operators: grpcurl works with no local proto files
(server reflection), every service answers grpc.health.v1 under its own
name, and the mesh drains and exits cleanly on SIGTERM."""

import json
import os
import signal
import shutil
import subprocess
import sys
import time
import uuid
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from conftest import SERVICES, harsha_binary, health_status, serve, start_mesh, stop_mesh, wait_until_serving


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
        [grpcurl(), "-plaintext", "-H", f"authorization: Bearer {mesh.token()}", "-d", '{"code": "retail"}', mesh.address("customer"),
         "harsha.customer.v1.CustomerService/GetSegment"],
        capture_output=True, text=True, check=True,
    ).stdout
    assert json.loads(reply)["segment"]["segmentName"] == "Retail shops"


def test_grpcurl_decodes_error_details(mesh):
    failed = subprocess.run(
        [grpcurl(), "-plaintext", "-H", f"authorization: Bearer {mesh.token()}", "-d", '{"item_code": "KAJU-KATLI", "qty": {"value": "-1"}}', mesh.address("inventory"),
         "harsha.inventory.v1.InventoryService/AllocateStock"],
        capture_output=True, text=True,
    )
    assert failed.returncode != 0
    output = failed.stdout + failed.stderr
    assert "InvalidArgument" in output
    assert "google.rpc.BadRequest" in output and '"field":"qty"' in output.replace(" ", "")
    assert "is not recognized" not in output, "reflection describes google.rpc details"


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
    restarted.known_admin_password = mesh.admin_password()
    assert any("password:" in line for line in mesh.banner)
    assert not any("password:" in line for line in restarted.banner), "the first admin is made once"
    try:
        from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

        with restarted.channel("customer") as channel:
            segments = customer_pb2_grpc.CustomerServiceStub(channel).ListSegments(pb.ListSegmentsRequest(page_size=100))
        assert len(segments.segments) == 6, "data survives a restart and the demo is not loaded twice"
    finally:
        assert stop_mesh(restarted) == 0


def test_buf_curl_calls_through_reflection_v1(mesh):
    """`buf curl` asks reflection v1 first: it works with no proto files."""
    buf = Path(__file__).resolve().parents[2] / "tools" / "node_modules" / ".bin" / "buf"
    assert buf.exists(), "buf is installed by scripts/test.sh"
    reply = subprocess.run(
        [str(buf), "curl", "--protocol", "grpc", "--http2-prior-knowledge", "--reflect-protocol", "grpc-v1",
         "-H", f"authorization: Bearer {mesh.token()}",
         "-d", '{"customer": "CUST-0001", "asOf": {"year": 2026, "month": 11, "day": 1}}',
         f"http://{mesh.address('customer')}/harsha.customer.v1.CustomerService/ListCustomerSegments"],
        capture_output=True, text=True, check=True,
    ).stdout
    segments = [s["segment"]["code"] for s in json.loads(reply)["segments"]]
    assert segments == ["RETAIL", "FESTIVAL-BULK"], "primary first, the festival membership in force on Nov 1"



MYSQL = ["mysql", "--protocol=tcp", "-h127.0.0.1", "-uroot"]
CUSTOMER_SERVICE = "harsha.customer.v1.CustomerService"


def scratch_erp_database() -> str:
    return f"harsha_e2e_{uuid.uuid4().hex[:12]}"


def stop(process: subprocess.Popen, database: str) -> int:
    process.send_signal(signal.SIGTERM)
    try:
        return process.wait(timeout=30)
    finally:
        subprocess.run([*MYSQL, "-e", f"DROP DATABASE IF EXISTS `{database}`"], check=False)


def test_serve_waits_for_its_database_then_migrates_and_serves(mesh):
    """`harsha serve customer` on MariaDB: NOT_SERVING and UNAVAILABLE while
    its database does not exist, SERVING once it does (migrated at start);
    checking calls with the running mesh's Auth service, like any replica."""
    from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

    name = scratch_erp_database()
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"mysql://root@127.0.0.1:3306/{name}",
               HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}")
    process, address = serve("customer", env)
    try:
        with grpc.insecure_channel(address) as channel:
            assert health_status(channel, CUSTOMER_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
            assert health_status(channel, "") == health_pb2.HealthCheckResponse.SERVING
            stub = customer_pb2_grpc.CustomerServiceStub(channel)
            try:
                stub.ListSegments(pb.ListSegmentsRequest(), metadata=mesh.metadata())
                raise AssertionError("calls must fail while the database is missing")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAVAILABLE

            subprocess.run([*MYSQL, "-e", f"CREATE DATABASE `{name}`"], check=True)
            wait_until_serving(channel, CUSTOMER_SERVICE)
            assert list(stub.ListSegments(pb.ListSegmentsRequest(), metadata=mesh.metadata()).segments) == []
            try:
                stub.ListSegments(pb.ListSegmentsRequest())
                raise AssertionError("a replica on its own is as protected as the mesh")
            except grpc.RpcError as error:
                assert error.code() == grpc.StatusCode.UNAUTHENTICATED
        tables = subprocess.run([*MYSQL, "-N", "-e", f"SHOW TABLES FROM `{name}`"], capture_output=True,
                                text=True, check=True).stdout.split("\n")
        assert "tabHD Customer Segment Assignment" in tables
    finally:
        code = stop(process, name)
    assert code == 0


def test_serve_without_start_up_migrations_waits_for_harsha_migrate(mesh):
    """As in Kubernetes (`migrate_on_start = false`): a service on an
    unmigrated database stays NOT_SERVING until `harsha migrate` has run."""
    name = scratch_erp_database()
    subprocess.run([*MYSQL, "-e", f"CREATE DATABASE `{name}`"], check=True)
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"mysql://root@127.0.0.1:3306/{name}",
               HARSHA__MIGRATE_ON_START="false", HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}")
    process, address = serve("customer", env)
    try:
        with grpc.insecure_channel(address) as channel:
            health_status(channel, CUSTOMER_SERVICE)
            time.sleep(1.5)
            assert health_status(channel, CUSTOMER_SERVICE) == health_pb2.HealthCheckResponse.NOT_SERVING
            migrated = subprocess.run([harsha_binary(), "migrate", "--role", "erp"], env=env,
                                      capture_output=True, text=True)
            assert migrated.returncode == 0, migrated.stderr
            assert "erp: migrated (MariaDB)" in migrated.stdout
            wait_until_serving(channel, CUSTOMER_SERVICE)
    finally:
        code = stop(process, name)
    assert code == 0
