"""End to end through the real PC/SC stack: ``settlement terminal`` -> pyscard -> pcscd -> vpcd -> the
virtual card, and the real server over mTLS with the desk's certificate.

Marked ``pcsc``: one pcscd per machine, so these run serially (and not beside tests/cardio). The
``pcscd`` and ``virtual_cards`` fixtures are tests/cardio's own; under CI=true they fail, never skip.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from cardio_pcsc import VPCD_PORTS, CardMaker, Pcscd, wait_for_reader
from service_world import DESK, EMPLOYEE, MASTER_KEY
from terminal_world import (
    CITIZEN_ID,
    PIN,
    Screen,
    World,
    charges_document,
    desk_program,
    make_desk,
    running_world,
    write_charges,
)

from cardio.limits import APDU_EXCHANGE_TIMEOUT_MS
from cardio.pcsc import PcscCardReader
from settlement.storage.engine import make_engines, sqlite_url
from settlement.storage.migrate import upgrade
from settlement.terminal.charges import parse_charges
from settlement.terminal.flow import Outcome
from settlement.terminal.journal import Journal, State

pytestmark = pytest.mark.pcsc

REPOSITORY = Path(__file__).resolve().parents[2]
PIN_VARIABLE = "TERMINAL_TEST_PIN"
RUN_TIMEOUT_S = 60
HUNG_CARD_SLACK_S = 3.0  # the card read and the quote before the hung GENERATE AC, plus scheduling


@pytest.fixture
def world(tmp_path: Path) -> Iterator[World]:
    engines = make_engines(sqlite_url(tmp_path / "settlement.db"))
    upgrade(engines.writer)
    with running_world(engines, tmp_path, tls=True) as running:
        yield running
    engines.dispose()


def card_options() -> dict[str, object]:
    """The seeded employee's card, as tests/cardio's ``virtual_cards`` personalises it."""
    return {"card_number": EMPLOYEE.card, "citizen_id": CITIZEN_ID, "pin": PIN, "master_key": MASTER_KEY}


def terminal_command(world: World, journal: Path, *options: str) -> list[str]:
    return desk_program(world, journal, *options, pin_variable=PIN_VARIABLE)


def environment() -> dict[str, str]:
    return {**os.environ, PIN_VARIABLE: PIN}


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=RUN_TIMEOUT_S, cwd=REPOSITORY, env=environment(), check=False
    )


def journal_states(journal: Path) -> list[tuple[str, str]]:
    return [
        (line["state"], line["request_id"])
        for line in map(json.loads, journal.read_text(encoding="utf-8").splitlines())
    ]


def assert_no_secrets(text: str) -> None:
    for secret in (PIN, EMPLOYEE.card, CITIZEN_ID):
        assert secret not in text


def test_the_terminal_program_settles_through_pcscd_with_a_card_proof(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(**card_options())
    journal = tmp_path / "journal.jsonl"
    reader = pcscd.reader_for(VPCD_PORTS[0])
    done = run(terminal_command(world, journal, "--reader", reader, "--charges", str(write_charges(tmp_path))))
    assert done.returncode == 0, done.stdout + done.stderr
    [row] = world.settlement_rows()
    assert row["card_present"]
    assert row["terminal_id"] == DESK.terminal_id
    assert card.applet.card.counter == 1
    assert "刷卡确认 card present  是 yes" in done.stdout
    assert "****0001" in done.stdout
    states = journal_states(journal)
    assert states == [("prepared", row["request_id"]), ("sent", row["request_id"]), ("settled", row["request_id"])]
    assert_no_secrets(done.stdout + done.stderr)


def test_killing_the_terminal_mid_settle_and_restarting_it_settles_exactly_once(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    card = virtual_cards(**card_options())
    journal = tmp_path / "journal.jsonl"
    index = PcscCardReader().list_readers().index(pcscd.reader_for(VPCD_PORTS[0]))
    charges = write_charges(tmp_path, person=False)
    first = subprocess.Popen(
        terminal_command(
            world, journal, "--reader", str(index), "--charges", str(charges), "--person", EMPLOYEE.number
        ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPOSITORY,
        env=environment(),
    )
    world.control.kill_on_settle = first  # SIGKILL the moment the engine has committed, before any reply
    output, _errors = first.communicate(timeout=RUN_TIMEOUT_S)
    assert first.returncode == -signal.SIGKILL, output
    assert world.control.settles_committed == 1
    [(prepared, request_id), (sent, same_id)] = journal_states(journal)
    assert (prepared, sent, same_id) == ("prepared", "sent", request_id)

    card.remove()  # the patient has left with the card: recovery does not need it
    wait_for_reader(pcscd.reader_for(VPCD_PORTS[0]), present=False)
    again = run(terminal_command(world, journal))  # no --charges: recovery only
    assert again.returncode == 0, again.stdout + again.stderr
    [row] = world.settlement_rows()
    assert row["request_id"] == request_id
    assert row["card_present"]
    assert world.control.settles_committed == 2  # the resend was answered with the first outcome
    assert journal_states(journal)[-1] == ("settled", request_id)
    assert f"请求号 request id      {request_id}" in again.stdout
    assert {rid for _state, rid in journal_states(journal)} == {request_id}  # never a second request_id

    rerun = run(terminal_command(world, journal))
    assert rerun.returncode == 0
    assert "nothing unfinished" in rerun.stdout
    assert len(world.settlement_rows()) == 1


def test_a_card_pulled_through_pcscd_before_it_signed_settles_once_after_reinsertion(
    world: World, pcscd: Pcscd, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    # A full read is 9 APDUs; the card leaves when the 10th, GENERATE AC, arrives.
    card = virtual_cards(remove_after_apdus=9, **card_options())
    name = pcscd.reader_for(VPCD_PORTS[0])

    def insert_again_once_pcscd_saw_it_leave() -> None:
        wait_for_reader(name, present=False)
        card.remove_after_apdus = None
        card.insert()

    reinsertion = threading.Thread(target=insert_again_once_pcscd_saw_it_leave, daemon=True)
    reinsertion.start()
    screen = Screen()
    with Journal.open(tmp_path / "journal.jsonl") as journal:
        desk = make_desk(world, journal, screen, reader=PcscCardReader())
        charges = parse_charges(charges_document(), "charges")
        assert desk.visit(charges, person=None, person_map={}) is Outcome.SETTLED
        [entry] = journal.entries()
    reinsertion.join(timeout=10)
    assert "卡片已拔出" in screen.text
    [row] = world.settlement_rows()
    assert (row["request_id"], row["card_present"]) == (entry.request_id, True)
    assert entry.state is State.SETTLED
    assert card.applet.card.counter == 1


def test_a_card_that_hangs_while_signing_fails_within_its_timeout_and_settles_nothing(
    world: World, virtual_cards: CardMaker, tmp_path: Path
) -> None:
    virtual_cards(hang_after_apdus=9, **card_options())  # reads fine, never answers GENERATE AC
    screen = Screen()
    started = time.monotonic()
    with Journal.open(tmp_path / "journal.jsonl") as journal:
        desk = make_desk(world, journal, screen, reader=PcscCardReader())
        charges = parse_charges(charges_document(), "charges")
        assert desk.visit(charges, person=None, person_map={}) is Outcome.CARD_FAILED
        assert journal.entries() == []  # nothing was signed, so nothing was journaled or sent
    assert time.monotonic() - started < APDU_EXCHANGE_TIMEOUT_MS / 1000 + HUNG_CARD_SLACK_S
    assert "CARD_TIMEOUT" in screen.text
    assert world.settlement_rows() == []
