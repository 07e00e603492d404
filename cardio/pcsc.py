"""The PC/SC implementation of the card reader port, on pyscard's low-level ``smartcard.scard``.

Owns every call into pyscard (the only module of ``cardio`` that imports it) and the mapping of PC/SC
result codes to the ``cardio.errors`` tree. Design choices, each for a failure seen at real desks:

- A fresh PC/SC context per operation or connection, never a process-wide one: a context dies with
  pcscd, and a new one after a pcscd restart just works.
- Every transmit runs on a daemon thread and is waited for with a deadline. pcscd has no deadline of its
  own for a card that stops answering; the caller gets ``CardTimeout`` and the stuck connection is
  cleaned up in the background once pcscd lets go.
- A failed transmit is confirmed as a removal by watching the reader for a moment (pcscd notices a
  pulled card only at its next poll, up to ~400 ms later).
- ``CardEventMonitor`` polls ``SCardGetStatusChange`` with a short timeout, so it can be stopped and it
  re-establishes its context after pcscd restarts (pyscard's ``CardMonitor`` does neither).
"""

from __future__ import annotations

import enum
import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from cardio.errors import (
    CardError,
    CardRemoved,
    CardTimeout,
    MalformedResponse,
    NoCard,
    NoReader,
    PcscUnavailable,
    ReaderFailure,
)
from cardio.limits import (
    CARD_WAIT_TIMEOUT_MS,
    MONITOR_RECONNECT_BACKOFF_MS,
    MONITOR_STOP_TIMEOUT_MS,
    REMOVAL_CONFIRM_TIMEOUT_MS,
    STATUS_POLL_INTERVAL_MS,
)
from cardio.reader import CardChannel, CardReaderPort

try:
    from smartcard import scard as _scard
except ImportError:  # the ``reader`` extra is not installed: the reader says so when it is used
    _scard = None
scard: Any = _scard

logger = logging.getLogger("cardio.pcsc")


def _require_pyscard() -> None:
    if scard is None:
        raise PcscUnavailable("pyscard is not installed: pip install 'clinic-settlement[reader]'")


def _message(hresult: int) -> str:
    return f"{scard.SCardGetErrorMessage(hresult).strip()} (0x{hresult & 0xFFFFFFFF:08X})"


def _error(hresult: int, doing: str) -> CardError:
    """The documented error for a PC/SC result code."""
    text = f"{doing}: {_message(hresult)}"
    if hresult in (scard.SCARD_E_NO_SERVICE, scard.SCARD_E_SERVICE_STOPPED, scard.SCARD_E_INVALID_HANDLE):
        return PcscUnavailable(text)
    if hresult in (
        scard.SCARD_E_NO_READERS_AVAILABLE,
        scard.SCARD_E_UNKNOWN_READER,
        scard.SCARD_E_READER_UNAVAILABLE,
    ):
        return NoReader(text)
    if hresult == scard.SCARD_E_NO_SMARTCARD:
        return NoCard(text)
    if hresult in (scard.SCARD_W_REMOVED_CARD, scard.SCARD_W_RESET_CARD):
        return CardRemoved(text)  # after a reset by someone else the flow must start over as well
    if hresult in (scard.SCARD_E_TIMEOUT, scard.SCARD_W_UNRESPONSIVE_CARD):
        return CardTimeout(text)
    return ReaderFailure(text)


def _is_present(event_state: int) -> bool:
    return bool(event_state & scard.SCARD_STATE_PRESENT) and not event_state & scard.SCARD_STATE_MUTE


class _Context:
    """One SCARDCONTEXT, released exactly once."""

    def __init__(self) -> None:
        _require_pyscard()
        hresult, handle = scard.SCardEstablishContext(scard.SCARD_SCOPE_USER)
        if hresult != scard.SCARD_S_SUCCESS:
            raise PcscUnavailable(f"cannot reach pcscd: {_message(hresult)}")
        self.handle = handle
        self._released = False

    def readers(self) -> list[str]:
        hresult, names = scard.SCardListReaders(self.handle, [])
        if hresult == scard.SCARD_E_NO_READERS_AVAILABLE:
            return []
        if hresult != scard.SCARD_S_SUCCESS:
            raise _error(hresult, "listing readers")
        return list(names)

    def status_change(self, states: list[tuple[str, int]], timeout_ms: int) -> list[tuple[str, int, bytes]] | None:
        """New (reader, event state, ATR) triples, or None when ``timeout_ms`` passed without a change."""
        hresult, new_states = scard.SCardGetStatusChange(self.handle, timeout_ms, states)
        if hresult == scard.SCARD_E_TIMEOUT:
            return None
        if hresult != scard.SCARD_S_SUCCESS:
            raise _error(hresult, "watching readers")
        return [(name, state, bytes(atr)) for name, state, atr in new_states]

    def release(self) -> None:
        if not self._released:
            self._released = True
            scard.SCardReleaseContext(self.handle)


