"""End to end through the real PC/SC stack: pyscard -> pcscd -> vsmartcard-vpcd -> the virtual card.

Marked ``pcsc``: one pcscd per machine, so these run serially. The ``pcscd`` fixture (conftest.py)
starts or reuses the daemon, and fails instead of skipping under CI=true.
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import date
from pathlib import Path

import pytest
from cardio_pcsc import VPCD_PORTS, CardMaker, Pcscd, wait_for_reader
from cardio_testdata import CARD_NUMBER, CITIZEN_ID, MASTER_KEY, PIN

from cardio import ApduExchange, CitizenCard, GenerateAcRequest, SoftwareKeySource, protocol, read_citizen_card
from cardio.card_crypto import verify_cryptogram, verify_internal_authenticate
from cardio.errors import CardRemoved, CardTimeout, NoCard, NoReader, PinBlocked, WrongPin
from cardio.pcsc import CardEvent, CardEventKind, CardEventMonitor, PcscCardReader

pytestmark = pytest.mark.pcsc

REPOSITORY = Path(__file__).resolve().parents[2]
SLACK_S = 0.5  # scheduling slack allowed on top of a documented timeout


def quote_request(amount_fen: int = 12_345) -> GenerateAcRequest:
    return GenerateAcRequest(
        amount_fen=amount_fen,
        transaction_date=date.today(),  # noqa: DTZ011 - the card signs the desk's local date
        unpredictable_number=os.urandom(8),
        terminal_id="DESK0001",
    )


@pytest.fixture
def reader(pcscd: Pcscd) -> PcscCardReader:
    return PcscCardReader()


def test_the_vpcd_readers_are_listed(reader: PcscCardReader, pcscd: Pcscd) -> None:
    assert set(pcscd.readers) <= set(reader.list_readers())


def test_card_in_pin_read_and_the_signed_amount_verifies_on_the_server(
    reader: PcscCardReader, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    card = virtual_cards(counter=7)
    name = reader.wait_for_card(timeout_ms=3_000)
    assert name == pcscd.reader_for(VPCD_PORTS[0])
    with reader.connect(name) as channel:
        exchange = ApduExchange(channel)
        data = read_citizen_card(exchange, PIN)
        request = quote_request()
        proof = CitizenCard(exchange).generate_ac(request)
    assert (data.identification.card_number, data.holder.citizen_id, data.holder.name) == (
        CARD_NUMBER,
        CITIZEN_ID,
        "张三",
    )
    assert proof.counter == 8 == card.applet.card.counter
    server_keys = SoftwareKeySource(MASTER_KEY)
    assert verify_cryptogram(server_keys, CARD_NUMBER, request, proof.counter, proof.cryptogram)
    tampered = GenerateAcRequest(
        request.amount_fen + 1, request.transaction_date, request.unpredictable_number, request.terminal_id
    )
    assert not verify_cryptogram(server_keys, CARD_NUMBER, tampered, proof.counter, proof.cryptogram)


def test_internal_authenticate_works_through_pcscd(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards()
    with reader.connect(reader.wait_for_card(timeout_ms=3_000)) as channel:
        card = CitizenCard(ApduExchange(channel))
        card.select_application()
        challenge = os.urandom(8)
        response = card.internal_authenticate(challenge)
    assert verify_internal_authenticate(SoftwareKeySource(MASTER_KEY), CARD_NUMBER, challenge, response)


def test_wrong_pin_three_times_blocks_the_card(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards()
    name = reader.wait_for_card(timeout_ms=3_000)
    with reader.connect(name) as channel:
        card = CitizenCard(ApduExchange(channel))
        card.select_application()
        with pytest.raises(WrongPin) as first:
            card.verify_pin("000000")
        with pytest.raises(WrongPin) as second:
            card.verify_pin("000000")
        with pytest.raises(PinBlocked):
            card.verify_pin("000000")
    assert (first.value.tries_left, second.value.tries_left) == (2, 1)
    with reader.connect(name) as channel:  # a new connection does not unblock it
        card = CitizenCard(ApduExchange(channel))
        card.select_application()
        with pytest.raises(PinBlocked):
            card.verify_pin(PIN)


def test_a_blocked_card_is_reported_as_blocked(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards(pin_tries_left=0)
    with reader.connect(reader.wait_for_card(timeout_ms=3_000)) as channel, pytest.raises(PinBlocked):
        read_citizen_card(ApduExchange(channel), PIN)


def test_a_card_pulled_mid_flow_is_reported_as_removed(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards(remove_after_apdus=4)  # SELECT and three EF05 reads; pulled as VERIFY arrives
    with reader.connect(reader.wait_for_card(timeout_ms=3_000)) as channel:
        exchange = ApduExchange(channel, timeout_ms=3_000)
        started = time.monotonic()
        with pytest.raises(CardRemoved):
            read_citizen_card(exchange, PIN)
        assert time.monotonic() - started < 3 + SLACK_S
        with pytest.raises(CardRemoved):
            exchange.transmit(protocol.get_challenge())


def test_a_card_pulled_before_signing_signs_nothing_and_the_reinserted_card_signs_once(
    reader: PcscCardReader, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    card = virtual_cards(remove_after_apdus=9)  # the whole read (9 APDUs); pulled as GENERATE AC arrives
    name = reader.wait_for_card(timeout_ms=3_000)
    request = quote_request()
    with reader.connect(name) as channel:
        exchange = ApduExchange(channel)
        read_citizen_card(exchange, PIN)
        with pytest.raises(CardRemoved):
            CitizenCard(exchange).generate_ac(request)
    assert card.applet.card.counter == 0
    wait_for_reader(name, present=False)
    card.remove_after_apdus = None
    card.insert()
    with reader.connect(reader.wait_for_card(name, timeout_ms=3_000)) as channel:
        exchange = ApduExchange(channel)
        read_citizen_card(exchange, PIN)
        proof = CitizenCard(exchange).generate_ac(request)
    assert proof.counter == 1
    assert verify_cryptogram(SoftwareKeySource(MASTER_KEY), CARD_NUMBER, request, 1, proof.cryptogram)


def test_a_t0_card_works_through_pcscd(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards(t0_mode=True)
    with reader.connect(reader.wait_for_card(timeout_ms=3_000)) as channel:
        assert channel.protocol == "T=0"
        exchange = ApduExchange(channel)
        data = read_citizen_card(exchange, PIN)
        request = quote_request()
        proof = CitizenCard(exchange).generate_ac(request)
    assert data.holder.citizen_id == CITIZEN_ID
    assert verify_cryptogram(SoftwareKeySource(MASTER_KEY), CARD_NUMBER, request, proof.counter, proof.cryptogram)


def test_a_slow_card_times_out_at_the_exchange_deadline(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards(delay_ms=1_500)
    with reader.connect(reader.wait_for_card(timeout_ms=3_000)) as channel:
        started = time.monotonic()
        with pytest.raises(CardTimeout):
            read_citizen_card(ApduExchange(channel, timeout_ms=300), PIN)
        assert time.monotonic() - started < 0.3 + SLACK_S


def test_a_hung_card_never_hangs_the_reader_past_its_timeout(
    reader: PcscCardReader, pcscd: Pcscd, virtual_cards: CardMaker
) -> None:
    card = virtual_cards(hang_after_apdus=1)  # answers SELECT, then nothing ever again
    name = reader.wait_for_card(timeout_ms=3_000)
    started = time.monotonic()
    channel = reader.connect(name)
    with pytest.raises(CardTimeout):
        read_citizen_card(ApduExchange(channel, timeout_ms=500), PIN)
    channel.close()  # must not wait for pcscd to give up on the hung card
    assert time.monotonic() - started < 0.5 + SLACK_S
    # Pulling the hung card frees pcscd; the next card in the same reader works.
    card.remove()
    wait_for_reader(name, present=False)
    card.hang_after_apdus = None
    card.insert()
    with reader.connect(reader.wait_for_card(name, timeout_ms=3_000)) as channel:
        assert read_citizen_card(ApduExchange(channel), PIN).holder.citizen_id == CITIZEN_ID


def test_waiting_without_a_card_gives_no_card_after_the_timeout(reader: PcscCardReader, pcscd: Pcscd) -> None:
    started = time.monotonic()
    with pytest.raises(NoCard):
        reader.wait_for_card(pcscd.reader_for(VPCD_PORTS[1]), timeout_ms=300)
    assert 0.3 <= time.monotonic() - started < 0.3 + SLACK_S


def test_connecting_to_an_empty_reader_is_no_card(reader: PcscCardReader, pcscd: Pcscd) -> None:
    with pytest.raises(NoCard):
        reader.connect(pcscd.reader_for(VPCD_PORTS[1]))


def test_an_unknown_reader_is_no_reader(reader: PcscCardReader) -> None:
    with pytest.raises(NoReader):
        reader.wait_for_card("No Such Reader 00 00", timeout_ms=100)


def test_an_apdu_costs_far_less_than_a_delayed_ack(reader: PcscCardReader, virtual_cards: CardMaker) -> None:
    virtual_cards()
    with reader.connect(reader.wait_for_card(timeout_ms=3_000)) as channel:
        started = time.monotonic()
        read_citizen_card(ApduExchange(channel), PIN)  # 9 APDUs
        elapsed_s = time.monotonic() - started
    assert elapsed_s < 9 * 0.025, "TCP_NODELAY / TCP_QUICKACK lost? each APDU costs ~40 ms without them"


def test_pcsc_without_the_service_is_reported_as_such(tmp_path: Path) -> None:
    script = (
        "from cardio import open_pcsc_reader\n"
        "try:\n"
        "    open_pcsc_reader().list_readers()\n"
        "except Exception as e:\n"
        "    print(type(e).__name__)\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script],
        cwd=REPOSITORY,
        env={**os.environ, "PCSCLITE_CSOCK_NAME": str(tmp_path / "no-pcscd.comm")},
        capture_output=True,
        text=True,
        timeout=30,
        check=True,
    )
    assert result.stdout.strip() == "PcscUnavailable"


def test_the_virtual_card_runs_as_a_program_in_the_second_reader(reader: PcscCardReader, pcscd: Pcscd) -> None:
    name = pcscd.reader_for(VPCD_PORTS[1])
    program = subprocess.Popen(
        [sys.executable, "-m", "cardio.virtual_card", "--port", str(VPCD_PORTS[1]), "--pin", "4321", "--t0"],
        cwd=REPOSITORY,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        with reader.connect(reader.wait_for_card(name, timeout_ms=10_000)) as channel:
            data = read_citizen_card(ApduExchange(channel), "4321")
        assert data.identification.region_code == "330100"
    finally:
        program.send_signal(signal.SIGINT)
        assert program.wait(timeout=10) == 0
    wait_for_reader(name, present=False)


@pytest.fixture
def card_events() -> Iterator[tuple[CardEventMonitor, queue.Queue[CardEvent]]]:
    events: queue.Queue[CardEvent] = queue.Queue()
    monitor = CardEventMonitor(events.put)
    monitor.start()
    yield monitor, events
    monitor.stop()


def next_event(events: queue.Queue[CardEvent], reader: str) -> CardEvent:
    deadline = time.monotonic() + 5
    while True:
        event = events.get(timeout=max(0.0, deadline - time.monotonic()))
        if event.reader == reader:
            return event


def test_the_monitor_reports_insert_and_remove_and_stops_promptly(
    pcscd: Pcscd, virtual_cards: CardMaker, card_events: tuple[CardEventMonitor, queue.Queue[CardEvent]]
) -> None:
    monitor, events = card_events
    name = pcscd.reader_for(VPCD_PORTS[0])
    card = virtual_cards()
    inserted = next_event(events, name)
    assert inserted.kind is CardEventKind.INSERTED
    assert inserted.atr.startswith(b"\x3b")
    card.remove()
    assert next_event(events, name).kind is CardEventKind.REMOVED
    started = time.monotonic()
    monitor.stop()
    assert time.monotonic() - started < 1.0


def test_the_monitor_recovers_after_pcscd_restarts(
    pcscd: Pcscd, virtual_cards: CardMaker, card_events: tuple[CardEventMonitor, queue.Queue[CardEvent]]
) -> None:
    if not pcscd.owned:
        pytest.skip("this session reuses a pcscd it did not start, so it may not restart it")
    _monitor, events = card_events
    name = pcscd.reader_for(VPCD_PORTS[0])
    pcscd.restart()
    virtual_cards()
    event = next_event(events, name)
    assert event.kind is CardEventKind.INSERTED
