"""CustomerService over the network from Python's grpcio, against the demo
data of `harsha up --demo`: real results, and the failure paths a client
must be able to tell apart."""

import uuid

import grpc
import pytest
from google.protobuf import field_mask_pb2

from harsha.customer.v1 import customer_pb2 as pb
from google.type import date_pb2
from wire import violations


def day(text: str) -> date_pb2.Date:
    year, month, dom = (int(part) for part in text.split("-"))
    return date_pb2.Date(year=year, month=month, day=dom)


def unique_code(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:8]}".upper()


def test_the_demo_profile_resolves_territory_overrides(customer_stub):
    profile = customer_stub.ResolveCustomerProfile(
        pb.ResolveCustomerProfileRequest(customer="CUST-0003", at=day("2026-11-26"))
    )
    assert profile.customer_name == "Cafe Cocoa"
    assert profile.primary.segment.code == "HORECA"
    assert profile.service_level == pb.SERVICE_LEVEL_PREMIUM
    assert profile.service_level_source == pb.PROFILE_SOURCE_PRIMARY_TERRITORY
    assert profile.price_tier == "METRO"
    assert [t.territory for t in profile.territories] == ["Mumbai"]


def test_demo_history_shows_the_replaced_primary(customer_stub):
    history = customer_stub.ListAssignmentHistory(pb.ListAssignmentHistoryRequest(customer="CUST-0005"))
    segments = [(a.segment_code, a.is_primary) for a in history.assignments]
    assert segments == [("DISTRIBUTOR", True), ("WHOLESALE", True)]
    wholesale = history.assignments[1]
    assert wholesale.effective_to == day("2026-01-01"), "the old primary ends where the new one starts"
    before = customer_stub.GetPrimarySegment(pb.GetPrimarySegmentRequest(customer="CUST-0005", as_of=day("2025-12-31")))
    after = customer_stub.GetPrimarySegment(pb.GetPrimarySegmentRequest(customer="CUST-0005", as_of=day("2026-01-01")))
    assert before.primary.segment.code == "WHOLESALE"
    assert after.primary.segment.code == "DISTRIBUTOR"


def test_a_segment_lifecycle_from_create_to_members(customer_stub):
    code = unique_code("e2e")
    created = customer_stub.CreateSegment(
        pb.CreateSegmentRequest(
            segment=pb.Segment(
                code=code.lower(),
                segment_name="Holi colour-sweets buyers",
                service_level=pb.SERVICE_LEVEL_PRIORITY,
                priority=35,
                price_tier="festive",
            )
        )
    ).segment
    assert created.code == code
    assert created.price_tier == "FESTIVE"
    assert created.status == pb.SEGMENT_STATUS_ACTIVE

    updated = customer_stub.UpdateSegment(
        pb.UpdateSegmentRequest(
            segment=pb.Segment(code=code, priority=70),
            update_mask=field_mask_pb2.FieldMask(paths=["priority"]),
        )
    ).segment
    assert updated.priority == 70
    assert updated.segment_name == "Holi colour-sweets buyers"

    unmasked = customer_stub.UpdateSegment(pb.UpdateSegmentRequest(segment=pb.Segment(code=code, priority=75))).segment
    assert unmasked.priority == 75
    assert unmasked.price_tier == "FESTIVE", "without a mask, fields the request leaves unset are kept"
    assert unmasked.service_level == pb.SERVICE_LEVEL_PRIORITY

    outcome = customer_stub.AssignSegment(
        pb.AssignSegmentRequest(customer="CUST-0006", segment_code=code, is_primary=True, effective_from=day("2027-03-01"))
    )
    assert [r.segment_code for r in outcome.replaced] == ["RETAIL"]
    assert outcome.replaced[0].effective_to == day("2027-03-01")

    members = customer_stub.ListSegmentCustomers(
        pb.ListSegmentCustomersRequest(segment_code=code, as_of=day("2027-03-02"))
    )
    assert [a.customer for a in members.assignments] == ["CUST-0006"]
    none_yet = customer_stub.ListSegmentCustomers(
        pb.ListSegmentCustomersRequest(segment_code=code, as_of=day("2027-02-28"))
    )
    assert list(none_yet.assignments) == []
    # The same list as a server stream (one message per customer).
    streamed = customer_stub.StreamSegmentCustomers(
        pb.StreamSegmentCustomersRequest(segment_code=code, as_of=day("2027-03-02"), primary_only=True)
    )
    assert [m.assignment.customer for m in streamed] == ["CUST-0006"]
    with pytest.raises(grpc.RpcError) as unknown:
        list(customer_stub.StreamSegmentCustomers(pb.StreamSegmentCustomersRequest(segment_code="NO-SUCH")))
    assert unknown.value.code() == grpc.StatusCode.NOT_FOUND

    ended = customer_stub.EndAssignment(
        pb.EndAssignmentRequest(assignment_id=outcome.assignment.assignment_id, effective_to=day("2027-06-01"))
    ).assignment
    assert ended.effective_to == day("2027-06-01")

    deactivated = customer_stub.DeactivateSegment(pb.DeactivateSegmentRequest(code=code)).segment
    assert deactivated.status == pb.SEGMENT_STATUS_INACTIVE
    with pytest.raises(grpc.RpcError) as refused:
        customer_stub.AssignSegment(pb.AssignSegmentRequest(customer="CUST-0001", segment_code=code))
    assert refused.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_segments_page_through_with_tokens(customer_stub):
    seen, token = [], ""
    while True:
        page = customer_stub.ListSegments(pb.ListSegmentsRequest(page_size=2, page_token=token))
        assert len(page.segments) <= 2
        seen.extend(s.code for s in page.segments)
        token = page.next_page_token
        if not token:
            break
    assert seen == sorted(seen)
    assert {"RETAIL", "WHOLESALE", "DISTRIBUTOR", "HORECA", "CORPORATE-GIFTING", "FESTIVAL-BULK"} <= set(seen)


