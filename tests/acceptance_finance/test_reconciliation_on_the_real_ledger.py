"""Issue 7, first acceptance line, on the real path: days at two hospitals booked by ``SettlementApp``
(settles from several callers at once, same-day cancellations, a cancellation of the previous day's
settlement), each day closed with ``settlement close-day``, then reconciled with ``settlement reconcile``
against an HIS export (GBK on some days) and an insurer file derived from what the engine answered, with
about 1 % of each discrepancy kind injected: every injection is reported with its kind and ids, and
nothing else. One hospital-day is left clean and must balance (exit 0).

tests/reconciliation/test_simulation.py runs the issue's full 30 days × 2 hospitals on the pure core;
this is the smaller run through the database, the close, the files on disk and the command line.
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import random
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from finance_acceptance_world import (
    LABEL_FIELDS,
    PERSONS,
    FinanceWorld,
    random_charge,
    report_rows,
)
from service_world import HOSPITAL, OTHER_HOSPITAL, TODAY

from settlement.cli import EXIT_FAILED, EXIT_OK, main
from settlement.reconciliation import Counterpart, DiscrepancyKind, SettlementStatus
from settlement.reconciliation.sample import SampleLine, his_export_bytes, insurer_detail_bytes

DAYS = tuple(TODAY + dt.timedelta(days=offset) for offset in range(3))
HOSPITALS = (HOSPITAL, OTHER_HOSPITAL)
SETTLEMENTS_PER_DAY = 100  # per hospital: one injection of a kind is 1 %
SAME_DAY_CANCELLATIONS = 3
CLEAN = (OTHER_HOSPITAL, DAYS[-1])  # no injections: must balance
Finding = tuple[Counterpart, DiscrepancyKind, str, str]  # counterpart, kind, settlement id, field


@dataclass
class Injected:
    """What a test did to a counterpart's file, and what the reconciliation must therefore report."""

    expected: set[Finding] = field(default_factory=set)
    request_ids: dict[str, str] = field(default_factory=dict)  # settlement id -> the request id to report


def flip(status: SettlementStatus) -> SettlementStatus:
    return SettlementStatus.SETTLED if status is SettlementStatus.CANCELLED else SettlementStatus.CANCELLED


def stranger(line: SampleLine, tag: str) -> SampleLine:
    """A settlement only they list: an id the engine never issued (engine ids are S + 22 hex digits)."""
    return replace(line, settlement_id=f"SX-{tag}-{line.settlement_id[-6:]}", request_id=f"R-{tag}")


def inject_his(lines: list[SampleLine], picks: list[int], rng: random.Random, found: Injected) -> list[SampleLine]:
    only_ours, only_theirs, amount, status = picks
    result = list(lines)
    result[status] = replace(lines[status], status=flip(lines[status].status))
    found.expected.add((Counterpart.HIS, DiscrepancyKind.STATUS_DIFFERS, lines[status].settlement_id, "status"))
    # The export must still add up (its parser refuses it otherwise): the total moves with one part.
    moved, delta = rng.choice(("fund_paid_fen", "account_paid_fen", "cash_fen")), rng.randint(1, 5_000)
    line = lines[amount]
    result[amount] = replace(line, total_fen=line.total_fen + delta, **{moved: getattr(line, moved) + delta})
    for name in ("total_fen", moved):
        found.expected.add((Counterpart.HIS, DiscrepancyKind.AMOUNT_DIFFERS, line.settlement_id, name))
    extra = stranger(lines[only_theirs], "his")
    result.append(extra)
    found.expected.add((Counterpart.HIS, DiscrepancyKind.ONLY_THEIRS, extra.settlement_id, ""))
    found.request_ids[extra.settlement_id] = extra.request_id
    found.expected.add((Counterpart.HIS, DiscrepancyKind.ONLY_OURS, lines[only_ours].settlement_id, ""))
    return [line for line in result if line.settlement_id != lines[only_ours].settlement_id]


