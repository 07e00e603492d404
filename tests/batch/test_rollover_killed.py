"""A rollover process killed with SIGKILL mid-way: the next run finishes it, moving no balance twice."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap

import pytest
from batch_helpers import ACTOR, HANGZHOU, REGIONS, REPOSITORY_ROOT, balances, clock_on, enrol, enrolment_csv, person
from sqlalchemy import select

from settlement.service.annual import fund_accounts, roll_over
from settlement.service.ledger_check import check_ledger
from settlement.storage import tables as t
from settlement.storage.engine import Engines

PERSONS = 120
CHUNK = 3
KILLS = 3

# The child rolls 2025 over in small chunks and reports each committed chunk; the parent kills it.
CHILD = textwrap.dedent(
    """
    import datetime as dt, sys, time
    from settlement.service.annual import roll_over
    from settlement.service.clock import SystemClock
    from settlement.storage.engine import make_engines

    def report(number):
        print(number, flush=True)
        time.sleep(0.005)

    roll_over(make_engines(sys.argv[1]), year=2025, actor="test/child", clock=SystemClock(),
              business_date=dt.date(2025, 12, 31), chunk_persons=int(sys.argv[2]), after_chunk=report)
    print("done", flush=True)
    """
)


@pytest.mark.slow
def test_a_rollover_killed_at_random_moments_finishes_on_the_next_run_with_every_balance_moved_once(
    engines: Engines,
) -> None:
    enrol(engines, enrolment_csv([person(n, region=HANGZHOU) for n in range(1, PERSONS + 1)]))
    fund_accounts(
        engines,
        region=HANGZHOU,
        year=2025,
        insured_type="employee",
        amount_fen=10_000,
        regions=REGIONS,
        actor=ACTOR,
        clock=clock_on(),
        business_date=dt.date(2025, 1, 2),
    )
    funded = balances(engines)
    chunks = PERSONS // CHUNK
    randomness = random.Random(20251231)
    kill_points = sorted(randomness.sample(range(1, chunks), KILLS))
    for kill_after in kill_points:  # each run counts chunks from 1, re-reading those already done
        with subprocess.Popen(
            [sys.executable, "-c", CHILD, engines.url, str(CHUNK)],
            stdout=subprocess.PIPE,
            text=True,
            cwd=REPOSITORY_ROOT,
            env={**os.environ, "PYTHONPATH": str(REPOSITORY_ROOT)},
        ) as child:
            assert child.stdout is not None
            for line in child.stdout:
                if line.strip() == "done" or int(line) >= kill_after:
                    break
            child.send_signal(signal.SIGKILL)
            child.wait(timeout=30)

    finished = roll_over(
        engines, year=2025, actor=ACTOR, clock=clock_on(), business_date=dt.date(2025, 12, 31), chunk_persons=CHUNK
    )

    assert balances(engines) == {p: (0, current + historical) for p, (current, historical) in funded.items()}
    assert finished.amount_fen == sum(current for current, _ in funded.values())
    assert 0 < finished.resumed_persons < finished.persons
    with engines.reader.connect() as connection:
        report = check_ledger(connection)
        entries = list(
            connection.execute(select(t.postings.c.settlement_id).where(t.postings.c.source.like("person:%")))
        )
    assert report.ok, report.problems
    assert len(entries) == len({entry for (entry,) in entries}) == finished.persons
