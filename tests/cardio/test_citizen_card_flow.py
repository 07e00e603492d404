"""The citizen-card flow against the in-process card and the scripted fake reader: fast, no pcscd."""

from __future__ import annotations

import time
from datetime import date

import pytest
from cardio_testdata import CARD_NUMBER, CITIZEN_ID, MASTER_KEY, PIN, personalisation
from hypothesis import given, settings
from hypothesis import strategies as st

from cardio import protocol
from cardio.apdu import CommandApdu, ResponseApdu
from cardio.applet import CitizenCardApplet
from cardio.card_crypto import GenerateAcRequest, SoftwareKeySource, verify_cryptogram, verify_internal_authenticate
from cardio.citizen_card import CitizenCard, read_citizen_card
from cardio.errors import (
    CardError,
    CardRemoved,
    CardTimeout,
    InvalidPinFormat,
    MalformedResponse,
    NoCard,
    NoReader,
    NotACitizenCard,
    PinBlocked,
    PinRequired,
    UnexpectedStatusWord,
    WrongPin,
)
from cardio.fake_reader import ScriptedCardReader, scripted
from cardio.reader import ApduExchange

READER = "Fake Reader 00 00"
REQUEST = GenerateAcRequest(
    amount_fen=8_800, transaction_date=date(2024, 5, 1), unpredictable_number=bytes(range(8)), terminal_id="DESK0001"
)


def exchange_with(responder, *, timeout_ms: int = 5_000) -> ApduExchange:  # type: ignore[no-untyped-def]
    reader = ScriptedCardReader([READER])
    reader.insert(READER, responder)
    return ApduExchange(reader.connect(reader.wait_for_card(timeout_ms=0)), timeout_ms=timeout_ms)


def answers(*hex_answers: str) -> list[bytes | CardError]:
    return [bytes.fromhex(answer) for answer in hex_answers]


@pytest.mark.parametrize("t0_mode", [False, True], ids=["T=1", "T=0"])
def test_pin_then_read_gives_the_holder_data(t0_mode: bool) -> None:
    data = read_citizen_card(exchange_with(CitizenCardApplet(personalisation(), t0_mode=t0_mode).process), PIN)
    assert data.identification.card_number == CARD_NUMBER
    assert data.identification.region_code == "330100"
    assert data.identification.spec_version == "3.00"
    assert (data.holder.citizen_id, data.holder.name, data.holder.sex) == (CITIZEN_ID, "张三", "1")
    assert data.holder.birth_date == date(1990, 1, 1)


def test_a_t0_card_makes_the_exchange_follow_up_with_get_response_and_the_right_le() -> None:
    applet = CitizenCardApplet(personalisation(), t0_mode=True)
    reader = ScriptedCardReader([READER])
    reader.insert(READER, applet.process)
    channel = reader.connect(READER)
    read_citizen_card(ApduExchange(channel), PIN)
    sent = [CommandApdu.from_bytes(raw) for raw in channel.sent]  # type: ignore[attr-defined]
    assert sent[1].ins == protocol.INS_GET_RESPONSE  # after SELECT answered 61xx
    assert (sent[2].ins, sent[2].le, sent[3].ins) == (protocol.INS_READ_RECORD, 256, protocol.INS_READ_RECORD)
    assert sent[3].le == 18  # re-sent with the length the card named in 6C12


def test_the_signed_amount_verifies_with_the_issuer_key_and_the_counter_grows() -> None:
    exchange = exchange_with(CitizenCardApplet(personalisation(counter=41)).process)
    read_citizen_card(exchange, PIN)
    card = CitizenCard(exchange)
    first, second = card.generate_ac(REQUEST), card.generate_ac(REQUEST)
    assert (first.counter, second.counter) == (42, 43)
    source = SoftwareKeySource(MASTER_KEY)
    assert verify_cryptogram(source, CARD_NUMBER, REQUEST, first.counter, first.cryptogram)
    assert first.cryptogram != second.cryptogram


def test_internal_authenticate_answers_a_fresh_challenge() -> None:
    exchange = exchange_with(CitizenCardApplet(personalisation()).process)
    card = CitizenCard(exchange)
    card.select_application()
    challenge = card.get_challenge()
    response = card.internal_authenticate(challenge)
    assert verify_internal_authenticate(SoftwareKeySource(MASTER_KEY), CARD_NUMBER, challenge, response)
    assert card.get_challenge() != challenge


def test_wrong_pin_three_times_blocks_the_card() -> None:
    applet = CitizenCardApplet(personalisation())
    card = CitizenCard(exchange_with(applet.process))
    card.select_application()
    for tries_left in (2, 1):
        with pytest.raises(WrongPin) as wrong:
            card.verify_pin("000000")
        assert wrong.value.tries_left == tries_left
    with pytest.raises(PinBlocked):
        card.verify_pin("000000")
    with pytest.raises(PinBlocked):
        card.verify_pin(PIN)  # the right PIN no longer helps
    assert applet.card.pin_tries_left == 0


def test_the_right_pin_resets_the_tries() -> None:
    applet = CitizenCardApplet(personalisation())
    card = CitizenCard(exchange_with(applet.process))
    card.select_application()
    with pytest.raises(WrongPin):
        card.verify_pin("000000")
    card.verify_pin(PIN)
    assert applet.card.pin_tries_left == 3


