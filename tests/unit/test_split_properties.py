"""Properties of the split over random charges, rules and account states (hypothesis)."""

from hypothesis import given, settings
from hypothesis import strategies as st

from settlement.domain import (
    AccountScope,
    AccountState,
    Category,
    ChargeLine,
    NationalRule,
    Part,
    Quantity,
    Ratio,
    Rule,
    SegmentedRule,
    UnitPrice,
    reverse,
    split,
)

fen = st.integers(min_value=0, max_value=2_000_000)
ratios = st.integers(min_value=0, max_value=10_000).map(Ratio)


@st.composite
def charge_lines(draw: st.DrawFn) -> ChargeLine:
    category = draw(st.sampled_from(list(Category)))
    ratio = draw(ratios)
    if draw(st.booleans()):
        return ChargeLine("X", category, ratio, amount_fen=draw(fen))
    price = draw(st.integers(min_value=0, max_value=50_000_000))  # ≤ 50 yuan in micro-yuan
    quantity = Quantity(draw(st.integers(min_value=1, max_value=1_000_000)))
    ceiling = None
    if draw(st.booleans()):
        ceiling = UnitPrice(draw(st.integers(min_value=0, max_value=50_000_000)))
    return ChargeLine("X", category, ratio, unit_price=UnitPrice(price), quantity=quantity, price_ceiling=ceiling)


national_rules = st.builds(
    NationalRule,
    pool_ratio=ratios,
    deductible_fen=fen,
    fund_cap_fen=st.none() | fen,
    account_allowed=st.booleans(),
    account_scope=st.sampled_from(list(AccountScope)),
)
segmented_rules = st.builds(
    SegmentedRule,
    pool_ratio=ratios,
    self_segment_fen=fen,
    fund_cap_fen=st.none() | fen,
    current_covers=st.permutations([Part.IN_SCOPE, Part.PRE_SELF_PAID, Part.SELF_PAID]).flatmap(
        lambda order: st.integers(0, 3).map(lambda n: tuple(order[:n]))
    ),
    historical_covers=st.permutations([Part.SEGMENT, Part.COPAY, Part.PRE_SELF_PAID, Part.SELF_PAID]).flatmap(
        lambda order: st.integers(0, 4).map(lambda n: tuple(order[:n]))
    ),
)
rules: st.SearchStrategy[Rule] = national_rules | segmented_rules
states = st.builds(
    AccountState,
    current_year_fen=fen,
    historical_fen=fen,
    ytd_deductible_fen=fen,
    ytd_fund_fen=fen,
    ytd_self_segment_fen=fen,
)


@settings(max_examples=400, deadline=None)
@given(st.lists(charge_lines(), min_size=1, max_size=12), rules, states, st.booleans())
def test_every_split_keeps_the_identities_and_bounds(
    lines: list[ChargeLine], rule: Rule, state: AccountState, use_account: bool
) -> None:
    result = split(lines, rule, state, use_account=use_account)  # raises if an identity breaks
    assert result.total_fen == result.fund_paid_fen + result.account_paid_fen + result.cash_fen
    assert 0 <= result.account_paid_fen <= state.balance_fen
    assert result.after.current_year_fen >= 0
    assert result.after.historical_fen >= 0
    if rule.fund_cap_fen is not None:
        assert result.fund_paid_fen <= max(0, rule.fund_cap_fen - state.ytd_fund_fen)
    if isinstance(rule, NationalRule):
        assert result.deductible_paid_fen <= max(0, rule.deductible_fen - state.ytd_deductible_fen)
    else:
        assert result.self_segment_fen <= max(0, rule.self_segment_fen - state.ytd_self_segment_fen)
    if not use_account:
        assert result.account_paid_fen == 0


@settings(max_examples=200, deadline=None)
@given(st.lists(charge_lines(), min_size=1, max_size=8), rules, states)
def test_the_split_is_deterministic_and_cancelling_restores_the_state(
    lines: list[ChargeLine], rule: Rule, state: AccountState
) -> None:
    first = split(lines, rule, state)
    assert split(lines, rule, state) == first
    assert reverse(first, first.after) == state
