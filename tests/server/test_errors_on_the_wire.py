"""A refusal arrives as the documented rich status; a bug arrives as INTERNAL and tells the caller nothing.

Servicer methods just raise: the status interceptor maps every SettlementError to its canonical code with
exactly one ErrorInfo and one zh-CN LocalizedMessage, and anything else to a fixed INTERNAL reply.
"""

from __future__ import annotations

import logging
import threading

import grpc
import pytest
from google.rpc import error_details_pb2
from grpc_status import rpc_status
from server_fakes import (
    CITIZEN_ID,
    OPERATOR,
    PkiFiles,
    Served,
    ServeFactory,
    mtls_channel,
    settle_request,
    wait_until,
)

from settlement import errors
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc
from settlement.errors import ERROR_DOMAIN
from settlement.server.status import INTERNAL_MESSAGE, INTERNAL_MESSAGE_ZH, error_info_of, localized_message_of

Stub = settlement_service_pb2_grpc.SettlementServiceStub
CALL = {"timeout": 5.0, "metadata": [("operator-id", OPERATOR)]}


def refused(stub: Stub, person_number: str) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as caught:
        stub.Settle(settle_request(person_number), **CALL)  # type: ignore[arg-type]
    return caught.value


def test_a_refusal_carries_exactly_one_error_info_and_a_chinese_message(terminal_stub: Stub) -> None:
    error = refused(terminal_stub, "P-INVALID")
    assert error.code() is grpc.StatusCode.INVALID_ARGUMENT
    assert error.details() == "quantity must be a plain decimal"
    status = rpc_status.from_call(error)
    infos = [detail for detail in status.details if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    localized = [detail for detail in status.details if detail.Is(error_details_pb2.LocalizedMessage.DESCRIPTOR)]
    assert (len(infos), len(localized), len(status.details)) == (1, 1, 2)
    info = error_info_of(error)
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "INVALID_FIELD", ERROR_DOMAIN, {"field": "lines[0].quantity"},
    )
    message = error_details_pb2.LocalizedMessage()
    localized[0].Unpack(message)
    assert (message.locale, message.message) == ("zh-CN", errors.InvalidField.message_zh)
    assert localized_message_of(error) == errors.InvalidField.message_zh


def test_not_found_maps_to_its_own_reason(terminal_stub: Stub) -> None:
    error = refused(terminal_stub, "P-NOT-FOUND")
    info = error_info_of(error)
    assert error.code() is grpc.StatusCode.NOT_FOUND
    assert info is not None
    assert (info.reason, dict(info.metadata)) == ("PERSON_NOT_FOUND", {"field": "person_number"})


@pytest.mark.parametrize("person_number", ["P-BUG", "P-CRASH"])
def test_a_bug_is_internal_and_leaks_nothing(
    terminal_stub: Stub, caplog: pytest.LogCaptureFixture, person_number: str
) -> None:
    with caplog.at_level(logging.ERROR, logger="settlement.server.status"):
        error = refused(terminal_stub, person_number)
    assert error.code() is grpc.StatusCode.INTERNAL
    assert error.details() == INTERNAL_MESSAGE
    info = error_info_of(error)
    assert info is not None
    assert (info.reason, info.domain, dict(info.metadata)) == ("INTERNAL", ERROR_DOMAIN, {})
    assert localized_message_of(error) == INTERNAL_MESSAGE_ZH
    sent = str(rpc_status.from_call(error))
    for secret in (CITIZEN_ID, "psycopg", "/srv/secret", "RuntimeError", "Invariant"):
        assert secret not in sent
        assert secret not in (error.details() or "")
    assert [record.levelname for record in caplog.records] == ["ERROR"]  # logged on the server, once


def test_a_status_the_handler_set_itself_stands(terminal_stub: Stub) -> None:
    error = refused(terminal_stub, "P-ABORT")
    assert (error.code(), error.details()) == (grpc.StatusCode.NOT_FOUND, "aborted by hand")
    assert error_info_of(error) is None


def test_a_5_mb_request_is_refused_with_resource_exhausted_and_the_server_keeps_serving(terminal_stub: Stub) -> None:
    huge = settle_request("P-OK", card_number="9" * (5 * 1024 * 1024))
    with pytest.raises(grpc.RpcError) as caught:
        terminal_stub.Settle(huge, **CALL)  # type: ignore[arg-type]
    assert caught.value.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
    assert terminal_stub.Settle(settle_request("P-OK"), **CALL).settlement.settlement_id == "S-1"  # type: ignore[arg-type]


def test_calls_beyond_the_concurrency_limit_are_refused_at_once(serve: ServeFactory, test_pki: PkiFiles) -> None:
    served: Served = serve(max_concurrent_rpcs=1)
    with mtls_channel(served.port, test_pki.ca_pem, test_pki.terminal) as channel:
        stub = Stub(channel)
        slow = threading.Thread(target=lambda: stub.Settle(settle_request("P-SLOW"), **CALL))  # type: ignore[arg-type]
        slow.start()
        try:
            wait_until(lambda: len(served.fake.callers) == 1)
            error = refused(stub, "P-OK")
        finally:
            slow.join()
    assert error.code() is grpc.StatusCode.RESOURCE_EXHAUSTED
