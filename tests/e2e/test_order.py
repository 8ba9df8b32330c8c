"""The Order service end to end, against `harsha up --demo`: an order placed
through the edge (REST) and through Python's grpcio reserves the
earliest-expiring eligible batches, carries the price the Pricing service
quotes with its explanation, and its event reaches a signed webhook; every
failure leaves stock as it was and records no event; the same idempotency
key under concurrent retries places one order; concurrent orders for the
last units never oversell; an Order service that dies between reserving
and confirming is finished by the next one to start (or another replica),
with stock consistent; cancel gives stock back and fulfil issues it.

Each test takes its stock from its own item and warehouse pairing (demo
batches live elsewhere), so tests do not see each other's stock."""

import concurrent.futures
import contextlib
import os
import subprocess
import time
import uuid

import grpc
import pytest

from conftest import free_port, harsha_binary, wait_until_serving
from harsha.auth.v1 import auth_pb2, auth_pb2_grpc
from harsha.inventory.v1 import inventory_pb2 as inv
from harsha.order.v1 import order_pb2 as pb, order_pb2_grpc
from harsha.pricing.v1 import pricing_pb2
from test_access import user_with
from test_edge import call
from test_inventory import receive
from test_sync import configure, webhook  # noqa: F401 (the fixture)
from wire import dec, violations

ITEM = "DARK-CHOC-70"


def key(prefix="order") -> str:
    return f"{prefix}-{uuid.uuid4().hex}"


@pytest.fixture(scope="module")
def order_stub(mesh):
    channel = mesh.channel("order")
    yield order_pb2_grpc.OrderServiceStub(channel)
    channel.close()


def line(item: str, qty: str) -> pb.OrderLineRequest:
    return pb.OrderLineRequest(item_code=item, qty=dec(qty))


def batch(inventory_stub, batch_id: str) -> inv.Batch:
    return inventory_stub.GetBatch(inv.GetBatchRequest(batch_id=batch_id)).batch


def free(inventory_stub, batch_id: str) -> tuple:
    b = batch(inventory_stub, batch_id)
    return b.available_qty.value, b.reserved_qty.value


def events_for(mesh, order_id: str) -> list:
    answer = call(mesh, "GET", "/v1/events?entityType=Order&pageSize=500", token=mesh.token())
    assert answer.status == 200, answer.json
    return [e["eventType"] for e in answer.json.get("events", []) if e.get("entityKey") == order_id]


def test_an_order_through_the_edge_reserves_fefo_prices_and_reaches_the_webhook(
        mesh, inventory_stub, pricing_stub, webhook):  # noqa: F811
    warehouse = "Hyderabad DC - HD"
    too_close = receive(inventory_stub, ITEM, warehouse, 3, "50")  # below e-commerce's 5 days
    soonest = receive(inventory_stub, ITEM, warehouse, 9, "4")
    later = receive(inventory_stub, ITEM, warehouse, 40, "100")
    configure(mesh, webhook, "Order", source="erpnext", system="warehouse")

    placed = call(mesh, "POST", "/v1/orders", {
        "customer": "CUST-0001", "channel": "ECOMMERCE", "warehouse": warehouse,
        "idempotencyKey": key(), "lines": [{"itemCode": ITEM, "qty": {"value": "6"}}],
    }, token=mesh.token())
    assert placed.status == 200, placed.json
    order = placed.json["order"]
    assert order["status"] == "ORDER_STATUS_PLACED" and placed.json["replayed"] is False
    taken = [(b["batchId"], b["qty"]["value"]) for b in order["lines"][0]["batches"]]
    assert taken == [(soonest.batch_id, "4"), (later.batch_id, "2")], \
        "earliest expiry first, skipping the batch too close to expiry for the channel"
    assert free(inventory_stub, too_close.batch_id) == ("50", "0")
    assert free(inventory_stub, soonest.batch_id) == ("0", "4")

    # The price is what the Pricing service quotes for the same cart, with
    # its explanation.
    quote = pricing_stub.QuotePrice(pricing_pb2.QuotePriceRequest(
        customer="CUST-0001", channel="ECOMMERCE",
        lines=[pricing_pb2.QuoteLineRequest(item_code=ITEM, qty=dec("6"))])).quote
    priced = order["lines"][0]
    assert priced["netAmount"]["value"] == quote.lines[0].net_amount.value
    assert priced["unitPrice"]["value"] == quote.lines[0].unit_price.value
    assert [r["ruleCode"] for r in priced.get("appliedRules", [])] == [r.rule_code for r in quote.lines[0].applied_rules]
    assert order["total"]["value"] == quote.total.value
    applied = pricing_stub.GetQuote(pricing_pb2.GetQuoteRequest(quote_id=order["quoteId"])).quote
    assert applied.status == pricing_pb2.QUOTE_STATUS_APPLIED and applied.order_reference == order["orderId"]

    delivered = webhook.wait(lambda body: body["entity_key"] == order["orderId"])[0]
    assert delivered["signed"]
    body = delivered["body"]
    assert body["event_type"] == "order.placed" and body["entity_type"] == "Order"
    assert body["payload"]["total"] == order["total"]["value"]
    assert body["payload"]["lines"][0]["batches"][0]["batch_id"] == soonest.batch_id

    got = call(mesh, "GET", f"/v1/orders/{order['orderId']}", token=mesh.token())
    assert got.status == 200 and got.json["order"] == order
    listed = call(mesh, "GET", "/v1/orders?customer=CUST-0001&status=ORDER_STATUS_PLACED", token=mesh.token())
    assert order["orderId"] in [o["orderId"] for o in listed.json["orders"]]


