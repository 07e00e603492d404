"""How an APDU exchange is written to the log, with personal data masked.

Owns the decision of which bytes are personal: the PIN in VERIFY (never shown), the holder records of
EF06 (never shown, only their length), and the card number in EF05 (last four characters). Everything
else is logged in hex because it is what one needs when a card misbehaves at a desk. The description of
a response depends on the *logical* command, so a GET RESPONSE that fetches EF06 data is masked as well.
"""

from __future__ import annotations

from cardio.apdu import CommandApdu, ResponseApdu
from cardio.masking import mask_tail
from cardio.protocol import (
    INS_READ_RECORD,
    INS_VERIFY,
    RECORD_CARD_NUMBER,
    SFI_CARD_IDENTIFICATION,
    SFI_HOLDER,
)

COMMAND_NAMES = {
    0xA4: "SELECT",
    0xB2: "READ RECORD",
    0x20: "VERIFY",
    0x84: "GET CHALLENGE",
    0x88: "INTERNAL AUTHENTICATE",
    0xAE: "GENERATE AC",
    0xC0: "GET RESPONSE",
}


def command_name(command: CommandApdu) -> str:
    return COMMAND_NAMES.get(command.ins, f"INS {command.ins:02X}")


def _sfi(command: CommandApdu) -> int | None:
    if command.ins != INS_READ_RECORD:
        return None
    return command.p2 >> 3


def describe_command(command: CommandApdu) -> str:
    header = f"{command.cla:02X}{command.ins:02X}{command.p1:02X}{command.p2:02X}"
    if command.ins == INS_VERIFY:
        data = f"<PIN hidden, {len(command.data)} bytes>" if command.data else ""
    else:
        data = command.data.hex().upper()
    le = "" if command.le is None else f" Le={command.le}"
    return f"{command_name(command)} {header}{' ' + data if data else ''}{le}"


def describe_response_data(logical: CommandApdu, data: bytes) -> str:
    """The response data as it may be logged, given the command it answers."""
    if not data:
        return ""
    sfi = _sfi(logical)
    if sfi == SFI_HOLDER:
        return f"<holder record hidden, {len(data)} bytes>"
    if sfi == SFI_CARD_IDENTIFICATION and logical.p1 == RECORD_CARD_NUMBER:
        value = data[2:]  # tag, length, value
        text = value.decode("ascii") if value.isascii() else ""
        return f"<card number {mask_tail(text)}>" if text.isalnum() else f"<card number hidden, {len(data)} bytes>"
    if sfi is not None and sfi not in (SFI_CARD_IDENTIFICATION,):
        return f"<record hidden, {len(data)} bytes>"  # an unknown file: assume it is personal
    return data.hex().upper()


def describe_response(logical: CommandApdu, response: ResponseApdu) -> str:
    data = describe_response_data(logical, response.data)
    return f"{data + ' ' if data else ''}SW={response.status_word:04X}"