@pytest.mark.parametrize(
    "request_, field",
    [
        (pb.CreateSegmentRequest(segment=pb.Segment(code="", segment_name="x")), "segment.code"),
        (pb.CreateSegmentRequest(segment=pb.Segment(code="BAD CODE", segment_name="x")), "segment.code"),
        (pb.CreateSegmentRequest(segment=pb.Segment(code="LONGNAME", segment_name="x" * 141)), "segment.segment_name"),
        (pb.CreateSegmentRequest(segment=pb.Segment(code="PRIO", segment_name="x", priority=5000)), "segment.priority"),
        (pb.CreateSegmentRequest(), "segment"),
    ],
)
def test_bad_segments_name_the_field(customer_stub, request_, field):
    with pytest.raises(grpc.RpcError) as error:
        customer_stub.CreateSegment(request_)
    assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert field in violations(error.value)


def test_bad_assignments_name_the_field_and_write_nothing(customer_stub):
    before = customer_stub.ListAssignmentHistory(pb.ListAssignmentHistoryRequest(customer="CUST-0001"))
    cases = [
        (dict(effective_from=day("2026-02-01"), effective_to=day("2026-01-01")), "effective_to"),
        (dict(effective_from=date_pb2.Date(year=2026, month=2, day=30)), "effective_from"),
    ]
    for extra, field in cases:
        with pytest.raises(grpc.RpcError) as error:
            customer_stub.AssignSegment(pb.AssignSegmentRequest(customer="CUST-0001", segment_code="RETAIL", **extra))
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert field in violations(error.value)
    with pytest.raises(grpc.RpcError) as error:
        customer_stub.AssignSegment(pb.AssignSegmentRequest(customer="", segment_code="RETAIL"))
    assert "customer" in violations(error.value)
    after = customer_stub.ListAssignmentHistory(pb.ListAssignmentHistoryRequest(customer="CUST-0001"))
    assert after == before


def test_failure_codes_tell_the_cases_apart(customer_stub):
    def code_of(call, request):
        with pytest.raises(grpc.RpcError) as error:
            call(request)
        return error.value.code()

    assert code_of(customer_stub.GetSegment, pb.GetSegmentRequest(code="NO-SUCH")) == grpc.StatusCode.NOT_FOUND
    assert (
        code_of(customer_stub.ResolveCustomerProfile, pb.ResolveCustomerProfileRequest(customer="CUST-9999"))
        == grpc.StatusCode.NOT_FOUND
    )
    assert (
        code_of(customer_stub.AssignSegment, pb.AssignSegmentRequest(customer="CUST-0007", segment_code="RETAIL"))
        == grpc.StatusCode.FAILED_PRECONDITION
    ), "a disabled customer cannot be assigned"
    duplicate = pb.CreateSegmentRequest(segment=pb.Segment(code="RETAIL", segment_name="Again"))
    assert code_of(customer_stub.CreateSegment, duplicate) == grpc.StatusCode.ALREADY_EXISTS
    assert (
        code_of(customer_stub.ListSegments, pb.ListSegmentsRequest(page_token="forged"))
        == grpc.StatusCode.INVALID_ARGUMENT
    )
    assert (
        code_of(customer_stub.MapTerritory, pb.MapTerritoryRequest(customer="CUST-0001", territory="Mumbai"))
        == grpc.StatusCode.INVALID_ARGUMENT
    ), "coverage_type is required"