def test_bad_orders_are_refused_naming_the_cause_and_change_nothing(mesh, inventory_stub):
    warehouse = "Mumbai DC - HD"
    only = receive(inventory_stub, "MOTICHOOR-LADDU", warehouse, 30, "5")

    def place(body):
        return call(mesh, "POST", "/v1/orders", dict({
            "customer": "CUST-0001", "channel": "CRM", "warehouse": warehouse, "idempotencyKey": key(),
        }, **body), token=mesh.token())

    cases = [
        ({"lines": []}, 400, "lines"),
        ({"lines": [{"itemCode": "MOTICHOOR-LADDU", "qty": {"value": "0"}}]}, 400, "lines[0].qty"),
        ({"lines": [{"itemCode": "MOTICHOOR-LADDU", "qty": {"value": "-2"}}]}, 400, "lines[0].qty"),
        ({"lines": [{"itemCode": "NO-SUCH-SWEET", "qty": {"value": "1"}}]}, 400, "lines[0].item_code"),
        ({"customer": "CUST-NOBODY", "lines": [{"itemCode": "MOTICHOOR-LADDU", "qty": {"value": "1"}}]}, 400, "customer"),
        ({"idempotencyKey": "", "lines": [{"itemCode": "MOTICHOOR-LADDU", "qty": {"value": "1"}}]}, 400, "idempotency_key"),
    ]
    for body, status, field in cases:
        answer = place(body)
        assert answer.status == status, (body, answer.json)
        fields = [v["field"] for d in answer.json["details"] for v in d.get("fieldViolations", [])]
        assert fields == [field], (body, answer.json)

    short = place({"lines": [
        {"itemCode": "MOTICHOOR-LADDU", "qty": {"value": "2"}},
        {"itemCode": ITEM, "qty": {"value": "100000"}},
    ]})
    assert short.status == 400 and short.json["code"] == 9, short.json
    assert short.json["message"].startswith(f"lines[1] ({ITEM}): not enough stock"), short.json
    assert free(inventory_stub, only.batch_id) == ("5", "0"), "the first line's reservation was released"
    failed = call(mesh, "GET", "/v1/orders?customer=CUST-0001&status=ORDER_STATUS_FAILED&pageSize=50",
                  token=mesh.token()).json["orders"]
    mine = [o for o in failed if o.get("failure", {}).get("message") == short.json["message"]]
    assert len(mine) == 1 and mine[0]["failure"]["step"] == "inventory"
    assert events_for(mesh, mine[0]["orderId"]) == [], "no event for a failed order"


def test_the_same_key_from_concurrent_retries_places_one_order(mesh, inventory_stub, order_stub):
    warehouse = "Bengaluru DC - HD"
    stock = receive(inventory_stub, "SOAN-PAPDI", warehouse, 60, "10")
    request = pb.PlaceOrderRequest(customer="CUST-0002", channel="MOBILE-APP", warehouse=warehouse,
                                   idempotency_key=key("retry"), lines=[line("SOAN-PAPDI", "3")])

    def attempt(_):
        for _ in range(20):
            try:
                return order_stub.PlaceOrder(request, timeout=30)
            except grpc.RpcError as error:
                # Losing the race to record the key: told to try again.
                assert error.code() == grpc.StatusCode.ABORTED, error
                time.sleep(0.05)
        raise AssertionError("never answered")

    with concurrent.futures.ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(attempt, range(8)))
    assert len({a.order.order_id for a in answers}) == 1
    assert sum(not a.replayed for a in answers) == 1
    assert free(inventory_stub, stock.batch_id) == ("7", "3"), "stock reserved once"
    changed = pb.PlaceOrderRequest()
    changed.CopyFrom(request)
    changed.lines[0].qty.value = "4"
    with pytest.raises(grpc.RpcError) as reused:
        order_stub.PlaceOrder(changed)
    assert reused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "idempotency_key" in violations(reused.value)


