"""The card-present proof: the same bytes on the card and on the server, and nothing else verifies."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import pytest
from cryptography.hazmat.primitives.ciphers import algorithms
from cryptography.hazmat.primitives.cmac import CMAC
from hypothesis import given
from hypothesis import strategies as st

from cardio.card_crypto import (
    KEY_REFERENCE_APPLICATION_CRYPTOGRAM,
    KEY_REFERENCE_INTERNAL_AUTHENTICATE,
    GenerateAcRequest,
    IssuerKeySource,
    SoftwareKeySource,
    compute_cryptogram,
    derive_card_key,
    derive_session_key,
    internal_authenticate_response,
    verify_cryptogram,
    verify_internal_authenticate,
)

MASTER_KEY = bytes.fromhex("00112233445566778899AABBCCDDEEFF")
REQUEST = GenerateAcRequest(
    amount_fen=12345,
    transaction_date=date(2024, 5, 1),
    unpredictable_number=bytes.fromhex("0102030405060708"),
    terminal_id="DESK0001",
)


def card_key(card_number: str = "A12345678") -> bytes:
    return derive_card_key(MASTER_KEY, card_number, KEY_REFERENCE_APPLICATION_CRYPTOGRAM)


def cmac(key: bytes, message: bytes) -> bytes:
    mac = CMAC(algorithms.AES(key))
    mac.update(message)
    return mac.finalize()


def test_the_known_answer_vector_of_docs_card_md_holds() -> None:
    key = card_key()
    assert key.hex().upper() == "589E8845FAE83139387448F6F123F0A5"
    assert derive_session_key(key, 1).hex().upper() == "8BE52F4C788CE2D96BACA6C57302C2F1"
    assert REQUEST.mac_input(1).hex().upper() == "0000000030390156202405010102030405060708084445534B303030310001"
    assert compute_cryptogram(key, REQUEST, 1).hex().upper() == "FAB89ACF00CE4270"


def test_the_key_derivation_is_plain_sp800_108_counter_mode_with_cmac() -> None:
    # Recomputed by hand, so an HSM vendor can implement it from docs/card.md alone.
    fixed = b"CITIZEN-CARD-KEY" + b"\x00" + b"\x01" + b"A12345678" + (128).to_bytes(4, "big")
    assert card_key() == cmac(MASTER_KEY, (1).to_bytes(4, "big") + fixed)
    session_fixed = b"AC-SESSION-KEY" + b"\x00" + (7).to_bytes(2, "big") + (128).to_bytes(4, "big")
    assert derive_session_key(card_key(), 7) == cmac(card_key(), (1).to_bytes(4, "big") + session_fixed)


def test_a_cryptogram_verifies_on_the_server_with_the_same_master_key() -> None:
    cryptogram = compute_cryptogram(card_key(), REQUEST, 5)
    assert verify_cryptogram(SoftwareKeySource(MASTER_KEY), "A12345678", REQUEST, 5, cryptogram)


@pytest.mark.parametrize(
    "tampered",
    [
        replace(REQUEST, amount_fen=REQUEST.amount_fen + 1),
        replace(REQUEST, transaction_date=date(2024, 5, 2)),
        replace(REQUEST, unpredictable_number=bytes.fromhex("0102030405060709")),
        replace(REQUEST, terminal_id="DESK0002"),
        replace(REQUEST, currency_code=840),
    ],
    ids=["amount plus one fen", "other date", "other challenge", "other terminal", "other currency"],
)
def test_a_cryptogram_does_not_verify_for_anything_but_what_was_signed(tampered: GenerateAcRequest) -> None:
    cryptogram = compute_cryptogram(card_key(), REQUEST, 5)
    assert not verify_cryptogram(SoftwareKeySource(MASTER_KEY), "A12345678", tampered, 5, cryptogram)


def test_a_cryptogram_does_not_verify_for_another_card_counter_or_master_key() -> None:
    cryptogram = compute_cryptogram(card_key(), REQUEST, 5)
    source = SoftwareKeySource(MASTER_KEY)
    assert not verify_cryptogram(source, "A12345679", REQUEST, 5, cryptogram)
    assert not verify_cryptogram(source, "A12345678", REQUEST, 6, cryptogram)
    assert not verify_cryptogram(SoftwareKeySource(bytes(16)), "A12345678", REQUEST, 5, cryptogram)


@given(st.binary(max_size=20), st.integers(-5, 70_000))
def test_verifying_wire_garbage_is_false_not_an_exception(cryptogram: bytes, counter: int) -> None:
    assert not verify_cryptogram(SoftwareKeySource(MASTER_KEY), "A12345678", REQUEST, counter, cryptogram) or (
        cryptogram == compute_cryptogram(card_key(), REQUEST, counter)
    )


def test_terminal_ids_of_different_lengths_cannot_collide() -> None:
    # Length-prefixed, so ("AB", counter) and ("ABx", ...) never share MAC input bytes.
    short = replace(REQUEST, terminal_id="AB").mac_input(0x4344)
    longer = replace(REQUEST, terminal_id="ABC").mac_input(0x44)
    assert short != longer


def test_card_keys_differ_per_card_and_per_key_reference() -> None:
    keys = {
        derive_card_key(MASTER_KEY, number, reference)
        for number in ("A12345678", "A12345679")
        for reference in (KEY_REFERENCE_APPLICATION_CRYPTOGRAM, KEY_REFERENCE_INTERNAL_AUTHENTICATE)
    }
    assert len(keys) == 4


def test_internal_authenticate_proves_the_card_holds_its_issuer_key() -> None:
    challenge = bytes.fromhex("1122334455667788")
    key = derive_card_key(MASTER_KEY, "A12345678", KEY_REFERENCE_INTERNAL_AUTHENTICATE)
    response = internal_authenticate_response(key, challenge)
    source = SoftwareKeySource(MASTER_KEY)
    assert verify_internal_authenticate(source, "A12345678", challenge, response)
    assert not verify_internal_authenticate(source, "A12345679", challenge, response)


def test_an_hsm_can_stand_in_for_the_software_key_source() -> None:
    class CountingHsm(IssuerKeySource):
        def __init__(self) -> None:
            self.calls: list[tuple[str, int]] = []

        def derive_card_key(self, card_number: str, key_reference: int) -> bytes:
            self.calls.append((card_number, key_reference))
            return derive_card_key(MASTER_KEY, card_number, key_reference)

    hsm = CountingHsm()
    assert verify_cryptogram(hsm, "A12345678", REQUEST, 1, compute_cryptogram(card_key(), REQUEST, 1))
    assert hsm.calls == [("A12345678", KEY_REFERENCE_APPLICATION_CRYPTOGRAM)]


def test_the_software_key_source_refuses_a_short_key_and_never_shows_it() -> None:
    with pytest.raises(ValueError, match="16, 24 or 32"):
        SoftwareKeySource(bytes(8))
    assert MASTER_KEY.hex() not in repr(SoftwareKeySource(MASTER_KEY)).lower()


@pytest.mark.parametrize(
    "fields",
    [
        {"amount_fen": -1},
        {"amount_fen": 2**48},
        {"unpredictable_number": bytes(7)},
        {"terminal_id": ""},
        {"terminal_id": "X" * 17},
        {"terminal_id": "收费窗口"},
        {"currency_code": 1000},
    ],
)
def test_a_request_the_card_cannot_sign_is_refused_when_built(fields: dict[str, object]) -> None:
    with pytest.raises(ValueError):  # noqa: PT011 - the message differs per field
        replace(REQUEST, **fields)  # type: ignore[arg-type]