def test_holder_data_and_signing_need_the_pin_first() -> None:
    card = CitizenCard(exchange_with(CitizenCardApplet(personalisation()).process))
    card.select_application()
    card.read_identification()
    with pytest.raises(PinRequired):
        card.read_holder()
    with pytest.raises(PinRequired):
        card.generate_ac(REQUEST)


def test_a_pin_with_letters_never_reaches_the_card() -> None:
    reader = ScriptedCardReader([READER])
    reader.insert(READER, scripted(answers("9000")))
    channel = reader.connect(READER)
    with pytest.raises(InvalidPinFormat):
        CitizenCard(ApduExchange(channel)).verify_pin("12a4")
    assert channel.sent == []  # type: ignore[attr-defined]


def test_a_card_without_the_application_is_not_a_citizen_card() -> None:
    with pytest.raises(NotACitizenCard):
        CitizenCard(exchange_with(scripted(answers("6A82")))).select_application()


def test_an_unexpected_status_word_names_the_command() -> None:
    with pytest.raises(UnexpectedStatusWord, match="READ RECORD answered 6A83") as error:
        CitizenCard(exchange_with(scripted(answers("6A83")))).read_identification()
    assert error.value.status_word == 0x6A83


def test_a_pulled_card_is_reported_as_removed() -> None:
    reader = ScriptedCardReader([READER])
    reader.insert(READER, CitizenCardApplet(personalisation()).process)
    card = CitizenCard(ApduExchange(reader.connect(READER)))
    card.select_application()
    reader.remove(READER)
    with pytest.raises(CardRemoved):
        card.read_identification()


def test_get_response_chains_are_assembled_in_order() -> None:
    exchange = exchange_with(scripted(answers("61FF", "AABB6102", "CCDD9000")))
    response = exchange.transmit(protocol.get_challenge())
    assert response == ResponseApdu(bytes.fromhex("AABBCCDD"), 0x90, 0x00)


def test_a_card_that_never_stops_asking_for_follow_ups_is_malformed() -> None:
    with pytest.raises(MalformedResponse, match="follow-ups"):
        exchange_with(scripted(answers(*["6108"] * 20))).transmit(protocol.get_challenge())


def test_the_exchange_deadline_covers_the_follow_ups() -> None:
    def slow(command: bytes) -> bytes:
        time.sleep(0.06)
        return bytes.fromhex("6108")

    started = time.monotonic()
    with pytest.raises(CardTimeout):
        exchange_with(slow, timeout_ms=100).transmit(protocol.get_challenge())
    assert time.monotonic() - started < 0.3


@settings(max_examples=300)
@given(st.lists(st.binary(max_size=40), max_size=12))
def test_the_flow_raises_only_documented_errors_whatever_the_card_answers(card_answers: list[bytes]) -> None:
    exchange = exchange_with(scripted([*card_answers, CardRemoved("script ran out")]))
    try:
        read_citizen_card(exchange, PIN)
        CitizenCard(exchange).generate_ac(REQUEST)
    except CardError:
        pass


@given(st.binary(max_size=300))
def test_the_virtual_card_answers_any_bytes_with_a_status_word(command: bytes) -> None:
    applet = CitizenCardApplet(personalisation(), t0_mode=True)
    applet.process(protocol.select_application().to_bytes())
    assert len(applet.process(command)) >= 2


def test_a_reset_forgets_the_pin_but_not_the_tries_or_the_counter() -> None:
    applet = CitizenCardApplet(personalisation())
    exchange = exchange_with(applet.process)
    card = CitizenCard(exchange)
    card.select_application()
    with pytest.raises(WrongPin):
        card.verify_pin("000000")
    card.verify_pin(PIN)
    card.generate_ac(REQUEST)
    applet.reset()
    card.select_application()
    with pytest.raises(PinRequired):
        card.read_holder()
    assert (applet.card.pin_tries_left, applet.card.counter) == (3, 1)


def test_a_worn_out_counter_signs_nothing() -> None:
    exchange = exchange_with(CitizenCardApplet(personalisation(counter=0xFFFF)).process)
    read_citizen_card(exchange, PIN)
    with pytest.raises(UnexpectedStatusWord, match="6985"):
        CitizenCard(exchange).generate_ac(REQUEST)


def test_waiting_on_the_fake_reader_honours_its_timeout_and_reader_names() -> None:
    reader = ScriptedCardReader([READER])
    started = time.monotonic()
    with pytest.raises(NoCard):
        reader.wait_for_card(timeout_ms=50)
    assert 0.04 < time.monotonic() - started < 0.5
    with pytest.raises(NoReader):
        reader.wait_for_card("Other Reader", timeout_ms=0)


def test_logged_apdus_never_show_the_pin_or_full_numbers(caplog: pytest.LogCaptureFixture) -> None:
    read_citizen_card(exchange_with(CitizenCardApplet(personalisation(), t0_mode=True).process), PIN)
    assert "<PIN hidden" in caplog.text
    assert "*****5678" in caplog.text
    assert "<holder record hidden" in caplog.text
    # the autouse fixture in conftest.py scans the rest
