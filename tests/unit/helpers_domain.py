"""Small builders for domain tests, so each test states only what it is about."""

from settlement.domain import (
    AccountScope,
    Category,
    ChargeLine,
    NationalRule,
    Part,
    Quantity,
    Ratio,
    SegmentedRule,
    UnitPrice,
)
from settlement.domain.money import ZERO_RATIO


def line(
    code: str = "A001",
    category: str = "A",
    amount_fen: int | None = None,
    *,
    ratio: str | None = None,
    price: str | None = None,
    quantity: str | None = None,
    ceiling: str | None = None,
) -> ChargeLine:
    return ChargeLine(
        code=code,
        category=Category(category),
        selfpay_ratio=Ratio.parse(ratio, field="r") if ratio else ZERO_RATIO,
        amount_fen=amount_fen,
        unit_price=UnitPrice.parse(price, field="p") if price else None,
        quantity=Quantity.parse(quantity, field="q") if quantity else None,
        price_ceiling=UnitPrice.parse(ceiling, field="c") if ceiling else None,
    )


def national(
    ratio: str = "0.70",
    deductible_fen: int = 0,
    cap_fen: int | None = None,
    scope: str = "ALL",
    *,
    account_allowed: bool = True,
) -> NationalRule:
    return NationalRule(Ratio.parse(ratio, field="r"), deductible_fen, cap_fen, account_allowed, AccountScope(scope))


def segmented(
    ratio: str = "0.80",
    segment_fen: int = 100000,
    cap_fen: int | None = None,
    current: tuple[str, ...] = ("E", "L", "Z"),
    historical: tuple[str, ...] = ("segment", "copay", "L", "Z"),
) -> SegmentedRule:
    return SegmentedRule(
        Ratio.parse(ratio, field="r"),
        segment_fen,
        cap_fen,
        tuple(Part(p) for p in current),
        tuple(Part(p) for p in historical),
    )
