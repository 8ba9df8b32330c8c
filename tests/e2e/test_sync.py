"""The Sync service end to end: changes made through the Customer service
reach a webhook signed with HMAC-SHA256, events published by another system
are recorded once per key and never echoed back to it, failed deliveries are
dead-lettered and replayed through REST, and killing the whole mesh
mid-stream loses no event (the webhook deduplicates by event id, as the
contract asks of receivers)."""

import hashlib
import hmac
import http.server
import json
import threading
import time
import urllib.request
import uuid

import grpc
import pytest
from google.protobuf import struct_pb2

from conftest import start_mesh, stop_mesh
from harsha.customer.v1 import customer_pb2, customer_pb2_grpc
from harsha.sync.v1 import sync_pb2 as pb, sync_pb2_grpc
from test_access import user_with
from test_edge import call
from wire import violations

SECRET = "e2e-webhook-secret-0123456789"


class Webhook:
    """A local HTTP receiver: checks each request's signature, keeps it, and
    answers with the next scripted status (200 once the script is empty)."""

    def __init__(self):
        self.requests = []
        self.chunks = []
        self.script = []
        self.lock = threading.Lock()
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                signature = self.headers.get("Harsha-Signature", "")
                parts = dict(part.split("=", 1) for part in signature.split(",") if "=" in part)
                expected = hmac.new(SECRET.encode(), f"{parts.get('t', '')}.".encode() + body, hashlib.sha256).hexdigest()
                with hook.lock:
                    status = hook.script.pop(0) if hook.script else 200
                    if self.headers.get("Content-Type") == "application/x-ndjson":
                        hook.chunks.append({
                            "lines": [json.loads(line) for line in body.splitlines() if line],
                            "run": self.headers.get("Harsha-Batch-Run"),
                            "signed": hmac.compare_digest(expected, parts.get("v1", "")),
                        })
                        self.send_response(status)
                        self.send_header("Content-Length", "0")
                        self.end_headers()
                        return
                    hook.requests.append({
                        "body": json.loads(body),
                        "signed": hmac.compare_digest(expected, parts.get("v1", "")),
                        "event_id": self.headers.get("Harsha-Event-Id"),
                        "attempt": int(self.headers.get("Harsha-Delivery-Attempt", "0")),
                        "status": status,
                    })
                self.send_response(status)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def accepted(self, predicate=lambda body: True):
        with self.lock:
            return [r for r in self.requests if r["status"] == 200 and predicate(r["body"])]

    def wait(self, predicate, count=1, timeout=30.0):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = self.accepted(predicate)
            if len(found) >= count:
                return found
            time.sleep(0.1)
        raise AssertionError(f"the webhook did not accept {count} matching events: {self.requests}")

    def close(self):
        self.server.shutdown()


@pytest.fixture
def webhook():
    hook = Webhook()
    yield hook
    hook.close()


def target_name(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}"


def configure(mesh, webhook, entity_type, source="*", system="crm", max_attempts=5) -> str:
    name = target_name(system)
    created = call(mesh, "POST", "/v1/targets", {
        "name": name, "system": system, "kind": "TARGET_KIND_WEBHOOK", "url": webhook.url,
        "secret": SECRET, "timeoutMs": 2000, "maxAttempts": max_attempts,
    }, token=mesh.token())
    assert created.status == 200, created.json
    assert created.json["target"]["hasSecret"] is True and created.json["target"].get("secret", "") == "", "the secret is write-only"
    mesh.secrets.add(SECRET)
    route = call(mesh, "POST", "/v1/configurations", {
        "entityType": entity_type, "sourceSystem": source, "target": name,
    }, token=mesh.token())
    assert route.status == 200, route.json
    assert route.json["configuration"]["mode"] == "SYNC_MODE_REALTIME"
    assert route.json["configuration"]["conflictStrategy"] == "CONFLICT_STRATEGY_SOURCE_WINS"
    return name


