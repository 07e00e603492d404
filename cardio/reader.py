"""The card reader port: what code around a reader may rely on, and the APDU exchange on top of it.

Owns three things, all free of pyscard:

- ``CardReaderPort`` and ``CardChannel``, the tiny base classes a reader implements. ``cardio.pcsc`` is
  the PC/SC implementation; ``cardio.fake_reader`` is the scripted fake for fast tests.
- ``ApduExchange``: one logical command over a channel, with the T=0 follow-ups (``61xx`` -> GET
  RESPONSE, ``6Cxx`` -> re-send with the right Le) done here, a deadline over the whole exchange, and
  every physical APDU logged with personal data masked. Readers therefore pass raw bytes and nothing
  above this module ever sees a 61xx or 6Cxx.
- ``open_pcsc_reader()``, which imports pyscard only when called.
"""

from __future__ import annotations

import logging
import time
from abc import ABC, abstractmethod
from types import TracebackType

from cardio.apdu import SW1_MORE_DATA, SW1_WRONG_LE, CommandApdu, ResponseApdu, get_response
from cardio.apdu_log import command_name, describe_command, describe_response
from cardio.errors import CardTimeout, MalformedResponse
from cardio.limits import (
    APDU_EXCHANGE_TIMEOUT_MS,
    CARD_WAIT_TIMEOUT_MS,
    MAX_ASSEMBLED_RESPONSE_BYTES,
    MAX_T0_FOLLOW_UPS,
)

apdu_logger = logging.getLogger("cardio.apdu")


class CardChannel(ABC):
    """One open connection to one card, held for a whole flow (PIN, reads, GENERATE AC)."""

    reader_name: str
    atr: bytes
    protocol: str  # "T=0" or "T=1"

    @abstractmethod
    def transmit_raw(self, command: bytes, timeout_ms: int) -> bytes:
        """Send one physical APDU and return the raw answer (data + SW1 SW2).

        Raises ``CardRemoved``, ``CardTimeout`` (no answer within ``timeout_ms``) or ``ReaderFailure``.
        """

    @abstractmethod
    def close(self) -> None:
        """Release the card, resetting it so a verified PIN does not outlive the connection."""

    def __enter__(self) -> CardChannel:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


class CardReaderPort(ABC):
    """A source of card connections: PC/SC at a desk, a scripted fake in tests."""

    @abstractmethod
    def list_readers(self) -> list[str]:
        """Reader names; raises ``PcscUnavailable`` when the service is down."""

    @abstractmethod
    def wait_for_card(self, reader: str | None = None, timeout_ms: int = CARD_WAIT_TIMEOUT_MS) -> str:
        """The name of a reader holding a card (``reader`` only, if given).

        Raises ``NoCard`` when none appears within ``timeout_ms``, ``NoReader`` when there is no such
        reader.
        """

    @abstractmethod
    def connect(self, reader: str) -> CardChannel:
        """An exclusive connection to the card in ``reader``; ``NoCard`` if it is empty."""


class ApduExchange:
    """Logical commands over a channel: T=0 follow-ups, a deadline, masked logging."""

    def __init__(self, channel: CardChannel, *, timeout_ms: int = APDU_EXCHANGE_TIMEOUT_MS) -> None:
        self.channel = channel
        self.timeout_ms = timeout_ms

    def transmit(self, command: CommandApdu) -> ResponseApdu:
        """Send ``command``; return the card's final answer with all follow-up data assembled.

        Raises only ``CardError`` subclasses: what the channel raises, ``CardTimeout`` when the whole
        exchange outlives ``timeout_ms``, ``MalformedResponse`` for answers that break the protocol.
        """
        deadline = time.monotonic() + self.timeout_ms / 1000
        name = command_name(command)
        physical = command
        collected = b""
        for _ in range(MAX_T0_FOLLOW_UPS + 1):
            response = self._send(physical, command, deadline)
            if response.sw1 == SW1_MORE_DATA:
                collected += response.data
                physical = get_response(response.sw2)
            elif response.sw1 == SW1_WRONG_LE and not response.data:
                physical = physical.with_le(response.sw2 or 256)
            else:
                data = collected + response.data
                if len(data) > MAX_ASSEMBLED_RESPONSE_BYTES:
                    raise MalformedResponse(f"{name}: answer of {len(data)} bytes is too long")
                final = ResponseApdu(data, response.sw1, response.sw2)
                if physical is not command:
                    apdu_logger.debug("%s assembled: %s", name, describe_response(command, final))
                return final
            if len(collected) > MAX_ASSEMBLED_RESPONSE_BYTES:
                raise MalformedResponse(f"{name}: answer of {len(collected)} bytes is too long")
        raise MalformedResponse(f"{name}: more than {MAX_T0_FOLLOW_UPS} T=0 follow-ups")

    def _send(self, physical: CommandApdu, logical: CommandApdu, deadline: float) -> ResponseApdu:
        remaining_ms = int((deadline - time.monotonic()) * 1000)
        if remaining_ms <= 0:
            raise CardTimeout(f"{command_name(logical)}: no answer within {self.timeout_ms} ms")
        apdu_logger.debug("-> %s", describe_command(physical))
        started = time.monotonic()
        raw = self.channel.transmit_raw(physical.to_bytes(), remaining_ms)
        elapsed_ms = (time.monotonic() - started) * 1000
        response = ResponseApdu.from_bytes(raw)
        apdu_logger.debug("<- %s (%.1f ms)", describe_response(logical, response), elapsed_ms)
        return response


def open_pcsc_reader() -> CardReaderPort:
    """The PC/SC reader. Imports pyscard now; ``PcscUnavailable`` if it is not installed."""
    from cardio.pcsc import PcscCardReader  # noqa: PLC0415 - keep pyscard optional

    return PcscCardReader()
