from __future__ import annotations

from pathlib import Path

import pytest

from settlement.errors import InvalidImportFile
from settlement.reconciliation import Counterpart, SettlementStatus, parse_his_export, read_his_export
from settlement.reconciliation import limits as reconciliation_limits

HEADER = "settlement_id,request_id,visit_id,total,fund_paid,account_paid,cash,status\r\n"
ROW_1 = "S1,R1,V1,100.00,60.00,30.00,10.00,SETTLED\r\n"
ROW_2 = "S2,R2,V2,12.5,0,12.5,0,已撤销\r\n"


def refusal(data: bytes, file_name: str = "his.csv") -> InvalidImportFile:
    with pytest.raises(InvalidImportFile) as refused:
        parse_his_export(data, file_name=file_name)
    return refused.value


def test_a_well_formed_export_is_read_into_integer_fen_with_file_and_line() -> None:
    records = parse_his_export((HEADER + ROW_1 + ROW_2).encode(), file_name="his.csv")

    assert [(r.settlement_id, r.total_fen, r.fund_paid_fen, r.account_paid_fen, r.cash_fen) for r in records] == [
        ("S1", 10_000, 6_000, 3_000, 1_000),
        ("S2", 1_250, 0, 1_250, 0),
    ]
    assert [r.status for r in records] == [SettlementStatus.SETTLED, SettlementStatus.CANCELLED]
    assert [(r.file_name, r.line, r.counterpart) for r in records] == [
        ("his.csv", 2, Counterpart.HIS),
        ("his.csv", 3, Counterpart.HIS),
    ]


def test_columns_may_come_in_any_order() -> None:
    data = "status,cash,account_paid,fund_paid,total,visit_id,request_id,settlement_id\nSETTLED,1,2,3,6,V,R,S\n"
    (record,) = parse_his_export(data.encode(), file_name="his.csv")

    assert (record.settlement_id, record.total_fen, record.cash_fen) == ("S", 600, 100)


def test_a_gbk_export_reads_the_same_as_utf8_with_or_without_bom() -> None:
    text = HEADER + ROW_1 + ROW_2
    utf8 = parse_his_export(text.encode("utf-8"), file_name="his.csv")
    with_bom = parse_his_export(text.encode("utf-8-sig"), file_name="his.csv")
    gbk = parse_his_export(text.encode("gbk"), file_name="his.csv")

    assert utf8 == with_bom == gbk
    assert gbk[1].status is SettlementStatus.CANCELLED


def test_a_file_in_neither_utf8_nor_gbk_is_refused_at_its_line_and_byte() -> None:
    data = (HEADER + ROW_1).encode() + b"S2,R2,V2,1.00,0,0,1.00,\xff\xfe\r\n"

    refused = refusal(data)

    assert "his.csv line 3, byte 24" in refused.message
    assert "neither UTF-8 nor GBK" in refused.message
    assert refused.metadata["file"] == "his.csv"
    assert refused.metadata["line"] == "3"


def test_wrong_columns_are_refused_naming_what_is_missing_and_unknown() -> None:
    data = "settlement_id,request_id,visit_id,total,fund,account_paid,cash,status\r\n" + ROW_1

    refused = refusal(data.encode())

    assert "his.csv line 1, column 5" in refused.message
    assert "missing fund_paid" in refused.message
    assert "unknown 'fund'" in refused.message
    assert refused.reason == "INVALID_IMPORT_FILE"


def test_an_amount_with_three_decimals_is_refused_with_line_and_column_and_nothing_is_returned() -> None:
    data = HEADER + ROW_1 + "S2,R2,V2,10.005,10.005,0,0,SETTLED\r\n"

    refused = refusal(data.encode())

    assert "his.csv line 3, column 4 (total): '10.005' has 3 decimal places" in refused.message
    assert "line 3, column 5 (fund_paid)" in refused.message
    assert refused.metadata["problems"] == "2"


@pytest.mark.parametrize("amount", ["1e3", "-1.00", "+1", "nan", "inf", "1,000.00", "", "１２"])
def test_amounts_that_are_not_plain_yuan_are_refused(amount: str) -> None:
    data = HEADER + f'S1,R1,V1,"{amount}",0,0,"{amount}",SETTLED\r\n'

    refused = refusal(data.encode())

    assert "line 2, column 4 (total)" in refused.message


def test_a_settlement_listed_twice_is_refused_with_both_line_numbers() -> None:
    data = HEADER + ROW_1 + ROW_2 + ROW_1

    refused = refusal(data.encode())

    assert "his.csv line 4, column 1 (settlement_id): settlement S1 is listed again (first at line 2)" in (
        refused.message
    )


def test_a_row_whose_parts_do_not_add_up_to_the_total_is_refused() -> None:
    refused = refusal((HEADER + "S1,R1,V1,100.00,60.00,30.00,9.99,SETTLED\r\n").encode())

    assert "line 2, column 4 (total): fund_paid + account_paid + cash does not equal total" in refused.message


def test_unknown_status_missing_ids_and_short_rows_are_each_reported() -> None:
    data = HEADER + "S1,R1,V1,1,1,0,0,PAID\r\n" + ",R2,V2,1,1,0,0,SETTLED\r\n" + "S3,R3\r\n"

    refused = refusal(data.encode())

    assert "line 2, column 8 (status): status 'PAID' is not one of" in refused.message
    assert "line 3, column 1 (settlement_id): settlement_id is empty" in refused.message
    assert "line 4: 2 fields, expected 8" in refused.message
    assert refused.metadata["problems"] == "3"


def test_an_empty_file_is_refused() -> None:
    assert "the file is empty" in refusal(b"").message


def test_a_file_over_the_size_limit_is_refused_before_it_is_parsed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "his.csv"
    path.write_bytes((HEADER + ROW_1 * 10).encode())
    monkeypatch.setattr(reconciliation_limits, "MAX_IMPORT_FILE_BYTES", 100)

    with pytest.raises(InvalidImportFile, match="larger than 100 bytes"):
        read_his_export(path)


def test_a_file_over_the_row_limit_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(reconciliation_limits, "MAX_IMPORT_ROWS", 1)

    refused = refusal((HEADER + ROW_1 + ROW_2).encode())

    assert "line 3: more than 1 rows" in refused.message


def test_only_the_first_problems_are_listed_when_a_file_is_badly_broken() -> None:
    data = HEADER + "".join(f"S{n},R,V,1.001,0,0,0,SETTLED\r\n" for n in range(50))

    refused = refusal(data.encode())

    assert refused.metadata["problems"] == "50"
    assert "and 30 more" in refused.message
