"""What both counterpart parsers share: bounded reading, encoding detection, amounts, refusals.

Owns: turning bytes into text (UTF-8 with or without BOM, else GBK, which many HIS exports use), yuan
text into int fen, and collecting a file's problems into one ``InvalidImportFile`` that names file, line
and column. Must never return part of a file: a parser either returns every row or raises.
Must never parse money through ``float``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

from settlement.errors import InvalidImportFile
from settlement.reconciliation import limits

_YUAN = re.compile(r"[0-9]{1,12}(?:\.[0-9]+)?")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
FEN_PER_YUAN = 100
UTF8_BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True, slots=True)
class Problem:
    line: int
    column: str  # "5 (fund_paid)", "byte 17", or "" when the whole line is at fault
    message: str

    def describe(self, file_name: str) -> str:
        if not self.column:
            where = f"{file_name} line {self.line}"
        elif self.column.startswith("byte"):  # an undecodable byte has no column yet, only an offset
            where = f"{file_name} line {self.line}, {self.column}"
        else:
            where = f"{file_name} line {self.line}, column {self.column}"
        return f"{where}: {self.message}"


class Problems:
    """A file's problems, collected so one refusal lists what to fix (up to a limit)."""

    def __init__(self, file_name: str) -> None:
        self.file_name = file_name
        self.found: list[Problem] = []
        self.count = 0

    def add(self, line: int, column: str, message: str) -> None:
        self.count += 1
        if len(self.found) < limits.MAX_REPORTED_PROBLEMS:
            self.found.append(Problem(line, column, message))

    def refuse_now(self, line: int, column: str, message: str) -> InvalidImportFile:
        """A problem after which reading on is pointless (size, encoding, header): refuse at once."""
        self.add(line, column, message)
        return self.refusal()

    def raise_if_any(self) -> None:
        if self.count:
            raise self.refusal()

    def refusal(self) -> InvalidImportFile:
        first = self.found[0]
        listed = "; ".join(problem.describe(self.file_name) for problem in self.found)
        more = f"; and {self.count - len(self.found)} more" if self.count > len(self.found) else ""
        return InvalidImportFile(
            f"{self.file_name} was not imported ({self.count} problem(s)): {listed}{more}. "
            "Fix the file and import it again; nothing from it was used.",
            field=first.column or "file",
            metadata={
                "file": self.file_name,
                "line": str(first.line),
                "column": first.column,
                "problems": str(self.count),
            },
        )


def read_bounded(path: Path) -> bytes:
    """The file's bytes, refusing files over ``MAX_IMPORT_FILE_BYTES`` before reading them whole."""
    problems = Problems(path.name)
    with path.open("rb") as handle:
        # Read one byte past the limit rather than trusting stat(): the file may still be growing.
        data = handle.read(limits.MAX_IMPORT_FILE_BYTES + 1)
    if len(data) > limits.MAX_IMPORT_FILE_BYTES:
        raise problems.refuse_now(
            1, "", f"file is larger than {limits.MAX_IMPORT_FILE_BYTES} bytes; is it really one day's export?"
        )
    return data


def _position(data: bytes, offset: int) -> tuple[int, int]:
    line_start = data.rfind(b"\n", 0, offset) + 1
    return data.count(b"\n", 0, offset) + 1, offset - line_start + 1


def decode(data: bytes, file_name: str) -> str:
    """UTF-8 (a BOM is dropped), else GBK; anything else is refused at its first undecodable byte."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as not_utf8:
        utf8_error = not_utf8
    if not data.startswith(UTF8_BOM):  # a BOM says UTF-8: a bad byte after it is damage, not GBK
        try:
            return data.decode("gbk")
        except UnicodeDecodeError:
            pass
    line, byte = _position(data, utf8_error.start)
    raise Problems(file_name).refuse_now(
        line,
        f"byte {byte}",
        f"the file is neither UTF-8 nor GBK (byte 0x{data[utf8_error.start]:02x} here); "
        "export it again as UTF-8 or GBK",
    )


def parse_yuan(text: str) -> int:
    """Yuan with at most two decimals (``12``, ``12.5``, ``12.50``) as int fen; ``ValueError`` otherwise.

    Refuses signs, exponents, ``nan``/``inf`` and a third decimal: truncating or rounding an amount someone
    else reported would hide exactly the differences reconciliation exists to find.
    """
    if _YUAN.fullmatch(text) is None:
        raise ValueError(f"{text!r} is not an amount in yuan such as 12.50 (no sign, no exponent)")
    _, _, fraction = text.partition(".")
    if len(fraction) > 2:
        raise ValueError(f"{text!r} has {len(fraction)} decimal places; amounts are yuan to the fen (2)")
    fen = Decimal(text) * FEN_PER_YUAN  # exact: at most two decimals times 100 is a whole number
    amount_fen = int(fen)
    if amount_fen > limits.MAX_SETTLEMENT_AMOUNT_FEN:
        raise ValueError(f"{text!r} is above the limit of {limits.MAX_SETTLEMENT_AMOUNT_FEN // 100} yuan")
    return amount_fen


def check_text(text: str, *, required: bool, max_chars: int) -> str:
    """The field stripped of surrounding spaces; ``ValueError`` if empty when required, too long or binary."""
    value = text.strip()
    if required and not value:
        raise ValueError("is empty")
    if len(value) > max_chars:
        raise ValueError(f"is longer than {max_chars} characters")
    if _CONTROL.search(value):
        # Control characters would corrupt the CSV and workbook reports and have no place in an id.
        raise ValueError("contains control characters")
    return value


def mask_person_number(person_number: str) -> str:
    """Last four characters only: a full person number must never reach a report or a log."""
    return "*" * max(0, len(person_number) - 4) + person_number[-4:]
