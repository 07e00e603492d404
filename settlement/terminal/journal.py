"""The desk's settle journal: what this terminal is about to settle, written to disk before it is sent.

Owns one append-only file of JSON lines, one line per state change of a settle attempt, each line
fsync'd before the call that depends on it is made:

    prepared         -> sent | reversing
    sent             -> sent (a resend) | settled | refused | reversing
    reversing        -> reversing (a resend) | reversed | reverse_refused
    reverse_refused  -> sent | reversing
    settled, refused, reversed: finished

An entry that is not finished is an attempt whose outcome the terminal does not know. It is resumed
with the SAME ``request_id`` (the engine returns the first outcome) or reversed by it; a new id for it
is never made, and ``prepare`` refuses an id the journal already holds.

A line cut short by a crash is the write that never completed: it is cut off on open (the call that
needed it was never made). Any other unreadable line stops the terminal: guessing could double-charge.
A separate ``.lock`` file keeps two terminal processes off one journal. Imports only the standard
library (and the terminal's limits); must never hold a PIN. It does hold the serialised settle request,
whose card proof names the full card number (needed to resend it byte for byte): the file is 0600.
"""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import enum
import fcntl
import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from settlement.terminal.limits import JOURNAL_ROTATE_BYTES, MAX_JOURNAL_LINE_BYTES

FORMAT_VERSION = 1
LOCK_SUFFIX = ".lock"


class State(enum.Enum):
    PREPARED = "prepared"  # the request is on disk; it may not have left the terminal
    SENT = "sent"  # a Settle with it was (about to be) sent: the engine may have settled it
    SETTLED = "settled"
    REFUSED = "refused"
    REVERSING = "reversing"  # a 2601 reversal with ``cancel_request_id`` was (about to be) sent
    REVERSED = "reversed"
    REVERSE_REFUSED = "reverse_refused"  # the reversal was refused; the settle's outcome is still unknown


FINISHED = frozenset({State.SETTLED, State.REFUSED, State.REVERSED})
_NEXT: dict[State, frozenset[State]] = {
    State.PREPARED: frozenset({State.SENT, State.REVERSING}),
    State.SENT: frozenset({State.SENT, State.SETTLED, State.REFUSED, State.REVERSING}),
    State.REVERSING: frozenset({State.REVERSING, State.REVERSED, State.REVERSE_REFUSED}),
    State.REVERSE_REFUSED: frozenset({State.SENT, State.REVERSING}),
    State.SETTLED: frozenset(),
    State.REFUSED: frozenset(),
    State.REVERSED: frozenset(),
}


class JournalError(Exception):
    """The journal cannot be used; the terminal must not settle until a person has looked."""


class JournalBusy(JournalError):
    """Another terminal process holds this journal."""


class JournalCorrupt(JournalError):
    """A line that is neither a complete, valid record nor a torn last write; or an impossible transition."""


@dataclass(frozen=True)
class JournalEntry:
    """Everything the journal knows about one settle attempt, folded from its lines."""

    request_id: str
    state: State
    hospital_id: str
    terminal_id: str
    quote_id: str
    amount_fen: int
    person_number: str
    card_masked: str
    request: bytes  # the serialised SettleRequest, resent byte for byte
    prepared_at: str
    attempts: int = 0  # Settle calls sent
    settlement_id: str = ""  # settled: the settlement; reversed: the cancellation entry ("" if nothing was settled)
    reason: str = ""
    message: str = ""
    cancel_request_id: str = ""

    @property
    def finished(self) -> bool:
        return self.state in FINISHED


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


