"""The self-contained HTML page: the day by payer, totals against each counterpart, discrepancies, month.

Owns: the page. Inline CSS and inline SVG only, a Content-Security-Policy that forbids fetching
anything, and every piece of text escaped. Amount cells carry their exact value in ``data-fen`` so a
test (or a script in finance) can check the page against the ledger to the fen. Must never reference a
network resource or put unescaped text from a file into the page.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from html import escape

from settlement.reconciliation import limits
from settlement.reconciliation.matching import CounterpartReconciliation, DayReconciliation, DiscrepancyKind
from settlement.reconciliation.month import MonthSummary
from settlement.reconciliation.records import Totals, TotalsKey, grand_total
from settlement.reconciliation.report_common import (
    DISCREPANCY_COLUMNS,
    discrepancy_row,
    sorted_discrepancies,
    yuan_text,
)
from settlement.reconciliation.svg_charts import DayBar, PayerBar, month_chart, payer_chart

_CSS = """
body{font-family:system-ui,"PingFang SC","Microsoft YaHei",sans-serif;margin:24px;color:#222}
h1{font-size:22px}h2{font-size:18px;margin-top:28px;border-bottom:1px solid #ccc}
table{border-collapse:collapse;margin:8px 0}th,td{border:1px solid #ccc;padding:3px 8px;font-size:13px}
th{background:#f2f2f2}td.amount{text-align:right;font-variant-numeric:tabular-nums}
tr.total td{font-weight:bold;background:#fafafa}.ok{color:#1e7d32}.bad{color:#c0392b;font-weight:bold}
svg text{font-size:12px}svg text.tick{font-size:10px}
"""
# Nothing may be fetched: no scripts, images, fonts or styles from anywhere, only what is inline.
_CSP = "default-src 'none'; style-src 'unsafe-inline'"
TOTAL_COLUMNS = ("count", "total", "fund paid", "account paid", "cash")


def _amount(amount_fen: int) -> str:
    return f'<td class="amount" data-fen="{amount_fen}">{yuan_text(amount_fen, grouped=True)}</td>'


def _totals_cells(totals: Totals) -> str:
    return (
        f'<td class="amount" data-count="{totals.count}">{totals.count}</td>'
        + _amount(totals.total_fen)
        + _amount(totals.fund_paid_fen)
        + _amount(totals.account_paid_fen)
        + _amount(totals.cash_fen)
    )


def _verdict(balanced: bool) -> str:
    return '<span class="ok">balanced</span>' if balanced else '<span class="bad">NOT balanced</span>'


def _head(cells: Iterable[str]) -> str:
    return "<tr>" + "".join(f"<th>{escape(cell)}</th>" for cell in cells) + "</tr>"


def _our_totals(totals: Mapping[TotalsKey, Totals], table_id: str) -> str:
    rows = [f'<table id="{table_id}">', _head(("payer", "insured type", "clearing type", *TOTAL_COLUMNS))]
    for key, value in totals.items():
        rows.append(
            f"<tr><td>{escape(key.clearing_agency)}</td><td>{escape(key.insured_type)}</td>"
            f"<td>{escape(key.clearing_type)}</td>{_totals_cells(value)}</tr>"
        )
    rows.append(f'<tr class="total"><td colspan="3">total</td>{_totals_cells(grand_total(dict(totals)))}</tr>')
    rows.append("</table>")
    return "".join(rows)


def _counterpart_totals(part: CounterpartReconciliation) -> str:
    title = f"Totals against {part.counterpart.value} ({part.file_name})"
    rows = [
        f"<h3>{escape(title)}: {_verdict(part.balanced)}</h3><table>",
        _head(("payer", "insured type", "clearing type"))
        + "".join(f"<th>ours: {name}</th>" for name in TOTAL_COLUMNS)
        + "".join(f"<th>theirs: {name}</th>" for name in TOTAL_COLUMNS)
        + "<th>3201</th>",
    ]
    for line in part.totals:
        rows.append(
            f"<tr><td>{escape(line.key.clearing_agency)}</td><td>{escape(line.key.insured_type)}</td>"
            f"<td>{escape(line.key.clearing_type)}</td>{_totals_cells(line.ours)}{_totals_cells(line.theirs)}"
            f"<td>{_verdict(line.balanced)}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def _discrepancies(day: DayReconciliation) -> str:
    found = sorted_discrepancies(day.discrepancies)
    counts = "".join(
        f"<tr><td>{kind.value}</td><td>{sum(1 for item in found if item.kind is kind)}</td></tr>"
        for kind in DiscrepancyKind
    )
    parts = [f'<table id="discrepancy-counts">{_head(("kind", "count"))}{counts}</table>']
    if not found:
        return parts[0] + "<p>No discrepancies.</p>"
    shown = found[: limits.MAX_HTML_DISCREPANCY_ROWS]
    if len(found) > len(shown):
        parts.append(f"<p>The first {len(shown)} of {len(found)} are listed; the CSV and workbook list all.</p>")
    parts.append('<table id="discrepancies">' + _head(DISCREPANCY_COLUMNS))
    for item in shown:
        texts = discrepancy_row(item).texts
        parts.append("<tr>" + "".join(f"<td>{escape(texts[name])}</td>" for name in DISCREPANCY_COLUMNS) + "</tr>")
    parts.append("</table>")
    return "".join(parts)


def _payer_bars(totals: Mapping[TotalsKey, Totals]) -> list[PayerBar]:
    by_payer: dict[str, Totals] = {}
    for key, value in totals.items():
        by_payer[key.clearing_agency] = by_payer.get(key.clearing_agency, Totals()) + value
    return [
        PayerBar(payer, value.fund_paid_fen, value.account_paid_fen, value.cash_fen)
        for payer, value in sorted(by_payer.items())
    ]


def _month(month: MonthSummary) -> str:
    title = f"Month {month.year}-{month.month:02d}: {len(month.days)} day(s) reconciled"
    bars = [DayBar(str(day.business_date.day), day.day_total.total_fen, day.balanced) for day in month.days]
    rows = [
        f"<h2>{escape(title)}, {_verdict(month.balanced)}</h2>",
        month_chart(bars),
        '<table id="month">' + _head(("date", *TOTAL_COLUMNS, "discrepancies", "reconciliation")),
    ]
    for day in month.days:
        rows.append(
            f"<tr><td>{day.business_date.isoformat()}</td>{_totals_cells(day.day_total)}"
            f"<td>{day.discrepancy_count}</td><td>{_verdict(day.balanced)}</td></tr>"
        )
    rows.append(
        f'<tr class="total"><td>month</td>{_totals_cells(month.month_total)}'
        f"<td>{sum(day.discrepancy_count for day in month.days)}</td><td>{_verdict(month.balanced)}</td></tr>"
    )
    rows.append("</table>")
    return "".join(rows)


def render_day_html(day: DayReconciliation, month: MonthSummary | None = None) -> str:
    """The whole page as a string; ``month`` adds the month's daily totals below the day."""
    title = f"Reconciliation {day.hospital_id} {day.business_date.isoformat()}"
    body = [
        f"<h1>{escape(title)}: {_verdict(day.balanced)}</h1>",
        "<h2>The day by payer (our ledger, settled settlements)</h2>",
        payer_chart(_payer_bars(day.our_totals)),
        _our_totals(day.our_totals, "day-totals"),
        "<h2>Totals reconciliation (3201)</h2>",
        *(_counterpart_totals(part) for part in day.counterparts),
        "<h2>Discrepancies (3202, line by line)</h2>",
        _discrepancies(day),
    ]
    if month is not None:
        body.append(_month(month))
    return (
        '<!DOCTYPE html>\n<html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">'
        f"<title>{escape(title)}</title><style>{_CSS}</style></head><body>" + "".join(body) + "</body></html>\n"
    )