def test_a_customer_change_reaches_a_signed_webhook(mesh, webhook):
    configure(mesh, webhook, "Segment", source="erpnext")
    code = f"SYNC-{uuid.uuid4().hex[:6]}".upper()
    made = call(mesh, "POST", "/v1/segments", {"code": code, "segmentName": "Sync e2e buyers", "priority": 5},
                token=mesh.token())
    assert made.status == 200, made.json
    delivered = webhook.wait(lambda body: body["entity_key"] == code)[0]
    assert delivered["signed"], "the signature is HMAC-SHA256 of '<t>.<body>' with the target's secret"
    body = delivered["body"]
    assert body["source_system"] == "erpnext" and body["entity_type"] == "Segment"
    assert body["operation"] == "create" and body["event_type"] == "customer.segment.created"
    assert body["payload"]["segment_name"] == "Sync e2e buyers"
    assert delivered["event_id"] == body["event_id"]
    event = call(mesh, "GET", f"/v1/events/{body['position']}", token=mesh.token())
    assert event.status == 200
    assert event.json["event"]["eventId"] == body["event_id"]
    assert event.json["event"]["idempotencyKey"].startswith("erp-outbox:")
    attempts = call(mesh, "GET", f"/v1/events/{body['position']}/attempts", token=mesh.token())
    deadline = time.monotonic() + 10
    while not attempts.json.get("attempts") and time.monotonic() < deadline:
        time.sleep(0.1)
        attempts = call(mesh, "GET", f"/v1/events/{body['position']}/attempts", token=mesh.token())
    assert [a["outcome"] for a in attempts.json["attempts"]] == ["ATTEMPT_OUTCOME_DELIVERED"]
    assert attempts.json["attempts"][0]["httpStatus"] == 200


def test_published_events_are_recorded_once_and_not_echoed(mesh, webhook):
    configure(mesh, webhook, "StockLevel", system="warehouse")
    key = f"crm-{uuid.uuid4()}"
    payload = struct_pb2.Struct()
    payload.update({"item_code": "KAJU-KATLI-500G", "qty": 42})
    request = pb.PublishEventRequest(
        idempotency_key=key, source_system="crm", entity_type="StockLevel", entity_key="KAJU-KATLI-500G",
        operation=pb.OPERATION_UPDATE, payload=payload, entity_version=7, base_version=6)
    with mesh.channel("sync") as channel:
        sync = sync_pb2_grpc.SyncServiceStub(channel)
        first = sync.PublishEvent(request)
        again = sync.PublishEvent(request)
        assert not first.duplicate and first.routed_to == 1
        assert again.duplicate and again.routed_to == 0
        assert again.event.position == first.event.position
        assert first.event.event_type == "crm.stocklevel.update"
        # From the warehouse itself: routed nowhere (no echo).
        echo = sync.PublishEvent(pb.PublishEventRequest(
            idempotency_key=f"wh-{uuid.uuid4()}", source_system="warehouse", entity_type="StockLevel",
            entity_key="KAJU-KATLI-500G", operation=pb.OPERATION_UPDATE, payload=payload))
        assert echo.routed_to == 0
        for bad, field in [
            (pb.PublishEventRequest(idempotency_key="x", source_system="crm", entity_type="Spaceship",
                                    entity_key="k", operation=pb.OPERATION_CREATE, payload=payload), "entity_type"),
            (pb.PublishEventRequest(source_system="crm", entity_type="Item", entity_key="k",
                                    operation=pb.OPERATION_CREATE, payload=payload), "idempotency_key"),
            (pb.PublishEventRequest(idempotency_key="x", source_system="sap", entity_type="Item",
                                    entity_key="k", operation=pb.OPERATION_CREATE, payload=payload), "source_system"),
            (pb.PublishEventRequest(idempotency_key="x", source_system="crm", entity_type="Item",
                                    entity_key="k", payload=payload), "operation"),
        ]:
            with pytest.raises(grpc.RpcError) as refused:
                sync.PublishEvent(bad)
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert field in violations(refused.value), refused.value.details()
    delivered = webhook.wait(lambda body: body["idempotency_key"] == key)
    assert len(delivered) == 1 and delivered[0]["signed"]
    assert delivered[0]["body"]["payload"] == {"item_code": "KAJU-KATLI-500G", "qty": 42}
    assert delivered[0]["body"]["entity_version"] == 7
    # Over REST, an unknown field is refused before anything is written.
    bad = call(mesh, "POST", "/v1/events", {"idempotencyKey": "y", "sourceSystem": "crm", "entityType": "Item",
                                            "entityKey": "k", "operation": "OPERATION_CREATE", "payload": {},
                                            "colour": "red"}, token=mesh.token())
    assert bad.status == 400
    listed = call(mesh, "GET", "/v1/events?entityType=StockLevel&entityKey=KAJU-KATLI-500G", token=mesh.token())
    assert listed.status == 200
    assert sum(1 for e in listed.json["events"] if e["idempotencyKey"] == key) == 1


