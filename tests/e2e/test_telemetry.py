"""Telemetry end to end: a mesh started with the standard OTEL_* variables
exports its spans over OTLP (HTTP/JSON here, to a collector this test
runs), and one order placed through the edge is one trace with a span from
every service it crossed, each hop a child of the one that called it, down
to the delivery of its event; the metrics pages count what happened."""

import base64
import json
import secrets
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from conftest import free_port, start_mesh, stop_mesh
from harsha.inventory.v1 import inventory_pb2_grpc
from test_edge import call
from test_inventory import receive


class Collector:
    """An OTLP/HTTP receiver keeping every span it is sent."""

    def __init__(self):
        self.spans: list[dict] = []
        self.lock = threading.Lock()
        collector = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                if self.path == "/v1/traces":
                    collector.receive(json.loads(body))
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", free_port()), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def receive(self, export: dict):
        for resource_spans in export.get("resourceSpans", []):
            attributes = {a["key"]: a["value"] for a in resource_spans.get("resource", {}).get("attributes", [])}
            service = attributes.get("service.name", {}).get("stringValue")
            for scope in resource_spans.get("scopeSpans", []):
                for span in scope.get("spans", []):
                    with self.lock:
                        self.spans.append(dict(span, service=service,
                                               traceId=hex_id(span.get("traceId", "")),
                                               spanId=hex_id(span.get("spanId", "")),
                                               parentSpanId=hex_id(span.get("parentSpanId", ""))))

    def trace(self, trace_id: str) -> list[dict]:
        with self.lock:
            return [s for s in self.spans if s["traceId"] == trace_id]

    def wait_for(self, trace_id: str, names: set, timeout: float = 20.0) -> list[dict]:
        deadline = time.monotonic() + timeout
        while True:
            spans = self.trace(trace_id)
            if names <= {s["name"] for s in spans}:
                return spans
            assert time.monotonic() < deadline, (
                f"spans missing from trace {trace_id}: {names - {s['name'] for s in spans}}; "
                f"got {sorted(s['name'] for s in spans)}")
            time.sleep(0.2)

    def close(self):
        self.server.shutdown()


def hex_id(value: str) -> str:
    """OTLP JSON ids are hex; tolerate base64 (protobuf's JSON default)."""
    if not value or all(c in "0123456789abcdef" for c in value.lower()):
        return value.lower()
    return base64.b64decode(value).hex()


def kind(span: dict) -> int:
    names = {"SPAN_KIND_INTERNAL": 1, "SPAN_KIND_SERVER": 2, "SPAN_KIND_CLIENT": 3}
    value = span.get("kind", 0)
    return names.get(value, value) if isinstance(value, str) else value


@pytest.fixture(scope="module")
def traced(tmp_path_factory):
    collector = Collector()
    mesh = start_mesh(tmp_path_factory.mktemp("harsha-traced"), {
        "OTEL_EXPORTER_OTLP_ENDPOINT": collector.endpoint,
        "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json",
        "OTEL_BSP_SCHEDULE_DELAY": "100",
    })
    yield mesh, collector
    code = stop_mesh(mesh)
    collector.close()
    assert code == 0, "".join(mesh.banner + mesh.log)


