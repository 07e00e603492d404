"""Quote (2206) and settle (2207): the split of a charge against a person's accounts, then its commit.

Owns: the checks a settle passes before it may write (hospital, terminal, closed day, person, card,
policy, card proof), and the write itself: entry, lines, postings, balances, accumulators, card counter,
spent quote, idempotency record and audit row — all in the caller's transaction. Must never commit:
the writer does, once per batch.
"""

from __future__ import annotations

import secrets
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any

from settlement import limits
from settlement.domain import AccountState, ChargeLine, InsuredType, SplitResult, split
from settlement.errors import (
    CardBlocked,
    CardLost,
    CardNotFound,
    CardNotOfPerson,
    CardProofRequired,
    DayAlreadyClosed,
    HospitalNotFound,
    InsuredTypeMismatch,
    PermissionDenied,
    PersonNotFound,
)
from settlement.identity import last4, mask, shown
from settlement.service.card_proof import check_card_proof
from settlement.service.clock import MICROSECONDS_PER_SECOND, business_date, new_entry_id
from settlement.service.commands import Caller, CardProof, ChargeRequest, QuoteCommand, SettleCommand
from settlement.service.context import ServiceContext
from settlement.service.entries import CLEARING_TYPES, line_rows, split_columns, write_entry
from settlement.service.policy_book import AppliedPolicy, priced_lines
from settlement.service.replies import earlier_outcome, load_view, refusals_recorded
from settlement.service.views import QuoteView, SettlementView, quoted_split, settlement_view
from settlement.storage.repository import Repository, WriteKeys


@dataclass(frozen=True, slots=True)
class Visit:
    """A charge checked against the store: who, where, under which policy, and its split."""

    hospital: Mapping[str, Any]
    terminal: Mapping[str, Any]
    person: Mapping[str, Any]
    card: Mapping[str, Any] | None
    insured_type: InsuredType
    policy: AppliedPolicy
    lines: tuple[ChargeLine, ...]
    before: AccountState
    result: SplitResult


def write_keys(
    caller: Caller, charge: ChargeRequest, request_id: str = "", proof: CardProof | None = None
) -> WriteKeys:
    """What pricing a visit reads, so the writer fetches it for a whole batch at once."""
    card = proof.card_number if proof is not None and not charge.card_number else charge.card_number
    return WriteKeys(
        persons=(charge.person_number,),
        request=(caller.hospital_id, request_id) if request_id else None,
        caller=(caller.hospital_id, caller.terminal_id),
        visit=(charge.person_number, charge.visit_date.year, card),
    )


def check_caller(repo: Repository, caller: Caller) -> tuple[Mapping[str, Any], Mapping[str, Any]]:
    hospital = repo.hospital(caller.hospital_id)
    if hospital is None:
        raise HospitalNotFound(
            f"hospital {caller.hospital_id} is not registered", metadata={"hospital_id": caller.hospital_id}
        )
    terminal = repo.terminal(caller.terminal_id)
    if terminal is None or terminal["hospital_id"] != caller.hospital_id or not terminal["active"]:
        raise PermissionDenied(
            f"terminal {caller.terminal_id} is not an active terminal of hospital {caller.hospital_id}",
            metadata={"terminal_id": caller.terminal_id},
        )
    return hospital, terminal


def check_day_open(repo: Repository, hospital_id: str, now_us: int) -> None:
    day = business_date(now_us)
    if repo.day_closed(hospital_id, day):
        raise DayAlreadyClosed(
            f"hospital {hospital_id} closed {day.isoformat()}; book corrections on an open day",
            metadata={"date": day.isoformat()},
        )


