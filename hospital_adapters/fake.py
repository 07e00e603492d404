"""A fast, in-memory ``EnginePort`` for tests and local demos.

Owns: a trivial split (every line in scope, a flat pool ratio, no deductible), per-person account
balances, and idempotency on ``request_id`` exactly as the real engine promises (a retry gets the first
answer, even a refusal; the same id with another body is ``REQUEST_ID_REUSED``). Must never be mistaken
for policy: the figures are only there so adapters have something consistent to report.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal

from hospital_adapters.port import (
    CanonicalSettleRequest,
    EnginePort,
    EngineUnavailable,
    Quoted,
    QuoteOutcome,
    Refusal,
    Settled,
    SettleOutcome,
    Split,
)

_FEN = Decimal("0.01")


@dataclass
class _Record:
    request: CanonicalSettleRequest
    outcome: SettleOutcome


@dataclass
class FakeEngine(EnginePort):
    """``persons`` maps person number to account balance in fen; ``catalogue`` limits known codes."""

    persons: Mapping[str, int]
    catalogue: Iterable[str] | None = None  # None: every code is in the catalogue
    pool_ratio: Decimal = Decimal("0.7")
    refusal: Refusal | None = None  # when set, every new request is refused with it
    unavailable: bool = False  # when set, every call raises EngineUnavailable
    settlements: list[tuple[CanonicalSettleRequest, Settled]] = field(default_factory=list)
    settle_calls: int = 0

    def __post_init__(self) -> None:
        self._balances: dict[str, int] = dict(self.persons)
        self._catalogue: frozenset[str] | None = None if self.catalogue is None else frozenset(self.catalogue)
        self._records: dict[str, _Record] = {}
        self._lock = threading.Lock()

    def balance_fen(self, person_number: str) -> int:
        with self._lock:
            return self._balances[person_number]

    def quote(self, request: CanonicalSettleRequest) -> QuoteOutcome:
        with self._lock:
            outcome = self._split_or_refusal(request)
        return outcome if isinstance(outcome, Refusal) else Quoted(outcome)

    def settle(self, request: CanonicalSettleRequest) -> SettleOutcome:
        with self._lock:
            self.settle_calls += 1
            if self.unavailable:
                raise EngineUnavailable("fake engine told to be unavailable")
            known = self._records.get(request.request_id)
            if known is not None:
                if known.request != request:
                    return Refusal(
                        "REQUEST_ID_REUSED",
                        f"request_id {request.request_id} was used for a different request",
                        "request_id",
                    )
                return known.outcome
            split_or_refusal = self._split_or_refusal(request)
            outcome: SettleOutcome
            if isinstance(split_or_refusal, Refusal):
                outcome = split_or_refusal
            else:
                outcome = Settled(f"S{len(self.settlements) + 1:08d}", split_or_refusal)
                self._balances[request.person_number] = split_or_refusal.balance_after_fen
                self.settlements.append((request, outcome))
            self._records[request.request_id] = _Record(request, outcome)
            return outcome

    def _split_or_refusal(self, request: CanonicalSettleRequest) -> Split | Refusal:
        if self.unavailable:
            raise EngineUnavailable("fake engine told to be unavailable")
        if self.refusal is not None:
            return self.refusal
        if request.person_number not in self._balances:
            return Refusal("PERSON_NOT_FOUND", "no insured person with that person number", "person_number")
        if not request.lines:
            return Refusal("EMPTY_CHARGE", "the charge has no lines", "lines")
        total_fen = 0
        for index, line in enumerate(request.lines):
            if self._catalogue is not None and line.catalogue_code not in self._catalogue:
                return Refusal(
                    "UNKNOWN_ITEM_CODE",
                    f"catalogue code {line.catalogue_code} is not in the catalogue",
                    f"lines[{index}].catalogue_code",
                )
            if line.amount_fen is not None:
                total_fen += line.amount_fen
            else:
                amount = Decimal(line.unit_price_yuan) * Decimal(line.quantity)
                total_fen += int(amount.quantize(_FEN, rounding=ROUND_HALF_UP) * 100)
        fund_fen = int((Decimal(total_fen) * self.pool_ratio).quantize(Decimal(1), rounding=ROUND_HALF_UP))
        balance_fen = self._balances[request.person_number]
        account_fen = min(total_fen - fund_fen, balance_fen) if request.use_account else 0
        return Split(
            total_fen=total_fen,
            fully_self_paid_fen=0,
            over_ceiling_fen=0,
            pre_self_paid_fen=0,
            in_scope_fen=total_fen,
            deductible_paid_fen=0,
            fund_paid_fen=fund_fen,
            account_paid_fen=account_fen,
            cash_fen=total_fen - fund_fen - account_fen,
            balance_after_fen=balance_fen - account_fen,
        )
