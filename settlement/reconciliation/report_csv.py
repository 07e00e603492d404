"""CSV reports: the day's discrepancies, and the month's days.

Owns: the CSV layout finance opens in Excel or WPS (UTF-8 with a BOM so Chinese shows correctly, amounts
as yuan with two decimals). Must never write a partial file under the final name (write beside, then
rename) and never let an id from someone's file start a formula.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

from settlement.reconciliation.matching import DayReconciliation
from settlement.reconciliation.month import MonthSummary
from settlement.reconciliation.report_common import (
    DISCREPANCY_COLUMNS,
    discrepancy_row,
    safe_text,
    sorted_discrepancies,
    yuan_text,
)

_ID_COLUMNS = frozenset({"settlement_id", "request_id", "visit_id", "clearing_agency"})
MONTH_COLUMNS = (
    "business_date",
    "count",
    "total",
    "fund_paid",
    "account_paid",
    "cash",
    "balanced",
    "discrepancies",
)


def discrepancies_csv(day: DayReconciliation) -> str:
    """The day's discrepancies as CSV text, one row each, sorted by counterpart, kind and settlement id."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(DISCREPANCY_COLUMNS)
    for found in sorted_discrepancies(day.discrepancies):
        texts = discrepancy_row(found).texts
        writer.writerow(safe_text(texts[name]) if name in _ID_COLUMNS else texts[name] for name in DISCREPANCY_COLUMNS)
    return out.getvalue()


def month_csv(month: MonthSummary) -> str:
    """One row per day of the month summary and a final TOTAL row."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(MONTH_COLUMNS)
    for day in month.days:
        total = day.day_total
        writer.writerow(
            [
                day.business_date.isoformat(),
                total.count,
                yuan_text(total.total_fen),
                yuan_text(total.fund_paid_fen),
                yuan_text(total.account_paid_fen),
                yuan_text(total.cash_fen),
                "yes" if day.balanced else "no",
                day.discrepancy_count,
            ]
        )
    total = month.month_total
    writer.writerow(
        [
            "TOTAL",
            total.count,
            yuan_text(total.total_fen),
            yuan_text(total.fund_paid_fen),
            yuan_text(total.account_paid_fen),
            yuan_text(total.cash_fen),
            "yes" if month.balanced else "no",
            sum(day.discrepancy_count for day in month.days),
        ]
    )
    return out.getvalue()


def write_text_atomically(path: Path, text: str) -> Path:
    """Write ``text`` as UTF-8 with a BOM beside ``path``, then rename: readers never see half a report."""
    partial = path.with_name(path.name + ".partial")
    partial.write_text(text, encoding="utf-8-sig", newline="")
    partial.replace(path)
    return path
