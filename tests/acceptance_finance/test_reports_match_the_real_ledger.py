"""Issue 7, third acceptance line, on the real path: the workbook and the HTML page that
``settlement reconcile`` writes for days booked by ``SettlementApp`` (two payers, two clearing types,
same-day cancellations and a cancellation of the previous day's settlement) show the ledger's totals to
the fen, read straight from the settlements table; the page references nothing outside itself.

Two kinds of "the day's totals" exist and both are checked: the reconciliation's (the day's settlements
still standing at the end of the day, 3201) and close-day's (every entry booked that day, signed, so a
cancellation of yesterday's settlement lowers today). They differ by exactly the cancellations of earlier
days' settlements booked on the day; docs/reconciliation.md says so.
"""

from __future__ import annotations

import datetime as dt
import json
import random
from html.parser import HTMLParser
from pathlib import Path

import pytest
from finance_acceptance_world import (
    PERSONS,
    FinanceWorld,
    booked_sums_in_db,
    fen_of_cell,
    random_charge,
    settled_sums_in_db,
)
from openpyxl import load_workbook
from service_world import HOSPITAL, TODAY
from sqlalchemy import and_, func, select

from settlement.cli import EXIT_OK
from settlement.reconciliation.report_common import yuan_text
from settlement.reconciliation.report_workbook import AMOUNT_FORMAT, SUMMARY_SHEET, TOTAL_ROW_LABEL
from settlement.reconciliation.sample import his_export_bytes, insurer_detail_bytes
from settlement.storage import tables as t
from settlement.storage.engine import Engines

DAY_ONE, DAY_TWO = TODAY, TODAY + dt.timedelta(days=1)
SETTLEMENTS_PER_DAY = 40
FETCHING_TAGS = {"script", "link", "img", "iframe", "object", "embed", "audio", "video", "source", "base", "form"}
FETCHING_ATTRIBUTES = {"src", "href", "srcset", "action", "data", "poster", "xlink:href", "background", "formaction"}


class Page(HTMLParser):
    """Tags, attributes, and every table's rows as (data-fen or data-count, shown text) per amount cell."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: set[str] = set()
        self.attributes: list[tuple[str, str | None]] = []
        self.tables: dict[str, list[list[tuple[str, str]]]] = {}
        self.table: str | None = None
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        self.attributes.extend(attrs)
        values = dict(attrs)
        if tag == "table":
            self.table = values.get("id")
        elif tag == "tr" and self.table:
            self.tables.setdefault(self.table, []).append([])
        elif tag == "td" and self.table:
            marker = values.get("data-fen") or values.get("data-count")
            self.cell = [marker or "", ""]

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell[1] += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.cell is not None and self.table:
            self.tables[self.table][-1].append((self.cell[0], self.cell[1]))
            self.cell = None
        elif tag == "table":
            self.table = None


def keyed_sums_in_db(engines: Engines, hospital_id: str, day: dt.date) -> dict[tuple[str, str, str], tuple[int, ...]]:
    """(payer, insured type, clearing type) -> count and sums of the settlements standing at the day's end."""
    s, c = t.settlements, t.settlements.alias("c")
    cancelled = select(c.c.settlement_id).where(and_(c.c.reverses_id == s.c.settlement_id, c.c.business_date <= day))
    statement = (
        select(
            s.c.region,
            s.c.insured_type,
            s.c.clearing_type,
            func.count(),
            *(func.sum(s.c[name]) for name in ("total_fen", "fund_paid_fen", "account_paid_fen", "cash_fen")),
        )
        .where(s.c.hospital_id == hospital_id, s.c.business_date == day, s.c.kind == "settlement")
        .where(~cancelled.exists())
        .group_by(s.c.region, s.c.insured_type, s.c.clearing_type)
    )
    with engines.reader.connect() as connection:
        return {
            (str(row[0]), str(row[1]), str(row[2])): tuple(int(value) for value in row[3:])
            for row in connection.execute(statement)
        }


def cancelled_from_earlier_days_in_db(engines: Engines, hospital_id: str, day: dt.date) -> tuple[int, ...]:
    """The signed sums of the cancellations booked on ``day`` whose settlements were booked before it."""
    s, original = t.settlements, t.settlements.alias("original")
    statement = (
        select(*(func.coalesce(func.sum(s.c[name]), 0) for name in ("total_fen", "fund_paid_fen", "account_paid_fen")))
        .select_from(s.join(original, original.c.settlement_id == s.c.reverses_id))
        .where(s.c.hospital_id == hospital_id, s.c.business_date == day, original.c.business_date < day)
    )
    with engines.reader.connect() as connection:
        return tuple(int(value) for value in connection.execute(statement).one())


