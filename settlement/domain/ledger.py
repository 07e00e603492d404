"""Named ledger accounts, postings and the audit hash chain.

Owns: which accounts a settlement moves money between (formance-style postings that always balance), the
names of those accounts, which of them may go negative, and the hash that chains audit rows. Must never
store anything: storage adapters persist what this module computes.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from settlement.errors import InvariantViolated

# Accounts outside the engine: money enters or leaves through them, so they may go negative.
PATIENT_CASH = "external:patient-cash"  # cash the patient pays at the desk
FUNDING = "external:funding"  # annual funding and opening balances of personal accounts


def person_current(person_number: str) -> str:
    return f"person:{person_number}:current"


def person_historical(person_number: str) -> str:
    return f"person:{person_number}:historical"


def fund_pool(region: str) -> str:
    return f"fund:{region}:pool"


def hospital_receivable(hospital_id: str) -> str:
    """What the insurer owes the hospital: fund share plus personal-account share."""
    return f"hospital:{hospital_id}:receivable"


def hospital_cash(hospital_id: str) -> str:
    """Cash the hospital collected at the desk."""
    return f"hospital:{hospital_id}:cash"


def may_go_negative(account: str) -> bool:
    """Only explicitly external accounts and the pooled funds (financed outside the engine)."""
    return account.startswith(("external:", "fund:"))


@dataclass(frozen=True, slots=True)
class Posting:
    """``amount_fen`` moves from ``source`` to ``destination``; always strictly positive."""

    source: str
    destination: str
    amount_fen: int

    def reversed(self) -> Posting:
        return Posting(self.destination, self.source, self.amount_fen)


@dataclass(frozen=True, slots=True)
class SettlementMoney:
    """The money a settlement moves, which is all the postings need."""

    person_number: str
    region: str
    hospital_id: str
    fund_paid_fen: int
    current_year_paid_fen: int
    historical_paid_fen: int
    cash_fen: int


def settlement_postings(money: SettlementMoney) -> tuple[Posting, ...]:
    """Fund, current-year, historical to the hospital's receivable; cash to the hospital's till."""
    receivable = hospital_receivable(money.hospital_id)
    candidates = (
        Posting(fund_pool(money.region), receivable, money.fund_paid_fen),
        Posting(person_current(money.person_number), receivable, money.current_year_paid_fen),
        Posting(person_historical(money.person_number), receivable, money.historical_paid_fen),
        Posting(PATIENT_CASH, hospital_cash(money.hospital_id), money.cash_fen),
    )
    for posting in candidates:
        if posting.amount_fen < 0:
            raise InvariantViolated(f"negative posting {posting}")
    return tuple(p for p in candidates if p.amount_fen > 0)


def net_changes(postings: Iterable[Posting]) -> dict[str, int]:
    """Each account's net change; sums to zero over every account for any set of postings."""
    changes: dict[str, int] = {}
    for posting in postings:
        if posting.amount_fen <= 0:
            raise InvariantViolated(f"posting amount must be positive: {posting}")
        changes[posting.source] = changes.get(posting.source, 0) - posting.amount_fen
        changes[posting.destination] = changes.get(posting.destination, 0) + posting.amount_fen
    if sum(changes.values()) != 0:
        raise InvariantViolated("postings do not balance")
    return changes


GENESIS_HASH = "0" * 64


def audit_hash(previous_hash: str, entry: Mapping[str, object]) -> str:
    """SHA-256 over the previous row's hash and this row's canonical JSON: a flipped byte breaks the chain."""
    canonical = json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str)
    return hashlib.sha256(f"{previous_hash}\n{canonical}".encode()).hexdigest()
