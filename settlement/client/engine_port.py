"""The engine port over gRPC: how a hospital adapter reaches the real settlement server.

Owns: translating a ``CanonicalSettleRequest`` into a ``SettleRequest`` / ``QuoteRequest`` and the replies
back into ``Settled`` / ``Quoted``; telling an engine refusal (a status carrying the engine's
``ErrorInfo``) from a transport failure (everything else, and UNAVAILABLE, DEADLINE_EXCEEDED,
RESOURCE_EXHAUSTED) that is raised as ``EngineUnavailable``; the per-call deadline and the bounded
retries of transport failures with the same ``request_id``; the call metadata (``operator-id``, and the
``x-dev-*`` identity in dev mode); and opening the channel (mTLS with the terminal's certificate, or
plaintext in dev mode).

Must never return a refusal for an answer it did not get: when the outcome is unknown the adapter must
tell the HIS to resend the same message, never that nothing was settled. Must never hand an adapter a
reply that is not the settlement it asked for (other request id, hospital or person, or not SETTLED):
that is a broken invariant and raises ``InvariantViolated``.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar, cast

import grpc
from google.protobuf.message import DecodeError, Message

from hospital_adapters.port import (
    CanonicalSettleRequest,
    EnginePort,
    EngineUnavailable,
    Quoted,
    QuoteOutcome,
    Refusal,
    Settled,
    SettleOutcome,
    Split,
    VisitType,
)
from settlement.api.gen.clinic.settlement.v1 import charge_pb2, settlement_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2_grpc as pb_grpc
from settlement.errors import ERROR_DOMAIN, InvariantViolated, Unavailable, error_classes
from settlement.server.identity import DEV_HOSPITAL_METADATA, DEV_TERMINAL_METADATA, OPERATOR_METADATA
from settlement.server.status import error_info_of

# ---- limits of one call (units in the names) --------------------------------------------------------
DEFAULT_CALL_TIMEOUT_MS = 10_000  # the whole budget of one quote or settle, retries included
MAX_CALL_TIMEOUT_MS = 120_000  # an HIS gives up long before this; a longer wait only ties up its connection
MAX_ATTEMPTS = 3  # transport failures retried with the same request_id, within the budget
FIRST_RETRY_BACKOFF_MS = 200  # doubled before each further attempt
CLIENT_KEEPALIVE_TIME_MS = 60_000  # above the server's 10 s minimum ping interval, so never a strike
CLIENT_KEEPALIVE_TIMEOUT_MS = 20_000
MAX_RECONNECT_BACKOFF_MS = 5_000  # a restarted engine is found again within seconds
MAX_REPLY_BYTES = 4 * 1024 * 1024  # a settle reply with 500 lines is ~150 KB

# Failures after which nothing is known about the outcome, or nothing was done: resend the same id.
_RETRYABLE_CODES = frozenset({grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.RESOURCE_EXHAUSTED})
_UNKNOWN_OUTCOME_CODES = frozenset({grpc.StatusCode.DEADLINE_EXCEEDED, grpc.StatusCode.CANCELLED})
_UNAVAILABLE_REASONS = frozenset(cls.reason for cls in error_classes() if issubclass(cls, Unavailable))

_VISIT_TYPES = {
    VisitType.OUTPATIENT: charge_pb2.VISIT_TYPE_OUTPATIENT,
    VisitType.EMERGENCY: charge_pb2.VISIT_TYPE_EMERGENCY,
}
# The engine names proto fields; the port's refusals name the canonical request's (see port.Refusal).
_LINE_FIELD = re.compile(r"lines\[(?P<index>[0-9]+)\]\.(?P<name>[a-z_]+)")
_CANONICAL_LINE_FIELDS = {"item_code": "catalogue_code", "line_id": "hospital_line_id"}
_REQUEST_FIELDS = frozenset(pb.SettleRequest.DESCRIPTOR.fields_by_name)

_Request = TypeVar("_Request", bound=Message)
_Reply = TypeVar("_Reply", bound=Message)
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ClientTls:
    """The terminal's certificate and key (``settlement pki issue-terminal``) and the CA of the server's."""

    ca_file: Path
    cert_file: Path
    key_file: Path
    server_name: str = ""  # the name in the server certificate, when the target is an address it lacks


@dataclass(frozen=True)
class DevIdentity:
    """Dev mode only: the hospital and terminal the plaintext caller claims (``x-dev-*`` metadata)."""

    hospital_id: str
    terminal_id: str


def channel_options(server_name: str = "") -> list[tuple[str, int | str]]:
    options: list[tuple[str, int | str]] = [
        # A reply larger than any legal settle is a fault, not something to buffer.
        ("grpc.max_receive_message_length", MAX_REPLY_BYTES),
        # Keep the connection to the engine warm between patients and notice a dead one; the server
        # permits pings without calls and this interval is well above its minimum.
        ("grpc.keepalive_time_ms", CLIENT_KEEPALIVE_TIME_MS),
        ("grpc.keepalive_timeout_ms", CLIENT_KEEPALIVE_TIMEOUT_MS),
        ("grpc.keepalive_permit_without_calls", 1),
        # After an engine restart, reconnect within seconds rather than gRPC's default two minutes.
        ("grpc.max_reconnect_backoff_ms", MAX_RECONNECT_BACKOFF_MS),
        # Transparent retries only resend a call that never reached the server; ours cover the rest.
        ("grpc.enable_retries", 1),
    ]
    if server_name:
        # The target is an address the server certificate does not name (e.g. an IP): check this name.
        options.append(("grpc.ssl_target_name_override", server_name))
    return options


def open_channel(target: str, *, tls: ClientTls | None) -> grpc.Channel:
    """A channel to the engine: mTLS with the terminal's certificate, or plaintext (dev mode) when None."""
    if tls is None:
        return grpc.insecure_channel(target, options=channel_options())
    try:
        ca, cert, key = (path.read_bytes() for path in (tls.ca_file, tls.cert_file, tls.key_file))
    except OSError as error:
        raise ValueError(f"cannot read TLS file {error.filename}: {error.strerror}") from None
    credentials = grpc.ssl_channel_credentials(root_certificates=ca, private_key=key, certificate_chain=cert)
    return grpc.secure_channel(target, credentials, options=channel_options(tls.server_name))


