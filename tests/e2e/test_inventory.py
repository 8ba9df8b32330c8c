"""InventoryService over the network from Python's grpcio, against `harsha up
--demo`: batches received and read back, FEFO allocation split across
batches, the shortfall a caller can act on, field-named errors, expiry
listing and the idempotent scan. Each test uses its own batch numbers (and,
where stock is counted, its own item and warehouse) so tests do not see each
other's stock."""

import datetime
import uuid
from zoneinfo import ZoneInfo

import grpc
import pytest
from google.rpc import error_details_pb2
from google.type import date_pb2

from harsha.inventory.v1 import inventory_pb2 as pb
from wire import dec, details, violations


def today() -> datetime.date:
    return datetime.datetime.now(ZoneInfo("Asia/Kolkata")).date()


def day(offset: int) -> date_pb2.Date:
    d = today() + datetime.timedelta(days=offset)
    return date_pb2.Date(year=d.year, month=d.month, day=d.day)


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}".upper()


def receive(stub, item: str, warehouse: str, expires_in: int, qty: str, **extra) -> pb.Batch:
    request = pb.ReceiveBatchRequest(
        item_code=item,
        warehouse=warehouse,
        batch_no=unique("B"),
        manufacturing_date=day(-3),
        expiry_date=day(expires_in),
        qty=dec(qty),
        quality_grade=pb.QUALITY_GRADE_A,
        **extra,
    )
    return stub.ReceiveBatch(request).batch


def test_a_received_batch_reads_back_with_its_label(inventory_stub):
    batch = receive(
        inventory_stub,
        "SOAN-PAPDI",
        "Stores - HD",
        90,
        "24.125",
        supplier="Haldiram Packers",
        storage_conditions=pb.StorageConditions(
            temperature_min_c=dec("15"), temperature_max_c=dec("25"),
            humidity_min_pct=dec("30"), humidity_max_pct=dec("60"),
        ),
        nutrition=pb.Nutrition(
            energy_kcal=dec("520"), protein_g=dec("6.1"), carbohydrate_g=dec("60"), sugars_g=dec("42"),
            fat_g=dec("28.5"), saturated_fat_g=dec("12"), sodium_mg=dec("40"),
        ),
        allergens=[pb.ALLERGEN_GLUTEN, pb.ALLERGEN_MILK, pb.ALLERGEN_TREE_NUTS],
        reference=pb.DocumentReference(doctype="Purchase Receipt", name="PR-2026-0042"),
    )
    read = inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=batch.batch_id)).batch
    assert read == batch
    assert read.available_qty.value == "24.125"
    assert read.stock_uom == "Box", "the item's stock unit when none is given"
    assert read.nutrition.sodium_mg.value == "40"
    assert list(read.allergens) == [pb.ALLERGEN_MILK, pb.ALLERGEN_TREE_NUTS, pb.ALLERGEN_GLUTEN]
    assert read.status == pb.BATCH_STATUS_ACTIVE
    movements = inventory_stub.ListBatchMovements(pb.ListBatchMovementsRequest(batch_id=batch.batch_id)).movements
    assert [m.movement_type for m in movements] == [pb.MOVEMENT_TYPE_RECEIPT]
    assert movements[0].reference.name == "PR-2026-0042"
    assert movements[0].available_after.value == "24.125"


