"""The server's group commit on its event loop: concurrent calls share a commit, deadlines hold, and
another process's write turn is awaited without stopping the loop."""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator

import pytest
from service_world import (
    EMPLOYEE,
    HANGZHOU_EMPLOYEE,
    MASTER_KEY,
    POLICIES,
    TODAY,
    charge,
    seed,
    settle_command,
)
from sqlalchemy import func, select

from cardio.card_crypto import SoftwareKeySource
from settlement.errors import DeadlineTooShort
from settlement.server.group_commit import GroupCommit
from settlement.service.app import SettlementApp
from settlement.service.clock import FixedClock, instant_us
from settlement.service.context import ServiceContext
from settlement.service.policy_book import PolicyBook
from settlement.service.writer import NO_KEYS, Write
from settlement.storage import tables as t
from settlement.storage.engine import Engines

WINDOW_SECONDS = 0.05  # wide enough that every call of a test lands in the same batch
CALLS = 8
HOLD_SECONDS = 0.3


@pytest.fixture
def commits_seen(engines: Engines) -> Iterator[tuple[SettlementApp, list[int]]]:
    """An app whose commits report their batch sizes, as ``settlement serve`` wires it to its metrics."""
    seed(engines)
    sizes: list[int] = []
    context = ServiceContext(
        PolicyBook.load(POLICIES), {"issuer-1": SoftwareKeySource(MASTER_KEY)}, FixedClock(instant_us(TODAY, hour=10))
    )
    app = SettlementApp(engines, context, on_commit=lambda jobs, _seconds: sizes.append(jobs))
    yield app, sizes
    app.close()


def settlement_count(engines: Engines) -> int:
    with engines.reader.connect() as connection:
        return int(connection.execute(select(func.count()).select_from(t.settlements)).scalar_one())


def test_the_writes_of_concurrent_calls_share_one_commit(commits_seen: tuple[SettlementApp, list[int]]) -> None:
    app, sizes = commits_seen
    group = GroupCommit(app.writer, app.engines, window_seconds=WINDOW_SECONDS)

    async def calls() -> list[str]:
        people = [EMPLOYEE, HANGZHOU_EMPLOYEE] * (CALLS // 2)
        writes = [app.settle_write(settle_command(request=charge(person))) for person in people]
        settled = await asyncio.gather(*(group.run(write, deadline=None) for write in writes))
        return [view.settlement_id for view in settled]

    try:
        ids = asyncio.run(calls())
    finally:
        group.close()
    assert len(set(ids)) == CALLS
    assert sizes == [CALLS]
    assert settlement_count(app.engines) == CALLS


def test_a_write_whose_deadline_passes_while_it_waits_is_refused_and_never_written(
    commits_seen: tuple[SettlementApp, list[int]],
) -> None:
    app, _sizes = commits_seen
    group = GroupCommit(app.writer, app.engines, window_seconds=HOLD_SECONDS)
    write = app.settle_write(settle_command())

    async def call() -> None:
        await group.run(write, deadline=time.monotonic() + HOLD_SECONDS / 2)

    try:
        with pytest.raises(DeadlineTooShort):
            asyncio.run(call())
    finally:
        group.close()
    assert settlement_count(app.engines) == 0


def test_a_write_whose_deadline_runs_out_behind_a_slow_write_of_its_batch_is_refused_and_never_written(
    commits_seen: tuple[SettlementApp, list[int]],
) -> None:
    app, sizes = commits_seen
    group = GroupCommit(app.writer, app.engines, window_seconds=WINDOW_SECONDS)
    slow = Write(lambda _repo: time.sleep(HOLD_SECONDS) or "slow write done", NO_KEYS)
    settle = app.settle_write(settle_command())

    async def calls() -> list[object]:
        deadline = time.monotonic() + WINDOW_SECONDS + HOLD_SECONDS / 2  # passes while the slow write runs
        return await asyncio.gather(
            group.run(slow, deadline=None), group.run(settle, deadline=deadline), return_exceptions=True
        )

    try:
        slow_result, settle_result = asyncio.run(calls())
    finally:
        group.close()
    assert sizes == [2], "both writes were in one batch"
    assert slow_result == "slow write done"
    assert isinstance(settle_result, DeadlineTooShort)
    assert settlement_count(app.engines) == 0


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_while_another_process_writes_the_loop_keeps_serving_and_the_write_follows_its_turn(
    commits_seen: tuple[SettlementApp, list[int]],
) -> None:
    app, _sizes = commits_seen
    group = GroupCommit(app.writer, app.engines, window_seconds=0)
    other_process_writing = threading.Event()
    release = threading.Event()

    def other_process() -> None:
        with app.engines.write_turn():  # the same flock another server process would hold
            other_process_writing.set()
            release.wait(timeout=5)

    holder = threading.Thread(target=other_process)
    holder.start()
    assert other_process_writing.wait(timeout=5)

    async def call_and_tick() -> tuple[str, int]:
        ticks = 0
        pending = asyncio.ensure_future(group.run(Write(lambda _repo: "written", NO_KEYS), deadline=None))
        started = time.monotonic()
        while time.monotonic() - started < HOLD_SECONDS:
            await asyncio.sleep(0.01)
            ticks += 1
        assert not pending.done(), "the write must wait for the turn"
        release.set()
        return await pending, ticks

    try:
        result, ticks = asyncio.run(call_and_tick())
    finally:
        release.set()
        holder.join()
        group.close()
    assert result == "written"
    assert ticks >= HOLD_SECONDS / 0.01 / 2, "the loop kept running while the write waited for its turn"



@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_job_beside_the_server_waits_for_the_write_turn_before_it_opens_its_transaction(engines: Engines) -> None:
    server_writing = threading.Event()
    release = threading.Event()
    opened_at: list[float] = []

    def server_batch() -> None:
        with engines.write_turn():
            server_writing.set()
            release.wait(timeout=5)

    def command_line_job() -> None:
        with engines.write_transaction():
            opened_at.append(time.monotonic())

    server = threading.Thread(target=server_batch)
    server.start()
    assert server_writing.wait(timeout=5)
    job = threading.Thread(target=command_line_job)
    job.start()
    time.sleep(HOLD_SECONDS)
    assert opened_at == [], "the job must not start while the server holds the turn"
    released_at = time.monotonic()
    release.set()
    job.join(timeout=5)
    server.join(timeout=5)
    assert len(opened_at) == 1
    assert opened_at[0] >= released_at