def price_visit(repo: Repository, context: ServiceContext, caller: Caller, charge: ChargeRequest) -> Visit:
    """Every state check a quote and a settle share, and the split against the stored accounts."""
    hospital, terminal = check_caller(repo, caller)
    repo.prefetch_visits([(charge.person_number, charge.visit_date.year, charge.card_number)])
    person = repo.person(charge.person_number)
    if person is None:
        raise PersonNotFound(
            f"no insured person {shown(charge.person_number)}", metadata={"person_number": shown(charge.person_number)}
        )
    enrolled = InsuredType(str(person["insured_type"]))
    if charge.insured_type is not None and charge.insured_type is not enrolled:
        raise InsuredTypeMismatch(
            f"person {charge.person_number} is enrolled as {enrolled}, not {charge.insured_type}",
            metadata={"field": "insured_type", "enrolled": enrolled.value},
        )
    card = check_card(repo, charge.card_number, charge.person_number) if charge.card_number else None
    policy = context.policies.applied(
        region=str(person["region"]),
        insured_type=enrolled,
        hospital_level=int(hospital["level"]),
        visit_type=charge.visit_type,
        day=charge.visit_date,
    )
    lines = priced_lines(policy.region, charge.lines)
    before = repo.account_state(charge.person_number, charge.visit_date.year) or AccountState()
    result = split(lines, policy.version.rule, before, use_account=charge.use_account)
    return Visit(hospital, terminal, person, card, enrolled, policy, lines, before, result)


def check_card(repo: Repository, card_number: str, person_number: str) -> Mapping[str, Any]:
    card = repo.card(card_number)
    shown = mask(card_number)
    if card is None:
        raise CardNotFound(f"card {shown} is not registered", metadata={"card": shown})
    if card["person_number"] != person_number:
        raise CardNotOfPerson(f"card {shown} does not belong to person {person_number}", metadata={"card": shown})
    if card["status"] == "lost":
        raise CardLost(f"card {shown} is reported lost", metadata={"card": shown})
    if card["status"] == "blocked":
        raise CardBlocked(f"card {shown} is blocked", metadata={"card": shown})
    return card


def quote(repo: Repository, context: ServiceContext, command: QuoteCommand) -> QuoteView:
    """The split as it would be committed now, and a fresh unpredictable number bound to it."""
    now_us = context.clock.now_us()
    visit = price_visit(repo, context, command.caller, command.charge)
    quote_id = new_entry_id("Q", now_us)
    challenge = secrets.token_bytes(limits.UNPREDICTABLE_NUMBER_BYTES)
    expires_us = now_us + limits.QUOTE_VALIDITY_SECONDS * MICROSECONDS_PER_SECOND
    repo.insert_quote(
        {
            "quote_id": quote_id,
            "hospital_id": command.caller.hospital_id,
            "terminal_id": command.caller.terminal_id,
            "person_number": command.charge.person_number,
            "total_fen": visit.result.total_fen,
            "unpredictable_number": challenge.hex(),
            "issued_at_us": now_us,
            "expires_at_us": expires_us,
            "used_by_settlement_id": None,
        }
    )
    split_view = quoted_split(
        visit.result, visit.lines, model=visit.policy.region.model.value, policy_version=visit.policy.label
    )
    return QuoteView(quote_id, challenge, expires_us, split_view)