def test_fefo_allocation_splits_across_batches_and_confirms(inventory_stub):
    item, warehouse = "DARK-CHOC-70", "Bengaluru DC - HD"
    later = receive(inventory_stub, item, warehouse, 40, "10")
    sooner = receive(inventory_stub, item, warehouse, 20, "10")
    allocation = inventory_stub.AllocateStock(
        pb.AllocateStockRequest(item_code=item, qty=dec("15"), warehouse=warehouse,
                                reference=pb.DocumentReference(doctype="Sales Order", name="SO-E2E-1"))
    ).allocation
    assert [(line.batch_id, line.qty.value) for line in allocation.lines] == [
        (sooner.batch_id, "10"), (later.batch_id, "5")
    ]
    assert allocation.status == pb.ALLOCATION_STATUS_RESERVED
    held = inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=later.batch_id)).batch
    assert (held.available_qty.value, held.reserved_qty.value) == ("5", "5")

    confirmed = inventory_stub.ConfirmAllocation(pb.ConfirmAllocationRequest(allocation_id=allocation.allocation_id))
    assert confirmed.allocation.status == pb.ALLOCATION_STATUS_CONFIRMED
    issued = inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=later.batch_id)).batch
    assert (issued.available_qty.value, issued.reserved_qty.value) == ("5", "0")
    used_up = inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=sooner.batch_id)).batch
    assert used_up.status == pb.BATCH_STATUS_CONSUMED

    with pytest.raises(grpc.RpcError) as refused:
        inventory_stub.ReleaseAllocation(pb.ReleaseAllocationRequest(allocation_id=allocation.allocation_id))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_repeated_request_id_reserves_once(inventory_stub):
    item, warehouse = "DARK-CHOC-70", "Stores - HD"
    receive(inventory_stub, item, warehouse, 60, "8")
    request = pb.AllocateStockRequest(request_id=unique("order"), item_code=item, qty=dec("3"), warehouse=warehouse)
    first = inventory_stub.AllocateStock(request).allocation
    again = inventory_stub.AllocateStock(request).allocation
    assert first.allocation_id == again.allocation_id
    released = inventory_stub.ReleaseAllocation(pb.ReleaseAllocationRequest(allocation_id=first.allocation_id))
    assert released.allocation.status == pb.ALLOCATION_STATUS_RELEASED


def test_a_shortfall_says_how_much_is_missing_and_reserves_nothing(inventory_stub):
    item, warehouse = "MYSORE-PAK", "Hyderabad DC - HD"
    batch = receive(inventory_stub, item, warehouse, 30, "4.5")
    with pytest.raises(grpc.RpcError) as short:
        inventory_stub.AllocateStock(pb.AllocateStockRequest(item_code=item, qty=dec("10"), warehouse=warehouse))
    assert short.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_details_pb2.ErrorInfo()
    failure = error_details_pb2.PreconditionFailure()
    found = details(short.value)
    assert any(d.Unpack(info) for d in found) and any(d.Unpack(failure) for d in found)
    assert info.reason == "INSUFFICIENT_STOCK"
    assert dict(info.metadata) == {"requested": "10", "available": "4.5", "shortfall": "5.5"}
    assert failure.violations[0].subject == item
    untouched = inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=batch.batch_id)).batch
    assert (untouched.available_qty.value, untouched.reserved_qty.value) == ("4.5", "0")


