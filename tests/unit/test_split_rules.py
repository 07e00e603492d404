"""Every rule of domain.md §4–§6, one behaviour per test."""

import pytest
from helpers_domain import line, national, segmented

from settlement import limits
from settlement.domain import AccountState, effect_of, reverse, split, split_line
from settlement.errors import EmptyCharge, InvalidAmount, InvalidField, TooManyLines

# Line level (§4)


def test_a_class_c_line_is_wholly_self_paid() -> None:
    parts = split_line(line("C1", "C", 15000))
    assert (parts.fully_self_paid_fen, parts.in_scope_fen) == (15000, 0)


def test_a_line_with_a_self_pay_ratio_of_one_is_wholly_self_paid() -> None:
    parts = split_line(line("B1", "B", 1000, ratio="1"))
    assert parts.fully_self_paid_fen == 1000


def test_a_class_b_line_pre_pays_its_ratio_rounded_half_up() -> None:
    parts = split_line(line("B1", "B", 1005, ratio="0.10"))  # 100.5 → 101
    assert (parts.pre_self_paid_fen, parts.in_scope_fen) == (101, 904)


def test_a_class_a_line_has_no_pre_self_paid_part_even_with_a_ratio() -> None:
    assert split_line(line("A1", "A", 1000, ratio="0.30")).pre_self_paid_fen == 0


def test_the_part_above_the_price_ceiling_is_self_paid_before_the_ratio_applies() -> None:
    parts = split_line(line("B2", "B", ratio="0.10", price="12.00", quantity="3", ceiling="10.00"))
    assert (parts.amount_fen, parts.over_ceiling_fen, parts.pre_self_paid_fen, parts.in_scope_fen) == (
        3600, 600, 300, 2700,
    )  # fmt: skip


def test_a_price_under_its_ceiling_has_no_over_ceiling_part() -> None:
    assert split_line(line("A9", "A", price="8.00", quantity="2", ceiling="10.00")).over_ceiling_fen == 0


def test_the_amount_is_unit_price_times_quantity_rounded_half_up_when_not_given() -> None:
    assert split_line(line(price="0.125", quantity="1")).amount_fen == 13


def test_a_line_without_amount_or_price_is_refused_naming_the_line() -> None:
    with pytest.raises(InvalidAmount, match="lines"):
        line()


def test_a_price_ceiling_without_a_unit_price_is_refused() -> None:
    with pytest.raises(InvalidField):
        line(amount_fen=100, ceiling="1.00")


def test_a_given_amount_smaller_than_the_over_ceiling_part_is_refused() -> None:
    with pytest.raises(InvalidAmount, match="price ceiling"):
        split_line(line("B", "B", 10, ratio="0.1", price="12.00", quantity="3", ceiling="10.00"))


# Charge-level refusals


def test_an_empty_charge_is_refused() -> None:
    with pytest.raises(EmptyCharge):
        split([], national(), AccountState())


def test_more_lines_than_the_documented_limit_are_refused() -> None:
    lines = [line(amount_fen=1)] * (limits.MAX_LINES_PER_CHARGE + 1)
    with pytest.raises(TooManyLines) as refused:
        split(lines, national(), AccountState())
    assert refused.value.metadata["limit"] == str(limits.MAX_LINES_PER_CHARGE)


# National model (§5)


def test_the_deductible_is_paid_from_in_scope_before_the_fund_pays() -> None:
    result = split([line(amount_fen=28000)], national("0.70", 10000), AccountState(current_year_fen=10**6))
    assert (result.deductible_paid_fen, result.fund_paid_fen) == (10000, 12600)


def test_a_deductible_already_used_this_year_is_not_paid_again() -> None:
    state = AccountState(ytd_deductible_fen=10000)
    result = split([line(amount_fen=10000)], national("0.50", 10000), state)
    assert result.deductible_paid_fen == 0
    assert result.fund_paid_fen == 5000


def test_the_fund_stops_at_the_annual_cap() -> None:
    state = AccountState(ytd_fund_fen=9000)
    result = split([line(amount_fen=50000)], national("0.60", cap_fen=10000), state)
    assert result.fund_paid_fen == 1000
    assert result.after.ytd_fund_fen == 10000