def _current_states(context: _Context, readers: list[str]) -> list[tuple[str, int, bytes]]:
    states = context.status_change([(name, scard.SCARD_STATE_UNAWARE) for name in readers], 0)
    return states or []


class PcscCardReader(CardReaderPort):
    """Readers known to the local pcscd."""

    def __init__(self) -> None:
        _require_pyscard()

    def list_readers(self) -> list[str]:
        context = _Context()
        try:
            return context.readers()
        finally:
            context.release()

    def wait_for_card(self, reader: str | None = None, timeout_ms: int = CARD_WAIT_TIMEOUT_MS) -> str:
        deadline = time.monotonic() + timeout_ms / 1000
        context = _Context()
        try:
            while True:
                readers = context.readers()
                if reader is not None:
                    if reader not in readers:
                        raise NoReader(f"reader {reader!r} is not connected")
                    readers = [reader]
                if not readers:
                    raise NoReader("no card reader is connected")
                states = _current_states(context, readers)
                for name, state, _atr in states:
                    if _is_present(state):
                        return name
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    raise NoCard(f"no card presented within {timeout_ms} ms")
                # Block until something changes, at most one poll interval so new readers are seen too.
                watch = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _atr in states]
                context.status_change(watch, min(remaining_ms, STATUS_POLL_INTERVAL_MS))
        finally:
            context.release()

    def connect(self, reader: str) -> CardChannel:
        context = _Context()
        try:
            hresult, card, protocol = scard.SCardConnect(
                context.handle,
                reader,
                # Exclusive: a PIN verified on this connection must not be usable by another program.
                scard.SCARD_SHARE_EXCLUSIVE,
                scard.SCARD_PROTOCOL_T0 | scard.SCARD_PROTOCOL_T1,
            )
            if hresult != scard.SCARD_S_SUCCESS:
                raise _error(hresult, f"connecting to the card in {reader!r}")
            hresult, _name, _state, _protocol, atr = scard.SCardStatus(card)
            if hresult != scard.SCARD_S_SUCCESS:
                scard.SCardDisconnect(card, scard.SCARD_LEAVE_CARD)
                raise _error(hresult, "reading the card status")
        except BaseException:
            context.release()
            raise
        logger.debug("connected to %s, protocol %s, ATR %s", reader, protocol, bytes(atr).hex().upper())
        return PcscChannel(context, card, protocol, reader, bytes(atr))


class PcscChannel(CardChannel):
    """One exclusive connection; see the module docstring for why transmits run on their own thread."""

    def __init__(self, context: _Context, card: int, protocol: int, reader_name: str, atr: bytes) -> None:
        self._context = context
        self._card = card
        self._pci = scard.SCARD_PCI_T0 if protocol == scard.SCARD_PROTOCOL_T0 else scard.SCARD_PCI_T1
        self.protocol = "T=0" if protocol == scard.SCARD_PROTOCOL_T0 else "T=1"
        self.reader_name = reader_name
        self.atr = atr
        self._stuck: threading.Thread | None = None
        self._closed = False
        self._healthy = True  # every transmit so far succeeded: the card is there to be reset

    def transmit_raw(self, command: bytes, timeout_ms: int) -> bytes:
        if self._closed:
            raise ReaderFailure("the connection is closed")
        if self._stuck is not None:
            raise CardTimeout("the card stopped answering earlier on this connection")
        started = time.monotonic()
        outcome: list[tuple[int, list[int]]] = []
        done = threading.Event()

        def run() -> None:
            try:
                outcome.append(scard.SCardTransmit(self._card, self._pci, list(command)))
            finally:
                done.set()

        worker = threading.Thread(target=run, name="pcsc-transmit", daemon=True)
        worker.start()
        if not done.wait(timeout_ms / 1000):
            self._stuck = worker
            self._healthy = False
            raise CardTimeout(f"the card did not answer within {timeout_ms} ms")
        if not outcome:
            raise ReaderFailure("SCardTransmit failed inside pyscard")
        hresult, response = outcome[0]
        if hresult == scard.SCARD_S_SUCCESS and len(response) >= 2:
            return bytes(response)
        self._healthy = False
        if hresult == scard.SCARD_S_SUCCESS:
            # vpcd (and some USB readers) report a card that vanished mid-command as an empty answer.
            error: CardError = MalformedResponse(f"the card answered {len(response)} bytes")
        else:
            error = _error(hresult, "sending a command")
        if isinstance(error, ReaderFailure | MalformedResponse):
            spent_ms = int((time.monotonic() - started) * 1000)
            error = self._removed_or(error, max(0, min(REMOVAL_CONFIRM_TIMEOUT_MS, timeout_ms - spent_ms)))
        raise error

    def _removed_or(self, error: CardError, watch_ms: int) -> CardError:
        """``CardRemoved`` if the reader turns out empty within ``watch_ms``, else ``error``."""
        deadline = time.monotonic() + watch_ms / 1000
        try:
            while True:
                states = _current_states(self._context, [self.reader_name])
                if states and not _is_present(states[0][1]):
                    return CardRemoved(f"the card was removed ({error.message})")
                remaining_ms = int((deadline - time.monotonic()) * 1000)
                if remaining_ms <= 0:
                    return error
                watch = [(name, state & ~scard.SCARD_STATE_CHANGED) for name, state, _atr in states]
                self._context.status_change(watch, remaining_ms)
        except CardError:
            return error

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        if self._stuck is None:
            self._release()
        else:  # pcscd still holds the transmit; let go once it returns, without making the caller wait
            stuck = self._stuck

            def release_when_free() -> None:
                stuck.join()
                self._release()

            threading.Thread(target=release_when_free, name="pcsc-release", daemon=True).start()

    def _release(self) -> None:
        # Reset, so the card forgets the verified PIN when this flow ends. But never reset a card that
        # failed to answer: it is most likely gone, and pcscd (1.9) resetting a card its poll has not yet
        # seen leave marks the reader empty for good, missing the next insertion. A card that is in fact
        # still there is powered down by pcscd after its idle grace period, which clears the PIN as well.
        disposition = scard.SCARD_RESET_CARD if self._healthy else scard.SCARD_LEAVE_CARD
        scard.SCardDisconnect(self._card, disposition)
        self._context.release()


