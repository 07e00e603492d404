"""Fixtures for the reconciliation tests: a small agreeing day, and a day with discrepancies."""

from __future__ import annotations

from dataclasses import replace

import pytest
from reconciliation_helpers import BUSINESS_DATE, HOSTILE_IDS

from settlement.reconciliation import (
    DayReconciliation,
    parse_his_export,
    parse_insurer_detail,
    reconcile_day,
)
from settlement.reconciliation.sample import his_export_bytes, insurer_detail_bytes, lines_from_records, sample_day


@pytest.fixture
def day_with_discrepancies() -> DayReconciliation:
    """A day against both files with one discrepancy of several kinds and ids meant to cause harm."""
    records = sample_day("H1", BUSINESS_DATE, 60, seed=3)
    lines = lines_from_records(records)
    his_lines = [replace(lines[0], fund_paid_fen=lines[0].fund_paid_fen + 1, total_fen=lines[0].total_fen + 1)]
    his_lines += lines[2:]
    his_lines += [replace(lines[1], settlement_id=hostile, request_id="R-evil") for hostile in HOSTILE_IDS]
    insurer_lines = [*lines, lines[5]]
    his = parse_his_export(his_export_bytes(his_lines), file_name="his.csv")
    insurer = parse_insurer_detail(insurer_detail_bytes(insurer_lines), file_name="3202.txt")
    return reconcile_day("H1", BUSINESS_DATE, records, his, insurer)
