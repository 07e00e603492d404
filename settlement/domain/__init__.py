"""The pure domain: money, charges, policies, the split. Standard library only (a test proves it)."""

from settlement.domain.charge import Category, ChargeLine, LineSplit, split_line
from settlement.domain.money import Quantity, Ratio, UnitPrice, format_yuan
from settlement.domain.policy import (
    AccountScope,
    Catalogue,
    CatalogueItem,
    InsuredType,
    Model,
    NationalRule,
    Part,
    PolicyVersion,
    RegionPolicy,
    Rule,
    RuleKey,
    SegmentedRule,
    VisitType,
)
from settlement.domain.split import AccountEffect, AccountState, SplitResult, effect_of, reverse, split

__all__ = [
    "AccountEffect",
    "AccountScope",
    "AccountState",
    "Catalogue",
    "CatalogueItem",
    "Category",
    "ChargeLine",
    "InsuredType",
    "LineSplit",
    "Model",
    "NationalRule",
    "Part",
    "PolicyVersion",
    "Quantity",
    "Ratio",
    "RegionPolicy",
    "Rule",
    "RuleKey",
    "SegmentedRule",
    "SplitResult",
    "UnitPrice",
    "VisitType",
    "effect_of",
    "format_yuan",
    "reverse",
    "split",
    "split_line",
]