def test_concurrent_orders_for_the_last_units_never_oversell(mesh, inventory_stub, order_stub):
    warehouse = "Bengaluru DC - HD"
    item = "MOTICHOOR-LADDU"
    last = receive(inventory_stub, item, warehouse, 30, "7")

    def attempt(i):
        try:
            return order_stub.PlaceOrder(pb.PlaceOrderRequest(
                customer="CUST-0003", channel="CRM", warehouse=warehouse,
                idempotency_key=key(f"last-{i}"), lines=[line(item, "1")]), timeout=30).order
        except grpc.RpcError as error:
            assert error.code() == grpc.StatusCode.FAILED_PRECONDITION, error
            assert "not enough stock" in error.details()
            return None

    with concurrent.futures.ThreadPoolExecutor(12) as pool:
        orders = [o for o in pool.map(attempt, range(12)) if o is not None]
    assert len(orders) == 7, "exactly the units there were"
    assert free(inventory_stub, last.batch_id) == ("0", "7")


def test_cancel_gives_stock_back_and_fulfil_issues_it(mesh, inventory_stub, order_stub):
    warehouse = "Stores - HD"
    stock = receive(inventory_stub, ITEM, warehouse, 45, "20")
    first = order_stub.PlaceOrder(pb.PlaceOrderRequest(
        customer="CUST-0001", channel="CRM", warehouse=warehouse, idempotency_key=key(),
        lines=[line(ITEM, "5")])).order
    second = order_stub.PlaceOrder(pb.PlaceOrderRequest(
        customer="CUST-0001", channel="CRM", warehouse=warehouse, idempotency_key=key(),
        lines=[line(ITEM, "4")])).order
    assert free(inventory_stub, stock.batch_id) == ("11", "9")

    cancelled = call(mesh, "POST", f"/v1/orders/{first.order_id}:cancel", {"reason": "customer called"},
                     token=mesh.token())
    assert cancelled.status == 200, cancelled.json
    assert cancelled.json["order"]["status"] == "ORDER_STATUS_CANCELLED"
    assert cancelled.json["order"]["cancelReason"] == "customer called"
    assert free(inventory_stub, stock.batch_id) == ("16", "4")

    fulfilled = call(mesh, "POST", f"/v1/orders/{second.order_id}:fulfil", {}, token=mesh.token())
    assert fulfilled.status == 200, fulfilled.json
    assert fulfilled.json["order"]["status"] == "ORDER_STATUS_FULFILLED"
    after = batch(inventory_stub, stock.batch_id)
    assert (after.available_qty.value, after.reserved_qty.value) == ("16", "0")
    movements = inventory_stub.ListBatchMovements(inv.ListBatchMovementsRequest(batch_id=stock.batch_id)).movements
    issues = [m for m in movements if m.movement_type == inv.MOVEMENT_TYPE_ISSUE]
    assert [(m.reserved_change.value, m.reference.name) for m in issues] == [("-4", second.order_id)]

    again = call(mesh, "POST", f"/v1/orders/{first.order_id}:fulfil", {}, token=mesh.token())
    assert again.status == 400 and again.json["code"] == 9, "a cancelled order is not fulfilled"
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline and len(events_for(mesh, first.order_id)) < 2:
        time.sleep(0.2)
    assert events_for(mesh, first.order_id) == ["order.placed", "order.cancelled"]


def test_a_warehouse_user_fulfils_but_cannot_place_or_cancel(mesh, order_stub, inventory_stub):
    warehouse = "Stores - HD"
    receive(inventory_stub, ITEM, warehouse, 45, "3")
    order = order_stub.PlaceOrder(pb.PlaceOrderRequest(
        customer="CUST-0001", channel="CRM", warehouse=warehouse, idempotency_key=key(),
        lines=[line(ITEM, "1")])).order
    with mesh.channel("auth") as channel:
        _, warehouse_md = user_with(mesh, {"auth": auth_pb2_grpc.AuthServiceStub(channel)}, "warehouse")
    with pytest.raises(grpc.RpcError) as denied:
        order_stub.CancelOrder(pb.CancelOrderRequest(order_id=order.order_id), metadata=warehouse_md)
    assert denied.value.code() == grpc.StatusCode.PERMISSION_DENIED
    done = order_stub.FulfilOrder(pb.FulfilOrderRequest(order_id=order.order_id), metadata=warehouse_md).order
    assert done.status == pb.ORDER_STATUS_FULFILLED


