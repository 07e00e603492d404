"""The engine port over gRPC, against the real server: what port.py promises, kept on the wire."""

from __future__ import annotations

import time
from typing import Any

import grpc
import pytest
from e2e_helpers import FHIR_HOSPITAL, HL7_HOSPITAL, HL7_TERMINAL, PERSON, TODAY, Engine
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2  # type: ignore[import-untyped]
from grpc_status import rpc_status as grpc_status

from hospital_adapters import (
    CanonicalLine,
    CanonicalSettleRequest,
    EngineUnavailable,
    Quoted,
    Refusal,
    Settled,
    VisitType,
    derive_request_id,
)
from hospital_adapters.samples import catalogue
from settlement.client import DevIdentity, GrpcEnginePort, refusal_of
from settlement.client.engine_port import canonical_field
from settlement.errors import DeadlineTooShort, PersonNotFound, Unavailable, UnknownItemCode
from settlement.server.status import INTERNAL_MESSAGE, internal_status, rich_status


def charge(source_id: str = "V-1", *, hospital_id: str = HL7_HOSPITAL, person: str = PERSON,
           quantity: str = "1") -> CanonicalSettleRequest:
    return CanonicalSettleRequest(
        hospital_id=hospital_id,
        request_id=derive_request_id(hospital_id, "test", source_id),
        person_number=person,
        visit_date=TODAY,
        visit_type=VisitType.OUTPATIENT,
        use_account=True,
        lines=(
            CanonicalLine(catalogue.CONSULTATION_FEE, "L1", "1", "20"),
            CanonicalLine(catalogue.METFORMIN_TABLET_500MG, "L2", quantity, "0.35", None),
        ),
    )


def test_a_settle_retried_with_the_same_id_returns_the_first_settlement(hl7_port: GrpcEnginePort,
                                                                         engine: Engine) -> None:
    first = hl7_port.settle(charge())
    again = hl7_port.settle(charge())

    assert isinstance(first, Settled)
    assert again == first
    assert first.split.total_fen == 2000 + 35
    assert engine.settlement_rows() == 1


def test_the_same_id_for_another_charge_is_refused_naming_the_request_id(hl7_port: GrpcEnginePort,
                                                                         engine: Engine) -> None:
    hl7_port.settle(charge())

    refused = hl7_port.settle(charge(quantity="2"))

    assert isinstance(refused, Refusal)
    assert (refused.reason, refused.field) == ("REQUEST_ID_REUSED", "request_id")
    assert engine.settlement_rows() == 1


def test_a_quote_gives_the_split_a_settle_would_and_writes_no_settlement(hl7_port: GrpcEnginePort,
                                                                         engine: Engine) -> None:
    quoted = hl7_port.quote(charge())

    assert isinstance(quoted, Quoted)
    assert engine.settlement_rows() == 0
    settled = hl7_port.settle(charge())
    assert isinstance(settled, Settled)
    assert settled.split == quoted.split


def test_a_charge_for_another_hospital_than_the_certificates_is_refused(hl7_port: GrpcEnginePort,
                                                                        engine: Engine) -> None:
    refused = hl7_port.settle(charge(hospital_id=FHIR_HOSPITAL))

    assert isinstance(refused, Refusal)
    assert (refused.reason, refused.field) == ("OTHER_HOSPITAL", "hospital_id")
    assert engine.settlement_rows() == 0


def test_an_unknown_person_is_a_refusal_naming_the_person_number(hl7_port: GrpcEnginePort) -> None:
    refused = hl7_port.settle(charge(person="33019999999999999999"))

    assert isinstance(refused, Refusal)
    assert (refused.reason, refused.field) == ("PERSON_NOT_FOUND", "person_number")


def test_an_unreachable_engine_raises_unavailable_within_the_call_budget() -> None:
    port = GrpcEnginePort.connect("127.0.0.1:1", operator_id="his-adapter",
                                  dev_identity=DevIdentity(HL7_HOSPITAL, HL7_TERMINAL), timeout_ms=1_500)
    started = time.monotonic()
    with port, pytest.raises(EngineUnavailable, match="UNAVAILABLE"):
        port.settle(charge())
    assert time.monotonic() - started < 3.0


