"""The citizen-card protocol (domain.md §7): the application name, files, records, commands and answers.

Owns the bytes both ends agree on: the reader builds commands and parses answers with these functions,
the virtual card parses commands and builds answers with the same ones, so the two cannot drift. Pure:
no I/O, no pyscard. Parsing card data never raises anything but ``MalformedResponse``. docs/card.md is
the byte-level reference for everything here.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

from cardio.apdu import CommandApdu
from cardio.card_crypto import GenerateAcRequest, encode_bcd
from cardio.errors import InvalidPinFormat, MalformedResponse
from cardio.limits import (
    CARD_NUMBER_MAX_CHARS,
    CHALLENGE_BYTES,
    COUNTER_BYTES,
    CRYPTOGRAM_BYTES,
    PIN_MAX_DIGITS,
    PIN_MIN_DIGITS,
)
from cardio.masking import mask_tail
from cardio.tlv import decode_tlv, encode_tlv, require

# The social-security application is selected by name. GBK because that is how the Chinese
# social-security card specification stores text, and a reader for real cards must send the same bytes.
APPLICATION_NAME = "sx1.sh.社会保障"
APPLICATION_NAME_BYTES = APPLICATION_NAME.encode("gbk")

# Elementary files by short file identifier, and the record numbers in them.
SFI_CARD_IDENTIFICATION = 0x05  # EF05: readable without PIN
SFI_HOLDER = 0x06  # EF06: PIN-protected
RECORD_CARD_IDENTIFICATION_CODE = 0x01  # 16 bytes; first 3 are the issuing region, BCD
RECORD_SPEC_VERSION = 0x03  # 4 ASCII characters, e.g. "3.00"
RECORD_CARD_NUMBER = 0x07  # ASCII letters and digits, e.g. "A12345678"
RECORD_CITIZEN_ID = 0x08  # 社会保障号码: 18 ASCII characters (15 on very old cards)
RECORD_NAME = 0x09  # GBK, 1-30 bytes
RECORD_SEX = 0x0A  # 1 ASCII digit, GB/T 2261.1: 0 unknown, 1 male, 2 female, 9 not stated
RECORD_BIRTH_DATE = 0x0D  # 4 bytes BCD, YYYYMMDD
EF05_RECORDS = (RECORD_CARD_IDENTIFICATION_CODE, RECORD_SPEC_VERSION, RECORD_CARD_NUMBER)
EF06_RECORDS = (RECORD_CITIZEN_ID, RECORD_NAME, RECORD_SEX, RECORD_BIRTH_DATE)

# Instructions.
CLA_ISO = 0x00
CLA_PROPRIETARY = 0x80
INS_SELECT = 0xA4
INS_READ_RECORD = 0xB2
INS_VERIFY = 0x20
INS_GET_CHALLENGE = 0x84
INS_INTERNAL_AUTHENTICATE = 0x88
INS_GENERATE_AC = 0xAE
INS_GET_RESPONSE = 0xC0
P1_GENERATE_AC_TC = 0x40  # ask for a transaction certificate (approve offline-signed amount)

# TLV tags of GENERATE AC, named after the EMV tags they mirror (9F02, 5F2A, 9A, 9F37, 9F1C, 9F36, 9F26).
TAG_AMOUNT = 0x02
TAG_CURRENCY = 0x2A
TAG_DATE = 0x9A
TAG_UNPREDICTABLE_NUMBER = 0x37
TAG_TERMINAL_ID = 0x1C
TAG_COUNTER = 0x36
TAG_CRYPTOGRAM = 0x26

IDENTIFICATION_CODE_BYTES = 16
NAME_MAX_BYTES = 30
SEX_CODES = frozenset({"0", "1", "2", "9"})


@dataclass(frozen=True, repr=False)
class CardIdentification:
    """EF05: what identifies the card itself. Readable without the PIN."""

    identification_code: bytes
    spec_version: str
    card_number: str

    @property
    def region_code(self) -> str:
        """The issuing region's administrative code (e.g. 330100), i.e. the insurance region."""
        return self.identification_code[:3].hex()

    @property
    def masked_card_number(self) -> str:
        return mask_tail(self.card_number)

    def __repr__(self) -> str:
        return (
            f"CardIdentification(region_code={self.region_code!r}, spec_version={self.spec_version!r}, "
            f"card_number={self.masked_card_number!r})"
        )