@contextlib.contextmanager
def order_process(mesh, extra_env=None):
    """`harsha serve order` alone, on the mesh's erp database, calling the
    mesh's services with an API key of its own; yields (process, address)."""
    with mesh.channel("auth") as channel:
        auth = auth_pb2_grpc.AuthServiceStub(channel)
        user, _ = user_with(mesh, {"auth": auth}, "admin")
        api_key = auth.CreateApiKey(auth_pb2.CreateApiKeyRequest(
            user_id=user.user_id, name="order replica",
            scopes=["customer:read", "inventory:read", "inventory:write", "pricing:quote"])).key
    mesh.secrets.add(api_key)
    port = free_port()
    env = dict(os.environ, HARSHA__DATABASES__ERP=f"sqlite://{mesh.data_dir}/erp.sqlite",
               HARSHA__ORDER__API_KEY=api_key, HARSHA__ORDER__LEASE_SECONDS="2",
               HARSHA__ORDER__CALL_TIMEOUT_MS="600",
               HARSHA__ORDER__RECOVERY_SECONDS="1")
    for service in ("customer", "inventory", "pricing", "auth"):
        env[f"HARSHA__SERVICES__{service.upper()}"] = mesh.address(service)
    env.update(extra_env or {})
    process = subprocess.Popen([harsha_binary(), "serve", "order", "--listen", f"127.0.0.1:{port}"],
                               env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    address = f"127.0.0.1:{port}"
    try:
        with grpc.insecure_channel(address) as channel:
            wait_until_serving(channel, "harsha.order.v1.OrderService")
        yield process, address
    finally:
        if process.poll() is None:
            process.terminate()
            process.wait(timeout=30)


def settle(order_stub, order_id: str, timeout: float = 30.0) -> pb.Order:
    deadline = time.monotonic() + timeout
    while True:
        order = order_stub.GetOrder(pb.GetOrderRequest(order_id=order_id)).order
        if order.status in (pb.ORDER_STATUS_PLACED, pb.ORDER_STATUS_FAILED):
            return order
        assert time.monotonic() < deadline, f"order {order_id} stayed {order.status}"
        time.sleep(0.2)


@pytest.mark.parametrize("step, outcome", [
    ("applying", pb.ORDER_STATUS_PLACED),
    ("reserving", pb.ORDER_STATUS_FAILED),
])
def test_an_order_service_killed_mid_order_is_finished_on_restart(mesh, inventory_stub, order_stub, step, outcome):
    item, warehouse = "MYSORE-PAK", "Mumbai DC - HD"
    # Each case's batch expires first, so it is the one reserved.
    stock = receive(inventory_stub, item, warehouse, {"applying": 50, "reserving": 20}[step], "10")
    request = pb.PlaceOrderRequest(customer="CUST-0004", channel="CRM", warehouse=warehouse,
                                   idempotency_key=key("crash"), lines=[line(item, "4")])
    with order_process(mesh, {"HARSHA__ORDER__ABORT_AFTER_STEP": step}) as (process, address):
        with grpc.insecure_channel(address) as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            with pytest.raises(grpc.RpcError) as died:
                stub.PlaceOrder(request, metadata=mesh.metadata(), timeout=30)
            assert died.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.INTERNAL, grpc.StatusCode.UNKNOWN)
        process.wait(timeout=10)
        assert process.returncode != 0, "the replica aborted mid-order"
    listed = order_stub.ListOrders(pb.ListOrdersRequest(customer="CUST-0004", page_size=50)).orders
    stuck = next(o for o in listed if o.idempotency_key == request.idempotency_key)
    assert stuck.status == pb.ORDER_STATUS_PENDING, "left half-done by the dead replica"
    # A new replica starts and finishes it (the mesh's own replica may too).
    with order_process(mesh):
        order = settle(order_stub, stuck.order_id)
    assert order.status == outcome
    if outcome == pb.ORDER_STATUS_PLACED:
        assert free(inventory_stub, stock.batch_id) == ("6", "4")
        assert order.lines[0].batches[0].batch_id == stock.batch_id
    else:
        assert free(inventory_stub, stock.batch_id) == ("10", "0"), "stock as it was"
        assert order.failure.step == "recovery"
    # The caller's retry with the same key learns the outcome.
    if outcome == pb.ORDER_STATUS_PLACED:
        replay = order_stub.PlaceOrder(request, timeout=30)
        assert replay.replayed and replay.order.order_id == order.order_id
    else:
        # Interrupted and rolled back: the same key sent again tries again.
        again = order_stub.PlaceOrder(request, timeout=30)
        assert not again.replayed and again.order.order_id == order.order_id
        assert again.order.status == pb.ORDER_STATUS_PLACED
        assert free(inventory_stub, stock.batch_id) == ("6", "4")


