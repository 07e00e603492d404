"""ISO 7816-4 APDUs: command encoding and decoding, response parsing, status words.

Owns the byte-level shape of one command and one response, short APDUs only (cases 1-4, at most 255
command data bytes, Le 1-256). Knows nothing of the citizen card (see ``protocol``) or of PC/SC (see
``pcsc``); imports only the standard library and ``cardio``'s own errors and limits. Parsing a response
never raises anything but ``MalformedResponse``.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardio.errors import MalformedResponse
from cardio.limits import MAX_COMMAND_DATA_BYTES, MAX_RESPONSE_DATA_BYTES

# Status words (SW1SW2) the citizen card uses; see docs/card.md for what the reader does with each.
SW_OK = 0x9000
SW_WRONG_LENGTH = 0x6700
SW_SECURITY_STATUS_NOT_SATISFIED = 0x6982
SW_PIN_BLOCKED = 0x6983
SW_CONDITIONS_NOT_SATISFIED = 0x6985
SW_WRONG_DATA = 0x6A80
SW_FILE_NOT_FOUND = 0x6A82
SW_RECORD_NOT_FOUND = 0x6A83
SW_WRONG_P1P2 = 0x6A86
SW_INS_NOT_SUPPORTED = 0x6D00
SW_CLA_NOT_SUPPORTED = 0x6E00
SW1_MORE_DATA = 0x61  # T=0: 61xx, xx bytes waiting for GET RESPONSE
SW1_WRONG_LE = 0x6C  # T=0: 6Cxx, re-send the command with Le = xx
SW1_WRONG_PIN = 0x63  # 63Cx: wrong PIN, x tries left


@dataclass(frozen=True)
class CommandApdu:
    """One command APDU. ``le`` is the expected response length, 1-256, or None for no response data."""

    cla: int
    ins: int
    p1: int
    p2: int
    data: bytes = b""
    le: int | None = None

    def __post_init__(self) -> None:
        for name in ("cla", "ins", "p1", "p2"):
            value = getattr(self, name)
            if not 0 <= value <= 0xFF:
                raise ValueError(f"{name} {value} does not fit one byte")
        if len(self.data) > MAX_COMMAND_DATA_BYTES:
            raise ValueError(f"command data of {len(self.data)} bytes exceeds {MAX_COMMAND_DATA_BYTES}")
        if self.le is not None and not 1 <= self.le <= MAX_RESPONSE_DATA_BYTES:
            raise ValueError(f"Le {self.le} is outside 1..{MAX_RESPONSE_DATA_BYTES}")

    def to_bytes(self) -> bytes:
        out = bytes((self.cla, self.ins, self.p1, self.p2))
        if self.data:
            out += bytes((len(self.data),)) + self.data
        if self.le is not None:
            out += bytes((self.le % 256,))  # Le 256 is encoded as 00
        return out

    def with_le(self, le: int) -> CommandApdu:
        return CommandApdu(self.cla, self.ins, self.p1, self.p2, self.data, le)

    @staticmethod
    def from_bytes(raw: bytes) -> CommandApdu:
        """Decode a short command APDU (the card side); ``MalformedResponse`` if it is not one."""
        if len(raw) < 4:
            raise MalformedResponse(f"command of {len(raw)} bytes is shorter than a header")
        cla, ins, p1, p2 = raw[0], raw[1], raw[2], raw[3]
        body = raw[4:]
        if not body:  # case 1
            return CommandApdu(cla, ins, p1, p2)
        if len(body) == 1:  # case 2
            return CommandApdu(cla, ins, p1, p2, le=body[0] or 256)
        lc = body[0]
        if lc == 0:
            raise MalformedResponse("extended-length commands are not supported")
        if len(body) == 1 + lc:  # case 3
            return CommandApdu(cla, ins, p1, p2, data=body[1:])
        if len(body) == 2 + lc:  # case 4
            return CommandApdu(cla, ins, p1, p2, data=body[1:-1], le=body[-1] or 256)
        raise MalformedResponse(f"command body of {len(body)} bytes does not match Lc {lc}")


@dataclass(frozen=True)
class ResponseApdu:
    """One response APDU: the data and the two status bytes."""

    data: bytes
    sw1: int
    sw2: int

    @property
    def status_word(self) -> int:
        return (self.sw1 << 8) | self.sw2

    @property
    def ok(self) -> bool:
        return self.status_word == SW_OK

    def to_bytes(self) -> bytes:
        return self.data + bytes((self.sw1, self.sw2))

    @staticmethod
    def from_bytes(raw: bytes, *, max_data_bytes: int = MAX_RESPONSE_DATA_BYTES) -> ResponseApdu:
        if len(raw) < 2:
            raise MalformedResponse(f"response of {len(raw)} bytes has no status word")
        if len(raw) - 2 > max_data_bytes:
            raise MalformedResponse(f"response data of {len(raw) - 2} bytes exceeds {max_data_bytes}")
        return ResponseApdu(data=bytes(raw[:-2]), sw1=raw[-2], sw2=raw[-1])

    @staticmethod
    def status(status_word: int, data: bytes = b"") -> ResponseApdu:
        return ResponseApdu(data=data, sw1=status_word >> 8, sw2=status_word & 0xFF)


def format_status_word(status_word: int) -> str:
    return f"{status_word:04X}"


def wrong_pin_tries_left(status_word: int) -> int | None:
    """x from 63Cx, or None when the status word is not a wrong-PIN answer."""
    if status_word >> 8 == SW1_WRONG_PIN and (status_word & 0xF0) == 0xC0:
        return status_word & 0x0F
    return None


def get_response(le: int) -> CommandApdu:
    """GET RESPONSE (T=0): fetch ``le`` bytes the card announced with 61xx."""
    return CommandApdu(0x00, 0xC0, 0x00, 0x00, le=le or 256)