def settle(repo: Repository, context: ServiceContext, command: SettleCommand) -> SettlementView:
    caller = command.caller
    earlier = earlier_outcome(repo, caller, command.request_id, command.request_hash)
    if earlier is not None:
        return load_view(repo, str(earlier["settlement_id"]), as_written=True)
    now_us = context.clock.now_us()
    with refusals_recorded(repo, command, "settle", now_us):
        visit, card = _checked(repo, context, command, now_us)
    settlement_id = new_entry_id("S", now_us)
    row = settlement_row(
        visit,
        settlement_id=settlement_id,
        request_id=command.request_id,
        caller=caller,
        charge=command.charge,
        card_number=card,
        card_present=command.card_proof is not None,
        now_us=now_us,
    )
    lines = line_rows(settlement_id, visit.lines, visit.result)
    write_entry(repo, row, lines, visit.result.after)
    if command.card_proof is not None:
        repo.spend_quote(command.card_proof.quote_id, settlement_id)
        repo.set_card_counter(command.card_proof.card_number, command.card_proof.transaction_counter)
    repo.record_request(
        hospital_id=caller.hospital_id,
        request_id=command.request_id,
        request_hash=command.request_hash,
        operation="settle",
        settlement_id=settlement_id,
        refusal=None,
        now_us=now_us,
    )
    repo.audit(
        at_us=now_us,
        actor=caller.actor,
        action="settle",
        subject=settlement_id,
        outcome="ok",
        detail={
            "request_id": command.request_id,
            "person_number": command.charge.person_number,
            "card": mask(card) if card else "",
            "total_fen": visit.result.total_fen,
            "fund_paid_fen": visit.result.fund_paid_fen,
            "account_paid_fen": visit.result.account_paid_fen,
            "cash_fen": visit.result.cash_fen,
        },
    )
    # Built from the rows just written, exactly as a retry rebuilds it from the stored rows.
    return settlement_view(row, lines, hospital_name=str(visit.hospital["name"]), reversed_by_id=None)


def _checked(repo: Repository, context: ServiceContext, command: SettleCommand, now_us: int) -> tuple[Visit, str]:
    caller, charge, proof = command.caller, command.charge, command.card_proof
    card_number = proof.card_number if proof is not None else charge.card_number
    if proof is not None and charge.card_number and charge.card_number != proof.card_number:
        raise CardNotOfPerson(
            "card_proof.card_number differs from card_number",
            metadata={"field": "card_proof.card_number", "card": mask(proof.card_number)},
        )
    if proof is not None and not charge.card_number:
        charge = _with_card(charge, proof.card_number)
    visit = price_visit(repo, context, caller, charge)
    check_day_open(repo, caller.hospital_id, now_us)
    if proof is None:
        if visit.hospital["card_proof_required"] and visit.terminal["channel"] == "desk":
            raise CardProofRequired(
                f"hospital {caller.hospital_id} requires a card proof from desk terminals; quote, have the card "
                "sign, then settle with card_proof",
                metadata={"hospital_id": caller.hospital_id},
            )
    else:
        if visit.card is None:  # pragma: no cover - _with_card guarantees a card was checked
            raise CardNotFound("the card proof names no card", metadata={"field": "card_proof.card_number"})
        check_card_proof(
            proof=proof,
            quote=repo.quote(proof.quote_id),
            card=visit.card,
            caller=caller,
            person_number=charge.person_number,
            total_fen=visit.result.total_fen,
            key_source=context.key_sources.get(str(visit.card["key_reference"])),
            now_us=now_us,
        )
    return visit, card_number


def _with_card(charge: ChargeRequest, card_number: str) -> ChargeRequest:
    return replace(charge, card_number=card_number)


def settlement_row(
    visit: Visit,
    *,
    settlement_id: str,
    request_id: str,
    caller: Caller,
    charge: ChargeRequest,
    card_number: str,
    card_present: bool,
    now_us: int,
    replaces_id: str | None = None,
) -> dict[str, Any]:
    return {
        "settlement_id": settlement_id,
        "hospital_id": caller.hospital_id,
        "terminal_id": caller.terminal_id,
        "operator_id": caller.operator_id,
        "request_id": request_id,
        "person_number": charge.person_number,
        "card_number_last4": last4(card_number) if card_number else "",
        "card_present": card_present,
        "kind": "settlement",
        "reverses_id": None,
        "replaces_id": replaces_id,
        "region": str(visit.person["region"]),
        "insured_type": visit.insured_type.value,
        "visit_type": charge.visit_type.value,
        "clearing_type": CLEARING_TYPES[charge.visit_type],
        "visit_date": charge.visit_date,
        "use_account": charge.use_account,
        "model": visit.policy.region.model.value,
        "policy_version": visit.policy.label,
        "business_date": business_date(now_us),
        "created_at_us": now_us,
        "accumulator_year": charge.visit_date.year,
        **split_columns(visit.result),
    }
