"""Issue 5, "end to end through pcscd": card in → PIN → read → quote → cryptogram → settle → receipt; wrong
PIN three times → blocked and reported as blocked; card pulled between quote and settle → no settlement,
and the retry after re-insertion settles once; a T=0 card works.

Everything runs through pyscard → pcscd → vsmartcard-vpcd → the virtual card, and the real engine behind
the real server over mTLS with the desk's certificate. Marked ``pcsc``: run serially (one pcscd).
"""

from __future__ import annotations

import threading
from pathlib import Path

import pytest
from card_acceptance_desk import (
    INS_GENERATE_AC,
    INS_GET_RESPONSE,
    assert_no_secrets,
    card_options,
    card_record,
    journal_states,
    quotes_issued,
    recording_instructions,
    run_terminal,
    terminal_command,
    write_charges,
)
from cardio_pcsc import VPCD_PORTS, CardMaker, Pcscd, wait_for_reader
from service_world import DESK
from terminal_world import PIN, Screen, World, charges_document, make_desk

from cardio.pcsc import PcscCardReader
from settlement.terminal.charges import parse_charges
from settlement.terminal.flow import Outcome
from settlement.terminal.journal import Journal, State

pytestmark = pytest.mark.pcsc

WRONG_PIN = "111111"


def desk_visit(world: World, journal: Path, screen: Screen) -> Outcome:
    with Journal.open(journal) as opened:
        desk = make_desk(world, opened, screen, reader=PcscCardReader())
        return desk.visit(parse_charges(charges_document(), "charges"), person=None, person_map={})