class Journal:
    """One open journal file, locked for this process. Use ``Journal.open``; close it when done."""

    def __init__(self, path: Path, descriptor: int, lock: int, now: Callable[[], dt.datetime]) -> None:
        self.path = path
        self._descriptor = descriptor
        self._lock = lock
        self._now = now
        self._entries: dict[str, JournalEntry] = {}
        self._closed = False

    @classmethod
    def open(cls, path: Path, *, now: Callable[[], dt.datetime] = _utc_now) -> Journal:
        """Lock, repair a torn last line, read every entry; rotate a large journal with nothing unfinished."""
        path.parent.mkdir(parents=True, exist_ok=True)
        lock = _lock(path.with_name(path.name + LOCK_SUFFIX))
        try:
            descriptor = _open_append(path)
        except BaseException:
            os.close(lock)
            raise
        journal = cls(path, descriptor, lock, now)
        try:
            journal._load()
            if not journal.unfinished() and os.fstat(journal._descriptor).st_size > JOURNAL_ROTATE_BYTES:
                journal._rotate()
        except BaseException:
            journal.close()  # releases the lock as well
            raise
        return journal

    # ---- reading ---------------------------------------------------------------------------------

    def entries(self) -> list[JournalEntry]:
        return list(self._entries.values())

    def unfinished(self) -> list[JournalEntry]:
        """Attempts whose outcome this terminal does not know, oldest first."""
        return [entry for entry in self._entries.values() if not entry.finished]

    def entry(self, request_id: str) -> JournalEntry:
        try:
            return self._entries[request_id]
        except KeyError:
            raise JournalError(f"the journal has no settle with request_id {request_id}") from None

    # ---- state changes: each is on disk (fsync'd) before the method returns ---------------------------

    def prepare(
        self,
        *,
        request_id: str,
        hospital_id: str,
        terminal_id: str,
        quote_id: str,
        amount_fen: int,
        person_number: str,
        card_masked: str,
        request: bytes,
    ) -> JournalEntry:
        if request_id in self._entries:
            raise JournalError(f"request_id {request_id} is already in the journal: an id is used for one settle only")
        return self._write(
            {
                "state": State.PREPARED.value,
                "request_id": request_id,
                "hospital_id": hospital_id,
                "terminal_id": terminal_id,
                "quote_id": quote_id,
                "amount_fen": amount_fen,
                "person_number": person_number,
                "card": card_masked,
                "request": base64.b64encode(request).decode("ascii"),
            }
        )

    def sent(self, request_id: str) -> JournalEntry:
        attempt = self.entry(request_id).attempts + 1
        return self._write({"state": State.SENT.value, "request_id": request_id, "attempt": attempt})

    def settled(self, request_id: str, settlement_id: str) -> JournalEntry:
        return self._write({"state": State.SETTLED.value, "request_id": request_id, "settlement_id": settlement_id})

    def refused(self, request_id: str, reason: str, message: str) -> JournalEntry:
        return self._write(
            {"state": State.REFUSED.value, "request_id": request_id, "reason": reason, "message": message}
        )

    def reversing(self, request_id: str, cancel_request_id: str) -> JournalEntry:
        return self._write(
            {"state": State.REVERSING.value, "request_id": request_id, "cancel_request_id": cancel_request_id}
        )

    def reversed(self, request_id: str, cancellation_id: str, reason: str = "") -> JournalEntry:
        record = {"state": State.REVERSED.value, "request_id": request_id, "settlement_id": cancellation_id}
        return self._write({**record, "reason": reason})

    def reverse_refused(self, request_id: str, reason: str, message: str) -> JournalEntry:
        return self._write(
            {"state": State.REVERSE_REFUSED.value, "request_id": request_id, "reason": reason, "message": message}
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        os.close(self._descriptor)
        os.close(self._lock)  # closing the descriptor releases the flock

    def __enter__(self) -> Journal:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    # ---- inside ----------------------------------------------------------------------------------

    def _write(self, record: dict[str, Any]) -> JournalEntry:
        if self._closed:
            raise JournalError("the journal is closed")
        record = {"v": FORMAT_VERSION, "at": self._now().isoformat(), **record}
        entry = _fold(self._entries.get(record["request_id"]), record)  # checks the transition first
        line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        if len(line) > MAX_JOURNAL_LINE_BYTES:
            raise JournalError(f"a journal line of {len(line)} bytes exceeds {MAX_JOURNAL_LINE_BYTES}")
        _write_all(self._descriptor, line)
        os.fsync(self._descriptor)
        self._entries[entry.request_id] = entry
        return entry

    def _load(self) -> None:
        data = _read_all(self._descriptor)
        complete = data.rfind(b"\n") + 1
        if complete < len(data):  # a write cut short by a crash: it never happened
            os.ftruncate(self._descriptor, complete)
            os.fsync(self._descriptor)
            data = data[:complete]
        for number, raw in enumerate(data.splitlines(), start=1):
            where = f"{self.path}:{number}"
            if len(raw) > MAX_JOURNAL_LINE_BYTES:
                raise JournalCorrupt(f"{where}: line longer than {MAX_JOURNAL_LINE_BYTES} bytes")
            try:
                record = json.loads(raw)
                if not isinstance(record, dict) or record.get("v") != FORMAT_VERSION:
                    raise JournalCorrupt(f"not a version {FORMAT_VERSION} journal record")
                entry = _fold(self._entries.get(str(record.get("request_id"))), record)
            except (ValueError, KeyError, TypeError, binascii.Error) as error:
                raise JournalCorrupt(f"{where}: unreadable record ({type(error).__name__}: {error})") from None
            except JournalCorrupt as error:
                raise JournalCorrupt(f"{where}: {error}") from None
            self._entries[entry.request_id] = entry

    def _rotate(self) -> None:
        stamp = self._now().strftime("%Y%m%dT%H%M%SZ")
        archived = self.path.with_name(f"{self.path.name}.{stamp}.done")
        os.rename(self.path, archived)
        _fsync_directory(self.path.parent)
        fresh = _open_append(self.path)
        os.close(self._descriptor)
        self._descriptor = fresh
        self._entries.clear()


def _fold(entry: JournalEntry | None, record: dict[str, Any]) -> JournalEntry:
    """The entry after ``record``; ``JournalCorrupt`` for a transition the state machine forbids."""
    state = State(record["state"])
    request_id = str(record["request_id"])
    if entry is None:
        if state is not State.PREPARED:
            raise JournalCorrupt(f"{state.value} for request_id {request_id}, which was never prepared")
        amount_fen = record["amount_fen"]
        if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or amount_fen < 0:
            raise JournalCorrupt(f"amount_fen {amount_fen!r} of request_id {request_id} is not a whole number of fen")
        return JournalEntry(
            request_id=request_id,
            state=state,
            hospital_id=str(record["hospital_id"]),
            terminal_id=str(record["terminal_id"]),
            quote_id=str(record["quote_id"]),
            amount_fen=amount_fen,
            person_number=str(record["person_number"]),
            card_masked=str(record["card"]),
            request=base64.b64decode(str(record["request"]), validate=True),
            prepared_at=str(record["at"]),
        )
    if state not in _NEXT[entry.state]:
        raise JournalCorrupt(f"request_id {request_id} cannot go from {entry.state.value} to {state.value}")
    if state is State.SENT:
        return replace(entry, state=state, attempts=int(record["attempt"]))
    if state is State.REVERSING:
        return replace(entry, state=state, cancel_request_id=str(record["cancel_request_id"]))
    return replace(
        entry,
        state=state,
        settlement_id=str(record.get("settlement_id", entry.settlement_id)),
        reason=str(record.get("reason", "")),
        message=str(record.get("message", "")),
    )


def _lock(path: Path) -> int:
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(descriptor)
        raise JournalBusy(f"{path}: another terminal process is using this journal") from None
    return descriptor


def _open_append(path: Path) -> int:
    existed = path.exists()
    descriptor = os.open(path, os.O_RDWR | os.O_APPEND | os.O_CREAT, 0o600)
    if not existed:  # the new name must survive a crash as well as the lines written to it
        _fsync_directory(path.parent)
    return descriptor


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _read_all(descriptor: int) -> bytes:
    size = os.fstat(descriptor).st_size
    return b"".join(_chunks(descriptor, size))


def _chunks(descriptor: int, size: int) -> Iterator[bytes]:
    offset = 0
    while offset < size:
        chunk = os.pread(descriptor, min(1 << 20, size - offset), offset)
        if not chunk:
            return
        offset += len(chunk)
        yield chunk


def _write_all(descriptor: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(descriptor, view)
        view = view[written:]
