"""Hypothesis fuzzing of the MLLP framer and of HL7 handling: never a crash, nothing settled on garbage."""

from __future__ import annotations

import itertools

from adapter_helpers import PERSON, dft_p03
from hypothesis import given, settings
from hypothesis import strategies as st

from hospital_adapters import FakeEngine, load_config
from hospital_adapters.hl7.mllp import END_BLOCK, START_BLOCK, FrameTooLarge, MllpFramer, encode_frame
from hospital_adapters.hl7.service import Hl7Service, Hl7Settings
from hospital_adapters.samples import HL7_HOSPITAL_CONFIG

CONFIG = load_config(HL7_HOSPITAL_CONFIG)
TABLE = CONFIG.load_code_table()
payloads = st.binary(max_size=200).map(lambda data: data.replace(START_BLOCK, b"").replace(b"\x1c", b""))


def split_at(data: bytes, cuts: list[int]) -> list[bytes]:
    points = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    return [data[start:end] for start, end in itertools.pairwise(points)]


def fresh_service() -> tuple[Hl7Service, FakeEngine]:
    engine = FakeEngine({PERSON: 10_000})
    return Hl7Service(CONFIG, TABLE, engine, Hl7Settings.from_config(CONFIG)), engine


@given(st.lists(payloads, max_size=5), st.lists(st.integers(min_value=0), max_size=20), st.binary(max_size=20))
def test_frames_come_out_whole_however_the_stream_is_cut(messages: list[bytes], cuts: list[int],
                                                          junk: bytes) -> None:
    junk = junk.replace(START_BLOCK, b"")  # junk between frames is ignored, as long as it starts no frame
    stream = junk + b"".join(encode_frame(message) for message in messages)
    framer = MllpFramer(1_000)
    received = [payload for chunk in split_at(stream, cuts) for payload in framer.feed(chunk)]
    assert received == messages


@given(st.binary(max_size=2_000), st.lists(st.integers(min_value=0), max_size=10))
def test_the_framer_never_fails_on_garbage_except_by_refusing_an_oversized_frame(data: bytes,
                                                                                 cuts: list[int]) -> None:
    framer = MllpFramer(100)
    try:
        for chunk in split_at(data, cuts):
            for payload in framer.feed(chunk):
                assert len(payload) <= 100
                assert START_BLOCK not in payload
                assert END_BLOCK not in payload
    except FrameTooLarge:
        pass


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=500))
def test_garbage_bytes_get_an_error_ack_and_settle_nothing(data: bytes) -> None:
    service, engine = fresh_service()
    ack = service.handle(data).decode("utf-8")
    assert "\rMSA|AR|" in ack or "\rMSA|AE|" in ack
    assert engine.settlements == []


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_a_mutated_dft_p03_never_crashes_and_settles_only_when_acknowledged(data: st.DataObject) -> None:
    message = dft_p03("FUZZ").encode("utf-8")
    position = data.draw(st.integers(min_value=0, max_value=len(message)))
    length = data.draw(st.integers(min_value=0, max_value=20))
    insert = data.draw(st.binary(max_size=20) | st.sampled_from([b"|", b"^", b"~", b"\\", b"&", b"\r", b"-1",
                                                                  b"1e9", b"FT1|", b"\rFT1|9|X||"]))
    mutated = message[:position] + insert + message[position + length:]
    service, engine = fresh_service()

    ack = service.handle(mutated).decode("utf-8", errors="replace")

    accepted = "\rMSA|AA|" in ack
    assert accepted == (len(engine.settlements) == 1)
    if not accepted:
        assert "\rERR|" in ack