@pytest.fixture
def two_reconciled_days(world: FinanceWorld, tmp_path: Path) -> Path:
    """Two days booked, closed and reconciled (both balanced) at one hospital; returns the report folder."""
    rng = random.Random(7)
    out = tmp_path / "reports"
    for number, day in enumerate((DAY_ONE, DAY_TWO)):
        world.at(day, hour=9)
        if number == 1:  # a correction of yesterday's closed day: a cancellation booked today
            standing = next(b for b in world.settlements_of(HOSPITAL, DAY_ONE) if b.cancelled_on is None)
            world.cancel(standing.view.settlement_id)
        charges = [random_charge(PERSONS[i % len(PERSONS)], rng, day) for i in range(SETTLEMENTS_PER_DAY)]
        views = world.settle_many(HOSPITAL, charges)
        for view in views[:2]:
            world.cancel(view.settlement_id)
        assert world.close_day(HOSPITAL, day) == EXIT_OK
        lines = world.agreeing_lines(HOSPITAL, day)
        folder = tmp_path / day.isoformat()
        folder.mkdir()
        (folder / "his.csv").write_bytes(his_export_bytes(lines, encoding="gbk"))
        (folder / "3202.txt").write_bytes(insurer_detail_bytes(lines))
        assert world.reconcile(HOSPITAL, day, folder / "his.csv", folder / "3202.txt", out) == EXIT_OK
    return out


@pytest.mark.parametrize("day", [DAY_ONE, DAY_TWO])
def test_the_workbook_opens_and_its_totals_equal_the_ledger_to_the_fen(
    world: FinanceWorld, two_reconciled_days: Path, day: dt.date
) -> None:
    workbook = load_workbook(two_reconciled_days / f"reconciliation-{HOSPITAL}-{day.isoformat()}.xlsx")
    summary = list(workbook[SUMMARY_SHEET].iter_rows())
    start = next(i for i, row in enumerate(summary) if str(row[0].value).startswith("Our ledger"))
    end = next(i for i in range(start, len(summary)) if summary[i][0].value == "TOTAL")
    keyed = {
        (row[0].value, row[1].value, row[2].value): (row[3].value, *(fen_of_cell(cell.value) for cell in row[4:8]))
        for row in summary[start + 2 : end]
    }
    total_row = summary[end]
    shown_total = (total_row[3].value, *(fen_of_cell(cell.value) for cell in total_row[4:8]))

    assert keyed == keyed_sums_in_db(world.engines, HOSPITAL, day)
    assert len({key[0] for key in keyed}) == 2  # Nanjing and Hangzhou pay
    assert len({key[2] for key in keyed}) == 2  # outpatient (11) and emergency (13)
    assert shown_total == settled_sums_in_db(world.engines, HOSPITAL, day)
    assert all(cell.number_format == AMOUNT_FORMAT for cell in total_row[4:8])
    for payer in ("320100", "330100"):
        *_detail, payer_total = workbook[f"Payer {payer}"].iter_rows(values_only=True)
        assert payer_total[0] == TOTAL_ROW_LABEL
        shown = (payer_total[1], *(fen_of_cell(value) for value in payer_total[7:11]))
        assert shown == settled_sums_in_db(world.engines, HOSPITAL, day, region=payer)

    # Close-day stored every entry booked that day, signed: the same money once yesterday's settlements
    # cancelled today are put back.
    with world.engines.reader.connect() as connection:
        stored = json.loads(
            connection.execute(
                select(t.closed_days.c.totals).where(
                    t.closed_days.c.hospital_id == HOSPITAL, t.closed_days.c.business_date == day
                )
            ).scalar_one()
        )["total"]
    earlier = cancelled_from_earlier_days_in_db(world.engines, HOSPITAL, day)
    assert (earlier != (0, 0, 0)) is (day == DAY_TWO)  # only day two took a correction of the day before
    closed = (stored["total_fen"], stored["fund_paid_fen"], stored["account_paid_fen"])
    assert tuple(a - b for a, b in zip(closed, earlier, strict=True)) == shown_total[1:4]
    _settlements, _cancellations, *booked = booked_sums_in_db(world.engines, HOSPITAL, day)
    assert booked[:3] == list(closed)


@pytest.mark.parametrize("day", [DAY_ONE, DAY_TWO])
def test_the_html_page_parses_fetches_nothing_and_shows_the_same_totals(
    world: FinanceWorld, two_reconciled_days: Path, day: dt.date
) -> None:
    text = (two_reconciled_days / f"reconciliation-{HOSPITAL}-{day.isoformat()}.html").read_text("utf-8")
    page = Page()
    page.feed(text)
    page.close()

    assert {"html", "head", "body", "table", "svg"} <= page.tags
    assert not page.tags & FETCHING_TAGS
    assert not [name for name, _value in page.attributes if name in FETCHING_ATTRIBUTES]
    for needle in ("http://", "https://", "url(", "@import", "//"):
        assert needle not in text, needle
    assert ("content", "default-src 'none'; style-src 'unsafe-inline'") in page.attributes

    expected = settled_sums_in_db(world.engines, HOSPITAL, day)
    *key_rows, total_row = page.tables["day-totals"][1:]  # the first row is the header
    assert tuple(int(marker) for marker, _shown in total_row[-5:]) == expected
    assert [shown for _marker, shown in total_row[-4:]] == [yuan_text(fen, grouped=True) for fen in expected[1:]]
    by_key = {tuple(shown for _m, shown in row[:3]): tuple(int(m) for m, _s in row[3:]) for row in key_rows}
    assert by_key == keyed_sums_in_db(world.engines, HOSPITAL, day)
    # The month section lists each reconciled day so far with the same figures.
    month_rows = {row[0][1]: tuple(int(m) for m, _s in row[1:6]) for row in page.tables["month"][1:]}
    assert month_rows[day.isoformat()] == expected