class GrpcEnginePort(EnginePort):
    """``EnginePort`` on the engine's gRPC API. Thread-safe: one channel, shared by every HIS connection."""

    def __init__(
        self,
        channel: grpc.Channel,
        *,
        operator_id: str,
        dev_identity: DevIdentity | None = None,
        timeout_ms: int = DEFAULT_CALL_TIMEOUT_MS,
        max_attempts: int = MAX_ATTEMPTS,
    ) -> None:
        if not 0 < timeout_ms <= MAX_CALL_TIMEOUT_MS:
            raise ValueError(f"timeout_ms must be between 1 and {MAX_CALL_TIMEOUT_MS}, got {timeout_ms}")
        if not 0 < max_attempts <= MAX_ATTEMPTS:
            raise ValueError(f"max_attempts must be between 1 and {MAX_ATTEMPTS}, got {max_attempts}")
        self._channel = channel
        self._stub = pb_grpc.SettlementServiceStub(channel)
        self._timeout_seconds = timeout_ms / 1000
        self._max_attempts = max_attempts
        metadata = [(OPERATOR_METADATA, operator_id)]
        if dev_identity is not None:
            metadata += [
                (DEV_HOSPITAL_METADATA, dev_identity.hospital_id),
                (DEV_TERMINAL_METADATA, dev_identity.terminal_id),
            ]
        self._metadata = tuple(metadata)
        self._closed = threading.Event()

    @classmethod
    def connect(
        cls,
        target: str,
        *,
        operator_id: str,
        tls: ClientTls | None = None,
        dev_identity: DevIdentity | None = None,
        timeout_ms: int = DEFAULT_CALL_TIMEOUT_MS,
    ) -> GrpcEnginePort:
        """A port on its own channel: exactly one of ``tls`` (production) and ``dev_identity`` (dev mode)."""
        if (tls is None) == (dev_identity is None):
            raise ValueError("give either the terminal's TLS files or a dev-mode identity, not both or neither")
        return cls(open_channel(target, tls=tls), operator_id=operator_id, dev_identity=dev_identity,
                   timeout_ms=timeout_ms)

    def close(self) -> None:
        if not self._closed.is_set():
            self._closed.set()
            self._channel.close()

    def __enter__(self) -> GrpcEnginePort:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    # ---- the port ------------------------------------------------------------------------------------

    def quote(self, request: CanonicalSettleRequest) -> QuoteOutcome:
        message = pb.QuoteRequest(**_visit_fields(request))
        reply = self._call(self._stub.Quote, message, request)
        if isinstance(reply, Refusal):
            return reply
        return Quoted(split_of(reply.split))

    def settle(self, request: CanonicalSettleRequest) -> SettleOutcome:
        message = pb.SettleRequest(request_id=request.request_id, **_visit_fields(request))
        reply = self._call(self._stub.Settle, message, request)
        if isinstance(reply, Refusal):
            return reply
        settlement = reply.settlement
        _check_is_the_settlement_asked_for(settlement, request)
        return Settled(settlement.settlement_id, split_of(settlement.split))

    # ---- one call, its deadline and its retries -------------------------------------------------------

    def _call(
        self,
        method: grpc.UnaryUnaryMultiCallable[_Request, _Reply],
        message: _Request,
        request: CanonicalSettleRequest,
    ) -> _Reply | Refusal:
        if self._closed.is_set():
            raise EngineUnavailable("the engine port is closed (the adapter is stopping)")
        deadline = time.monotonic() + self._timeout_seconds
        backoff_seconds = FIRST_RETRY_BACKOFF_MS / 1000
        failure = "no attempt was made"
        for attempt in range(1, self._max_attempts + 1):
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            try:
                reply = method(message, metadata=self._metadata, timeout=remaining)
            except grpc.RpcError as error:
                refusal = refusal_of(error)
                if refusal is not None:
                    return refusal
                code = _code(error)
                failure = f"{code.name}: {_details(error)}"
                _log.warning("engine call for request %s failed (attempt %d of %d): %s",
                             request.request_id, attempt, self._max_attempts, failure)
                if code in _UNKNOWN_OUTCOME_CODES or attempt == self._max_attempts:
                    break  # the budget is spent (each attempt gets what is left), or the channel closed
                time.sleep(max(0.0, min(backoff_seconds, deadline - time.monotonic())))
                backoff_seconds *= 2
                continue
            return reply
        raise EngineUnavailable(f"no answer from the engine for request {request.request_id}: {failure}")


