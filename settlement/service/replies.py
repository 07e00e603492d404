"""Idempotency records and the replies rebuilt from them.

Owns: looking up a ``(hospital, request_id)`` before any work (same request → the first reply, even a
refusal; different request → REQUEST_ID_REUSED), recording a refusal so its retry repeats it, and
building settlement views from stored rows. Must never write anything but the idempotency record and
its audit row.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from settlement.errors import (
    NotFound,
    PermissionDenied,
    RefusedByState,
    RequestIdReused,
    SettlementError,
    SettlementNotFound,
)
from settlement.service.commands import Caller
from settlement.service.views import SettlementView, Status, settlement_view
from settlement.storage.repository import Repository

# Refusals that depend on stored state: recorded with the request so a retry repeats them.
STATE_REFUSALS = (NotFound, RefusedByState, PermissionDenied)


@dataclass(frozen=True, slots=True)
class CancelResult:
    cancellation: SettlementView
    cancelled: SettlementView


@dataclass(frozen=True, slots=True)
class RefundResult:
    cancellation: SettlementView
    cancelled: SettlementView
    replacement: SettlementView | None


def earlier_outcome(repo: Repository, caller: Caller, request_id: str, request_hash: str) -> Mapping[str, Any] | None:
    """The stored outcome of this request id, or None when it is new. Raises a stored refusal."""
    found = repo.request(caller.hospital_id, request_id)
    if found is None:
        return None
    if found["request_hash"] != request_hash:
        raise RequestIdReused(
            f"request_id {request_id} was already used in hospital {caller.hospital_id} for a different "
            f"{found['operation']} request; resend exactly the original request, or use a new request_id",
            metadata={"request_id": request_id, "operation": str(found["operation"])},
        )
    if found["refusal"] is not None:
        raise SettlementError.from_record(json.loads(found["refusal"]))
    return found


class IdempotentCommand(Protocol):
    """A mutating command: who asks, under which idempotency key, and the hash of what it asks."""

    @property
    def caller(self) -> Caller: ...

    @property
    def request_id(self) -> str: ...

    @property
    def request_hash(self) -> str: ...


@contextmanager
def refusals_recorded(repo: Repository, command: IdempotentCommand, operation: str, now_us: int) -> Iterator[None]:
    """Around a handler's checks: a state refusal raised inside is stored with the request, then re-raised.

    Invalid input is not caught: it is refused before any state is read and records nothing.
    """
    try:
        yield
    except STATE_REFUSALS as refusal:
        record_refusal(
            repo,
            caller=command.caller,
            request_id=command.request_id,
            request_hash=command.request_hash,
            operation=operation,
            refusal=refusal,
            now_us=now_us,
        )
        raise


def record_refusal(
    repo: Repository,
    *,
    caller: Caller,
    request_id: str,
    request_hash: str,
    operation: str,
    refusal: SettlementError,
    now_us: int,
) -> None:
    """Store a state refusal with the request, so every retry of it is refused the same way."""
    repo.record_request(
        hospital_id=caller.hospital_id,
        request_id=request_id,
        request_hash=request_hash,
        operation=operation,
        settlement_id=None,
        refusal=refusal.as_record(),
        now_us=now_us,
    )
    repo.audit(
        at_us=now_us,
        actor=caller.actor,
        action=operation,
        subject=f"request:{request_id}",
        outcome=refusal.reason,
        detail={"message": refusal.message},
    )


def load_view(repo: Repository, settlement_id: str, *, as_written: bool = False) -> SettlementView:
    """A stored entry as it stands now, or (``as_written``) as it was when first written."""
    row = repo.settlement(settlement_id)
    if row is None:
        raise SettlementNotFound(f"no settlement {settlement_id}", metadata={"settlement_id": settlement_id})
    hospital = repo.hospital(str(row["hospital_id"]))
    reversed_by = None if as_written else repo.cancellation_of(settlement_id)
    return settlement_view(
        row,
        repo.settlement_lines(settlement_id),
        hospital_name=str(hospital["name"]) if hospital else "",
        reversed_by_id=reversed_by,
    )


def cancel_reply(repo: Repository, cancellation_id: str) -> CancelResult:
    cancellation = load_view(repo, cancellation_id)
    return CancelResult(cancellation, _as_cancelled(repo, cancellation.reverses_id, cancellation_id))


def refund_reply(repo: Repository, settlement_id: str) -> RefundResult:
    """``settlement_id`` is what the refund recorded: its replacement, or its cancellation if no lines remain."""
    written = load_view(repo, settlement_id, as_written=True)
    if written.reverses_id:
        return RefundResult(written, _as_cancelled(repo, written.reverses_id, written.settlement_id), None)
    original_id = written.replaces_id
    cancellation_id = repo.cancellation_of(original_id) or ""
    return RefundResult(
        load_view(repo, cancellation_id),
        _as_cancelled(repo, original_id, cancellation_id),
        written,
    )


def _as_cancelled(repo: Repository, settlement_id: str, cancellation_id: str) -> SettlementView:
    view = load_view(repo, settlement_id, as_written=True)
    return view._replace(status=Status.CANCELLED, reversed_by_id=cancellation_id)
