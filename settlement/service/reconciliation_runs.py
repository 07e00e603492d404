"""Reconciliation runs as audit entries, and the month built from them.

Owns: recording a day's reconciliation (who ran it, with which files, what it found: the core's
``DaySummary``) as one ``reconcile_day`` audit row, and reading the month's latest summaries back for
``summarize_month``. The audit log is the only store for them: it is append-only and hash-chained, and
a reconciliation is exactly the kind of finance action it exists to record. Must never store settlement
records or discrepancy details (the reports hold those), and never count an unreconciled day as balanced.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, and_, select

from settlement.errors import InvariantViolated
from settlement.reconciliation import (
    DaySummary,
    DiscrepancyKind,
    MonthSummary,
    Totals,
    TotalsKey,
    summarize_month,
)
from settlement.service.clock import Clock, SystemClock
from settlement.service.daily_close import day_subject
from settlement.storage import tables as t
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository

RECONCILE_ACTION = "reconcile_day"
DISCREPANCIES_OUTCOME = "DISCREPANCIES"
SUMMARY_FORMAT = "day-summary/1"
_HASH_CHUNK_BYTES = 1024 * 1024


def record_reconciliation(
    engines: Engines,
    summary: DaySummary,
    *,
    actor: str,
    files: Mapping[str, Path],
    clock: Clock | None = None,
) -> None:
    """Append the run's audit row (outcome ``ok`` or ``DISCREPANCIES``): its summary and its files' hashes.

    ``summary`` is the core's ``summarize_day`` of the run; ``files`` maps a role (``his``, ``insurer``)
    to the file read.
    """
    detail = {
        "summary": summary_to_json(summary),
        "files": {role: {"name": path.name, "sha256": _sha256(path)} for role, path in sorted(files.items())},
    }
    now_us = (clock or SystemClock()).now_us()
    with engines.write_transaction() as connection:
        repo = Repository(connection)
        repo.lock_for_writing([])
        repo.audit(
            at_us=now_us,
            actor=actor,
            action=RECONCILE_ACTION,
            subject=day_subject(summary.hospital_id, summary.business_date),
            outcome="ok" if summary.balanced else DISCREPANCIES_OUTCOME,
            detail=detail,
        )
        repo.flush()


def month_summary(
    connection: Connection, hospital_id: str, year: int, month: int, *, including: DaySummary | None = None
) -> MonthSummary:
    """The month from each day's latest recorded reconciliation (``including`` replaces its day's)."""
    by_date: dict[dt.date, DaySummary] = {}
    prefix = f"{hospital_id}/{year:04d}-{month:02d}-"
    rows = connection.execute(
        select(t.audit_log.c.detail)
        .where(
            and_(t.audit_log.c.action == RECONCILE_ACTION, t.audit_log.c.subject.startswith(prefix, autoescape=True))
        )
        .order_by(t.audit_log.c.sequence)
    )
    for row in rows:
        summary = summary_from_json(json.loads(str(row.detail))["summary"])
        by_date[summary.business_date] = summary  # later runs replace earlier ones
    if including is not None:
        by_date[including.business_date] = including
    return summarize_month(hospital_id, year, month, by_date.values())


def booked_dates(connection: Connection, hospital_id: str, year: int, month: int) -> list[dt.date]:
    """The month's days on which the hospital booked anything (each should have been reconciled)."""
    first = dt.date(year, month, 1)
    after = dt.date(year + month // 12, month % 12 + 1, 1)
    s = t.settlements
    rows = connection.execute(
        select(s.c.business_date)
        .where(and_(s.c.hospital_id == hospital_id, s.c.business_date >= first, s.c.business_date < after))
        .group_by(s.c.business_date)
        .order_by(s.c.business_date)
    )
    return [row.business_date for row in rows]


# --- the stored form ------------------------------------------------------------------------------


def summary_to_json(summary: DaySummary) -> dict[str, Any]:
    return {
        "format": SUMMARY_FORMAT,
        "hospital_id": summary.hospital_id,
        "business_date": summary.business_date.isoformat(),
        "balanced": summary.balanced,
        "discrepancies_by_kind": {
            kind.value: count
            for kind, count in sorted(summary.discrepancies_by_kind.items(), key=lambda item: item[0].value)
        },
        "totals": [
            {
                "insured_type": key.insured_type,
                "clearing_type": key.clearing_type,
                "clearing_agency": key.clearing_agency,
                "count": value.count,
                "total_fen": value.total_fen,
                "fund_paid_fen": value.fund_paid_fen,
                "account_paid_fen": value.account_paid_fen,
                "cash_fen": value.cash_fen,
            }
            for key, value in summary.totals.items()
        ],
    }


def summary_from_json(document: Mapping[str, Any]) -> DaySummary:
    """A stored summary; anything malformed is a corrupted audit row (``InvariantViolated``)."""
    try:
        if document["format"] != SUMMARY_FORMAT:
            raise InvariantViolated(f"reconcile_day audit detail is not in the {SUMMARY_FORMAT} format")
        totals = {
            TotalsKey(str(item["insured_type"]), str(item["clearing_type"]), str(item["clearing_agency"])): Totals(
                int(item["count"]),
                int(item["total_fen"]),
                int(item["fund_paid_fen"]),
                int(item["account_paid_fen"]),
                int(item["cash_fen"]),
            )
            for item in document["totals"]
        }
        return DaySummary(
            hospital_id=str(document["hospital_id"]),
            business_date=dt.date.fromisoformat(str(document["business_date"])),
            totals=totals,
            balanced=bool(document["balanced"]),
            discrepancies_by_kind={
                DiscrepancyKind(kind): int(count) for kind, count in dict(document["discrepancies_by_kind"]).items()
            },
        )
    except (KeyError, TypeError, ValueError) as error:
        raise InvariantViolated(f"reconcile_day audit detail is malformed: {error}") from error


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(_HASH_CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()
