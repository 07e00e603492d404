"""Writing a day's reports into a directory, and reconciling straight from files.

Owns: report file names and the order of work for one ``settlement reconcile`` run: parse every
counterpart file first (so a bad file refuses the run before anything is written), reconcile, then write
the CSV, the workbook and the HTML page. Must never write into a closed day or touch storage: the lead's
CLI passes our records in and stores what it needs from the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date
from pathlib import Path

from settlement.reconciliation.his_export import read_his_export
from settlement.reconciliation.insurer_detail import read_insurer_detail
from settlement.reconciliation.matching import DayReconciliation, reconcile_day
from settlement.reconciliation.month import MonthSummary
from settlement.reconciliation.records import LedgerRecord
from settlement.reconciliation.report_common import file_stem
from settlement.reconciliation.report_csv import discrepancies_csv, month_csv, write_text_atomically
from settlement.reconciliation.report_html import render_day_html
from settlement.reconciliation.report_workbook import write_workbook


@dataclass(frozen=True, slots=True)
class ReportFiles:
    discrepancies_csv: Path
    workbook: Path
    html: Path


def reconcile_files(
    hospital_id: str,
    business_date: date,
    ours: Sequence[LedgerRecord],
    his_path: Path | None,
    insurer_path: Path | None = None,
) -> DayReconciliation:
    """Parse the given files (all or nothing, ``InvalidImportFile`` on the first bad one), then reconcile."""
    his = read_his_export(his_path) if his_path is not None else None
    insurer = read_insurer_detail(insurer_path) if insurer_path is not None else None
    return reconcile_day(hospital_id, business_date, ours, his, insurer)


def write_day_reports(day: DayReconciliation, out_dir: Path, month: MonthSummary | None = None) -> ReportFiles:
    """Write ``reconciliation-<hospital>-<date>.{csv,xlsx,html}`` into ``out_dir`` (created if missing)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    stem = f"reconciliation-{file_stem(day.hospital_id)}-{day.business_date.isoformat()}"
    return ReportFiles(
        discrepancies_csv=write_text_atomically(out_dir / f"{stem}.csv", discrepancies_csv(day)),
        workbook=write_workbook(day, out_dir / f"{stem}.xlsx"),
        html=write_text_atomically(out_dir / f"{stem}.html", render_day_html(day, month)),
    )


def write_month_report(month: MonthSummary, out_dir: Path) -> Path:
    """Write ``month-<hospital>-<yyyy-mm>.csv``: one row per reconciled day and the month's total."""
    out_dir.mkdir(parents=True, exist_ok=True)
    name = f"month-{file_stem(month.hospital_id)}-{month.year}-{month.month:02d}.csv"
    return write_text_atomically(out_dir / name, month_csv(month))
