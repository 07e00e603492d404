"""Settlement entries as rows: what a settle or a reversal writes, built from the domain's results.

Owns: the row shapes of ``settlements`` and ``settlement_lines``, the negation of a stored entry for a
cancellation, the ledger postings of an entry, and writing an entry with its postings and the person's
new balances in one go. Must never decide whether an entry may be written: handlers do that first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Any

from settlement.domain import AccountState, ChargeLine, SplitResult, effect_of
from settlement.domain.ledger import Posting, SettlementMoney, settlement_postings
from settlement.domain.policy import VisitType
from settlement.service.views import SPLIT_AMOUNT_FIELDS
from settlement.storage.repository import Repository

# National clearing categories (clr_type) by visit type, the key finance totals use (3201).
CLEARING_TYPES = {VisitType.OUTPATIENT: "11", VisitType.EMERGENCY: "13", VisitType.CHRONIC: "14"}

# What a cancellation negates: the split's amounts and what the settlement did to the accumulators.
SPLIT_AMOUNT_COLUMNS = (*SPLIT_AMOUNT_FIELDS, "deductible_delta_fen", "fund_delta_fen", "self_segment_delta_fen")
LINE_PART_COLUMNS = ("amount_fen", "fully_self_paid_fen", "over_ceiling_fen", "pre_self_paid_fen", "in_scope_fen")


def split_columns(result: SplitResult) -> dict[str, int]:
    effect = effect_of(result)
    return {
        "total_fen": result.total_fen,
        "fully_self_paid_fen": result.fully_self_paid_fen,
        "over_ceiling_fen": result.over_ceiling_fen,
        "pre_self_paid_fen": result.pre_self_paid_fen,
        "in_scope_fen": result.in_scope_fen,
        "deductible_paid_fen": result.deductible_paid_fen,
        "fund_paid_fen": result.fund_paid_fen,
        "personal_part_fen": result.personal_part_fen,
        "account_paid_fen": result.account_paid_fen,
        "current_year_paid_fen": result.current_year_paid_fen,
        "historical_paid_fen": result.historical_paid_fen,
        "self_segment_fen": result.self_segment_fen,
        "cash_fen": result.cash_fen,
        "current_year_after_fen": result.after.current_year_fen,
        "historical_after_fen": result.after.historical_fen,
        "deductible_delta_fen": effect.ytd_deductible_fen,
        "fund_delta_fen": effect.ytd_fund_fen,
        "self_segment_delta_fen": effect.ytd_self_segment_fen,
    }


def line_rows(settlement_id: str, lines: Sequence[ChargeLine], result: SplitResult) -> list[dict[str, Any]]:
    return [
        {
            "settlement_id": settlement_id,
            "line_number": number,
            "item_code": line.code,
            "item_class": line.category.value,
            "self_pay_ratio": str(line.selfpay_ratio),
            "line_id": line.line_id,
            "quantity": str(line.quantity) if line.quantity else "",
            "unit_price": str(line.unit_price) if line.unit_price else "",
            "price_ceiling": str(line.price_ceiling) if line.price_ceiling else "",
            "amount_fen": part.amount_fen,
            "fully_self_paid_fen": part.fully_self_paid_fen,
            "over_ceiling_fen": part.over_ceiling_fen,
            "pre_self_paid_fen": part.pre_self_paid_fen,
            "in_scope_fen": part.in_scope_fen,
        }
        for number, (line, part) in enumerate(zip(lines, result.lines, strict=True))
    ]


def postings_of(row: Mapping[str, Any]) -> tuple[Posting, ...]:
    """The postings of a stored settlement row (a cancellation's are its original's, reversed)."""
    sign = -1 if row["kind"] == "cancellation" else 1
    money = SettlementMoney(
        person_number=str(row["person_number"]),
        region=str(row["region"]),
        hospital_id=str(row["hospital_id"]),
        fund_paid_fen=sign * int(row["fund_paid_fen"]),
        current_year_paid_fen=sign * int(row["current_year_paid_fen"]),
        historical_paid_fen=sign * int(row["historical_paid_fen"]),
        cash_fen=sign * int(row["cash_fen"]),
    )
    postings = settlement_postings(money)
    return tuple(p.reversed() for p in postings) if sign < 0 else postings


def negated_row(
    original: Mapping[str, Any], *, settlement_id: str, request_id: str, changes: Mapping[str, Any], after: AccountState
) -> dict[str, Any]:
    """The cancellation entry of ``original``: every stored amount negated, never recomputed (§3)."""
    row = dict(original)
    for column in SPLIT_AMOUNT_COLUMNS:
        row[column] = -int(original[column])
    row.update(changes)
    row.update(
        settlement_id=settlement_id,
        request_id=request_id,
        kind="cancellation",
        reverses_id=original["settlement_id"],
        replaces_id=None,
        current_year_after_fen=after.current_year_fen,
        historical_after_fen=after.historical_fen,
    )
    return row


def negated_lines(lines: Sequence[Mapping[str, Any]], settlement_id: str) -> list[dict[str, Any]]:
    negated = []
    for line in lines:
        row = dict(line)
        row["settlement_id"] = settlement_id
        for column in LINE_PART_COLUMNS:
            row[column] = -int(line[column])
        negated.append(row)
    return negated


def restored_state(original: Mapping[str, Any], state: AccountState) -> AccountState:
    """The person's state after cancelling ``original``: its stored effect, negated."""
    return AccountState(
        current_year_fen=state.current_year_fen + int(original["current_year_paid_fen"]),
        historical_fen=state.historical_fen + int(original["historical_paid_fen"]),
        ytd_deductible_fen=state.ytd_deductible_fen - int(original["deductible_delta_fen"]),
        ytd_fund_fen=state.ytd_fund_fen - int(original["fund_delta_fen"]),
        ytd_self_segment_fen=state.ytd_self_segment_fen - int(original["self_segment_delta_fen"]),
    )


def write_entry(
    repo: Repository, row: Mapping[str, Any], lines: Sequence[Mapping[str, Any]], after: AccountState
) -> None:
    """The entry, its lines, its postings and the person's balances and accumulators after it."""
    repo.insert_settlement(dict(row), [dict(line) for line in lines])
    business_date: dt.date = row["business_date"]
    repo.post(str(row["settlement_id"]), business_date, postings_of(row))
    repo.write_account_state(str(row["person_number"]), int(row["accumulator_year"]), after)
