"""The engine port: the only thing an adapter knows about the settlement engine.

Owns: the canonical request an adapter hands to the engine (``CanonicalSettleRequest`` and its
``CanonicalLine``), the two answers it can get back (``Settled``/``Quoted`` or a ``Refusal``), the
deterministic ``request_id`` derivation that makes HIS retries idempotent, and the ``EnginePort`` base
class. The real implementation (a gRPC client) lives with the service; ``FakeEngine`` in ``fake`` is for
tests. Must never import gRPC, a database or a transport: adapters stay testable without the service.
"""

from __future__ import annotations

import re
import uuid
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date
from enum import StrEnum

from settlement import limits
from settlement.errors import InvariantViolated

# Fixed forever: changing it would give every HIS retry a new request_id, i.e. a second settlement.
REQUEST_ID_NAMESPACE = uuid.UUID("6f1d3c0e-9a57-5b7e-8c1f-2d4b6a8e0c31")

_DECIMAL_TEXT = re.compile(r"[0-9]+(?:\.([0-9]+))?")
_REASON = re.compile(r"[A-Z][A-Z0-9_]*")


def derive_request_id(hospital_id: str, source_kind: str, source_id: str) -> str:
    """The idempotency key for one HIS submission: same hospital, channel and source id, same UUID.

    ``source_id`` is what the HIS itself repeats on a retry: the HL7 sending application, facility and
    message control id; the FHIR Claim identifier; the charge file's visit id.
    """
    name = "\x1f".join((hospital_id, source_kind, source_id))
    return str(uuid.uuid5(REQUEST_ID_NAMESPACE, name))


class VisitType(StrEnum):
    """Visit type as the policy sees it (national ``med_type`` 11 普通门诊, 13 急诊 ...)."""

    OUTPATIENT = "OUTPATIENT"
    EMERGENCY = "EMERGENCY"


def _check_decimal_text(text: str, *, places: int, what: str) -> None:
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None or len(match.group(1) or "") > places:
        raise InvariantViolated(f"canonical {what} {text!r} is not a plain decimal with <= {places} places")


@dataclass(frozen=True, slots=True)
class CanonicalLine:
    """One charge line in catalogue terms. Decimal strings at the spec's scales; money in fen."""

    catalogue_code: str
    hospital_line_id: str
    quantity: str  # N16,4, in the catalogue unit
    unit_price_yuan: str  # N16,6, per catalogue unit
    amount_fen: int | None = None  # the HIS's own line amount, when it sent one

    def __post_init__(self) -> None:
        # Built by the code mapping, never by a caller: a bad value here is a bug, not a refusal.
        _check_decimal_text(self.quantity, places=limits.QUANTITY_DECIMAL_PLACES, what="quantity")
        _check_decimal_text(self.unit_price_yuan, places=limits.UNIT_PRICE_DECIMAL_PLACES, what="unit price")
        if self.amount_fen is not None and self.amount_fen < 0:
            raise InvariantViolated(f"canonical amount_fen {self.amount_fen} is negative")


@dataclass(frozen=True, slots=True)
class CanonicalSettleRequest:
    """One visit's charge, ready for quote (2206) or settle (2207)."""

    hospital_id: str
    request_id: str  # a UUID from derive_request_id: the same HIS retry gives the same id
    person_number: str
    visit_date: date
    visit_type: VisitType
    use_account: bool
    lines: tuple[CanonicalLine, ...]


@dataclass(frozen=True, slots=True)
class Split:
    """The split of one settlement, in fen, with the national ``setlinfo`` names in comments.

    The identities of domain.md §2 are checked on construction: a split that breaks them is an engine
    bug, and an adapter must crash rather than tell a hospital a wrong figure.
    """

    total_fen: int  # medfee_sumamt
    fully_self_paid_fen: int  # fulamt_ownpay_amt
    over_ceiling_fen: int  # overlmt_selfpay
    pre_self_paid_fen: int  # preselfpay_amt
    in_scope_fen: int  # inscp_scp_amt
    deductible_paid_fen: int  # act_pay_dedc
    fund_paid_fen: int  # fund_pay_sumamt
    account_paid_fen: int  # acct_pay
    cash_fen: int  # psn_cash_pay
    balance_after_fen: int  # balc

    def __post_init__(self) -> None:
        for name in self.__slots__:
            if getattr(self, name) < 0:
                raise InvariantViolated(f"split field {name} is negative: {getattr(self, name)}")
        parts = self.fully_self_paid_fen + self.over_ceiling_fen + self.pre_self_paid_fen + self.in_scope_fen
        if parts != self.total_fen:
            raise InvariantViolated(f"split parts {parts} != total {self.total_fen}")
        if self.fund_paid_fen + self.account_paid_fen + self.cash_fen != self.total_fen:
            raise InvariantViolated("split fund + account + cash != total")
        if self.deductible_paid_fen > self.in_scope_fen:
            raise InvariantViolated("split deductible paid exceeds the in-scope amount")

    @property
    def personal_part_fen(self) -> int:  # psn_part_amt
        return self.total_fen - self.fund_paid_fen


@dataclass(frozen=True, slots=True)
class Settled:
    """A committed settlement."""

    settlement_id: str
    split: Split


@dataclass(frozen=True, slots=True)
class Quoted:
    """A quote: the split the patient would get; nothing was written."""

    split: Split


@dataclass(frozen=True, slots=True)
class Refusal:
    """The engine said no. ``reason`` is a stable UPPER_SNAKE code from ``settlement.errors``.

    ``field`` names the offending request field when there is one, e.g. ``lines[2].catalogue_code``.
    """

    reason: str
    message: str
    field: str = ""

    def __post_init__(self) -> None:
        if _REASON.fullmatch(self.reason) is None:
            raise InvariantViolated(f"refusal reason {self.reason!r} is not UPPER_SNAKE")


SettleOutcome = Settled | Refusal
QuoteOutcome = Quoted | Refusal


class EnginePort(ABC):
    """What an adapter may ask of the engine. Implementations must be safe to call from many threads.

    ``settle`` is idempotent on ``request.request_id``: a retry returns the first answer, even a
    refusal; the same id with a different body is refused with ``REQUEST_ID_REUSED``. A transport
    failure (engine unreachable, deadline) is raised as an exception, never returned as a refusal: the
    adapter then answers "try again with the same message" and nothing is claimed either way.
    """

    @abstractmethod
    def quote(self, request: CanonicalSettleRequest) -> QuoteOutcome:
        """Pre-settlement (2206): the split, nothing written."""

    @abstractmethod
    def settle(self, request: CanonicalSettleRequest) -> SettleOutcome:
        """Settlement (2207): commit the split atomically, or refuse."""


class EngineUnavailable(Exception):
    """The engine could not be reached or did not answer in time; the outcome is unknown."""
