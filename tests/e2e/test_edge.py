"""The REST/JSON edge, called as any HTTP client would: every annotated RPC
has its route (derived from the contracts, no edge code per RPC), proto3
JSON both ways, path variables, query strings and bodies, each error
mapped to its HTTP status with a google.rpc.Status-shaped body, and request
ids echoed."""

import contextlib
import json
import os
import signal
import subprocess
import time
import urllib.error
import urllib.request
import uuid

import pytest
from conftest import free_port, harsha_binary
from google.api import annotations_pb2

from harsha.auth.v1 import auth_pb2
from harsha.customer.v1 import customer_pb2
from harsha.inventory.v1 import inventory_pb2
from harsha.pricing.v1 import pricing_pb2


class Answer:
    def __init__(self, status, headers, body):
        self.status = status
        self.headers = headers
        self.raw = body
        kind = (headers or {}).get("Content-Type", "") if headers is not None else ""
        self.json = json.loads(body) if body and "ndjson" not in kind and "event-stream" not in kind else None


def call(mesh, method, path, body=None, token=None, headers=None, raw=None, edge=None) -> Answer:
    """Calls the mesh's edge, or the edge at the base URL `edge`."""
    data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
    url = f"{edge}{path}" if edge else mesh.edge_url(path)
    request = urllib.request.Request(url, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token:
        request.add_header("Authorization", f"Bearer {token}")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=30) as reply:
            return Answer(reply.status, reply.headers, reply.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


@contextlib.contextmanager
def edge_process(mesh, env=None, upstreams=None):
    """`harsha serve edge` alone in front of the mesh's services (or the
    `upstreams` given), checking callers through its Auth service and
    auditing to its gateway database; yields its base URL once ready."""
    port = free_port()
    environment = dict(os.environ, HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}",
                       HARSHA__DATABASES__GATEWAY=f"sqlite://{mesh.data_dir}/gateway.sqlite")
    for service in ("customer", "inventory", "pricing", "auth", "sync"):
        environment[f"HARSHA__EDGE__UPSTREAMS__{service.upper()}"] = (upstreams or {}).get(
            service, f"http://{mesh.address(service)}")
    environment.update(env or {})
    process = subprocess.Popen([harsha_binary(), "serve", "edge", "--listen", f"127.0.0.1:{port}"],
                               env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=5):
                    break
            except OSError:
                assert process.poll() is None, "the edge exited"
                assert time.monotonic() < deadline, "the edge never became ready"
                time.sleep(0.2)
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0


