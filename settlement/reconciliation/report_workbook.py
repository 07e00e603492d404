"""The Excel workbook: a summary sheet, a discrepancy sheet and one sheet per payer.

Owns: the workbook layout. Amounts are numbers (fen / 100, converted exactly through ``Decimal``) with
the format ``#,##0.00``, so finance can sum and filter them; text from a counterpart's file is stored as
text, never as a formula. Uses openpyxl's write-only mode: a day of 100,000 settlements streams to disk
instead of building every cell in memory. Must never do float arithmetic on fen.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from settlement.reconciliation.matching import DayReconciliation, DiscrepancyKind
from settlement.reconciliation.records import LedgerRecord, SettlementStatus, Totals, TotalsKey, grand_total
from settlement.reconciliation.report_common import (
    DISCREPANCY_COLUMNS,
    discrepancy_row,
    sorted_discrepancies,
    yuan,
)

AMOUNT_FORMAT = "#,##0.00"
SUMMARY_SHEET = "Summary"
DISCREPANCY_SHEET = "Discrepancies"
TOTALS_HEADER = (
    "clearing_agency",
    "insured_type",
    "clearing_type",
    "count",
    "total",
    "fund_paid",
    "account_paid",
    "cash",
)
PAYER_HEADER = (
    "settlement_id",
    "request_id",
    "visit_id",
    "person_number",
    "insured_type",
    "clearing_type",
    "status",
    "total",
    "fund_paid",
    "account_paid",
    "cash",
)
TOTAL_ROW_LABEL = "TOTAL (settled)"
_SHEET_NAME_FORBIDDEN = re.compile(r"[\[\]:*?/\\]")
_MAX_SHEET_NAME_CHARS = 31  # Excel's limit
_SPREADSHEET_ERRORS = frozenset({"#NULL!", "#DIV/0!", "#VALUE!", "#REF!", "#NAME?", "#NUM!", "#N/A"})

Value = str | int | None


def write_workbook(day: DayReconciliation, path: Path) -> Path:
    """Write the day's workbook to ``path`` (beside, then renamed, so no half-written file is seen)."""
    workbook = Workbook(write_only=True)
    _summary_sheet(workbook.create_sheet(SUMMARY_SHEET), day)
    _discrepancy_sheet(workbook.create_sheet(DISCREPANCY_SHEET), day)
    by_payer: dict[str, list[LedgerRecord]] = {}
    for record in day.records:
        by_payer.setdefault(record.clearing_agency, []).append(record)
    used_names = {SUMMARY_SHEET, DISCREPANCY_SHEET}
    for payer in sorted(by_payer):
        name = payer_sheet_name(payer, used_names)
        used_names.add(name)
        _payer_sheet(workbook.create_sheet(name), payer, by_payer[payer])
    partial = path.with_name(path.name + ".partial")
    workbook.save(partial)
    partial.replace(path)
    return path


def payer_sheet_name(payer: str, used: set[str]) -> str:
    """A valid, unique sheet name for a payer: Excel forbids ``[]:*?/\\`` and more than 31 characters."""
    base = _SHEET_NAME_FORBIDDEN.sub("_", f"Payer {payer}")[:_MAX_SHEET_NAME_CHARS].strip("'") or "Payer"
    name, number = base, 1
    while name in used:
        number += 1
        suffix = f" ({number})"
        name = base[: _MAX_SHEET_NAME_CHARS - len(suffix)] + suffix
    return name


def _text(sheet: WriteOnlyWorksheet, value: str) -> WriteOnlyCell | str:
    # openpyxl turns "=…" into a formula and "#N/A" into an error: ids from a file must stay text.
    if (len(value) > 1 and value.startswith("=")) or value in _SPREADSHEET_ERRORS:
        cell = WriteOnlyCell(sheet, value=value)
        cell.data_type = "s"
        return cell
    return value


def _amount(sheet: WriteOnlyWorksheet, amount_fen: int) -> WriteOnlyCell:
    cell = WriteOnlyCell(sheet, value=yuan(amount_fen))
    cell.number_format = AMOUNT_FORMAT
    return cell


