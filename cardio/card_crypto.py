"""The card-present proof: key derivation and the GENERATE AC cryptogram, shared by card and server.

Owns the exact algorithm (docs/card.md, "Cryptogram") and nothing else: the virtual card computes with
it, the settlement engine recomputes with it. It must never import pyscard, and never log or return a
key. Keys come from an ``IssuerKeySource``: ``SoftwareKeySource`` for development and tests; production
plugs in an HSM behind the same one-method interface, so the issuer master key never leaves it.

    card key     = KBKDF-CMAC-AES(master key, label "CITIZEN-CARD-KEY",
                                  context key reference (1 byte) || card number (ASCII))      16 bytes
    session key  = KBKDF-CMAC-AES(card key, label "AC-SESSION-KEY", context counter (2 bytes BE))
    cryptogram   = AES-CMAC(session key, amount || currency || date || UN || terminal id || counter)[:8]

KBKDF is NIST SP 800-108 counter mode (32-bit counter before the fixed data, 32-bit length).
"""

from __future__ import annotations

import hmac
from abc import ABC, abstractmethod
from dataclasses import dataclass
from datetime import date

from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from cryptography.hazmat.primitives.kdf.kbkdf import KBKDFCMAC, CounterLocation, Mode

from cardio.limits import (
    AMOUNT_FIELD_BYTES,
    CARD_NUMBER_MAX_CHARS,
    CHALLENGE_BYTES,
    COUNTER_BYTES,
    CRYPTOGRAM_BYTES,
    MAX_AMOUNT_FEN,
    MAX_TRANSACTION_COUNTER,
    TERMINAL_ID_MAX_BYTES,
    UNPREDICTABLE_NUMBER_BYTES,
)

# Key references: which per-card key a derivation is for. The card holds one key per reference.
KEY_REFERENCE_APPLICATION_CRYPTOGRAM = 0x01  # GENERATE AC
KEY_REFERENCE_INTERNAL_AUTHENTICATE = 0x02  # INTERNAL AUTHENTICATE

CURRENCY_CNY = 156  # ISO 4217 numeric
CARD_KEY_BYTES = 16
_CARD_KEY_LABEL = b"CITIZEN-CARD-KEY"
_SESSION_KEY_LABEL = b"AC-SESSION-KEY"
_INTERNAL_AUTHENTICATE_PREFIX = b"INTERNAL-AUTH"
_MASTER_KEY_SIZES = (16, 24, 32)


class IssuerKeySource(ABC):
    """Derives per-card keys from the issuer master key. An HSM adapter implements this one method."""

    @abstractmethod
    def derive_card_key(self, card_number: str, key_reference: int) -> bytes:
        """The 16-byte key of card ``card_number`` for ``key_reference``."""


class SoftwareKeySource(IssuerKeySource):
    """The master key held in process memory: development, tests and the virtual card only."""

    def __init__(self, master_key: bytes) -> None:
        if len(master_key) not in _MASTER_KEY_SIZES:
            raise ValueError(f"an AES master key has 16, 24 or 32 bytes, not {len(master_key)}")
        self._master_key = bytes(master_key)

    def derive_card_key(self, card_number: str, key_reference: int) -> bytes:
        return derive_card_key(self._master_key, card_number, key_reference)

    def __repr__(self) -> str:  # never show the key
        return "SoftwareKeySource(<master key hidden>)"


def _kbkdf_cmac(key: bytes, label: bytes, context: bytes) -> bytes:
    kdf = KBKDFCMAC(
        algorithms.AES,
        Mode.CounterMode,
        CARD_KEY_BYTES,
        4,  # rlen: 32-bit block counter
        4,  # llen: 32-bit output length
        CounterLocation.BeforeFixed,
        label,
        context,
        None,
    )
    return kdf.derive(key)


def _card_number_bytes(card_number: str) -> bytes:
    if not 1 <= len(card_number) <= CARD_NUMBER_MAX_CHARS or not card_number.isascii():
        raise ValueError(f"a card number has 1-{CARD_NUMBER_MAX_CHARS} ASCII characters")
    if not card_number.isalnum():
        raise ValueError("a card number has letters and digits only")
    return card_number.encode("ascii")


def derive_card_key(master_key: bytes, card_number: str, key_reference: int) -> bytes:
    """Per-card key: what the issuer personalises into the card, and what a key source recomputes."""
    if not 0 <= key_reference <= 0xFF:
        raise ValueError(f"key reference {key_reference} does not fit one byte")
    context = bytes((key_reference,)) + _card_number_bytes(card_number)
    return _kbkdf_cmac(master_key, _CARD_KEY_LABEL, context)


def derive_session_key(card_key: bytes, counter: int) -> bytes:
    """One key per transaction counter value, so a leaked session key proves nothing about another."""
    _check_counter(counter)
    return _kbkdf_cmac(card_key, _SESSION_KEY_LABEL, counter.to_bytes(COUNTER_BYTES, "big"))


