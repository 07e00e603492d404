"""Only a terminal of hospital A, with a certificate from our CA, still valid, and an operator, gets in.

A missing, foreign or expired client certificate never reaches the engine: the TLS handshake refuses it
and the client sees UNAVAILABLE without details (docs/operations.md). Everything after the handshake is
answered with a documented reason.
"""

from __future__ import annotations

import grpc
import pytest
from server_fakes import OPERATOR, PkiFiles, Served, ServeFactory, mtls_channel, settle_request

from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc
from settlement.server import pki
from settlement.server.status import error_info_of
from settlement.service.commands import Caller

TIMEOUT_SECONDS = 5.0


def settle_as(served: Served, ca_pem: bytes, client: pki.Issued | None, **call: object) -> object:
    with mtls_channel(served.port, ca_pem, client) as channel:
        stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
        request = call.pop("request", settle_request())
        return stub.Settle(request, timeout=TIMEOUT_SECONDS, **call)


@pytest.mark.parametrize("case", ["no client certificate", "certificate from another CA", "expired certificate"])
def test_a_terminal_without_a_valid_certificate_is_refused_at_the_handshake(
    served: Served, test_pki: PkiFiles, case: str
) -> None:
    client = {
        "no client certificate": None,
        "certificate from another CA": test_pki.foreign_ca_terminal,
        "expired certificate": test_pki.expired_terminal,
    }[case]
    with pytest.raises(grpc.RpcError) as refused:
        settle_as(served, test_pki.ca_pem, client, metadata=[("operator-id", OPERATOR)])
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE
    assert error_info_of(refused.value) is None
    assert served.fake.callers == []


def test_a_terminal_of_another_hospital_is_refused_with_other_hospital(served: Served, test_pki: PkiFiles) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        settle_as(served, test_pki.ca_pem, test_pki.other_hospital_terminal, metadata=[("operator-id", OPERATOR)])
    assert refused.value.code() is grpc.StatusCode.PERMISSION_DENIED
    info = error_info_of(refused.value)
    assert info is not None
    assert info.reason == "OTHER_HOSPITAL"
    assert dict(info.metadata) == {"field": "hospital_id", "hospital_id": "H001"}


def test_a_call_without_operator_id_is_unauthenticated(served: Served, test_pki: PkiFiles) -> None:
    with pytest.raises(grpc.RpcError) as refused:
        settle_as(served, test_pki.ca_pem, test_pki.terminal)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
    info = error_info_of(refused.value)
    assert info is not None
    assert (info.reason, dict(info.metadata)) == ("UNAUTHENTICATED", {"metadata": "operator-id"})


@pytest.mark.parametrize("operator", ["", "   ", "D 42", "x" * 65, "D0042;DROP"])
def test_a_blank_or_malformed_operator_id_is_unauthenticated(
    served: Served, test_pki: PkiFiles, operator: str
) -> None:
    metadata = [("operator-id", operator)]
    with pytest.raises(grpc.RpcError) as refused:
        settle_as(served, test_pki.ca_pem, test_pki.terminal, metadata=metadata)
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED


def test_a_valid_terminal_with_an_operator_is_served_and_named_from_its_certificate(
    served: Served, test_pki: PkiFiles
) -> None:
    reply = settle_as(served, test_pki.ca_pem, test_pki.terminal, metadata=[("operator-id", OPERATOR)])
    assert reply.settlement.hospital_id == "H001"  # type: ignore[attr-defined]
    assert served.fake.callers == [Caller("H001", "T01", OPERATOR)]


def test_dev_mode_names_the_terminal_from_metadata(serve: ServeFactory) -> None:
    served = serve(dev_mode=True)
    metadata = [("operator-id", OPERATOR), ("x-dev-hospital-id", "H001"), ("x-dev-terminal-id", "T07")]
    with grpc.insecure_channel(f"127.0.0.1:{served.port}") as channel:
        stub = settlement_service_pb2_grpc.SettlementServiceStub(channel)
        stub.Settle(settle_request(), timeout=TIMEOUT_SECONDS, metadata=metadata)
        with pytest.raises(grpc.RpcError) as refused:
            stub.Settle(settle_request(), timeout=TIMEOUT_SECONDS, metadata=metadata[:2])
    assert served.fake.callers == [Caller("H001", "T07", OPERATOR)]
    assert refused.value.code() is grpc.StatusCode.UNAUTHENTICATED