def test_card_in_pin_read_quote_cryptogram_settle_and_receipt(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(**card_options())
    screen = Screen()
    journal = tmp_path / "journal.jsonl"

    assert desk_visit(world, journal, screen) is Outcome.SETTLED

    text = screen.text
    steps = (
        "卡号 card ****0001",
        "预结算 quote",
        "卡片签名中",
        "结算中 settling",
        "门诊结算单",
        "刷卡确认 card present  是 yes",
    )
    positions = [text.index(step) for step in steps]
    assert positions == sorted(positions), "the desk's steps came out of order"
    [row] = world.settlement_rows()
    assert (row["card_present"], row["terminal_id"]) == (True, DESK.terminal_id)
    assert f"结算号 settlement id   {row['settlement_id']}" in text
    record = card_record(world)
    assert (record.settlements, record.last_counter, record.spent_quotes) == (1, 1, 1)
    assert card.applet.card.counter == 1
    assert journal_states(journal) == [(state, row["request_id"]) for state in ("prepared", "sent", "settled")]
    assert_no_secrets(text + journal.read_text(encoding="utf-8"))


def test_a_wrong_pin_three_times_blocks_the_card_and_the_desk_says_it_is_blocked(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(**card_options())
    screen = Screen(pins=[WRONG_PIN])  # the patient keeps typing the same wrong PIN
    journal = tmp_path / "journal.jsonl"

    assert desk_visit(world, journal, screen) is Outcome.CARD_FAILED

    assert "2 tries left" in screen.text
    assert "1 tries left" in screen.text
    assert "PIN_BLOCKED" in screen.text
    assert WRONG_PIN not in screen.text
    assert card.applet.card.pin_tries_left == 0
    assert quotes_issued(world) == 0  # nothing went to the engine
    assert world.settlement_rows() == []
    assert journal_states(journal) == []

    # The card stays blocked (a new connection, a new program, the right PIN): reported as blocked,
    # not as a wrong PIN.
    charges = write_charges(tmp_path)
    reader = pcscd.reader_for(VPCD_PORTS[0])
    again = run_terminal(
        terminal_command(world, tmp_path / "again.jsonl", "--reader", reader, "--charges", str(charges))
    )
    assert again.returncode == 1, again.stdout + again.stderr
    assert "PIN_BLOCKED" in again.stdout
    assert "WRONG_PIN" not in again.stdout
    assert world.settlement_rows() == []
    assert_no_secrets(again.stdout + again.stderr)


def test_a_card_pulled_between_quote_and_settle_settles_nothing_and_once_after_reinsertion(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    # A full read is 9 APDUs; the quote follows; the card leaves as the 10th, GENERATE AC, arrives.
    card = virtual_cards(remove_after_apdus=9, **card_options())
    name = pcscd.reader_for(VPCD_PORTS[0])
    seen_while_out: list[tuple[int, int]] = []

    def reinsert_once_pcscd_saw_it_leave() -> None:
        wait_for_reader(name, present=False)
        seen_while_out.append((card_record(world).settlements, quotes_issued(world)))
        card.remove_after_apdus = None
        card.insert()

    reinsertion = threading.Thread(target=reinsert_once_pcscd_saw_it_leave, daemon=True)
    reinsertion.start()
    screen = Screen()
    journal = tmp_path / "journal.jsonl"

    assert desk_visit(world, journal, screen) is Outcome.SETTLED
    reinsertion.join(timeout=10)

    assert seen_while_out == [(0, 1)]  # out of the reader: quoted, nothing settled
    assert "卡片已拔出" in screen.text
    assert "nothing was settled" in screen.text
    [row] = world.settlement_rows()
    record = card_record(world)
    assert (record.settlements, record.spent_quotes, record.last_counter) == (1, 1, 1)
    assert quotes_issued(world) == 2  # the pulled attempt's quote was never spent; it simply expires
    assert card.applet.card.counter == 1  # the pulled attempt never reached the card's GENERATE AC
    with Journal.open(journal) as opened:
        [entry] = opened.entries()
    assert (entry.request_id, entry.state) == (row["request_id"], State.SETTLED)


def test_the_program_settles_nothing_for_a_pulled_card_and_the_rerun_after_reinsertion_settles_once(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(remove_after_apdus=9, **card_options())
    name = pcscd.reader_for(VPCD_PORTS[0])
    journal = tmp_path / "journal.jsonl"
    charges = str(write_charges(tmp_path))

    pulled = run_terminal(terminal_command(world, journal, "--reader", name, "--charges", charges, card_timeout_s=2))

    assert pulled.returncode == 1, pulled.stdout + pulled.stderr
    assert "卡片已拔出" in pulled.stdout
    assert "NO_CARD" in pulled.stdout  # it waited for the card to come back, which it did not
    assert world.settlement_rows() == []
    assert journal_states(journal) == []  # nothing was signed, so nothing was journaled or sent

    wait_for_reader(name, present=False)
    card.remove_after_apdus = None
    card.insert()
    retried = run_terminal(terminal_command(world, journal, "--reader", name, "--charges", charges))
    assert retried.returncode == 0, retried.stdout + retried.stderr
    [row] = world.settlement_rows()
    assert row["card_present"]
    assert {request_id for _state, request_id in journal_states(journal)} == {row["request_id"]}

    idle = run_terminal(terminal_command(world, journal))  # a start without charges: recovery only
    assert idle.returncode == 0
    assert "nothing unfinished" in idle.stdout
    assert len(world.settlement_rows()) == 1
    assert card.applet.card.counter == 1
    assert_no_secrets(pulled.stdout + retried.stdout + idle.stdout)


def test_a_t0_card_settles_through_pcscd_with_the_readers_own_follow_ups(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(t0_mode=True, **card_options())
    instructions = recording_instructions(card)
    reader = pcscd.reader_for(VPCD_PORTS[0])

    done = run_terminal(
        terminal_command(world, tmp_path / "j.jsonl", "--reader", reader, "--charges", str(write_charges(tmp_path)))
    )

    assert done.returncode == 0, done.stdout + done.stderr
    assert "刷卡确认 card present  是 yes" in done.stdout
    [row] = world.settlement_rows()
    assert row["card_present"]
    assert card_record(world).last_counter == card.applet.card.counter == 1
    assert INS_GET_RESPONSE in instructions  # 61xx answered with GET RESPONSE by cardio, through pcscd
    assert INS_GENERATE_AC in instructions
    assert PIN not in done.stdout
