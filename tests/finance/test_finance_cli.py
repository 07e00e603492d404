"""``settlement close-day``, ``reconcile`` and ``reconcile-month`` on a seeded database: output, files, exit status."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from dataclasses import replace
from decimal import Decimal
from pathlib import Path

import pytest
from finance_seeding import DAY, NEXT_DAY, SeededLedger
from openpyxl import load_workbook
from sqlalchemy import and_, func, select

from settlement.cli import EXIT_FAILED, EXIT_OK, EXIT_USAGE, main
from settlement.reconciliation import SettlementStatus
from settlement.reconciliation.report_workbook import SUMMARY_SHEET, TOTAL_ROW_LABEL
from settlement.reconciliation.sample import SampleLine, his_export_bytes, insurer_detail_bytes, lines_from_records
from settlement.service.ledger_source import read_ledger_records
from settlement.service.reconciliation_runs import RECONCILE_ACTION
from settlement.storage import tables as t
from settlement.storage.engine import Engines


def agreeing_lines(engines: Engines, hospital_id: str, day: dt.date) -> list[SampleLine]:
    """What an HIS and an insurer that fully agree with our ledger would list (the store keeps no visit id)."""
    records = read_ledger_records(engines, hospital_id, day)
    return [replace(line, visit_id="V" + line.settlement_id) for line in lines_from_records(records)]


def write_files(folder: Path, his: list[SampleLine], insurer: list[SampleLine]) -> tuple[Path, Path]:
    folder.mkdir(parents=True, exist_ok=True)
    his_path, insurer_path = folder / "his.csv", folder / "3202.txt"
    his_path.write_bytes(his_export_bytes(his, encoding="gbk"))
    insurer_path.write_bytes(insurer_detail_bytes(insurer))
    return his_path, insurer_path


def reconcile(engines: Engines, day: dt.date, his: Path, insurer: Path | None, out: Path) -> int:
    argv = ["reconcile", "--hospital", "H1", "--date", day.isoformat(), "--his", str(his), "--out", str(out)]
    argv += ["--insurer", str(insurer)] if insurer is not None else []
    return main([*argv, "--database", engines.url])


def fen(value: object) -> int:
    """A workbook cell's yuan number back to fen, exactly (the float's shortest repr is what was written)."""
    assert isinstance(value, (int, float))
    return int(Decimal(repr(value)) * 100)


def settled_sums_in_db(engines: Engines, hospital_id: str, day: dt.date, region: str | None = None) -> tuple[int, ...]:
    """Count and sums of the day's settlements not cancelled by the end of the day, straight from SQL."""
    s, c = t.settlements, t.settlements.alias("c")
    cancelled = select(c.c.settlement_id).where(and_(c.c.reverses_id == s.c.settlement_id, c.c.business_date <= day))
    conditions = [s.c.hospital_id == hospital_id, s.c.business_date == day, s.c.kind == "settlement"]
    if region is not None:
        conditions.append(s.c.region == region)
    statement = select(
        func.count(),
        *(
            func.coalesce(func.sum(s.c[name]), 0)
            for name in ("total_fen", "fund_paid_fen", "account_paid_fen", "cash_fen")
        ),
    ).where(and_(*conditions, ~cancelled.exists()))
    with engines.reader.connect() as connection:
        return tuple(int(value) for value in connection.execute(statement).one())


