"""A visit's charge: its lines, priced against the catalogue, and the four parts of each line.

Owns: the canonical charge line and the line-level rule of domain.md §4. Must never know where a line
came from (HIS, file, gRPC) nor how the split continues above line level.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import NamedTuple

from settlement import limits
from settlement.domain.money import (
    PRICE_TIMES_QUANTITY_TO_FEN as _MICRO_YUAN_TIMES_QUANTITY_PER_FEN,
)
from settlement.domain.money import RATIO_SCALE, Quantity, Ratio, UnitPrice, price_times_quantity_fen
from settlement.errors import (
    EmptyCharge,
    InvalidAmount,
    InvalidField,
    InvariantViolated,
    TooManyLines,
    UnknownCategory,
)


class Category(StrEnum):
    """甲 / 乙 / 丙 类 (national field ``chrgitm_lv``)."""

    A = "A"  # fully in scope
    B = "B"  # in scope after the patient pre-pays a ratio (先行自付)
    C = "C"  # out of catalogue scope: fully self-paid

    @staticmethod
    def parse(text: object, *, field: str) -> Category:
        try:
            return Category(str(text))
        except ValueError:
            raise UnknownCategory(f"{field} must be A, B or C, got {text!r}", field=field) from None


@dataclass(frozen=True, slots=True)
class ChargeLine:
    """One charge line as the split sees it: already priced and classified.

    ``amount_fen`` given wins; otherwise the amount is ``unit_price × quantity``. A price ceiling needs a
    unit price and a quantity, because the over-ceiling part is ``(price − ceiling) × quantity``.
    """

    code: str
    category: Category
    selfpay_ratio: Ratio
    amount_fen: int | None = None
    unit_price: UnitPrice | None = None
    quantity: Quantity | None = None
    price_ceiling: UnitPrice | None = None
    line_id: str = ""  # the hospital's own id of the line, echoed back on the receipt
    field_path: str = "lines"  # where the line sits in the caller's request, for precise errors

    def __post_init__(self) -> None:
        field = self.field_path
        if self.amount_fen is None and (self.unit_price is None or self.quantity is None):
            raise InvalidAmount(f"{field}: give amount_fen, or unit_price and quantity", field=f"{field}.amount_fen")
        if self.price_ceiling is not None and (self.unit_price is None or self.quantity is None):
            raise InvalidField(
                f"{field}: a price ceiling needs unit_price and quantity to compute the over-ceiling part",
                field=f"{field}.unit_price",
            )


class LineSplit(NamedTuple):
    """The four parts of one line (domain.md §4); they sum to ``amount_fen`` exactly.

    A named tuple rather than a frozen dataclass: it is built once per line on the settle path, and a
    frozen dataclass pays for ``object.__setattr__`` on every field.
    """

    code: str
    line_id: str
    amount_fen: int
    fully_self_paid_fen: int  # fulamt_ownpay_amt
    over_ceiling_fen: int  # overlmt_selfpay
    pre_self_paid_fen: int  # preselfpay_amt
    in_scope_fen: int  # inscp_scp_amt


# Looked up once: reading an enum member off its class costs more than the arithmetic of a line.
_CLASS_B, _CLASS_C = Category.B, Category.C


def split_line(line: ChargeLine) -> LineSplit:
    """Apply domain.md §4 to one line. Rounds half-up at the amount, over-ceiling and pre-self-paid only.

    The hot loop of every split: the half-up divisions of ``money`` are written out inline here (every
    operand is non-negative by construction: validated prices, quantities and ratios).
    """
    quantity, unit_price, category = line.quantity, line.unit_price, line.category
    if line.amount_fen is not None:
        amount = line.amount_fen
    elif unit_price is not None and quantity is not None:
        whole, rest = divmod(unit_price.micro_yuan * quantity.ten_thousandths, _MICRO_YUAN_TIMES_QUANTITY_PER_FEN)
        amount = whole + (2 * rest >= _MICRO_YUAN_TIMES_QUANTITY_PER_FEN)
    else:
        raise InvariantViolated(f"line {line.code} has neither an amount nor a price and quantity")
    ratio = line.selfpay_ratio.ten_thousandths
    if category is _CLASS_C or ratio >= RATIO_SCALE:
        return LineSplit(line.code, line.line_id, amount, amount, 0, 0, 0)
    over = 0
    ceiling = line.price_ceiling
    if ceiling is not None and unit_price is not None and quantity is not None:
        excess_micro_yuan = unit_price.micro_yuan - ceiling.micro_yuan
        if excess_micro_yuan > 0:
            over = price_times_quantity_fen(excess_micro_yuan, quantity)
            if over > amount:
                field = f"{line.field_path}.amount_fen"
                raise InvalidAmount(
                    f"{field}: the amount {amount} fen is less than the part above the price ceiling "
                    f"({over} fen); amount_fen and unit_price × quantity disagree",
                    field=field,
                )
    pre = 0
    if category is _CLASS_B and ratio:
        whole, rest = divmod((amount - over) * ratio, RATIO_SCALE)
        pre = whole + (2 * rest >= RATIO_SCALE)
    return LineSplit(line.code, line.line_id, amount, 0, over, pre, amount - over - pre)


def check_line_count(lines: Sequence[object]) -> None:
    if not lines:
        raise EmptyCharge("the charge has no lines; a settlement needs at least one", field="lines")
    if len(lines) > limits.MAX_LINES_PER_CHARGE:
        raise TooManyLines(
            f"the charge has {len(lines)} lines; at most {limits.MAX_LINES_PER_CHARGE} per settlement "
            f"(split the visit into several settlements)",
            field="lines",
            metadata={"limit": str(limits.MAX_LINES_PER_CHARGE)},
        )