def test_bad_input_is_invalid_argument_naming_the_field(inventory_stub):
    good = dict(item_code="KAJU-KATLI", warehouse="Stores - HD", batch_no=unique("BAD"),
                manufacturing_date=day(-1), expiry_date=day(10), qty=dec("1"), quality_grade=pb.QUALITY_GRADE_A)
    cases = {
        "expiry_date": dict(good, expiry_date=day(-2)),
        "manufacturing_date": dict(good, manufacturing_date=day(1)),
        "stock_uom": dict(good, stock_uom="Box"),
        "qty": dict(good, qty=dec("abc")),
        "quality_grade": dict(good, quality_grade=pb.QUALITY_GRADE_UNSPECIFIED),
        "item_code": dict(good, item_code=""),
        "nutrition.sugars_g": dict(good, nutrition=pb.Nutrition(
            energy_kcal=dec("400"), protein_g=dec("5"), carbohydrate_g=dec("50"), sugars_g=dec("60"),
            fat_g=dec("20"), saturated_fat_g=dec("5"), sodium_mg=dec("10"))),
        "storage_conditions.temperature_max_c": dict(good, storage_conditions=pb.StorageConditions(
            temperature_min_c=dec("9"), temperature_max_c=dec("8"))),
    }
    for field, request in cases.items():
        with pytest.raises(grpc.RpcError) as bad:
            inventory_stub.ReceiveBatch(pb.ReceiveBatchRequest(**request))
        assert bad.value.code() == grpc.StatusCode.INVALID_ARGUMENT, field
        assert field in violations(bad.value), (field, violations(bad.value))

    batch = receive(inventory_stub, "KAJU-KATLI", "Mumbai DC - HD", 30, "2")
    with pytest.raises(grpc.RpcError) as same:
        inventory_stub.TransferStock(pb.TransferStockRequest(batch_id=batch.batch_id, qty=dec("1"),
                                                             to_warehouse="Mumbai DC - HD"))
    assert "to_warehouse" in violations(same.value)
    with pytest.raises(grpc.RpcError) as too_much:
        inventory_stub.IssueStock(pb.IssueStockRequest(batch_id=batch.batch_id, qty=dec("2.5")))
    assert too_much.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "qty" in violations(too_much.value), "the field asking for too much is named"
    with pytest.raises(grpc.RpcError) as zero:
        inventory_stub.IssueStock(pb.IssueStockRequest(batch_id=batch.batch_id, qty=dec("0")))
    assert "qty" in violations(zero.value)
    with pytest.raises(grpc.RpcError) as missing:
        inventory_stub.GetBatch(pb.GetBatchRequest(batch_id="no-such-batch"))
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    with pytest.raises(grpc.RpcError) as level:
        inventory_stub.ListExpiringBatches(pb.ListExpiringBatchesRequest(level=pb.EXPIRY_LEVEL_OK))
    assert "level" in violations(level.value)
    # Nothing half-written: the batch still holds what it held.
    assert inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=batch.batch_id)).batch.available_qty.value == "2"


def test_expiring_batches_and_an_idempotent_scan(inventory_stub):
    batch = receive(inventory_stub, "MOTICHOOR-LADDU", "Mumbai DC - HD", 7, "3")
    critical = inventory_stub.ListExpiringBatches(
        pb.ListExpiringBatchesRequest(level=pb.EXPIRY_LEVEL_CRITICAL, warehouse="Mumbai DC - HD")
    ).batches
    mine = [b for b in critical if b.batch.batch_id == batch.batch_id]
    assert len(mine) == 1 and mine[0].days_to_expiry == 7, "7 days to expiry is critical (inclusive)"
    first = inventory_stub.RunExpiryScan(pb.RunExpiryScanRequest())
    assert any(a.batch_id == batch.batch_id and a.level == pb.EXPIRY_LEVEL_CRITICAL for a in first.alerts)
    again = inventory_stub.RunExpiryScan(pb.RunExpiryScanRequest())
    assert not [a for a in again.alerts if a.batch_id == batch.batch_id]
    # A scan may not run ahead of today: it would spend alerts and mark
    # batches expired early.
    with pytest.raises(grpc.RpcError) as ahead:
        inventory_stub.RunExpiryScan(pb.RunExpiryScanRequest(as_of=day(8)))
    assert "as_of" in violations(ahead.value)
    status = inventory_stub.GetBatch(pb.GetBatchRequest(batch_id=batch.batch_id)).batch.status
    assert status == pb.BATCH_STATUS_ACTIVE


def test_the_demo_stock_position_has_every_warehouse(inventory_stub):
    position = inventory_stub.GetStockPosition(pb.GetStockPositionRequest(item_code="SOAN-PAPDI", as_of=day(0)))
    by_warehouse = {w.warehouse: w for w in position.warehouses}
    assert {"Hyderabad DC - HD", "Mumbai DC - HD"} <= set(by_warehouse)
    assert by_warehouse["Hyderabad DC - HD"].buckets.ok.value == "400"
    assert by_warehouse["Mumbai DC - HD"].buckets.warning.value == "150"
