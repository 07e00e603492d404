"""docs/errors.md documents every refusal in settlement/errors.py: reason, status, class, cashier text."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from settlement.errors import error_classes

ERRORS_DOC = Path(__file__).resolve().parents[2] / "docs" / "errors.md"
REASON_TABLE_HEADER = "| Class | gRPC status | Reason | What the caller should do | Cashier message (zh-CN) |"


@dataclass(frozen=True)
class Row:
    class_name: str
    status: str
    reason: str
    action: str
    message_zh: str


def _reason_rows() -> list[Row]:
    lines = ERRORS_DOC.read_text(encoding="utf-8").splitlines()
    start = lines.index(REASON_TABLE_HEADER) + 2  # skip the header and the | --- | line
    rows: list[Row] = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        cells = [cell.strip() for cell in line.strip().strip("|").split("|")]
        assert len(cells) == 5, f"a row of the reason table needs 5 cells: {line}"
        class_name, status, reason, action, message_zh = cells
        rows.append(Row(class_name.strip("`"), status.strip("`"), reason.strip("`"), action, message_zh))
    return rows


def test_every_reason_in_the_code_has_exactly_one_row_with_its_status_class_and_cashier_message() -> None:
    rows = _reason_rows()
    by_reason = {row.reason: row for row in rows}
    assert len(by_reason) == len(rows), "a reason is listed twice in docs/errors.md"
    for cls in error_classes():
        row = by_reason.get(cls.reason)
        assert row is not None, f"docs/errors.md lacks reason {cls.reason} ({cls.__name__})"
        assert row.status == cls.status, f"{cls.reason}: table says {row.status}, code says {cls.status}"
        assert row.class_name == cls.__name__, f"{cls.reason}: table says {row.class_name}"
        assert row.message_zh == cls.message_zh, f"{cls.reason}: cashier message differs from the code"
        assert row.action, f"{cls.reason}: say what the caller should do"


def test_the_table_lists_no_reason_the_code_does_not_have() -> None:
    known = {cls.reason for cls in error_classes()}
    extra = [row.reason for row in _reason_rows() if row.reason not in known]
    assert not extra, f"docs/errors.md lists reasons the code does not have: {extra}"


def test_reasons_are_stable_upper_snake_case() -> None:
    for cls in error_classes():
        assert cls.reason.replace("_", "").isalpha(), cls.reason
        assert cls.reason == cls.reason.upper(), cls.reason
