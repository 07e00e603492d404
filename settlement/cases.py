"""The neutral worked-case format (../shared/cases/README.md) in and out of the domain.

Owns: turning one case (policy, person, items) into domain objects, and a split into the output field
names that README fixes. Every refusal names the case id and the field; it never skips a case silently.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

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
    SplitResult,
    UnitPrice,
    split,
)
from settlement.domain.money import ZERO_RATIO, check_amount_fen
from settlement.domain.policy import CURRENT_YEAR_PARTS, HISTORICAL_PARTS
from settlement.errors import InvalidField, InvalidInput


class CaseError(Exception):
    """A malformed case: names the case and the field."""

    def __init__(self, case_id: str, field: str, message: str) -> None:
        super().__init__(f"case {case_id}: {field}: {message}")
        self.case_id = case_id
        self.field = field


def run_case(case: object, index: int) -> dict[str, object]:
    """Split one case and return ``{"id": …, <output fields>}``. Raises ``CaseError``."""
    case_id = f"#{index}"
    if not isinstance(case, Mapping):
        raise CaseError(case_id, "(case)", "each case must be a JSON object")
    case_id = str(case.get("id", case_id))
    try:
        model = case.get("model")
        policy = _mapping(case, "policy")
        person = _mapping(case, "person")
        items = case.get("items")
        if not isinstance(items, list):
            raise InvalidField("items must be a list of charge lines", field="items")
        lines = [_line(item, n) for n, item in enumerate(items)]
        use_account = _bool(policy, "use_account", default=True, prefix="policy")
        rule: Rule
        if model == "national":
            rule = _national_rule(policy)
            state = AccountState(
                current_year_fen=_fen(person, "account_fen", "person"),
                ytd_deductible_fen=_fen(person, "ytd_deductible_fen", "person", default=0),
                ytd_fund_fen=_fen(person, "ytd_fund_fen", "person", default=0),
            )
        elif model == "segmented":
            rule = _segmented_rule(policy)
            state = AccountState(
                current_year_fen=_fen(person, "current_year_fen", "person"),
                historical_fen=_fen(person, "historical_fen", "person"),
                ytd_self_segment_fen=_fen(person, "ytd_self_segment_fen", "person", default=0),
                ytd_fund_fen=_fen(person, "ytd_fund_fen", "person", default=0),
            )
        else:
            raise InvalidField(f"model must be \"national\" or \"segmented\", got {model!r}", field="model")
        result = split(lines, rule, state, use_account=use_account)
    except InvalidInput as error:
        raise CaseError(case_id, error.field, error.message) from None
    return {"id": case_id, **output_fields(result)}


def output_fields(result: SplitResult) -> dict[str, int]:
    """National names for every case; the segmented extras are always present too (zero if unused)."""
    return {
        "medfee_sumamt": result.total_fen,
        "fulamt_ownpay_amt": result.fully_self_paid_fen,
        "overlmt_selfpay": result.over_ceiling_fen,
        "preselfpay_amt": result.pre_self_paid_fen,
        "inscp_scp_amt": result.in_scope_fen,
        "act_pay_dedc": result.deductible_paid_fen,
        "hifp_pay": result.fund_paid_fen,
        "psn_part_amt": result.personal_part_fen,
        "acct_pay": result.account_paid_fen,
        "psn_cash_pay": result.cash_fen,
        "balc": result.balance_after_fen,
        "cur_acct_pay": result.current_year_paid_fen,
        "hist_acct_pay": result.historical_paid_fen,
        "self_segment_amt": result.self_segment_fen,
        "current_year_after": result.after.current_year_fen,
        "historical_after": result.after.historical_fen,
        "ytd_deductible_after": result.after.ytd_deductible_fen,
        "ytd_fund_after": result.after.ytd_fund_fen,
        "ytd_self_segment_after": result.after.ytd_self_segment_fen,
    }


def _mapping(case: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = case.get(key)
    if not isinstance(value, Mapping):
        raise InvalidField(f"{key} must be a JSON object", field=key)
    return value


def _fen(source: Mapping[str, Any], key: str, prefix: str, *, default: int | None = None) -> int:
    if key not in source:
        if default is None:
            raise InvalidField(f"{prefix}.{key} is required", field=f"{prefix}.{key}")
        return default
    return check_amount_fen(source[key], field=f"{prefix}.{key}")


def _bool(source: Mapping[str, Any], key: str, *, default: bool, prefix: str) -> bool:
    value = source.get(key, default)
    if not isinstance(value, bool):
        raise InvalidField(f"{prefix}.{key} must be true or false, got {value!r}", field=f"{prefix}.{key}")
    return value


def _cap(policy: Mapping[str, Any]) -> int | None:
    if policy.get("fund_cap_fen") is None:
        return None
    return _fen(policy, "fund_cap_fen", "policy")


def _national_rule(policy: Mapping[str, Any]) -> NationalRule:
    scope_text = policy.get("account_scope", "ALL")
    try:
        scope = AccountScope(scope_text)
    except ValueError:
        raise InvalidField(
            f"policy.account_scope must be ALL or INSCOPE, got {scope_text!r}", field="policy.account_scope"
        ) from None
    return NationalRule(
        pool_ratio=Ratio.parse(policy.get("pool_ratio"), field="policy.pool_ratio"),
        deductible_fen=_fen(policy, "deductible_fen", "policy", default=0),
        fund_cap_fen=_cap(policy),
        account_allowed=True,  # in a case the patient's choice (use_account) is the whole story
        account_scope=scope,
    )


def _parts(policy: Mapping[str, Any], key: str, allowed: frozenset[Part]) -> tuple[Part, ...]:
    raw = policy.get(key)
    field = f"policy.{key}"
    if not isinstance(raw, list):
        raise InvalidField(f"{field} must be a list such as [\"E\", \"L\", \"Z\"]", field=field)
    parts: list[Part] = []
    for value in raw:
        try:
            part = Part(value)
        except ValueError:
            part = None
        if part is None or part not in allowed or part in parts:
            names = ", ".join(sorted(p.value for p in allowed))
            raise InvalidField(f"{field}: {value!r} is not one of {names} (each once)", field=field)
        parts.append(part)
    return tuple(parts)


def _segmented_rule(policy: Mapping[str, Any]) -> SegmentedRule:
    return SegmentedRule(
        pool_ratio=Ratio.parse(policy.get("pool_ratio"), field="policy.pool_ratio"),
        self_segment_fen=_fen(policy, "self_segment_fen", "policy"),
        fund_cap_fen=_cap(policy),
        current_covers=_parts(policy, "current_covers", CURRENT_YEAR_PARTS),
        historical_covers=_parts(policy, "historical_covers", HISTORICAL_PARTS),
    )


def _line(item: object, index: int) -> ChargeLine:
    prefix = f"items[{index}]"
    if not isinstance(item, Mapping):
        raise InvalidField(f"{prefix} must be a JSON object", field=prefix)
    code = item.get("code")
    if not isinstance(code, str) or not code:
        raise InvalidField(f"{prefix}.code must be a non-empty string", field=f"{prefix}.code")
    category = Category.parse(item.get("category"), field=f"{prefix}.category")
    ratio = ZERO_RATIO
    if item.get("selfpay_ratio") is not None:
        ratio = Ratio.parse(item["selfpay_ratio"], field=f"{prefix}.selfpay_ratio")
    amount = None
    if item.get("amount_fen") is not None:
        amount = check_amount_fen(item["amount_fen"], field=f"{prefix}.amount_fen")
    price = quantity = ceiling = None
    if item.get("unit_price") is not None:
        price = UnitPrice.parse(item["unit_price"], field=f"{prefix}.unit_price")
    if item.get("quantity") is not None:
        quantity = Quantity.parse(item["quantity"], field=f"{prefix}.quantity")
    if item.get("price_ceiling") is not None:
        ceiling = UnitPrice.parse(item["price_ceiling"], field=f"{prefix}.price_ceiling")
    return ChargeLine(code, category, ratio, amount, price, quantity, ceiling, field_path=prefix)