def _check_counter(counter: int) -> None:
    if not 0 <= counter <= MAX_TRANSACTION_COUNTER:
        raise ValueError(f"transaction counter {counter} is outside 0..{MAX_TRANSACTION_COUNTER}")


def _cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def encode_bcd(digits: str) -> bytes:
    """Packed BCD of an even number of decimal digits."""
    if len(digits) % 2 or not digits.isascii() or not digits.isdigit():
        raise ValueError("BCD needs an even number of decimal digits")
    return bytes.fromhex(digits)


@dataclass(frozen=True)
class GenerateAcRequest:
    """What the card signs: the amount, in fen, for this terminal, today, against the server's challenge."""

    amount_fen: int
    transaction_date: date
    unpredictable_number: bytes
    terminal_id: str
    currency_code: int = CURRENCY_CNY

    def __post_init__(self) -> None:
        if not 0 <= self.amount_fen <= MAX_AMOUNT_FEN:
            raise ValueError(f"amount_fen {self.amount_fen} is outside 0..{MAX_AMOUNT_FEN}")
        if not 0 <= self.currency_code <= 999:
            raise ValueError(f"currency code {self.currency_code} is not an ISO 4217 numeric code")
        if len(self.unpredictable_number) != UNPREDICTABLE_NUMBER_BYTES:
            raise ValueError(f"the unpredictable number has {UNPREDICTABLE_NUMBER_BYTES} bytes")
        self.terminal_id_bytes()  # validates

    def amount_bytes(self) -> bytes:
        return self.amount_fen.to_bytes(AMOUNT_FIELD_BYTES, "big")

    def currency_bytes(self) -> bytes:
        return encode_bcd(f"{self.currency_code:04d}")

    def date_bytes(self) -> bytes:
        return encode_bcd(self.transaction_date.strftime("%Y%m%d"))

    def terminal_id_bytes(self) -> bytes:
        tid = self.terminal_id
        if not 1 <= len(tid) <= TERMINAL_ID_MAX_BYTES or not tid.isascii() or not tid.isprintable():
            raise ValueError(f"a terminal id has 1-{TERMINAL_ID_MAX_BYTES} printable ASCII characters")
        return tid.encode("ascii")

    def mac_input(self, counter: int) -> bytes:
        """The exact bytes the cryptogram covers (docs/card.md); the terminal id is length-prefixed."""
        _check_counter(counter)
        tid = self.terminal_id_bytes()
        return (
            self.amount_bytes()
            + self.currency_bytes()
            + self.date_bytes()
            + self.unpredictable_number
            + bytes((len(tid),))
            + tid
            + counter.to_bytes(COUNTER_BYTES, "big")
        )


def compute_cryptogram(card_key: bytes, request: GenerateAcRequest, counter: int) -> bytes:
    """The 8-byte application cryptogram the card returns for ``request`` at ``counter``."""
    session_key = derive_session_key(card_key, counter)
    return _cmac(session_key, request.mac_input(counter))[:CRYPTOGRAM_BYTES]


def verify_cryptogram(
    key_source: IssuerKeySource,
    card_number: str,
    request: GenerateAcRequest,
    counter: int,
    cryptogram: bytes,
) -> bool:
    """True when ``cryptogram`` is the card's answer to ``request`` at ``counter``; constant-time compare.

    ``counter`` and ``cryptogram`` come off the wire, so a malformed one is simply not valid (False).
    ``request`` is the server's own quote and must be well formed. Checking that the counter grew and the
    unpredictable number is fresh is the caller's job: this proves only who signed what.
    """
    if len(cryptogram) != CRYPTOGRAM_BYTES or not 0 <= counter <= MAX_TRANSACTION_COUNTER:
        return False
    card_key = key_source.derive_card_key(card_number, KEY_REFERENCE_APPLICATION_CRYPTOGRAM)
    expected = compute_cryptogram(card_key, request, counter)
    return hmac.compare_digest(expected, cryptogram)


def internal_authenticate_response(card_key: bytes, challenge: bytes) -> bytes:
    """The card's 8-byte answer to INTERNAL AUTHENTICATE: proves it holds its key, signs no amount."""
    if len(challenge) != CHALLENGE_BYTES:
        raise ValueError(f"the challenge has {CHALLENGE_BYTES} bytes")
    return _cmac(card_key, _INTERNAL_AUTHENTICATE_PREFIX + challenge)[:CRYPTOGRAM_BYTES]


def verify_internal_authenticate(
    key_source: IssuerKeySource, card_number: str, challenge: bytes, response: bytes
) -> bool:
    if len(challenge) != CHALLENGE_BYTES or len(response) != CRYPTOGRAM_BYTES:
        return False
    card_key = key_source.derive_card_key(card_number, KEY_REFERENCE_INTERNAL_AUTHENTICATE)
    return hmac.compare_digest(internal_authenticate_response(card_key, challenge), response)