def refusal_of(error: grpc.RpcError) -> Refusal | None:
    """The engine's refusal carried by a failed call; None when the call failed in transport.

    A refusal is a status with the engine's ``ErrorInfo`` (domain ``settlement.clinic``) that is not one
    of the "try again" statuses. Anything else (no ErrorInfo, another domain, UNAVAILABLE, a deadline)
    leaves the outcome unknown or says nothing was done, and the request is resent with the same id.
    """
    code = _code(error)
    if code in _RETRYABLE_CODES or code in _UNKNOWN_OUTCOME_CODES:
        return None
    try:
        info = error_info_of(error)
    except (ValueError, DecodeError):  # details that do not match the status: not the engine's answer
        return None
    if info is None or info.domain != ERROR_DOMAIN or info.reason in _UNAVAILABLE_REASONS:
        return None
    return Refusal(str(info.reason), _details(error) or str(info.reason), canonical_field(dict(info.metadata)))


def canonical_field(metadata: dict[str, str]) -> str:
    """The canonical request field a refusal points at: ``lines[2].item_code`` → ``lines[2].catalogue_code``.

    Without a ``field`` entry, a metadata key that is itself a request field names it (PERSON_NOT_FOUND
    carries ``person_number``), so the HIS is told where to look.
    """
    field = metadata.get("field", "")
    if not field:
        return next((key for key in sorted(metadata) if key in _REQUEST_FIELDS), "")
    match = _LINE_FIELD.fullmatch(field)
    if match is None:
        return field
    name = _CANONICAL_LINE_FIELDS.get(match["name"], match["name"])
    return f"lines[{match['index']}].{name}"


def _visit_fields(request: CanonicalSettleRequest) -> dict[str, Any]:
    """What QuoteRequest and SettleRequest share, field for field."""
    return {
        "hospital_id": request.hospital_id,
        "person_number": request.person_number,
        "visit_type": _VISIT_TYPES[request.visit_type],
        "visit_date": request.visit_date.isoformat(),
        "use_account": charge_pb2.ACCOUNT_USE_PAY if request.use_account else charge_pb2.ACCOUNT_USE_DECLINED,
        "lines": _lines(request),
    }


def split_of(split: settlement_pb2.Split) -> Split:
    """The port's split; its constructor checks the identities again on our side of the wire."""
    return Split(
        total_fen=split.total_fen,
        fully_self_paid_fen=split.fully_self_paid_fen,
        over_ceiling_fen=split.over_ceiling_fen,
        pre_self_paid_fen=split.pre_self_paid_fen,
        in_scope_fen=split.in_scope_fen,
        deductible_paid_fen=split.deductible_paid_fen,
        fund_paid_fen=split.fund_paid_fen,
        account_paid_fen=split.account_paid_fen,
        cash_fen=split.cash_fen,
        balance_after_fen=split.balance_after_fen,
    )


def _lines(request: CanonicalSettleRequest) -> list[charge_pb2.ChargeLine]:
    lines = []
    for line in request.lines:
        message = charge_pb2.ChargeLine(
            hospital_line_id=line.hospital_line_id,
            item_code=line.catalogue_code,
            quantity=line.quantity,
            unit_price_yuan=line.unit_price_yuan,
        )
        if line.amount_fen is not None:
            message.amount_fen = line.amount_fen
        lines.append(message)
    return lines


def _check_is_the_settlement_asked_for(settlement: settlement_pb2.Settlement, request: CanonicalSettleRequest) -> None:
    settled = settlement_pb2.SETTLEMENT_STATUS_SETTLED
    expected = (request.request_id, request.hospital_id, request.person_number, settled)
    found = (settlement.request_id, settlement.hospital_id, settlement.person_number, settlement.status)
    if found != expected or not settlement.settlement_id:
        raise InvariantViolated(
            f"the engine answered request {request.request_id} with settlement {settlement.settlement_id!r} "
            f"(request {settlement.request_id!r}, hospital {settlement.hospital_id!r}, status {settlement.status})"
        )
    if [line.hospital_line_id for line in settlement.split.lines] != [line.hospital_line_id for line in request.lines]:
        raise InvariantViolated(f"settlement {settlement.settlement_id} does not carry the lines of the request")


def _code(error: grpc.RpcError) -> grpc.StatusCode:
    code = cast(grpc.Call, error).code()
    return code if isinstance(code, grpc.StatusCode) else grpc.StatusCode.UNKNOWN


def _details(error: grpc.RpcError) -> str:
    details = cast(grpc.Call, error).details()
    return details if isinstance(details, str) else ""
