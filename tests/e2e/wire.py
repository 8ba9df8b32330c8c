"""Helpers for reading the mesh's wire answers, shared by the e2e tests:
field violations from google.rpc.BadRequest details, and decimals."""

import grpc
from google.rpc import error_details_pb2
from grpc_status import rpc_status

from harsha.type.v1 import decimal_pb2


def details(error: grpc.RpcError) -> list:
    """The google.rpc.Status details of a failed call."""
    status = rpc_status.from_call(error)
    assert status is not None, "the error carries google.rpc.Status details"
    return list(status.details)


def violations(error: grpc.RpcError) -> dict:
    """BadRequest field violations by field name."""
    fields = {}
    for detail in details(error):
        bad_request = error_details_pb2.BadRequest()
        if detail.Unpack(bad_request):
            for violation in bad_request.field_violations:
                fields[violation.field] = violation.description
    return fields


def dec(value: str) -> decimal_pb2.Decimal:
    return decimal_pb2.Decimal(value=value)
