from __future__ import annotations

import csv
import io
from datetime import date
from pathlib import Path

import pytest
from reconciliation_helpers import HOSTILE_IDS

from settlement.errors import InvariantViolated
from settlement.reconciliation import (
    CounterpartRecord,
    DayReconciliation,
    DaySummary,
    DiscrepancyKind,
    discrepancies_csv,
    month_csv,
    parse_his_export,
    reconcile_day,
    summarize_day,
    summarize_month,
    write_day_reports,
    write_month_report,
)
from settlement.reconciliation.report_common import DISCREPANCY_COLUMNS
from settlement.reconciliation.sample import his_export_bytes, lines_from_records, sample_day


def test_the_discrepancy_csv_has_one_row_per_discrepancy_with_kind_ids_and_both_values(
    day_with_discrepancies: DayReconciliation,
) -> None:
    rows = list(csv.DictReader(io.StringIO(discrepancies_csv(day_with_discrepancies))))

    assert len(rows) == len(day_with_discrepancies.discrepancies)
    assert tuple(rows[0]) == DISCREPANCY_COLUMNS
    amount = next(row for row in rows if row["kind"] == "AMOUNT_DIFFERS" and row["field"].startswith("fund"))
    assert amount["field"] == "fund paid (fund_pay_sumamt)"
    assert amount["difference"] == "0.01"
    assert float(amount["theirs"]) > 0
    duplicate = next(row for row in rows if row["kind"] == "DUPLICATE")
    assert (duplicate["counterpart"], duplicate["side"], duplicate["occurrences"]) == ("INSURER", "THEIRS", "2")


def test_an_id_that_looks_like_a_formula_is_quoted_in_the_csv(day_with_discrepancies: DayReconciliation) -> None:
    ids = {row["settlement_id"] for row in csv.DictReader(io.StringIO(discrepancies_csv(day_with_discrepancies)))}

    assert "'" + HOSTILE_IDS[0] in ids
    assert HOSTILE_IDS[0] not in ids


def test_the_day_reports_are_written_as_three_files_with_a_bom_on_the_csv(
    day_with_discrepancies: DayReconciliation, tmp_path: Path
) -> None:
    files = write_day_reports(day_with_discrepancies, tmp_path / "out")

    assert [path.name for path in (files.discrepancies_csv, files.workbook, files.html)] == [
        "reconciliation-H1-2024-03-05.csv",
        "reconciliation-H1-2024-03-05.xlsx",
        "reconciliation-H1-2024-03-05.html",
    ]
    assert files.discrepancies_csv.read_bytes().startswith(b"\xef\xbb\xbf")
    assert not list((tmp_path / "out").glob("*.partial"))


def _summaries() -> list[DaySummary]:
    days = []
    for day_number in (3, 1, 2):
        business_date = date(2024, 3, day_number)
        records = sample_day("H1", business_date, 20, seed=day_number)
        agreeing = parse_his_export(his_export_bytes(lines_from_records(records)), file_name="his.csv")
        his: list[CounterpartRecord] = agreeing if day_number != 2 else []
        days.append(summarize_day(reconcile_day("H1", business_date, records, his)))
    return days


def test_the_month_summary_orders_days_and_adds_their_totals() -> None:
    days = _summaries()
    month = summarize_month("H1", 2024, 3, days)

    assert [day.business_date.day for day in month.days] == [1, 2, 3]
    assert month.month_total.total_fen == sum(day.day_total.total_fen for day in days)
    assert month.month_total.count == sum(day.day_total.count for day in days)
    assert month.unbalanced_dates == (date(2024, 3, 2),)
    assert month.days[1].discrepancies_by_kind[DiscrepancyKind.ONLY_OURS] == 20


def test_the_month_csv_has_a_row_per_day_and_a_total_row(tmp_path: Path) -> None:
    month = summarize_month("H1", 2024, 3, _summaries())

    rows = list(csv.DictReader(io.StringIO(month_csv(month))))
    path = write_month_report(month, tmp_path)

    assert [row["business_date"] for row in rows] == ["2024-03-01", "2024-03-02", "2024-03-03", "TOTAL"]
    total_fen = month.month_total.total_fen
    assert rows[-1]["total"] == f"{total_fen // 100}.{total_fen % 100:02d}"
    assert rows[-1]["balanced"] == "no"
    assert path.name == "month-H1-2024-03.csv"


def test_a_day_of_another_month_or_hospital_or_a_day_twice_is_refused_as_a_bug() -> None:
    days = _summaries()
    with pytest.raises(InvariantViolated):
        summarize_month("H1", 2024, 4, days)
    with pytest.raises(InvariantViolated):
        summarize_month("H2", 2024, 3, days)
    with pytest.raises(InvariantViolated):
        summarize_month("H1", 2024, 3, [*days, days[0]])
