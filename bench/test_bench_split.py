"""The split's speed: a 10-line charge under each model and a 200-line charge.

Target (issue 2): median ≤ 20 µs for a 10-line split on the 2-core machine.
Run: .venv/bin/pytest bench/test_bench_split.py --benchmark-only
"""

from collections.abc import Callable

import pytest

from settlement.domain import (
    AccountScope,
    AccountState,
    Category,
    ChargeLine,
    NationalRule,
    Part,
    Quantity,
    Ratio,
    SegmentedRule,
    SplitResult,
    UnitPrice,
    split,
)

NATIONAL = NationalRule(Ratio(7000), 100000, 600000, True, AccountScope.ALL)
SEGMENTED = SegmentedRule(
    Ratio(8000), 100000, None, (Part.IN_SCOPE, Part.PRE_SELF_PAID, Part.SELF_PAID),
    (Part.SEGMENT, Part.COPAY, Part.PRE_SELF_PAID, Part.SELF_PAID),
)  # fmt: skip
STATE = AccountState(current_year_fen=30000, historical_fen=200000, ytd_self_segment_fen=95000)


def _charge(line_count: int) -> list[ChargeLine]:
    """A realistic mix: consultation, class-A and class-B drugs (one above its ceiling), a lab test, class C."""
    shapes = [
        ChargeLine("consult", Category.A, Ratio(0), amount_fen=2500),
        ChargeLine("drug-a", Category.A, Ratio(0), unit_price=UnitPrice(1_230_000), quantity=Quantity(140_000)),
        ChargeLine(
            "drug-b", Category.B, Ratio(1000),
            unit_price=UnitPrice(12_000_000), quantity=Quantity(30_000), price_ceiling=UnitPrice(10_000_000),
        ),
        ChargeLine("lab", Category.A, Ratio(0), amount_fen=4500),
        ChargeLine("drug-c", Category.C, Ratio(0), amount_fen=9900),
    ]
    return [shapes[n % len(shapes)] for n in range(line_count)]


@pytest.mark.parametrize(
    ("rule", "line_count"),
    [(NATIONAL, 10), (SEGMENTED, 10), (NATIONAL, 200), (SEGMENTED, 200)],
    ids=["national-10-lines", "segmented-10-lines", "national-200-lines", "segmented-200-lines"],
)
def test_split_speed(
    benchmark: Callable[..., SplitResult], rule: NationalRule | SegmentedRule, line_count: int
) -> None:
    charge = _charge(line_count)
    result = benchmark(split, charge, rule, STATE)
    assert result.total_fen > 0