def test_failed_deliveries_dead_letter_and_replay_through_rest(mesh, webhook):
    name = configure(mesh, webhook, "Item", system="ecommerce", max_attempts=2)
    webhook.script.extend([500, 503])
    key = f"crm-{uuid.uuid4()}"
    published = call(mesh, "POST", "/v1/events", {
        "idempotencyKey": key, "sourceSystem": "crm", "entityType": "Item", "entityKey": "LADDU-1KG",
        "operation": "OPERATION_UPDATE", "payload": {"item_name": "Motichoor Laddu 1 kg"},
    }, token=mesh.token())
    assert published.status == 200, published.json
    position = published.json["event"]["position"]
    deadline = time.monotonic() + 20
    dead = []
    while time.monotonic() < deadline:
        dead = call(mesh, "GET", f"/v1/deliveries?target={name}&state=DELIVERY_STATE_DEAD_LETTERED",
                    token=mesh.token()).json.get("deliveries", [])
        if dead:
            break
        time.sleep(0.2)
    assert [d["position"] for d in dead] == [position]
    assert dead[0]["attempts"] == 2 and "HTTP 503" in dead[0]["lastError"]
    attempts = call(mesh, "GET", f"/v1/events/{position}/attempts?target={name}", token=mesh.token()).json["attempts"]
    assert [(a["attempt"], a["httpStatus"], a["outcome"]) for a in attempts] == [
        (1, 500, "ATTEMPT_OUTCOME_RETRYING"), (2, 503, "ATTEMPT_OUTCOME_DEAD_LETTERED")]
    # A target with undelivered events cannot be deleted.
    refused = call(mesh, "DELETE", f"/v1/targets/{name}", token=mesh.token())
    assert refused.status == 400 and "configuration" in refused.json["message"], refused.json
    routes = call(mesh, "GET", f"/v1/configurations?target={name}", token=mesh.token()).json["configurations"]
    assert call(mesh, "DELETE", f"/v1/configurations/{routes[0]['id']}", token=mesh.token()).status == 200
    refused = call(mesh, "DELETE", f"/v1/targets/{name}", token=mesh.token())
    assert refused.status == 400 and "1 undelivered" in refused.json["message"], refused.json
    metrics = call(mesh, "GET", "/v1/sync-metrics", token=mesh.token())
    assert metrics.status == 200, metrics.json
    assert int(metrics.json["backlog"]["deadLettered"]) >= 1
    assert "autoResolvedShare" in metrics.json["totals"]
    assert call(mesh, "GET", "/v1/sync-metrics?since=2026-12-01T00:00:00Z&until=2026-11-01T00:00:00Z",
                token=mesh.token()).status == 400
    replay = call(mesh, "POST", f"/v1/targets/{name}/dead-letters:replay", {}, token=mesh.token())
    assert replay.status == 200 and replay.json["replayed"] == 1
    delivered = webhook.wait(lambda body: body["idempotency_key"] == key)
    assert delivered[0]["attempt"] == 1, "a replay starts a fresh attempt count"


