"""The promises made to operators: grpcurl works with no local proto files
(server reflection), every service answers grpc.health.v1 under its own
name, and the mesh drains and exits cleanly on SIGTERM."""

import json
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
