"""Money parsing and the one rounding rule."""

import pytest

from settlement.domain.money import (
    Quantity,
    Ratio,
    UnitPrice,
    check_amount_fen,
    divide_half_up,
    format_yuan,
    price_times_quantity_fen,
)
from settlement.errors import InvalidAmount, InvalidDecimal


def test_half_up_rounds_an_exact_half_away_from_zero_unlike_python_round() -> None:
    assert divide_half_up(5, 10) == 1
    assert divide_half_up(25, 10) == 3  # round(2.5) would give 2
    assert divide_half_up(24, 10) == 2
    assert divide_half_up(0, 7) == 0


def test_a_ratio_keeps_four_places_exactly() -> None:
    assert Ratio.parse("0.7", field="r").ten_thousandths == 7000
    assert Ratio.parse("0.0005", field="r").ten_thousandths == 5
    assert Ratio.parse("1", field="r").is_whole
    assert str(Ratio.parse("0.15", field="r")) == "0.1500"


@pytest.mark.parametrize("text", ["0.00001", "1.0001", "-0.1", "0,5", "1e-2", " 0.5", "0.5 ", "", ".5", "5."])
def test_a_ratio_with_too_many_places_or_outside_zero_to_one_is_refused(text: str) -> None:
    with pytest.raises(InvalidDecimal) as refused:
        Ratio.parse(text, field="items[0].selfpay_ratio")
    assert refused.value.field == "items[0].selfpay_ratio"
    assert "items[0].selfpay_ratio" in refused.value.message


def test_a_float_is_refused_even_when_it_looks_harmless() -> None:
    with pytest.raises(InvalidDecimal, match="decimal string"):
        Ratio.parse(0.5, field="r")


def test_unit_price_allows_six_places_and_quantity_four() -> None:
    assert UnitPrice.parse("12.345678", field="p").micro_yuan == 12_345_678
    assert Quantity.parse("2.5", field="q").ten_thousandths == 25_000
    with pytest.raises(InvalidDecimal, match="at most 6 decimal places"):
        UnitPrice.parse("1.0000001", field="p")
    with pytest.raises(InvalidDecimal, match="at most 4 decimal places"):
        Quantity.parse("1.00001", field="q")


def test_a_zero_quantity_is_refused() -> None:
    with pytest.raises(InvalidDecimal, match="greater than 0"):
        Quantity.parse("0", field="q")


def test_price_times_quantity_rounds_once_half_up_to_the_fen() -> None:
    # 0.125 yuan × 1 = 12.5 fen → 13
    assert price_times_quantity_fen(125_000, Quantity.parse("1", field="q")) == 13
    # 12.00 × 3 = 3600 fen
    assert price_times_quantity_fen(12_000_000, Quantity.parse("3", field="q")) == 3600
    # 0.333333 × 3 = 0.999999 yuan = 99.9999 fen → 100
    assert price_times_quantity_fen(333_333, Quantity.parse("3", field="q")) == 100


@pytest.mark.parametrize("value", [-1, 1.5, "100", True, None, 10**12])
def test_amounts_must_be_non_negative_integers_within_the_line_limit(value: object) -> None:
    with pytest.raises(InvalidAmount) as refused:
        check_amount_fen(value, field="items[2].amount_fen")
    assert refused.value.field == "items[2].amount_fen"


def test_yuan_formatting_is_for_display_only() -> None:
    assert format_yuan(12345) == "123.45"
    assert format_yuan(-5) == "-0.05"
