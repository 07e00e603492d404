"""A card reported lost, blocked or given back; a desk terminal switched off or on.

Owns: changing a card's status or a terminal's ``active`` flag in one write transaction, with its audit
row (who, why, from what to what). Must never print or audit a full card number: the subject is masked.

The running server sees a change with its next commit batch: every batch reads cards and terminals
afresh inside its transaction, so a settle after the change is refused (``CARD_LOST``, ``CARD_BLOCKED``,
``PERMISSION_DENIED``); one already committed stays valid and is cancelled the usual way.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from settlement.errors import CardNotFound, InvalidField, NotFound
from settlement.identity import mask
from settlement.service.clock import Clock
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

CardStatus = Literal["active", "lost", "blocked"]
CARD_STATUSES: tuple[CardStatus, ...] = ("active", "lost", "blocked")
MAX_REASON_CHARS = 200


@dataclass(frozen=True, slots=True)
class StatusChange:
    subject: str  # a masked card number or a terminal id
    before: str
    after: str

    @property
    def changed(self) -> bool:
        return self.before != self.after


def set_card_status(
    engines: Engines, card_number: str, status: CardStatus, *, reason: str, actor: str, clock: Clock
) -> StatusChange:
    """Set a card's status; setting the status it already has changes nothing and audits nothing."""
    _check_reason(reason)
    if status not in CARD_STATUSES:
        raise InvalidField(f"status must be one of {', '.join(CARD_STATUSES)}, got {status!r}", field="status")
    shown = mask(card_number)
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        card = repo.card(card_number)
        if card is None:
            raise CardNotFound(f"card {shown} is not registered", metadata={"card": shown})
        change = StatusChange(shown, str(card["status"]), status)
        if change.changed:
            repo.set_card_status(card_number, status)
            _audit(repo, clock, actor=actor, action="card_status", subject=shown, change=change, why=reason)
        return change


def set_terminal_active(
    engines: Engines, terminal_id: str, active: bool, *, reason: str, actor: str, clock: Clock
) -> StatusChange:
    """Switch a desk or HIS terminal on or off; its certificate stays valid but its calls are refused."""
    _check_reason(reason)
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        terminal = repo.terminal(terminal_id)
        if terminal is None:
            raise NotFound(f"terminal {terminal_id} is not registered", metadata={"terminal_id": terminal_id})
        change = StatusChange(terminal_id, _word(bool(terminal["active"])), _word(active))
        if change.changed:
            repo.set_terminal_active(terminal_id, active)
            _audit(repo, clock, actor=actor, action="terminal_status", subject=terminal_id, change=change, why=reason)
        return change


def _word(active: bool) -> str:
    return "active" if active else "inactive"


def _check_reason(reason: str) -> None:
    if not reason.strip() or len(reason) > MAX_REASON_CHARS or not reason.isprintable():
        raise InvalidField(
            f"a reason is required for the audit log: 1 to {MAX_REASON_CHARS} printable characters", field="reason"
        )


def _audit(
    repo: Repository, clock: Clock, *, actor: str, action: str, subject: str, change: StatusChange, why: str
) -> None:
    repo.audit(
        at_us=clock.now_us(),
        actor=actor,
        action=action,
        subject=subject,
        outcome="ok",
        detail={"from": change.before, "to": change.after, "reason": why},
    )
    repo.flush()