def test_killing_the_mesh_mid_stream_loses_no_event(tmp_path, webhook):
    first = start_mesh(tmp_path / "data")
    password = first.admin_password()
    configure(first, webhook, "Segment", source="erpnext")
    codes = [f"KILL-{i:02d}-{uuid.uuid4().hex[:4]}".upper() for i in range(30)]
    # Some first attempts fail, so deliveries are backing off when it dies.
    webhook.script.extend([503] * 5)
    with first.channel("customer") as channel:
        stub = customer_pb2_grpc.CustomerServiceStub(channel)
        for code in codes[:20]:
            stub.CreateSegment(customer_pb2.CreateSegmentRequest(segment=customer_pb2.Segment(
                code=code, segment_name="Crash test buyers", priority=1)))
    # No grace: the relay and the dispatcher die wherever they are.
    first.process.kill()
    first.process.wait(timeout=10)
    second = start_mesh(tmp_path / "data")
    second.known_admin_password = password
    try:
        with second.channel("customer") as channel:
            stub = customer_pb2_grpc.CustomerServiceStub(channel)
            for code in codes[20:]:
                stub.CreateSegment(customer_pb2.CreateSegmentRequest(segment=customer_pb2.Segment(
                    code=code, segment_name="Crash test buyers", priority=1)))
        wanted = set(codes)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            seen = {r["body"]["entity_key"] for r in webhook.accepted()} & wanted
            if seen == wanted:
                break
            time.sleep(0.2)
        accepted = [r for r in webhook.accepted() if r["body"]["entity_key"] in wanted]
        assert {r["body"]["entity_key"] for r in accepted} == wanted, "no event is lost"
        effects = {r["event_id"] for r in accepted}
        assert len(effects) == len(codes), "one event per change: deduplicated by event id, nothing twice"
        assert all(r["signed"] for r in accepted)
    finally:
        assert stop_mesh(second) == 0


def admin_user(mesh) -> tuple:
    """A second operator (role admin): their login name and access token."""
    from harsha.auth.v1 import auth_pb2_grpc

    with mesh.channel("auth") as channel:
        user, metadata = user_with(mesh, {"auth": auth_pb2_grpc.AuthServiceStub(channel)}, "admin")
    return user.username, dict(metadata)["authorization"].removeprefix("Bearer ")