@dataclass(frozen=True, repr=False)
class CardHolder:
    """EF06: who the card belongs to. Only after the PIN."""

    citizen_id: str
    name: str
    sex: str
    birth_date: date

    @property
    def masked_citizen_id(self) -> str:
        return mask_tail(self.citizen_id)

    def __repr__(self) -> str:
        return f"CardHolder(citizen_id={self.masked_citizen_id!r}, name=<hidden>, sex=<hidden>)"


@dataclass(frozen=True)
class GenerateAcResponse:
    """The card's answer to GENERATE AC: its counter after this transaction and the cryptogram."""

    counter: int
    cryptogram: bytes


# ---- commands --------------------------------------------------------------------------------------


def select_application() -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_SELECT, 0x04, 0x00, APPLICATION_NAME_BYTES, le=256)


def read_record(sfi: int, record: int) -> CommandApdu:
    # P2 = SFI in the top five bits, 100 = "record number in P1".
    return CommandApdu(CLA_ISO, INS_READ_RECORD, record, (sfi << 3) | 0x04, le=256)


def encode_pin(pin: str) -> bytes:
    """Packed BCD, padded with an F nibble to whole bytes. Raises ``InvalidPinFormat``."""
    if not (pin.isascii() and pin.isdigit() and PIN_MIN_DIGITS <= len(pin) <= PIN_MAX_DIGITS):
        raise InvalidPinFormat(f"a PIN has {PIN_MIN_DIGITS}-{PIN_MAX_DIGITS} digits")
    return bytes.fromhex(pin + ("F" if len(pin) % 2 else ""))


def verify_pin(pin: str) -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_VERIFY, 0x00, 0x00, encode_pin(pin))


def get_challenge() -> CommandApdu:
    return CommandApdu(CLA_ISO, INS_GET_CHALLENGE, 0x00, 0x00, le=CHALLENGE_BYTES)


def internal_authenticate(challenge: bytes, key_reference: int) -> CommandApdu:
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError(f"the challenge has {CHALLENGE_BYTES} bytes")
    return CommandApdu(CLA_ISO, INS_INTERNAL_AUTHENTICATE, 0x00, key_reference, challenge, le=256)


def generate_ac_data(request: GenerateAcRequest) -> bytes:
    return encode_tlv(
        [
            (TAG_AMOUNT, request.amount_bytes()),
            (TAG_CURRENCY, request.currency_bytes()),
            (TAG_DATE, request.date_bytes()),
            (TAG_UNPREDICTABLE_NUMBER, request.unpredictable_number),
            (TAG_TERMINAL_ID, request.terminal_id_bytes()),
        ]
    )


def generate_ac(request: GenerateAcRequest) -> CommandApdu:
    return CommandApdu(CLA_PROPRIETARY, INS_GENERATE_AC, P1_GENERATE_AC_TC, 0x00, generate_ac_data(request), 256)


# ---- answers ---------------------------------------------------------------------------------------


def record_value(data: bytes, record: int) -> bytes:
    """The value of a READ RECORD answer: one TLV item whose tag is the record number."""
    items = decode_tlv(data)
    if set(items) != {record}:
        raise MalformedResponse(f"record {record:02X} answer holds tags {sorted(items)}")
    return items[record]


def _ascii(value: bytes, what: str) -> str:
    if not value.isascii():
        raise MalformedResponse(f"{what} is not ASCII")
    return value.decode("ascii")


def decode_bcd_date(value: bytes, what: str) -> date:
    digits = value.hex()
    if len(value) != 4 or not digits.isdigit():
        raise MalformedResponse(f"{what} is not 4 bytes of BCD")
    try:
        return date(int(digits[:4]), int(digits[4:6]), int(digits[6:8]))
    except ValueError:
        raise MalformedResponse(f"{what} is not a calendar date") from None


def parse_identification(records: dict[int, bytes]) -> CardIdentification:
    """EF05 from the values of its records (already unwrapped with ``record_value``)."""
    code = require(records, RECORD_CARD_IDENTIFICATION_CODE, length=IDENTIFICATION_CODE_BYTES, what="card id")
    version = _ascii(require(records, RECORD_SPEC_VERSION, length=4, what="spec version"), "spec version")
    number = _ascii(require(records, RECORD_CARD_NUMBER, what="card number"), "card number")
    if not (1 <= len(number) <= CARD_NUMBER_MAX_CHARS and number.isalnum()):
        raise MalformedResponse("card number is not 1-20 letters and digits")
    return CardIdentification(identification_code=code, spec_version=version, card_number=number)


