"""The policies the engine settles under, and the pricing of requested lines against a catalogue.

Owns: choosing the policy version for a person, hospital, visit type and date, and turning requested
lines into priced, classified ``ChargeLine``s. Must never change money rules: those are the domain's.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from settlement.domain import ChargeLine, InsuredType, PolicyVersion, RegionPolicy, RuleKey, VisitType
from settlement.errors import NoPolicyInForce
from settlement.policy_files import load_policies
from settlement.service.commands import RequestedLine


@dataclass(frozen=True, slots=True)
class AppliedPolicy:
    region: RegionPolicy
    version: PolicyVersion

    @property
    def label(self) -> str:
        """Names the version in receipts: region and first day in force."""
        return f"{self.region.region}:{self.version.effective_from.isoformat()}"


class PolicyBook:
    def __init__(self, regions: Mapping[str, RegionPolicy]) -> None:
        self.regions = dict(regions)

    @classmethod
    def load(cls, folder: Path) -> PolicyBook:
        return cls(load_policies(folder))

    def applied(
        self, *, region: str, insured_type: InsuredType, hospital_level: int, visit_type: VisitType, day: dt.date
    ) -> AppliedPolicy:
        policy = self.regions.get(region)
        if policy is None:
            raise NoPolicyInForce(
                f"no policy is loaded for region {region}; load its policy folder",
                metadata={"region": region, "date": day.isoformat()},
            )
        version = policy.version_for(RuleKey(insured_type, hospital_level, visit_type), day)
        return AppliedPolicy(policy, version)


def priced_lines(policy: RegionPolicy, lines: Sequence[RequestedLine]) -> tuple[ChargeLine, ...]:
    """Classify and cap each line by the region's catalogue; unknown codes name their line."""
    priced = []
    for line in lines:
        item = policy.catalogue.item(line.item_code, field=f"{line.field_path}.item_code")
        priced.append(
            ChargeLine(
                code=line.item_code,
                category=item.category,
                selfpay_ratio=item.selfpay_ratio,
                amount_fen=line.amount_fen,
                unit_price=line.unit_price,
                quantity=line.quantity,
                price_ceiling=item.price_ceiling,
                line_id=line.line_id,
                field_path=line.field_path,
            )
        )
    return tuple(priced)
