from __future__ import annotations

from datetime import date

from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.reconciliation import (
    LedgerRecord,
    SettlementStatus,
    day_balanced,
    parse_his_export,
    parse_insurer_detail,
    reconcile_day,
)
from settlement.reconciliation.sample import his_export_bytes, insurer_detail_bytes, lines_from_records

BUSINESS_DATE = date(2024, 3, 5)
# Ids with what CSV must quote (commas, quotes) and what GBK must carry (Chinese), but no spaces at the
# ends, tabs or line breaks, which the formats cannot hold.
ID_ALPHABET = st.sampled_from('abcXYZ0189-_.,"=+#/院门诊号')


@st.composite
def ledger_records(draw: st.DrawFn) -> list[LedgerRecord]:
    ids = draw(st.lists(st.text(ID_ALPHABET, min_size=1, max_size=20), max_size=40, unique=True))
    records = []
    for settlement_id in ids:
        total = draw(st.integers(0, 10**10))
        fund = draw(st.integers(0, total))
        account = draw(st.integers(0, total - fund))
        records.append(
            LedgerRecord(
                settlement_id=settlement_id,
                request_id=draw(st.text(ID_ALPHABET, min_size=1, max_size=20)),
                hospital_id="H1",
                visit_id=draw(st.text(ID_ALPHABET, min_size=1, max_size=20)),
                person_number_masked="****0001",
                insured_type=draw(st.sampled_from(["310", "390"])),
                clearing_type="11",
                clearing_agency=draw(st.sampled_from(["330100", "339900"])),
                business_date=BUSINESS_DATE,
                status=draw(st.sampled_from(SettlementStatus)),
                total_fen=total,
                fund_paid_fen=fund,
                account_paid_fen=account,
                cash_fen=total - fund - account,
            )
        )
    return records


@settings(max_examples=150, deadline=None)
@given(records=ledger_records(), encoding=st.sampled_from(["utf-8", "gbk"]), header=st.booleans())
def test_reconciling_a_day_against_files_written_from_it_reports_nothing(
    records: list[LedgerRecord], encoding: str, header: bool
) -> None:
    lines = lines_from_records(records)
    his = parse_his_export(his_export_bytes(lines, encoding=encoding), file_name="his.csv")
    insurer = parse_insurer_detail(insurer_detail_bytes(lines, header=header), file_name="3202.txt")

    day = reconcile_day("H1", BUSINESS_DATE, records, his, insurer)

    assert day.discrepancies == ()
    assert day_balanced(day)


@settings(max_examples=150, deadline=None)
@given(records=ledger_records())
def test_every_settlement_removed_from_their_side_is_reported_as_only_ours(records: list[LedgerRecord]) -> None:
    lines = lines_from_records(records)
    kept = lines[::2]
    his = parse_his_export(his_export_bytes(kept), file_name="his.csv")

    day = reconcile_day("H1", BUSINESS_DATE, records, his)

    assert {found.settlement_id for found in day.discrepancies} == {line.settlement_id for line in lines[1::2]}
    assert day_balanced(day) == (len(records) < 2)
