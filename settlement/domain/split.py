"""The split of one settlement between the pooled fund, the personal accounts and cash.

Owns: domain.md §5 (national-standard) and §6 (segmented) above line level, the result with its national
field names, the §2 identities (checked on every result before it is returned) and the reversal of a
stored result. Must never touch storage, clocks or anything outside the standard library; it is a pure
function of (lines, rule, account state, the patient's choice).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

from settlement.domain.charge import ChargeLine, LineSplit, check_line_count, split_line
from settlement.domain.policy import AccountScope, NationalRule, Part, Rule, SegmentedRule
from settlement.errors import InvariantViolated


class AccountState(NamedTuple):
    """A person's balances and this year's accumulators, before or after a settlement.

    Named tuples, like ``LineSplit``, because every split builds several: a frozen dataclass pays for
    ``object.__setattr__`` on each field.
    """

    current_year_fen: int = 0  # 当年账户
    historical_fen: int = 0  # 历年账户
    ytd_deductible_fen: int = 0  # 起付线 used this year
    ytd_fund_fen: int = 0  # 统筹基金 paid this year (for the annual cap)
    ytd_self_segment_fen: int = 0  # 自负段 used this year (segmented model)

    @property
    def balance_fen(self) -> int:
        return self.current_year_fen + self.historical_fen


class SplitResult(NamedTuple):
    """Every field of domain.md §2, with the national name beside each."""

    lines: tuple[LineSplit, ...]
    total_fen: int  # medfee_sumamt
    fully_self_paid_fen: int  # fulamt_ownpay_amt
    over_ceiling_fen: int  # overlmt_selfpay
    pre_self_paid_fen: int  # preselfpay_amt
    in_scope_fen: int  # inscp_scp_amt
    deductible_paid_fen: int  # act_pay_dedc (segmented: the self-paid segment)
    fund_paid_fen: int  # hifp_pay
    personal_part_fen: int  # psn_part_amt
    account_paid_fen: int  # acct_pay = current_year_paid + historical_paid
    current_year_paid_fen: int
    historical_paid_fen: int
    self_segment_fen: int  # segmented model only; 0 in the national model
    cash_fen: int  # psn_cash_pay
    before: AccountState
    after: AccountState

    @property
    def balance_after_fen(self) -> int:  # balc
        return self.after.balance_fen


def split(lines: Sequence[ChargeLine], rule: Rule, state: AccountState, *, use_account: bool = True) -> SplitResult:
    """Split a charge. Raises an ``InvalidInput`` subclass for bad lines, ``InvariantViolated`` on a bug."""
    check_line_count(lines)
    parts = tuple(map(split_line, lines))
    if isinstance(rule, NationalRule):
        result = _national(parts, rule, state, use_account=use_account)
    else:
        result = _segmented(parts, rule, state, use_account=use_account)
    check_identities(result, rule)
    return result


class _Sums(NamedTuple):
    total: int
    fully_self_paid: int
    over_ceiling: int
    pre_self_paid: int
    in_scope: int


def _sum(parts: Sequence[LineSplit]) -> _Sums:
    if not parts:
        return _Sums(0, 0, 0, 0, 0)
    # Column sums in C: (code, line_id, amount, fully self-paid, over-ceiling, pre-self-paid, in scope).
    columns = tuple(zip(*parts, strict=True))
    return _Sums(sum(columns[2]), sum(columns[3]), sum(columns[4]), sum(columns[5]), sum(columns[6]))


def _cap_room(cap_fen: int | None, state: AccountState) -> int | None:
    return None if cap_fen is None else max(0, cap_fen - state.ytd_fund_fen)


def _national(
    parts: tuple[LineSplit, ...], rule: NationalRule, state: AccountState, *, use_account: bool
) -> SplitResult:
    sums = _sum(parts)
    deductible_paid = min(sums.in_scope, max(0, rule.deductible_fen - state.ytd_deductible_fen))
    fund = rule.pool_ratio.of(sums.in_scope - deductible_paid)
    room = _cap_room(rule.fund_cap_fen, state)
    if room is not None:
        fund = min(fund, room)
    personal = sums.total - fund
    account = 0
    if use_account and rule.account_allowed:
        eligible = personal
        if rule.account_scope is AccountScope.INSCOPE:
            eligible = personal - sums.fully_self_paid - sums.over_ceiling
        account = min(max(0, eligible), state.balance_fen)
    # The current-year account is spent before the historical one.
    current_paid = min(account, state.current_year_fen)
    historical_paid = account - current_paid
    after = AccountState(  # current year, historical, deductible, fund, self-paid segment
        state.current_year_fen - current_paid,
        state.historical_fen - historical_paid,
        state.ytd_deductible_fen + deductible_paid,
        state.ytd_fund_fen + fund,
        state.ytd_self_segment_fen,
    )
    return SplitResult(
        lines=parts,
        total_fen=sums.total,
        fully_self_paid_fen=sums.fully_self_paid,
        over_ceiling_fen=sums.over_ceiling,
        pre_self_paid_fen=sums.pre_self_paid,
        in_scope_fen=sums.in_scope,
        deductible_paid_fen=deductible_paid,
        fund_paid_fen=fund,
        personal_part_fen=personal,
        account_paid_fen=account,
        current_year_paid_fen=current_paid,
        historical_paid_fen=historical_paid,
        self_segment_fen=0,
        cash_fen=personal - account,
        before=state,
        after=after,
    )


# Read once: an enum member looked up on its class costs more than a bucket's arithmetic.
_IN_SCOPE, _PRE_SELF_PAID, _SELF_PAID = Part.IN_SCOPE, Part.PRE_SELF_PAID, Part.SELF_PAID
_SEGMENT, _COPAY = Part.SEGMENT, Part.COPAY


def _segmented(
    parts: tuple[LineSplit, ...], rule: SegmentedRule, state: AccountState, *, use_account: bool
) -> SplitResult:
    sums = _sum(parts)
    # What is still unpaid of each bucket; E = in scope, L = pre-self-paid, Z = fully self-paid + over.
    left = {
        _IN_SCOPE: sums.in_scope,
        _PRE_SELF_PAID: sums.pre_self_paid,
        _SELF_PAID: sums.fully_self_paid + sums.over_ceiling,
    }
    current_left = state.current_year_fen if use_account else 0
    for part in rule.current_covers:
        paid = min(left[part], current_left)
        left[part] -= paid
        current_left -= paid
    current_paid = (state.current_year_fen if use_account else 0) - current_left

    segment = min(left[_IN_SCOPE], max(0, rule.self_segment_fen - state.ytd_self_segment_fen))
    base = left[_IN_SCOPE] - segment
    fund = rule.pool_ratio.of(base)
    room = _cap_room(rule.fund_cap_fen, state)
    if room is not None:
        fund = min(fund, room)
    left[_SEGMENT] = segment
    left[_COPAY] = base - fund
    left[_IN_SCOPE] = 0  # now wholly in segment + fund + copay

    historical_left = state.historical_fen if use_account else 0
    for part in rule.historical_covers:
        paid = min(left[part], historical_left)
        left[part] -= paid
        historical_left -= paid
    historical_paid = (state.historical_fen if use_account else 0) - historical_left

    account = current_paid + historical_paid
    personal = sums.total - fund
    after = AccountState(  # current year, historical, deductible, fund, self-paid segment
        state.current_year_fen - current_paid,
        state.historical_fen - historical_paid,
        state.ytd_deductible_fen,
        state.ytd_fund_fen + fund,
        state.ytd_self_segment_fen + segment,
    )
    return SplitResult(
        lines=parts,
        total_fen=sums.total,
        fully_self_paid_fen=sums.fully_self_paid,
        over_ceiling_fen=sums.over_ceiling,
        pre_self_paid_fen=sums.pre_self_paid,
        in_scope_fen=sums.in_scope,
        deductible_paid_fen=segment,
        fund_paid_fen=fund,
        personal_part_fen=personal,
        account_paid_fen=account,
        current_year_paid_fen=current_paid,
        historical_paid_fen=historical_paid,
        self_segment_fen=segment,
        cash_fen=personal - account,
        before=state,
        after=after,
    )


_AMOUNT_NAMES = (
    "total", "fully_self_paid", "over_ceiling", "pre_self_paid", "in_scope", "deductible_paid", "fund_paid",
    "personal_part", "account_paid", "current_year_paid", "historical_paid", "self_segment", "cash",
    "current_year_after", "historical_after",
)  # fmt: skip


def check_identities(result: SplitResult, rule: Rule | None = None) -> None:
    """The §2 identities, to the fen. Stays on in production; a failure is a bug, never a reply."""
    r = result
    problems: list[str] = []
    if r.total_fen != r.fully_self_paid_fen + r.over_ceiling_fen + r.pre_self_paid_fen + r.in_scope_fen:
        problems.append("total != fully self-paid + over-ceiling + pre-self-paid + in-scope")
    if r.total_fen != r.fund_paid_fen + r.personal_part_fen:
        problems.append("total != fund + personal part")
    if r.personal_part_fen != r.account_paid_fen + r.cash_fen:
        problems.append("personal part != account + cash")
    if r.account_paid_fen != r.current_year_paid_fen + r.historical_paid_fen:
        problems.append("account != current-year + historical")
    if r.deductible_paid_fen > r.in_scope_fen:
        problems.append("deductible paid > in scope")
    if r.after.balance_fen != r.before.balance_fen - r.account_paid_fen:
        problems.append("balance after != balance before - account paid")
    if r.after.ytd_fund_fen != r.before.ytd_fund_fen + r.fund_paid_fen:
        problems.append("fund accumulator did not grow by the fund paid")
    values = (
        r.total_fen, r.fully_self_paid_fen, r.over_ceiling_fen, r.pre_self_paid_fen, r.in_scope_fen,
        r.deductible_paid_fen, r.fund_paid_fen, r.personal_part_fen, r.account_paid_fen,
        r.current_year_paid_fen, r.historical_paid_fen, r.self_segment_fen, r.cash_fen,
        r.after.current_year_fen, r.after.historical_fen,
    )  # fmt: skip
    if min(values) < 0:  # named only when it happens: the check runs on every split
        problems.extend(
            f"{name} is negative ({value})" for name, value in zip(_AMOUNT_NAMES, values, strict=True) if value < 0
        )
    problems.extend(_line_problems(r.lines, r.total_fen))
    if (
        rule is not None
        and rule.fund_cap_fen is not None
        and r.fund_paid_fen > max(0, rule.fund_cap_fen - r.before.ytd_fund_fen)
    ):
        problems.append("fund paid exceeds what remains under the annual cap")
    if problems:
        raise InvariantViolated("split identities violated: " + "; ".join(problems))


def _line_problems(lines: Sequence[LineSplit], total_fen: int) -> list[str]:
    problems = []
    line_sum = 0
    for line in lines:
        amount = line.amount_fen
        line_sum += amount
        if amount != line.fully_self_paid_fen + line.over_ceiling_fen + line.pre_self_paid_fen + line.in_scope_fen:
            problems.append(f"line {line.code} parts do not sum to its amount")
    if line_sum != total_fen:
        problems.append("lines do not sum to the total")
    return problems


def reverse(result: SplitResult, state: AccountState) -> AccountState:
    """The state after cancelling ``result``: its stored effect negated, never recomputed (§3)."""
    return effect_of(result).negated().applied_to(state)


@dataclass(frozen=True, slots=True)
class AccountEffect:
    """What a settlement did to a person's balances and accumulators (debits negative)."""

    current_year_fen: int
    historical_fen: int
    ytd_deductible_fen: int
    ytd_fund_fen: int
    ytd_self_segment_fen: int

    def negated(self) -> AccountEffect:
        return AccountEffect(
            -self.current_year_fen,
            -self.historical_fen,
            -self.ytd_deductible_fen,
            -self.ytd_fund_fen,
            -self.ytd_self_segment_fen,
        )

    def applied_to(self, state: AccountState) -> AccountState:
        return AccountState(
            current_year_fen=state.current_year_fen + self.current_year_fen,
            historical_fen=state.historical_fen + self.historical_fen,
            ytd_deductible_fen=state.ytd_deductible_fen + self.ytd_deductible_fen,
            ytd_fund_fen=state.ytd_fund_fen + self.ytd_fund_fen,
            ytd_self_segment_fen=state.ytd_self_segment_fen + self.ytd_self_segment_fen,
        )


def effect_of(result: SplitResult) -> AccountEffect:
    before, after = result.before, result.after
    return AccountEffect(
        current_year_fen=after.current_year_fen - before.current_year_fen,
        historical_fen=after.historical_fen - before.historical_fen,
        ytd_deductible_fen=after.ytd_deductible_fen - before.ytd_deductible_fen,
        ytd_fund_fen=after.ytd_fund_fen - before.ytd_fund_fen,
        ytd_self_segment_fen=after.ytd_self_segment_fen - before.ytd_self_segment_fen,
    )
