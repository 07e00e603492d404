"""APDU and TLV bytes: building, parsing, and never crashing on what a card may send."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cardio import protocol
from cardio.apdu import CommandApdu, ResponseApdu, wrong_pin_tries_left
from cardio.errors import CardError, MalformedResponse
from cardio.tlv import decode_tlv, encode_tlv

commands = st.builds(
    CommandApdu,
    cla=st.integers(0, 255),
    ins=st.integers(0, 255),
    p1=st.integers(0, 255),
    p2=st.integers(0, 255),
    data=st.binary(max_size=255),
    le=st.none() | st.integers(1, 256),
)


@given(commands)
def test_every_short_command_survives_a_round_trip_through_bytes(command: CommandApdu) -> None:
    assert CommandApdu.from_bytes(command.to_bytes()) == command


def test_le_256_is_sent_as_zero() -> None:
    assert CommandApdu(0x00, 0xB2, 0x07, 0x2C, le=256).to_bytes() == bytes.fromhex("00B2072C00")


def test_select_sends_the_application_name_in_gbk() -> None:
    raw = protocol.select_application().to_bytes()
    assert raw == bytes.fromhex("00A404000F") + "sx1.sh.社会保障".encode("gbk") + b"\x00"
    assert raw[5:-1].hex().upper() == "7378312E73682EC9E7BBE1B1A3D5CF"


def test_read_record_puts_the_file_in_p2_and_the_record_in_p1() -> None:
    assert protocol.read_record(5, 7).to_bytes() == bytes.fromhex("00B2072C00")
    assert protocol.read_record(6, 8).to_bytes() == bytes.fromhex("00B2083400")


def test_a_command_that_does_not_fit_a_short_apdu_is_refused_when_built() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        CommandApdu(0, 0, 0, 0, data=bytes(256))
    with pytest.raises(ValueError, match="Le"):
        CommandApdu(0, 0, 0, 0, le=257)


def test_a_response_without_a_status_word_is_malformed() -> None:
    with pytest.raises(MalformedResponse):
        ResponseApdu.from_bytes(b"\x90")


def test_a_response_splits_into_data_and_status_word() -> None:
    response = ResponseApdu.from_bytes(bytes.fromhex("0102039000"))
    assert (response.data, response.status_word, response.ok) == (b"\x01\x02\x03", 0x9000, True)


@pytest.mark.parametrize(("status_word", "tries_left"), [(0x63C2, 2), (0x63C0, 0), (0x6300, None), (0x9000, None)])
def test_wrong_pin_status_words_carry_the_tries_left(status_word: int, tries_left: int | None) -> None:
    assert wrong_pin_tries_left(status_word) == tries_left


def test_tlv_round_trips_and_refuses_truncation_and_repeats() -> None:
    items = [(0x01, b"abc"), (0x02, b""), (0x9A, bytes(255))]
    assert decode_tlv(encode_tlv(items)) == dict(items)
    with pytest.raises(MalformedResponse, match="claims"):
        decode_tlv(b"\x01\x05abc")
    with pytest.raises(MalformedResponse, match="repeated"):
        decode_tlv(b"\x01\x00\x01\x00")
    with pytest.raises(MalformedResponse, match="no length"):
        decode_tlv(b"\x01")


PARSERS = [
    ResponseApdu.from_bytes,
    CommandApdu.from_bytes,
    decode_tlv,
    lambda data: protocol.record_value(data, protocol.RECORD_CARD_NUMBER),
    protocol.parse_generate_ac_response,
    protocol.parse_generate_ac_data,
    protocol.parse_challenge,
    protocol.parse_internal_authenticate_response,
    lambda data: protocol.decode_bcd_date(data, "date"),
]


@given(st.sampled_from(PARSERS), st.binary(max_size=300))
def test_parsing_any_bytes_raises_nothing_but_documented_errors(parser, data: bytes) -> None:  # type: ignore[no-untyped-def]
    with contextlib.suppress(CardError):
        parser(data)


records = st.dictionaries(
    st.sampled_from([*protocol.EF05_RECORDS, *protocol.EF06_RECORDS, 0x42]), st.binary(max_size=40)
)


@given(records)
def test_parsing_any_records_raises_nothing_but_documented_errors(values: dict[int, bytes]) -> None:
    for parse in (protocol.parse_identification, protocol.parse_holder):
        with contextlib.suppress(CardError):
            parse(values)