def test_one_order_is_one_trace_with_a_span_from_every_service_it_crossed(traced):
    mesh, collector = traced
    item, warehouse = "DARK-CHOC-70", "Hyderabad DC - HD"
    with mesh.channel("inventory") as channel:
        receive(inventory_pb2_grpc.InventoryServiceStub(channel), item, warehouse, 40, "20")
    trace_id, caller_span = secrets.token_hex(16), secrets.token_hex(8)

    placed = call(mesh, "POST", "/v1/orders", {
        "customer": "CUST-0001", "channel": "ECOMMERCE", "warehouse": warehouse,
        "idempotencyKey": f"traced-{secrets.token_hex(8)}",
        "lines": [{"itemCode": item, "qty": {"value": "2"}}],
    }, token=mesh.token(), headers={"traceparent": f"00-{trace_id}-{caller_span}-01"})
    assert placed.status == 200, placed.json
    assert placed.headers["traceparent"].split("-")[1] == trace_id

    servers = {
        "harsha.order.v1.OrderService/PlaceOrder",
        "harsha.customer.v1.CustomerService/ResolveCustomerProfile",
        "harsha.pricing.v1.PricingService/QuotePrice",
        "harsha.inventory.v1.InventoryService/AllocateStockLines",
        "harsha.pricing.v1.PricingService/ApplyQuote",
    }
    # The Order service's calls, named as the server spans they lead to.
    clients = {name for name in servers if not name.startswith("harsha.order")}
    spans = collector.wait_for(trace_id, {"POST /v1/orders"} | {f"/{s}" for s in servers} | clients
                               | {"store.insert_order", "store.save_order"})
    by_id = {s["spanId"]: s for s in spans}
    edge = next(s for s in spans if s["name"] == "POST /v1/orders")
    assert edge["parentSpanId"] == caller_span, "the edge continues the caller's trace"
    assert kind(edge) == 2
    for span in spans:
        assert span["service"] == "harsha-mesh"
        if span is not edge:
            assert span["parentSpanId"] in by_id, f"{span['name']} hangs off a span not exported"
    # Each downstream server span is the child of the Order service's
    # client span for the same call, and those of the order's server span.
    order = next(s for s in spans if s["name"] == "/harsha.order.v1.OrderService/PlaceOrder")
    assert order["parentSpanId"] == edge["spanId"]
    for name in servers - {"harsha.order.v1.OrderService/PlaceOrder"}:
        server = next(s for s in spans if s["name"] == f"/{name}")
        client = by_id[server["parentSpanId"]]
        assert client["name"] == name and kind(client) == 3, (name, client["name"])
        ancestors, parent = [], client
        while parent["spanId"] != order["spanId"]:
            parent = by_id[parent["parentSpanId"]]
            ancestors.append(parent["name"])
        assert ancestors, name

    # The order's event is delivered to the demo's receivers in the same
    # trace, each delivery a child of the save that recorded the event.
    spans = collector.wait_for(trace_id, {"deliver order.placed"})
    by_id = {s["spanId"]: s for s in spans}
    deliveries = [s for s in spans if s["name"] == "deliver order.placed"]
    assert deliveries
    for delivery in deliveries:
        assert by_id[delivery["parentSpanId"]]["name"] == "store.save_order"


def test_a_request_without_trace_context_starts_a_trace_the_answer_names(traced):
    mesh, collector = traced
    answer = call(mesh, "GET", "/v1/customers/CUST-0001/profile", token=mesh.token())
    assert answer.status == 200, answer.json
    trace_id = answer.headers["traceparent"].split("-")[1]
    spans = collector.wait_for(trace_id, {"/harsha.customer.v1.CustomerService/ResolveCustomerProfile"})
    edge = next(s for s in spans if s["name"].startswith("GET "))
    assert edge["parentSpanId"] == ""
    assert edge["name"] == "GET /v1/customers/{customer}/profile"


def scrape(url: str) -> dict:
    """A Prometheus text page as {(name, frozenset(labels)): value}."""
    import urllib.request

    with urllib.request.urlopen(url, timeout=10) as reply:
        assert reply.headers["Content-Type"].startswith("text/plain")
        text = reply.read().decode()
    samples = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        name, _, labels = series.partition("{")
        pairs = frozenset(tuple(pair.split("=", 1)) for pair in
                          labels.rstrip("}").replace('"', "").split(",") if pair)
        samples[(name, pairs)] = float(value)
    return samples


def value(samples: dict, name: str, **labels) -> float | None:
    wanted = set(labels.items())
    found = [v for (n, pairs), v in samples.items() if n == name and wanted <= set(pairs)]
    return sum(found) if found else None


def test_the_metrics_page_counts_the_workload_of_every_service(traced):
    mesh, _ = traced
    refused = call(mesh, "POST", "/v1/orders", {
        "customer": "CUST-0001", "channel": "ECOMMERCE", "idempotencyKey": f"bad-{secrets.token_hex(6)}",
        "lines": [],
    }, token=mesh.token())
    assert refused.status == 400, refused.json
    samples = scrape(mesh.edge_url("/metrics"))

    assert value(samples, "harsha_edge_requests_total", route="/v1/orders", status="200") >= 1
    assert value(samples, "harsha_edge_requests_total", route="/v1/orders", status="400") >= 1
    place = "/harsha.order.v1.OrderService/PlaceOrder"
    assert value(samples, "harsha_grpc_server_handling_seconds_count", rpc=place, code="OK") >= 1
    assert value(samples, "harsha_grpc_server_handling_seconds_count", rpc=place, code="INVALID_ARGUMENT") >= 1
    assert value(samples, "harsha_grpc_server_handling_seconds_bucket", rpc=place, code="OK", le="+Inf") >= 1
    assert value(samples, "harsha_client_call_seconds_count",
                 service="harsha.inventory.v1.InventoryService", rpc="AllocateStockLines", code="Ok") >= 1
    for service, role in [("customer", "erp"), ("order", "erp"), ("auth", "gateway"), ("sync", "sync")]:
        assert value(samples, "harsha_db_up", service=service, role=role) == 1, service
        assert value(samples, "harsha_db_pool_connections", service=service, state="idle") is not None
    # The expiry scan and the sync figures come from background jobs that
    # run at start.
    deadline = time.monotonic() + 30
    while value(samples, "harsha_inventory_batches_near_expiry", level="critical") is None \
            or value(samples, "harsha_sync_lag_seconds", quantile="0.95") is None:
        assert time.monotonic() < deadline, "the start-up jobs published nothing"
        time.sleep(0.5)
        samples = scrape(mesh.edge_url("/metrics"))
    for level in ("expired", "critical", "warning"):
        assert value(samples, "harsha_inventory_batches_near_expiry", level=level) is not None, level
    assert value(samples, "harsha_sync_deliveries", state="pending") is not None
    assert value(samples, "harsha_sync_conflicts_stale") == 0