def test_a_conflict_goes_through_the_manual_workflow_over_rest(mesh, webhook):
    name = configure(mesh, webhook, "Customer", system="warehouse")
    routes = call(mesh, "GET", f"/v1/configurations?target={name}", token=mesh.token()).json["configurations"]
    updated = call(mesh, "PATCH", f"/v1/configurations/{routes[0]['id']}",
                   {"conflictStrategy": "CONFLICT_STRATEGY_MANUAL"}, token=mesh.token())
    assert updated.status == 200 and updated.json["configuration"]["conflictStrategy"] == "CONFLICT_STRATEGY_MANUAL"
    key = f"CUST-{uuid.uuid4().hex[:6]}"

    def publish(source, version, base, payload):
        answer = call(mesh, "POST", "/v1/events", {
            "idempotencyKey": f"{source}-{key}-{version}", "sourceSystem": source, "entityType": "Customer",
            "entityKey": key, "operation": "OPERATION_UPDATE", "payload": payload,
            "entityVersion": str(version), "baseVersion": str(base)}, token=mesh.token())
        assert answer.status == 200, answer.json
        return answer.json

    publish("erpnext", 5, 0, {"name": "Ravi Sweets", "phone": "100"})
    publish("ecommerce", 6, 5, {"name": "Ravi Sweets", "phone": "300"})
    clash = publish("crm", 6, 5, {"name": "Ravi Sweets Pvt", "phone": "200"})
    assert clash["conflicts"] == 1
    position = int(clash["event"]["position"])
    listed = call(mesh, "GET", f"/v1/conflicts?entityType=Customer&entityKey={key}", token=mesh.token()).json
    assert [c["status"] for c in listed["conflicts"]] == ["CONFLICT_STATUS_DETECTED"]
    conflict_id = listed["conflicts"][0]["id"]
    view = call(mesh, "GET", f"/v1/conflicts/{conflict_id}", token=mesh.token()).json["conflict"]
    fields = {f["field"]: f for f in view["fields"]}
    assert fields["phone"]["change"] == "FIELD_CHANGE_CONFLICTING"
    assert (fields["phone"]["base"], fields["phone"]["source"], fields["phone"]["competing"]) == ("100", "200", "300")
    assert fields["name"]["change"] == "FIELD_CHANGE_SOURCE"
    assert view["conflictingFields"] == ["phone"]

    # Closing an unreviewed conflict is refused and changes nothing.
    early = call(mesh, "POST", f"/v1/conflicts/{conflict_id}:close", {}, token=mesh.token())
    assert early.status == 400 and "cannot close" in early.json["message"], early.json
    reviewer, reviewer_token = admin_user(mesh)
    step = lambda action, body, token: call(mesh, "POST", f"/v1/conflicts/{conflict_id}:{action}", body, token=token)
    assert step("assign", {"assignee": reviewer, "note": "phones differ"}, mesh.token()).status == 200
    assert step("review", {}, mesh.token()).status == 400, "only the assignee reviews"
    assert step("review", {}, reviewer_token).status == 200
    missing = step("resolve", {"choices": []}, reviewer_token)
    assert missing.status == 400 and "phone" in missing.json["message"]
    resolved = step("resolve", {"choices": [{"field": "phone", "pick": "FIELD_PICK_VALUE", "value": "+91 98450 00000"}]},
                    reviewer_token)
    assert resolved.status == 200, resolved.json
    assert resolved.json["conflict"]["resolvedPayload"] == {"name": "Ravi Sweets Pvt", "phone": "+91 98450 00000"}
    assert step("validate", {"approve": True}, reviewer_token).status == 400, "four eyes"
    assert step("validate", {"approve": True}, mesh.token()).status == 200
    assert webhook.accepted(lambda body: body["position"] == position) == [], "held until closed"
    closed = step("close", {}, mesh.token())
    assert closed.status == 200 and closed.json["conflict"]["status"] == "CONFLICT_STATUS_CLOSED"
    delivered = webhook.wait(lambda body: body["position"] == position)
    assert delivered[0]["body"]["payload"] == {"name": "Ravi Sweets Pvt", "phone": "+91 98450 00000"}
    history = call(mesh, "GET", f"/v1/conflicts/{conflict_id}", token=mesh.token()).json["conflict"]["history"]
    assert [(h["step"], h["actor"]) for h in history] == [
        ("detect", "sync"), ("assign", "admin"), ("review", reviewer), ("resolve", reviewer),
        ("approve", "admin"), ("close", "admin")]


def test_a_subscription_follows_the_stream_live_and_resumes_without_gaps(mesh):
    key = f"DIWALI-{uuid.uuid4().hex[:6]}"

    def publish(sync, n):
        payload = struct_pb2.Struct()
        payload.update({"window": n})
        return sync.PublishEvent(pb.PublishEventRequest(
            idempotency_key=f"{key}-{n}", source_system="crm", entity_type="FestivalWindow", entity_key=key,
            operation=pb.OPERATION_UPDATE, payload=payload)).event.position

    def mine(stream, count):
        found = []
        for reply in stream:
            if reply.event.entity_key == key:
                found.append(int(reply.event.payload["window"]))
                if len(found) == count:
                    return found
        return found

    with mesh.channel("sync") as channel:
        sync = sync_pb2_grpc.SyncServiceStub(channel)
        first = publish(sync, 1)
        publish(sync, 2)
        stream = sync.SubscribeEvents(pb.SubscribeEventsRequest(entity_types=["FestivalWindow"],
                                                                after_position=first), timeout=30)
        assert mine(stream, 1) == [2], "history after the resume point"
        third = publish(sync, 3)
        assert mine(stream, 1) == [3], "then live"
        stream.cancel()
        # Reconnecting with the last position received loses nothing.
        publish(sync, 4)
        resumed = sync.SubscribeEvents(pb.SubscribeEventsRequest(entity_types=["FestivalWindow"],
                                                                 after_position=third), timeout=30)
        assert mine(resumed, 1) == [4]
        resumed.cancel()
        with pytest.raises(grpc.RpcError) as refused:
            next(iter(sync.SubscribeEvents(pb.SubscribeEventsRequest(entity_types=["Spaceship"]), timeout=10)))
        assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Through the edge, as newline-delimited JSON that keeps coming.
    request = urllib.request.Request(
        mesh.edge_url(f"/v1/events:subscribe?entityTypes=FestivalWindow&afterPosition={first}"),
        headers={"Authorization": f"Bearer {mesh.token()}"})
    with urllib.request.urlopen(request, timeout=30) as reply:
        assert reply.headers["Content-Type"] == "application/x-ndjson"
        windows = []
        while len(windows) < 3:
            event = json.loads(reply.readline())["event"]
            if event.get("entityKey") == key:
                windows.append(event["payload"]["window"])
    assert windows == [2, 3, 4]