def test_a_dev_mode_caller_names_itself_in_metadata(engine: Engine) -> None:
    listener = engine.dev_listener()
    port = GrpcEnginePort.connect(f"127.0.0.1:{listener.port}", operator_id="his-adapter",
                                  dev_identity=DevIdentity(HL7_HOSPITAL, HL7_TERMINAL))
    with port:
        settled = port.settle(charge("V-DEV"))

    assert isinstance(settled, Settled)
    stored = engine.inspector(HL7_HOSPITAL).settlement(charge("V-DEV").request_id)
    assert stored is not None
    assert stored.terminal_id == HL7_TERMINAL


def test_a_port_needs_exactly_one_identity() -> None:
    with pytest.raises(ValueError, match="either"):
        GrpcEnginePort.connect("localhost:1", operator_id="his-adapter")


@pytest.mark.parametrize(("metadata", "field"), [
    ({"field": "lines[2].item_code"}, "lines[2].catalogue_code"),
    ({"field": "lines[0].unit_price_yuan"}, "lines[0].unit_price_yuan"),
    ({"field": "visit_date"}, "visit_date"),
    ({"person_number": "P1"}, "person_number"),
    ({"card": "****1234"}, ""),
])
def test_engine_field_paths_become_the_canonical_requests(metadata: dict[str, str], field: str) -> None:
    assert canonical_field(metadata) == field


class FailedCall(grpc.RpcError):
    """What a failed unary call raises: an RpcError that is also a Call with a status."""

    def __init__(self, status: grpc.Status) -> None:
        self.status = status

    def code(self) -> grpc.StatusCode:
        return self.status.code

    def details(self) -> str:
        return self.status.details

    def trailing_metadata(self) -> Any:  # (key, value) pairs; grpc-stubs models them otherwise
        return self.status.trailing_metadata


def plain(code: grpc.StatusCode, details: str = "") -> grpc.Status:
    return grpc_status.to_status(status_pb2.Status(code=code.value[0], message=details))


@pytest.mark.parametrize(("status", "expected"), [
    (rich_status(PersonNotFound("no insured person P9", metadata={"person_number": "P9"})),
     Refusal("PERSON_NOT_FOUND", "no insured person P9", "person_number")),
    (rich_status(UnknownItemCode("lines[1].item_code X is not in the catalogue", field="lines[1].item_code")),
     Refusal("UNKNOWN_ITEM_CODE", "lines[1].item_code X is not in the catalogue", "lines[1].catalogue_code")),
    (internal_status(), Refusal("INTERNAL", INTERNAL_MESSAGE)),
    (rich_status(Unavailable("the commit queue is full; retry")), None),
    (rich_status(DeadlineTooShort("the deadline leaves no time to commit")), None),
    (plain(grpc.StatusCode.UNAVAILABLE, "failed to connect to all addresses"), None),
    (plain(grpc.StatusCode.INTERNAL, "RST_STREAM from a proxy"), None),
    (plain(grpc.StatusCode.RESOURCE_EXHAUSTED, "too many concurrent calls"), None),
])
def test_only_a_status_carrying_the_engines_error_info_is_a_refusal(status: grpc.Status,
                                                                    expected: Refusal | None) -> None:
    assert refusal_of(FailedCall(status)) == expected


def test_error_info_of_another_domain_is_not_the_engines_refusal() -> None:
    info = error_details_pb2.ErrorInfo(reason="QUOTA", domain="proxy.example")
    packed = any_pb2.Any()
    packed.Pack(info)
    status = grpc_status.to_status(status_pb2.Status(code=grpc.StatusCode.FAILED_PRECONDITION.value[0],
                                                     message="quota", details=[packed]))
    assert refusal_of(FailedCall(status)) is None
