"""The desk flow with cardio's scripted reader against the real server, on SQLite and PostgreSQL.

The card is cardio's applet (real APDUs, real cryptogram) behind the in-process reader; the engine is the
real servicer and service behind a real gRPC server. Lost replies and crashes are made where they hurt:
after the engine committed, before the terminal learned it.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import pytest
from service_world import EMPLOYEE, HOSPITAL
from terminal_world import (
    CITIZEN_ID,
    PIN,
    READER,
    Screen,
    World,
    charges_document,
    make_desk,
)

from cardio.applet import CitizenCardApplet
from cardio.errors import CardRemoved
from cardio.fake_reader import Responder, ScriptedCardReader
from settlement.api.gen.clinic.settlement.v1 import settlement_pb2
from settlement.api.gen.clinic.settlement.v1 import settlement_service_pb2 as pb
from settlement.terminal.charges import parse_charges
from settlement.terminal.flow import Outcome
from settlement.terminal.journal import Journal, JournalEntry, State

GENERATE_AC = b"\x80\xae"


CHARGES = parse_charges(charges_document(), "test charges")


def settle_visit(world: World, journal_path: Path, reader: ScriptedCardReader, screen: Screen) -> Outcome:
    with Journal.open(journal_path) as journal:
        return make_desk(world, journal, screen, reader=reader).visit(CHARGES, person=None, person_map={})


def only_entry(journal_path: Path) -> JournalEntry:
    with Journal.open(journal_path) as journal:
        [entry] = journal.entries()
        return entry


def assert_no_secrets(text: str) -> None:
    for secret in (PIN, EMPLOYEE.card, CITIZEN_ID, CITIZEN_ID[:14]):
        assert secret not in text


def test_a_visit_reads_the_card_quotes_signs_settles_and_prints_a_card_present_receipt(
    world: World,
    journal_path: Path,
    reader: ScriptedCardReader,
    applet: CitizenCardApplet,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    screen = Screen()
    assert settle_visit(world, journal_path, reader, screen) is Outcome.SETTLED
    entry = only_entry(journal_path)
    assert (entry.state, entry.attempts) == (State.SETTLED, 1)
    [row] = world.settlement_rows()
    assert (row["request_id"], row["settlement_id"], row["card_present"]) == (
        entry.request_id,
        entry.settlement_id,
        True,
    )
    assert row["total_fen"] == entry.amount_fen == 9_100
    assert applet.card.counter == 1
    text = screen.text
    for shown in ("****0001", "王**", "医疗费总额 total", "统筹基金支付 fund paid", "个人账户支付 account paid"):
        assert shown in text
    assert "刷卡确认 card present  是 yes" in text
    assert entry.request_id in text
    assert_no_secrets(text)
    assert_no_secrets(caplog.text)
    assert_no_secrets(journal_path.read_text(encoding="utf-8"))  # the card number is only inside the encoded request


def test_a_lost_reply_is_resumed_after_a_restart_with_the_same_request_id_and_settles_once(
    world: World, journal_path: Path, reader: ScriptedCardReader
) -> None:
    world.control.drop_settle_replies = 3  # every automatic attempt of the first run loses its reply
    first = Screen()
    assert settle_visit(world, journal_path, reader, first) is Outcome.UNKNOWN
    assert "outcome unknown" in first.text
    entry = only_entry(journal_path)
    assert (entry.state, entry.attempts) == (State.SENT, 3)
    assert world.control.settles_committed == 3  # one settlement, answered three times

    restarted = Screen()
    with Journal.open(journal_path) as journal:
        assert make_desk(world, journal, restarted).recover()
    resumed = only_entry(journal_path)
    assert resumed.request_id == entry.request_id
    assert resumed.state is State.SETTLED
    [row] = world.settlement_rows()
    assert (row["request_id"], row["settlement_id"]) == (entry.request_id, resumed.settlement_id)
    assert "门诊结算单" in restarted.text


class Crash(BaseException):
    """The terminal process dies here (BaseException: nothing in the flow may swallow it)."""


def test_a_crash_after_prepared_and_before_sending_resumes_with_the_same_request_id(
    world: World, journal_path: Path, reader: ScriptedCardReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    def die(self: Journal, request_id: str) -> JournalEntry:
        raise Crash

    with monkeypatch.context() as patch:
        patch.setattr(Journal, "sent", die)
        with pytest.raises(Crash):
            settle_visit(world, journal_path, reader, Screen())
    entry = only_entry(journal_path)
    assert entry.state is State.PREPARED
    assert world.settlement_rows() == []

    with Journal.open(journal_path) as journal:
        assert make_desk(world, journal, Screen()).recover()
    [row] = world.settlement_rows()
    assert row["request_id"] == entry.request_id
    assert only_entry(journal_path).state is State.SETTLED


def test_the_operator_can_reverse_an_unknown_outcome_by_its_request_id(
    world: World, journal_path: Path, reader: ScriptedCardReader
) -> None:
    world.control.drop_settle_replies = 3
    assert settle_visit(world, journal_path, reader, Screen()) is Outcome.UNKNOWN
    screen = Screen(answers="c\n", assume_yes=False)  # the operator chooses "reverse"
    with Journal.open(journal_path) as journal:
        assert make_desk(world, journal, screen).recover()
    entry = only_entry(journal_path)
    assert entry.state is State.REVERSED
    assert entry.cancel_request_id
    assert entry.cancel_request_id != entry.request_id
    original, cancellation = world.settlement_rows()
    assert original["request_id"] == entry.request_id
    assert cancellation["reverses_id"] == original["settlement_id"] == reversed_settlement(world, entry)
    assert cancellation["request_id"] == entry.cancel_request_id
    assert "冲正成功 reversed" in screen.text


def reversed_settlement(world: World, entry: JournalEntry) -> str:
    stub = world.stub()
    read = stub.GetSettlement(
        pb.GetSettlementRequest(hospital_id=HOSPITAL, request_id=entry.request_id),
        metadata=(("operator-id", "doctor-7"), ("x-dev-hospital-id", HOSPITAL), ("x-dev-terminal-id", "T-DESK-01")),
    ).settlement
    assert read.status == settlement_pb2.SETTLEMENT_STATUS_CANCELLED
    return read.settlement_id


def test_reversing_an_attempt_that_never_reached_the_engine_finds_nothing_to_reverse(
    world: World, journal_path: Path, reader: ScriptedCardReader, monkeypatch: pytest.MonkeyPatch
) -> None:
    with monkeypatch.context() as patch:
        patch.setattr(Journal, "sent", lambda self, request_id: (_ for _ in ()).throw(Crash()))
        with pytest.raises(Crash):
            settle_visit(world, journal_path, reader, Screen())
    screen = Screen()
    with Journal.open(journal_path) as journal:
        assert make_desk(world, journal, screen, unfinished="reverse").recover()
    entry = only_entry(journal_path)
    assert (entry.state, entry.reason, entry.settlement_id) == (State.REVERSED, "SETTLEMENT_NOT_FOUND", "")
    assert world.settlement_rows() == []
    assert "nothing was settled under this request_id" in screen.text


def test_a_refusal_shows_the_cashier_message_and_the_reason_and_finishes_the_entry(
    world: World, journal_path: Path, reader: ScriptedCardReader
) -> None:
    screen = Screen()
    console = screen.console()
    agreed = console.confirm

    def confirm_after_the_quote_expired(question: str) -> bool:
        world.clock.advance(601)  # the patient thought about it for too long
        return agreed(question)

    console.confirm = confirm_after_the_quote_expired  # type: ignore[method-assign]
    with Journal.open(journal_path) as journal:
        desk = make_desk(world, journal, screen, reader=reader)
        desk.console = console
        assert desk.visit(CHARGES, person=None, person_map={}) is Outcome.REFUSED
    entry = only_entry(journal_path)
    assert (entry.state, entry.reason) == (State.REFUSED, "QUOTE_EXPIRED")
    assert "结算被拒绝 settle refused" in screen.text
    assert "QUOTE_EXPIRED" in screen.text
    assert world.settlement_rows() == []


def test_a_card_pulled_before_it_signed_settles_once_after_it_is_inserted_again(
    world: World, journal_path: Path, applet: CitizenCardApplet
) -> None:
    reader = ScriptedCardReader([READER])
    pulled = threading.Event()

    def pulled_at_the_first_signature(command: bytes) -> bytes:
        if command.startswith(GENERATE_AC) and not pulled.is_set():
            pulled.set()
            reader.remove(READER)
            threading.Timer(0.2, reader.insert, (READER, applet.process)).start()
            raise CardRemoved("the card was removed")
        return applet.process(command)

    responder: Responder = pulled_at_the_first_signature
    reader.insert(READER, responder)
    screen = Screen()
    assert settle_visit(world, journal_path, reader, screen) is Outcome.SETTLED
    assert "卡片已拔出" in screen.text
    assert "nothing was settled" in screen.text
    [row] = world.settlement_rows()
    assert row["card_present"]
    assert applet.card.counter == 1  # the pulled attempt never reached the card's GENERATE AC
    assert only_entry(journal_path).request_id == row["request_id"]


def test_a_wrong_pin_is_asked_again_with_the_tries_left(
    world: World, journal_path: Path, reader: ScriptedCardReader
) -> None:
    screen = Screen(pins=["000000", PIN])
    assert settle_visit(world, journal_path, reader, screen) is Outcome.SETTLED
    assert "密码错误" in screen.text
    assert "2 tries left" in screen.text
    assert "000000" not in screen.text


def test_declining_the_quote_settles_nothing_and_journals_nothing(
    world: World, journal_path: Path, reader: ScriptedCardReader, applet: CitizenCardApplet
) -> None:
    screen = Screen(answers="n\n", assume_yes=False)
    assert settle_visit(world, journal_path, reader, screen) is Outcome.DECLINED
    assert world.settlement_rows() == []
    assert applet.card.counter == 0
    with Journal.open(journal_path) as journal:
        assert journal.entries() == []


def test_a_new_visit_does_not_start_while_a_settle_is_unfinished(
    world: World, journal_path: Path, reader: ScriptedCardReader
) -> None:
    world.control.drop_settle_replies = 3
    assert settle_visit(world, journal_path, reader, Screen()) is Outcome.UNKNOWN
    reader.channels.clear()
    screen = Screen(answers="l\n", assume_yes=False)  # the operator chooses "later"
    assert settle_visit(world, journal_path, reader, screen) is Outcome.UNKNOWN
    assert reader.channels == []  # the card was never touched
    assert "visit not started" in screen.text
    assert len(world.settlement_rows()) == 1
    with Journal.open(journal_path) as journal:
        assert len(journal.entries()) == 1