def parse_holder(records: dict[int, bytes]) -> CardHolder:
    """EF06 from the values of its records."""
    citizen_id = _ascii(require(records, RECORD_CITIZEN_ID, what="citizen id"), "citizen id")
    if len(citizen_id) not in (15, 18) or not citizen_id.isalnum():
        raise MalformedResponse("citizen id is not 15 or 18 letters and digits")
    raw_name = require(records, RECORD_NAME, what="name")
    if not 1 <= len(raw_name) <= NAME_MAX_BYTES:
        raise MalformedResponse(f"name is not 1-{NAME_MAX_BYTES} bytes")
    try:
        name = raw_name.decode("gbk")
    except UnicodeDecodeError:
        raise MalformedResponse("name is not GBK text") from None
    sex = _ascii(require(records, RECORD_SEX, length=1, what="sex"), "sex")
    if sex not in SEX_CODES:
        raise MalformedResponse("sex is not a GB/T 2261.1 code")
    birth_date = decode_bcd_date(require(records, RECORD_BIRTH_DATE, what="birth date"), "birth date")
    return CardHolder(citizen_id=citizen_id, name=name, sex=sex, birth_date=birth_date)


def encode_identification(identification: CardIdentification) -> dict[int, bytes]:
    """The card side of ``parse_identification``: record number -> record value."""
    return {
        RECORD_CARD_IDENTIFICATION_CODE: identification.identification_code,
        RECORD_SPEC_VERSION: identification.spec_version.encode("ascii"),
        RECORD_CARD_NUMBER: identification.card_number.encode("ascii"),
    }


def encode_holder(holder: CardHolder) -> dict[int, bytes]:
    return {
        RECORD_CITIZEN_ID: holder.citizen_id.encode("ascii"),
        RECORD_NAME: holder.name.encode("gbk"),
        RECORD_SEX: holder.sex.encode("ascii"),
        RECORD_BIRTH_DATE: encode_bcd(holder.birth_date.strftime("%Y%m%d")),
    }


def parse_generate_ac_response(data: bytes) -> GenerateAcResponse:
    items = decode_tlv(data)
    counter = require(items, TAG_COUNTER, length=COUNTER_BYTES, what="transaction counter")
    cryptogram = require(items, TAG_CRYPTOGRAM, length=CRYPTOGRAM_BYTES, what="cryptogram")
    return GenerateAcResponse(counter=int.from_bytes(counter, "big"), cryptogram=cryptogram)


def encode_generate_ac_response(response: GenerateAcResponse) -> bytes:
    return encode_tlv(
        [(TAG_COUNTER, response.counter.to_bytes(COUNTER_BYTES, "big")), (TAG_CRYPTOGRAM, response.cryptogram)]
    )


def parse_generate_ac_data(data: bytes) -> GenerateAcRequest:
    """The card side of ``generate_ac_data``; ``MalformedResponse`` if a field is missing or invalid."""
    items = decode_tlv(data)
    amount = require(items, TAG_AMOUNT, length=6, what="amount")
    currency = require(items, TAG_CURRENCY, length=2, what="currency").hex()
    when = decode_bcd_date(require(items, TAG_DATE, what="date"), "date")
    unpredictable = require(items, TAG_UNPREDICTABLE_NUMBER, what="unpredictable number")
    terminal_id = _ascii(require(items, TAG_TERMINAL_ID, what="terminal id"), "terminal id")
    if not currency.isdigit():
        raise MalformedResponse("currency is not BCD")
    try:
        return GenerateAcRequest(
            amount_fen=int.from_bytes(amount, "big"),
            transaction_date=when,
            unpredictable_number=unpredictable,
            terminal_id=terminal_id,
            currency_code=int(currency),
        )
    except ValueError as exc:
        raise MalformedResponse(f"GENERATE AC data: {exc}") from None


def parse_internal_authenticate_response(data: bytes) -> bytes:
    if len(data) != CRYPTOGRAM_BYTES:
        raise MalformedResponse(f"INTERNAL AUTHENTICATE answer has {len(data)} bytes, expected 8")
    return data


def parse_challenge(data: bytes) -> bytes:
    if len(data) != CHALLENGE_BYTES:
        raise MalformedResponse(f"GET CHALLENGE answer has {len(data)} bytes, expected {CHALLENGE_BYTES}")
    return data
