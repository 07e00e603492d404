"""Thirty days at two hospitals, about 1 % of each discrepancy kind injected into otherwise agreeing
files: every injection is reported with the right kind and ids, and nothing else is reported."""

from __future__ import annotations

import random
from dataclasses import replace
from datetime import date, timedelta

from settlement.reconciliation import (
    Counterpart,
    DiscrepancyKind,
    LedgerRecord,
    SettlementStatus,
    day_balanced,
    parse_his_export,
    parse_insurer_detail,
    reconcile_day,
)
from settlement.reconciliation.sample import (
    SampleLine,
    his_export_bytes,
    insurer_detail_bytes,
    lines_from_records,
    sample_day,
)

SETTLEMENTS_PER_DAY = 300
INJECTIONS_PER_KIND = 3  # 1 % of 300
Expected = set[tuple[Counterpart, DiscrepancyKind, str, str]]


def _flip(status: SettlementStatus) -> SettlementStatus:
    return SettlementStatus.SETTLED if status is SettlementStatus.CANCELLED else SettlementStatus.CANCELLED


def _stranger(line: SampleLine, number: int) -> SampleLine:
    return replace(line, settlement_id=f"X{number}-{line.settlement_id}", request_id=f"XR{number}")


def _inject_his(lines: list[SampleLine], picks: list[int], rng: random.Random, expected: Expected) -> list[SampleLine]:
    only_ours, only_theirs, amounts, statuses = (picks[i::4] for i in range(4))
    result = list(lines)
    for index in statuses:
        result[index] = replace(result[index], status=_flip(result[index].status))
        expected.add((Counterpart.HIS, DiscrepancyKind.STATUS_DIFFERS, lines[index].settlement_id, "status"))
    for index in amounts:
        # The HIS export must still add up (the parser refuses it otherwise), so two fields move together.
        line, delta = result[index], rng.randint(1, 5_000)
        field = rng.choice(("fund_paid_fen", "account_paid_fen", "cash_fen"))
        result[index] = replace(line, total_fen=line.total_fen + delta, **{field: getattr(line, field) + delta})
        for changed in ("total_fen", field):
            expected.add((Counterpart.HIS, DiscrepancyKind.AMOUNT_DIFFERS, line.settlement_id, changed))
    for number, index in enumerate(only_theirs):
        stranger = _stranger(lines[index], number)
        result.append(stranger)
        expected.add((Counterpart.HIS, DiscrepancyKind.ONLY_THEIRS, stranger.settlement_id, ""))
    for index in only_ours:
        expected.add((Counterpart.HIS, DiscrepancyKind.ONLY_OURS, lines[index].settlement_id, ""))
    dropped = {lines[index].settlement_id for index in only_ours}
    return [line for line in result if line.settlement_id not in dropped]


def _inject_insurer(
    lines: list[SampleLine], picks: list[int], rng: random.Random, expected: Expected
) -> list[SampleLine]:
    only_ours, only_theirs, amounts, statuses, duplicates = (picks[i::5] for i in range(5))
    result = list(lines)
    for index in statuses:
        result[index] = replace(result[index], status=_flip(result[index].status))
        expected.add((Counterpart.INSURER, DiscrepancyKind.STATUS_DIFFERS, lines[index].settlement_id, "status"))
    for index in amounts:
        line, delta = result[index], rng.randint(1, 5_000)
        # One field alone; the insurer file only requires fund + account <= total.
        field = rng.choice(("total_fen", "fund_paid_fen", "account_paid_fen"))
        changed = getattr(line, field) + delta if field == "total_fen" else max(0, getattr(line, field) - delta)
        if changed == getattr(line, field):
            field, changed = "total_fen", line.total_fen + delta
        result[index] = replace(line, **{field: changed})
        expected.add((Counterpart.INSURER, DiscrepancyKind.AMOUNT_DIFFERS, line.settlement_id, field))
    for index in duplicates:
        result.append(result[index])
        expected.add((Counterpart.INSURER, DiscrepancyKind.DUPLICATE, lines[index].settlement_id, ""))
    for number, index in enumerate(only_theirs):
        stranger = _stranger(lines[index], number)
        result.append(stranger)
        expected.add((Counterpart.INSURER, DiscrepancyKind.ONLY_THEIRS, stranger.settlement_id, ""))
    for index in only_ours:
        expected.add((Counterpart.INSURER, DiscrepancyKind.ONLY_OURS, lines[index].settlement_id, ""))
    dropped = {lines[index].settlement_id for index in only_ours}
    return [line for line in result if line.settlement_id not in dropped]


