"""The virtual citizen card's logic: answers command APDUs exactly as docs/card.md says a card does.

Owns the card-side state machine (selected application, verified PIN, PIN tries, transaction counter,
T=0 pending data) and nothing about transport: ``cardio.virtual_card`` carries its bytes to and from
vpcd, and fast tests call ``process`` directly. ``process`` never raises: every input, however broken,
gets a status word, as a real card's would.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field

from cardio import protocol
from cardio.apdu import (
    SW1_MORE_DATA,
    SW1_WRONG_LE,
    SW1_WRONG_PIN,
    SW_CLA_NOT_SUPPORTED,
    SW_CONDITIONS_NOT_SATISFIED,
    SW_FILE_NOT_FOUND,
    SW_INS_NOT_SUPPORTED,
    SW_OK,
    SW_PIN_BLOCKED,
    SW_RECORD_NOT_FOUND,
    SW_SECURITY_STATUS_NOT_SATISFIED,
    SW_WRONG_DATA,
    SW_WRONG_LENGTH,
    SW_WRONG_P1P2,
    CommandApdu,
    ResponseApdu,
)
from cardio.card_crypto import (
    KEY_REFERENCE_APPLICATION_CRYPTOGRAM,
    KEY_REFERENCE_INTERNAL_AUTHENTICATE,
    SoftwareKeySource,
    compute_cryptogram,
    internal_authenticate_response,
)
from cardio.errors import CardError
from cardio.limits import CHALLENGE_BYTES, MAX_RESPONSE_DATA_BYTES, MAX_TRANSACTION_COUNTER, PIN_TRIES
from cardio.protocol import CardHolder, CardIdentification, GenerateAcResponse
from cardio.tlv import encode_tlv

TAG_DF_NAME = 0x84  # in the SELECT answer, as in an ISO 7816 FCI


@dataclass
class CardPersonalisation:
    """What an issuer writes into a card: its records, its PIN, its keys and its counter."""

    identification: CardIdentification
    holder: CardHolder
    pin: str
    master_key: bytes  # the issuer master key the card keys are derived from (never on a real card)
    pin_tries_left: int = PIN_TRIES
    counter: int = 0
    card_keys: dict[int, bytes] = field(default_factory=dict)

    def __post_init__(self) -> None:
        protocol.encode_pin(self.pin)  # validates
        source = SoftwareKeySource(self.master_key)
        number = self.identification.card_number
        for reference in (KEY_REFERENCE_APPLICATION_CRYPTOGRAM, KEY_REFERENCE_INTERNAL_AUTHENTICATE):
            self.card_keys.setdefault(reference, source.derive_card_key(number, reference))


class CitizenCardApplet:
    """The card. ``t0_mode`` makes it answer 61xx / 6Cxx as a T=0 card does, so the reader must follow up."""

    def __init__(self, personalisation: CardPersonalisation, *, t0_mode: bool = False) -> None:
        self.card = personalisation
        self.t0_mode = t0_mode
        self._records = {
            protocol.SFI_CARD_IDENTIFICATION: protocol.encode_identification(personalisation.identification),
            protocol.SFI_HOLDER: protocol.encode_holder(personalisation.holder),
        }
        self._pin_bytes = protocol.encode_pin(personalisation.pin)
        self.reset()

    def reset(self) -> None:
        """Power on or reset: security state and selection are lost; tries left and counter are kept."""
        self.selected = False
        self.pin_verified = False
        self._pending = b""

    def process(self, raw: bytes) -> bytes:
        try:
            command = CommandApdu.from_bytes(raw)
        except CardError:
            return ResponseApdu.status(SW_WRONG_LENGTH).to_bytes()
        if command.ins == protocol.INS_GET_RESPONSE and command.cla == protocol.CLA_ISO:
            return self._get_response(command).to_bytes()
        self._pending = b""
        response = self._dispatch(command)
        return self._t0_shape(command, response).to_bytes()

    # ---- transport shaping ------------------------------------------------------------------------

    def _t0_shape(self, command: CommandApdu, response: ResponseApdu) -> ResponseApdu:
        if not (self.t0_mode and response.ok and response.data):
            return response
        if command.data:  # case 4 goes over T=0 as case 3: the data waits for GET RESPONSE
            self._pending = response.data
            return ResponseApdu.status((SW1_MORE_DATA << 8) | (len(response.data) % 256))
        if command.le != len(response.data):  # case 2 with the wrong Le
            return ResponseApdu.status((SW1_WRONG_LE << 8) | (len(response.data) % 256))
        return response

    def _get_response(self, command: CommandApdu) -> ResponseApdu:
        if not self._pending:
            return ResponseApdu.status(SW_CONDITIONS_NOT_SATISFIED)
        le = command.le or MAX_RESPONSE_DATA_BYTES
        chunk, self._pending = self._pending[:le], self._pending[le:]
        if self._pending:
            return ResponseApdu(chunk, SW1_MORE_DATA, len(self._pending) % 256)
        return ResponseApdu.status(SW_OK, chunk)

    # ---- commands ---------------------------------------------------------------------------------

    def _dispatch(self, command: CommandApdu) -> ResponseApdu:
        if command.cla not in (protocol.CLA_ISO, protocol.CLA_PROPRIETARY):
            return ResponseApdu.status(SW_CLA_NOT_SUPPORTED)
        if command.ins == protocol.INS_SELECT:
            return self._select(command)
        if not self.selected:
            return ResponseApdu.status(SW_FILE_NOT_FOUND)
        handlers = {
            protocol.INS_READ_RECORD: self._read_record,
            protocol.INS_VERIFY: self._verify,
            protocol.INS_GET_CHALLENGE: self._get_challenge,
            protocol.INS_INTERNAL_AUTHENTICATE: self._internal_authenticate,
            protocol.INS_GENERATE_AC: self._generate_ac,
        }
        handler = handlers.get(command.ins)
        if handler is None:
            return ResponseApdu.status(SW_INS_NOT_SUPPORTED)
        return handler(command)

    def _select(self, command: CommandApdu) -> ResponseApdu:
        self.selected = False
        self.pin_verified = False
        if command.p1 != 0x04 or command.data != protocol.APPLICATION_NAME_BYTES:
            return ResponseApdu.status(SW_FILE_NOT_FOUND)
        self.selected = True
        return ResponseApdu.status(SW_OK, encode_tlv([(TAG_DF_NAME, protocol.APPLICATION_NAME_BYTES)]))

    def _read_record(self, command: CommandApdu) -> ResponseApdu:
        if command.p2 & 0x07 != 0x04:
            return ResponseApdu.status(SW_WRONG_P1P2)
        records = self._records.get(command.p2 >> 3)
        if records is None:
            return ResponseApdu.status(SW_FILE_NOT_FOUND)
        if command.p2 >> 3 == protocol.SFI_HOLDER and not self.pin_verified:
            return ResponseApdu.status(SW_SECURITY_STATUS_NOT_SATISFIED)
        value = records.get(command.p1)
        if value is None:
            return ResponseApdu.status(SW_RECORD_NOT_FOUND)
        return ResponseApdu.status(SW_OK, encode_tlv([(command.p1, value)]))

    def _verify(self, command: CommandApdu) -> ResponseApdu:
        card = self.card
        if card.pin_tries_left <= 0:
            return ResponseApdu.status(SW_PIN_BLOCKED)
        if not command.data:  # VERIFY without data asks how many tries are left
            return ResponseApdu.status((SW1_WRONG_PIN << 8) | 0xC0 | card.pin_tries_left)
        if secrets.compare_digest(command.data, self._pin_bytes):
            card.pin_tries_left = PIN_TRIES
            self.pin_verified = True
            return ResponseApdu.status(SW_OK)
        card.pin_tries_left -= 1
        self.pin_verified = False
        return ResponseApdu.status((SW1_WRONG_PIN << 8) | 0xC0 | card.pin_tries_left)

    def _get_challenge(self, command: CommandApdu) -> ResponseApdu:
        return ResponseApdu.status(SW_OK, secrets.token_bytes(CHALLENGE_BYTES))

    def _internal_authenticate(self, command: CommandApdu) -> ResponseApdu:
        key = self.card.card_keys.get(command.p2)
        if command.p2 != KEY_REFERENCE_INTERNAL_AUTHENTICATE or key is None:
            return ResponseApdu.status(SW_WRONG_P1P2)
        if len(command.data) != CHALLENGE_BYTES:
            return ResponseApdu.status(SW_WRONG_LENGTH)
        return ResponseApdu.status(SW_OK, internal_authenticate_response(key, command.data))

    def _generate_ac(self, command: CommandApdu) -> ResponseApdu:
        if command.cla != protocol.CLA_PROPRIETARY or command.p1 != protocol.P1_GENERATE_AC_TC:
            return ResponseApdu.status(SW_WRONG_P1P2)
        if not self.pin_verified:
            return ResponseApdu.status(SW_SECURITY_STATUS_NOT_SATISFIED)
        try:
            request = protocol.parse_generate_ac_data(command.data)
        except CardError:
            return ResponseApdu.status(SW_WRONG_DATA)
        if self.card.counter >= MAX_TRANSACTION_COUNTER:
            return ResponseApdu.status(SW_CONDITIONS_NOT_SATISFIED)  # a worn-out card signs nothing
        self.card.counter += 1
        key = self.card.card_keys[KEY_REFERENCE_APPLICATION_CRYPTOGRAM]
        cryptogram = compute_cryptogram(key, request, self.card.counter)
        answer = GenerateAcResponse(counter=self.card.counter, cryptogram=cryptogram)
        return ResponseApdu.status(SW_OK, protocol.encode_generate_ac_response(answer))
