"""Starts `harsha up --demo` on free loopback ports in a scratch folder and
generates Python stubs from proto/ with grpc_tools, so the tests talk to the
mesh the way any non-Rust client would: over the network, from the contract.
"""

import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_tools import protoc

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ["customer", "inventory", "pricing", "auth", "sync", "order"]


def _generate_stubs() -> Path:
    out = Path(tempfile.mkdtemp(prefix="harsha-stubs-"))
    proto = ROOT / "proto"
    # google/rpc comes from googleapis-common-protos (grpc_status uses it).
    files = [str(p.relative_to(proto)) for p in proto.rglob("*.proto") if "google/rpc" not in p.as_posix()]
    include = Path(protoc.__file__).parent / "_proto"
    code = protoc.main(
        ["protoc", f"-I{proto}", f"-I{include}", f"--python_out={out}", f"--grpc_python_out={out}", *files]
    )
    assert code == 0, "grpc_tools could not compile proto/"
    return out


STUBS = _generate_stubs()
sys.path.insert(0, str(STUBS))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def harsha_binary() -> str:
    return os.environ.get("HARSHA_BIN", str(ROOT / "target" / "debug" / "harsha"))


def health_status(channel: grpc.Channel, service: str, timeout: float = 20.0) -> int:
    """The first health answer for `service`, waiting while the server starts."""
    health = health_pb2_grpc.HealthStub(channel)
    deadline = time.monotonic() + timeout
    while True:
        try:
            return health.Check(health_pb2.HealthCheckRequest(service=service), timeout=1).status
        except grpc.RpcError:
            assert time.monotonic() < deadline, "the server never answered"
            time.sleep(0.2)


