"""Cancel (2208), reversal of an unknown outcome (2601) and partial refund.

Owns: finding what to reverse (by settlement id, or by the request id of a settle whose outcome the
terminal never learned), refusing a second reversal, writing the negated entry that restores balances
and accumulators from the stored split (never recomputed), and — for a refund — settling the remaining
lines again in the same transaction. Must never commit: the writer does.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from settlement.domain import AccountState, ChargeLine, InsuredType, Quantity, Ratio, UnitPrice, VisitType, split
from settlement.domain.charge import Category
from settlement.errors import (
    AlreadyCancelled,
    InvalidField,
    LineNotInSettlement,
    OtherHospital,
    SettlementNotFound,
)
from settlement.service.clock import business_date, new_entry_id
from settlement.service.commands import Caller, CancelCommand, RefundCommand
from settlement.service.context import ServiceContext
from settlement.service.entries import line_rows, negated_lines, negated_row, restored_state, split_columns, write_entry
from settlement.service.policy_book import AppliedPolicy
from settlement.service.replies import (
    CancelResult,
    RefundResult,
    cancel_reply,
    earlier_outcome,
    refund_reply,
    refusals_recorded,
)
from settlement.service.settle import check_caller, check_day_open
from settlement.storage.repository import Repository, WriteKeys


def write_keys(caller: Caller, request_id: str, settlement_id: str) -> WriteKeys:
    """What a reversal reads, so the writer fetches it for a whole batch at once. A cancel naming the
    original request id instead of the settlement id finds its entry during the batch, one query more."""
    return WriteKeys(
        request=(caller.hospital_id, request_id),
        caller=(caller.hospital_id, caller.terminal_id),
        entry=settlement_id or None,
    )


def cancel(repo: Repository, context: ServiceContext, command: CancelCommand) -> CancelResult:
    caller = command.caller
    earlier = earlier_outcome(repo, caller, command.request_id, command.request_hash)
    if earlier is not None:
        return cancel_reply(repo, str(earlier["settlement_id"]))
    now_us = context.clock.now_us()
    with refusals_recorded(repo, command, "cancel", now_us):
        check_caller(repo, caller)
        original = _reversible(repo, caller, _target_id(repo, command))
        check_day_open(repo, caller.hospital_id, now_us)
    lines = repo.settlement_lines(str(original["settlement_id"]))
    cancellation_id, _ = _write_cancellation(
        repo, original, lines=lines, caller=caller, request_id=command.request_id, now_us=now_us
    )
    _record(
        repo,
        caller=caller,
        request_id=command.request_id,
        request_hash=command.request_hash,
        operation="cancel",
        settlement_id=cancellation_id,
        now_us=now_us,
    )
    return cancel_reply(repo, cancellation_id)


def refund(repo: Repository, context: ServiceContext, command: RefundCommand) -> RefundResult:
    caller = command.caller
    earlier = earlier_outcome(repo, caller, command.request_id, command.request_hash)
    if earlier is not None:
        return refund_reply(repo, str(earlier["settlement_id"]))
    _check_line_ids(command.hospital_line_ids)
    now_us = context.clock.now_us()
    with refusals_recorded(repo, command, "refund", now_us):
        check_caller(repo, caller)
        original = _reversible(repo, caller, command.settlement_id)
        check_day_open(repo, caller.hospital_id, now_us)
        lines = repo.settlement_lines(command.settlement_id)
        known = {str(line["line_id"]) for line in lines}
        for line_id in command.hospital_line_ids:
            if line_id not in known:
                raise LineNotInSettlement(
                    f"line {line_id} is not a line of settlement {command.settlement_id}",
                    metadata={"hospital_line_id": line_id, "settlement_id": command.settlement_id},
                )
        # Decided before anything is written: a handler never refuses after its first write.
        policy = _original_policy(repo, context, original)
    cancellation_id, restored = _write_cancellation(
        repo, original, lines=lines, caller=caller, request_id=command.request_id, now_us=now_us
    )
    refunded = set(command.hospital_line_ids)
    remaining = [line for line in lines if str(line["line_id"]) not in refunded]
    recorded_id = cancellation_id
    if remaining:
        recorded_id = _settle_remaining(
            repo,
            original=original,
            policy=policy,
            remaining=remaining,
            state=restored,
            caller=caller,
            request_id=command.request_id,
            now_us=now_us,
        )
    _record(
        repo,
        caller=caller,
        request_id=command.request_id,
        request_hash=command.request_hash,
        operation="refund",
        settlement_id=recorded_id,
        now_us=now_us,
    )
    return refund_reply(repo, recorded_id)


def _original_policy(repo: Repository, context: ServiceContext, original: Mapping[str, Any]) -> AppliedPolicy:
    hospital = repo.hospital(str(original["hospital_id"])) or {"level": 0}
    return context.policies.applied(
        region=str(original["region"]),
        insured_type=InsuredType(str(original["insured_type"])),
        hospital_level=int(hospital["level"]),
        visit_type=VisitType(str(original["visit_type"])),
        day=original["visit_date"],
    )


def _check_line_ids(line_ids: tuple[str, ...]) -> None:
    if not line_ids:
        raise InvalidField("name at least one line to refund", field="hospital_line_ids")
    seen: set[str] = set()
    for index, line_id in enumerate(line_ids):
        if line_id in seen:
            raise InvalidField(f"line {line_id} is named twice", field=f"hospital_line_ids[{index}]")
        seen.add(line_id)


def _target_id(repo: Repository, command: CancelCommand) -> str:
    if command.settlement_id:
        return command.settlement_id
    earlier = repo.request(command.caller.hospital_id, command.original_request_id)
    if earlier is None or earlier["settlement_id"] is None or earlier["operation"] != "settle":
        raise SettlementNotFound(
            f"nothing was settled under request_id {command.original_request_id}; there is nothing to reverse",
            metadata={"original_request_id": command.original_request_id},
        )
    return str(earlier["settlement_id"])


def _reversible(repo: Repository, caller: Caller, settlement_id: str) -> Mapping[str, Any]:
    original = repo.settlement(settlement_id)
    if original is None:
        raise SettlementNotFound(f"no settlement {settlement_id}", metadata={"settlement_id": settlement_id})
    if original["hospital_id"] != caller.hospital_id:
        raise OtherHospital(
            f"settlement {settlement_id} belongs to another hospital", metadata={"settlement_id": settlement_id}
        )
    if original["kind"] == "cancellation":
        raise AlreadyCancelled(
            f"{settlement_id} is itself a cancellation entry", metadata={"settlement_id": settlement_id}
        )
    reversed_by = repo.cancellation_of(settlement_id)
    if reversed_by is not None:
        raise AlreadyCancelled(
            f"settlement {settlement_id} was already cancelled by {reversed_by}",
            metadata={"settlement_id": settlement_id, "cancelled_by": reversed_by},
        )
    return original


def _write_cancellation(
    repo: Repository,
    original: Mapping[str, Any],
    *,
    lines: Sequence[Mapping[str, Any]],
    caller: Caller,
    request_id: str,
    now_us: int,
) -> tuple[str, AccountState]:
    person, year = str(original["person_number"]), int(original["accumulator_year"])
    before = repo.account_state(person, year) or AccountState()
    after = restored_state(original, before)
    cancellation_id = new_entry_id("C", now_us)
    row = negated_row(
        original,
        settlement_id=cancellation_id,
        request_id=request_id,
        after=after,
        changes={
            "terminal_id": caller.terminal_id,
            "operator_id": caller.operator_id,
            "created_at_us": now_us,
            "business_date": business_date(now_us),
        },
    )
    write_entry(repo, row, negated_lines(lines, cancellation_id), after)
    repo.audit(
        at_us=now_us,
        actor=caller.actor,
        action="cancel",
        subject=cancellation_id,
        outcome="ok",
        detail={"request_id": request_id, "reverses": original["settlement_id"], "total_fen": original["total_fen"]},
    )
    return cancellation_id, after


def _settle_remaining(
    repo: Repository,
    *,
    original: Mapping[str, Any],
    policy: AppliedPolicy,
    remaining: list[dict[str, Any]],
    state: AccountState,
    caller: Caller,
    request_id: str,
    now_us: int,
) -> str:
    """The remaining lines under the original's policy, classified as they were then."""
    lines = tuple(_charge_line(row) for row in remaining)
    result = split(lines, policy.version.rule, state, use_account=bool(original["use_account"]))
    settlement_id = new_entry_id("S", now_us)
    row = dict(original)
    row.update(
        settlement_id=settlement_id,
        request_id=request_id,
        terminal_id=caller.terminal_id,
        operator_id=caller.operator_id,
        card_present=False,
        replaces_id=original["settlement_id"],
        created_at_us=now_us,
        business_date=business_date(now_us),
        policy_version=policy.label,
        **split_columns(result),
    )
    write_entry(repo, row, line_rows(settlement_id, lines, result), result.after)
    repo.audit(
        at_us=now_us,
        actor=caller.actor,
        action="refund",
        subject=settlement_id,
        outcome="ok",
        detail={"request_id": request_id, "replaces": original["settlement_id"], "total_fen": result.total_fen},
    )
    return settlement_id


def _charge_line(row: Mapping[str, Any]) -> ChargeLine:
    field = f"lines[{row['line_number']}]"
    return ChargeLine(
        code=str(row["item_code"]),
        category=Category(str(row["item_class"])),
        selfpay_ratio=Ratio.parse(str(row["self_pay_ratio"]), field=f"{field}.self_pay_ratio"),
        amount_fen=int(row["amount_fen"]),
        unit_price=UnitPrice.parse(row["unit_price"], field=f"{field}.unit_price_yuan") if row["unit_price"] else None,
        quantity=Quantity.parse(row["quantity"], field=f"{field}.quantity") if row["quantity"] else None,
        price_ceiling=UnitPrice.parse(row["price_ceiling"], field=field) if row["price_ceiling"] else None,
        line_id=str(row["line_id"]),
        field_path=field,
    )


def _record(
    repo: Repository,
    *,
    caller: Caller,
    request_id: str,
    request_hash: str,
    operation: str,
    settlement_id: str,
    now_us: int,
) -> None:
    repo.record_request(
        hospital_id=caller.hospital_id,
        request_id=request_id,
        request_hash=request_hash,
        operation=operation,
        settlement_id=settlement_id,
        refusal=None,
        now_us=now_us,
    )
