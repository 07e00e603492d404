"""kill -9 under load, again and again: no acknowledged settlement lost, none doubled, the ledger balanced."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from service_world import seed
from sqlalchemy import func, select

from settlement.service.ledger_check import check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines

CHILD = Path(__file__).with_name("crash_child.py")
KILLS = int(os.environ.get("SETTLEMENT_CRASH_KILLS", "20"))
STARTUP_TIMEOUT_SECONDS = 30


def run_until_killed(database_url: str, rng: random.Random) -> list[str]:
    """Start the child, let it settle for a moment, SIGKILL it; the request ids it acknowledged."""
    child = subprocess.Popen(
        [sys.executable, str(CHILD), database_url],
        stdout=subprocess.PIPE,
        text=True,
        cwd=CHILD.parent,
    )
    assert child.stdout is not None
    deadline = time.monotonic() + STARTUP_TIMEOUT_SECONDS
    while child.stdout.readline().strip() != "ready":
        assert time.monotonic() < deadline, "the child never became ready"
    time.sleep(rng.uniform(0.2, 0.8))
    child.send_signal(signal.SIGKILL)
    output, _ = child.communicate()
    lines = output.split("\n")
    return [line for line in lines[:-1] if line]  # the last piece may be a line cut mid-write


@pytest.mark.slow
def test_killing_the_engine_mid_commit_loses_and_doubles_nothing(engines: Engines, database_url: str) -> None:
    seed(engines)
    rng = random.Random(20261202)
    acknowledged: list[str] = []
    for _ in range(KILLS):
        acknowledged += run_until_killed(database_url, rng)
        with engines.reader.connect() as connection:  # what `settlement ledger check` runs, after each restart
            report = check_ledger(connection)
        assert report.ok, report.problems
    assert len(acknowledged) > KILLS, "the load never got going"
    with engines.reader.connect() as connection:
        rows = connection.execute(select(t.settlements.c.request_id)).scalars().all()
        recorded = connection.execute(
            select(func.count()).select_from(t.requests).where(t.requests.c.settlement_id.is_not(None))
        ).scalar_one()
        ledger = connection.execute(select(func.coalesce(func.sum(t.ledger_accounts.c.balance_fen), 0))).scalar_one()
        persons = connection.execute(
            select(func.coalesce(func.sum(t.accounts.c.current_year_fen + t.accounts.c.historical_fen), 0))
        ).scalar_one()
        audited = connection.execute(select(func.count()).select_from(t.audit_log)).scalar_one()
    written = set(rows)
    assert len(rows) == len(written), "a request was settled twice"
    assert set(acknowledged) <= written, "an acknowledged settlement was lost"
    assert recorded == len(rows), "a settlement without its idempotency record, or the reverse"
    assert audited == len(rows), "a settlement without its audit row"
    assert int(ledger) + int(persons) == 0, "the ledger does not balance"