def wait_until_serving(channel: grpc.Channel, service: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while health_status(channel, service) != health_pb2.HealthCheckResponse.SERVING:
        assert time.monotonic() < deadline, f"{service} never became SERVING"
        time.sleep(0.25)


def serve(service: str, env: dict) -> tuple:
    """Starts `harsha serve <service>` on a free port; returns the process and its address."""
    address = f"127.0.0.1:{free_port()}"
    process = subprocess.Popen([harsha_binary(), "serve", service, "--listen", address], env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return process, address


class Mesh:
    """A running `harsha up` process and its endpoints."""

    def __init__(self, process: subprocess.Popen, ports: dict, data_dir: Path):
        self.process = process
        self.ports = ports
        self.data_dir = data_dir
        self.banner: list[str] = []
        # What it logged after the banner (read continuously).
        self.log: list[str] = []
        self.reader = None
        # Secrets the tests sent or received; none may appear in the output.
        self.secrets: set[str] = set()
        # Set when the first admin was made by an earlier run on the same data.
        self.known_admin_password: str | None = None
        self._token: str | None = None

    def admin_password(self) -> str:
        """The first admin's password, printed once by `harsha up`."""
        if self.known_admin_password:
            return self.known_admin_password
        for line in self.banner:
            if line.strip().startswith("password:"):
                return line.split(":", 1)[1].strip()
        raise AssertionError("harsha up printed no first-admin password:\n" + "".join(self.banner))

    def address(self, service: str) -> str:
        return f"127.0.0.1:{self.ports[service]}"

    def edge_url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.ports['edge']}{path}"

    def token(self) -> str:
        """An access token of the first admin (every scope)."""
        if self._token is None:
            from harsha.auth.v1 import auth_pb2, auth_pb2_grpc

            with grpc.insecure_channel(self.address("auth")) as channel:
                reply = auth_pb2_grpc.AuthServiceStub(channel).Login(
                    auth_pb2.LoginRequest(username="admin", password=self.admin_password()), timeout=10)
            self._token = reply.access_token
            self.secrets.add(self._token)
        return self._token

    def metadata(self) -> list:
        return [("authorization", f"Bearer {self.token()}")]

    def raw_channel(self, service: str) -> grpc.Channel:
        """A channel that sends no credentials."""
        return grpc.insecure_channel(self.address(service))

    def channel(self, service: str) -> grpc.Channel:
        """A channel whose calls carry the first admin's access token unless
        they bring credentials of their own."""
        return grpc.intercept_channel(self.raw_channel(service), AdminToken(self.token))


class AdminToken(grpc.UnaryUnaryClientInterceptor, grpc.UnaryStreamClientInterceptor):
    """Adds `authorization: Bearer <admin token>` to calls that carry no
    credential of their own."""

    def __init__(self, token):
        self._token = token

    def _with_token(self, details):
        metadata = list(details.metadata or [])
        if not any(key in ("authorization", "x-api-key") for key, _ in metadata):
            metadata.append(("authorization", f"Bearer {self._token()}"))
        return _CallDetails(details.method, details.timeout, metadata, details.credentials,
                            details.wait_for_ready, details.compression)

    def intercept_unary_unary(self, continuation, details, request):
        return continuation(self._with_token(details), request)

    def intercept_unary_stream(self, continuation, details, request):
        return continuation(self._with_token(details), request)


class _CallDetails(grpc.ClientCallDetails):
    def __init__(self, method, timeout, metadata, credentials, wait_for_ready, compression):
        self.method = method
        self.timeout = timeout
        self.metadata = metadata
        self.credentials = credentials
        self.wait_for_ready = wait_for_ready
        self.compression = compression


def _wait_serving(mesh: Mesh, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for service in SERVICES:
        name = f"harsha.{service}.v1.{service.capitalize()}Service"
        while True:
            if mesh.process.poll() is not None:
                raise RuntimeError(f"harsha up exited with {mesh.process.returncode}")
            try:
                with mesh.raw_channel(service) as channel:
                    reply = health_pb2_grpc.HealthStub(channel).Check(
                        health_pb2.HealthCheckRequest(service=name), timeout=1
                    )
                if reply.status == health_pb2.HealthCheckResponse.SERVING:
                    break
            except grpc.RpcError:
                pass
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name} did not become SERVING")
            time.sleep(0.2)


def start_mesh(data_dir: Path, extra_env: dict | None = None) -> Mesh:
    ports = {service: free_port() for service in SERVICES}
    env = dict(os.environ, **(extra_env or {}))
    for service, port in ports.items():
        env[f"HARSHA__SERVICES__{service.upper()}"] = f"127.0.0.1:{port}"
    ports["edge"] = free_port()
    env["HARSHA__EDGE__LISTEN"] = f"127.0.0.1:{ports['edge']}"
    env["HARSHA__EDGE__USAGE_FLUSH_SECONDS"] = "1"
    env["HARSHA__EDGE__ROUTES_REFRESH_SECONDS"] = "1"
    env["HARSHA__EDGE__HEALTH_CHECK_SECONDS"] = "1"
    process = subprocess.Popen(
        [harsha_binary(), "up", "--demo", "--data-dir", str(data_dir)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    mesh = Mesh(process, ports, data_dir)
    # The banner (with the first admin's password) ends with the "Try:" line.
    assert process.stdout is not None
    for line in process.stdout:
        mesh.banner.append(line)
        if line.startswith("Try:"):
            break
    # Keep reading the logs, or a full pipe would stop the mesh mid-write.
    import threading

    def drain():
        for line in process.stdout:
            mesh.log.append(line)

    mesh.reader = threading.Thread(target=drain, daemon=True)
    mesh.reader.start()
    _wait_serving(mesh)
    return mesh


def stop_mesh(mesh: Mesh, timeout: float = 30.0) -> int:
    mesh.process.send_signal(signal.SIGTERM)
    try:
        return mesh.process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        mesh.process.kill()
        raise


@pytest.fixture(scope="session")
def mesh(tmp_path_factory):
    running = start_mesh(tmp_path_factory.mktemp("harsha-data"))
    yield running
    code = stop_mesh(running)
    if running.reader is not None:
        running.reader.join(timeout=10)
    logged = "".join(running.log)
    output = "".join(running.banner) + logged
    assert code == 0, f"harsha up exited with {code} after SIGTERM:\n{output}"
    leaked = [secret for secret in running.secrets if secret in logged]
    assert not leaked, f"secrets in the logs: {leaked}"


@pytest.fixture(scope="session")
def customer_stub(mesh):
    from harsha.customer.v1 import customer_pb2_grpc

    channel = mesh.channel("customer")
    yield customer_pb2_grpc.CustomerServiceStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def inventory_stub(mesh):
    from harsha.inventory.v1 import inventory_pb2_grpc

    channel = mesh.channel("inventory")
    yield inventory_pb2_grpc.InventoryServiceStub(channel)
    channel.close()


@pytest.fixture(scope="session")
def pricing_stub(mesh):
    from harsha.pricing.v1 import pricing_pb2_grpc

    channel = mesh.channel("pricing")
    yield pricing_pb2_grpc.PricingServiceStub(channel)
    channel.close()
