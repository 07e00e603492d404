"""Unit tests without a network: the caller read from a context, the hospital check, the rich status of
every refusal, and the last-line masking of log output."""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence

import grpc
import pytest
from google.rpc import error_details_pb2, status_pb2
from server_fakes import CARD_NUMBER, CITIZEN_ID, PkiFiles

from settlement import errors
from settlement.server import pki
from settlement.server.identity import check_hospital, identify, terminal_of_certificate
from settlement.server.runtime import configure_logging, scrub
from settlement.server.status import rich_status
from settlement.service.commands import Caller


class FakeContext:
    """The two things identity reads from a grpc.ServicerContext."""

    def __init__(self, certificate_pem: bytes | None, metadata: Sequence[tuple[str, str]]) -> None:
        self._auth = {"x509_pem_cert": [certificate_pem]} if certificate_pem else {}
        self._metadata = tuple(metadata)

    def auth_context(self) -> dict[str, list[bytes]]:
        return self._auth  # type: ignore[return-value]

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata


def context(certificate_pem: bytes | None, *metadata: tuple[str, str]) -> grpc.ServicerContext:
    return FakeContext(certificate_pem, metadata)  # type: ignore[return-value]


def test_the_caller_comes_from_the_certificate_and_operator_metadata(test_pki: PkiFiles) -> None:
    caller = identify(context(test_pki.terminal.certificate_pem, ("operator-id", "D0042")), dev_mode=False)
    assert caller == Caller("H001", "T01", "D0042")


def test_dev_metadata_is_ignored_outside_dev_mode() -> None:
    claimed = context(None, ("operator-id", "D0042"), ("x-dev-hospital-id", "H001"), ("x-dev-terminal-id", "T01"))
    with pytest.raises(errors.Unauthenticated):
        identify(claimed, dev_mode=False)
    assert identify(claimed, dev_mode=True) == Caller("H001", "T01", "D0042")


def test_a_certificate_without_a_terminal_uri_is_permission_denied(test_pki: PkiFiles) -> None:
    server_certificate = test_pki.tls.cert_file.read_bytes()
    assert terminal_of_certificate(server_certificate) is None
    with pytest.raises(errors.PermissionDenied):
        identify(context(server_certificate, ("operator-id", "D0042")), dev_mode=False)


def test_an_operator_sent_twice_is_refused(test_pki: PkiFiles) -> None:
    twice = context(test_pki.terminal.certificate_pem, ("operator-id", "D0042"), ("operator-id", "D0043"))
    with pytest.raises(errors.Unauthenticated, match="malformed"):
        identify(twice, dev_mode=False)


def test_check_hospital_refuses_another_hospital_and_a_missing_one() -> None:
    caller = Caller("H001", "T01", "D0042")
    check_hospital(caller, "H001")
    with pytest.raises(errors.OtherHospital) as other:
        check_hospital(caller, "H002")
    assert other.value.metadata == {"field": "hospital_id", "hospital_id": "H002"}
    with pytest.raises(errors.InvalidField):
        check_hospital(caller, "")


def test_terminal_uris_name_exactly_one_hospital_and_terminal() -> None:
    assert pki.TERMINAL_URI.fullmatch("clinic-settlement://hospital/H001/terminal/T01")
    for bad in ("clinic-settlement://hospital/H001/terminal/T01/x", "https://hospital/H001/terminal/T01",
                "clinic-settlement://hospital//terminal/T01"):
        assert pki.TERMINAL_URI.fullmatch(bad) is None


@pytest.mark.parametrize("error_class", errors.error_classes(), ids=lambda cls: cls.__name__)
def test_every_refusal_maps_to_a_real_code_and_one_error_info(error_class: type[errors.SettlementError]) -> None:
    error = error_class.__new__(error_class)
    errors.SettlementError.__init__(error, "what to do", metadata={"field": "x"})
    status = rich_status(error)
    assert status.code is getattr(grpc.StatusCode, error_class.status)
    [(key, value)] = status.trailing_metadata
    assert key == "grpc-status-details-bin"
    decoded = status_pb2.Status.FromString(value)
    infos = [d for d in decoded.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (error_class.reason, errors.ERROR_DOMAIN, {"field": "x"})


def test_the_log_format_masks_identifiers_even_in_tracebacks() -> None:
    assert scrub(f"person {CITIZEN_ID} card {CARD_NUMBER} request 3f1c2a9e-7b4d") == (
        f"person {'*' * 14}{CITIZEN_ID[-4:]} card {'*' * 15}{CARD_NUMBER[-4:]} request 3f1c2a9e-7b4d"
    )
    assert scrub("amount_fen=123456789012 port=50051") == "amount_fen=123456789012 port=50051"
    stream = io.StringIO()
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    try:
        configure_logging(stream=stream)
        try:
            raise errors.InvariantViolated(f"balance of {CITIZEN_ID} went negative")
        except errors.InvariantViolated:
            logging.getLogger("settlement.test").exception("bug")
    finally:
        root.handlers[:], root.level = saved[0], saved[1]
    written = stream.getvalue()
    assert CITIZEN_ID not in written
    assert CITIZEN_ID[-4:] in written
    assert written.count("\n") == 1  # one line, the traceback folded into it