def start_customer(mesh, port, database_dir):
    """`harsha serve customer` on `port` with an empty database of its own,
    once it reports SERVING."""
    import grpc

    from conftest import health_status

    env = dict(os.environ, HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}",
               HARSHA__DATABASES__ERP=f"sqlite://{database_dir}/erp.sqlite")
    process = subprocess.Popen([harsha_binary(), "serve", "customer", "--listen", f"127.0.0.1:{port}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        deadline = time.monotonic() + 30
        while health_status(channel, "harsha.customer.v1.CustomerService") != 1:
            assert process.poll() is None, "the customer service exited"
            assert time.monotonic() < deadline, "the customer service never became ready"
            time.sleep(0.2)
    return process


def test_logging_in_and_reading_through_rest(mesh):
    login = call(mesh, "POST", "/v1/auth/login", {"username": "admin", "password": mesh.admin_password()})
    assert login.status == 200, login.raw
    token = login.json["accessToken"]
    mesh.secrets.update({token, login.json["refreshToken"]})
    assert login.json["tokenType"] == "Bearer" and login.json["expiresIn"] == "900", "int64 as a string"
    jwks = call(mesh, "GET", "/.well-known/jwks.json")
    assert jwks.status == 200 and jwks.json["keys"][0]["kty"] == "OKP"

    segment = call(mesh, "GET", "/v1/segments/RETAIL", token=token)
    assert segment.status == 200, segment.raw
    assert segment.json["segment"]["segmentName"] == "Retail shops"
    page = call(mesh, "GET", "/v1/segments?pageSize=2", token=token)
    assert len(page.json["segments"]) == 2 and page.json["nextPageToken"]
    rest = call(mesh, "GET", f"/v1/segments?pageSize=2&page_token={page.json['nextPageToken']}", token=token)
    assert rest.status == 200 and rest.json["segments"][0]["code"] != page.json["segments"][0]["code"]
    profile = call(mesh, "GET", "/v1/customers/CUST-0003/profile", token=token)
    assert profile.status == 200 and profile.json["customer"] == "CUST-0003"
    position = call(mesh, "GET", "/v1/items/KAJU-KATLI/stock-position", token=token)
    assert position.status == 200, position.raw
    assert position.json["itemCode"] == "KAJU-KATLI" and position.json["warehouses"]


def test_bodies_path_variables_and_nested_fields(mesh):
    token = mesh.token()
    name = f"gold-{uuid.uuid4().hex[:6]}"
    # body: "plan" with {plan.name} from the path.
    put = call(mesh, "PUT", f"/v1/rate-limit-plans/{name}", {"perMinute": 100, "perHour": "5000", "perDay": 90000},
               token=token)
    assert put.status == 200, put.raw
    assert put.json["plan"] == {"name": name, "perMinute": 100, "perHour": 5000, "perDay": 90000}
    user = call(mesh, "POST", "/v1/users", {"username": f"rest{uuid.uuid4().hex[:6]}", "email": "rest@harshadelights.in",
                                              "password": "kalakand all day", "roles": ["viewer"]}, token=token)
    assert user.status == 200, user.raw
    user_id = user.json["user"]["userId"]
    patched = call(mesh, "PATCH", f"/v1/users/{user_id}", {"rate_limit_plan": name}, token=token)
    assert patched.status == 200 and patched.json["user"]["rateLimitPlan"] == name
    disabled = call(mesh, "POST", f"/v1/users/{user_id}:disable", {}, token=token)
    assert disabled.status == 200 and disabled.json["user"]["disabled"] is True


def test_errors_map_to_http_statuses_with_status_bodies(mesh):
    token = mesh.token()
    unauthenticated = call(mesh, "GET", "/v1/segments")
    assert unauthenticated.status == 401 and unauthenticated.json["code"] == 16
    viewer_name = f"viewer{uuid.uuid4().hex[:6]}"
    call(mesh, "POST", "/v1/users", {"username": viewer_name, "email": f"{viewer_name}@harshadelights.in",
                                     "password": "kalakand all day", "roles": ["viewer"]}, token=token)
    viewer = call(mesh, "POST", "/v1/auth/login", {"username": viewer_name, "password": "kalakand all day"}).json["accessToken"]
    mesh.secrets.add(viewer)
    forbidden = call(mesh, "POST", "/v1/segments", {}, token=viewer)
    assert forbidden.status == 403 and forbidden.json["code"] == 7

    invalid = call(mesh, "POST", "/v1/users", {"username": "x", "email": "x@harshadelights.in", "password": "kalakand all day",
                                                "roles": ["viewer"]}, token=token)
    assert invalid.status == 400 and invalid.json["code"] == 3
    (detail,) = invalid.json["details"]
    assert detail["@type"] == "type.googleapis.com/google.rpc.BadRequest"
    assert detail["fieldViolations"][0]["field"] == "username"

    assert call(mesh, "GET", "/v1/segments/NO-SUCH-SEGMENT", token=token).status == 404
    taken = call(mesh, "POST", "/v1/users", {"username": viewer_name, "email": "other@harshadelights.in",
                                              "password": "kalakand all day", "roles": ["viewer"]}, token=token)
    assert taken.status == 409 and taken.json["code"] == 6
    locked_name = f"lock{uuid.uuid4().hex[:6]}"
    call(mesh, "POST", "/v1/users", {"username": locked_name, "email": f"{locked_name}@harshadelights.in",
                                     "password": "kalakand all day", "roles": ["viewer"]}, token=token)
    for _ in range(5):
        last = call(mesh, "POST", "/v1/auth/login", {"username": locked_name, "password": "wrong wrong wrong"})
    assert last.status == 429 and last.json["code"] == 8


def test_the_edge_refuses_what_it_cannot_transcode(mesh):
    token = mesh.token()
    malformed = call(mesh, "POST", "/v1/users", raw=b'{"username": ', token=token)
    assert malformed.status == 400 and "not valid JSON" in malformed.json["message"]
    unknown = call(mesh, "POST", "/v1/users", {"nickname": "laddu"}, token=token)
    assert unknown.status == 400 and "nickname" in unknown.json["message"]
    wrong_type = call(mesh, "GET", "/v1/segments?pageSize=ten", token=token)
    assert wrong_type.status == 400 and "page_size" in wrong_type.json["message"]
    assert call(mesh, "GET", "/v1/nowhere", token=token).status == 404
    assert call(mesh, "DELETE", "/v1/users", token=token).status == 405
    text = urllib.request.Request(mesh.edge_url("/v1/auth/login"), data=b"user=admin", method="POST")
    text.add_header("Content-Type", "application/x-www-form-urlencoded")
    with pytest.raises(urllib.error.HTTPError) as refused:
        urllib.request.urlopen(text, timeout=10)
    assert refused.value.code == 415


def test_request_ids_are_echoed_or_made(mesh):
    mine = call(mesh, "GET", "/.well-known/jwks.json", headers={"X-Request-Id": "req-42"})
    assert mine.headers["X-Request-Id"] == "req-42"
    made = call(mesh, "GET", "/.well-known/jwks.json")
    assert len(made.headers["X-Request-Id"]) == 36


def test_trace_context_flows_from_the_caller_through_the_edge_to_the_service_and_back(mesh):
    import re

    shape = re.compile(r"^00-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})$")
    caller = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"
    answer = call(mesh, "GET", "/v1/segments/RETAIL", token=mesh.token(),
                  headers={"traceparent": caller, "X-Request-Id": "trace-1", "Cache-Control": "no-store"})
    assert answer.status == 200
    edge_hop = shape.match(answer.headers["traceparent"])
    assert edge_hop and edge_hop.group(1) == "4bf92f3577b34da6a3ce929d0e0e4736", "the caller's trace continues"
    assert edge_hop.group(2) != "00f067aa0ba902b7", "as a new hop"
    # The service saw the edge's hop and the request id, and said so.
    assert answer.headers["Grpc-Metadata-Traceparent"] == answer.headers["traceparent"]
    assert answer.headers["Grpc-Metadata-X-Request-Id"] == "trace-1"
    # No trace context, or a malformed one: a new trace.
    for headers in ({}, {"traceparent": "00-00000000000000000000000000000000-00f067aa0ba902b7-01"}):
        fresh = call(mesh, "GET", "/.well-known/jwks.json", headers=headers)
        made = shape.match(fresh.headers["traceparent"])
        assert made and made.group(1) != "0" * 32


def test_a_read_is_retried_on_another_endpoint_and_a_write_only_when_never_sent(mesh, tmp_path):
    """Two Customer endpoints; one dies between health checks. Every read
    still succeeds (retried once on the other endpoint, within the retry
    budget); so does every write, since one picked for the dead endpoint
    could not connect there and so was never sent (the live endpoint
    refuses the bad code: 400)."""
    import sqlite3

    gateway = mesh.data_dir / "gateway.sqlite"
    second_port = free_port()
    second = start_customer(mesh, second_port, tmp_path)
    tag = uuid.uuid4().hex[:8]
    first_id, second_id = f"retry1-{tag}", f"retry2-{tag}"
    try:
        with sqlite3.connect(gateway) as db:
            for route_id, url in ((first_id, f"http://{mesh.address('customer')}"),
                                  (second_id, f"http://127.0.0.1:{second_port}")):
                db.execute("INSERT INTO service_routes (id, service, upstream_url, weight, status) "
                           "VALUES (?, 'harsha.customer.v1.CustomerService', ?, 1, 'active')", (route_id, url))
        with edge_process(mesh, {"HARSHA__EDGE__HEALTH_CHECK_SECONDS": "3600",
                                 "HARSHA__EDGE__ROUTES_REFRESH_SECONDS": "1"}) as edge:
            # The mesh's endpoint knows RETAIL, the second (empty) one does not.
            seen = set()
            deadline = time.monotonic() + 30
            while seen != {200, 404}:
                assert time.monotonic() < deadline, seen
                seen.add(call(mesh, "GET", "/v1/segments/RETAIL", token=mesh.token(), edge=edge,
                              headers={"Cache-Control": "no-store"}).status)
                time.sleep(0.1)
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
            reads = [call(mesh, "GET", "/v1/segments/RETAIL", token=mesh.token(), edge=edge,
                          headers={"Cache-Control": "no-store"}).status for _ in range(4)]
            assert reads == [200] * 4, reads
            writes = [call(mesh, "POST", "/v1/segments", {"code": "", "segmentName": "x"}, token=mesh.token(),
                           edge=edge) for _ in range(4)]
            assert [w.status for w in writes] == [400] * 4, [(w.status, w.json) for w in writes]
    finally:
        if second.poll() is None:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        with sqlite3.connect(gateway) as db:
            db.execute("DELETE FROM service_routes WHERE id IN (?, ?)", (first_id, second_id))
        time.sleep(1.5)


def routes_in_contracts():
    for module in (auth_pb2, customer_pb2, inventory_pb2, pricing_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for method in service.methods:
                options = method.GetOptions()
                if not options.HasExtension(annotations_pb2.http):
                    continue
                rule = options.Extensions[annotations_pb2.http]
                kind = rule.WhichOneof("pattern")
                yield method.full_name, kind.upper(), getattr(rule, kind)


def test_every_annotated_rpc_is_reachable(mesh):
    import re

    # A session of its own: the probe logs out (and revokes) what it carries.
    token = call(mesh, "POST", "/v1/auth/login", {"username": "admin", "password": mesh.admin_password()}).json["accessToken"]
    mesh.secrets.add(token)
    seen = 0
    for name, verb, template in routes_in_contracts():
        path = re.sub(r"\{[^}]+\}", "x-probe", template)
        body = {} if verb in ("POST", "PUT", "PATCH") else None
        answer = call(mesh, verb, path, body, token=token)
        # Anything but the edge's own "no route" (the service may well say
        # the probe value is not found or not valid).
        assert not (answer.status == 404 and answer.json["message"].startswith("no route")), (name, verb, path)
        assert answer.status != 405, (name, verb, path)
        seen += 1
    assert seen >= 60


def test_a_server_stream_arrives_as_ndjson_or_server_sent_events(mesh):
    token = mesh.token()
    code = f"STREAM-{uuid.uuid4().hex[:6].upper()}"
    assert call(mesh, "POST", "/v1/segments", {"code": code, "segmentName": "Streamed sweets", "priority": 2},
                token=token).status == 200
    customers = ["CUST-0002", "CUST-0004", "CUST-0005"]
    for customer in customers:
        made = call(mesh, "POST", f"/v1/customers/{customer}/assignments",
                    {"segmentCode": code, "isPrimary": False}, token=token)
        assert made.status == 200, made.raw

    lines = call(mesh, "GET", f"/v1/segments/{code}/customers:stream", token=token)
    assert lines.status == 200 and lines.headers["Content-Type"] == "application/x-ndjson"
    rows = [json.loads(line) for line in lines.raw.decode().splitlines()]
    assert [row["assignment"]["customer"] for row in rows] == customers
    assert all(row["assignment"]["segmentCode"] == code for row in rows)

    events = call(mesh, "GET", f"/v1/segments/{code}/customers:stream", token=token,
                  headers={"Accept": "text/event-stream"})
    assert events.status == 200 and events.headers["Content-Type"] == "text/event-stream"
    frames = [frame for frame in events.raw.decode().split("\n\n") if frame]
    assert [json.loads(frame.removeprefix("data: "))["assignment"]["customer"] for frame in frames] == customers

    # Nothing holds it as primary; an unknown segment fails before the stream.
    assert call(mesh, "GET", f"/v1/segments/{code}/customers:stream?primaryOnly=true", token=token).raw == b""
    missing = call(mesh, "GET", "/v1/segments/NO-SUCH-SEGMENT/customers:stream", token=token)
    assert missing.status == 404 and missing.json["code"] == 5
    assert call(mesh, "GET", f"/v1/segments/{code}/customers:stream").status == 401


def test_a_plan_made_just_after_the_edge_read_the_plans_is_in_force_at_once(mesh):
    first = new_user_on_plan(mesh, per_minute=50)
    # This call makes the edge read the plans (the first plan is new to it).
    assert call(mesh, "GET", "/v1/segments/RETAIL", token=first).headers["RateLimit-Limit"] == "50"
    second = new_user_on_plan(mesh, per_minute=40)
    answer = call(mesh, "GET", "/v1/segments/RETAIL", token=second)
    assert answer.headers["RateLimit-Limit"] == "40", "not the fallback plan's limit"


def test_the_edge_counts_requests_refusals_and_cache_use_for_prometheus(mesh):
    token = mesh.token()
    session = new_user_on_plan(mesh, per_minute=1)
    if time.time() % 60 > 50:
        time.sleep(61 - time.time() % 60)
    assert call(mesh, "GET", "/v1/segments/RETAIL", token=session).status == 200
    assert call(mesh, "GET", "/v1/segments/RETAIL", token=session).status == 429
    for _ in range(2):
        call(mesh, "GET", "/v1/segments", token=token)
    answer = urllib.request.urlopen(mesh.edge_url("/metrics"), timeout=10)
    assert answer.headers["Content-Type"].startswith("text/plain")
    text = answer.read().decode()
    samples = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            samples[name] = float(value)

    def total(prefix, **labels):
        return sum(v for k, v in samples.items()
                   if k.startswith(prefix) and all(f'{key}="{val}"' in k for key, val in labels.items()))

    assert total("harsha_edge_requests_total", route="/v1/segments/{code}", status="200") >= 1
    assert total("harsha_edge_requests_total", route="/v1/segments/{code}", status="429") >= 1
    assert total("harsha_edge_rate_limited_total", window="minute") >= 1
    assert total("harsha_edge_cache_total", result="hit") >= 1
    assert total("harsha_edge_request_duration_seconds_bucket", route="/v1/segments", le="+Inf") >= 2


def test_harsha_serve_edge_runs_the_edge_alone(mesh):
    with edge_process(mesh) as edge:
        assert call(mesh, "GET", "/v1/segments/RETAIL", edge=edge).status == 401, "no credential, no call"
        answer = call(mesh, "GET", "/v1/segments/RETAIL", token=mesh.token(), edge=edge)
        assert answer.status == 200 and answer.json["segment"]["code"] == "RETAIL"


def new_user_on_plan(mesh, per_minute, per_hour=1000, per_day=10000):
    """A viewer on a fresh plan with these limits, logged in: its token."""
    token = mesh.token()
    plan = f"plan-{uuid.uuid4().hex[:6]}"
    assert call(mesh, "PUT", f"/v1/rate-limit-plans/{plan}",
                {"perMinute": per_minute, "perHour": per_hour, "perDay": per_day}, token=token).status == 200
    name = f"u{uuid.uuid4().hex[:8]}"
    made = call(mesh, "POST", "/v1/users", {"username": name, "email": f"{name}@harshadelights.in",
                                             "password": "kalakand all day", "roles": ["viewer"],
                                             "rateLimitPlan": plan}, token=token)
    assert made.status == 200, made.raw
    session = call(mesh, "POST", "/v1/auth/login", {"username": name, "password": "kalakand all day"}).json["accessToken"]
    mesh.secrets.add(session)
    return session


def test_two_edges_share_rate_limits_and_kept_answers_through_redis(mesh):
    """Two edge replicas with one Redis: a plan's minute limit is exact across
    both, and an answer one of them kept is served by the other."""
    prefix = f"harsha-e2e-{uuid.uuid4().hex}"
    shared = {"HARSHA__EDGE__REDIS_URL": "redis://127.0.0.1:6379/0", "HARSHA__EDGE__REDIS_PREFIX": prefix}
    session = new_user_on_plan(mesh, per_minute=6)
    token = mesh.token()
    code = f"SHARED-{uuid.uuid4().hex[:6].upper()}"
    assert call(mesh, "POST", "/v1/segments", {"code": code, "segmentName": "Shared sweets", "priority": 3},
                token=token).status == 200
    try:
        with edge_process(mesh, shared) as first, edge_process(mesh, shared) as second:
            if time.time() % 60 > 45:
                time.sleep(61 - time.time() % 60)
            statuses = [call(mesh, "GET", "/v1/segments/RETAIL", token=session,
                             edge=(first, second)[n % 2]).status for n in range(12)]
            assert statuses == [200] * 6 + [429] * 6, statuses

            kept = call(mesh, "GET", f"/v1/segments/{code}", token=token, edge=first)
            assert kept.status == 200 and kept.headers["X-Cache"] == "MISS"
            served = call(mesh, "GET", f"/v1/segments/{code}", token=token, edge=second)
            assert served.headers["X-Cache"] == "HIT" and served.json == kept.json
    finally:
        keys = subprocess.run(["redis-cli", "--scan", "--pattern", f"{prefix}:*"], capture_output=True,
                              text=True, check=True).stdout.split()
        if keys:
            subprocess.run(["redis-cli", "DEL", *keys], capture_output=True, check=True)


def test_plans_limit_each_principal_with_headers_and_usage_is_recorded(mesh):
    import sqlite3
    import time

    token = mesh.token()
    plan = f"tiny-{uuid.uuid4().hex[:6]}"
    assert call(mesh, "PUT", f"/v1/rate-limit-plans/{plan}", {"perMinute": 3, "perHour": 100, "perDay": 1000},
                token=token).status == 200
    name = f"tiny{uuid.uuid4().hex[:6]}"
    user = call(mesh, "POST", "/v1/users", {"username": name, "email": f"{name}@harshadelights.in",
                                             "password": "kalakand all day", "roles": ["viewer"],
                                             "rateLimitPlan": plan}, token=token).json["user"]
    # Stay inside one minute window.
    if time.time() % 60 > 45:
        time.sleep(61 - time.time() % 60)
    session = call(mesh, "POST", "/v1/auth/login", {"username": name, "password": "kalakand all day"}).json["accessToken"]
    mesh.secrets.add(session)
    remaining = []
    for _ in range(3):
        answer = call(mesh, "GET", "/v1/segments/RETAIL", token=session)
        assert answer.status == 200, answer.raw
        assert answer.headers["RateLimit-Limit"] == "3"
        remaining.append(answer.headers["RateLimit-Remaining"])
    assert remaining == ["2", "1", "0"]
    limited = call(mesh, "GET", "/v1/segments/RETAIL", token=session)
    assert limited.status == 429 and limited.json["code"] == 8 and "minute" in limited.json["message"]
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert limited.headers["RateLimit-Remaining"] == "0"
    # Others are not affected.
    assert call(mesh, "GET", "/v1/segments/RETAIL", token=token).status == 200

    principal = f"user:{user['userId']}"
    deadline = time.monotonic() + 15
    while True:
        with sqlite3.connect(mesh.data_dir / "gateway.sqlite") as db:
            row = db.execute(
                "SELECT SUM(request_count), SUM(rejected_count) FROM rate_limit_tracking "
                "WHERE principal = ? AND window_kind = 'minute'", (principal,)).fetchone()
        if row == (3, 1):
            break
        assert time.monotonic() < deadline, f"usage not recorded: {row}"
        time.sleep(0.3)


def test_the_openapi_document_describes_every_route(mesh):
    from openapi_spec_validator import validate

    document = call(mesh, "GET", "/openapi.json")
    assert document.status == 200
    spec = document.json
    validate(spec)
    operations = {(path, verb) for path, item in spec["paths"].items() for verb in item}
    import re

    for name, verb, template in routes_in_contracts():
        path = re.sub(r"\{([^}=]+)(=[^}]*)?\}", lambda m: "{" + m.group(1).replace(".", "_") + "}", template)
        assert (path, verb.lower()) in operations, (name, verb, path)
    login = spec["paths"]["/v1/auth/login"]["post"]
    assert login["security"] == [], "public RPCs need no credential"
    user = spec["components"]["schemas"]["harsha.auth.v1.User"]["properties"]
    assert user["createTime"] == {"type": "string", "format": "date-time"} and "userId" in user
    tokens = spec["components"]["schemas"]["harsha.auth.v1.LoginResponse"]["properties"]
    assert tokens["expiresIn"]["type"] == "string", "int64 travels as a string"
    users = spec["paths"]["/v1/users"]["get"]["parameters"]
    assert {p["name"] for p in users} == {"pageSize", "pageToken"}


def test_every_request_is_audited(mesh):
    import sqlite3
    import time

    token = mesh.token()
    tag = uuid.uuid4().hex[:8]
    call(mesh, "GET", "/v1/segments/RETAIL", token=token,
         headers={"X-Request-Id": f"audit-ok-{tag}", "Cache-Control": "no-store"})
    call(mesh, "GET", "/v1/segments/RETAIL", headers={"X-Request-Id": f"audit-401-{tag}"})
    call(mesh, "GET", "/v1/segments/NOPE-404", token=token, headers={"X-Request-Id": f"audit-404-{tag}"})
    call(mesh, "GET", "/v1/no-such-route", headers={"X-Request-Id": f"audit-none-{tag}"})
    deadline = time.monotonic() + 15
    while True:
        with sqlite3.connect(mesh.data_dir / "gateway.sqlite") as db:
            rows = {r[0]: r[1:] for r in db.execute(
                "SELECT request_id, principal, http_status, grpc_code, route, grpc_method, latency_us, client_ip "
                "FROM api_audit_logs WHERE request_id LIKE ?", (f"audit-%-{tag}",))}
        if len(rows) == 4:
            break
        assert time.monotonic() < deadline, f"audit rows missing: {rows}"
        time.sleep(0.3)
    ok = rows[f"audit-ok-{tag}"]
    assert ok[0].startswith("user:") and ok[1] == 200 and ok[2] == 0
    assert ok[3] == "/v1/segments/{code}" and ok[4] == "GetSegment" and ok[5] > 0 and ok[6] == "127.0.0.1"
    refused = rows[f"audit-401-{tag}"]
    assert refused[0] == "ip:127.0.0.1" and refused[1] == 401 and refused[2] is None
    missing = rows[f"audit-404-{tag}"]
    assert missing[1] == 404 and missing[2] == 5, "NOT_FOUND from the service"
    nowhere = rows[f"audit-none-{tag}"]
    assert nowhere[1] == 404 and nowhere[3] is None, "no route, still audited"


def test_an_upstream_that_keeps_failing_has_its_circuit_opened_then_closed(mesh, tmp_path):
    """Five failures in a row open the circuit; while open the edge answers
    503 at once with Retry-After; after the open period one trial call goes
    through, and its success closes the circuit."""
    from conftest import health_status

    customer_port = free_port()
    env = dict(os.environ, HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}",
               HARSHA__DATABASES__ERP=f"sqlite://{tmp_path}/erp.sqlite")
    customer = None
    with contextlib.ExitStack() as stack:
        edge = stack.enter_context(edge_process(mesh, {"HARSHA__EDGE__BREAKER_OPEN_SECONDS": "2"},
                                                upstreams={"customer": f"http://127.0.0.1:{customer_port}"}))
        stack.callback(lambda: customer is not None and (customer.send_signal(signal.SIGTERM), customer.wait(timeout=30)))

        def get():
            answer = call(mesh, "GET", "/v1/segments/RETAIL", token=mesh.token(), edge=edge)
            return answer.status, answer.json, answer.headers

        for _ in range(5):
            status, body, _ = get()
            assert status == 503 and "circuit" not in body["message"], body
        status, body, headers = get()
        assert status == 503 and "circuit is open" in body["message"]
        assert 1 <= int(headers["Retry-After"]) <= 2

        customer = subprocess.Popen([harsha_binary(), "serve", "customer", "--listen", f"127.0.0.1:{customer_port}"],
                                    env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        import grpc

        with grpc.insecure_channel(f"127.0.0.1:{customer_port}") as channel:
            deadline = time.monotonic() + 30
            while health_status(channel, "harsha.customer.v1.CustomerService") != 1:
                assert time.monotonic() < deadline, "the customer service never became ready"
                time.sleep(0.2)
        time.sleep(2.2)
        status, body, _ = get()
        assert status == 404, ("the trial reached the service (a fresh database has no RETAIL)", body)
        status, body, _ = get()
        assert status == 404, "closed again"


def test_service_routes_balance_by_weight_and_unhealthy_endpoints_leave_the_rotation(mesh, tmp_path):
    """Two endpoints of the Customer service in service_routes, weighted 3:1:
    calls split 3:1 (within one per cycle); a stopped endpoint leaves the
    rotation on its next health check and returns once it serves again."""
    import os
    import signal
    import sqlite3
    import subprocess
    import time

    from conftest import free_port, harsha_binary

    gateway = mesh.data_dir / "gateway.sqlite"
    second_port = free_port()
    # The second endpoint has a database of its own (an empty one: listing
    # segments answers 200 on both).
    env = dict(os.environ, HARSHA__AUTH__ENDPOINT=f"http://{mesh.address('auth')}",
               HARSHA__DATABASES__ERP=f"sqlite://{tmp_path}/erp.sqlite")

    def start_second():
        import grpc

        from conftest import health_status

        process = subprocess.Popen([harsha_binary(), "serve", "customer", "--listen", f"127.0.0.1:{second_port}"],
                                   env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with grpc.insecure_channel(f"127.0.0.1:{second_port}") as channel:
            deadline = time.monotonic() + 30
            while health_status(channel, "harsha.customer.v1.CustomerService") != 1:
                assert time.monotonic() < deadline, "the second endpoint never became ready"
                time.sleep(0.2)
        return process

    def served_by(tag, count):
        for n in range(count):
            answer = call(mesh, "GET", "/v1/segments?pageSize=1", token=mesh.token(),
                          headers={"X-Request-Id": f"{tag}-{n}", "X-Request-Timeout": "5",
                                   "Cache-Control": "no-store"})
            assert answer.status == 200, answer.raw
        deadline = time.monotonic() + 15
        while True:
            with sqlite3.connect(gateway) as db:
                rows = db.execute("SELECT route_id, COUNT(*) FROM api_audit_logs WHERE request_id LIKE ? GROUP BY route_id",
                                  (f"{tag}-%",)).fetchall()
            if sum(n for _, n in rows) == count:
                return dict(rows)
            assert time.monotonic() < deadline, rows
            time.sleep(0.2)

    second = start_second()
    tag = uuid.uuid4().hex[:6]
    first_id, second_id = f"r1-{tag}", f"r2-{tag}"
    try:
        with sqlite3.connect(gateway) as db:
            db.execute("INSERT INTO service_routes (id, service, upstream_url, weight, status) VALUES (?, ?, ?, 3, 'active')",
                       (first_id, "harsha.customer.v1.CustomerService", f"http://{mesh.address('customer')}"))
            db.execute("INSERT INTO service_routes (id, service, upstream_url, weight, status) VALUES (?, ?, ?, 1, 'active')",
                       (second_id, "harsha.customer.v1.CustomerService", f"http://127.0.0.1:{second_port}"))
        # Wait until the edge has read the routes and the second endpoint serves.
        deadline = time.monotonic() + 30
        while second_id not in served_by(f"warm-{tag}-{time.monotonic_ns()}", 4):
            assert time.monotonic() < deadline, "the new routes were never used"
            time.sleep(0.3)
        split = served_by(f"split-{tag}", 40)
        assert abs(split.get(first_id, 0) - 30) <= 1 and abs(split.get(second_id, 0) - 10) <= 1, split

        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        deadline = time.monotonic() + 15
        while True:
            with sqlite3.connect(gateway) as db:
                down = db.execute("SELECT COUNT(*) FROM service_health WHERE route_id = ? AND status <> 'serving'",
                                  (second_id,)).fetchone()[0]
            if down:
                break
            assert time.monotonic() < deadline, "the stopped endpoint was never found unhealthy"
            time.sleep(0.2)
        assert served_by(f"down-{tag}", 8) == {first_id: 8}, "only the healthy endpoint serves"

        second = start_second()
        deadline = time.monotonic() + 30
        while second_id not in served_by(f"back-{tag}-{time.monotonic_ns()}", 4):
            assert time.monotonic() < deadline, "the endpoint never returned to the rotation"
            time.sleep(0.3)
    finally:
        second.send_signal(signal.SIGTERM)
        second.wait(timeout=30)
        with sqlite3.connect(gateway) as db:
            db.execute("DELETE FROM service_routes WHERE id IN (?, ?)", (first_id, second_id))
        time.sleep(1.5)


def test_get_answers_are_cached_per_scope_set_and_no_cache_refreshes(mesh):
    token = mesh.token()
    code = f"CACHE-{uuid.uuid4().hex[:6].upper()}"
    made = call(mesh, "POST", "/v1/segments", {"code": code, "segmentName": "Cached sweets", "priority": 7}, token=token)
    assert made.status == 200, made.raw
    first = call(mesh, "GET", f"/v1/segments/{code}", token=token)
    assert first.status == 200 and first.headers["X-Cache"] == "MISS"
    again = call(mesh, "GET", f"/v1/segments/{code}", token=token)
    assert again.headers["X-Cache"] == "HIT" and again.json == first.json and "Age" in again.headers
    assert again.headers["RateLimit-Limit"], "a hit still counts against the plan"
    renamed = call(mesh, "PATCH", f"/v1/segments/{code}", {"segmentName": "Renamed sweets"}, token=token)
    assert renamed.status == 200, renamed.raw
    stale = call(mesh, "GET", f"/v1/segments/{code}", token=token)
    assert stale.headers["X-Cache"] == "HIT" and stale.json["segment"]["segmentName"] == "Cached sweets"
    fresh = call(mesh, "GET", f"/v1/segments/{code}", token=token, headers={"Cache-Control": "no-cache"})
    assert fresh.headers["X-Cache"] == "MISS" and fresh.json["segment"]["segmentName"] == "Renamed sweets"
    assert call(mesh, "GET", f"/v1/segments/{code}", token=token).json["segment"]["segmentName"] == "Renamed sweets"
    # A caller with other scopes never gets the admin's kept answer.
    viewer_name = f"cache{uuid.uuid4().hex[:6]}"
    call(mesh, "POST", "/v1/users", {"username": viewer_name, "email": f"{viewer_name}@harshadelights.in",
                                     "password": "kalakand all day", "roles": ["viewer"]}, token=token)
    viewer = call(mesh, "POST", "/v1/auth/login", {"username": viewer_name, "password": "kalakand all day"}).json["accessToken"]
    mesh.secrets.add(viewer)
    assert call(mesh, "GET", f"/v1/segments/{code}", token=viewer).headers["X-Cache"] == "MISS"
    # Without a credential: refused before the cache is looked at.
    assert call(mesh, "GET", f"/v1/segments/{code}").status == 401
