"""Daily reconciliation and finance reports (issue 7), the storage-independent half.

Owns: reading the HIS export and the insurer's detail file (all or nothing), matching them against our
ledger records (totals in the 3201 shape, line by line in the 3202 shape), and writing the CSV, Excel
and HTML reports. Imports the standard library and openpyxl only: never SQLAlchemy, grpc or storage.
The CLI (``settlement close-day`` / ``settlement reconcile``) builds ``LedgerRecord``s from the database
and calls the functions below.
"""

from settlement.reconciliation.his_export import HIS_COLUMNS, parse_his_export, read_his_export
from settlement.reconciliation.insurer_detail import INSURER_COLUMNS, parse_insurer_detail, read_insurer_detail
from settlement.reconciliation.matching import (
    CounterpartReconciliation,
    DayReconciliation,
    Discrepancy,
    DiscrepancyKind,
    Side,
    TotalsComparison,
    day_balanced,
    match_lines,
    reconcile_day,
    reconcile_totals,
)
from settlement.reconciliation.month import DaySummary, MonthSummary, summarize_day, summarize_month
from settlement.reconciliation.records import (
    Counterpart,
    CounterpartRecord,
    LedgerRecord,
    SettlementStatus,
    Totals,
    TotalsKey,
    day_totals,
)
from settlement.reconciliation.report_csv import discrepancies_csv, month_csv
from settlement.reconciliation.report_html import render_day_html
from settlement.reconciliation.report_workbook import write_workbook
from settlement.reconciliation.reports import (
    ReportFiles,
    reconcile_files,
    write_day_reports,
    write_month_report,
)

__all__ = [
    "HIS_COLUMNS",
    "INSURER_COLUMNS",
    "Counterpart",
    "CounterpartReconciliation",
    "CounterpartRecord",
    "DayReconciliation",
    "DaySummary",
    "Discrepancy",
    "DiscrepancyKind",
    "LedgerRecord",
    "MonthSummary",
    "ReportFiles",
    "SettlementStatus",
    "Side",
    "Totals",
    "TotalsComparison",
    "TotalsKey",
    "day_balanced",
    "day_totals",
    "discrepancies_csv",
    "match_lines",
    "month_csv",
    "parse_his_export",
    "parse_insurer_detail",
    "read_his_export",
    "read_insurer_detail",
    "reconcile_day",
    "reconcile_files",
    "reconcile_totals",
    "render_day_html",
    "summarize_day",
    "summarize_month",
    "write_day_reports",
    "write_month_report",
    "write_workbook",
]
