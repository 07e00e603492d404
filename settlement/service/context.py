"""What every handler needs besides the transaction: policies, card keys and the clock."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from cardio.card_crypto import IssuerKeySource
from settlement.service.clock import Clock, SystemClock
from settlement.service.policy_book import PolicyBook


@dataclass(frozen=True)
class ServiceContext:
    policies: PolicyBook
    # Issuer key sources by the cards table's ``key_reference``; an HSM adapter slots in here.
    key_sources: Mapping[str, IssuerKeySource] = field(default_factory=dict)
    clock: Clock = field(default_factory=SystemClock)