def test_a_cap_already_exceeded_pays_nothing_rather_than_a_negative_amount() -> None:
    result = split([line(amount_fen=100)], national(cap_fen=10), AccountState(ytd_fund_fen=50))
    assert result.fund_paid_fen == 0


def test_the_fund_share_is_rounded_half_up() -> None:
    result = split([line(amount_fen=5)], national("0.50"), AccountState())  # 2.5 → 3
    assert result.fund_paid_fen == 3


def test_the_account_pays_at_most_its_balance_and_the_rest_is_cash() -> None:
    result = split([line(amount_fen=30000), line("C", "C", 15000)], national("0.75"),
                   AccountState(current_year_fen=6000))  # fmt: skip
    assert (result.account_paid_fen, result.cash_fen, result.balance_after_fen) == (6000, 16500, 0)


def test_inscope_account_scope_leaves_self_paid_and_over_ceiling_parts_to_cash() -> None:
    lines = [line(amount_fen=10000), line("C", "C", 3000)]
    result = split(lines, national("0.70", scope="INSCOPE"), AccountState(current_year_fen=10**6))
    assert result.account_paid_fen == 3000  # personal 6000 less the 3000 class-C line
    assert result.cash_fen == 3000


def test_a_patient_who_declines_the_account_pays_cash() -> None:
    result = split([line(amount_fen=30000)], national(), AccountState(current_year_fen=10**5), use_account=False)
    assert (result.account_paid_fen, result.cash_fen) == (0, 9000)


def test_a_policy_that_allows_no_account_pays_cash_whatever_the_patient_chooses() -> None:
    result = split([line(amount_fen=1000)], national(account_allowed=False), AccountState(current_year_fen=10**5))
    assert result.account_paid_fen == 0


def test_the_current_year_account_is_spent_before_the_historical_one() -> None:
    state = AccountState(current_year_fen=1000, historical_fen=5000)
    result = split([line("C", "C", 3000)], national(), state)
    assert (result.current_year_paid_fen, result.historical_paid_fen) == (1000, 2000)
    assert result.balance_after_fen == 3000


# Segmented model (§6)


def test_the_current_year_account_pays_first_and_does_not_count_towards_the_segment() -> None:
    result = split([line(amount_fen=20000)], segmented(), AccountState(current_year_fen=50000))
    assert (result.current_year_paid_fen, result.self_segment_fen, result.fund_paid_fen) == (20000, 0, 0)
    assert result.after.ytd_self_segment_fen == 0


def test_in_scope_beyond_the_segment_is_pooled_and_the_copay_comes_from_historical() -> None:
    state = AccountState(historical_fen=100000, ytd_self_segment_fen=90000)
    result = split([line(amount_fen=50000)], segmented("0.80"), state)
    assert (result.self_segment_fen, result.fund_paid_fen, result.historical_paid_fen) == (10000, 32000, 18000)


def test_the_current_year_account_pays_only_the_parts_it_is_allowed_to_in_its_order() -> None:
    state = AccountState(current_year_fen=100000)
    result = split([line("C", "C", 5000), line(amount_fen=1000)], segmented(current=("Z",)), state)
    assert result.current_year_paid_fen == 5000  # the class-C line only
    assert result.self_segment_fen == 1000


def test_what_no_account_covers_is_cash() -> None:
    state = AccountState(historical_fen=100000)
    result = split([line("C", "C", 5000)], segmented(historical=("segment", "copay")), state)
    assert (result.historical_paid_fen, result.cash_fen) == (0, 5000)


def test_the_segmented_fund_stops_at_its_cap() -> None:
    state = AccountState(ytd_self_segment_fen=100000, ytd_fund_fen=0)
    result = split([line(amount_fen=10000)], segmented("0.80", cap_fen=3000), state)
    assert result.fund_paid_fen == 3000


# Reversal (§3)


def test_cancelling_negates_the_stored_split_and_restores_the_state() -> None:
    before = AccountState(current_year_fen=500, historical_fen=100000, ytd_self_segment_fen=95000)
    result = split([line(amount_fen=40000), line("C", "C", 2000)], segmented(), before)
    assert reverse(result, result.after) == before
    assert effect_of(result).negated().negated() == effect_of(result)
