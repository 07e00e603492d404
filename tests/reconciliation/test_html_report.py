from __future__ import annotations

from html.parser import HTMLParser

from reconciliation_helpers import HOSTILE_IDS

from settlement.reconciliation import (
    DayReconciliation,
    day_totals,
    render_day_html,
    summarize_day,
    summarize_month,
)
from settlement.reconciliation.records import grand_total

EXTERNAL_ATTRIBUTES = {"src", "href", "srcset", "action", "data", "poster", "xlink:href"}


class PageReader(HTMLParser):
    """Collects tags, attributes and the amounts of the rows marked as totals."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.attributes: list[tuple[str, str | None]] = []
        self.table_id: str | None = None
        self.in_total_row = False
        self.totals: dict[str, list[tuple[str, str]]] = {}
        self.open_cell: tuple[str, str] | None = None
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.attributes.extend(attrs)
        values = dict(attrs)
        if tag == "table":
            self.table_id = values.get("id")
        if tag == "tr":
            self.in_total_row = values.get("class") == "total"
        if tag == "td" and self.in_total_row and self.table_id:
            marker = values.get("data-fen") or values.get("data-count")
            if marker is not None:
                self.open_cell = (marker, "")

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if self.open_cell is not None:
            self.open_cell = (self.open_cell[0], self.open_cell[1] + data)

    def handle_endtag(self, tag: str) -> None:
        if tag == "td" and self.open_cell is not None and self.table_id:
            self.totals.setdefault(self.table_id, []).append(self.open_cell)
            self.open_cell = None


def read(page: str) -> PageReader:
    reader = PageReader()
    reader.feed(page)
    reader.close()
    return reader


def test_the_page_parses_and_references_nothing_outside_itself(day_with_discrepancies: DayReconciliation) -> None:
    page = render_day_html(day_with_discrepancies)
    reader = read(page)

    assert {"html", "svg", "table", "style"} <= set(reader.tags)
    assert not {"script", "link", "img", "iframe", "object", "embed"} & set(reader.tags)
    assert not [name for name, _ in reader.attributes if name in EXTERNAL_ATTRIBUTES]
    assert "http://" not in page.replace(HOSTILE_IDS_ESCAPED, "")
    assert "https://" not in page
    assert "url(" not in page
    assert "@import" not in page


HOSTILE_IDS_ESCAPED = "=HYPERLINK(&quot;http://evil.example/x&quot;,&quot;click&quot;)"


def test_text_from_a_file_is_escaped_not_interpreted(day_with_discrepancies: DayReconciliation) -> None:
    page = render_day_html(day_with_discrepancies)

    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert HOSTILE_IDS_ESCAPED in page
    assert HOSTILE_IDS[1] not in page
    assert "script" not in read(page).tags


def test_the_page_shows_the_same_day_totals_as_the_ledger(day_with_discrepancies: DayReconciliation) -> None:
    day = day_with_discrepancies
    reader = read(render_day_html(day))

    expected = grand_total(day_totals(day.records))
    (count, total, fund, account, cash) = reader.totals["day-totals"]
    assert [int(value) for value, _ in (count, total, fund, account, cash)] == [
        expected.count,
        expected.total_fen,
        expected.fund_paid_fen,
        expected.account_paid_fen,
        expected.cash_fen,
    ]
    shown_total = total[1].replace(",", "")
    assert shown_total == f"{expected.total_fen // 100}.{expected.total_fen % 100:02d}"


def test_the_month_section_shows_the_days_and_the_months_total(day_with_discrepancies: DayReconciliation) -> None:
    day = day_with_discrepancies
    summary = summarize_day(day)
    month = summarize_month("H1", 2024, 3, [summary])

    reader = read(render_day_html(day, month))

    (count, total, *_rest) = reader.totals["month"]
    assert int(count[0]) == summary.day_total.count
    assert int(total[0]) == summary.day_total.total_fen == month.month_total.total_fen
    assert "NOT balanced" in "".join(reader.text)
