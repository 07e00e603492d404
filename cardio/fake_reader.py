"""A scripted, in-memory card reader for fast tests of code around the reader (the terminal, the flow).

Owns nothing real: each slot holds a *responder*, a function from command bytes to response bytes. Use
``CitizenCardApplet(...).process`` for a full virtual card without pcscd, or ``scripted(...)`` for a
fixed list of answers (an answer may be a ``CardError`` to raise, e.g. ``CardRemoved()``). Behaves like
``PcscCardReader`` where code can tell: the same errors, the same T=0 follow-ups reach ``ApduExchange``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable

from cardio.errors import CardError, CardRemoved, NoCard, NoReader, ReaderFailure
from cardio.limits import CARD_WAIT_TIMEOUT_MS
from cardio.reader import CardChannel, CardReaderPort

Responder = Callable[[bytes], bytes]


def scripted(answers: Iterable[bytes | CardError]) -> Responder:
    """A responder that gives ``answers`` in order, raising the ones that are errors."""
    remaining = list(answers)

    def respond(command: bytes) -> bytes:
        if not remaining:
            raise RuntimeError(f"the script has no answer left for {command.hex().upper()}")
        answer = remaining.pop(0)
        if isinstance(answer, CardError):
            raise answer
        return answer

    return respond


class ScriptedChannel(CardChannel):
    def __init__(self, reader: ScriptedCardReader, reader_name: str, insertion: int, responder: Responder) -> None:
        self._reader = reader
        self._insertion = insertion
        self._responder = responder
        self.reader_name = reader_name
        self.atr = b"\x3b\x06SSCARD"
        self.protocol = "T=1"
        self.sent: list[bytes] = []
        self.closed = False

    def transmit_raw(self, command: bytes, timeout_ms: int) -> bytes:
        if self.closed:
            raise ReaderFailure("the connection is closed")
        if self._reader.insertion(self.reader_name) != self._insertion:
            raise CardRemoved("the card was removed")
        self.sent.append(command)
        return self._responder(command)

    def close(self) -> None:
        self.closed = True


class ScriptedCardReader(CardReaderPort):
    """Named slots, each empty or holding a responder; insert() and remove() may come from any thread."""

    def __init__(self, readers: Iterable[str] = ("Fake Reader 00 00",)) -> None:
        self._slots: dict[str, Responder | None] = dict.fromkeys(readers)
        self._insertions: dict[str, int] = dict.fromkeys(self._slots, 0)
        self._changed = threading.Condition()
        self.channels: list[ScriptedChannel] = []

    def insert(self, reader: str, responder: Responder) -> None:
        with self._changed:
            self._slots[reader] = responder
            self._insertions[reader] = self._insertions.get(reader, 0) + 1
            self._changed.notify_all()

    def remove(self, reader: str) -> None:
        with self._changed:
            self._slots[reader] = None
            self._insertions[reader] += 1
            self._changed.notify_all()

    def insertion(self, reader: str) -> int:
        with self._changed:
            return self._insertions[reader]

    def list_readers(self) -> list[str]:
        with self._changed:
            return list(self._slots)

    def wait_for_card(self, reader: str | None = None, timeout_ms: int = CARD_WAIT_TIMEOUT_MS) -> str:
        deadline = time.monotonic() + timeout_ms / 1000
        with self._changed:
            if reader is not None and reader not in self._slots:
                raise NoReader(f"reader {reader!r} is not connected")
            if not self._slots:
                raise NoReader("no card reader is connected")
            while True:
                for name, responder in self._slots.items():
                    if responder is not None and reader in (None, name):
                        return name
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise NoCard(f"no card presented within {timeout_ms} ms")
                self._changed.wait(remaining)

    def connect(self, reader: str) -> CardChannel:
        with self._changed:
            if reader not in self._slots:
                raise NoReader(f"reader {reader!r} is not connected")
            responder = self._slots[reader]
            if responder is None:
                raise NoCard(f"no card in {reader!r}")
            channel = ScriptedChannel(self, reader, self._insertions[reader], responder)
        self.channels.append(channel)
        return channel
