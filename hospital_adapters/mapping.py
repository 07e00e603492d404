"""The hospital's code mapping table: its own item codes and units to catalogue codes and units.

Owns: loading the per-hospital CSV (``hospital_code, hospital_unit, catalogue_code, catalogue_unit,
factor``) and translating HIS lines into canonical lines with exact unit conversion: quantity × factor,
unit price ÷ factor, both exact or refused (never rounded: a silently rounded price is a money bug).
Must never guess: an unmapped code, an ambiguous code or an unknown unit refuses the line, and every
offending line is reported so the cashier fixes the whole bill at once.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from fractions import Fraction
from pathlib import Path

from hospital_adapters import limits as adapter_limits
from hospital_adapters.charges import HisLine, Problem
from hospital_adapters.port import CanonicalLine
from settlement import limits

COLUMNS = ("hospital_code", "hospital_unit", "catalogue_code", "catalogue_unit", "factor")


class CodeTableError(Exception):
    """The code table file itself is broken: a deployment error, the adapter must not start."""


@dataclass(frozen=True, slots=True)
class CodeMapping:
    """One row: ``1 hospital_unit`` of ``hospital_code`` is ``factor catalogue_unit`` of ``catalogue_code``."""

    hospital_code: str
    hospital_unit: str
    catalogue_code: str
    catalogue_unit: str
    factor: Fraction


def _unit_key(unit: str) -> str:
    return unit.strip().casefold()


def _to_decimal_text(value: Fraction, places: int) -> str | None:
    """The exact decimal text of ``value`` with at most ``places`` decimals, or None if it needs more."""
    scaled = value * 10**places
    if scaled.denominator != 1:
        return None
    whole, fraction = divmod(scaled.numerator, 10**places)
    digits = f"{fraction:0{places}d}".rstrip("0")
    return f"{whole}.{digits}" if digits else str(whole)


class CodeTable:
    """The mapping rows of one hospital, indexed by hospital code."""

    def __init__(self, rows: list[CodeMapping]) -> None:
        self._by_code: dict[str, list[CodeMapping]] = defaultdict(list)
        for row in rows:
            self._by_code[row.hospital_code].append(row)

    @classmethod
    def load(cls, path: Path) -> CodeTable:
        """Read a UTF-8 CSV (a BOM from Excel is fine; ``#`` starts a comment row)."""
        if path.stat().st_size > adapter_limits.MAX_CODE_TABLE_BYTES:
            raise CodeTableError(f"{path}: larger than {adapter_limits.MAX_CODE_TABLE_BYTES} bytes")
        return cls.parse(path.read_text(encoding="utf-8-sig"), source=str(path))

    @classmethod
    def parse(cls, text: str, *, source: str = "code table") -> CodeTable:
        reader = csv.reader(io.StringIO(text))
        header = next(reader, None)
        if header is None or tuple(cell.strip() for cell in header) != COLUMNS:
            raise CodeTableError(f"{source}: the first row must be {','.join(COLUMNS)}")
        rows: list[CodeMapping] = []
        errors: list[str] = []
        for number, cells in enumerate(reader, start=2):
            if not cells or cells[0].lstrip().startswith("#") or not any(c.strip() for c in cells):
                continue
            if len(rows) >= adapter_limits.MAX_CODE_TABLE_ROWS:
                raise CodeTableError(f"{source}: more than {adapter_limits.MAX_CODE_TABLE_ROWS} rows")
            try:
                rows.append(_parse_row(cells))
            except ValueError as error:
                errors.append(f"row {number}: {error}")
        if errors:
            raise CodeTableError(f"{source}: " + "; ".join(errors))
        return cls(rows)

    def catalogue_codes(self) -> frozenset[str]:
        return frozenset(row.catalogue_code for rows in self._by_code.values() for row in rows)

    def lookup(self, line: HisLine) -> CodeMapping | Problem:
        """The one row for this line's code and unit, or the problem that prevents choosing one."""
        rows = self._by_code.get(line.hospital_code, [])
        if not rows:
            return Problem("UNKNOWN_ITEM_CODE",
                           f"line {line.line_id}: hospital code {line.hospital_code!r} is not in the code "
                           "mapping table", line.line_id, "code")
        if line.hospital_unit is not None:
            unit = _unit_key(line.hospital_unit)
            matching = [row for row in rows if _unit_key(row.hospital_unit) == unit]
            if not matching:
                known = ", ".join(sorted({row.hospital_unit for row in rows}))
                return Problem("UNIT_MISMATCH",
                               f"line {line.line_id}: code {line.hospital_code!r} is mapped for unit(s) "
                               f"{known}, not {line.hospital_unit!r}", line.line_id, "unit")
            rows = matching
        if len(rows) > 1:
            units = ", ".join(sorted({row.hospital_unit for row in rows}))
            return Problem("AMBIGUOUS_ITEM_CODE",
                           f"line {line.line_id}: code {line.hospital_code!r} has {len(rows)} mapping rows "
                           f"(units {units}); fix the table or send the unit", line.line_id, "code")
        return rows[0]

    def translate(self, lines: tuple[HisLine, ...]) -> tuple[tuple[CanonicalLine, ...], tuple[Problem, ...]]:
        """Canonical lines when every line maps; otherwise every problem found (and lines to ignore)."""
        canonical: list[CanonicalLine] = []
        problems: list[Problem] = []
        for line in lines:
            found = self.lookup(line)
            if isinstance(found, Problem):
                problems.append(found)
                continue
            converted = _convert(line, found)
            if isinstance(converted, Problem):
                problems.append(converted)
            else:
                canonical.append(converted)
        return tuple(canonical), tuple(problems)


def _parse_row(cells: list[str]) -> CodeMapping:
    if len(cells) != len(COLUMNS):
        raise ValueError(f"expected {len(COLUMNS)} columns, got {len(cells)}")
    hospital_code, hospital_unit, catalogue_code, catalogue_unit, factor_text = (c.strip() for c in cells)
    for name, value in zip(COLUMNS[:4], (hospital_code, hospital_unit, catalogue_code, catalogue_unit),
                           strict=True):
        if not value or len(value) > limits.MAX_ITEM_CODE_CHARS:
            raise ValueError(f"{name} must be 1 to {limits.MAX_ITEM_CODE_CHARS} characters")
    try:
        factor_decimal = Decimal(factor_text)
    except InvalidOperation:
        raise ValueError(f"factor {factor_text!r} is not a decimal") from None
    if not factor_decimal.is_finite() or factor_decimal <= 0:
        raise ValueError(f"factor {factor_text!r} must be a positive decimal")
    return CodeMapping(hospital_code, hospital_unit, catalogue_code, catalogue_unit, Fraction(factor_decimal))


def _convert(line: HisLine, row: CodeMapping) -> CanonicalLine | Problem:
    quantity = Fraction(line.quantity) * row.factor
    unit_price = Fraction(line.unit_price_yuan) / row.factor
    quantity_text = _to_decimal_text(quantity, limits.QUANTITY_DECIMAL_PLACES)
    price_text = _to_decimal_text(unit_price, limits.UNIT_PRICE_DECIMAL_PLACES)
    if quantity_text is None or quantity > limits.MAX_QUANTITY:
        return Problem("DECIMAL_FORMAT",
                       f"line {line.line_id}: quantity {line.quantity} {row.hospital_unit} × {row.factor} is "
                       f"not a quantity with at most {limits.QUANTITY_DECIMAL_PLACES} decimals",
                       line.line_id, "quantity")
    if price_text is None or unit_price > limits.MAX_UNIT_PRICE_YUAN:
        return Problem("DECIMAL_FORMAT",
                       f"line {line.line_id}: unit price {line.unit_price_yuan} ÷ {row.factor} per "
                       f"{row.catalogue_unit} needs more than {limits.UNIT_PRICE_DECIMAL_PLACES} decimals; "
                       "send the line amount in the catalogue unit or fix the factor",
                       line.line_id, "unit_price")
    return CanonicalLine(row.catalogue_code, line.line_id, quantity_text, price_text, line.amount_fen)