class CardEventKind(enum.Enum):
    INSERTED = "inserted"
    REMOVED = "removed"


@dataclass(frozen=True)
class CardEvent:
    kind: CardEventKind
    reader: str
    atr: bytes = b""


class CardEventMonitor:
    """Calls ``on_event`` on its own thread for each card inserted or removed, until stop().

    At start, cards already present are reported as inserted. If pcscd goes away, cards known to be
    present are reported removed and the monitor keeps retrying every ``reconnect_backoff_ms``.
    """

    def __init__(
        self,
        on_event: Callable[[CardEvent], None],
        *,
        poll_interval_ms: int = STATUS_POLL_INTERVAL_MS,
        reconnect_backoff_ms: int = MONITOR_RECONNECT_BACKOFF_MS,
    ) -> None:
        _require_pyscard()
        self._on_event = on_event
        self._poll_interval_ms = poll_interval_ms
        self._reconnect_backoff_ms = reconnect_backoff_ms
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._context: _Context | None = None
        self._present: dict[str, tuple[bytes, int]] = {}  # reader -> (ATR, pcsc-lite event count)

    def start(self) -> None:
        if self._thread is not None:
            raise RuntimeError("the monitor is already running")
        self._thread = threading.Thread(target=self._run, name="card-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop within about one poll interval (``MONITOR_STOP_TIMEOUT_MS`` at most)."""
        self._stopping.set()
        context = self._context
        if context is not None:
            scard.SCardCancel(context.handle)  # wake a blocked SCardGetStatusChange now
        if self._thread is not None:
            self._thread.join(MONITOR_STOP_TIMEOUT_MS / 1000)

    def _emit(self, event: CardEvent) -> None:
        try:
            self._on_event(event)
        except Exception:  # a broken listener must not kill the monitor
            logger.exception("card event listener failed on %s", event.kind.value)

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                self._context = _Context()
                self._watch(self._context)
            except CardError as exc:
                if self._stopping.is_set():
                    break  # stop() cancelled the wait: not a lost pcscd
                logger.warning("card monitor lost pcscd (%s); retrying", exc.reason)
                for reader in list(self._present):
                    del self._present[reader]
                    self._emit(CardEvent(CardEventKind.REMOVED, reader))
                self._stopping.wait(self._reconnect_backoff_ms / 1000)
            finally:
                context, self._context = self._context, None
                if context is not None:
                    context.release()

    def _watch(self, context: _Context) -> None:
        watch: dict[str, int] = {}
        while not self._stopping.is_set():
            readers = context.readers()
            for gone in set(self._present) - set(readers):
                del self._present[gone]
                self._emit(CardEvent(CardEventKind.REMOVED, gone))
            states = [(name, watch.get(name, scard.SCARD_STATE_UNAWARE)) for name in readers]
            if not states:
                self._stopping.wait(self._poll_interval_ms / 1000)
                continue
            changed = context.status_change(states, self._poll_interval_ms)
            if changed is None:
                continue
            watch = {name: state & ~scard.SCARD_STATE_CHANGED for name, state, _atr in changed}
            for name, state, atr in changed:
                self._update(name, state, atr)

    def _update(self, reader: str, state: int, atr: bytes) -> None:
        count = state >> 16  # pcsc-lite counts insertions and removals in the high 16 bits
        before = self._present.get(reader)
        if _is_present(state):
            if before is not None and before[1] != count:  # out and in again between two polls
                self._emit(CardEvent(CardEventKind.REMOVED, reader))
            if before is None or before[1] != count:
                self._present[reader] = (atr, count)
                self._emit(CardEvent(CardEventKind.INSERTED, reader, atr))
        elif before is not None:
            del self._present[reader]
            self._emit(CardEvent(CardEventKind.REMOVED, reader))

    def __enter__(self) -> CardEventMonitor:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
