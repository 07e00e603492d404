"""Expired housekeeping rows out: idempotency records past their retention window, spent or stale quotes.

Owns: what may be deleted and when. Idempotency records (``requests``) are kept at least
``REQUEST_RETENTION_DAYS`` (the API's promise: a retry within that window gets the first answer);
quotes one day past their expiry (a quote can no longer be spent then, and its settlement keeps its own
copy of everything). Must never delete a settlement, a line, a posting or an audit row: those are the
ledger, kept for good. Each table's deletion is one transaction with its audit row.
"""

from __future__ import annotations

from dataclasses import dataclass

from settlement import limits
from settlement.errors import InvalidField
from settlement.service.clock import MICROSECONDS_PER_SECOND, Clock
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

SECONDS_PER_DAY = 86_400
QUOTE_KEPT_AFTER_EXPIRY_SECONDS = SECONDS_PER_DAY  # a late retry of a card-present settle still finds it


@dataclass(frozen=True, slots=True)
class Purged:
    requests: int
    quotes: int


def purge_expired(engines: Engines, *, retention_days: int, actor: str, clock: Clock) -> Purged:
    """Delete idempotency records older than ``retention_days`` and quotes a day past expiry."""
    if retention_days < limits.REQUEST_RETENTION_DAYS:
        raise InvalidField(
            f"request records are kept at least {limits.REQUEST_RETENTION_DAYS} days (the API's idempotency "
            f"window), got {retention_days}",
            field="retention_days",
        )
    now_us = clock.now_us()
    requests_before_us = now_us - retention_days * SECONDS_PER_DAY * MICROSECONDS_PER_SECOND
    quotes_before_us = now_us - QUOTE_KEPT_AFTER_EXPIRY_SECONDS * MICROSECONDS_PER_SECOND
    requests = _delete(engines, "requests", requests_before_us, actor=actor, now_us=now_us)
    quotes = _delete(engines, "quotes", quotes_before_us, actor=actor, now_us=now_us)
    return Purged(requests, quotes)


def _delete(engines: Engines, table: str, before_us: int, *, actor: str, now_us: int) -> int:
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing(())
        deleted = repo.delete_older_than(table, before_us)
        if deleted:
            repo.audit(
                at_us=now_us, actor=actor, action="purge", subject=table, outcome="ok",
                detail={"rows": deleted, "before_us": before_us},
            )  # fmt: skip
            repo.flush()
        return deleted