def test_close_day_prints_the_totals_exits_0_and_closing_again_changes_nothing(
    engines: Engines, seeded: SeededLedger, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["close-day", "--hospital", "H1", "--date", DAY.isoformat(), "--database", engines.url]

    assert main(argv) == EXIT_OK
    first = capsys.readouterr().out
    assert main(argv) == EXIT_OK
    second = capsys.readouterr().out

    assert "H1 2024-03-05 closed at" in first
    assert "already closed" in second
    assert first.splitlines()[1:] == second.splitlines()[1:]  # same audit head, same totals
    total_line = next(line for line in first.splitlines() if line.startswith("TOTAL"))
    seeded_total_fen = sum(row["total_fen"] for row in seeded.of("H1", DAY))
    assert f"{Decimal(seeded_total_fen).scaleb(-2):.2f}" in total_line.split()


def test_close_day_of_an_unknown_hospital_exits_2_naming_the_reason(
    engines: Engines, seeded: SeededLedger, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["close-day", "--hospital", "NOPE", "--date", DAY.isoformat(), "--database", engines.url]

    assert main(argv) == EXIT_USAGE
    assert "HOSPITAL_NOT_FOUND" in capsys.readouterr().err


def test_reconciling_a_balanced_day_exits_0_and_writes_the_csv_workbook_and_html(
    engines: Engines, seeded: SeededLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = agreeing_lines(engines, "H1", DAY)
    his, insurer = write_files(tmp_path / "in", lines, lines)

    assert reconcile(engines, DAY, his, insurer, tmp_path / "out") == EXIT_OK

    written = sorted(path.name for path in (tmp_path / "out").iterdir())
    assert written == [f"reconciliation-H1-{DAY}.{suffix}" for suffix in ("csv", "html", "xlsx")]
    assert "balanced against HIS (his.csv), INSURER (3202.txt)" in capsys.readouterr().out
    rows = list(csv.reader(io.StringIO((tmp_path / "out" / f"reconciliation-H1-{DAY}.csv").read_text("utf-8-sig"))))
    assert len(rows) == 1  # the header: no discrepancies


def test_an_injected_discrepancy_is_reported_with_its_kind_and_ids_and_exits_1(
    engines: Engines, seeded: SeededLedger, tmp_path: Path
) -> None:
    lines = agreeing_lines(engines, "H1", DAY)
    changed = replace(lines[0], total_fen=lines[0].total_fen + 1, cash_fen=lines[0].cash_fen + 1)
    his, insurer = write_files(tmp_path / "in", [changed, *lines[1:]], lines[:-1])

    assert reconcile(engines, DAY, his, insurer, tmp_path / "out") == EXIT_FAILED

    report = (tmp_path / "out" / f"reconciliation-H1-{DAY}.csv").read_text("utf-8-sig")
    found = {(row["kind"], row["counterpart"], row["settlement_id"]) for row in csv.DictReader(io.StringIO(report))}
    assert found == {
        ("AMOUNT_DIFFERS", "HIS", lines[0].settlement_id),
        ("ONLY_OURS", "INSURER", lines[-1].settlement_id),
    }
    fields = {row["field"] for row in csv.DictReader(io.StringIO(report)) if row["kind"] == "AMOUNT_DIFFERS"}
    assert fields == {"total (medfee_sumamt)", "cash (psn_cash_pay)"}


def test_a_bad_his_file_exits_2_naming_file_line_and_column_and_writes_nothing(
    engines: Engines, seeded: SeededLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = agreeing_lines(engines, "H1", DAY)
    his, insurer = write_files(tmp_path / "in", lines, lines)
    text = his.read_bytes().decode("gbk").split("\r\n")
    fields = text[2].split(",")
    fields[3] = fields[3] + "1"  # total with a third decimal: line 3, column 4 (total)
    text[2] = ",".join(fields)
    his.write_bytes("\r\n".join(text).encode("gbk"))

    assert reconcile(engines, DAY, his, insurer, tmp_path / "out") == EXIT_USAGE

    assert f"{his}:3:4: " in capsys.readouterr().err
    assert not (tmp_path / "out").exists()
    with engines.reader.connect() as connection:
        runs = connection.execute(select(func.count()).where(t.audit_log.c.action == RECONCILE_ACTION)).scalar_one()
    assert runs == 0


def test_the_workbook_totals_equal_the_database_totals_to_the_fen(
    engines: Engines, seeded: SeededLedger, tmp_path: Path
) -> None:
    lines = agreeing_lines(engines, "H1", DAY)
    his, insurer = write_files(tmp_path / "in", lines, lines)
    assert reconcile(engines, DAY, his, insurer, tmp_path / "out") == EXIT_OK

    workbook = load_workbook(tmp_path / "out" / f"reconciliation-H1-{DAY}.xlsx")
    summary_total = next(row for row in workbook[SUMMARY_SHEET].iter_rows(values_only=True) if row[0] == "TOTAL")
    assert (summary_total[3], *(fen(value) for value in summary_total[4:8])) == settled_sums_in_db(engines, "H1", DAY)
    for region in sorted({row["region"] for row in seeded.of("H1", DAY)}):
        sheet_total = next(
            row for row in workbook[f"Payer {region}"].iter_rows(values_only=True) if row[0] == TOTAL_ROW_LABEL
        )
        assert (sheet_total[1], *(fen(value) for value in sheet_total[7:11])) == settled_sums_in_db(
            engines, "H1", DAY, region
        )
    # And the same money as close-day's booked totals: a same-day cancellation nets to zero there.
    assert main(["close-day", "--hospital", "H1", "--date", DAY.isoformat(), "--database", engines.url]) == EXIT_OK
    with engines.reader.connect() as connection:
        stored = json.loads(connection.execute(select(t.closed_days.c.totals)).scalar_one())["total"]
    assert fen(summary_total[4]) == stored["total_fen"]


def test_reconcile_month_lists_each_reconciled_day_and_exits_1_when_one_did_not_balance(
    engines: Engines, seeded: SeededLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    day_lines = agreeing_lines(engines, "H1", DAY)
    assert reconcile(engines, DAY, *write_files(tmp_path / "day", day_lines, day_lines), tmp_path / "out") == EXIT_OK
    next_lines = agreeing_lines(engines, "H1", NEXT_DAY)
    next_his = [replace(next_lines[0], status=SettlementStatus.CANCELLED), *next_lines[1:]]
    files = write_files(tmp_path / "next", next_his, next_lines)
    assert reconcile(engines, NEXT_DAY, *files, tmp_path / "out") == EXIT_FAILED
    capsys.readouterr()

    argv = ["reconcile-month", "--hospital", "H1", "--month", "2024-03", "--out", str(tmp_path / "out")]
    assert main([*argv, "--database", engines.url]) == EXIT_FAILED

    assert "2024-03-06 did not balance" in capsys.readouterr().err
    rows = list(csv.DictReader(io.StringIO((tmp_path / "out" / "month-H1-2024-03.csv").read_text("utf-8-sig"))))
    assert [(row["business_date"], row["balanced"]) for row in rows] == [
        ("2024-03-05", "yes"),
        ("2024-03-06", "no"),
        ("TOTAL", "no"),
    ]
    assert int(rows[0]["count"]) == settled_sums_in_db(engines, "H1", DAY)[0]


def test_reconcile_month_names_days_with_bookings_that_were_never_reconciled(
    engines: Engines, seeded: SeededLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = agreeing_lines(engines, "H2", DAY)
    his, insurer = write_files(tmp_path / "in", lines, lines)
    argv = ["reconcile", "--hospital", "H2", "--date", DAY.isoformat(), "--his", str(his), "--insurer", str(insurer)]
    assert main([*argv, "--out", str(tmp_path / "out"), "--database", engines.url]) == EXIT_OK
    capsys.readouterr()

    argv = ["reconcile-month", "--hospital", "H2", "--month", "2024-03", "--out", str(tmp_path / "out")]
    assert main([*argv, "--database", engines.url]) == EXIT_FAILED

    assert "2024-03-06 has bookings but was never reconciled" in capsys.readouterr().err


def test_a_bad_insurer_file_is_the_one_named_not_the_his_export(
    engines: Engines, seeded: SeededLedger, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lines = agreeing_lines(engines, "H1", DAY)
    his, insurer = write_files(tmp_path / "in", lines, lines)
    insurer.write_bytes(
        insurer.read_bytes().replace(b"\t0\t\xe9\x97\xa8\xe8\xaf\x8a\t", b"\t7\t\xe9\x97\xa8\xe8\xaf\x8a\t", 1)
    )

    assert reconcile(engines, DAY, his, insurer, tmp_path / "out") == EXIT_USAGE

    assert f"{insurer}:2:6: " in capsys.readouterr().err  # refd_setl_flag, the sixth field
    assert not (tmp_path / "out").exists()
