"""Reconciling a day of 100,000 settlements end to end: parse the HIS export (GBK) and the insurer's
file, match both, write the CSV, the workbook and the HTML page. Issue 7 asks for well under 30 s."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import date
from pathlib import Path

import pytest
from pytest_benchmark.fixture import BenchmarkFixture

from settlement.reconciliation import (
    LedgerRecord,
    ReportFiles,
    day_balanced,
    reconcile_files,
    summarize_day,
    summarize_month,
    write_day_reports,
)
from settlement.reconciliation.sample import his_export_bytes, insurer_detail_bytes, lines_from_records, sample_day

SETTLEMENTS = 100_000
BUSINESS_DATE = date(2024, 3, 5)
LIMIT_SECONDS = 30.0


@dataclass(frozen=True)
class BenchDay:
    records: list[LedgerRecord]
    his_path: Path
    insurer_path: Path
    out_dir: Path


@pytest.fixture(scope="module")
def bench_day(tmp_path_factory: pytest.TempPathFactory) -> BenchDay:
    directory = tmp_path_factory.mktemp("reconcile")
    records = sample_day("H1", BUSINESS_DATE, SETTLEMENTS, seed=1)
    lines = lines_from_records(records)
    # A realistic handful of discrepancies so the report paths do real work, not just the happy path.
    his_lines = [replace(line, total_fen=line.total_fen + 1, cash_fen=line.cash_fen + 1) for line in lines[:50]]
    his_lines += lines[100:]
    his_path = directory / "his.csv"
    his_path.write_bytes(his_export_bytes(his_lines, encoding="gbk"))
    insurer_path = directory / "3202.txt"
    insurer_path.write_bytes(insurer_detail_bytes([*lines, *lines[:20]]))
    return BenchDay(records, his_path, insurer_path, directory / "out")


def test_reconciling_a_day_of_100k_settlements_end_to_end(benchmark: BenchmarkFixture, bench_day: BenchDay) -> None:
    def run() -> tuple[bool, ReportFiles]:
        day = reconcile_files("H1", BUSINESS_DATE, bench_day.records, bench_day.his_path, bench_day.insurer_path)
        month = summarize_month("H1", 2024, 3, [summarize_day(day)])
        return day_balanced(day), write_day_reports(day, bench_day.out_dir, month)

    balanced, files = benchmark.pedantic(run, rounds=3, iterations=1)  # type: ignore[no-untyped-call]

    assert not balanced
    assert files.workbook.stat().st_size > 0
    assert benchmark.stats is not None
    stats = benchmark.stats.stats
    print(
        f"\nreconcile {SETTLEMENTS:,} settlements (parse HIS + insurer, match, CSV + xlsx + HTML): "
        f"mean {stats.mean:.2f} s, min {stats.min:.2f} s, max {stats.max:.2f} s"
    )
    assert stats.max < LIMIT_SECONDS
