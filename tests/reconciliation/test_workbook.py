from __future__ import annotations

from decimal import Decimal
from pathlib import Path

from openpyxl import load_workbook
from reconciliation_helpers import HOSTILE_IDS

from settlement.reconciliation import DayReconciliation, SettlementStatus, Totals, day_totals, write_workbook
from settlement.reconciliation.records import grand_total
from settlement.reconciliation.report_workbook import (
    AMOUNT_FORMAT,
    DISCREPANCY_SHEET,
    SUMMARY_SHEET,
    TOTAL_ROW_LABEL,
    payer_sheet_name,
)


def fen(value: object) -> int:
    """A cell's yuan number back to fen, exactly: the float's shortest repr is the decimal written."""
    assert isinstance(value, (int, float))
    return int(Decimal(repr(value)) * 100)


def test_the_workbook_opens_and_its_summary_totals_equal_the_ledger_to_the_fen(
    day_with_discrepancies: DayReconciliation, tmp_path: Path
) -> None:
    day = day_with_discrepancies
    workbook = load_workbook(write_workbook(day, tmp_path / "day.xlsx"))
    summary = workbook[SUMMARY_SHEET]

    total_row = next(row for row in summary.iter_rows() if row[0].value == "TOTAL")
    count, *amounts = (cell.value for cell in total_row[3:8])
    expected = grand_total(day_totals(day.records))
    assert (count, *(fen(amount) for amount in amounts)) == (
        expected.count,
        expected.total_fen,
        expected.fund_paid_fen,
        expected.account_paid_fen,
        expected.cash_fen,
    )
    assert all(cell.number_format == AMOUNT_FORMAT for cell in total_row[4:8])
    assert [cell.value for cell in summary["A"][:3]] == ["hospital", "business_date", "balanced"]
    assert summary["B3"].value == "no"


def test_each_payer_has_a_sheet_whose_rows_and_total_equal_that_payers_records(
    day_with_discrepancies: DayReconciliation, tmp_path: Path
) -> None:
    day = day_with_discrepancies
    workbook = load_workbook(write_workbook(day, tmp_path / "day.xlsx"))
    payers = sorted({record.clearing_agency for record in day.records})

    assert workbook.sheetnames == [SUMMARY_SHEET, DISCREPANCY_SHEET, *(f"Payer {payer}" for payer in payers)]
    for payer in payers:
        rows = list(workbook[f"Payer {payer}"].iter_rows(min_row=3, values_only=True))
        *detail, total = rows
        settled = [r for r in day.records if r.clearing_agency == payer and r.status is SettlementStatus.SETTLED]
        expected = Totals(
            len(settled),
            sum(r.total_fen for r in settled),
            sum(r.fund_paid_fen for r in settled),
            sum(r.account_paid_fen for r in settled),
            sum(r.cash_fen for r in settled),
        )
        assert total[0] == TOTAL_ROW_LABEL
        assert (total[1], *(fen(value) for value in total[7:11])) == (
            expected.count,
            expected.total_fen,
            expected.fund_paid_fen,
            expected.account_paid_fen,
            expected.cash_fen,
        )
        assert len(detail) == sum(1 for r in day.records if r.clearing_agency == payer)
        detail_settled_fen = sum(fen(row[7]) for row in detail if row[6] == "SETTLED")
        assert detail_settled_fen == expected.total_fen


def test_the_discrepancy_sheet_lists_every_discrepancy_and_keeps_hostile_ids_as_text(
    day_with_discrepancies: DayReconciliation, tmp_path: Path
) -> None:
    day = day_with_discrepancies
    sheet = load_workbook(write_workbook(day, tmp_path / "day.xlsx"))[DISCREPANCY_SHEET]

    rows = list(sheet.iter_rows(min_row=2))
    assert len(rows) == len(day.discrepancies)
    ids = {row[2].value for row in rows}
    assert set(HOSTILE_IDS) <= ids
    formula_cell = next(row[2] for row in rows if row[2].value == HOSTILE_IDS[0])
    assert formula_cell.data_type == "s"
    amount_row = next(row for row in rows if row[0].value == "AMOUNT_DIFFERS")
    assert amount_row[9].number_format == AMOUNT_FORMAT
    assert fen(amount_row[9].value) == 1


def test_payer_sheet_names_are_valid_and_unique() -> None:
    used = {"Summary"}
    first = payer_sheet_name("a/b:c*d?[e]" + "x" * 40, used)
    used.add(first)
    second = payer_sheet_name("a/b:c*d?[e]" + "x" * 40, used)

    assert len(first) <= 31
    assert len(second) <= 31
    assert not set("[]:*?/\\") & set(first + second)
    assert first != second
