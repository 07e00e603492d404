"""Group commit: one writer thread, many settles per transaction, one fsync for the lot.

Owns: the queue of write jobs, batching them into one transaction (up to ``MAX_SETTLES_PER_COMMIT``),
refusing a job whose deadline leaves too little for a commit when its batch, or its own turn in it,
starts, and resolving each caller only after its batch committed. If a batch fails in the database,
every job in it is re-run alone, so one bad job never fails its neighbours. Must never resolve a caller
before the commit that holds its effect.

A job is a function of one ``Repository``. It may raise a ``SettlementError`` only before its first
write (a refusal it records is its write); the rest of the batch still commits.

The writer thread serves the CLI, the HIS adapters and tests. The gRPC server batches on its event loop
instead (``settlement.server.group_commit``) and hands each batch to ``commit_batch``: same transaction,
same refusals, no thread between a call and its commit.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, Generic, TypeVar

from sqlalchemy.exc import DBAPIError, OperationalError

from settlement import limits
from settlement.errors import DeadlineTooShort, InvariantViolated, SettlementError, Unavailable
from settlement.storage.engine import Engines
from settlement.storage.repository import Repository, WriteKeys

log = logging.getLogger(__name__)
Result = TypeVar("Result")
CommitObserver = Callable[[int, float], None]  # (jobs in the batch, seconds the commit took)


@dataclass(frozen=True, slots=True)
class Write(Generic[Result]):
    """What a command writes: its work on one ``Repository`` and the keys the batch read fetches for it."""

    work: Callable[[Repository], Result]
    keys: WriteKeys


@dataclass(eq=False)
class WriteJob:
    work: Callable[[Repository], Any]
    keys: WriteKeys  # what it will read: fetched for the whole batch at once
    deadline: float | None  # time.monotonic() value
    future: Future[Any] = field(default_factory=Future)


_STOP = object()
NO_KEYS = WriteKeys()
_MIN_COMMIT_BUDGET_SECONDS = limits.MIN_COMMIT_BUDGET_MS / 1000


_OUTCOME_GRACE_SECONDS = 1.0  # past the deadline a commit may still be running: its outcome is worth this long


def budget_seconds(deadline: float) -> float:
    """How long a caller may wait for its job to join a batch: until ``MIN_COMMIT_BUDGET_MS`` before its
    deadline. A job not taken by then is withdrawn and refused (``too_late``)."""
    return max(0.0, deadline - time.monotonic() - _MIN_COMMIT_BUDGET_SECONDS)


def outcome_seconds(deadline: float) -> float:
    """How long a caller whose job is being committed still waits for the outcome."""
    return max(0.0, deadline - time.monotonic()) + _OUTCOME_GRACE_SECONDS


def outcome_unknown() -> Unavailable:
    return Unavailable(
        "the commit did not finish within the deadline; its outcome is unknown: retry with the same request_id"
    )


def answer_unanswered(batch: list[WriteJob]) -> None:
    """After a failure outside any transaction: nothing was committed, every job not yet answered is told so."""
    for job in batch:
        if not job.future.done():
            job.future.set_exception(Unavailable("the write failed; retry with the same request_id"))


def _outcome(job: WriteJob, repo: Repository) -> tuple[WriteJob, bool, Any]:
    """Run one job of a batch: (job, True, its result) or (job, False, its refusal)."""
    if _out_of_time(job.deadline, time.monotonic()):  # the jobs before it in the batch ran long
        return job, False, too_late()
    try:
        return job, True, job.work(repo)
    except SettlementError as refusal:
        return job, False, refusal


def _out_of_time(deadline: float | None, now: float) -> bool:
    """Too little of the deadline left for a commit (``MIN_COMMIT_BUDGET_MS``)."""
    return deadline is not None and deadline - now < _MIN_COMMIT_BUDGET_SECONDS


def too_late() -> DeadlineTooShort:
    return DeadlineTooShort(
        f"less than {limits.MIN_COMMIT_BUDGET_MS} ms of the deadline was left, too little for a commit; "
        "nothing was written: retry with the same request_id and a longer deadline",
        metadata={"min_budget_ms": str(limits.MIN_COMMIT_BUDGET_MS)},
    )


class Writer:
    def __init__(
        self,
        engines: Engines,
        *,
        max_jobs_per_commit: int = limits.MAX_SETTLES_PER_COMMIT,
        max_queue_depth: int = limits.MAX_COMMIT_QUEUE_DEPTH,
        on_commit: CommitObserver | None = None,
    ) -> None:
        self._engines = engines
        self._max_jobs = max_jobs_per_commit
        self._queue: queue.Queue[WriteJob | object] = queue.Queue(maxsize=max_queue_depth)
        self._on_commit = on_commit
        self._thread = threading.Thread(target=self._loop, name="settlement-writer", daemon=True)
        self._stopping = False

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        """Finish every queued job, then stop. Jobs submitted afterwards are refused as UNAVAILABLE."""
        if self._stopping:
            return
        self._stopping = True
        self._queue.put(_STOP)
        self._thread.join()

    def admit(
        self, work: Callable[[Repository], Any], *, keys: WriteKeys = NO_KEYS, deadline: float | None = None
    ) -> WriteJob:
        """A job for ``commit_batch`` or the queue; refused while stopping or with too little deadline left."""
        if self._stopping:
            raise Unavailable("the engine is shutting down; retry with the same request_id")
        if _out_of_time(deadline, time.monotonic()):
            raise too_late()
        return WriteJob(work, keys, deadline)

    def submit(
        self,
        work: Callable[[Repository], Result],
        *,
        keys: WriteKeys = NO_KEYS,
        deadline: float | None = None,
    ) -> Future[Result]:
        job = self.admit(work, keys=keys, deadline=deadline)
        try:
            self._queue.put_nowait(job)
        except queue.Full:
            raise Unavailable(
                f"more than {self._queue.maxsize} writes are waiting; back off and retry with the same request_id",
                metadata={"limit": str(self._queue.maxsize)},
            ) from None
        return job.future

    def write(self, write: Write[Result], *, deadline: float | None = None) -> Result:
        """``run`` for a ``Write``."""
        return self.run(write.work, keys=write.keys, deadline=deadline)

    def run(
        self,
        work: Callable[[Repository], Result],
        *,
        keys: WriteKeys = NO_KEYS,
        deadline: float | None = None,
    ) -> Result:
        """Submit and wait for the commit. The caller's deadline bounds the wait."""
        future = self.submit(work, keys=keys, deadline=deadline)
        if deadline is None:
            return future.result()
        try:
            # Stop waiting while the caller still listens: a job still queued is withdrawn and refused.
            return future.result(timeout=budget_seconds(deadline))
        except TimeoutError:
            if future.cancel():
                raise too_late() from None
        try:
            return future.result(timeout=outcome_seconds(deadline))
        except TimeoutError:
            raise outcome_unknown() from None

    # --- the writer thread ---------------------------------------------------------------------

    def _loop(self) -> None:
        while True:
            first = self._queue.get()
            if first is _STOP:
                return
            batch: list[WriteJob] = [first]  # type: ignore[list-item]
            stop_after = False
            while len(batch) < self._max_jobs:
                try:
                    more = self._queue.get_nowait()
                except queue.Empty:
                    break
                if more is _STOP:
                    stop_after = True
                    break
                batch.append(more)  # type: ignore[arg-type]
            self.commit_batch(batch)
            if stop_after:
                return

    def commit_batch(self, batch: list[WriteJob], *, turn_held: bool = False) -> None:
        """Commit the jobs still wanted in one transaction and resolve every job's future; never raises.

        ``turn_held``: the caller already holds this process's write turn (``Engines.write_turn_lock``).
        """
        try:
            self._commit(self._still_wanted(batch), turn_held=turn_held)
        except Exception:  # never let one batch stop the writer: every later caller would wait forever
            log.exception("the writer failed outside a transaction")
            answer_unanswered(batch)

    @staticmethod
    def _still_wanted(batch: list[WriteJob]) -> list[WriteJob]:
        """No commit starts after its deadline: such jobs are refused, nothing of them written."""
        now = time.monotonic()
        wanted = []
        for job in batch:
            if job.future.cancelled():  # its caller gave up waiting while it was queued (Writer.run)
                continue
            if _out_of_time(job.deadline, now):
                job.future.set_exception(too_late())
            elif job.future.set_running_or_notify_cancel():
                wanted.append(job)
        return wanted

    def _commit(self, batch: list[WriteJob], *, turn_held: bool = False) -> None:
        if not batch:
            return
        started = time.perf_counter()
        try:
            with (
                contextlib.nullcontext() if turn_held else self._engines.write_turn(),
                self._engines.writer.begin() as connection,
            ):
                repo = Repository(connection)
                repo.prepare([job.keys for job in batch])
                outcomes = [_outcome(job, repo) for job in batch]
                repo.flush()
        except (DBAPIError, InvariantViolated) as error:
            if len(batch) > 1:
                log.warning(
                    "a batch of %d failed (%s); committing its jobs one by one", len(batch), type(error).__name__
                )
                for job in batch:
                    self._commit([job], turn_held=turn_held)
                return
            self._fail(batch[0], error)
            return
        except Exception as error:  # a bug in a handler: fail the batch's callers, keep the writer alive
            log.exception("a write batch failed unexpectedly")
            for job in batch:
                self._fail(job, error)
            return
        if self._on_commit is not None:
            self._on_commit(len(batch), time.perf_counter() - started)
        for job, ok, value in outcomes:
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    @staticmethod
    def _fail(job: WriteJob, error: Exception) -> None:
        if isinstance(error, DBAPIError) and error.connection_invalidated:
            job.future.set_exception(Unavailable("the database connection was lost; retry with the same request_id"))
        elif isinstance(error, DBAPIError) and isinstance(error, OperationalError):
            job.future.set_exception(Unavailable("the database is unavailable; retry with the same request_id"))
        else:
            job.future.set_exception(error)
