"""What every report shares: yuan formatting, discrepancy rows, and neutralising hostile text.

Owns: fen → yuan conversion for display (exact, through ``Decimal``), the discrepancy columns every
report uses, and the guard that keeps ids from a counterpart's file from being run as spreadsheet
formulas. Must never do float arithmetic on fen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal

from settlement.reconciliation.matching import Discrepancy, DiscrepancyKind
from settlement.reconciliation.records import SettlementStatus

# The national field names hospital IT knows, next to ours, so a report reads in both vocabularies.
FIELD_LABELS = {
    "total_fen": "total (medfee_sumamt)",
    "fund_paid_fen": "fund paid (fund_pay_sumamt)",
    "account_paid_fen": "account paid (acct_pay)",
    "cash_fen": "cash (psn_cash_pay)",
    "status": "status (refd_setl_flag)",
}
KIND_ORDER = {kind: index for index, kind in enumerate(DiscrepancyKind)}
DISCREPANCY_COLUMNS = (
    "kind",
    "counterpart",
    "settlement_id",
    "request_id",
    "visit_id",
    "clearing_agency",
    "field",
    "ours",
    "theirs",
    "difference",
    "side",
    "occurrences",
    "their_lines",
)
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_SAFE_FILE_NAME = re.compile(r"[^A-Za-z0-9_.-]+")


def yuan(amount_fen: int) -> Decimal:
    """Exactly ``amount_fen / 100`` as a Decimal with two places (what a workbook cell stores)."""
    return Decimal(amount_fen).scaleb(-2)


def yuan_text(amount_fen: int, *, grouped: bool = False) -> str:
    """``1234567`` → ``12345.67`` (or ``12,345.67`` when grouped)."""
    return f"{yuan(amount_fen):,.2f}" if grouped else f"{yuan(amount_fen):.2f}"


def safe_text(value: str) -> str:
    """Text that a spreadsheet will show, not run: a leading ``= + - @`` from someone's file is quoted."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def file_stem(text: str) -> str:
    return _SAFE_FILE_NAME.sub("_", text).strip("._") or "hospital"


def sorted_discrepancies(found: Iterable[Discrepancy]) -> list[Discrepancy]:
    return sorted(
        found, key=lambda item: (item.counterpart.value, KIND_ORDER[item.kind], item.settlement_id, item.field)
    )


@dataclass(frozen=True, slots=True)
class DiscrepancyRow:
    """One discrepancy in report form: text columns plus the amounts in fen (``None`` when not amounts)."""

    texts: dict[str, str]
    ours_fen: int | None
    theirs_fen: int | None
    difference_fen: int | None


def _status_text(status: SettlementStatus | None) -> str:
    return status.value if status is not None else ""


def discrepancy_row(found: Discrepancy) -> DiscrepancyRow:
    if found.kind is DiscrepancyKind.STATUS_DIFFERS:
        ours, theirs = _status_text(found.ours_status), _status_text(found.theirs_status)
    else:
        ours = yuan_text(found.ours_fen) if found.ours_fen is not None else ""
        theirs = yuan_text(found.theirs_fen) if found.theirs_fen is not None else ""
    difference = found.difference_fen
    texts = {
        "kind": found.kind.value,
        "counterpart": found.counterpart.value,
        "settlement_id": found.settlement_id,
        "request_id": found.request_id,
        "visit_id": found.visit_id,
        "clearing_agency": found.clearing_agency,
        "field": FIELD_LABELS.get(found.field, found.field),
        "ours": ours,
        "theirs": theirs,
        "difference": yuan_text(difference) if difference is not None else "",
        "side": found.side.value if found.side is not None else "",
        "occurrences": str(found.occurrences) if found.kind is DiscrepancyKind.DUPLICATE else "",
        "their_lines": " ".join(str(line) for line in found.their_lines),
    }
    return DiscrepancyRow(texts, found.ours_fen, found.theirs_fen, difference)