def test_a_batch_route_loads_on_demand_in_signed_ndjson_chunks(mesh, webhook):
    name = configure(mesh, webhook, "PricingRule", system="analytics")
    routes = call(mesh, "GET", f"/v1/configurations?target={name}", token=mesh.token()).json["configurations"]
    route = routes[0]["id"]
    patched = call(mesh, "PATCH", f"/v1/configurations/{route}",
                   {"mode": "SYNC_MODE_BATCH", "fieldMapping": {"internal": ""}}, token=mesh.token())
    assert patched.status == 200 and patched.json["configuration"]["mode"] == "SYNC_MODE_BATCH"
    key = f"RULE-{uuid.uuid4().hex[:6]}"
    for n in range(25):
        published = call(mesh, "POST", "/v1/events", {
            "idempotencyKey": f"{key}-{n}", "sourceSystem": "erpnext", "entityType": "PricingRule",
            "entityKey": key, "operation": "OPERATION_UPDATE", "payload": {"discount": n, "internal": "x"}},
            token=mesh.token())
        assert published.status == 200 and published.json["routedTo"] == 0, "batch routes wait for runs"
    started = call(mesh, "POST", f"/v1/configurations/{route}/batch-runs", {}, token=mesh.token())
    assert started.status == 200, started.json
    run_id = started.json["run"]["id"]
    deadline = time.monotonic() + 30
    run = started.json["run"]
    while run["status"] == "BATCH_RUN_STATUS_RUNNING" and time.monotonic() < deadline:
        time.sleep(0.2)
        run = call(mesh, "GET", f"/v1/batch-runs/{run_id}", token=mesh.token()).json["run"]
    assert run["status"] == "BATCH_RUN_STATUS_SUCCEEDED", run
    assert run["triggeredBy"] == "admin"
    ours = [line for chunk in webhook.chunks if chunk["run"] == run_id for line in chunk["lines"]
            if line["entity_key"] == key]
    assert [line["payload"] for line in ours] == [{"discount": n} for n in range(25)]
    assert all(chunk["signed"] for chunk in webhook.chunks)
    assert int(run["rowsLoaded"]) >= 25
    listed = call(mesh, "GET", f"/v1/batch-runs?configurationId={route}", token=mesh.token()).json["runs"]
    assert [r["id"] for r in listed] == [run_id]
    # A real-time route has no batch runs; an unknown route is not found.
    live = configure(mesh, webhook, "Item", system="mobile")
    realtime = call(mesh, "GET", f"/v1/configurations?target={live}", token=mesh.token()).json["configurations"][0]["id"]
    assert call(mesh, "POST", f"/v1/configurations/{realtime}/batch-runs", {}, token=mesh.token()).status == 400
    assert call(mesh, "POST", "/v1/configurations/nope/batch-runs", {}, token=mesh.token()).status == 404
