"""The reader's side of the citizen-card flow: select, read, verify the PIN, sign an amount.

Owns the mapping from the card's status words to the documented errors, per command, and the order of
steps. Works over an ``ApduExchange`` so the same code runs on PC/SC and on the scripted fake. Every
method either returns parsed data or raises a ``CardError``; a status word it does not expect is an
``UnexpectedStatusWord`` naming the command, never a silent success.
"""

from __future__ import annotations

from dataclasses import dataclass

from cardio import protocol
from cardio.apdu import (
    SW_FILE_NOT_FOUND,
    SW_PIN_BLOCKED,
    SW_SECURITY_STATUS_NOT_SATISFIED,
    CommandApdu,
    ResponseApdu,
    wrong_pin_tries_left,
)
from cardio.apdu_log import command_name
from cardio.card_crypto import KEY_REFERENCE_INTERNAL_AUTHENTICATE, GenerateAcRequest
from cardio.errors import (
    NotACitizenCard,
    PinBlocked,
    PinRequired,
    UnexpectedStatusWord,
    WrongPin,
)
from cardio.protocol import CardHolder, CardIdentification, GenerateAcResponse
from cardio.reader import ApduExchange


@dataclass(frozen=True, repr=True)
class CitizenCardData:
    """Everything the desk reads from a card after the PIN."""

    identification: CardIdentification
    holder: CardHolder


class CitizenCard:
    """The social-security application on one connected card."""

    def __init__(self, exchange: ApduExchange) -> None:
        self._exchange = exchange

    def _ok(self, command: CommandApdu) -> ResponseApdu:
        response = self._exchange.transmit(command)
        if response.ok:
            return response
        sw = response.status_word
        if sw == SW_SECURITY_STATUS_NOT_SATISFIED:
            raise PinRequired(f"{command_name(command)} needs the PIN first (6982)")
        if sw == SW_PIN_BLOCKED:
            raise PinBlocked("the PIN is blocked (6983)")
        raise UnexpectedStatusWord(f"{command_name(command)} answered {sw:04X}", status_word=sw)

    def select_application(self) -> None:
        """Select ``sx1.sh.社会保障``; ``NotACitizenCard`` if the card has no such application."""
        response = self._exchange.transmit(protocol.select_application())
        if response.status_word == SW_FILE_NOT_FOUND:
            raise NotACitizenCard("the card has no social-security application (6A82)")
        if not response.ok:
            raise UnexpectedStatusWord(f"SELECT answered {response.status_word:04X}", status_word=response.status_word)

    def _read_records(self, sfi: int, records: tuple[int, ...]) -> dict[int, bytes]:
        values: dict[int, bytes] = {}
        for record in records:
            response = self._ok(protocol.read_record(sfi, record))
            values[record] = protocol.record_value(response.data, record)
        return values

    def read_identification(self) -> CardIdentification:
        """EF05: card identification code, spec version, card number. No PIN needed."""
        records = self._read_records(protocol.SFI_CARD_IDENTIFICATION, protocol.EF05_RECORDS)
        return protocol.parse_identification(records)

    def verify_pin(self, pin: str) -> None:
        """Raises ``InvalidPinFormat``, ``WrongPin`` (with ``tries_left``) or ``PinBlocked``."""
        response = self._exchange.transmit(protocol.verify_pin(pin))
        sw = response.status_word
        if response.ok:
            return
        tries_left = wrong_pin_tries_left(sw)
        if tries_left == 0 or sw == SW_PIN_BLOCKED:
            raise PinBlocked("the PIN is blocked: no tries left")
        if tries_left is not None:
            raise WrongPin(f"wrong PIN, {tries_left} tries left", tries_left=tries_left)
        raise UnexpectedStatusWord(f"VERIFY answered {sw:04X}", status_word=sw)

    def read_holder(self) -> CardHolder:
        """EF06: citizen ID, name, sex, birth date. ``PinRequired`` before ``verify_pin``."""
        records = self._read_records(protocol.SFI_HOLDER, protocol.EF06_RECORDS)
        return protocol.parse_holder(records)

    def get_challenge(self) -> bytes:
        return protocol.parse_challenge(self._ok(protocol.get_challenge()).data)

    def internal_authenticate(
        self, challenge: bytes, key_reference: int = KEY_REFERENCE_INTERNAL_AUTHENTICATE
    ) -> bytes:
        """The card's MAC over ``challenge``: proves the card holds its issuer-derived key."""
        command = protocol.internal_authenticate(challenge, key_reference)
        return protocol.parse_internal_authenticate_response(self._ok(command).data)

    def generate_ac(self, request: GenerateAcRequest) -> GenerateAcResponse:
        """Have the card sign ``request``; its counter grows by one. Needs the PIN on this connection."""
        return protocol.parse_generate_ac_response(self._ok(protocol.generate_ac(request)).data)


def read_citizen_card(exchange: ApduExchange, pin: str) -> CitizenCardData:
    """The desk's PIN-and-read flow on one connection: select, EF05, VERIFY, EF06."""
    card = CitizenCard(exchange)
    card.select_application()
    identification = card.read_identification()
    card.verify_pin(pin)
    holder = card.read_holder()
    return CitizenCardData(identification=identification, holder=holder)