def inject_insurer(lines: list[SampleLine], picks: list[int], rng: random.Random, found: Injected) -> list[SampleLine]:
    only_ours, only_theirs, amount, status, duplicate = picks
    result = list(lines)
    result[status] = replace(lines[status], status=flip(lines[status].status))
    found.expected.add((Counterpart.INSURER, DiscrepancyKind.STATUS_DIFFERS, lines[status].settlement_id, "status"))
    # One field alone; the insurer's file only requires fund + account <= total.
    line, delta = lines[amount], rng.randint(1, 5_000)
    name = rng.choice(("total_fen", "fund_paid_fen", "account_paid_fen"))
    if name != "total_fen" and getattr(line, name) == 0:
        name = "total_fen"
    changed: dict[str, Any] = {
        name: line.total_fen + delta if name == "total_fen" else max(0, getattr(line, name) - delta)
    }
    result[amount] = replace(line, **changed)
    found.expected.add((Counterpart.INSURER, DiscrepancyKind.AMOUNT_DIFFERS, line.settlement_id, name))
    result.append(result[duplicate])
    found.expected.add((Counterpart.INSURER, DiscrepancyKind.DUPLICATE, lines[duplicate].settlement_id, ""))
    extra = stranger(lines[only_theirs], "ins")
    result.append(extra)
    found.expected.add((Counterpart.INSURER, DiscrepancyKind.ONLY_THEIRS, extra.settlement_id, ""))
    found.expected.add((Counterpart.INSURER, DiscrepancyKind.ONLY_OURS, lines[only_ours].settlement_id, ""))
    return [line for line in result if line.settlement_id != lines[only_ours].settlement_id]


def book_the_days(world: FinanceWorld, rng: random.Random) -> dict[str, list[str]]:
    """Settle, cancel and close each day at each hospital; returns the cross-day cancellations by hospital."""
    cancelled_next_day: dict[str, list[str]] = {hospital_id: [] for hospital_id in HOSPITALS}
    for number, day in enumerate(DAYS):
        world.at(day, hour=8)
        for hospital_id in HOSPITALS:
            if number > 0:  # a correction of yesterday's (closed) day, booked today
                yesterday = world.settlements_of(hospital_id, DAYS[number - 1])
                target = next(b for b in yesterday if b.cancelled_on is None).view.settlement_id
                world.cancel(target)
                cancelled_next_day[hospital_id].append(target)
            charges = [random_charge(PERSONS[i % len(PERSONS)], rng, day) for i in range(SETTLEMENTS_PER_DAY)]
            views = world.settle_many(hospital_id, charges)
            for view in rng.sample(views, SAME_DAY_CANCELLATIONS):
                world.cancel(view.settlement_id)
        world.at(day, hour=23)
        for hospital_id in HOSPITALS:
            assert world.close_day(hospital_id, day) == EXIT_OK
    return cancelled_next_day


def write_counterpart_files(
    folder: Path, his: list[SampleLine], insurer: list[SampleLine], *, gbk: bool
) -> tuple[Path, Path]:
    folder.mkdir(parents=True)
    his_path, insurer_path = folder / "his.csv", folder / "3202.txt"
    his_path.write_bytes(his_export_bytes(his, encoding="gbk" if gbk else "utf-8"))
    insurer_path.write_bytes(insurer_detail_bytes(insurer))
    return his_path, insurer_path


def lines_listing(lines: list[SampleLine], first_line: int) -> dict[str, tuple[int, ...]]:
    """Settlement id -> the line numbers it has in a file whose first data line is ``first_line``."""
    found: dict[str, list[int]] = {}
    for offset, line in enumerate(lines):
        found.setdefault(line.settlement_id, []).append(first_line + offset)
    return {settlement_id: tuple(numbers) for settlement_id, numbers in found.items()}


def reported(rows: list[dict[str, str]]) -> list[Finding]:
    return [
        (
            Counterpart(row["counterpart"]),
            DiscrepancyKind(row["kind"]),
            row["settlement_id"],
            LABEL_FIELDS[row["field"]] if row["field"] else "",
        )
        for row in rows
    ]


