"""Money and the spec's fixed-scale decimals, as integers.

Owns: parsing of ratio (N5,4), unit price (N16,6, yuan) and quantity (N16,4) decimal strings into exact
scaled integers, and the one half-up rounding to the fen. Must never use binary floats or ``round()``
(which rounds half to even); every amount leaving this module is an ``int`` of fen.

Integers rather than ``Decimal`` on the hot path: a product of two scaled integers is exact, and the
quotient to the fen is the only place where rounding happens, in ``divide_half_up``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from settlement import limits
from settlement.errors import InvalidAmount, InvalidDecimal, InvariantViolated

RATIO_SCALE: int = 10**limits.RATIO_DECIMAL_PLACES  # a ratio of 1 is 10_000
UNIT_PRICE_SCALE: int = 10**limits.UNIT_PRICE_DECIMAL_PLACES  # micro-yuan
QUANTITY_SCALE: int = 10**limits.QUANTITY_DECIMAL_PLACES
FEN_PER_YUAN = 100

_DECIMAL_TEXT = re.compile(r"(?P<int>[0-9]+)(?:\.(?P<frac>[0-9]+))?")


def divide_half_up(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half-up; both non-negative (money here never rounds below 0)."""
    if numerator < 0 or denominator <= 0:
        raise InvariantViolated(f"half-up rounding of {numerator}/{denominator}: negative operand")
    quotient, remainder = divmod(numerator, denominator)
    return quotient + 1 if 2 * remainder >= denominator else quotient


def parse_scaled(text: object, *, places: int, field: str) -> int:
    """A plain non-negative decimal string with at most ``places`` decimals, as an integer × 10**places.

    Refuses signs, exponents, spaces, floats and anything with more decimals than the spec allows: a
    silent truncation of a price is a money bug.
    """
    if not isinstance(text, str):
        raise InvalidDecimal(
            f'{field} must be a decimal string such as "12.50", got {type(text).__name__}', field=field
        )
    match = _DECIMAL_TEXT.fullmatch(text)
    if match is None:
        raise InvalidDecimal(f'{field} must be a plain decimal such as "12.50", got {text!r}', field=field)
    fraction = match.group("frac") or ""
    if len(fraction) > places:
        raise InvalidDecimal(f"{field} allows at most {places} decimal places, got {text!r}", field=field)
    scale: int = 10**places
    return int(match.group("int")) * scale + int(fraction.ljust(places, "0") or "0")


@dataclass(frozen=True, slots=True)
class Ratio:
    """A ratio between 0 and 1 in ten-thousandths (spec N5,4)."""

    ten_thousandths: int

    @staticmethod
    def parse(text: object, *, field: str) -> Ratio:
        value = parse_scaled(text, places=limits.RATIO_DECIMAL_PLACES, field=field)
        if value > RATIO_SCALE:
            raise InvalidDecimal(f"{field} must be between 0 and 1, got {text!r}", field=field)
        return Ratio(value)

    def of(self, amount_fen: int) -> int:
        """This ratio of an amount, rounded half-up to the fen."""
        return divide_half_up(amount_fen * self.ten_thousandths, RATIO_SCALE)

    @property
    def is_whole(self) -> bool:
        return self.ten_thousandths >= RATIO_SCALE

    def __str__(self) -> str:
        whole, fraction = divmod(self.ten_thousandths, RATIO_SCALE)
        return f"{whole}.{fraction:04d}"


ZERO_RATIO = Ratio(0)


@dataclass(frozen=True, slots=True)
class UnitPrice:
    """A unit price in millionths of a yuan (spec N16,6)."""

    micro_yuan: int

    @staticmethod
    def parse(text: object, *, field: str) -> UnitPrice:
        value = parse_scaled(text, places=limits.UNIT_PRICE_DECIMAL_PLACES, field=field)
        if value >= limits.MAX_UNIT_PRICE_YUAN * UNIT_PRICE_SCALE:
            raise InvalidDecimal(f"{field} is above the spec's maximum, got {text!r}", field=field)
        return UnitPrice(value)

    def __str__(self) -> str:
        whole, fraction = divmod(self.micro_yuan, UNIT_PRICE_SCALE)
        return f"{whole}.{fraction:06d}".rstrip("0").rstrip(".") if fraction else str(whole)


@dataclass(frozen=True, slots=True)
class Quantity:
    """A quantity in ten-thousandths of a unit (spec N16,4); strictly positive on a charge line."""

    ten_thousandths: int

    @staticmethod
    def parse(text: object, *, field: str) -> Quantity:
        value = parse_scaled(text, places=limits.QUANTITY_DECIMAL_PLACES, field=field)
        if value == 0:
            raise InvalidDecimal(f"{field} must be greater than 0, got {text!r}", field=field)
        if value > limits.MAX_QUANTITY * QUANTITY_SCALE:
            raise InvalidDecimal(f"{field} is above the spec's maximum, got {text!r}", field=field)
        return Quantity(value)

    def __str__(self) -> str:
        whole, fraction = divmod(self.ten_thousandths, QUANTITY_SCALE)
        return f"{whole}.{fraction:04d}".rstrip("0").rstrip(".") if fraction else str(whole)


# fen = micro-yuan × ten-thousandths / (10**6 × 10**4) × 100
PRICE_TIMES_QUANTITY_TO_FEN: int = UNIT_PRICE_SCALE * QUANTITY_SCALE // FEN_PER_YUAN


def price_times_quantity_fen(price_micro_yuan: int, quantity: Quantity) -> int:
    """``unit price × quantity`` in fen, rounded half-up once (domain.md §3)."""
    return divide_half_up(price_micro_yuan * quantity.ten_thousandths, PRICE_TIMES_QUANTITY_TO_FEN)


def check_amount_fen(value: object, *, field: str) -> int:
    """An amount of fen given by a caller: an ``int`` (not bool, not float), 0 ≤ value ≤ the line limit."""
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidAmount(f"{field} must be an integer number of fen, got {value!r}", field=field)
    if value < 0:
        raise InvalidAmount(f"{field} must not be negative, got {value}", field=field)
    if value > limits.MAX_LINE_AMOUNT_FEN:
        raise InvalidAmount(f"{field} is above the limit of {limits.MAX_LINE_AMOUNT_FEN} fen, got {value}", field=field)
    return value


def format_yuan(amount_fen: int) -> str:
    """``12345`` → ``"123.45"``: for receipts and reports, never for arithmetic."""
    sign = "-" if amount_fen < 0 else ""
    whole, fraction = divmod(abs(amount_fen), FEN_PER_YUAN)
    return f"{sign}{whole}.{fraction:02d}"