def _inject_ours(records: list[LedgerRecord], index: int, expected: Expected) -> list[LedgerRecord]:
    # A settlement twice in our own records (a broken query, say) shows against both counterparts.
    for counterpart in Counterpart:
        expected.add((counterpart, DiscrepancyKind.DUPLICATE, records[index].settlement_id, ""))
    return [*records, records[index]]


def _simulate_day(hospital_id: str, business_date: date) -> tuple[Expected, Expected, bool]:
    records = sample_day(hospital_id, business_date, SETTLEMENTS_PER_DAY, seed=2024)
    rng = random.Random(f"inject/{hospital_id}/{business_date}")
    lines = lines_from_records(records)
    expected: Expected = set()
    picks = rng.sample(range(len(records)), 4 * INJECTIONS_PER_KIND + 5 * INJECTIONS_PER_KIND + 1)
    his_lines = _inject_his(lines, picks[: 4 * INJECTIONS_PER_KIND], rng, expected)
    insurer_lines = _inject_insurer(lines, picks[4 * INJECTIONS_PER_KIND : -1], rng, expected)
    ours = _inject_ours(records, picks[-1], expected)
    # Alternate encodings: half the days arrive as GBK, as many HIS systems send them.
    encoding = "gbk" if business_date.day % 2 else "utf-8"
    his = parse_his_export(his_export_bytes(his_lines, encoding=encoding), file_name="his.csv")
    insurer = parse_insurer_detail(insurer_detail_bytes(insurer_lines), file_name="3202.txt")

    day = reconcile_day(hospital_id, business_date, ours, his, insurer)

    reported_list = [(d.counterpart, d.kind, d.settlement_id, d.field) for d in day.discrepancies]
    assert len(reported_list) == len(set(reported_list)), "a discrepancy was reported twice"
    return expected, set(reported_list), day_balanced(day)


def test_thirty_days_at_two_hospitals_report_every_injected_discrepancy_and_nothing_else() -> None:
    expected_all: set[tuple[object, ...]] = set()
    reported_all: set[tuple[object, ...]] = set()
    days = 0
    for hospital_id in ("H1", "H2"):
        for offset in range(30):
            business_date = date(2024, 3, 1) + timedelta(days=offset)
            expected, reported, balanced = _simulate_day(hospital_id, business_date)
            missed, false_positives = expected - reported, reported - expected
            assert not missed, f"{hospital_id} {business_date}: missed {sorted(missed, key=str)[:5]}"
            assert not false_positives, f"{hospital_id} {business_date}: extra {sorted(false_positives, key=str)[:5]}"
            assert not balanced
            expected_all |= {(hospital_id, business_date, *item) for item in expected}
            reported_all |= {(hospital_id, business_date, *item) for item in reported}
            days += 1

    assert days == 60
    assert reported_all == expected_all
    kinds = {item[3] for item in expected_all}
    assert kinds == set(DiscrepancyKind)
    assert len(expected_all) > 60 * 9 * INJECTIONS_PER_KIND


def test_a_day_without_injections_balances_against_both_files() -> None:
    records = sample_day("H1", date(2024, 3, 31), SETTLEMENTS_PER_DAY, seed=1)
    lines = lines_from_records(records)
    his = parse_his_export(his_export_bytes(lines, encoding="gbk"), file_name="his.csv")
    insurer = parse_insurer_detail(insurer_detail_bytes(lines, header=False), file_name="3202.txt")

    day = reconcile_day("H1", date(2024, 3, 31), records, his, insurer)

    assert day.discrepancies == ()
    assert day_balanced(day)