def _totals_cells(sheet: WriteOnlyWorksheet, totals: Totals) -> list[object]:
    return [
        totals.count,
        _amount(sheet, totals.total_fen),
        _amount(sheet, totals.fund_paid_fen),
        _amount(sheet, totals.account_paid_fen),
        _amount(sheet, totals.cash_fen),
    ]


def _key_cells(sheet: WriteOnlyWorksheet, key: TotalsKey) -> list[object]:
    return [_text(sheet, key.clearing_agency), _text(sheet, key.insured_type), _text(sheet, key.clearing_type)]


def _totals_table(sheet: WriteOnlyWorksheet, totals: dict[TotalsKey, Totals], label: str) -> None:
    sheet.append([label])
    sheet.append(list(TOTALS_HEADER))
    for key, value in totals.items():
        sheet.append(_key_cells(sheet, key) + _totals_cells(sheet, value))
    sheet.append(["TOTAL", "", "", *_totals_cells(sheet, grand_total(totals))])
    sheet.append([])


def _summary_sheet(sheet: WriteOnlyWorksheet, day: DayReconciliation) -> None:
    sheet.append(["hospital", _text(sheet, day.hospital_id)])
    sheet.append(["business_date", day.business_date.isoformat()])
    sheet.append(["balanced", "yes" if day.balanced else "no"])
    sheet.append([])
    _totals_table(sheet, dict(day.our_totals), "Our ledger (3201 keys, settled settlements)")
    for part in day.counterparts:
        sheet.append([_text(sheet, f"Totals against {part.counterpart.value} ({part.file_name})")])
        sheet.append(
            [*TOTALS_HEADER[:3], *(f"ours_{name}" for name in TOTALS_HEADER[3:])]
            + [f"theirs_{name}" for name in TOTALS_HEADER[3:]]
            + ["balanced"]
        )
        for line in part.totals:
            sheet.append(
                _key_cells(sheet, line.key)
                + _totals_cells(sheet, line.ours)
                + _totals_cells(sheet, line.theirs)
                + ["yes" if line.balanced else "no"]
            )
        sheet.append([])
    sheet.append(["Discrepancies by kind", *(part.counterpart.value for part in day.counterparts)])
    for kind in DiscrepancyKind:
        counts: list[Value] = [
            sum(1 for found in part.discrepancies if found.kind is kind) for part in day.counterparts
        ]
        sheet.append([kind.value, *counts])


def _discrepancy_sheet(sheet: WriteOnlyWorksheet, day: DayReconciliation) -> None:
    sheet.append(list(DISCREPANCY_COLUMNS))
    for found in sorted_discrepancies(day.discrepancies):
        row = discrepancy_row(found)
        cells: list[object] = []
        for name in DISCREPANCY_COLUMNS:
            amount_fen = {"ours": row.ours_fen, "theirs": row.theirs_fen, "difference": row.difference_fen}.get(name)
            cells.append(_amount(sheet, amount_fen) if amount_fen is not None else _text(sheet, row.texts[name]))
        sheet.append(cells)


def _payer_sheet(sheet: WriteOnlyWorksheet, payer: str, records: Sequence[LedgerRecord]) -> None:
    sheet.append(["clearing_agency", _text(sheet, payer)])
    sheet.append(list(PAYER_HEADER))
    count = total = fund = account = cash = 0
    for record in records:
        sheet.append(_record_cells(sheet, record))
        if record.status is SettlementStatus.SETTLED:
            count += 1
            total += record.total_fen
            fund += record.fund_paid_fen
            account += record.account_paid_fen
            cash += record.cash_fen
    settled = Totals(count, total, fund, account, cash)
    # The count sits under request_id and the sums under their own columns, so a reader sees both.
    sheet.append([TOTAL_ROW_LABEL, settled.count, "", "", "", "", "", *_totals_cells(sheet, settled)[1:]])


def _record_cells(sheet: WriteOnlyWorksheet, record: LedgerRecord) -> Iterable[object]:
    return (
        _text(sheet, record.settlement_id),
        _text(sheet, record.request_id),
        _text(sheet, record.visit_id),
        record.person_number_masked,
        record.insured_type,
        record.clearing_type,
        record.status.value,
        _amount(sheet, record.total_fen),
        _amount(sheet, record.fund_paid_fen),
        _amount(sheet, record.account_paid_fen),
        _amount(sheet, record.cash_fen),
    )