def test_a_service_alone_answers_scrapes_on_its_metrics_listener(mesh):
    import os
    import subprocess

    import grpc

    from conftest import harsha_binary, wait_until_serving
    from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

    address, metrics = f"127.0.0.1:{free_port()}", f"127.0.0.1:{free_port()}"
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"sqlite://{mesh.data_dir}/erp.sqlite",
               HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}")
    process = subprocess.Popen([harsha_binary(), "serve", "customer", "--listen", address,
                                "--metrics-listen", metrics],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        with grpc.insecure_channel(address) as channel:
            wait_until_serving(channel, "harsha.customer.v1.CustomerService")
            stub = customer_pb2_grpc.CustomerServiceStub(channel)
            with pytest.raises(grpc.RpcError) as unknown:
                stub.ResolveCustomerProfile(pb.ResolveCustomerProfileRequest(customer="CUST-9999"),
                                            metadata=mesh.metadata())
        samples = scrape(f"http://{metrics}/metrics")
        rpc = "/harsha.customer.v1.CustomerService/ResolveCustomerProfile"
        code = unknown.value.code().name
        assert value(samples, "harsha_grpc_server_handling_seconds_count", rpc=rpc, code=code) == 1
        assert value(samples, "harsha_db_up", service="customer", role="erp") == 1
    finally:
        process.terminate()
        assert process.wait(timeout=30) == 0


def test_spans_export_over_otlp_grpc_too(mesh):
    """`OTEL_EXPORTER_OTLP_PROTOCOL=grpc`: a service alone exports its spans to
    an OTLP/gRPC collector (Python's, from the OpenTelemetry protos), named
    as the service, continuing the caller's trace."""
    import os
    import subprocess
    from concurrent import futures

    import grpc
    from opentelemetry.proto.collector.trace.v1 import trace_service_pb2 as otlp, trace_service_pb2_grpc

    from conftest import harsha_binary, wait_until_serving
    from harsha.customer.v1 import customer_pb2 as pb, customer_pb2_grpc

    received = []

    class Collector(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request, context):  # noqa: N802 (the protocol's name)
            for resource_spans in request.resource_spans:
                name = next((a.value.string_value for a in resource_spans.resource.attributes
                             if a.key == "service.name"), None)
                for scope in resource_spans.scope_spans:
                    received.extend((name, span) for span in scope.spans)
            return otlp.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Collector(), server)
    collector_port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    address = f"127.0.0.1:{free_port()}"
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"sqlite://{mesh.data_dir}/erp.sqlite",
               HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}",
               OTEL_EXPORTER_OTLP_ENDPOINT=f"http://127.0.0.1:{collector_port}",
               OTEL_EXPORTER_OTLP_PROTOCOL="grpc", OTEL_BSP_SCHEDULE_DELAY="100")
    process = subprocess.Popen([harsha_binary(), "serve", "customer", "--listen", address],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    trace_id, caller = secrets.token_hex(16), secrets.token_hex(8)
    try:
        with grpc.insecure_channel(address) as channel:
            wait_until_serving(channel, "harsha.customer.v1.CustomerService")
            customer_pb2_grpc.CustomerServiceStub(channel).ResolveCustomerProfile(
                pb.ResolveCustomerProfileRequest(customer="CUST-0001"),
                metadata=mesh.metadata() + [("traceparent", f"00-{trace_id}-{caller}-01")])
        deadline = time.monotonic() + 20
        rpc = "/harsha.customer.v1.CustomerService/ResolveCustomerProfile"
        while not any(span.name == rpc for _, span in received):
            assert time.monotonic() < deadline, f"no span arrived: {[s.name for _, s in received]}"
            time.sleep(0.2)
        name, span = next((n, s) for n, s in received if s.name == rpc)
        assert name == "harsha-customer"
        assert span.trace_id.hex() == trace_id and span.parent_span_id.hex() == caller
    finally:
        process.terminate()
        _, errors = process.communicate(timeout=30)
        server.stop(None)
    assert process.returncode == 0, errors
