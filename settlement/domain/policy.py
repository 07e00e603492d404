"""Policy parameters of a region, by insured type, hospital level, visit type and date; the catalogue.

Owns: the two rule shapes (national-standard §5, segmented Hangzhou-style §6), the choice of the rule in
force for a settlement, and the item catalogue. Must never hold parameter *values*: those live in policy
files (see settlement/policy_files.py and docs/policies.md).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum

from settlement.domain.charge import Category
from settlement.domain.money import Ratio, UnitPrice
from settlement.errors import NoPolicyInForce, UnknownItemCode


class Model(StrEnum):
    NATIONAL = "national"
    SEGMENTED = "segmented"


class InsuredType(StrEnum):
    EMPLOYEE = "employee"  # 在职职工
    RETIRED = "retired"  # 退休职工
    RESIDENT = "resident"  # 城乡居民


class VisitType(StrEnum):
    OUTPATIENT = "outpatient"  # 普通门诊
    EMERGENCY = "emergency"  # 急诊
    CHRONIC = "chronic"  # 门诊慢特病


class AccountScope(StrEnum):
    ALL = "ALL"  # the account may pay the whole personal part
    INSCOPE = "INSCOPE"  # only the personal part less fully self-paid and over-ceiling amounts


class Part(StrEnum):
    """What an account may pay in the segmented model (domain.md §6)."""

    IN_SCOPE = "E"
    PRE_SELF_PAID = "L"
    SELF_PAID = "Z"  # fully self-paid + over-ceiling
    SEGMENT = "segment"
    COPAY = "copay"


CURRENT_YEAR_PARTS = frozenset({Part.IN_SCOPE, Part.PRE_SELF_PAID, Part.SELF_PAID})
HISTORICAL_PARTS = frozenset({Part.SEGMENT, Part.COPAY, Part.PRE_SELF_PAID, Part.SELF_PAID})


@dataclass(frozen=True, slots=True)
class NationalRule:
    pool_ratio: Ratio
    deductible_fen: int
    fund_cap_fen: int | None
    account_allowed: bool
    account_scope: AccountScope


@dataclass(frozen=True, slots=True)
class SegmentedRule:
    pool_ratio: Ratio
    self_segment_fen: int
    fund_cap_fen: int | None
    current_covers: tuple[Part, ...]
    historical_covers: tuple[Part, ...]


Rule = NationalRule | SegmentedRule


@dataclass(frozen=True, slots=True)
class RuleKey:
    insured_type: InsuredType
    hospital_level: int
    visit_type: VisitType


@dataclass(frozen=True, slots=True)
class PolicyVersion:
    """One rule applying to some insured types, hospital levels and visit types over a date range."""

    effective_from: dt.date
    effective_to: dt.date | None  # inclusive; None = until further notice
    keys: frozenset[RuleKey]
    rule: Rule
    source: str = ""  # where it was read from, for error messages

    def in_force_on(self, day: dt.date) -> bool:
        return self.effective_from <= day and (self.effective_to is None or day <= self.effective_to)


@dataclass(frozen=True, slots=True)
class CatalogueItem:
    code: str
    name: str
    category: Category
    selfpay_ratio: Ratio
    price_ceiling: UnitPrice | None
    unit: str


@dataclass(frozen=True)
class Catalogue:
    items: Mapping[str, CatalogueItem]

    def item(self, code: str, *, field: str) -> CatalogueItem:
        found = self.items.get(code)
        if found is None:
            raise UnknownItemCode(
                f"{field}: item code {code!r} is not in the catalogue; map the hospital's code first",
                field=field,
                metadata={"item_code": code},
            )
        return found


@dataclass(frozen=True)
class RegionPolicy:
    """A region's model, its dated rules and its catalogue. Ranges are checked when the file is loaded."""

    region: str
    name: str
    model: Model
    versions: tuple[PolicyVersion, ...]
    catalogue: Catalogue
    _index: dict[RuleKey, list[PolicyVersion]] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        index: dict[RuleKey, list[PolicyVersion]] = {}
        for version in self.versions:
            for key in version.keys:
                index.setdefault(key, []).append(version)
        for found in index.values():
            found.sort(key=lambda v: v.effective_from)
        object.__setattr__(self, "_index", index)

    def rule_for(self, key: RuleKey, day: dt.date) -> Rule:
        return self.version_for(key, day).rule

    def version_for(self, key: RuleKey, day: dt.date) -> PolicyVersion:
        for version in self._index.get(key, ()):
            if version.in_force_on(day):
                return version
        raise NoPolicyInForce(
            f"region {self.region} has no policy for {key.insured_type} at a level-{key.hospital_level} "
            f"hospital, {key.visit_type} visit, on {day.isoformat()}",
            metadata={"region": self.region, "date": day.isoformat()},
        )

    def rule_keys(self) -> Iterable[RuleKey]:
        return self._index.keys()
