"""Inline SVG bar charts for the HTML report: payers' split of the day, and the month's daily totals.

Owns: chart geometry only. Every label passes through ``html.escape``; the SVG references nothing
outside itself (no images, fonts, links, not even an xmlns URL: inline SVG in HTML5 needs none).
Must never compute money: it receives fen and only scales them to pixels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from settlement.reconciliation.report_common import yuan_text

FUND_COLOUR = "#2f6fb0"
ACCOUNT_COLOUR = "#3a9a5b"
CASH_COLOUR = "#d08a2c"
UNBALANCED_COLOUR = "#c0392b"
BALANCED_COLOUR = "#2f6fb0"


@dataclass(frozen=True, slots=True)
class PayerBar:
    payer: str
    fund_paid_fen: int
    account_paid_fen: int
    cash_fen: int

    @property
    def total_fen(self) -> int:
        return self.fund_paid_fen + self.account_paid_fen + self.cash_fen


@dataclass(frozen=True, slots=True)
class DayBar:
    label: str  # day of month
    total_fen: int
    balanced: bool


def _scale(amount_fen: int, largest_fen: int, pixels: int) -> int:
    return amount_fen * pixels // largest_fen if largest_fen > 0 else 0


def payer_chart(bars: Sequence[PayerBar]) -> str:
    """Horizontal stacked bars, one per payer: fund paid, account paid, cash."""
    label_width, bar_width, row_height = 160, 480, 28
    height = row_height * len(bars) + 40
    largest = max((bar.total_fen for bar in bars), default=0)
    parts = [f'<svg role="img" width="{label_width + bar_width + 140}" height="{height}" aria-label="day by payer">']
    for index, bar in enumerate(bars):
        y = 10 + index * row_height
        parts.append(f'<text x="0" y="{y + 16}" class="label">{escape(bar.payer)}</text>')
        x = label_width
        for amount_fen, colour, name in (
            (bar.fund_paid_fen, FUND_COLOUR, "fund paid"),
            (bar.account_paid_fen, ACCOUNT_COLOUR, "account paid"),
            (bar.cash_fen, CASH_COLOUR, "cash"),
        ):
            width = _scale(amount_fen, largest, bar_width)
            parts.append(
                f'<rect x="{x}" y="{y}" width="{width}" height="20" fill="{colour}">'
                f"<title>{escape(bar.payer)} {name}: {yuan_text(amount_fen, grouped=True)}</title></rect>"
            )
            x += width
        parts.append(f'<text x="{x + 6}" y="{y + 16}">{yuan_text(bar.total_fen, grouped=True)}</text>')
    legend_y = height - 10
    for offset, (colour, name) in enumerate(
        ((FUND_COLOUR, "fund paid"), (ACCOUNT_COLOUR, "account paid"), (CASH_COLOUR, "cash"))
    ):
        x = label_width + offset * 130
        parts.append(f'<rect x="{x}" y="{legend_y - 10}" width="10" height="10" fill="{colour}"/>')
        parts.append(f'<text x="{x + 14}" y="{legend_y}">{name}</text>')
    parts.append("</svg>")
    return "".join(parts)


def month_chart(bars: Sequence[DayBar]) -> str:
    """Vertical bars, one per reconciled day; an unbalanced day is drawn in red."""
    column_width, chart_height, left = 22, 200, 10
    width = left + column_width * max(len(bars), 1) + 10
    largest = max((bar.total_fen for bar in bars), default=0)
    parts = [f'<svg role="img" width="{width}" height="{chart_height + 40}" aria-label="daily totals of the month">']
    for index, bar in enumerate(bars):
        height = _scale(bar.total_fen, largest, chart_height)
        x = left + index * column_width
        colour = BALANCED_COLOUR if bar.balanced else UNBALANCED_COLOUR
        state = "balanced" if bar.balanced else "NOT balanced"
        parts.append(
            f'<rect x="{x}" y="{chart_height - height + 10}" width="{column_width - 4}" height="{height}" '
            f'fill="{colour}"><title>{escape(bar.label)}: {yuan_text(bar.total_fen, grouped=True)}, '
            f"{state}</title></rect>"
        )
        parts.append(f'<text x="{x}" y="{chart_height + 28}" class="tick">{escape(bar.label)}</text>')
    parts.append("</svg>")
    return "".join(parts)
