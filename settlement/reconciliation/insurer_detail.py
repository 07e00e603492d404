"""Reading the insurer's detail result file (national 3202 shape, tab-separated), all or nothing.

Owns: the file's column contract (``INSURER_COLUMNS``; a header line is optional because platforms
differ), ``refd_setl_flag`` as the cancelled/refunded status, and per-row checks. ``psn_no`` is masked
as it is read, so a full person number never leaves this module.

A settlement id listed twice is *not* refused here: the insurer's file is their statement of what they
paid, and a double line there is a discrepancy finance must see (kind DUPLICATE), not a format error.
Must never return a partial file or parse money through ``float``.
"""

from __future__ import annotations

from pathlib import Path

from settlement.reconciliation import limits
from settlement.reconciliation.input_files import (
    Problems,
    check_text,
    decode,
    mask_person_number,
    parse_yuan,
    read_bounded,
)
from settlement.reconciliation.records import Counterpart, CounterpartRecord, SettlementStatus

INSURER_COLUMNS = (
    "psn_no",
    "mdtrt_id",
    "setl_id",
    "msgid",
    "stmt_rslt",
    "refd_setl_flag",
    "memo",
    "medfee_sumamt",
    "fund_pay_sumamt",
    "acct_pay",
)
_COLUMN_LIST = ", ".join(INSURER_COLUMNS)
_REFUND_FLAGS = {"0": SettlementStatus.SETTLED, "1": SettlementStatus.CANCELLED}
_REQUIRED = {"psn_no", "mdtrt_id", "setl_id"}
_MAX_CHARS = {"memo": limits.MAX_IMPORT_FIELD_CHARS, "stmt_rslt": 8, "refd_setl_flag": 1}
_AMOUNT_COLUMNS = ("medfee_sumamt", "fund_pay_sumamt", "acct_pay")


def read_insurer_detail(path: Path) -> list[CounterpartRecord]:
    """Every line of the insurer's detail file at ``path``, or ``InvalidImportFile``."""
    return parse_insurer_detail(read_bounded(path), file_name=path.name)


def parse_insurer_detail(data: bytes, *, file_name: str) -> list[CounterpartRecord]:
    """Every line of an insurer detail file given as bytes, or ``InvalidImportFile`` naming line, column."""
    problems = Problems(file_name)
    lines = decode(data, file_name).split("\n")
    records: list[CounterpartRecord] = []
    for index, raw in enumerate(lines):
        line = raw.removesuffix("\r")
        if not line.strip():
            continue
        fields = line.split("\t")
        if index == 0 and [field.strip() for field in fields] == list(INSURER_COLUMNS):
            continue
        if len(records) >= limits.MAX_IMPORT_ROWS:
            raise problems.refuse_now(index + 1, "", f"more than {limits.MAX_IMPORT_ROWS} lines")
        record = _parse_line(fields, index + 1, file_name, problems)
        if record is not None:
            records.append(record)
    problems.raise_if_any()
    return records


def _column(name: str) -> str:
    return f"{INSURER_COLUMNS.index(name) + 1} ({name})"


def _parse_line(fields: list[str], line: int, file_name: str, problems: Problems) -> CounterpartRecord | None:
    if len(fields) != len(INSURER_COLUMNS):
        problems.add(
            line,
            "",
            f"{len(fields)} tab-separated fields, expected {len(INSURER_COLUMNS)}: {_COLUMN_LIST}",
        )
        return None
    values: dict[str, str] = {}
    amounts: dict[str, int] = {}
    ok = True
    for name, raw in zip(INSURER_COLUMNS, fields, strict=True):
        try:
            if name in _AMOUNT_COLUMNS:
                amounts[name] = parse_yuan(raw.strip())
            else:
                values[name] = check_text(
                    raw, required=name in _REQUIRED, max_chars=_MAX_CHARS.get(name, limits.MAX_ID_CHARS)
                )
        except ValueError as bad:
            problems.add(line, _column(name), f"{name} {bad}" if name not in _AMOUNT_COLUMNS else str(bad))
            ok = False
    status = _REFUND_FLAGS.get(values.get("refd_setl_flag", ""))
    if ok and status is None:
        problems.add(line, _column("refd_setl_flag"), "refd_setl_flag must be 0 (settled) or 1 (refunded)")
    if not ok or status is None:
        return None
    if amounts["fund_pay_sumamt"] + amounts["acct_pay"] > amounts["medfee_sumamt"]:
        problems.add(line, _column("medfee_sumamt"), "fund_pay_sumamt + acct_pay exceeds medfee_sumamt")
        return None
    return CounterpartRecord(
        counterpart=Counterpart.INSURER,
        file_name=file_name,
        line=line,
        settlement_id=values["setl_id"],
        visit_id=values["mdtrt_id"],
        status=status,
        total_fen=amounts["medfee_sumamt"],
        fund_paid_fen=amounts["fund_pay_sumamt"],
        account_paid_fen=amounts["acct_pay"],
        cash_fen=None,
        message_id=values["msgid"],
        person_number_masked=mask_person_number(values["psn_no"]),
        statement_result=values["stmt_rslt"],
        memo=values["memo"],
    )
