"""What the service answers: settlements, lines, accounts and quotes as plain immutable values.

Owns: building replies from stored rows, so a first reply and every retry of it are built the same way
from the same rows. Must never compute money: every figure here was computed by the domain and stored.
The gRPC layer maps these to proto messages one field at a time.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, NamedTuple

from settlement.domain import ChargeLine, LineSplit, SplitResult


class Status(StrEnum):
    SETTLED = "settled"
    CANCELLED = "cancelled"  # a settlement reversed by a later cancellation entry
    CANCELLATION = "cancellation"  # the reversing entry itself


# The three views built for every reply are NamedTuples: a frozen dataclass sets each field through
# object.__setattr__, which cost the single writer thread about a tenth of its time per settle.
class LineView(NamedTuple):
    line_number: int
    hospital_line_id: str
    item_code: str
    item_class: str
    self_pay_ratio: str
    quantity: str
    unit_price_yuan: str
    amount_fen: int
    fully_self_paid_fen: int
    over_ceiling_fen: int
    pre_self_paid_fen: int
    in_scope_fen: int


class SplitView(NamedTuple):
    """Every field of domain.md §2 (national names in the proto comments) and the balances after."""

    model: str
    policy_version: str
    total_fen: int
    fully_self_paid_fen: int
    over_ceiling_fen: int
    pre_self_paid_fen: int
    in_scope_fen: int
    deductible_paid_fen: int
    fund_paid_fen: int
    personal_part_fen: int
    account_paid_fen: int
    current_year_paid_fen: int
    historical_paid_fen: int
    self_segment_fen: int
    cash_fen: int
    current_year_after_fen: int
    historical_after_fen: int
    lines: tuple[LineView, ...]

    @property
    def balance_after_fen(self) -> int:
        return self.current_year_after_fen + self.historical_after_fen


# The split's amounts as stored on every entry (negated on a cancellation), in the order of domain.md §2.
SPLIT_AMOUNT_FIELDS = (
    "total_fen",
    "fully_self_paid_fen",
    "over_ceiling_fen",
    "pre_self_paid_fen",
    "in_scope_fen",
    "deductible_paid_fen",
    "fund_paid_fen",
    "personal_part_fen",
    "account_paid_fen",
    "current_year_paid_fen",
    "historical_paid_fen",
    "self_segment_fen",
    "cash_fen",
)
_SPLIT_COLUMNS = (*SPLIT_AMOUNT_FIELDS, "current_year_after_fen", "historical_after_fen")


class SettlementView(NamedTuple):
    settlement_id: str
    request_id: str
    status: Status
    hospital_id: str
    hospital_name: str
    terminal_id: str
    operator_id: str
    person_number: str
    card_number_masked: str
    card_present: bool
    insured_type: str
    visit_type: str
    visit_date: dt.date
    use_account: bool
    settled_at_us: int
    business_date: dt.date
    split: SplitView
    reverses_id: str
    reversed_by_id: str
    replaces_id: str


@dataclass(frozen=True, slots=True)
class AccountView:
    person_number: str
    name: str
    insured_type: str
    region: str
    card_number_masked: str
    card_status: str
    current_year_fen: int
    historical_fen: int
    accumulator_year: int
    deductible_used_fen: int
    fund_paid_fen: int
    self_segment_used_fen: int

    @property
    def balance_fen(self) -> int:
        return self.current_year_fen + self.historical_fen


@dataclass(frozen=True, slots=True)
class QuoteView:
    quote_id: str
    unpredictable_number: bytes
    expires_at_us: int
    split: SplitView


def line_views(rows: Sequence[Mapping[str, Any]]) -> tuple[LineView, ...]:
    return tuple(
        LineView(
            line_number=int(row["line_number"]),
            hospital_line_id=str(row["line_id"]),
            item_code=str(row["item_code"]),
            item_class=str(row["item_class"]),
            self_pay_ratio=str(row["self_pay_ratio"]),
            quantity=str(row["quantity"]),
            unit_price_yuan=str(row["unit_price"]),
            amount_fen=int(row["amount_fen"]),
            fully_self_paid_fen=int(row["fully_self_paid_fen"]),
            over_ceiling_fen=int(row["over_ceiling_fen"]),
            pre_self_paid_fen=int(row["pre_self_paid_fen"]),
            in_scope_fen=int(row["in_scope_fen"]),
        )
        for row in rows
    )


def settlement_view(
    row: Mapping[str, Any],
    lines: Sequence[Mapping[str, Any]],
    *,
    hospital_name: str,
    reversed_by_id: str | None,
) -> SettlementView:
    """``reversed_by_id=None`` shows the entry as written (idempotent replies); else as it stands now."""
    if row["kind"] == "cancellation":
        status = Status.CANCELLATION
    elif reversed_by_id:
        status = Status.CANCELLED
    else:
        status = Status.SETTLED
    split = SplitView(
        model=str(row["model"]),
        policy_version=str(row["policy_version"]),
        lines=line_views(lines),
        **{column: int(row[column]) for column in _SPLIT_COLUMNS},
    )
    return SettlementView(
        settlement_id=str(row["settlement_id"]),
        request_id=str(row["request_id"]),
        status=status,
        hospital_id=str(row["hospital_id"]),
        hospital_name=hospital_name,
        terminal_id=str(row["terminal_id"]),
        operator_id=str(row["operator_id"]),
        person_number=str(row["person_number"]),
        card_number_masked=mask_last4(str(row["card_number_last4"])),
        card_present=bool(row["card_present"]),
        insured_type=str(row["insured_type"]),
        visit_type=str(row["visit_type"]),
        visit_date=row["visit_date"],
        use_account=bool(row["use_account"]),
        settled_at_us=int(row["created_at_us"]),
        business_date=row["business_date"],
        split=split,
        reverses_id=str(row["reverses_id"] or ""),
        reversed_by_id=reversed_by_id or "",
        replaces_id=str(row["replaces_id"] or ""),
    )


def mask_last4(last4: str) -> str:
    """A stored last-4 shown as a masked card number; empty when no card was read."""
    return f"************{last4}" if last4 else ""


def quoted_split(result: SplitResult, lines: Sequence[ChargeLine], *, model: str, policy_version: str) -> SplitView:
    return SplitView(
        model=model,
        policy_version=policy_version,
        lines=tuple(_line_view(n, line, part) for n, (line, part) in enumerate(zip(lines, result.lines, strict=True))),
        total_fen=result.total_fen,
        fully_self_paid_fen=result.fully_self_paid_fen,
        over_ceiling_fen=result.over_ceiling_fen,
        pre_self_paid_fen=result.pre_self_paid_fen,
        in_scope_fen=result.in_scope_fen,
        deductible_paid_fen=result.deductible_paid_fen,
        fund_paid_fen=result.fund_paid_fen,
        personal_part_fen=result.personal_part_fen,
        account_paid_fen=result.account_paid_fen,
        current_year_paid_fen=result.current_year_paid_fen,
        historical_paid_fen=result.historical_paid_fen,
        self_segment_fen=result.self_segment_fen,
        cash_fen=result.cash_fen,
        current_year_after_fen=result.after.current_year_fen,
        historical_after_fen=result.after.historical_fen,
    )


def _line_view(number: int, line: ChargeLine, part: LineSplit) -> LineView:
    return LineView(
        line_number=number,
        hospital_line_id=line.line_id,
        item_code=line.code,
        item_class=line.category.value,
        self_pay_ratio=str(line.selfpay_ratio),
        quantity=str(line.quantity) if line.quantity else "",
        unit_price_yuan=str(line.unit_price) if line.unit_price else "",
        amount_fen=part.amount_fen,
        fully_self_paid_fen=part.fully_self_paid_fen,
        over_ceiling_fen=part.over_ceiling_fen,
        pre_self_paid_fen=part.pre_self_paid_fen,
        in_scope_fen=part.in_scope_fen,
    )
