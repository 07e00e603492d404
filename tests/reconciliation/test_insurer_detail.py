from __future__ import annotations

import pytest

from settlement.errors import InvalidImportFile
from settlement.reconciliation import INSURER_COLUMNS, Counterpart, SettlementStatus, parse_insurer_detail

HEADER = "\t".join(INSURER_COLUMNS) + "\n"


def line(setl_id: str = "S1", flag: str = "0", total: str = "100.00", fund: str = "60.00", acct: str = "30.00") -> str:
    return "\t".join(("330100199001011234", "MD1", setl_id, "MSG1", "0", flag, "门诊", total, fund, acct)) + "\n"


def test_a_detail_file_is_read_with_refunds_as_cancelled_and_person_numbers_masked() -> None:
    records = parse_insurer_detail((HEADER + line() + line("S2", flag="1")).encode(), file_name="3202.txt")

    first, second = records
    assert (first.settlement_id, first.total_fen, first.fund_paid_fen, first.account_paid_fen) == (
        "S1",
        10_000,
        6_000,
        3_000,
    )
    assert first.cash_fen is None
    assert first.counterpart is Counterpart.INSURER
    assert (first.visit_id, first.message_id, first.memo, first.line) == ("MD1", "MSG1", "门诊", 2)
    assert first.person_number_masked == "**************1234"
    assert second.status is SettlementStatus.CANCELLED


def test_the_header_line_is_optional_and_crlf_endings_are_accepted() -> None:
    with_header = parse_insurer_detail((HEADER + line()).encode(), file_name="a.txt")
    without = parse_insurer_detail(line().replace("\n", "\r\n").encode(), file_name="a.txt")

    assert [r.settlement_id for r in with_header] == [r.settlement_id for r in without] == ["S1"]
    assert without[0].line == 1


def test_a_gbk_detail_file_is_read() -> None:
    (record,) = parse_insurer_detail((HEADER + line()).encode("gbk"), file_name="a.txt")

    assert record.memo == "门诊"


def test_a_settlement_listed_twice_is_kept_for_matching_to_report_as_a_duplicate() -> None:
    records = parse_insurer_detail((HEADER + line() + line()).encode(), file_name="a.txt")

    assert [r.line for r in records] == [2, 3]


def test_three_decimals_a_wrong_flag_and_a_short_line_are_refused_with_line_and_column() -> None:
    data = HEADER + line(total="100.001") + line(flag="Y") + "only\tthree\tfields\n"

    with pytest.raises(InvalidImportFile) as refused:
        parse_insurer_detail(data.encode(), file_name="3202.txt")

    message = refused.value.message
    assert "3202.txt line 2, column 8 (medfee_sumamt): '100.001' has 3 decimal places" in message
    assert "3202.txt line 3, column 6 (refd_setl_flag)" in message
    assert "3202.txt line 4: 3 tab-separated fields, expected 10" in message


def test_fund_and_account_above_the_total_are_refused() -> None:
    with pytest.raises(InvalidImportFile, match=r"line 1, column 8 \(medfee_sumamt\)"):
        parse_insurer_detail(line(total="10.00").encode(), file_name="a.txt")


def test_a_missing_settlement_id_is_refused() -> None:
    with pytest.raises(InvalidImportFile, match=r"line 2, column 3 \(setl_id\): setl_id is empty"):
        parse_insurer_detail((HEADER + line(setl_id="")).encode(), file_name="a.txt")
