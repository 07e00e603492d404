"""The terminal's side of the wire: who it is, the channel, the requests it builds, and what an error means.

Owns three decisions. Identity: under mTLS the hospital and terminal come from the terminal's own
certificate (the same URI SAN the server reads), in dev mode from flags sent as ``x-dev-*`` metadata.
Requests: a quote and its settle carry the same visit fields and lines, so the settled amount is the
quoted one the card signed. Answers: an error is a *definitive* refusal only when the engine itself
refused the request's content or state (its ErrorInfo, and INVALID_ARGUMENT, NOT_FOUND,
FAILED_PRECONDITION or OUT_OF_RANGE); anything else (UNAVAILABLE, a deadline, a proxy's error, a
certificate or permission problem) leaves the outcome unknown, and the journal entry stays open.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import grpc

from cardio.limits import TERMINAL_ID_MAX_BYTES
from settlement.api.gen.clinic.settlement.v1 import charge_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.errors import ERROR_DOMAIN
from settlement.limits import QUOTE_VALIDITY_SECONDS
from settlement.server.identity import (
    DEV_HOSPITAL_METADATA,
    DEV_TERMINAL_METADATA,
    OPERATOR_METADATA,
    terminal_of_certificate,
)
from settlement.server.status import error_info_of, localized_message_of
from settlement.service.clock import MICROSECONDS_PER_SECOND, business_date
from settlement.terminal.charges import VisitCharges

_VISIT_TYPES = {
    "outpatient": charge_pb2.VISIT_TYPE_OUTPATIENT,
    "emergency": charge_pb2.VISIT_TYPE_EMERGENCY,
    "chronic": charge_pb2.VISIT_TYPE_CHRONIC,
}
_DEFINITIVE = frozenset(
    {
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.OUT_OF_RANGE,
    }
)
CHANNEL_OPTIONS: Sequence[tuple[str, int]] = (
    # The terminal's own loop (same request_id, journaled) is the only retry; no hidden ones underneath.
    ("grpc.enable_retries", 0),
    # A settle reply with 500 lines is ~150 KB; 4 MB is the gRPC default, stated so it is a decision.
    ("grpc.max_receive_message_length", 4 * 1024 * 1024),
)


class IdentityError(Exception):
    """The terminal cannot tell who it is, or its id cannot be signed by a card."""


@dataclass(frozen=True)
class Identity:
    hospital_id: str
    terminal_id: str
    operator_id: str
    dev_mode: bool

    def metadata(self) -> tuple[tuple[str, str], ...]:
        sent: tuple[tuple[str, str], ...] = ((OPERATOR_METADATA, self.operator_id),)
        if self.dev_mode:
            sent += ((DEV_HOSPITAL_METADATA, self.hospital_id), (DEV_TERMINAL_METADATA, self.terminal_id))
        return sent


def check_terminal_id(terminal_id: str) -> None:
    """The card signs the terminal id: 1-16 printable ASCII characters (docs/card.md)."""
    if not terminal_id or len(terminal_id) > TERMINAL_ID_MAX_BYTES or not all(" " <= c <= "~" for c in terminal_id):
        raise IdentityError(
            f"terminal id {terminal_id!r}: a card can sign only 1 to {TERMINAL_ID_MAX_BYTES} printable ASCII "
            "characters; issue this desk a certificate with a shorter terminal id"
        )


def identity_from_certificate(certificate_pem: bytes, operator_id: str) -> Identity:
    terminal = terminal_of_certificate(certificate_pem)
    if terminal is None:
        raise IdentityError(
            "the certificate names no terminal (URI SAN clinic-settlement://hospital/<H>/terminal/<T>); "
            "issue one with `settlement pki issue-terminal`"
        )
    check_terminal_id(terminal.terminal_id)
    return Identity(terminal.hospital_id, terminal.terminal_id, operator_id, dev_mode=False)


def secure_channel(target: str, *, ca: Path, cert: Path, key: Path) -> grpc.Channel:
    credentials = grpc.ssl_channel_credentials(
        root_certificates=ca.read_bytes(), private_key=key.read_bytes(), certificate_chain=cert.read_bytes()
    )
    return grpc.secure_channel(target, credentials, options=list(CHANNEL_OPTIONS))


def dev_channel(target: str) -> grpc.Channel:
    return grpc.insecure_channel(target, options=list(CHANNEL_OPTIONS))


@dataclass(frozen=True)
class Answer:
    """What a failed call means for the money: ``definitive`` only when the engine refused the request."""

    code: str
    reason: str
    message: str
    message_zh: str
    definitive: bool


def answer_of(error: grpc.RpcError) -> Answer:
    code_of = getattr(error, "code", None)
    code = code_of() if callable(code_of) else grpc.StatusCode.UNKNOWN
    details_of = getattr(error, "details", None)
    message = str(details_of() or "") if callable(details_of) else ""
    info = error_info_of(error)
    ours = info is not None and info.domain == ERROR_DOMAIN
    return Answer(
        code=code.name,
        reason=str(info.reason) if info is not None else code.name,
        message=message,
        message_zh=localized_message_of(error) or "",
        definitive=ours and code in _DEFINITIVE,
    )


def visit_fields(
    charges: VisitCharges, *, hospital_id: str, person_number: str, card_number: str, today: dt.date
) -> dict[str, object]:
    """The fields a quote and its settle share, so both price exactly the same visit."""
    return {
        "hospital_id": hospital_id,
        "person_number": person_number,
        "card_number": card_number,
        "visit_type": _VISIT_TYPES[charges.visit_type],
        "visit_date": (charges.visit_date or today).isoformat(),
        "use_account": charge_pb2.ACCOUNT_USE_PAY if charges.use_account else charge_pb2.ACCOUNT_USE_DECLINED,
        "lines": [
            charge_pb2.ChargeLine(
                hospital_line_id=line.hospital_line_id,
                item_code=line.item_code,
                quantity=line.quantity,
                unit_price_yuan=line.unit_price_yuan,
                amount_fen=line.amount_fen,
            )
            for line in charges.lines
        ],
    }


def quote_request(fields: dict[str, object]) -> pb.QuoteRequest:
    return pb.QuoteRequest(**fields)  # type: ignore[arg-type]


def settle_request(fields: dict[str, object], request_id: str, proof: charge_pb2.CardProof) -> pb.SettleRequest:
    return pb.SettleRequest(request_id=request_id, card_proof=proof, **fields)  # type: ignore[arg-type]


def signed_date(quote: pb.QuoteResponse) -> dt.date:
    """The day the card must sign: the CST day the engine issued the quote (it checks exactly that).

    The quote carries its expiry, issued + QUOTE_VALIDITY_SECONDS, so the issue instant follows from it;
    the desk's own clock, which may be off, plays no part.
    """
    issued_us = quote.expire_time.ToMicroseconds() - QUOTE_VALIDITY_SECONDS * MICROSECONDS_PER_SECOND
    return business_date(issued_us)
