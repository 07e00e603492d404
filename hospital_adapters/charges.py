"""A visit's charge as the HIS described it, before any code mapping.

Owns: the HIS-side charge line (``HisLine``) and visit (``HisVisit``), line-level problems (``Problem``),
the rejected answer that lists every one of them (``Rejected``), and strict parsing of HIS numbers.
Must never parse a wire format (each transport does) nor know about catalogue codes (``mapping`` does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date
from decimal import Decimal

from hospital_adapters.port import Settled, VisitType, derive_request_id
from settlement import limits

_SIGNED_DECIMAL = re.compile(r"-?[0-9]{1,18}(?:\.[0-9]{1,12})?")


@dataclass(frozen=True, slots=True)
class Problem:
    """One reason a submission was not settled; ``line_id`` names the hospital's line when it is one."""

    reason: str
    message: str
    line_id: str | None = None
    field: str = ""


@dataclass(frozen=True, slots=True)
class Rejected:
    """Nothing was settled; every problem found is listed, in line order."""

    problems: tuple[Problem, ...]

    @property
    def reason(self) -> str:
        return self.problems[0].reason


VisitResult = Settled | Rejected


class SubmissionRefused(Exception):
    """Raised by a transport's parser when the submission as a whole cannot be read."""

    def __init__(self, *problems: Problem) -> None:
        super().__init__("; ".join(p.message for p in problems))
        self.problems = problems


@dataclass(frozen=True, slots=True)
class HisLine:
    """One charge line in the hospital's own codes and units."""

    line_id: str  # FT1-2 transaction id, Claim item sequence, file line id
    hospital_code: str
    hospital_unit: str | None  # None when the HIS does not say; the code table must then be unambiguous
    quantity: Decimal  # > 0, in the hospital unit
    unit_price_yuan: Decimal  # >= 0, per hospital unit
    amount_fen: int | None = None
    credit: bool = False  # HL7 CD: reduces a charge line of this submission


@dataclass(frozen=True, slots=True)
class HisVisit:
    """One submission: a visit's lines, plus what identifies it for idempotency."""

    hospital_id: str
    source_kind: str  # "hl7", "fhir", "files": part of the request_id
    source_id: str  # what the HIS repeats on a retry (message control id, claim id, visit id)
    person_number: str
    visit_date: date
    visit_type: VisitType
    use_account: bool
    lines: tuple[HisLine, ...]
    problems: tuple[Problem, ...] = ()  # lines the transport could not even read

    @property
    def request_id(self) -> str:
        return derive_request_id(self.hospital_id, self.source_kind, self.source_id)


def parse_decimal(text: str, *, what: str, line_id: str | None = None) -> Decimal:
    """A plain decimal such as ``12.50`` or ``-3``: no exponent, no spaces, no NaN; bounded length."""
    if _SIGNED_DECIMAL.fullmatch(text) is None:
        raise SubmissionRefused(
            Problem("DECIMAL_FORMAT", f"{what} must be a plain decimal such as 12.50, got {text[:40]!r}",
                    line_id, what)
        )
    return Decimal(text)


def yuan_to_fen(amount: Decimal, *, what: str, line_id: str | None = None) -> int:
    """An amount in yuan with at most two decimals, as fen."""
    fen = amount * 100
    if fen != fen.to_integral_value() or fen < 0 or fen > limits.MAX_LINE_AMOUNT_FEN:
        raise SubmissionRefused(
            Problem("INVALID_AMOUNT", f"{what} must be between 0 and 100,000,000.00 yuan with at most "
                    f"2 decimals, got {amount}", line_id, what)
        )
    return int(fen)