def test_an_unreachable_inventory_opens_the_circuit_and_reserves_nothing(mesh, inventory_stub):
    warehouse = "Hyderabad DC - HD"
    stock = receive(inventory_stub, "KAJU-KATLI", warehouse, 50, "10")
    dead = f"http://127.0.0.1:{free_port()}"
    with order_process(mesh, {"HARSHA__ORDER__INVENTORY_ENDPOINT": dead,
                              "HARSHA__ORDER__CALL_TIMEOUT_MS": "500"}) as (_, address):
        with grpc.insecure_channel(address) as channel:
            stub = order_pb2_grpc.OrderServiceStub(channel)
            messages = []
            for i in range(7):
                with pytest.raises(grpc.RpcError) as failed:
                    stub.PlaceOrder(pb.PlaceOrderRequest(
                        customer="CUST-0001", channel="CRM", warehouse=warehouse, idempotency_key=key(f"down-{i}"),
                        lines=[line("KAJU-KATLI", "1")]), metadata=mesh.metadata(), timeout=30)
                assert failed.value.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED)
                messages.append(failed.value.details())
    assert all("the inventory service could not reserve stock" in m for m in messages), messages
    assert "circuit open" in messages[-1], "after 5 failures the breaker answers at once"
    assert free(inventory_stub, stock.batch_id) == ("10", "0")


def test_the_demo_systems_hear_every_order_signed(mesh, inventory_stub, order_stub):
    """`harsha up --demo` stands in for the warehouse, the CRM and analytics,
    with Sync targets routing every order event to them."""
    import json
    import urllib.request

    hooks = next(line.split()[2] for line in mesh.banner if line.strip().startswith("demo hooks"))
    base = hooks.split("/hooks/")[0]
    receive(inventory_stub, ITEM, "Stores - HD", 45, "2")
    order = order_stub.PlaceOrder(pb.PlaceOrderRequest(
        customer="CUST-0005", channel="CRM", warehouse="Stores - HD", idempotency_key=key(),
        lines=[line(ITEM, "1")])).order
    for system in ("warehouse", "crm", "analytics"):
        deadline = time.monotonic() + 15
        while True:
            with urllib.request.urlopen(f"{base}/hooks/{system}", timeout=5) as reply:
                heard = json.loads(reply.read())
            if any(e["entity_key"] == order.order_id for e in heard["latest"]):
                break
            assert time.monotonic() < deadline, (system, heard)
            time.sleep(0.1)
        assert heard["badSignatures"] == 0
        event = next(e for e in heard["latest"] if e["entity_key"] == order.order_id)
        assert event["event_type"] == "order.placed" and event["source_system"] == "erpnext"


def test_loadgen_drives_orders_quotes_and_lookups_and_times_the_events(mesh):
    """`harsha loadgen` against the running mesh: it makes its own user and
    plan, finds customers and items, and reports per kind of request and
    the order events' lag at its own webhook."""
    import json

    done = subprocess.run(
        [harsha_binary(), "loadgen", "--edge", mesh.edge_url(""), "--rate", "20", "--duration", "3",
         "--warmup", "1", "--mix", "50,30,20", "--json"],
        env=dict(os.environ, HARSHA_LOADGEN_PASSWORD=mesh.admin_password()),
        capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    kinds = {row["kind"]: row for row in report["kinds"]}
    assert set(kinds) == {"POST /v1/orders", "POST /v1/quotes", "GET lookups"}, kinds
    assert sum(row["sent"] for row in kinds.values()) >= 40
    assert kinds["POST /v1/quotes"]["ok"] == kinds["POST /v1/quotes"]["sent"]
    assert all(row["statuses"].keys() <= {"200", "400"} for row in kinds.values()), kinds
    placed = report["events"]["expected"]
    assert placed > 0 and report["events"]["received"] == placed
    assert 0 < report["events"]["p50_ms"] <= report["events"]["p99_ms"]
