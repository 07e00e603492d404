"""A virtual citizen card in the vsmartcard-vpcd reader of a real pcscd (test utility and demo).

Owns the vpcd link: a TCP connection to the vpcd driver inside pcscd (connected = card inserted),
carrying messages framed as a 2-byte big-endian length and the bytes. A 1-byte message is a control
code (0 power off, 1 power on, 2 reset, 4 send ATR; only 4 is answered, with the ATR); anything longer is
a command APDU, answered with one response APDU computed by ``CitizenCardApplet``. Also owns the
misbehaviour switches tests need: a slow card, a card that stops answering, a card pulled mid-flow.

Run it:  python -m cardio.virtual_card --port 35963 --pin 123456 [--t0] [--delay-ms 500] ...
In tests: ``VirtualCard(applet, port=35963)`` with start() / remove() / insert() / stop().

Never used in production: the master key is in memory here, and the card's log shows data in clear.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import socket
import struct
import threading
import time
from datetime import date
from types import TracebackType

from cardio.applet import CardPersonalisation, CitizenCardApplet
from cardio.limits import (
    PIN_TRIES,
    VPCD_CONNECT_TIMEOUT_MS,
    VPCD_DEFAULT_HOST,
    VPCD_DEFAULT_PORT,
    VPCD_MAX_MESSAGE_BYTES,
)
from cardio.protocol import CardHolder, CardIdentification

logger = logging.getLogger("cardio.virtual_card")

CONTROL_POWER_OFF = 0
CONTROL_POWER_ON = 1
CONTROL_RESET = 2
CONTROL_GET_ATR = 4

_HISTORICAL_BYTES = b"SSCARD"


def _atr(t0_mode: bool) -> bytes:
    """A minimal ATR offering T=0 only (no interface bytes) or T=1 only (TD1 = 01, with TCK)."""
    if t0_mode:
        return bytes((0x3B, len(_HISTORICAL_BYTES))) + _HISTORICAL_BYTES
    body = bytes((0x80 | len(_HISTORICAL_BYTES), 0x01)) + _HISTORICAL_BYTES
    check = 0
    for byte in body:
        check ^= byte
    return b"\x3b" + body + bytes((check,))


# A development issuer key: the same default the server's dev configuration documents. Never real.
DEV_MASTER_KEY = bytes(range(16))


def demo_personalisation(
    *,
    card_number: str = "A12345678",
    citizen_id: str = "330106199001011234",
    name: str = "张三",
    sex: str = "1",
    birth_date: date = date(1990, 1, 1),
    region_code: str = "330100",
    pin: str = "123456",
    pin_tries_left: int = PIN_TRIES,
    counter: int = 0,
    master_key: bytes = DEV_MASTER_KEY,
) -> CardPersonalisation:
    """A plausible Hangzhou card; every field can be overridden."""
    identification_code = bytes.fromhex(region_code) + bytes.fromhex("D15600000500") + bytes(7)
    return CardPersonalisation(
        identification=CardIdentification(
            identification_code=identification_code, spec_version="3.00", card_number=card_number
        ),
        holder=CardHolder(citizen_id=citizen_id, name=name, sex=sex, birth_date=birth_date),
        pin=pin,
        master_key=master_key,
        pin_tries_left=pin_tries_left,
        counter=counter,
    )


def _quick_ack(sock: socket.socket) -> None:
    # TCP_QUICKACK is not sticky on Linux: re-arm it after every read, else delayed ACKs cost ~40 ms.
    quickack = getattr(socket, "TCP_QUICKACK", None)
    if quickack is not None:
        sock.setsockopt(socket.IPPROTO_TCP, quickack, 1)


def _recv_exactly(sock: socket.socket, count: int) -> bytes | None:
    """``count`` bytes, or None when the link closed."""
    buffer = bytearray()
    while len(buffer) < count:
        chunk = sock.recv(count - len(buffer))
        if not chunk:
            return None
        _quick_ack(sock)
        buffer += chunk
    return bytes(buffer)


class VirtualCard:
    """One card in one vpcd slot. Card state (tries, counter) survives remove() / insert()."""

    def __init__(
        self,
        applet: CitizenCardApplet,
        *,
        host: str = VPCD_DEFAULT_HOST,
        port: int = VPCD_DEFAULT_PORT,
        delay_ms: int = 0,
        remove_after_apdus: int | None = None,
        hang_after_apdus: int | None = None,
    ) -> None:
        self.applet = applet
        self.host = host
        self.port = port
        self.delay_ms = delay_ms  # slow card: pause before every answer
        self.remove_after_apdus = remove_after_apdus  # pulled: the link drops when APDU n+1 arrives
        self.hang_after_apdus = hang_after_apdus  # hung: APDU n+1 and later are never answered
        self.apdu_count = 0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._removing = threading.Event()
        self._lock = threading.Lock()

    @property
    def inserted(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self) -> None:
        self.insert()

    def stop(self) -> None:
        self.remove()

    def insert(self, timeout_ms: int = VPCD_CONNECT_TIMEOUT_MS) -> None:
        """Connect to vpcd (pcscd then reports a card within about 0.4 s). Retries until ``timeout_ms``."""
        self.remove()
        deadline = time.monotonic() + timeout_ms / 1000
        while True:
            try:
                sock = socket.create_connection((self.host, self.port), timeout=timeout_ms / 1000)
                break
            except OSError:
                if time.monotonic() >= deadline:
                    raise
                time.sleep(0.05)
        sock.settimeout(None)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # answer at once, no Nagle batching
        _quick_ack(sock)
        self.apdu_count = 0
        self._removing.clear()
        self._sock = sock
        self._thread = threading.Thread(target=self._serve, args=(sock,), name="virtual-card", daemon=True)
        self._thread.start()

    def remove(self) -> None:
        """Pull the card: close the link. Safe to call at any time, also when not inserted."""
        with self._lock:
            self._removing.set()
            sock, thread = self._sock, self._thread
            self._sock, self._thread = None, None
        if sock is not None:
            with contextlib.suppress(OSError):  # already gone: the other side closed first
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()
        if thread is not None and thread is not threading.current_thread():
            thread.join()

    def _serve(self, sock: socket.socket) -> None:
        try:
            while not self._removing.is_set():
                header = _recv_exactly(sock, 2)
                if header is None:
                    break
                message = _recv_exactly(sock, struct.unpack(">H", header)[0])
                if message is None:
                    break
                if not self._handle(sock, message):
                    break
        except OSError:
            pass  # the link was closed by remove() or by pcscd: either way the card is out
        finally:
            logger.debug("virtual card out of port %d after %d APDUs", self.port, self.apdu_count)
            with self._lock:  # the card left by itself (pulled mid-flow, or pcscd went away)
                if self._sock is sock:
                    self._sock = None
                    sock.close()

    def _handle(self, sock: socket.socket, message: bytes) -> bool:
        """Answer one message; False when the card leaves the reader."""
        if len(message) == 1:
            code = message[0]
            if code == CONTROL_GET_ATR:
                self._send(sock, _atr(self.applet.t0_mode))
            elif code in (CONTROL_POWER_ON, CONTROL_RESET, CONTROL_POWER_OFF):
                self.applet.reset()
            return True
        if not message:
            return True
        self.apdu_count += 1
        if self.remove_after_apdus is not None and self.apdu_count > self.remove_after_apdus:
            logger.debug("virtual card pulled at APDU %d", self.apdu_count)
            return False
        if self.hang_after_apdus is not None and self.apdu_count > self.hang_after_apdus:
            return True  # swallow it: the reader must give up on its own deadline
        if self.delay_ms and self._removing.wait(self.delay_ms / 1000):
            return False
        self._send(sock, self.applet.process(message))
        return True

    @staticmethod
    def _send(sock: socket.socket, payload: bytes) -> None:
        if len(payload) > VPCD_MAX_MESSAGE_BYTES:
            raise ValueError("vpcd message too long")
        sock.sendall(struct.pack(">H", len(payload)) + payload)

    def __enter__(self) -> VirtualCard:
        self.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m cardio.virtual_card", description=__doc__.split("\n")[0])
    parser.add_argument("--host", default=VPCD_DEFAULT_HOST)
    parser.add_argument("--port", type=int, default=VPCD_DEFAULT_PORT, help="35963 = reader 00 00, 35964 = 00 01")
    parser.add_argument("--card-number", default="A12345678")
    parser.add_argument("--citizen-id", default="330106199001011234")
    parser.add_argument("--name", default="张三")
    parser.add_argument("--sex", default="1", choices=["0", "1", "2", "9"])
    parser.add_argument("--birth-date", type=date.fromisoformat, default=date(1990, 1, 1))
    parser.add_argument("--region-code", default="330100")
    parser.add_argument("--pin", default="123456")
    parser.add_argument("--pin-tries", type=int, default=PIN_TRIES)
    parser.add_argument("--blocked", action="store_true", help="the PIN is blocked (6983)")
    parser.add_argument("--master-key-hex", default=DEV_MASTER_KEY.hex(), help="issuer master key (dev only)")
    parser.add_argument("--counter", type=int, default=0, help="transaction counter before the first AC")
    parser.add_argument("--t0", action="store_true", help="answer 61xx / 6Cxx like a T=0 card")
    parser.add_argument("--delay-ms", type=int, default=0, help="slow card: pause before every answer")
    parser.add_argument("--remove-after", type=int, default=None, help="pull the card when APDU n+1 arrives")
    parser.add_argument("--hang-after", type=int, default=None, help="stop answering after n APDUs")
    parser.add_argument("-v", "--verbose", action="store_true")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = _parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(message)s")
    personalisation = demo_personalisation(
        card_number=args.card_number,
        citizen_id=args.citizen_id,
        name=args.name,
        sex=args.sex,
        birth_date=args.birth_date,
        region_code=args.region_code,
        pin=args.pin,
        pin_tries_left=0 if args.blocked else args.pin_tries,
        counter=args.counter,
        master_key=bytes.fromhex(args.master_key_hex),
    )
    card = VirtualCard(
        CitizenCardApplet(personalisation, t0_mode=args.t0),
        host=args.host,
        port=args.port,
        delay_ms=args.delay_ms,
        remove_after_apdus=args.remove_after,
        hang_after_apdus=args.hang_after,
    )
    card.start()
    logger.info("virtual citizen card inserted at %s:%d (Ctrl-C to pull it)", args.host, args.port)
    try:
        while card.inserted:
            time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        card.stop()
    logger.info("virtual card removed; transaction counter now %d", personalisation.counter)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