def test_days_booked_by_the_settle_path_reconcile_to_exactly_the_injected_discrepancies(
    world: FinanceWorld, tmp_path: Path
) -> None:
    rng = random.Random(20260302)
    cancelled_next_day = book_the_days(world, rng)
    out = tmp_path / "reports"
    kinds_seen: set[DiscrepancyKind] = set()
    for number, day in enumerate(DAYS):
        for hospital_id in HOSPITALS:
            lines = world.agreeing_lines(hospital_id, day)
            assert len(lines) == SETTLEMENTS_PER_DAY
            found = Injected()
            his, insurer = list(lines), list(lines)
            if (hospital_id, day) != CLEAN:
                picks = rng.sample(range(len(lines)), 9)
                his = inject_his(lines, picks[:4], rng, found)
                insurer = inject_insurer(lines, picks[4:], rng, found)
            files = write_counterpart_files(tmp_path / f"{hospital_id}-{day}", his, insurer, gbk=number % 2 == 0)

            status = world.reconcile(hospital_id, day, *files, out)

            rows = report_rows(out, hospital_id, day)
            findings = reported(rows)
            assert len(findings) == len(set(findings)), f"{hospital_id} {day}: a discrepancy reported twice"
            missed, extra = found.expected - set(findings), set(findings) - found.expected
            assert not missed, f"{hospital_id} {day}: missed {sorted(missed, key=str)}"
            assert not extra, f"{hospital_id} {day}: reported what was not injected {sorted(extra, key=str)}"
            assert status == (EXIT_OK if (hospital_id, day) == CLEAN else EXIT_FAILED)
            check_the_ids(rows, world, hospital_id, day, his, insurer, found)
            kinds_seen |= {kind for _part, kind, _id, _field in findings}
            # Yesterday's settlement cancelled today is SETTLED on its own day in the files, and nothing was
            # reported about it beyond what was injected (the exact comparison above).
            for settlement_id in cancelled_next_day[hospital_id]:
                if world.booked[settlement_id].view.business_date == day:
                    [line] = [line for line in lines if line.settlement_id == settlement_id]
                    assert line.status is SettlementStatus.SETTLED

    assert kinds_seen == set(DiscrepancyKind)
    month_is_listed_with_only_the_clean_day_balanced(world, out)


def check_the_ids(
    rows: list[dict[str, str]],
    world: FinanceWorld,
    hospital_id: str,
    day: dt.date,
    his: list[SampleLine],
    insurer: list[SampleLine],
    found: Injected,
) -> None:
    """Each row names our request id (or the HIS's for a stranger), and the lines where their file has it."""
    his_lines = lines_listing(his, first_line=2)  # line 1 is the header
    insurer_lines = lines_listing(insurer, first_line=2)  # the sample file has its optional header
    for row in rows:
        settlement_id = row["settlement_id"]
        booked = world.booked.get(settlement_id)
        if booked is not None:
            assert booked.view.hospital_id == hospital_id
            assert booked.view.business_date == day
            assert row["request_id"] == booked.view.request_id
        else:
            assert row["kind"] == "ONLY_THEIRS"
            if row["counterpart"] == "HIS":
                assert row["request_id"] == found.request_ids[settlement_id]
        listing = his_lines if row["counterpart"] == "HIS" else insurer_lines
        their_lines = tuple(int(number) for number in row["their_lines"].split())
        if row["kind"] == "ONLY_OURS":
            assert their_lines == ()
        elif row["kind"] in ("ONLY_THEIRS", "DUPLICATE"):
            assert their_lines == listing[settlement_id]
        else:  # compared on their first line
            assert their_lines == listing[settlement_id][:1]


def month_is_listed_with_only_the_clean_day_balanced(world: FinanceWorld, out: Path) -> None:
    for hospital_id in HOSPITALS:
        argv = ["reconcile-month", "--hospital", hospital_id, "--month", "2026-03", "--out", str(out)]
        assert main([*argv, "--database", world.engines.url]) == EXIT_FAILED
        text = (out / f"month-{hospital_id}-2026-03.csv").read_text("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(text)))
        expected = [(day.isoformat(), "yes" if (hospital_id, day) == CLEAN else "no") for day in DAYS]
        assert [(row["business_date"], row["balanced"]) for row in rows] == [*expected, ("TOTAL", "no")]


def test_a_difference_on_a_settlement_we_have_names_the_his_visit(world: FinanceWorld, tmp_path: Path) -> None:
    rng = random.Random(5)
    day = DAYS[0]
    world.at(day, hour=9)
    world.settle_many(HOSPITAL, [random_charge(PERSONS[i % len(PERSONS)], rng, day) for i in range(5)])
    lines = world.agreeing_lines(HOSPITAL, day)
    changed = replace(lines[0], total_fen=lines[0].total_fen + 1, cash_fen=lines[0].cash_fen + 1)
    flipped = replace(lines[1], status=flip(lines[1].status))
    files = write_counterpart_files(tmp_path / "in", [changed, flipped, *lines[2:]], lines, gbk=True)

    assert world.reconcile(HOSPITAL, day, files[0], None, tmp_path / "out") == EXIT_FAILED

    rows = report_rows(tmp_path / "out", HOSPITAL, day)
    assert {row["kind"] for row in rows} == {"AMOUNT_DIFFERS", "STATUS_DIFFERS"}
    assert {(row["settlement_id"], row["visit_id"]) for row in rows} == {
        (line.settlement_id, line.visit_id) for line in (changed, flipped)
    }
